//! Carrying the engine across restarts and reloads (detect-rules §6.1): `Engine::snapshot`,
//! and `Engine::restore` / `reload`, which invalidate the alarms of removed or changed
//! behaviors. The saved shape: `state.rs`. Does not write files (the daemon's state module does).

use super::engine::Engine;
use super::event::{Event, EventType, event_of};
use super::ids::IdSource;
use super::profile::Profile;
use super::state::{BehaviorState, EngineState, Track};

impl Engine {
    /// The state to persist.
    pub fn snapshot(&self) -> EngineState {
        let mut behaviors = Vec::new();
        for (p, profile) in self.profiles.iter().enumerate() {
            for (b, behavior) in profile.behaviors.iter().enumerate() {
                behaviors.push(BehaviorState {
                    profile: profile.name.clone(),
                    behavior: behavior.name.clone(),
                    fingerprint: behavior.fingerprint.clone(),
                    json: behavior.json.clone(),
                    track: self.tracks[p][b].clone(),
                });
            }
        }
        EngineState {
            last_report_ms: self.last_report_ms,
            behaviors,
            traffic: self.traffic.iter().copied().collect(),
        }
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
        let mut events = Vec::new();
        for saved in state.behaviors {
            let slot = engine.profiles.iter().enumerate().find_map(|(p, profile)| {
                let b = profile.behaviors.iter().position(|b| {
                    profile.name == saved.profile
                        && b.name == saved.behavior
                        && b.fingerprint == saved.fingerprint
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
                    &saved.json,
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

    /// Swaps in a new profile set (SIGHUP), with the invalidations of `restore`.
    pub fn reload(&mut self, profiles: Vec<Profile>, time_ms: u64) -> Vec<Event> {
        let ids = std::mem::replace(&mut self.ids, Box::new(|| 0));
        let thing = std::mem::take(&mut self.thing);
        let (engine, events) = Engine::restore(thing, profiles, ids, self.snapshot(), time_ms);
        *self = engine;
        events
    }
}
