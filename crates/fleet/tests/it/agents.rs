//! detect-fleet end to end with real `detect-agent run` processes and a real mosquitto with
//! mutual TLS: the agents' reports are accepted, and a profile attached to a thing group
//! raises and clears an alarm for the thing in the group only.
use std::net::TcpListener;
use std::time::Duration;

use detect_testkit::alarms::Alarms;
use detect_testkit::broker::Broker;
use detect_testkit::certs::Pki;
use detect_testkit::eventually;
use detect_testkit::fleet::{Fleet, forbid_port};
use detect_testkit::fleet_agent as agent;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn agents_reports_are_accepted_and_a_group_profile_alarms_and_clears_only_for_the_thing_in_the_group()
 {
    let pki = Pki::generate();
    let broker = Broker::start(&pki);
    let work = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut fleet = Fleet::configure(
        work.path(),
        &pki,
        &broker,
        &[forbid_port("edge-baseline", port)],
        &[("edge-baseline", "group:gateways")],
        1,
    );
    let (ok, out, err) = fleet.cli(&["check-config"]);
    assert!(ok, "{err}");
    assert!(out.contains("1 profiles, 1 attachments"), "{out}");
    let (ok, _, err) = fleet.cli(&[
        "things", "add", "gw-1", "--group", "gateways", "--group", "edge",
    ]);
    assert!(ok, "{err}");
    fleet.start_subscribed().await;

    let alarms = Alarms::start(&pki, broker.port, "detect-fleet/alarms/+").await;
    let accepted = Alarms::start(
        &pki,
        broker.port,
        "$aws/things/+/defender/metrics/+/accepted",
    )
    .await;
    let dir = work.path();
    let gw = agent::spawn(
        dir,
        "gw-1",
        broker.port,
        &pki.ca,
        &pki.client_ec,
        "json",
        2,
        "",
    );
    let other = agent::spawn(
        dir,
        "other-1",
        broker.port,
        &pki.ca,
        &pki.client_sec1,
        "cbor",
        2,
        "",
    );

    // Both agents' reports are accepted, in their encoding, with the AWS answer shape.
    let both = eventually(Duration::from_secs(30), || {
        let got = accepted.received();
        [
            "gw-1/defender/metrics/json",
            "other-1/defender/metrics/cbor",
        ]
        .iter()
        .all(|t| got.iter().any(|(topic, _)| topic.contains(t)))
    })
    .await;
    assert!(
        both,
        "{:?}\n{}\n{}",
        accepted.received(),
        fleet.log(),
        other.log()
    );
    let json = accepted
        .received()
        .into_iter()
        .find(|(t, _)| t.contains("gw-1"))
        .unwrap()
        .1;
    assert_eq!(json["status"], "ACCEPTED", "{json}");
    assert_eq!(json["thingName"], "gw-1", "{json}");
    assert!(json["reportId"].as_u64().unwrap() > 0 && json["timestamp"].as_u64().is_some());
    let (_, things, _) = fleet.cli(&["things", "list"]);
    assert!(
        things
            .lines()
            .any(|l| l.starts_with("gw-1 ") && l.contains("gateways,edge")
                || l.starts_with("gw-1 ") && l.contains("edge,gateways")),
        "{things}"
    );
    assert!(
        things
            .lines()
            .any(|l| l.starts_with("other-1 ") && l.contains(" no ")),
        "{things}"
    );

    // Both devices now listen on the forbidden port (same host): only gw-1 is in the group.
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let raised = eventually(Duration::from_secs(30), || {
        !alarms.of_type("in-alarm").is_empty()
    })
    .await;
    assert!(raised, "{}\n{}", fleet.log(), gw.log());
    let e = alarms.of_type("in-alarm").remove(0);
    assert_eq!(e["thingName"], "gw-1", "{e}");
    assert_eq!(e["securityProfileName"], "edge-baseline", "{e}");
    assert_eq!(e["behavior"]["name"], "no-forbidden-listener", "{e}");
    assert!(
        e["metricValue"]["ports"]
            .as_array()
            .unwrap()
            .contains(&port.into()),
        "{e}"
    );
    let id = e["violationId"].as_str().unwrap().to_string();
    let active = fleet.violations(&["--active"]);
    assert_eq!(active.len(), 1, "{active:?}");
    assert_eq!(active[0]["violationId"], id.as_str());

    drop(listener);
    let cleared = eventually(Duration::from_secs(30), || {
        !alarms.of_type("alarm-cleared").is_empty()
    })
    .await;
    assert!(cleared, "{}", fleet.log());
    let c = alarms.of_type("alarm-cleared").remove(0);
    assert_eq!(c["violationId"], id.as_str(), "{c}");
    assert!(fleet.violations(&["--active"]).is_empty());
    // Nothing ever for the thing outside the group, and one event per transition.
    let all = alarms.received();
    assert!(
        all.iter()
            .all(|(t, v)| t == "detect-fleet/alarms/gw-1" && v["thingName"] == "gw-1"),
        "{all:?}"
    );
    assert_eq!(alarms.of_type("in-alarm").len(), 1, "{all:?}");
    assert_eq!(fleet.violations(&["--thing", "other-1"]).len(), 0);
    let history = fleet.violations(&["--thing", "gw-1", "--profile", "edge-baseline"]);
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(history[0]["endEventType"], "alarm-cleared");

    // An operator marks it.
    let (ok, _, err) = fleet.cli(&[
        "verify",
        &id,
        "--state",
        "BENIGN_POSITIVE",
        "--description",
        "port test",
    ]);
    assert!(ok, "{err}");
    let v = fleet.violations(&[]);
    assert_eq!(v[0]["verificationState"], "BENIGN_POSITIVE");
    assert_eq!(v[0]["verificationStateDescription"], "port test");
    let (ok, _, err) = fleet.cli(&["verify", "feedface", "--state", "UNKNOWN"]);
    assert!(!ok && err.contains("not found"), "{err}");
}
