//! What the engine keeps across restarts (detect-rules §6.1), as the daemon and the fleet
//! persist it: runs and active alarms per (profile, behavior), recent traffic deltas, models.

use std::sync::Arc;

use protocol::NetworkStats;

use super::learn::StoredModel;

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
    pub json: Arc<serde_json::Value>,
    #[serde(flatten)]
    pub track: Track,
}

/// Everything the engine must keep across restarts (the daemon persists it as JSON).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EngineState {
    pub last_report_ms: Option<u64>,
    pub behaviors: Vec<BehaviorState>,
    pub traffic: Vec<TrafficEntry>,
    /// The learned models of ML behaviors (docs/ml.md); absent when there are none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<SavedModel>,
}

/// One ML behavior's model: found again on restore by profile, behavior and metric (a changed
/// confidence level or datapoint count keeps what was learned).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SavedModel {
    pub profile: String,
    pub behavior: String,
    pub metric: String,
    /// Serialized as `learn::persist::to_hex` (versioned, with a CRC-32); in memory, the
    /// model itself until written.
    pub model: StoredModel,
}
