//! `detect-fleet check-config` says, per profile, what detect-fleet evaluates and what it does
//! not (issue #17 item 5), in its own terms rather than the agent's "on the device".
use detect_testkit::broker::Broker;
use detect_testkit::certs::Pki;
use detect_testkit::fleet::Fleet;
use serde_json::json;

#[test]
fn check_config_says_what_the_fleet_evaluates_and_what_it_does_not() {
    let pki = Pki::generate();
    let broker = Broker::start(&pki);
    let work = tempfile::tempdir().unwrap();
    let nothing = json!({
        "securityProfileName": "cloud-only",
        "behaviors": [
            {"name": "msgs", "metric": "aws:num-messages-sent",
             "criteria": {"comparisonOperator": "greater-than", "value": {"count": 10}, "durationSeconds": 300}},
            {"name": "kept", "metric": "aws:num-listening-tcp-ports"}
        ]
    });
    let some = json!({
        "securityProfileName": "mixed",
        "behaviors": [
            {"name": "p90", "metric": "aws:num-established-tcp-connections",
             "criteria": {"comparisonOperator": "greater-than", "durationSeconds": 300,
                          "statisticalThreshold": {"statistic": "p90"}}},
            {"name": "auth", "metric": "aws:num-authorization-failures",
             "criteria": {"comparisonOperator": "greater-than", "value": {"count": 5}, "durationSeconds": 300}}
        ]
    });
    let fleet = Fleet::configure(
        work.path(),
        &pki,
        &broker,
        &[nothing, some],
        &[("cloud-only", "all-things"), ("mixed", "all-things")],
        1,
    );
    let (ok, out, err) = fleet.cli(&["check-config"]);
    assert!(ok, "{out}{err}");
    let all = format!("{out}{err}");
    assert!(!all.contains("on the device"), "{all}");
    assert!(
        out.contains("warning: profile cloud-only: detect-fleet evaluates none of its 2 behaviors"),
        "{out}"
    );
    assert!(
        out.contains("behavior msgs: not evaluated by detect-fleet: aws:num-messages-sent is a cloud-side metric"),
        "{out}"
    );
    assert!(
        out.contains("behavior kept: not evaluated by detect-fleet: no criteria"),
        "{out}"
    );
    assert!(
        out.contains("profile mixed: detect-fleet evaluates p90\n"),
        "{out}"
    );
    assert!(
        out.contains("behavior auth: not evaluated by detect-fleet"),
        "{out}"
    );
}
