//! Carrying the engine across restarts and reloads (detect-rules §6.1): `Engine::snapshot`,
//! and `Engine::restore` / `reload`, which invalidate the alarms of removed or changed
//! behaviors, and keep the learned models. Shape: `state.rs`. Writes no files (the daemon does).

use std::sync::Arc;

use super::engine::Engine;
use super::event::{Event, EventType, event_of};
use super::ids::IdSource;
use super::learn::Model;
use super::profile::{Profile, same_fingerprint};
use super::state::{BehaviorState, EngineState, SavedModel, Track};

/// One ML behavior's model, for `dump --profile` and status commands.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelStatus {
    pub profile: String,
    pub behavior: String,
    pub metric: String,
    pub model: Model,
}

impl Engine {
    /// The state to persist: the runs and alarm of each behavior not in its fresh state, the
    /// object only of those with an alarm (`state.rs`), traffic deltas, models.
    pub fn snapshot(&self) -> EngineState {
        let mut behaviors = Vec::new();
        let models = self.models().into_iter().map(|m| SavedModel {
            model: m.model.into(),
            profile: m.profile,
            behavior: m.behavior,
            metric: m.metric,
        });
        for (p, profile) in self.profiles.iter().enumerate() {
            for (b, behavior) in profile.behaviors.iter().enumerate() {
                let track = &self.tracks[p][b];
                // A fresh track is what restore gives a behavior without saved state.
                if *track == Track::default() {
                    continue;
                }
                behaviors.push(BehaviorState {
                    profile: profile.name.clone(),
                    behavior: behavior.name.clone(),
                    fingerprint: behavior.fingerprint.clone(),
                    json: track.alarm.as_ref().map(|_| behavior.json.clone()),
                    track: track.clone(),
                });
            }
        }
        EngineState {
            last_report_ms: self.last_report_ms,
            behaviors,
            traffic: self.traffic.iter().copied().collect(),
            models: models.collect(),
        }
    }

    /// The model of every ML behavior, in profile and behavior order.
    pub fn models(&self) -> Vec<ModelStatus> {
        let mut out = Vec::new();
        for (p, profile) in self.profiles.iter().enumerate() {
            for (b, behavior) in profile.behaviors.iter().enumerate() {
                if let Some(model) = &self.models[p][b] {
                    out.push(ModelStatus {
                        profile: profile.name.clone(),
                        behavior: behavior.name.clone(),
                        metric: behavior.metric.clone(),
                        model: (**model).clone(),
                    });
                }
            }
        }
        out
    }

    /// An engine for `profiles` that continues `state` (saved by `snapshot`, possibly with
    /// other profiles). Alarms of profiles or behaviors that are gone, or whose fingerprint
    /// (metric, operator, value, threshold, ML config, duration) changed, end with an
    /// `alarm-invalidated` event at `time_ms` (§6.1); unchanged behaviors keep their alarms and
    /// runs, also when only datapoint counts or `suppressAlerts` changed.
    pub fn restore(
        thing: impl Into<String>,
        profiles: Vec<Profile>,
        ids: IdSource,
        state: EngineState,
        time_ms: u64,
    ) -> (Engine, Vec<Event>) {
        let mut engine = Engine::new(thing, profiles, ids);
        engine.last_report_ms = state.last_report_ms;
        engine.traffic = state.traffic.into_iter().collect();
        for saved in state.models {
            engine.restore_model(saved);
        }
        let mut events = Vec::new();
        for saved in state.behaviors {
            let slot = engine.profiles.iter().enumerate().find_map(|(p, profile)| {
                let b = profile.behaviors.iter().position(|b| {
                    profile.name == saved.profile
                        && b.name == saved.behavior
                        && same_fingerprint(&saved.fingerprint, &b.fingerprint)
                        && b.evaluated_rule().is_some()
                })?;
                Some((p, b))
            });
            match (slot, saved.track.alarm) {
                (Some((p, b)), alarm) => {
                    engine.tracks[p][b] = Track {
                        alarm,
                        ..saved.track
                    }
                }
                (None, Some(alarm)) => events.push(event_of(
                    &engine.thing,
                    &saved.profile,
                    &behavior_json(saved.json, &saved.behavior),
                    EventType::AlarmInvalidated,
                    time_ms,
                    None,
                    alarm.violation_id,
                )),
                (None, None) => {}
            }
        }
        (engine, events)
    }

    /// Puts a saved model back into its ML behavior (same profile, behavior and metric); a
    /// damaged one is logged and the behavior learns again from scratch.
    fn restore_model(&mut self, saved: SavedModel) {
        for (p, profile) in self.profiles.iter().enumerate() {
            for (b, behavior) in profile.behaviors.iter().enumerate() {
                let slot = &mut self.models[p][b];
                if !super::engine::is_learned(behavior)
                    || profile.name != saved.profile
                    || behavior.name != saved.behavior
                    || behavior.metric != saved.metric
                {
                    continue;
                }
                match saved.model.into_model() {
                    Ok(m) => *slot = Some(m),
                    Err(e) => tracing::error!(
                        profile = %saved.profile, behavior = %saved.behavior, error = %e,
                        "saved ML model unreadable; it learns again from scratch"
                    ),
                }
                return;
            }
        }
    }

    /// Swaps in a new profile set (SIGHUP), with the invalidations of `restore`.
    pub fn reload(&mut self, profiles: Vec<Profile>, time_ms: u64) -> Vec<Event> {
        let ids = std::mem::replace(&mut self.ids, Box::new(|| 0));
        let thing = std::mem::take(&mut self.thing);
        let (engine, events) = Engine::restore(thing, profiles, ids, self.snapshot(), time_ms);
        *self = engine;
        events
    }
}

/// The behavior object of a saved alarm; a state written without it (by hand) gets one with
/// its name only, so the `alarm-invalidated` event still names it.
fn behavior_json(saved: Option<Arc<serde_json::Value>>, name: &str) -> Arc<serde_json::Value> {
    saved.unwrap_or_else(|| Arc::new(serde_json::json!({ "name": name })))
}

#[cfg(test)]
#[path = "snapshot_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "snapshot_compat_tests.rs"]
mod compat_tests;
