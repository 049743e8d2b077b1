//! End-to-end test of `detect-agent dump --profile`: a listener the test opens makes a
//! `not-in-port-set` behavior violate, naming the port; the other behaviors say why not.

use std::net::TcpListener;

use detect_testkit::run::run_cli;

/// `dump ARGS`: exit code, stdout as one string, stderr as one string.
fn dump(args: &[&str]) -> (i32, String, String) {
    let mut all = vec!["dump"];
    all.extend_from_slice(args);
    let ran = run_cli(&all, b"");
    let join = |l: Vec<String>| l.iter().map(|l| format!("{l}\n")).collect::<String>();
    (ran.code, join(ran.stdout), join(ran.stderr))
}

#[test]
fn dump_with_a_profile_shows_the_listening_port_that_violates_and_why_others_do_not() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("p.json");
    std::fs::write(
        &profile,
        serde_json::json!({"securityProfileName": "lab", "behaviors": [
            {"name": "forbidden-port", "metric": "aws:listening-tcp-ports",
             "criteria": {"comparisonOperator": "not-in-port-set", "value": {"ports": [port]}}},
            {"name": "few-listeners", "metric": "aws:num-listening-tcp-ports",
             "criteria": {"comparisonOperator": "less-than-equals", "value": {"count": 100000}}},
            {"name": "out", "metric": "aws:all-bytes-out",
             "criteria": {"comparisonOperator": "less-than-equals", "value": {"count": 1}}},
            {"name": "p99", "metric": "aws:all-bytes-in",
             "criteria": {"comparisonOperator": "less-than", "statisticalThreshold": {"statistic": "p99"}, "durationSeconds": 300}}]})
        .to_string(),
    )
    .unwrap();
    let p = profile.display().to_string();
    let (code, table, stderr) = dump(&["--profile", &p]);
    assert_eq!(code, 0, "{stderr}");
    let row = |name: &str| {
        table
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(name))
            .unwrap_or_else(|| panic!("no row {name} in\n{table}"))
            .to_string()
    };
    let r = row("forbidden-port");
    assert!(
        r.contains("VIOLATING") && r.contains(&format!("aws:listening-tcp-ports: {port} ")),
        "{r}"
    );
    assert!(row("few-listeners").contains(" normal "), "{table}");
    assert!(row("out").contains("no datapoint"), "{table}");
    assert!(row("p99").contains("not evaluated"), "{table}");
    assert!(
        table.contains("DETECT this sample (4 behaviors, 1 violating"),
        "{table}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with(&format!("detect-agent: warning: {p}: behavior p99: ")),
        "{stderr}"
    );
    // A payload format cannot carry the section: one error line.
    let (code, _, stderr) = dump(&["--profile", &p, "--format", "json"]);
    assert_ne!(code, 0);
    assert_eq!(
        stderr.trim_end(),
        "detect-agent: error: --profile adds a section to the table: it needs --format table, not \"json\""
    );
    drop(listener);
}
