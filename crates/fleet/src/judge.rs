//! One report from payload to stored outcome (issue #9 items 2–4): intake checks, the stored
//! answer on redelivery, evaluation per (thing, profile) with the agent's `detect::Engine`,
//! and the periodic sweep (staleness, monitoring that stopped). Sends nothing; the caller
//! publishes the answer and the events after `Store::apply` returned.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use detect::{Engine, EngineState, Event, IdSource, Profile, STALE_AFTER_MS};
use protocol::Report;

use crate::intake::{self, ReportTopic};
use crate::statistical::{self, Statistical};
use crate::store::{Recorded, Store, StoreError, StoredReport, Write};
use crate::targets::Attachments;

/// What to send for one report.
#[derive(Debug, Clone, PartialEq)]
pub struct Handled {
    pub answer_topic: String,
    pub answer: Vec<u8>,
    pub accepted: bool,
    /// The answer was the stored one (a redelivery); nothing was evaluated.
    pub replayed: bool,
    pub events: Vec<Recorded>,
}

pub struct Judge {
    profiles: BTreeMap<String, Profile>,
    attachments: Attachments,
    /// Registered things and their groups (refreshed from the store by the caller).
    registry: BTreeMap<String, BTreeSet<String>>,
    min_interval_ms: u64,
    /// Shared by every engine this judge builds (one per report and profile).
    ids: Arc<Mutex<IdSource>>,
    statistical: Statistical,
}

impl Judge {
    /// `duration_override_secs`: `[fleet] duration_override_secs` (tests and demos), the
    /// length every `durationSeconds` is evaluated as.
    pub fn new(
        mut profiles: Vec<Profile>,
        attachments: Attachments,
        min_interval_secs: u64,
        duration_override_secs: Option<u64>,
        ids: IdSource,
    ) -> Judge {
        if let Some(secs) = duration_override_secs {
            profiles
                .iter_mut()
                .for_each(|p| statistical::override_durations(p, secs));
        }
        Judge {
            statistical: Statistical::new(&profiles, duration_override_secs),
            profiles: profiles.into_iter().map(|p| (p.name.clone(), p)).collect(),
            attachments,
            registry: BTreeMap::new(),
            min_interval_ms: min_interval_secs.saturating_mul(1000),
            ids: Arc::new(Mutex::new(ids)),
        }
    }

    pub fn set_registry(&mut self, registry: BTreeMap<String, BTreeSet<String>>) {
        self.registry = registry;
    }

    /// An id source for one engine, drawing from the judge's.
    fn ids(&self) -> IdSource {
        let shared = self.ids.clone();
        Box::new(move || {
            let mut next = shared
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            next()
        })
    }

    /// The profiles watching `thing` now.
    fn watching(&self, thing: &str) -> Vec<&Profile> {
        self.attachments
            .for_thing(self.registry.get(thing))
            .iter()
            .filter_map(|name| self.profiles.get(name))
            .collect()
    }

    /// Judges, evaluates and stores one report received at `now_ms`.
    pub fn handle(
        &mut self,
        store: &mut dyn Store,
        topic: &ReportTopic,
        payload: &[u8],
        now_ms: u64,
    ) -> Result<Handled, StoreError> {
        let thing = topic.thing.as_str();
        let reply = |answer: &serde_json::Value, accepted, replayed, events| Handled {
            answer_topic: topic.answer_topic(accepted),
            answer: intake::encode_answer(answer, topic.encoding),
            accepted,
            replayed,
            events,
        };
        let decoded = match intake::structure(topic, payload) {
            Ok(d) => d,
            Err((rejection, id)) => {
                tracing::info!(thing, report_id = ?id, code = rejection.code, reason = %rejection.message, "report rejected");
                let a = intake::answer(thing, id, Err(&rejection), now_ms);
                return Ok(reply(&a, false, false, Vec::new()));
            }
        };
        let report_id = decoded.report.header.report_id;
        if let Some(stored) = store.report(thing, report_id)? {
            tracing::debug!(
                thing,
                report_id,
                "redelivered report: stored answer sent again"
            );
            return Ok(reply(&stored.answer, stored.accepted, true, Vec::new()));
        }
        let last = store
            .thing(thing)?
            .and_then(|t| Some((t.last_report_id?, t.last_report_ms?)));
        let outcome = intake::sequence(report_id, now_ms, last, self.min_interval_ms);
        let answer = intake::answer(thing, Some(report_id), outcome.as_ref().map(|_| ()), now_ms);
        let mut write = Write {
            report: Some(StoredReport {
                thing: thing.to_string(),
                report_id,
                time_ms: now_ms,
                accepted: outcome.is_ok(),
                answer: answer.clone(),
            }),
            ..Write::default()
        };
        match &outcome {
            Ok(()) => self.evaluate(store, thing, &decoded.report, now_ms, &mut write)?,
            Err(r) => {
                tracing::info!(thing, report_id, code = r.code, reason = %r.message, "report rejected")
            }
        }
        store.apply(&write)?;
        Ok(reply(&answer, outcome.is_ok(), false, write.events))
    }

    fn evaluate(
        &mut self,
        store: &mut dyn Store,
        thing: &str,
        report: &Report,
        now_ms: u64,
        write: &mut Write,
    ) -> Result<(), StoreError> {
        let profiles: Vec<Profile> = self.watching(thing).into_iter().cloned().collect();
        for profile in profiles {
            let name = profile.name.clone();
            write
                .samples
                .extend(self.statistical.samples(&name, thing, report, now_ms));
            let profile = self.statistical.resolve(store, profile, now_ms)?;
            let state = store.state(thing, &name)?;
            let (mut engine, mut events) = self.engine(thing, profile, state, now_ms);
            events.extend(engine.evaluate(report, now_ms));
            self.finish(thing, &name, engine, events, write);
        }
        Ok(())
    }

    fn engine(
        &mut self,
        thing: &str,
        profile: Profile,
        state: Option<EngineState>,
        now_ms: u64,
    ) -> (Engine, Vec<Event>) {
        let ids = self.ids();
        match state {
            Some(s) => Engine::restore(thing, vec![profile], ids, s, now_ms),
            None => (Engine::new(thing, vec![profile], ids), Vec::new()),
        }
    }

    /// Records the engine's state and events into `write` and takes its id source back.
    fn finish(
        &self,
        thing: &str,
        profile: &str,
        engine: Engine,
        events: Vec<Event>,
        write: &mut Write,
    ) {
        let snapshot = engine.snapshot();
        for b in &snapshot.behaviors {
            if let Some(a) = &b.track.alarm {
                write
                    .touched
                    .push((a.violation_id.clone(), a.last_violation_ms));
            }
        }
        for event in events {
            tracing::info!(
                thing,
                profile,
                behavior = event.behavior_name(),
                violation_id = %event.violation_id,
                event = event.violation_event_type.name(),
                "violation event"
            );
            let suppressed = event.suppressed();
            write.events.push(Recorded { event, suppressed });
        }
        write
            .states
            .push((thing.to_string(), profile.to_string(), Some(snapshot)));
    }

    /// The periodic sweep at `now_ms`: a (thing, profile) no longer watched (profile gone or
    /// detached, thing left the group) invalidates its alarms and drops its state; a thing
    /// silent for more than 2 days invalidates its alarms (detect-rules §6.1); a changed
    /// profile invalidates the alarms of changed behaviors (the engine's restore).
    pub fn sweep(&mut self, store: &mut dyn Store, now_ms: u64) -> Result<Write, StoreError> {
        let mut write = Write::default();
        for (thing, profile, state) in store.states()? {
            let watched = self
                .watching(&thing)
                .into_iter()
                .find(|p| p.name == profile)
                .cloned();
            let silent_since = state
                .last_report_ms
                .filter(|last| now_ms.saturating_sub(*last) > STALE_AFTER_MS);
            let has_alarm = state.behaviors.iter().any(|b| b.track.alarm.is_some());
            match watched {
                None => {
                    let ids = self.ids();
                    let (_, events) = Engine::restore(&*thing, Vec::new(), ids, state, now_ms);
                    for event in events {
                        let suppressed = event.suppressed();
                        write.events.push(Recorded { event, suppressed });
                    }
                    write.states.push((thing, profile, None));
                }
                Some(p) => {
                    let p = self.statistical.resolve(store, p, now_ms)?;
                    let before = state.clone();
                    let (mut engine, mut events) = self.engine(&thing, p, Some(state), now_ms);
                    if let (Some(last), true) = (silent_since, has_alarm) {
                        events.extend(engine.expire(last + STALE_AFTER_MS));
                    }
                    if events.is_empty() && engine.snapshot() == before {
                        continue;
                    }
                    self.finish(&thing, &profile, engine, events, &mut write);
                }
            }
        }
        if !write.events.is_empty() || !write.states.is_empty() {
            store.apply(&write)?;
        }
        Ok(write)
    }
}

#[cfg(test)]
#[path = "judge_tests.rs"]
mod tests;
