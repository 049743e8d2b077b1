//! The agent's integration tests, one binary (one link, one run): a module per area, each
//! file one feature. The harness is the `detect-testkit` crate; `custom` is the agent's own.

mod custom;

/// The command line: check-config, dump, evaluate, --version (the binary run as a tool).
mod cli {
    mod check_config;
    mod detect_evaluate;
    mod detect_ml;
    mod dump;
    mod dump_custom;
    mod dump_evasion;
    mod dump_profile;
    mod dump_terminal;
    mod version;
}

/// The collectors: sockets, counters and custom metrics, on fixtures and live.
mod collect {
    mod custom_commands;
    mod custom_files_builtins;
    mod fixtures;
    mod live;
}

/// `detect-agent run` end to end: a real agent process, mosquitto and the strict backend.
mod daemon {
    mod any_broker;
    mod big_messages;
    mod custom;
    mod detect;
    mod detect_ml;
    mod liveness;
    mod report_id;
    mod rogue_verdicts;
    mod run;
    mod stuck_broker;
    mod traffic;
    mod traffic_netns;
    mod trim;
}

/// The MQTT client against a real broker, and the device identity files.
mod publish {
    mod broker;
    mod identity;
}

/// Report encoding: key names and the size limits.
mod report {
    mod keys;
    mod limits;
}
