//! The plain data the store traits take and give: records, commits, outbox entries, things,
//! violations. No behaviour beyond small derivations (an event's idempotent id).

use std::collections::{BTreeMap, BTreeSet};

use detect::{EngineState, Event};

use crate::witness::Witness;

/// A record's version: 0 for a thing never committed, +1 per commit.
pub type Version = u64;

/// One thing's record, committed whole.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Record {
    /// The last accepted report: (report_id, receive time ms).
    pub last_report: Option<(u64, u64)>,
    /// Engine state per watched profile; a profile absent here has none (any stored is dropped).
    pub states: BTreeMap<String, EngineState>,
    /// The broker's counters of windows not judged yet (issue #18); `None` drops them.
    pub witness: Option<Witness>,
}

/// A record as loaded, with the version to commit against.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Loaded {
    pub version: Version,
    pub record: Record,
}

/// One thing's new record and everything that rides with it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Commit {
    pub thing: String,
    /// The version loaded; the commit fails if the stored one differs.
    pub expected: Version,
    pub record: Record,
    /// The answers sent, kept to answer redeliveries (one per report of this commit). An
    /// accepted answer stays; a rejected one is replaced by the next answer to its id.
    pub answers: Vec<StoredReport>,
    /// The events of this step: they reach the outbox and the violation index.
    pub events: Vec<Recorded>,
    /// (violation id, lastViolationTime) of alarms still active after this step.
    pub touched: Vec<(String, u64)>,
    /// This thing's values for statistical windows.
    pub samples: Vec<Sample>,
    /// Datapoints for the metric history (issue #21): the accepted report, a closed window.
    pub history: Vec<HistoryPoint>,
}

/// Which side measured a history point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Side {
    /// An accepted report: `data` is the report in CBOR with AWS's short keys.
    Device = 0,
    /// A closed broker window: `data` is a JSON object, metric name → MetricValue.
    Cloud = 1,
}

/// One entry of a thing's metric history (issue #21, docs/spec/detect-api.md §6): opaque
/// bytes to the store, decoded by `api::history`. One per (thing, side, time).
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryPoint {
    pub side: Side,
    pub time_ms: u64,
    pub data: Vec<u8>,
}

/// A thing as the registry and the reports know it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Thing {
    pub name: String,
    pub registered: bool,
    pub groups: BTreeSet<String>,
    pub last_report_id: Option<u64>,
    pub last_report_ms: Option<u64>,
    /// The thing's last rejected report, kept for `things list` even when none was accepted.
    pub last_rejection: Option<LastRejection>,
}

/// A thing's last rejected report: when, and the answer's ErrorCode and ErrorMessage.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LastRejection {
    pub time_ms: u64,
    pub code: String,
    pub message: String,
}

impl LastRejection {
    /// The message kept is cut at this many characters (it may quote a device's keys).
    pub const MAX_MESSAGE_CHARS: usize = 300;

    pub fn new(time_ms: u64, code: &str, message: &str) -> LastRejection {
        LastRejection {
            time_ms,
            code: code.to_string(),
            message: message.chars().take(Self::MAX_MESSAGE_CHARS).collect(),
        }
    }
}

/// The stored outcome of one report: the answer sent, to send again on redelivery.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredReport {
    pub thing: String,
    pub report_id: u64,
    pub time_ms: u64,
    pub accepted: bool,
    /// The answer payload as JSON (re-encoded as the report's encoding when sent).
    pub answer: serde_json::Value,
    /// SHA-256 of the report's payload: only the same bytes are a redelivery (issue #17).
    /// `None` for answers stored before digests were kept.
    pub digest: Option<Digest>,
}

/// A payload's SHA-256 (`intake::digest`).
pub type Digest = [u8; 32];

/// An event to record; `suppressed` ones are never sent (detect-rules §6.6).
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    pub event: Event,
    pub suppressed: bool,
}

impl Recorded {
    /// The outbox's idempotent id: one transition of one alarm (SQLite looks up the same
    /// pair, `violation_id` and the event's type, in `events`).
    #[allow(dead_code, reason = "read by the memory and NATS stores")]
    pub fn key(&self) -> String {
        let e = &self.event;
        format!("{}:{}", e.violation_id, e.violation_event_type.name())
    }
}

/// One device's value in a statistical window (detect-rules §4.8): `sum` adds it to the
/// window's value (bytes/packets), else it replaces it (gauges: the last value counts).
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub profile: String,
    pub behavior: String,
    pub window_start_ms: u64,
    pub thing: String,
    pub value: f64,
    pub sum: bool,
}

/// Where alerts go; each has its own cursor in the outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sink {
    /// `[alerts] mqtt_topic`, sent on the broker's PUBACK.
    Mqtt,
    /// `[alerts] webhook_url`, sent on a 2xx answer.
    Webhook,
}

/// An outbox event not yet past a sink's cursor.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    /// Its place in the outbox (increasing; what a cursor points at).
    pub position: u64,
    pub event: Event,
    /// The event's JSON exactly as stored when it was recorded: every send of one event
    /// (a resend after a crash before the PUBACK or the 2xx included) carries these bytes.
    pub payload: Vec<u8>,
}

/// A violation, active (`end_ms` None) or past.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Violation {
    pub violation_id: String,
    pub thing_name: String,
    pub security_profile_name: String,
    pub behavior: serde_json::Value,
    pub violation_start_time: u64,
    pub last_violation_time: u64,
    pub last_violation_value: Option<serde_json::Value>,
    pub violation_end_time: Option<u64>,
    pub end_event_type: Option<String>,
    pub suppressed: bool,
    pub verification_state: String,
    pub verification_state_description: Option<String>,
}

impl Violation {
    /// The violation an `in-alarm` event opens: active, its value the event's, not verified.
    pub fn opened(e: &Event, suppressed: bool) -> Violation {
        let time = e.violation_event_time;
        Violation {
            violation_id: e.violation_id.clone(),
            thing_name: e.thing_name.clone(),
            security_profile_name: e.security_profile_name.clone(),
            behavior: e.behavior.clone(),
            violation_start_time: time,
            last_violation_time: time,
            last_violation_value: e
                .metric_value
                .as_ref()
                .and_then(|v| serde_json::to_value(v).ok()),
            violation_end_time: None,
            end_event_type: None,
            suppressed,
            verification_state: "UNKNOWN".into(),
            verification_state_description: None,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub active_only: bool,
    pub thing: Option<String>,
    pub profile: Option<String>,
}

impl Filter {
    /// Whether `v` passes the filter (SQLite asks the same in its query).
    pub fn matches(&self, v: &Violation) -> bool {
        (!self.active_only || v.violation_end_time.is_none())
            && self.thing.as_ref().is_none_or(|t| *t == v.thing_name)
            && self
                .profile
                .as_ref()
                .is_none_or(|p| *p == v.security_profile_name)
    }
}

/// The order `violations` lists in: by start time, then id (SQLite's `ORDER BY`).
pub fn sort_violations(list: &mut [Violation]) {
    list.sort_by(|a, b| {
        (a.violation_start_time, &a.violation_id).cmp(&(b.violation_start_time, &b.violation_id))
    });
}

/// What `EventLog::events` lists: events with `start_ms <= violationEventTime < end_ms`,
/// optionally of one thing or profile, after `after` in (time, position) order.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    pub start_ms: u64,
    pub end_ms: u64,
    pub thing: Option<String>,
    pub profile: Option<String>,
    /// (violationEventTime, position) of the last event of the previous page.
    pub after: Option<(u64, u64)>,
    pub limit: usize,
}

/// One kept event, with its alarm's verification as it stands now.
#[derive(Debug, Clone, PartialEq)]
pub struct Listed {
    pub position: u64,
    pub event: Event,
    pub suppressed: bool,
    /// The violation's state (`UNKNOWN` when its violation is no longer kept).
    pub verification_state: String,
    pub verification_state_description: Option<String>,
}
