//! End-to-end tests of `detect-agent evaluate` on report files the test writes: the worked
//! example of detect-rules §9 in every encoding and on stdin, one error line for a bad profile
//! or report, warnings on stderr, and the shipped baseline profile.

use std::path::{Path, PathBuf};

use detect_agent::report::{Format, decode::decode, encode};
use detect_testkit::run::{Ran, run_cli};
use serde_json::{Value, json};

const FIXTURE: &str = "tests/fixtures/detect-worked-example";

/// `detect-agent evaluate ARGS` with `stdin`.
fn evaluate(args: &[&str], stdin: &[u8]) -> Ran {
    let mut all = vec!["evaluate"];
    all.extend_from_slice(args);
    run_cli(&all, stdin)
}

/// Writes `text` to `dir/name` and returns the path as a string.
fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn fixture(name: &str) -> String {
    format!("{FIXTURE}/{name}")
}

/// R1–R6 written by the test into `dir`, report i in format i mod 4 (all four encodings).
fn write_reports(dir: &Path) -> Vec<String> {
    (1..=6)
        .map(|i| {
            let bytes = std::fs::read(fixture(&format!("r{i}.json"))).unwrap();
            let report = decode(&bytes).unwrap().report;
            let format = Format::ALL[i % 4];
            let path = dir.join(format!("r{i}.{format}"));
            std::fs::write(&path, encode(&report, format).unwrap().bytes).unwrap();
            path.display().to_string()
        })
        .collect()
}

/// (time, behavior, type, metricValue) of each event line, and its violationId.
fn summary(lines: &[String]) -> Vec<(u64, String, String, Value, String)> {
    lines
        .iter()
        .map(|l| {
            let e: Value = serde_json::from_str(l).unwrap();
            assert_eq!(e["thingName"], "gw-01");
            assert_eq!(e["securityProfileName"], "edge-baseline");
            assert_eq!(e["verificationState"], "UNKNOWN");
            assert_eq!(e["reportId"], e["violationEventTime"]);
            let id = e["violationId"].as_str().unwrap().to_string();
            assert!(id.len() == 32 && id.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')));
            (
                e["violationEventTime"].as_u64().unwrap(),
                e["behavior"]["name"].as_str().unwrap().to_string(),
                e["violationEventType"].as_str().unwrap().to_string(),
                e["metricValue"].clone(),
                id,
            )
        })
        .collect()
}

fn assert_worked_example(lines: &[String]) {
    let got = summary(lines);
    let t = |k: u64| 1767225600000 + k * 300_000;
    let want = [
        (t(1), "no-telnet", "in-alarm", json!({"ports": [22, 23]})),
        (
            t(1),
            "no-private-dest",
            "in-alarm",
            json!({"cidrs": ["10.1.2.3", "203.0.113.7"]}),
        ),
        (t(1), "bytes-out", "in-alarm", json!({"count": 1500000})),
        (t(3), "tcp-conns", "in-alarm", json!({"count": 80})),
        (
            t(3),
            "no-private-dest",
            "alarm-cleared",
            json!({"cidrs": ["203.0.113.7"]}),
        ),
        (t(3), "bytes-out", "alarm-cleared", json!({"count": 300000})),
        (t(4), "no-telnet", "alarm-cleared", json!({"ports": []})),
        (t(5), "tcp-conns", "alarm-cleared", json!({"count": 30})),
    ];
    let plain: Vec<_> = got
        .iter()
        .map(|(t, b, k, v, _)| (*t, b.as_str(), k.as_str(), v.clone()))
        .collect();
    assert_eq!(plain, want);
    // One id per episode: in-alarm and its clear share it, episodes differ.
    let id = |b: &str, k: &str| got.iter().find(|e| e.1 == b && e.2 == k).unwrap().4.clone();
    let mut ids = Vec::new();
    for b in ["no-telnet", "no-private-dest", "bytes-out", "tcp-conns"] {
        assert_eq!(id(b, "in-alarm"), id(b, "alarm-cleared"), "{b}");
        ids.push(id(b, "in-alarm"));
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 4);
}

#[test]
fn the_worked_example_gives_its_eight_events_from_files_in_all_four_encodings() {
    let dir = tempfile::tempdir().unwrap();
    let reports = write_reports(dir.path());
    let profile = fixture("profile.json");
    let mut args = vec!["--profile", &profile, "--thing", "gw-01"];
    args.extend(reports.iter().map(String::as_str));
    let run = evaluate(&args, b"");
    assert_eq!(run.code, 0, "{:?}", run.stderr);
    assert!(run.stderr.is_empty(), "{:?}", run.stderr);
    assert_worked_example(&run.stdout);
    // The same input gives the same output (ids from a fixed seed), so outputs can be diffed:
    // byte for byte the golden file of the fixture.
    let golden = std::fs::read_to_string(fixture("events.jsonl")).unwrap();
    assert_eq!(run.stdout, golden.lines().collect::<Vec<_>>());
}

#[test]
fn the_worked_example_gives_its_eight_events_from_json_lines_on_stdin() {
    let mut lines = Vec::new();
    for i in 1..=6 {
        lines.extend(std::fs::read(fixture(&format!("r{i}.json"))).unwrap());
    }
    let profile = fixture("profile.json");
    let run = evaluate(&["--profile", &profile, "--thing", "gw-01"], &lines);
    assert_eq!(run.code, 0, "{:?}", run.stderr);
    assert_worked_example(&run.stdout);
    let dash = evaluate(&["--profile", &profile, "--thing", "gw-01", "-"], &lines);
    assert_eq!(dash.stdout, run.stdout);
    let table = evaluate(&["--profile", &profile, "--format", "table"], &lines);
    assert_eq!(table.stdout.len(), 9, "{:?}", table.stdout);
    assert!(table.stdout[0].starts_with("TIME (ms)"));
    assert!(table.stdout[1].contains("no-telnet") && table.stdout[1].contains("in-alarm"));
}

#[test]
fn a_bad_profile_is_one_error_line_naming_file_behavior_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(
        dir.path(),
        "bad.json",
        r#"{"securityProfileName": "p", "behaviors": [
            {"name": "conns", "metric": "aws:num-established-tcp-connections",
             "criteria": {"comparisonOperator": "in-port-set", "value": {"ports": [1]}}},
            {"name": "slow", "metric": "aws:all-bytes-out",
             "criteria": {"comparisonOperator": "less-than", "value": {"count": 1}, "consecutiveDatapointsToAlarm": 0}}]}"#,
    );
    let run = evaluate(&["--profile", &bad], b"");
    assert_ne!(run.code, 0);
    assert!(run.stdout.is_empty());
    assert_eq!(run.stderr.len(), 1, "{:?}", run.stderr);
    let line = &run.stderr[0];
    assert!(line.starts_with(&format!("detect-agent: error: {bad}: behavior conns: criteria.comparisonOperator: in-port-set does not apply")), "{line}");
    assert!(
        line.contains("behavior slow: criteria.consecutiveDatapointsToAlarm: 0 is outside 1-10"),
        "{line}"
    );
}

#[test]
fn evaluate_without_a_profile_names_the_missing_flag_on_one_line() {
    let run = evaluate(&[], b"");
    assert_eq!(run.code, 2);
    assert_eq!(
        run.stderr,
        vec![
            "detect-agent: error: the following required arguments were not provided: --profile <FILE> (see --help)"
        ]
    );
}

#[test]
fn a_bad_report_is_one_error_line_naming_file_and_report_index() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read_to_string(fixture("r1.json")).unwrap();
    let second = r#"{"hed": {"rid": 2, "version": "1.0"}, "met": {}}"#;
    let file = write(dir.path(), "lines.json", &format!("{good}{second}\n"));
    let profile = fixture("profile.json");
    let run = evaluate(&["--profile", &profile, &file], b"");
    assert_ne!(run.code, 0);
    assert_eq!(
        run.stderr,
        vec![format!(
            "detect-agent: error: {file}: report 2: hed: key \"version\" is a long key but this report uses short keys: a report uses long keys or short keys throughout, never both"
        )]
    );
    let run = evaluate(&["--profile", &profile], b"{\"header\": ");
    assert_eq!(run.stderr.len(), 1, "{:?}", run.stderr);
    assert!(
        run.stderr[0].starts_with("detect-agent: error: stdin: report 1 (line 1): not JSON"),
        "{:?}",
        run.stderr
    );
}

#[test]
fn behaviors_the_device_does_not_evaluate_are_warnings_on_stderr_and_the_run_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "p.json",
        r#"{"securityProfileName": "p", "behaviors": [
            {"name": "auth", "metric": "aws:num-authorization-failures",
             "criteria": {"comparisonOperator": "less-than", "value": {"count": 5}, "durationSeconds": 300}},
            {"name": "ml-out", "metric": "aws:all-bytes-out", "criteria": {"mlDetectionConfig": {"confidenceLevel": "HIGH"}}}]}"#,
    );
    let r1 = fixture("r1.json");
    let run = evaluate(&["--profile", &p, &r1], b"");
    assert_eq!(run.code, 0);
    assert!(run.stdout.is_empty());
    // The ML behavior is evaluated (it learns; one report alarms nothing): no warning.
    assert_eq!(run.stderr.len(), 1, "{:?}", run.stderr);
    assert!(run.stderr[0].starts_with(&format!(
        "detect-agent: warning: {p}: behavior auth: criteria: not evaluated on the device"
    )));
}

#[test]
fn the_shipped_baseline_profile_alarms_on_telnet_and_the_blocklist_slot_loads() {
    let baseline = PathBuf::from("config/profiles/baseline.json")
        .display()
        .to_string();
    let dir = tempfile::tempdir().unwrap();
    let r = write(
        dir.path(),
        "telnet.json",
        &json!({"header": {"report_id": 1767225600000u64, "version": "1.0"},
            "metrics": {"listening_tcp_ports": {"ports": [{"port": 2323}, {"port": 8883}], "total": 2},
                        "listening_udp_ports": {"ports": [], "total": 0},
                        "tcp_connections": {"established_connections": {"connections": [], "total": 3}}}})
        .to_string(),
    );
    let run = evaluate(&["--profile", &baseline, &r], b"");
    assert_eq!(run.code, 0, "{:?}", run.stderr);
    assert!(run.stderr.is_empty(), "{:?}", run.stderr);
    let events = summary_any(&run.stdout);
    assert_eq!(
        events,
        vec![("no-telnet".to_string(), json!({"ports": [2323, 8883]}))]
    );
}

fn summary_any(lines: &[String]) -> Vec<(String, Value)> {
    lines
        .iter()
        .map(|l| {
            let e: Value = serde_json::from_str(l).unwrap();
            (
                e["behavior"]["name"].as_str().unwrap().to_string(),
                e["metricValue"].clone(),
            )
        })
        .collect()
}

#[test]
fn a_report_with_null_local_interfaces_is_evaluated_whole() {
    // AWS's Python agent on a dual-stack server writes `"local_interface": null` for every
    // IPv4 client; the report is read as if the key were absent (protocol doc §1.4).
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "p.json",
        r#"{"securityProfileName": "p", "behaviors": [
            {"name": "no-private-dest", "metric": "aws:destination-ip-addresses",
             "criteria": {"comparisonOperator": "not-in-cidr-set", "value": {"cidrs": ["10.0.0.0/8"]}}}]}"#,
    );
    let long = json!({"header": {"report_id": 1796551004, "version": "1.0"},
        "metrics": {"tcp_connections": {"established_connections": {"connections": [
            {"remote_addr": "192.0.2.10:50000", "local_port": 8080, "local_interface": null},
            {"remote_addr": "10.1.2.3:445", "local_port": 41000, "local_interface": "eth0"}],
            "total": 2}}}});
    let short = json!({"hed": {"rid": 1796551005, "v": "1.0"},
        "met": {"tc": {"ec": {"cs": [
            {"rad": "10.1.2.3:445", "lp": 41000, "li": null},
            {"rad": "192.0.2.10:50000", "lp": 8080, "li": null}]}}}});
    let file = write(dir.path(), "r.json", &long.to_string());
    let run = evaluate(&["--profile", &p, &file, "-"], short.to_string().as_bytes());
    assert_eq!(run.code, 0, "{:?}", run.stderr);
    assert!(run.stderr.is_empty(), "{:?}", run.stderr);
    assert_eq!(
        summary_any(&run.stdout),
        vec![(
            "no-private-dest".to_string(),
            json!({"cidrs": ["10.1.2.3", "192.0.2.10"]})
        )]
    );
}
