//! Tests of the detect stage with real files: restart, reload, damaged state, traffic deltas.

use super::*;

fn sample(bytes_out: u64) -> Sample {
    let counters = crate::collect::Counters {
        bytes_out,
        ..Default::default()
    };
    Sample {
        sockets: crate::collect::SocketTable {
            tcp_listen: Vec::new(),
            udp_listen: Vec::new(),
            tcp_established: Vec::new(),
            source: crate::collect::SocketSource::ProcNet,
        },
        counters: [("eth0".to_string(), counters)].into(),
        boot_id: Some("boot".into()),
    }
}

#[test]
fn traffic_is_since_the_previous_sample_whatever_the_reports_settled() {
    let dir = tempfile::tempdir().unwrap();
    let state = State::open(dir.path()).unwrap();
    let mut a = Alarms::start("gw", "t".into(), Vec::new(), &state, 1);
    assert_eq!(a.traffic(&sample(1_000), 1), None, "no previous sample");
    let out = |s: Option<NetworkStats>| s.map(|s| s.bytes_out);
    assert_eq!(out(a.traffic(&sample(1_500), 1)), Some(500));
    assert_eq!(out(a.traffic(&sample(1_600), 1)), Some(100));
    // A counter reset is a restart of that interface, never a negative or huge delta.
    assert_eq!(out(a.traffic(&sample(10), 1)), Some(0));
    assert_eq!(out(a.traffic(&sample(60), 1)), Some(50));
}

#[test]
fn after_a_start_the_settled_baseline_is_the_previous_sample_within_one_and_a_half_intervals() {
    let dir = tempfile::tempdir().unwrap();
    let state = State::open(dir.path()).unwrap();
    let s = sample(1_000);
    let settled = Baseline::new(s.boot_id.as_deref(), &s.counters);
    let interval = std::time::Duration::from_secs(300);
    let first = |sample_id: Option<u64>, report_id: u64| {
        let mut a = Alarms::start("gw", "t".into(), Vec::new(), &state, 1);
        a.previous_sample(&settled, sample_id, interval);
        a.traffic(&sample(1_500), report_id).map(|s| s.bytes_out)
    };
    let id = 1_767_225_600_000;
    assert_eq!(first(Some(id), id + 300_000), Some(500), "the next slot");
    assert_eq!(first(Some(id), id + 450_000), Some(500));
    assert_eq!(first(Some(id), id + 450_001), None, "a slot was missed");
    assert_eq!(
        first(None, id + 300_000),
        None,
        "the last report did not settle"
    );
}

fn profile() -> Profile {
    let text = r#"{"securityProfileName": "p", "behaviors": [{"name": "no-telnet",
        "metric": "aws:listening-tcp-ports",
        "criteria": {"comparisonOperator": "not-in-port-set", "value": {"ports": [23]}}}]}"#;
    crate::detect::profile::parse(text, std::path::Path::new("p.json"))
        .unwrap()
        .0
}

fn report(id: u64, ports: &[u16]) -> Report {
    let mut s = sample(0);
    s.sockets.tcp_listen = ports
        .iter()
        .map(|p| crate::collect::Socket {
            proto: crate::collect::Proto::Tcp,
            local: ([0, 0, 0, 0], *p).into(),
            remote: ([0, 0, 0, 0], 0).into(),
            inode: 0,
            interface: None,
        })
        .collect();
    crate::report::build(&s.sockets, None, id)
}

fn queued(dir: &std::path::Path) -> Vec<Event> {
    let text = std::fs::read_to_string(dir.join("outbox.jsonl")).unwrap_or_default();
    text.lines()
        .map(|l| serde_json::from_str::<Message>(l).unwrap())
        .map(|m| serde_json::from_str(&m.payload).unwrap())
        .collect()
}

#[test]
fn a_restart_keeps_the_alarm_and_its_clear_and_a_reload_without_it_invalidates_it() {
    let dir = tempfile::tempdir().unwrap();
    let state = State::open(dir.path()).unwrap();
    let mut a = Alarms::start("gw", "t/alarms".into(), vec![profile()], &state, 1);
    a.evaluate(&mut report(1_000, &[22]), None, &state);
    a.evaluate(&mut report(2_000, &[22, 23]), None, &state);
    assert_eq!(a.active(), 1);
    let q = queued(dir.path());
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].violation_event_type, EventType::InAlarm);
    assert_eq!(q[0].report_id, Some(2_000));
    let id = q[0].violation_id.clone();
    drop(a);

    // Restart: the alarm is back, nothing repeated; the clear carries the same id.
    let mut a = Alarms::start("gw", "t/alarms".into(), vec![profile()], &state, 3);
    assert_eq!(a.active(), 1);
    a.evaluate(&mut report(3_000, &[22, 23]), None, &state);
    assert_eq!(queued(dir.path()).len(), 1);
    a.evaluate(&mut report(4_000, &[22]), None, &state);
    let q = queued(dir.path());
    assert_eq!(q.len(), 2);
    assert_eq!(q[1].violation_event_type, EventType::AlarmCleared);
    assert_eq!(q[1].violation_id, id);
    assert_eq!(a.active(), 0);

    // Raised again, then the profile is gone at the next start (a reload): invalidated.
    a.evaluate(&mut report(5_000, &[23]), None, &state);
    a.flush(&state);
    let a = Alarms::start("gw", "t/alarms".into(), Vec::new(), &state, 6_000);
    assert_eq!(a.active(), 0);
    let q = queued(dir.path());
    assert_eq!(q.len(), 4);
    assert_eq!(q[3].violation_event_type, EventType::AlarmInvalidated);
    assert_eq!(q[3].violation_id, q[2].violation_id);
    assert_ne!(q[2].violation_id, id);
}

#[test]
fn a_damaged_alarm_state_file_starts_clean() {
    let dir = tempfile::tempdir().unwrap();
    let state = State::open(dir.path()).unwrap();
    std::fs::write(dir.path().join("alarms.json"), b"{\"behav").unwrap();
    let mut a = Alarms::start("gw", "t".into(), vec![profile()], &state, 1);
    assert_eq!(a.active(), 0);
    a.evaluate(&mut report(1_000, &[23]), None, &state);
    assert_eq!(a.active(), 1);
    let saved = std::fs::read_to_string(dir.path().join("alarms.json")).unwrap();
    assert!(saved.contains("no-telnet"), "{saved}");
}

#[test]
fn a_run_moving_from_one_behavior_to_another_is_written() {
    let text = r#"{"securityProfileName": "p", "behaviors": [
        {"name": "no-telnet", "metric": "aws:listening-tcp-ports", "criteria": {"comparisonOperator":
         "not-in-port-set", "value": {"ports": [23]}, "consecutiveDatapointsToAlarm": 2}},
        {"name": "no-ftp", "metric": "aws:listening-tcp-ports", "criteria": {"comparisonOperator":
         "not-in-port-set", "value": {"ports": [21]}, "consecutiveDatapointsToAlarm": 2}}]}"#;
    let profile = || {
        crate::detect::profile::parse(text, std::path::Path::new("p.json"))
            .unwrap()
            .0
    };
    let dir = tempfile::tempdir().unwrap();
    let state = State::open(dir.path()).unwrap();
    let mut a = Alarms::start("gw", "t".into(), vec![profile()], &state, 1);
    a.evaluate(&mut report(1_000, &[23]), None, &state);
    // no-telnet's run ends as no-ftp's starts: one run of 1 in both states, another behavior.
    a.evaluate(&mut report(2_000, &[21]), None, &state);
    drop(a);
    let mut a = Alarms::start("gw", "t".into(), vec![profile()], &state, 3);
    a.evaluate(&mut report(3_000, &[21]), None, &state);
    let q = queued(dir.path());
    assert_eq!(q.len(), 1, "the restart kept no-ftp's run of 1: {q:?}");
    assert_eq!(q[0].behavior_name(), "no-ftp");
    assert_eq!(q[0].violation_event_type, EventType::InAlarm);
}
