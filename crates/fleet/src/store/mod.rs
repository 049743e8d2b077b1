//! The fleet's state behind one small trait (issue #9 item 5): things, each report's stored
//! answer, per (thing, profile) engine state, violations with history and verification, and
//! the alert outbox. `sqlite.rs` (+ `sqlite_write.rs`) is the embedded implementation; a
//! distributed one comes next.
//! Decides nothing: the service says what to write.

mod sqlite;
mod sqlite_write;

use std::collections::{BTreeMap, BTreeSet};

use detect::{EngineState, Event};

pub use sqlite::Sqlite;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database {path}: {source}")]
    Sqlite {
        path: String,
        source: rusqlite::Error,
    },
    #[error("database {path}: {what}: stored JSON unreadable: {source}")]
    Json {
        path: String,
        what: String,
        source: serde_json::Error,
    },
}

/// A thing as the registry and the reports know it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Thing {
    pub name: String,
    pub registered: bool,
    pub groups: BTreeSet<String>,
    pub last_report_id: Option<u64>,
    pub last_report_ms: Option<u64>,
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
}

/// An event to record; `suppressed` ones are never sent (detect-rules §6.6).
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    pub event: Event,
    pub suppressed: bool,
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

/// Everything one step writes, in one transaction.
#[derive(Debug, Clone, Default)]
pub struct Write {
    pub report: Option<StoredReport>,
    /// (thing, profile, state); `None` deletes the state (no longer monitored).
    pub states: Vec<(String, String, Option<EngineState>)>,
    pub events: Vec<Recorded>,
    /// (violation id, lastViolationTime) of alarms still active after this step.
    pub touched: Vec<(String, u64)>,
    pub samples: Vec<Sample>,
}

/// Where alerts go; each keeps its own "sent" mark per event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// `[alerts] mqtt_topic`, sent on the broker's PUBACK.
    Mqtt,
    /// `[alerts] webhook_url`, sent on a 2xx answer.
    Webhook,
}

/// An event waiting to be sent on a channel.
#[derive(Debug, Clone, PartialEq)]
pub struct Unsent {
    pub id: i64,
    pub event: Event,
    /// The event's JSON exactly as stored when it was recorded: every send of one event
    /// (a resend after a crash before the PUBACK or the 2xx included) carries these bytes.
    pub payload: Vec<u8>,
}

/// A violation, active (`end_ms` None) or past.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
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

#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub active_only: bool,
    pub thing: Option<String>,
    pub profile: Option<String>,
}

/// The store. One implementation per backend; every method is one transaction, or part of
/// the batch `begin` opened.
pub trait Store {
    /// The stored outcome of (thing, report_id), if this report was seen before.
    fn report(&mut self, thing: &str, report_id: u64) -> Result<Option<StoredReport>, StoreError>;
    fn thing(&mut self, name: &str) -> Result<Option<Thing>, StoreError>;
    /// Every thing with its groups (registered or seen).
    fn things(&mut self) -> Result<Vec<Thing>, StoreError>;
    /// Registers a thing (again), replacing its groups.
    fn register(&mut self, name: &str, groups: &BTreeSet<String>) -> Result<(), StoreError>;
    fn state(&mut self, thing: &str, profile: &str) -> Result<Option<EngineState>, StoreError>;
    /// Every stored (thing, profile, state), for sweeps.
    fn states(&mut self) -> Result<Vec<(String, String, EngineState)>, StoreError>;
    /// Every device's value in one statistical window of (profile, behavior).
    fn window(
        &mut self,
        profile: &str,
        behavior: &str,
        window_start_ms: u64,
    ) -> Result<Vec<f64>, StoreError>;
    /// Opens a batch: the steps applied until `commit` become durable together (one commit
    /// for many reports); reads inside the batch see its writes.
    fn begin(&mut self) -> Result<(), StoreError>;
    fn commit(&mut self) -> Result<(), StoreError>;
    /// Applies one step atomically (inside a batch: atomically within it); an accepted report
    /// also becomes the thing's last report.
    fn apply(&mut self, write: &Write) -> Result<(), StoreError>;
    /// The oldest unsuppressed events not yet sent on `channel`.
    fn unsent(&mut self, channel: Channel, limit: usize) -> Result<Vec<Unsent>, StoreError>;
    fn mark_sent(&mut self, channel: Channel, id: i64) -> Result<(), StoreError>;
    fn violations(&mut self, filter: &Filter) -> Result<Vec<Violation>, StoreError>;
    /// Sets a violation's verification state; false when there is no such violation.
    fn verify(
        &mut self,
        violation_id: &str,
        state: &str,
        description: Option<&str>,
    ) -> Result<bool, StoreError>;
    /// Drops ended violations and sent events older than `history_before_ms`, and stored
    /// reports (kept to answer redeliveries) and statistical samples older than
    /// `reports_before_ms`.
    fn prune(
        &mut self,
        history_before_ms: u64,
        reports_before_ms: u64,
    ) -> Result<usize, StoreError>;
}

/// Groups by thing name, registered things only.
pub fn registry(things: &[Thing]) -> BTreeMap<String, BTreeSet<String>> {
    things
        .iter()
        .filter(|t| t.registered)
        .map(|t| (t.name.clone(), t.groups.clone()))
        .collect()
}
