//! What the engine keeps across restarts (detect-rules §6.1), as the daemon and the fleet
//! persist it: runs and active alarms per (profile, behavior), and recent traffic deltas.

use protocol::NetworkStats;

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
