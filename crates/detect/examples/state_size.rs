//! Bytes of the saved engine state (`EngineState` as JSON, what the agent's alarms.json and
//! each detect-fleet record carry) for the 10-behavior profile of `scripts/bench-fleet`.
//!
//! `cargo run -p detect-engine --release --example state_size`
//! Prints the size after 4 quiet reports (a bench run), 12 quiet reports (an hour at 300 s),
//! and 12 reports with one alarm active, and the time of one JSON encode + decode of each.

use std::path::Path;
use std::time::Instant;

use detect::profile::parse;
use detect::{Engine, EngineState, seeded_ids};
use serde_json::json;

/// The profile of crates/fleet/benches/fleet.rs.
fn profile() -> String {
    let b = |name: &str, metric: &str, criteria: serde_json::Value| json!({"name": name, "metric": metric, "criteria": criteria});
    let count = |n: u64| json!({"comparisonOperator": "less-than-equals", "value": {"count": n}});
    let window = |n: u64| json!({"comparisonOperator": "less-than-equals", "value": {"count": n}, "durationSeconds": 300});
    let ports = |p: &[u16]| json!({"comparisonOperator": "not-in-port-set", "value": {"ports": p}});
    json!({"securityProfileName": "bench-10", "behaviors": [
        b("no-telnet", "aws:listening-tcp-ports", ports(&[23, 2323])),
        b("udp-ports", "aws:listening-udp-ports", ports(&[69])),
        b("tcp-count", "aws:num-listening-tcp-ports", count(20)),
        b("udp-count", "aws:num-listening-udp-ports", count(20)),
        b("conns", "aws:num-established-tcp-connections", count(50)),
        b("dest", "aws:destination-ip-addresses",
          json!({"comparisonOperator": "in-cidr-set", "value": {"cidrs": ["10.0.0.0/8"]}})),
        b("bytes-in", "aws:all-bytes-in", window(10_000_000)),
        b("bytes-out", "aws:all-bytes-out", window(10_000_000)),
        b("packets-in", "aws:all-packets-in", window(100_000)),
        b("packets-out", "aws:all-packets-out", window(100_000)),
    ]})
    .to_string()
}

/// The bench's report `i`; `telnet` adds port 23 (violates `no-telnet`).
fn report(id: u64, i: u64, telnet: bool) -> protocol::Report {
    let mut tcp = vec![
        json!({"port": 22, "interface": "eth0"}),
        json!({"port": 443}),
    ];
    if telnet {
        tcp.push(json!({"port": 23}));
    }
    let bytes = serde_json::to_vec(&json!({
        "header": {"report_id": id, "version": "1.0"},
        "metrics": {
            "listening_tcp_ports": {"ports": tcp, "total": tcp.len()},
            "listening_udp_ports": {"ports": [{"port": 53}], "total": 1},
            "tcp_connections": {"established_connections": {"connections": [
                {"remote_addr": format!("10.0.{}.{}:443", i % 250, i % 200 + 1),
                 "local_port": 50000, "local_interface": "eth0"}
            ], "total": 1}},
            "network_stats": {"bytes_in": 1000 + i % 97, "bytes_out": 2000,
                              "packets_in": 10, "packets_out": 12}
        }
    }))
    .unwrap_or_default();
    match protocol::decode(&bytes) {
        Ok(d) => d.report,
        Err(e) => panic!("the example's own report does not decode: {e}"),
    }
}

fn main() {
    let (profile, _) = match parse(&profile(), Path::new("bench-10.json")) {
        Ok(p) => p,
        Err(e) => panic!("the example's own profile does not load: {e}"),
    };
    let start = 1_767_225_600_000u64;
    for (what, reports, telnet_from) in [
        ("4 quiet reports", 4u64, u64::MAX),
        ("12 quiet reports", 12, u64::MAX),
        ("12 reports, 1 alarm", 12, 11),
    ] {
        let mut engine = Engine::new("thing-1", vec![profile.clone()], seeded_ids(1));
        for i in 0..reports {
            let t = start + i * 300_000;
            engine.evaluate(&report(t, i, i >= telnet_from), t);
        }
        let state = engine.snapshot();
        let text = serde_json::to_string(&state).unwrap_or_default();
        let rounds = 20_000u32;
        let clock = Instant::now();
        for _ in 0..rounds {
            let s = serde_json::to_string(&state).unwrap_or_default();
            let back: Option<EngineState> = serde_json::from_str(&s).ok();
            std::hint::black_box(back);
        }
        let us = clock.elapsed().as_secs_f64() * 1e6 / f64::from(rounds);
        println!(
            "{what}: {} bytes of state JSON; encode+decode {us:.1} µs",
            text.len()
        );
    }
}
