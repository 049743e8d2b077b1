//! The plugin's integration tests, one binary: Debian's mosquitto loading the plugin built with
//! `cargo build -p detect-mosquitto-plugin --profile plugin` (see detect_testkit::bin), real clients.

mod broker_plugin;
mod certificates;
mod robustness;
mod witness;
