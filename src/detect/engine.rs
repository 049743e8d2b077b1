//! The alarm state machine of detect-rules §4.7 for ONE thing and N profiles: datapoints
//! (with the §4.4 traffic window), one event per transition, stable violation ids, a serde
//! snapshot, restore against a changed profile set (§6.1), staleness (§4.6) and the one-sample
//! check for `dump --profile`. Time and ids come in from the caller; no I/O.

use std::borrow::Cow;
use std::cell::OnceCell;
use std::collections::VecDeque;

use super::event::{Event, EventType, MetricValue, violation_id};
use super::metrics::{self, Datapoint, Kind, MetricRef};
use super::operators::judge;
use super::profile::{Behavior, Profile, Rule};
use crate::report::{NetworkStats, Report};

/// Source of violation ids: 128 random bits per alarm episode (§6.2). The daemon passes a
/// random source; tests pass a counter.
pub type IdSource = Box<dyn FnMut() -> u128 + Send>;

/// A deterministic id source (splitmix64, two draws per id) for a seed: `evaluate` uses a
/// fixed seed so its output can be diffed; the daemon seeds it from the kernel's randomness.
pub fn seeded_ids(seed: u64) -> IdSource {
    let mut state = seed;
    let mut next = move || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    Box::new(move || (u128::from(next()) << 64) | u128::from(next()))
}

/// No accepted report for more than 2 days while an alarm is active: `alarm-invalidated` (§4.6).
pub const STALE_AFTER_MS: u64 = 48 * 3600 * 1000;

/// Traffic history kept for `durationSeconds` windows: the longest window (3600 s), at most
/// this many samples (one per second over the longest window); older entries are dropped.
const TRAFFIC_MAX_AGE_MS: u64 = 3600 * 1000;
const TRAFFIC_MAX_ENTRIES: usize = 3600;

/// The state of one (profile, behavior).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Track {
    pub bad_run: u32,
    pub good_run: u32,
    pub alarm: Option<Alarm>,
}

/// An active alarm (the ActiveViolation of §6.3).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Alarm {
    pub violation_id: String,
    pub start_ms: u64,
    /// `lastViolationTime`. The value is not kept: it may be 10 000 addresses, persisted
    /// every cycle.
    pub last_violation_ms: u64,
}

/// One report's traffic deltas, for windowed sums.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TrafficEntry {
    pub time_ms: u64,
    pub stats: NetworkStats,
}

/// A saved (profile, behavior) state with what it evaluated.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BehaviorState {
    pub profile: String,
    pub behavior: String,
    pub fingerprint: String,
    /// The behavior object, for the `alarm-invalidated` event if it is gone on restore.
    pub json: serde_json::Value,
    #[serde(flatten)]
    pub track: Track,
}

/// Everything the engine must keep across restarts (the daemon persists it as JSON).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EngineState {
    pub last_report_ms: Option<u64>,
    pub behaviors: Vec<BehaviorState>,
    pub traffic: Vec<TrafficEntry>,
}

pub struct Engine {
    thing: String,
    profiles: Vec<Profile>,
    /// Parallel to `profiles[i].behaviors`.
    tracks: Vec<Vec<Track>>,
    traffic: VecDeque<TrafficEntry>,
    last_report_ms: Option<u64>,
    ids: IdSource,
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
        Engine {
            thing: thing.into(),
            profiles,
            tracks,
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

    /// Evaluates one report (the full, uncut sample) as a datapoint at `time_ms`. Events come
    /// in profile order, then behavior order (§4.10). A gap of more than `STALE_AFTER_MS` since
    /// the previous report first invalidates active alarms.
    pub fn evaluate(&mut self, report: &Report, time_ms: u64) -> Vec<Event> {
        let mut events = match self.last_report_ms {
            Some(last) if time_ms.saturating_sub(last) > STALE_AFTER_MS => {
                self.expire(last + STALE_AFTER_MS)
            }
            _ => Vec::new(),
        };
        self.last_report_ms = Some(time_ms);
        if let Some(stats) = report.metrics.network_stats {
            self.remember_traffic(time_ms, stats);
        }
        let report_id = report.header.report_id;
        let extracted = Extracted::new(report);
        for (p, profile) in self.profiles.iter().enumerate() {
            for (b, behavior) in profile.behaviors.iter().enumerate() {
                let Some(rule) = &behavior.rule else { continue };
                let Some(dp) = extracted.datapoint(rule, time_ms, &self.traffic) else {
                    continue; // no datapoint: runs stay as they are (§4.6)
                };
                let violating = judge(rule.operator, &rule.reference, &dp, 1).violating;
                let track = &mut self.tracks[p][b];
                if let Some((kind, id)) = step(track, rule, violating, time_ms, &mut self.ids) {
                    let cause = Some((&*dp, report_id));
                    events.push(event(
                        &self.thing,
                        profile,
                        behavior,
                        kind,
                        time_ms,
                        cause,
                        id,
                    ));
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
                    let kind = EventType::AlarmInvalidated;
                    let id = alarm.violation_id;
                    events.push(event(
                        &self.thing,
                        profile,
                        behavior,
                        kind,
                        time_ms,
                        None,
                        id,
                    ));
                }
            }
        }
        events
    }

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
                        && b.rule.is_some()
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
                (None, Some(alarm)) => events.push(Event {
                    violation_event_time: time_ms,
                    thing_name: engine.thing.clone(),
                    security_profile_name: saved.profile,
                    behavior: saved.json,
                    violation_event_type: EventType::AlarmInvalidated,
                    metric_value: None,
                    violation_id: alarm.violation_id,
                    verification_state: VERIFICATION_STATE.to_string(),
                    report_id: None,
                }),
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

    /// The one-sample check of `dump --profile` over this engine's profiles (no state).
    pub fn check(&self, report: &Report) -> Vec<BehaviorCheck> {
        check(&self.profiles, report)
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

/// "UNKNOWN": the default verification state of every alarm (§6.4).
const VERIFICATION_STATE: &str = "UNKNOWN";

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

/// The device-side datapoints of one report, each extracted at most once (20 behaviors on
/// the destination addresses of 10 000 connections share one sorted list).
struct Extracted<'r> {
    report: &'r Report,
    aws: [OnceCell<Option<Datapoint>>; metrics::TABLE.len()],
}

impl<'r> Extracted<'r> {
    fn new(report: &'r Report) -> Self {
        Extracted {
            report,
            aws: Default::default(),
        }
    }

    /// The datapoint of `rule`; traffic metrics with `durationSeconds` sum the deltas of the
    /// reports in `(t − d, t]` (§4.4), the current report included (it must carry
    /// network_stats, else there is no datapoint).
    fn datapoint(
        &self,
        rule: &Rule,
        time_ms: u64,
        traffic: &VecDeque<TrafficEntry>,
    ) -> Option<Cow<'_, Datapoint>> {
        let MetricRef::Aws(spec) = &rule.metric else {
            return metrics::extract(&rule.metric, self.report).map(Cow::Owned);
        };
        let cell = &self.aws[spec.source as usize];
        let dp = cell
            .get_or_init(|| metrics::extract(&rule.metric, self.report))
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

fn event(
    thing: &str,
    profile: &Profile,
    behavior: &Behavior,
    kind: EventType,
    time_ms: u64,
    cause: Option<(&Datapoint, u64)>,
    violation_id: String,
) -> Event {
    Event {
        violation_event_time: time_ms,
        thing_name: thing.to_string(),
        security_profile_name: profile.name.clone(),
        behavior: behavior.json.clone(),
        violation_event_type: kind,
        metric_value: cause.map(|(dp, _)| MetricValue::from(dp)),
        violation_id,
        verification_state: VERIFICATION_STATE.to_string(),
        report_id: cause.map(|(_, id)| id),
    }
}

/// One behavior judged on one sample (`dump --profile`).
#[derive(Debug, Clone, PartialEq)]
pub struct BehaviorCheck {
    pub profile: String,
    pub behavior: String,
    pub metric: String,
    pub outcome: CheckOutcome,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CheckOutcome {
    Normal {
        value: MetricValue,
    },
    /// `offending`: the ports/addresses/elements outside (or inside) the set, or the value.
    Violating {
        value: MetricValue,
        offending: Vec<String>,
    },
    NoDatapoint {
        why: String,
    },
    NotEvaluated {
        why: String,
    },
}

/// How many offending elements a check lists.
const CHECK_OFFENDING_MAX: usize = 20;

/// Judges every behavior of `profiles` on this one report, without state: traffic metrics use
/// the report's own delta (one sample has no window), datapoint counts are not applied.
pub fn check(profiles: &[Profile], report: &Report) -> Vec<BehaviorCheck> {
    let mut out = Vec::new();
    for profile in profiles {
        for behavior in &profile.behaviors {
            let outcome = match &behavior.rule {
                None => CheckOutcome::NotEvaluated {
                    why: behavior.not_evaluated.clone().unwrap_or_default(),
                },
                Some(rule) => match metrics::extract(&rule.metric, report) {
                    None => CheckOutcome::NoDatapoint {
                        why: missing_why(&rule.metric),
                    },
                    Some(dp) => {
                        let j = judge(rule.operator, &rule.reference, &dp, CHECK_OFFENDING_MAX);
                        let value = MetricValue::from(&dp);
                        if j.violating {
                            CheckOutcome::Violating {
                                value,
                                offending: j.offending,
                            }
                        } else {
                            CheckOutcome::Normal { value }
                        }
                    }
                },
            };
            out.push(BehaviorCheck {
                profile: profile.name.clone(),
                behavior: behavior.name.clone(),
                metric: behavior.metric.clone(),
                outcome,
            });
        }
    }
    out
}

fn missing_why(metric: &MetricRef) -> String {
    match metric {
        MetricRef::Aws(spec) if spec.kind == Kind::Traffic => {
            "no network_stats in this sample (a delta needs two samples: dump --delta)".into()
        }
        MetricRef::Aws(spec) => format!("the report has no section for {}", spec.name),
        MetricRef::Custom { name, kind } => {
            format!(
                "no custom metric {name:?} of type {} in the report",
                kind.name()
            )
        }
    }
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
