//! `detect-fleet`: a self-hosted AWS IoT Device Defender Detect backend (issue #9). Flags and
//! wiring only; the work is in `judge` (reports), `service` (MQTT), `store` (SQLite).

mod api;
mod cli;
mod cli_table;
mod cluster;
mod config;
mod config_cluster;
mod config_http;
mod config_store;
mod console;
mod coverage;
mod history;
mod http;
mod intake;
mod judge;
mod metrics;
mod metrics_text;
mod models;
mod replay;
mod service;
mod sources;
mod statistical;
mod store;
mod targets;
mod window;
mod witness;

fn main() -> std::process::ExitCode {
    cli::main()
}
