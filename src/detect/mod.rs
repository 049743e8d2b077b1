//! Detect on the device (detect-rules.md): AWS security profiles, metric extraction from a
//! report, operators, the alarm state machine and its events. No I/O except the profile loader
//! reading the profile file and its cidrsFile; knows nothing of collect, publish or the daemon.

pub mod check;
pub mod cidr;
pub mod engine;
pub mod event;
pub mod ids;
pub mod metrics;
pub mod operators;
pub mod profile;
pub mod snapshot;
mod validate;

#[cfg(test)]
mod matrix_tests;

pub use engine::{
    BehaviorCheck, CheckOutcome, Engine, EngineState, IdSource, STALE_AFTER_MS, check, seeded_ids,
};
pub use event::{Event, EventType, MetricValue};
pub use metrics::{CustomKind, Datapoint, Kind, MetricRef, MetricSpec};
pub use operators::Operator;
pub use profile::{Behavior, Loaded, Problem, Profile, ProfileError, Reference, Rule, Warning};
