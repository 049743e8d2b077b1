//! The judge's group calibration (issue #19 item 3, docs/fleet.md): each ML behavior's
//! thresholds and peer spread from a bounded sample of its things' models, at start-up and hourly.

use std::collections::BTreeMap;

use detect::learn::{Group, Model, StoredModel};
use detect::{Criterion, MetricRef};

use super::Judge;
use crate::store::{Loaded, Store, StoreError};

/// Groups are calibrated again at most this often (the sweep calls it).
pub const CALIBRATE_EVERY_MS: u64 = 3_600_000;
/// Active models a calibration uses per behavior at most: those of the things with the least
/// `name_hash`, a sample that stays put as things come and go (docs/ml.md).
pub const SAMPLE: usize = 2_000;
/// Stored models decoded per behavior at most while looking for `SAMPLE` active ones.
pub const DECODE_LIMIT: usize = 2 * SAMPLE;

impl Judge {
    /// True when `calibrate_groups` would calibrate at `now_ms`.
    pub fn groups_due(&self, now_ms: u64) -> bool {
        now_ms >= self.groups_due
    }

    /// `calibrate_groups` from the store's records when due, loading them only then: `run`
    /// calls it before judging its first report, so a restart keeps group thresholds and peer
    /// comparison from the start.
    pub fn calibrate_from(
        &mut self,
        store: &mut dyn Store,
        now_ms: u64,
    ) -> Result<Option<usize>, StoreError> {
        if !self.groups_due(now_ms) {
            return Ok(None);
        }
        let records = store.with_state()?;
        Ok(self.calibrate_groups(&records, now_ms))
    }

    /// Calibrates every ML behavior's group from the models in `records` (things with
    /// engine state) when `CALIBRATE_EVERY_MS` passed since the last time; returns how many
    /// behaviors have a group (`None` when not due). Per behavior it decodes the models of
    /// the things with the least `name_hash` until `SAMPLE` active ones (at most
    /// `DECODE_LIMIT`); a model that does not decode is skipped.
    pub fn calibrate_groups(&mut self, records: &[(String, Loaded)], now_ms: u64) -> Option<usize> {
        if !self.groups_due(now_ms) {
            return None;
        }
        self.groups_due = now_ms.saturating_add(CALIBRATE_EVERY_MS);
        // Per (profile, behavior, metric): (thing hash, stored model) of every thing.
        let mut stored: BTreeMap<Key, Vec<(u64, &StoredModel)>> = BTreeMap::new();
        for (thing, loaded) in records {
            let hash = name_hash(thing);
            for state in loaded.record.states.values() {
                for m in &state.models {
                    let key = (m.profile.as_str(), m.behavior.as_str(), m.metric.as_str());
                    stored.entry(key).or_default().push((hash, &m.model));
                }
            }
        }
        let groups: BTreeMap<_, Group> = stored
            .into_iter()
            .filter_map(|(key, mut hexes)| {
                // Stable: records come by thing name, so equal hashes keep that order.
                hexes.sort_by_key(|(hash, _)| *hash);
                let sample = sample(&hexes);
                Some((key, Group::calibrate(&sample)?))
            })
            .collect();
        let mut grouped = 0;
        for profile in self.profiles.values_mut() {
            for b in &mut profile.behaviors {
                let Some(rule) = b.rule.as_mut() else {
                    continue;
                };
                let Criterion::Learned(l) = &mut rule.criterion else {
                    continue;
                };
                let key = (profile.name.as_str(), b.name.as_str(), b.metric.as_str());
                l.group = groups.get(&key).copied();
                if let Some(g) = &l.group {
                    grouped += 1;
                    let cloud = matches!(rule.metric, MetricRef::Cloud(_));
                    let peers = g.peers.map(|p| p.count);
                    tracing::info!(profile = %profile.name, behavior = %b.name, cloud, point = ?g.point, window = ?g.window, ?peers, "ML group thresholds calibrated");
                }
            }
        }
        Some(grouped)
    }
}

type Key<'a> = (&'a str, &'a str, &'a str);

/// The active models among `hexes` (sorted by thing hash), in that order: at most `SAMPLE`,
/// from at most `DECODE_LIMIT` decoded.
fn sample(hexes: &[(u64, &StoredModel)]) -> Vec<Model> {
    let mut active = Vec::new();
    for (_, hex) in hexes.iter().take(DECODE_LIMIT) {
        if let Ok(m) = hex.decode()
            && m.active()
        {
            active.push(m);
            if active.len() == SAMPLE {
                break;
            }
        }
    }
    active
}

/// FNV-1a of a thing name: the same on every run and platform (the sample's order).
pub fn name_hash(name: &str) -> u64 {
    detect::hash::fnv1a(name.as_bytes())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use detect::learn::Unit;
    use detect::{EventType, profile, seeded_ids};
    use serde_json::json;

    use super::*;
    use crate::config::Attach;
    use crate::intake::ReportTopic;
    use crate::judge::Attachments;
    use crate::store::Sqlite;

    const T0: u64 = 1_800_000_000_000;
    const STEP: u64 = 300_000;

    fn judge() -> Judge {
        let doc = json!({"securityProfileName": "learned", "behaviors": [
            {"name": "out-ml", "metric": "aws:all-bytes-out",
             "criteria": {"mlDetectionConfig": {"confidenceLevel": "MEDIUM"}}}]});
        let p = profile::parse(&doc.to_string(), Path::new("learned.json"));
        let attach = [Attach {
            profile: "learned".into(),
            target: "all-things".into(),
        }];
        Judge::new(
            vec![p.unwrap().0],
            Attachments::new(&attach),
            1,
            None,
            seeded_ids(7),
        )
    }

    /// Datapoint `i` of `thing` at `bytes` (±10 %): the in-alarm events it gives.
    fn send(j: &mut Judge, s: &mut dyn Store, thing: &str, i: u64, bytes: u64) -> Vec<String> {
        let report = json!({"header": {"report_id": T0 + i * STEP, "version": "1.0"},
            "metrics": {"network_stats": {"bytes_in": 1, "bytes_out": bytes + bytes * (i % 7) / 35,
                                          "packets_in": 1, "packets_out": 1}}});
        let topic = ReportTopic::parse(&format!("$aws/things/{thing}/defender/metrics/json"));
        let payload = report.to_string();
        let handled = j.handle(s, &topic.unwrap(), payload.as_bytes(), T0 + i * STEP);
        s.sync().unwrap();
        let events = handled.unwrap().events.into_iter().map(|r| r.event);
        events
            .filter(|e| e.violation_event_type == EventType::InAlarm)
            .map(|e| e.explanation.unwrap_or_default())
            .collect()
    }

    /// Issue #19: after a restart, groups come from the store before the first report is
    /// judged (`calibrate_from`, as `run` does): a thing enrolling at 40× its peers alarms
    /// within its first two hours; a judge without it has no group then.
    #[test]
    fn a_restart_keeps_the_groups_for_a_newly_enrolled_thing() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("fleet.db");
        let mut s = Sqlite::open(&db).unwrap();
        let mut j = judge();
        for i in 0..2 * 288 {
            for k in 0..9u64 {
                let alarms = send(&mut j, &mut s, &format!("peer-{k}"), i, 20_000 + k * 2_000);
                assert!(alarms.is_empty(), "peer-{k} at {i}: {alarms:?}");
            }
        }
        drop((j, s));
        std::fs::copy(&db, dir.path().join("copy.db")).unwrap();
        let start = 2 * 288;
        let now = T0 + start * STEP;
        let first = |calibrate: bool, file: &str| {
            let mut s = Sqlite::open(&dir.path().join(file)).unwrap();
            let mut j = judge();
            if calibrate {
                assert_eq!(j.calibrate_from(&mut s, now).unwrap(), Some(1));
                assert_eq!(j.calibrate_from(&mut s, now).unwrap(), None, "not due");
            }
            (0..24)
                .flat_map(|i| send(&mut j, &mut s, "new", start + i, 1_200_000))
                .collect::<Vec<_>>()
        };
        let alarms = first(true, "fleet.db");
        assert_eq!(alarms.len(), 1, "{alarms:?}");
        assert!(
            alarms[0].contains("× the usual of its 9 peers"),
            "{alarms:?}"
        );
        assert_eq!(first(false, "copy.db"), Vec::<String>::new());
    }

    #[test]
    fn a_calibration_decodes_a_bounded_sample_chosen_by_thing_name() {
        let mut active = Model::default();
        for i in 0..288 {
            active.observe(T0 + i * STEP, 5_000, Unit::Bytes);
        }
        // As read from a store: hex, decoded by the sample.
        let hex = |m: &Model| StoredModel::Hex(detect::learn::persist::to_hex(m));
        let (active, pending) = (hex(&active), hex(&Model::default()));
        let many = vec![(0u64, &active); SAMPLE + 500];
        assert_eq!(sample(&many).len(), SAMPLE);
        // Past `DECODE_LIMIT` pending ones, the active ones behind them are not reached.
        let mut mixed = vec![(0u64, &pending); DECODE_LIMIT];
        mixed.extend([(1, &active); 10]);
        assert_eq!(sample(&mixed).len(), 0);
        assert_eq!(sample(&mixed[DECODE_LIMIT - 5..]).len(), 10);
        // The sample's order: FNV-1a, the same everywhere.
        assert_eq!(name_hash(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(name_hash("a"), 0xaf63_dc4c_8601_ec8c);
    }
}
