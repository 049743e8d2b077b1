//! The fleet's test harness: the agent's own PKI, mosquitto and MQTT listeners (included from
//! the root's tests/common by path, not copied), plus runners for `detect-fleet` and real
//! `detect-agent run` processes.
#![allow(dead_code)]

#[path = "../../../tests/common/alarms.rs"]
pub mod alarms;
#[path = "../../../tests/common/backend.rs"]
pub mod backend;
#[path = "../../../tests/common/broker.rs"]
pub mod broker;
#[path = "../../../tests/common/certs.rs"]
pub mod certs;

pub mod agent;
pub mod fleet;

use std::time::Duration;

/// Polls `check` every 50 ms until it is true or `limit` passes; returns the last result.
pub async fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if check() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
