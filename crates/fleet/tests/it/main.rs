//! detect-fleet's integration tests, one binary: the `detect-fleet` binary under test (cargo
//! builds it), real `detect-agent` processes (taken by path: `$DETECT_AGENT_BIN` or
//! target/debug/detect-agent, see detect_testkit::bin) and a real mosquitto.

mod agents;
mod answers;
mod api_http;
mod authorization;
mod aws_python_agent;
mod check_config;
mod cloud_side;
mod cloud_side_nats;
mod cluster_cloud;
mod cluster_devices;
mod cluster_failover;
mod cluster_kv;
mod cluster_ownership;
mod cluster_run;
mod cluster_store;
mod console;
mod crash;
mod http_client;
mod http_gate;
mod http_metrics;
mod ml_peers;
mod models;
mod nats_intake;
mod payloads;
mod replay;
mod sequence;
mod statistical;
mod webhook;
mod witness_e2e;
