//! The alarm state machine of detect-rules §4.7 for ONE thing and N profiles: observations
//! judged by each behavior's criterion (with the §4.4 traffic window), one event per
//! transition, stable violation ids, staleness (§4.6). Persisting and reloading: `snapshot.rs`;
//! the one-sample check: `check.rs`. Time and ids come in from the caller; no I/O.

use std::borrow::Cow;
use std::cell::OnceCell;
use std::collections::VecDeque;

use super::check::{BehaviorCheck, check};
use super::criteria::{Criterion, Learned};
use super::event::{Event, EventType, event_of, violation_id};
use super::learn::{Finding, Model};
use super::metrics::{self, Datapoint, Kind, MetricRef};
use super::observation::Observation;
use super::profile::{Behavior, Profile, Rule};
use super::state::{Alarm, Track, TrafficEntry};
use protocol::NetworkStats;

// Older paths of these (`detect::engine::...`), kept for callers outside detect.
pub use super::ids::{IdSource, seeded_ids};
pub use super::state::BehaviorState;

/// No accepted report for more than 2 days while an alarm is active: `alarm-invalidated` (§4.6).
pub const STALE_AFTER_MS: u64 = 48 * 3600 * 1000;

/// Traffic history kept for `durationSeconds` windows: the longest window (3600 s), at most
/// this many samples (one per second over the longest window); older entries are dropped.
const TRAFFIC_MAX_AGE_MS: u64 = 3600 * 1000;
const TRAFFIC_MAX_ENTRIES: usize = 3600;

pub struct Engine {
    pub(super) thing: String,
    pub(super) profiles: Vec<Profile>,
    /// Parallel to `profiles[i].behaviors`.
    pub(super) tracks: Vec<Vec<Track>>,
    /// Parallel to `tracks`: the learned model of each ML behavior (docs/ml.md).
    pub(super) models: Vec<Vec<Option<Box<Model>>>>,
    pub(super) traffic: VecDeque<TrafficEntry>,
    pub(super) last_report_ms: Option<u64>,
    pub(super) ids: IdSource,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("thing", &self.thing)
            .field("profiles", &self.profiles.len())
            .field("active_alarms", &self.active_alarms())
            .finish()
    }
}

impl Engine {
    pub fn new(thing: impl Into<String>, profiles: Vec<Profile>, ids: IdSource) -> Self {
        let tracks = profiles
            .iter()
            .map(|p| vec![Track::default(); p.behaviors.len()])
            .collect();
        let models = profiles
            .iter()
            .map(|p| p.behaviors.iter().map(new_model).collect())
            .collect();
        Engine {
            thing: thing.into(),
            profiles,
            tracks,
            models,
            traffic: VecDeque::new(),
            last_report_ms: None,
            ids,
        }
    }

    pub fn thing(&self) -> &str {
        &self.thing
    }

    pub fn profiles(&self) -> &[Profile] {
        &self.profiles
    }

    /// Number of alarms currently active, over all profiles.
    pub fn active_alarms(&self) -> usize {
        self.tracks
            .iter()
            .flatten()
            .filter(|t| t.alarm.is_some())
            .count()
    }

    /// Evaluates one observation (for a device: the full, uncut report) at `time_ms`. Events
    /// come in profile order, then behavior order (§4.10). A gap of more than `STALE_AFTER_MS`
    /// since the previous observation first invalidates active alarms.
    pub fn evaluate<O: Observation + ?Sized>(
        &mut self,
        observation: &O,
        time_ms: u64,
    ) -> Vec<Event> {
        let mut events = match self.last_report_ms {
            Some(last) if time_ms.saturating_sub(last) > STALE_AFTER_MS => {
                self.expire(last + STALE_AFTER_MS)
            }
            _ => Vec::new(),
        };
        self.last_report_ms = Some(time_ms);
        if let Some(stats) = observation.traffic() {
            self.remember_traffic(time_ms, stats);
        }
        let report_id = observation.id();
        let extracted = Extracted::new(observation);
        for (p, profile) in self.profiles.iter().enumerate() {
            for (b, behavior) in profile.behaviors.iter().enumerate() {
                let Some(rule) = behavior.evaluated_rule() else {
                    continue;
                };
                let Some(dp) = extracted.datapoint(rule, time_ms, &self.traffic) else {
                    continue; // no datapoint: runs stay as they are (§4.6)
                };
                let (violating, finding) = match &rule.criterion {
                    Criterion::Learned(l) => {
                        // A cloud-side model is made at its first datapoint (the fleet's).
                        let model = self.models[p][b].get_or_insert_with(Box::default);
                        let found = learned(model, l, &dp, time_ms);
                        (found.as_ref().is_some_and(|f| f.level >= l.level), found)
                    }
                    c => (c.judge(&dp, 1).violating, None),
                };
                let track = &mut self.tracks[p][b];
                if let Some((kind, id)) = step(track, rule, violating, time_ms, &mut self.ids) {
                    let cause = Some((&*dp, report_id));
                    let mut e = event(&self.thing, profile, behavior, kind, time_ms, cause, id);
                    if kind == EventType::InAlarm {
                        e.explanation = finding.map(|f| f.explain(&behavior.metric));
                    }
                    events.push(e);
                }
            }
        }
        events
    }

    /// Invalidates every active alarm at `time_ms` (the thing went silent, §4.6). Callers with
    /// a clock (the fleet service) call it when `STALE_AFTER_MS` has passed without a report.
    pub fn expire(&mut self, time_ms: u64) -> Vec<Event> {
        let mut events = Vec::new();
        for (p, profile) in self.profiles.iter().enumerate() {
            for (b, behavior) in profile.behaviors.iter().enumerate() {
                let track = &mut self.tracks[p][b];
                if let Some(alarm) = track.alarm.take() {
                    *track = Track::default();
                    let (kind, id) = (EventType::AlarmInvalidated, alarm.violation_id);
                    let e = event(&self.thing, profile, behavior, kind, time_ms, None, id);
                    events.push(e);
                }
            }
        }
        events
    }

    /// The one-sample check of `dump --profile` over this engine's profiles (no state).
    pub fn check<O: Observation + ?Sized>(&self, observation: &O) -> Vec<BehaviorCheck> {
        check(&self.profiles, observation)
    }

    fn remember_traffic(&mut self, time_ms: u64, stats: NetworkStats) {
        self.traffic.push_back(TrafficEntry { time_ms, stats });
        let oldest = time_ms.saturating_sub(TRAFFIC_MAX_AGE_MS);
        while self.traffic.front().is_some_and(|e| e.time_ms <= oldest) {
            self.traffic.pop_front();
        }
        if self.traffic.len() > TRAFFIC_MAX_ENTRIES {
            let dropped = self.traffic.len() - TRAFFIC_MAX_ENTRIES;
            self.traffic.drain(..dropped);
            tracing::warn!(
                dropped,
                kept = TRAFFIC_MAX_ENTRIES,
                "traffic history full: reports come faster than one per second; oldest dropped"
            );
        }
    }
}

/// A fresh model for an ML behavior on a device-side or custom metric (docs/ml.md), `None`
/// for the others; a cloud-side one gets its model at its first datapoint, so the device,
/// which never has one, keeps none.
pub(super) fn new_model(behavior: &Behavior) -> Option<Box<Model>> {
    let rule = behavior.rule.as_ref()?;
    let cloud = matches!(rule.metric, MetricRef::Cloud(_));
    (is_learned(behavior) && !cloud).then(Box::default)
}

/// True for an ML behavior (a `Learned` rule).
pub(super) fn is_learned(behavior: &Behavior) -> bool {
    behavior
        .rule
        .as_ref()
        .is_some_and(|r| matches!(r.criterion, Criterion::Learned(_)))
}

/// An ML behavior's datapoint through its model: learned, and what it finds (docs/ml.md).
fn learned(model: &mut Model, l: &Learned, dp: &Datapoint, time_ms: u64) -> Option<Finding> {
    model.observe_in(time_ms, Learned::value(dp)?, l.unit, l.group.as_ref())
}

/// The §4.7 machine for one datapoint. Returns the transition, with the episode's id.
fn step(
    track: &mut Track,
    rule: &Rule,
    violating: bool,
    time_ms: u64,
    ids: &mut IdSource,
) -> Option<(EventType, String)> {
    if violating {
        track.good_run = 0;
        match &mut track.alarm {
            Some(alarm) => {
                alarm.last_violation_ms = time_ms;
                None
            }
            None => {
                track.bad_run += 1;
                if track.bad_run < rule.to_alarm {
                    return None;
                }
                track.bad_run = 0;
                let id = violation_id(ids());
                track.alarm = Some(Alarm {
                    violation_id: id.clone(),
                    start_ms: time_ms,
                    last_violation_ms: time_ms,
                });
                Some((EventType::InAlarm, id))
            }
        }
    } else {
        track.bad_run = 0;
        track.alarm.as_ref()?;
        track.good_run += 1;
        if track.good_run < rule.to_clear {
            return None;
        }
        track.good_run = 0;
        let alarm = track.alarm.take()?;
        Some((EventType::AlarmCleared, alarm.violation_id))
    }
}

/// The device-side datapoints of one observation, each extracted at most once (20 behaviors
/// on the destination addresses of 10 000 connections share one sorted list).
struct Extracted<'o, O: ?Sized> {
    observation: &'o O,
    aws: [OnceCell<Option<Datapoint>>; metrics::TABLE.len()],
}

impl<'o, O: Observation + ?Sized> Extracted<'o, O> {
    fn new(observation: &'o O) -> Self {
        Extracted {
            observation,
            aws: Default::default(),
        }
    }

    /// The datapoint of `rule`; traffic metrics with `durationSeconds` sum the deltas of the
    /// observations in `(t − d, t]` (§4.4), the current one included (it must carry traffic,
    /// else there is no datapoint).
    fn datapoint(
        &self,
        rule: &Rule,
        time_ms: u64,
        traffic: &VecDeque<TrafficEntry>,
    ) -> Option<Cow<'_, Datapoint>> {
        let MetricRef::Aws(spec) = &rule.metric else {
            return self.observation.datapoint(&rule.metric).map(Cow::Owned);
        };
        let cell = &self.aws[spec.source as usize];
        let dp = cell
            .get_or_init(|| self.observation.datapoint(&rule.metric))
            .as_ref()?;
        match rule.duration_secs {
            Some(d) if spec.kind == Kind::Traffic => {
                let from = time_ms.saturating_sub(d * 1000);
                let sum = traffic
                    .iter()
                    .filter(|e| e.time_ms > from && e.time_ms <= time_ms)
                    .filter_map(|e| metrics::traffic(spec.source, &e.stats))
                    .fold(0u64, u64::saturating_add);
                Some(Cow::Owned(Datapoint::Count(sum)))
            }
            _ => Some(Cow::Borrowed(dp)),
        }
    }
}

/// One event of a loaded behavior; `cause` is the datapoint and its report id (absent on
/// `alarm-invalidated`).
fn event(
    thing: &str,
    profile: &Profile,
    behavior: &Behavior,
    kind: EventType,
    time_ms: u64,
    cause: Option<(&Datapoint, u64)>,
    violation_id: String,
) -> Event {
    let json = &behavior.json;
    event_of(
        thing,
        &profile.name,
        json,
        kind,
        time_ms,
        cause,
        violation_id,
    )
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
