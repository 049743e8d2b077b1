//! The detect stage of the cycle: runs the alarm engine on each full report, logs and queues
//! its events, persists its state, and drains the outbox to the broker. The rules are `detect`.
//!
//! - Datapoints: the full, uncut report (before the 128 000-byte cut) at the time of its
//!   report id, with network_stats replaced by the traffic since the PREVIOUS SAMPLE
//!   (detect-rules §4.4): `traffic` is a second counter baseline that advances on every
//!   sample, unlike the report baseline that advances only when a report settles, so an
//!   outage that rolls traffic into one report never fakes a spike. At start and reload the
//!   settled report baseline stands in for the previous sample when it is one
//!   (`previous_sample`), so `evaluate` on the published reports gives the same events.
//! - Events: one log line each (`in-alarm` at warn), then the outbox (state/outbox.rs) unless
//!   the behavior has `suppressAlerts` (detect-rules §6.6: only the fan-out is skipped).
//! - Engine state: written to `alarms.json` after each evaluation that raised, cleared or
//!   invalidated an alarm or moved a datapoint run (not for a mere new `lastViolationTime`: one
//!   flash write per cycle during a long alarm is not worth it), and at stop and reload;
//!   restored at start against the configured profiles, so a restart neither repeats an
//!   `in-alarm` nor loses a clear, and a reload invalidates the alarms of removed or changed
//!   behaviors (detect-rules §6.1).
//! - ML models: in `models.json`, hourly and at stop and reload (`models.rs`).

use std::time::Duration;

use tokio::time::Instant;

use super::broker::Session;
use super::models::{self, Saver};
use super::random;
use crate::collect::Sample;
use crate::detect::{Engine, EngineState, Event, EventType, Profile};
use crate::publish::ConnState;
use crate::report::{Baseline, NetworkStats, Report};
use crate::state::{Limits, Message, Outbox, State};

/// At most this many alarm messages go out per drain...
const DRAIN_MAX_MESSAGES: usize = 32;
/// ...within this much time in total, each waiting at most `SEND_WAIT` for its PUBACK.
const DRAIN_BUDGET: Duration = Duration::from_secs(10);
const SEND_WAIT: Duration = Duration::from_secs(5);

pub(super) struct Alarms {
    engine: Engine,
    thing: String,
    topic: String,
    outbox: Outbox,
    /// What of the behaviors' state was last written to `alarms.json` (`Written`).
    saved: Option<Vec<Written>>,
    /// When the ML models were last written.
    models: Saver,
    /// Counters at the previous sample (not persisted: see `previous_sample`).
    traffic: Baseline,
    /// At start: the settled report baseline and the latest report id for which it is the
    /// previous sample.
    resumed: Option<(Baseline, u64)>,
}

impl Alarms {
    /// Restores the engine state saved by an earlier run (or generation) against `profiles`;
    /// alarms of behaviors that are gone or changed go out as `alarm-invalidated`.
    pub(super) fn start(
        thing: &str,
        topic: String,
        profiles: Vec<Profile>,
        state: &State,
        now_ms: u64,
    ) -> Alarms {
        let outbox = Outbox::open(state.dir(), Limits::default());
        let saved = match state.load_alarms::<EngineState>() {
            Ok(saved) => saved,
            Err(e) => {
                tracing::error!(error = %e, "alarm state unreadable; starting with no active alarms");
                None
            }
        };
        let had_state = saved.is_some();
        let mut saved: EngineState = saved.unwrap_or_default();
        saved.models = models::load(state.dir());
        let (engine, events) = Engine::restore(thing, profiles, random::ids(), saved, now_ms);
        let mut alarms = Alarms {
            engine,
            thing: thing.to_string(),
            topic,
            outbox,
            saved: None,
            models: Saver::starting(now_ms),
            traffic: Baseline::default(),
            resumed: None,
        };
        alarms.record(events);
        if had_state || alarms.engine.active_alarms() > 0 {
            alarms.persist(state, now_ms, false);
        }
        tracing::info!(
            profiles = alarms.engine.profiles().len(),
            active_alarms = alarms.engine.active_alarms(),
            queued = alarms.outbox.len(),
            topic = %alarms.topic,
            "alarm engine ready"
        );
        alarms
    }

    /// Number of alarms active now, for `STATUS=`.
    pub(super) fn active(&self) -> usize {
        self.engine.active_alarms()
    }

    /// The ML behaviors' models.
    #[cfg(test)]
    pub(super) fn models(&self) -> Vec<crate::detect::ModelStatus> {
        self.engine.models()
    }

    /// Alarm messages waiting for the broker.
    pub(super) fn queued(&self) -> usize {
        self.outbox.len()
    }

    /// At start or reload: the report baseline counts as the previous sample for the first
    /// report when it holds the sample of report `sample_id` (that report settled) and the
    /// first report comes at most 1.5 intervals after it, so no sample lies between. Then the
    /// first report's traffic is a datapoint, as `evaluate` sees it in the report; otherwise
    /// (an outage, a stop longer than an interval) it has none: missing data (§4.6).
    pub(super) fn previous_sample(
        &mut self,
        baseline: &Baseline,
        sample_id: Option<u64>,
        interval: Duration,
    ) {
        let within = interval.as_millis() as u64 * 3 / 2;
        self.resumed = sample_id.map(|id| (baseline.clone(), id.saturating_add(within)));
    }

    /// Traffic since the previous sample, for the report `report_id`; advances the sample
    /// baseline every time.
    pub(super) fn traffic(&mut self, sample: &Sample, report_id: u64) -> Option<NetworkStats> {
        if let Some((baseline, until)) = self.resumed.take()
            && report_id <= until
        {
            self.traffic = baseline;
        }
        let boot_id = sample.boot_id.as_deref();
        let (stats, _) = self.traffic.step(boot_id, &sample.counters);
        self.traffic = Baseline::new(boot_id, &sample.counters);
        stats
    }

    /// Evaluates the full report as one datapoint at its report id, with `since_sample` as
    /// its network_stats (the report's own stats are put back afterwards).
    pub(super) fn evaluate(
        &mut self,
        report: &mut Report,
        since_sample: Option<NetworkStats>,
        state: &State,
    ) {
        if self.engine.profiles().is_empty() {
            return;
        }
        let time_ms = report.header.report_id;
        let report_stats = std::mem::replace(&mut report.metrics.network_stats, since_sample);
        let events = self.engine.evaluate(report, time_ms);
        report.metrics.network_stats = report_stats;
        self.record(events);
        self.persist(state, time_ms, false);
    }

    /// Sends queued messages oldest first while connected: bounded in count and time, each
    /// removed only once the broker acknowledged it; the first failure ends the drain. The
    /// outbox file is written once after the batch (and by `flush` if the drain was cut off).
    pub(super) async fn drain(&mut self, publisher: &Session) {
        if self.outbox.is_empty() || !matches!(*publisher.state().borrow(), ConnState::Ready { .. })
        {
            return;
        }
        let deadline = Instant::now() + DRAIN_BUDGET;
        for _ in 0..DRAIN_MAX_MESSAGES {
            let Some(m) = self.outbox.front() else { break };
            let wait = SEND_WAIT.min(deadline.saturating_duration_since(Instant::now()));
            if wait.is_zero() {
                break;
            }
            let (topic, payload) = (m.topic.clone(), m.payload.clone().into_bytes());
            if let Err(e) = publisher.send(&topic, payload, wait).await {
                tracing::warn!(topic = %topic, queued = self.outbox.len(), error = %e, "alarm message not sent; kept for the next cycle");
                break;
            }
            self.outbox.pop_front();
            tracing::debug!(topic = %topic, queued = self.outbox.len(), "alarm message acknowledged");
        }
        self.save_outbox();
    }

    fn save_outbox(&mut self) {
        if let Err(e) = self.outbox.save_if_changed() {
            tracing::warn!(error = %e, "cannot persist the alarm outbox after PUBACKs; those messages may be sent again after a restart");
        }
    }

    /// One log line per event, and the outbox for those not suppressed.
    fn record(&mut self, events: Vec<Event>) {
        if events.is_empty() {
            return;
        }
        let mut queue = Vec::with_capacity(events.len());
        for e in &events {
            log_event(e);
            if e.suppressed() {
                continue;
            }
            match serde_json::to_string(e) {
                Ok(payload) => queue.push(Message {
                    topic: self.topic.clone(),
                    payload,
                }),
                Err(err) => {
                    tracing::error!(violation_id = %e.violation_id, error = %err, "alarm event not serializable; not sent")
                }
            }
        }
        let pushed = self.outbox.push(queue);
        if let Some(e) = pushed.unsaved {
            tracing::error!(thing = %self.thing, error = %e, "cannot persist the alarm outbox; its messages are kept in memory only");
        }
    }

    /// Writes the whole engine state and the ML models (at stop and reload), changed or not,
    /// and the outbox if a drain was cut off before it wrote it.
    pub(super) fn flush(&mut self, state: &State) {
        self.saved = None;
        self.persist(state, super::wall_ms(), true);
        self.save_outbox();
    }

    /// Writes the engine state when an alarm or a run changed since the last write, and the
    /// ML models when `force`d or an hour has passed (`models.rs`).
    fn persist(&mut self, state: &State, now_ms: u64, force: bool) {
        let mut snapshot = self.engine.snapshot();
        let learned = std::mem::take(&mut snapshot.models);
        self.models.save(state, &learned, now_ms, force);
        let written: Vec<Written> = snapshot.behaviors.iter().map(Written::of).collect();
        if self.saved.as_ref() == Some(&written) {
            return;
        }
        match state.save_alarms(&snapshot) {
            Ok(()) => self.saved = Some(written),
            Err(e) => {
                tracing::error!(error = %e, "cannot persist the alarm state; a restart may repeat or lose an alarm event")
            }
        }
    }
}

/// The part of one behavior's state whose change is worth a write: its runs and its alarm.
/// Named, as the snapshot lists only behaviors out of their fresh state (one behavior's run
/// ending as another's starts changes which behaviors are listed).
#[derive(Debug, PartialEq)]
struct Written {
    profile: String,
    behavior: String,
    bad_run: u32,
    good_run: u32,
    violation_id: Option<String>,
}

impl Written {
    fn of(b: &crate::detect::engine::BehaviorState) -> Written {
        Written {
            profile: b.profile.clone(),
            behavior: b.behavior.clone(),
            bad_run: b.track.bad_run,
            good_run: b.track.good_run,
            violation_id: b.track.alarm.as_ref().map(|a| a.violation_id.clone()),
        }
    }
}

fn log_event(e: &Event) {
    let (profile, behavior) = (&e.security_profile_name, e.behavior_name());
    let kind = e.violation_event_type.name();
    let suppressed = e.suppressed();
    if e.violation_event_type == EventType::InAlarm {
        tracing::warn!(event = kind, thing = %e.thing_name, profile = %profile, behavior, violation_id = %e.violation_id, report_id = e.report_id, suppressed, "alarm event");
    } else {
        tracing::info!(event = kind, thing = %e.thing_name, profile = %profile, behavior, violation_id = %e.violation_id, report_id = e.report_id, suppressed, "alarm event");
    }
}

#[cfg(test)]
#[path = "alarms_tests.rs"]
mod tests;
