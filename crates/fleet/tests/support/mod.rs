//! The fleet's test harness: the agent's own PKI, mosquitto and MQTT listeners (included from
//! the root's tests/common by path, not copied), plus runners for `detect-fleet` and real
//! `detect-agent run` processes.
#![allow(dead_code)]

#[path = "../../../../tests/common/alarms.rs"]
pub mod alarms;
#[path = "../../../../tests/common/backend.rs"]
pub mod backend;
#[path = "../../../../tests/common/broker.rs"]
pub mod broker;
#[path = "../../../../tests/common/certs.rs"]
pub mod certs;

#[path = "../../../../tests/common/agent_config.rs"]
pub mod agent_config;

#[path = "../../../../tests/common/netns.rs"]
pub mod netns;
pub use backend::Received;

pub mod agent;
pub mod fleet;
pub mod veths;

#[path = "../../../../tests/common/eventually.rs"]
pub mod eventually;
pub use eventually::eventually;
