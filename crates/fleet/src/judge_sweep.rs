//! The judge's periodic sweep: staleness (detect-rules §6.1) and monitoring that stopped,
//! as load (every record with state) → `sweep_one` (pure) → one commit of the changed records.

use std::collections::BTreeMap;

use detect::{Engine, Profile, STALE_AFTER_MS};

use super::{Decision, Judge};
use crate::store::{Commit, Record, Recorded, Store, StoreError};

impl Judge {
    /// The periodic sweep at `now_ms`: a (thing, profile) no longer watched (profile gone or
    /// detached, thing left the group) invalidates its alarms and drops its state; a thing
    /// silent for more than 2 days invalidates its alarms (detect-rules §6.1); a changed
    /// profile invalidates the alarms of changed behaviors (the engine's restore). Loads every
    /// record with state, decides each (`sweep_one`), commits the changed ones together;
    /// calibrates the ML groups from the same records when due (`calibrate_groups`).
    pub fn sweep(&mut self, store: &mut dyn Store, now_ms: u64) -> Result<Swept, StoreError> {
        let mut commits = Vec::new();
        let records = store.with_state()?;
        self.calibrate_groups(&records, now_ms);
        for (thing, loaded) in records {
            // Cluster mode: another instance sweeps the things it owns.
            if !self.in_scope(&thing) {
                continue;
            }
            let mut watched = BTreeMap::new();
            for name in loaded.record.states.keys() {
                let p = self
                    .watching(&thing)
                    .into_iter()
                    .find(|p| &p.name == name)
                    .cloned();
                let p = match p {
                    Some(p) => Some(self.statistical.resolve(store, p, now_ms)?),
                    None => None,
                };
                watched.insert(name.clone(), p);
            }
            if let Some(d) = self.sweep_one(&thing, loaded.record, watched, now_ms) {
                commits.push(Commit {
                    thing,
                    expected: loaded.version,
                    record: d.record,
                    events: d.events,
                    touched: d.touched,
                    ..Commit::default()
                });
            }
        }
        let commits = self.commit_owned(store, commits)?;
        let events = commits.into_iter().flat_map(|c| c.events).collect();
        Ok(Swept { events })
    }

    /// The sweep of one record (pure): `watched` maps each profile it has state for to the
    /// profile watching now (resolved), or `None`. `None` when nothing changes.
    pub fn sweep_one(
        &self,
        thing: &str,
        record: Record,
        watched: BTreeMap<String, Option<Profile>>,
        now_ms: u64,
    ) -> Option<Decision> {
        let mut d = Decision {
            record,
            ..Decision::default()
        };
        let mut changed = false;
        for (profile, watching) in watched {
            let Some(state) = d.record.states.remove(&profile) else {
                continue;
            };
            let silent_since = state
                .last_report_ms
                .filter(|last| now_ms.saturating_sub(*last) > STALE_AFTER_MS);
            let has_alarm = state.behaviors.iter().any(|b| b.track.alarm.is_some());
            match watching {
                None => {
                    let (_, events) = Engine::restore(thing, Vec::new(), self.ids(), state, now_ms);
                    for event in events {
                        let suppressed = event.suppressed();
                        d.events.push(Recorded { event, suppressed });
                    }
                    changed = true;
                }
                Some(p) => {
                    let before = state.clone();
                    let (mut engine, mut events) = self.engine(thing, p, Some(state), now_ms);
                    if let (Some(last), true) = (silent_since, has_alarm) {
                        events.extend(engine.expire(last + STALE_AFTER_MS));
                    }
                    if events.is_empty() && engine.snapshot() == before {
                        d.record.states.insert(profile, before);
                        continue;
                    }
                    changed = true;
                    self.finish(thing, &profile, engine, events, &mut d);
                }
            }
        }
        changed.then_some(d)
    }
}

/// What a sweep recorded.
#[derive(Debug, Clone, Default)]
pub struct Swept {
    pub events: Vec<Recorded>,
}
