//! The MQTT session the daemon drives (`Session`): the real `Publisher`, or, in the lib's
//! own tests, the scripted `FakeBroker` with the same methods (start, state, topics,
//! late_verdicts, publish, send, shutdown).
//!
//! A compile-time seam: the agent binary is built from exactly the code it had before (no
//! generic, no `dyn`, not one byte more), while the in-process tests (`*_tests.rs` beside
//! this file) run the cycle and alarm rules against the fake under tokio's paused clock.

#[cfg(not(test))]
pub(super) use crate::publish::Publisher as Session;

#[cfg(test)]
pub(super) use super::fake_broker::FakeBroker as Session;
