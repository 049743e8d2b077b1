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

/// One report's traffic deltas, for windowed sums. Written as `[time_ms, [bytes_in,
/// bytes_out, packets_in, packets_out]]`; the object form of earlier versions reads too.
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize)]
pub struct TrafficEntry {
    pub time_ms: u64,
    pub stats: NetworkStats,
}

impl serde::Serialize for TrafficEntry {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let n = &self.stats;
        let stats = [n.bytes_in, n.bytes_out, n.packets_in, n.packets_out];
        (self.time_ms, stats).serialize(s)
    }
}

/// A saved (profile, behavior) state with what it evaluated. `Engine::snapshot` writes only
/// behaviors whose track is not `Track::default()` (a fresh behavior's, which restore gives a
/// behavior it finds no state for), and writes no zero run nor absent alarm.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(from = "SavedBehavior")]
pub struct BehaviorState {
    pub profile: String,
    pub behavior: String,
    /// `Behavior::fingerprint`; states of earlier versions hold the text it hashes
    /// (`profile::same_fingerprint` compares either).
    pub fingerprint: String,
    /// The behavior object, for the `alarm-invalidated` event if it is gone or changed on
    /// restore: kept while an alarm is active, the only case that event needs it (§6.1).
    pub json: Option<Arc<serde_json::Value>>,
    pub track: Track,
}

/// `BehaviorState` as read: the fields of `Track` inline; what is absent is zero or none.
#[derive(serde::Deserialize)]
struct SavedBehavior {
    profile: String,
    behavior: String,
    fingerprint: String,
    #[serde(default)]
    json: Option<Arc<serde_json::Value>>,
    #[serde(default)]
    bad_run: u32,
    #[serde(default)]
    good_run: u32,
    #[serde(default)]
    alarm: Option<Alarm>,
}

impl From<SavedBehavior> for BehaviorState {
    fn from(s: SavedBehavior) -> Self {
        BehaviorState {
            profile: s.profile,
            behavior: s.behavior,
            fingerprint: s.fingerprint,
            json: s.json,
            track: Track {
                bad_run: s.bad_run,
                good_run: s.good_run,
                alarm: s.alarm,
            },
        }
    }
}

impl serde::Serialize for BehaviorState {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let t = &self.track;
        let mut m = s.serialize_struct("BehaviorState", 7)?;
        m.serialize_field("profile", &self.profile)?;
        m.serialize_field("behavior", &self.behavior)?;
        m.serialize_field("fingerprint", &self.fingerprint)?;
        if let Some(json) = &self.json {
            m.serialize_field("json", json)?;
        }
        if t.bad_run != 0 {
            m.serialize_field("bad_run", &t.bad_run)?;
        }
        if t.good_run != 0 {
            m.serialize_field("good_run", &t.good_run)?;
        }
        if let Some(alarm) = &t.alarm {
            m.serialize_field("alarm", alarm)?;
        }
        m.end()
    }
}

/// Everything the engine must keep across restarts (the daemon persists it as JSON). What is
/// empty is not written; states of earlier versions (every behavior, with its object) read.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EngineState {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_report_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub behaviors: Vec<BehaviorState>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
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
