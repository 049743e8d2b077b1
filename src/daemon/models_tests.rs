//! ML models on disk with real files: written hourly and at stop, kept across a restart, and
//! a damaged file or model reported and learned again.

use super::super::alarms::Alarms;
use crate::detect::Profile;
use crate::report::NetworkStats;
use crate::state::{MODELS_FILE, State};

const START: u64 = 1_767_225_600_000;
const STEP: u64 = 300_000;

fn profile() -> Profile {
    let text = r#"{"securityProfileName": "p", "behaviors": [{"name": "ml-out",
        "metric": "aws:all-bytes-out", "criteria": {"mlDetectionConfig": {"confidenceLevel": "MEDIUM"}}}]}"#;
    crate::detect::profile::parse(text, std::path::Path::new("p.json"))
        .unwrap()
        .0
}

/// Evaluates reports `from..to` (one per 300 s) with 40–50 kB out each.
fn feed(a: &mut Alarms, state: &State, from: u64, to: u64) {
    for i in from..to {
        let stats = NetworkStats {
            bytes_out: 40_000 + i % 11 * 1_000,
            ..Default::default()
        };
        let sockets = crate::collect::SocketTable {
            tcp_listen: Vec::new(),
            udp_listen: Vec::new(),
            tcp_established: Vec::new(),
            source: crate::collect::SocketSource::ProcNet,
        };
        let mut report = crate::report::build(&sockets, None, START + i * STEP);
        a.evaluate(&mut report, Some(stats), state);
    }
}

fn seen(a: &Alarms) -> u32 {
    a.models()[0].model.seen
}

#[test]
fn models_are_written_hourly_and_at_stop_and_a_restart_keeps_them() {
    let dir = tempfile::tempdir().unwrap();
    let state = State::open(dir.path()).unwrap();
    let file = dir.path().join(MODELS_FILE);
    let mut a = Alarms::start("gw", "t".into(), vec![profile()], &state, START);
    feed(&mut a, &state, 0, 12);
    assert!(!file.exists(), "not before an hour");
    feed(&mut a, &state, 12, 13);
    assert!(file.exists(), "after an hour");
    let written = std::fs::read(&file).unwrap();
    feed(&mut a, &state, 13, 20);
    assert_eq!(std::fs::read(&file).unwrap(), written, "not every cycle");
    a.flush(&state);
    assert_ne!(std::fs::read(&file).unwrap(), written, "at stop");
    let before = a.models();
    drop(a);

    let a = Alarms::start("gw", "t".into(), vec![profile()], &state, START + 20 * STEP);
    assert_eq!(seen(&a), 20);
    assert_eq!(a.models(), before);
}

#[test]
fn a_damaged_models_file_or_model_learns_again_and_is_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    let state = State::open(dir.path()).unwrap();
    let file = dir.path().join(MODELS_FILE);
    let mut a = Alarms::start("gw", "t".into(), vec![profile()], &state, START);
    feed(&mut a, &state, 0, 30);
    a.flush(&state);
    let good = std::fs::read_to_string(&file).unwrap();
    drop(a);

    // One model's bytes damaged (its checksum no longer matches).
    let at = good.find("\"model\":\"").unwrap() + 40;
    let digit = if &good[at..at + 1] == "0" { "1" } else { "0" };
    let damaged = format!("{}{digit}{}", &good[..at], &good[at + 1..]);
    std::fs::write(&file, damaged).unwrap();
    let a = Alarms::start("gw", "t".into(), vec![profile()], &state, START + 30 * STEP);
    assert_eq!(seen(&a), 0, "learns again");
    drop(a);

    // The whole file is not JSON.
    std::fs::write(&file, b"\x00garbage").unwrap();
    let mut a = Alarms::start("gw", "t".into(), vec![profile()], &state, START + 30 * STEP);
    assert_eq!(seen(&a), 0);
    feed(&mut a, &state, 30, 35);
    a.flush(&state);
    let a = Alarms::start("gw", "t".into(), vec![profile()], &state, START + 35 * STEP);
    assert_eq!(seen(&a), 5, "rebuilt and written again");
}
