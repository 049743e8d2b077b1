//! The judge's group calibration (issue #19 item 3, docs/fleet.md): each ML behavior's
//! thresholds from its things' models, handed to the models still in their first day.

use std::collections::BTreeMap;

use detect::learn::{Group, Model, persist};
use detect::{Criterion, MetricRef};

use super::Judge;
use crate::store::Loaded;

/// Groups are calibrated again at most this often (the sweep calls it; each calibration
/// decodes every stored model).
pub const CALIBRATE_EVERY_MS: u64 = 3_600_000;

impl Judge {
    /// Calibrates every ML behavior's group from the models in `records` (things with
    /// engine state) when `CALIBRATE_EVERY_MS` passed since the last time; returns how many
    /// behaviors have a group (`None` when not due). A model that does not decode is skipped.
    pub fn calibrate_groups(&mut self, records: &[(String, Loaded)], now_ms: u64) -> Option<usize> {
        if now_ms < self.groups_due {
            return None;
        }
        self.groups_due = now_ms.saturating_add(CALIBRATE_EVERY_MS);
        let mut models: BTreeMap<(&str, &str, &str), Vec<Model>> = BTreeMap::new();
        for (_, loaded) in records {
            for state in loaded.record.states.values() {
                for m in &state.models {
                    if let Ok(model) = persist::from_hex(&m.model) {
                        let key = (m.profile.as_str(), m.behavior.as_str(), m.metric.as_str());
                        models.entry(key).or_default().push(model);
                    }
                }
            }
        }
        let mut grouped = 0;
        for profile in self.profiles.values_mut() {
            for b in &mut profile.behaviors {
                let Some(rule) = b.rule.as_mut() else {
                    continue;
                };
                let Criterion::Learned(l) = &mut rule.criterion else {
                    continue;
                };
                let peers =
                    models.get(&(profile.name.as_str(), b.name.as_str(), b.metric.as_str()));
                l.group = peers.and_then(Group::calibrate);
                if let Some(g) = &l.group {
                    grouped += 1;
                    let cloud = matches!(rule.metric, MetricRef::Cloud(_));
                    tracing::info!(profile = %profile.name, behavior = %b.name, cloud, point = ?g.point, window = ?g.window, "ML group thresholds calibrated");
                }
            }
        }
        Some(grouped)
    }
}
