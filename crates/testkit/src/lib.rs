//! The harness shared by the agent's and the fleet's integration tests: throwaway PKI (rcgen),
//! a real mosquitto with mutual TLS, a strict Defender backend, network namespaces and veths,
//! runners for the `detect-agent` and `detect-fleet` binaries, and bounded waits.

pub mod agent;
pub mod agent_config;
pub mod alarms;
pub mod backend;
pub mod bin;
pub mod broker;
pub mod certs;
pub mod chromium;
pub mod eventually;
pub mod fleet;
pub mod fleet_agent;
pub mod isolated;
pub mod nats;
pub mod nats_cluster;
pub mod netns;
pub mod notify;
pub mod proc_stat;
pub mod relay;
pub mod run;
mod server;
mod shipped;
pub mod sockets;
mod validate;
pub mod veths;

pub use backend::{Backend, Mode, Received};
pub use broker::Broker;
pub use certs::{Identity, Pki};
pub use eventually::eventually;

/// A report good enough for the strict backend, in long keys.
pub fn report_json(report_id: u64) -> serde_json::Value {
    serde_json::json!({
        "header": {"report_id": report_id, "version": "1.0"},
        "metrics": {
            "listening_tcp_ports": {"ports": [{"port": 22, "interface": "lo"}], "total": 1},
            "network_stats": {"bytes_in": 10, "bytes_out": 20, "packets_in": 1, "packets_out": 2}
        }
    })
}

/// Encodes a JSON value as the `format` segment says (`json` or `cbor`).
pub fn encode(value: &serde_json::Value, format: &str) -> Vec<u8> {
    match format {
        "cbor" => {
            let mut out = Vec::new();
            ciborium::into_writer(value, &mut out).unwrap();
            out
        }
        _ => serde_json::to_vec(value).unwrap(),
    }
}

/// The wall clock in epoch milliseconds (the tests' reports, windows and cursors).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Logs to the test output (shown on failure); safe to call more than once.
pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_max_level(tracing::Level::DEBUG)
        .try_init();
}
