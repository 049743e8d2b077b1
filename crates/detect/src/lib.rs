//! Detect on the device (detect-rules.md): AWS security profiles, the criteria a behavior is
//! judged by, the alarm state machine over observations (a device report is one) and its events.
//!
//! Layers, each module importing only from the ones above it in this list (checked by
//! `scripts/check-imports`; no module imports this file's re-exports):
//! 1. vocabulary: `hash`, `operators`, `cidr`, `ids`, then `metrics` (names, kinds, `MetricRef`,
//!    `Datapoint`), `event`;
//! 2. observations: `observation` (the trait the engine reads), `from_report` (a report as one);
//! 3. `learn/`: the learned model of ML behaviors (docs/ml.md); `criteria/`: the closed set of
//!    criteria (static, statistical, learned) and judging a datapoint;
//! 4. `profile/`: the loaded model, then loading and validating files;
//! 5. `state` (what is persisted), then `check` (one sample, no state) and `engine`;
//! 6. `snapshot`: saving and restoring an engine; `replay`: a device's reports through one.
//!
//! No I/O except the profile loader reading the profile file and its cidrsFile; from outside
//! detect it imports `protocol` only (not collect, publish, config or the daemon).

pub mod check;
pub mod cidr;
pub mod criteria;
pub mod engine;
pub mod event;
pub mod from_report;
pub mod hash;
pub mod ids;
pub mod learn;
pub mod metrics;
pub mod observation;
pub mod operators;
pub mod profile;
pub mod replay;
pub mod snapshot;
pub mod state;

#[cfg(test)]
mod matrix_tests;

pub use check::{BehaviorCheck, CheckOutcome, check};
pub use criteria::{Criterion, Learned, Reference, StaticThreshold, StatisticalThreshold};
pub use engine::{Engine, STALE_AFTER_MS};
pub use event::{AdditionalInfo, Event, EventType, MetricValue};
pub use ids::{IdSource, seeded_ids};
pub use metrics::{CustomKind, Datapoint, Kind, MetricRef, MetricSpec};
pub use observation::Observation;
pub use operators::Operator;
pub use profile::{Behavior, Loaded, Problem, Profile, ProfileError, Rule, Warning};
pub use replay::{REPLAY_ID_SEED, replay};
pub use snapshot::ModelStatus;
pub use state::{Alarm, BehaviorState, EngineState, SavedModel, Track, TrafficEntry};
