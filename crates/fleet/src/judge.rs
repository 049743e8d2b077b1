//! One report from payload to stored outcome (issue #9 items 2–4): intake checks, the stored
//! answer on redelivery, evaluation per (thing, profile) with the agent's `detect::Engine`,
//! and the periodic sweep (staleness, monitoring that stopped). Each is load → decide (pure,
//! no store) → commit; sends nothing: the caller publishes after the store's `sync`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use detect::{Engine, EngineState, Event, IdSource, Profile};
use protocol::Report;

use crate::intake::{self, ReportTopic};
use crate::statistical::{self, Statistical};
use crate::store::{
    Commit, LastRejection, Record, Recorded, Sample, Samples, Store, StoreError, StoredReport,
};
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
    /// A rejected report's error code (the answer's `statusDetails.ErrorCode`).
    pub rejected: Option<&'static str>,
}

/// Which things the sweep looks at (cluster mode: the owned ones).
pub type Scope = Box<dyn Fn(&str) -> bool + Send>;

pub struct Judge {
    profiles: BTreeMap<String, Profile>,
    attachments: Attachments,
    /// Registered things and their groups (refreshed from the store by the caller).
    registry: BTreeMap<String, BTreeSet<String>>,
    min_interval_ms: u64,
    /// Shared by every engine this judge builds (one per report and profile).
    ids: Arc<Mutex<IdSource>>,
    statistical: Statistical,
    /// Cloud-side windows (issue #18), when a broker source feeds them.
    cloud: Option<cloud::CloudSetup>,
    /// The last bucket end `close_windows` scanned for (records are read once per bucket).
    cloud_due: u64,
    /// When the ML groups are calibrated next (`calibrate_groups`, from the sweep).
    groups_due: u64,
    /// Cluster mode: the things this instance sweeps (those it owns); `None`: every thing.
    scope: Option<Scope>,
    /// Cluster mode: this instance's name, which keys its own broker-source cursors.
    instance: Option<String>,
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
            cloud: None,
            cloud_due: 0,
            groups_due: 0,
            scope: None,
            instance: None,
        }
    }

    /// Cluster mode (instance `instance`): the sweep, closing cloud-side windows and broker
    /// events look only at things `scope` accepts (the owned ones).
    pub fn set_scope(&mut self, instance: &str, scope: Scope) {
        self.scope = Some(scope);
        self.instance = Some(instance.to_string());
    }

    /// Commits `commits` and returns those written. Single-node: all together or none, as
    /// `ThingRecords::commit`. Cluster mode: one by one, and a thing this instance no longer
    /// owns (out of scope, or its commit refused with `Conflict` because the partition moved
    /// meanwhile) is left to its new owner, logged, not written: periodic work must not stop
    /// an instance because a partition changed hands under it.
    pub fn commit_owned(
        &self,
        store: &mut dyn Store,
        commits: Vec<Commit>,
    ) -> Result<Vec<Commit>, StoreError> {
        if self.scope.is_none() {
            if !commits.is_empty() {
                store.commit(&commits)?;
            }
            return Ok(commits);
        }
        let mut written = Vec::with_capacity(commits.len());
        for c in commits {
            if !self.in_scope(&c.thing) {
                tracing::info!(thing = %c.thing, "thing moved to another instance: its change is left to the new owner");
                continue;
            }
            match store.commit(std::slice::from_ref(&c)) {
                Ok(()) => written.push(c),
                Err(e @ StoreError::Conflict { .. }) => {
                    tracing::warn!(thing = %c.thing, error = %e, "commit refused (the thing moved or its record changed): left to its owner");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(written)
    }

    fn in_scope(&self, thing: &str) -> bool {
        self.scope.as_ref().is_none_or(|owns| owns(thing))
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

    /// Judges and evaluates one report received at `now_ms`: load (the stored answer of a
    /// redelivery, else the thing's record and the resolved profiles) → `decide` → commit.
    /// A redelivery is the same bytes under an id whose report was accepted; a different
    /// report under that id, or a rejected report sent again, is judged like any other.
    /// The caller syncs the store before sending anything.
    pub fn handle(
        &mut self,
        store: &mut dyn Store,
        topic: &ReportTopic,
        payload: &[u8],
        now_ms: u64,
    ) -> Result<Handled, StoreError> {
        let thing = topic.thing.as_str();
        let reply =
            |answer: &serde_json::Value, rejected: Option<&'static str>, replayed, events| {
                let accepted = rejected.is_none();
                Handled {
                    answer_topic: topic.answer_topic(accepted),
                    answer: intake::encode_answer(answer, topic.encoding),
                    accepted,
                    replayed,
                    events,
                    rejected,
                }
            };
        let decoded = match intake::structure(topic, payload) {
            Ok(d) => d,
            Err((rejection, id)) => {
                tracing::info!(thing, report_id = ?id, code = rejection.code, reason = %rejection.message, "report rejected");
                // Not for a name AWS refuses (it may hold control characters): no thing.
                if protocol::identity::check(thing).is_ok() {
                    let last = LastRejection::new(now_ms, rejection.code, &rejection.message);
                    store.note_rejection(thing, &last)?;
                }
                let a = intake::answer(thing, id, Err(&rejection), now_ms);
                return Ok(reply(&a, Some(rejection.code), false, Vec::new()));
            }
        };
        let report_id = decoded.report.header.report_id;
        let digest = intake::digest(payload);
        if let Some(stored) = store.answer(thing, report_id)? {
            // Answers stored before digests were kept (no digest) count as the same bytes.
            let same = stored.digest.is_none_or(|d| d == digest);
            if same && stored.accepted {
                tracing::debug!(
                    thing,
                    report_id,
                    "redelivered report: stored answer sent again"
                );
                return Ok(reply(&stored.answer, None, true, Vec::new()));
            }
            if same {
                // A rejection changed nothing: the same report is judged again.
                tracing::debug!(thing, report_id, "rejected report sent again: judged again");
            } else {
                tracing::info!(
                    thing,
                    report_id,
                    "report_id reused with different bytes: not a redelivery, judged by the sequence rule"
                );
            }
        }
        let loaded = store.load(thing)?;
        let last = loaded.record.last_report;
        let outcome = intake::sequence(report_id, now_ms, last, self.min_interval_ms);
        let answer = intake::answer(thing, Some(report_id), outcome.as_ref().map(|_| ()), now_ms);
        let mut commit = Commit {
            thing: thing.to_string(),
            answers: vec![StoredReport {
                thing: thing.to_string(),
                report_id,
                time_ms: now_ms,
                accepted: outcome.is_ok(),
                answer: answer.clone(),
                digest: Some(digest),
            }],
            ..Commit::default()
        };
        match &outcome {
            Ok(()) => {
                let profiles = self.resolve(store, thing, now_ms)?;
                let d = self.decide(thing, loaded.record, &decoded.report, now_ms, profiles);
                (commit.record, commit.events, commit.touched, commit.samples) =
                    (d.record, d.events, d.touched, d.samples);
                commit.history = crate::history::device(&decoded.report, now_ms)
                    .into_iter()
                    .collect();
            }
            Err(r) => {
                tracing::info!(thing, report_id, code = r.code, reason = %r.message, "report rejected");
                commit.record = loaded.record;
                store.note_rejection(thing, &LastRejection::new(now_ms, r.code, &r.message))?;
            }
        }
        commit.expected = loaded.version;
        let events = commit.events.clone();
        store.commit(std::slice::from_ref(&commit))?;
        Ok(reply(
            &answer,
            outcome.as_ref().err().map(|r| r.code),
            false,
            events,
        ))
    }

    /// The profiles watching `thing`, statistical thresholds resolved (reads populations).
    fn resolve(
        &mut self,
        samples: &mut dyn Samples,
        thing: &str,
        now_ms: u64,
    ) -> Result<Vec<Profile>, StoreError> {
        let profiles: Vec<Profile> = self.watching(thing).into_iter().cloned().collect();
        profiles
            .into_iter()
            .map(|p| self.statistical.resolve(samples, p, now_ms))
            .collect()
    }

    /// What one accepted report does to a thing (pure: no store): its new record (last
    /// report, engine state of each watching profile), events, active alarms and samples.
    pub fn decide(
        &self,
        thing: &str,
        record: Record,
        report: &Report,
        now_ms: u64,
        profiles: Vec<Profile>,
    ) -> Decision {
        let mut d = Decision {
            record,
            ..Decision::default()
        };
        d.record.last_report = Some((report.header.report_id, now_ms));
        for profile in profiles {
            let name = profile.name.clone();
            d.samples
                .extend(self.statistical.samples(&name, thing, report, now_ms));
            let state = d.record.states.remove(&name);
            let (mut engine, mut events) = self.engine(thing, profile, state, now_ms);
            events.extend(engine.evaluate(report, now_ms));
            self.finish(thing, &name, engine, events, &mut d);
        }
        d
    }

    fn engine(
        &self,
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

    /// Records the engine's state, active alarms and events into `d`.
    fn finish(
        &self,
        thing: &str,
        profile: &str,
        engine: Engine,
        events: Vec<Event>,
        d: &mut Decision,
    ) {
        let snapshot = engine.snapshot();
        for b in &snapshot.behaviors {
            if let Some(a) = &b.track.alarm {
                d.touched
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
            d.events.push(Recorded { event, suppressed });
        }
        d.record.states.insert(profile.to_string(), snapshot);
    }
}

/// One step's effect on a thing, as `decide` and `sweep_one` compute it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decision {
    pub record: Record,
    pub events: Vec<Recorded>,
    /// (violation id, lastViolationTime) of alarms still active.
    pub touched: Vec<(String, u64)>,
    pub samples: Vec<Sample>,
}

#[path = "judge_sweep.rs"]
mod sweep;

#[path = "judge_groups.rs"]
mod groups;

#[path = "judge_cloud.rs"]
pub mod cloud;

#[cfg(test)]
#[path = "judge_cloud_tests.rs"]
mod cloud_tests;

#[cfg(test)]
#[path = "judge_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "judge_fuzz.rs"]
mod fuzz;
