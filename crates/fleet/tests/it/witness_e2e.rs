//! The broker's witness end to end (issue #18): Debian's mosquitto running the shipped
//! config/mosquitto/ (detect.conf, detect.acl) with detect-fleet's plugin loaded, the real
//! detect-fleet with `[broker] source = "mosquitto-plugin"` and 5 s windows, and real clients:
//! a detect-agent, mosquitto_pub/mosquitto_sub processes and rumqttc clients. One broker and one
//! fleet serve every case; each case is its own thing, so the cases do not disturb each other.
//! The plugin library must be built (`cargo build -p detect-mosquitto-plugin --profile
//! plugin`; scripts/test does it before the tests, see detect_testkit::bin::mosquitto_plugin).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use detect_testkit::broker::Broker;
use detect_testkit::certs::{Identity, Pki};
use detect_testkit::eventually;
use detect_testkit::fleet::Fleet;
use detect_testkit::fleet_agent as agent;
use serde_json::{Value, json};

use crate::authorization::client::connect;

mod quiet;

const WINDOW_SECS: u64 = 5;

fn report_topic(thing: &str) -> String {
    format!("$aws/things/{thing}/defender/metrics/json")
}

fn report(id: u64) -> String {
    detect_testkit::report_json(id).to_string()
}

/// The mosquitto client options for certificate `id`, client id `client_id`, from `source`.
fn args(pki: &Pki, broker: &Broker, id: &Identity, client_id: &str, source: &str) -> Vec<String> {
    let path = |p: &std::path::Path| p.display().to_string();
    [
        "-h",
        "127.0.0.1",
        "-p",
        &broker.port.to_string(),
        "-A",
        source,
        "--cafile",
        &path(&pki.ca),
        "--cert",
        &path(&id.cert),
        "--key",
        &path(&id.key),
        "-i",
        client_id,
        "-q",
        "1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// One mosquitto_pub: connect from 127.0.0.1, publish `message` on `topic`, disconnect.
fn publish(pki: &Pki, broker: &Broker, id: &Identity, client_id: &str, topic: &str, msg: &str) {
    let out = Command::new("mosquitto_pub")
        .args(args(pki, broker, id, client_id, "127.0.0.1"))
        .args(["-t", topic, "-m", msg])
        .output()
        .expect("run mosquitto_pub (apt-get install mosquitto-clients)");
    assert!(out.status.success(), "mosquitto_pub {client_id}: {out:?}");
}

/// A mosquitto_sub that stays connected as `thing` from `source`, on its own verdicts.
struct Online(Child);

impl Online {
    fn start(pki: &Pki, broker: &Broker, id: &Identity, thing: &str, source: &str) -> Online {
        let child = Command::new("mosquitto_sub")
            .args(args(pki, broker, id, thing, source))
            .args(["-t", &format!("{}/accepted", report_topic(thing))])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run mosquitto_sub (apt-get install mosquitto-clients)");
        Online(child)
    }
}

impl Drop for Online {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn behavior(name: &str, metric: &str, op: &str, value: Value) -> Value {
    json!({"name": name, "metric": metric,
           "criteria": {"comparisonOperator": op, "value": value, "durationSeconds": 300}})
}

/// Every cloud-side metric, on every thing (thresholds: a quiet device never crosses them).
fn profile() -> Value {
    json!({"securityProfileName": "witness", "behaviors": [
        behavior("attempts", "aws:num-connection-attempts", "less-than", json!({"count": 4})),
        behavior("disconnects", "aws:num-disconnects", "less-than", json!({"count": 4})),
        behavior("away", "aws:disconnect-duration", "less-than", json!({"count": 3})),
        {"name": "from", "metric": "aws:source-ip-address",
         "criteria": {"comparisonOperator": "in-cidr-set", "value": {"cidrs": ["127.0.0.1/32"]}}},
        behavior("sent", "aws:num-messages-sent", "less-than", json!({"count": 10})),
        behavior("received", "aws:num-messages-received", "less-than", json!({"count": 10})),
        behavior("size", "aws:message-byte-size", "less-than", json!({"count": 1000})),
        behavior("auth", "aws:num-authorization-failures", "less-than", json!({"count": 1})),
    ]})
}

/// (thing, behavior) of each case.
const CASES: [(&str, &str); 8] = [
    ("gw-storm", "attempts"),
    ("gw-storm", "disconnects"),
    ("gw-agent", "away"),
    ("gw-far", "from"),
    ("gw-flood", "sent"),
    ("gw-flood", "received"),
    ("gw-big", "size"),
    // the forged report for gw-b: gw-a's failure
    ("gw-a", "auth"),
];

/// Whether `thing` has a violation of `behavior` that ended with `end` ("" = still in alarm).
fn has(fleet: &Fleet, thing: &str, behavior: &str, cleared: bool) -> bool {
    fleet.violations(&["--thing", thing]).iter().any(|v| {
        v["behavior"]["name"] == behavior && (!cleared || v["endEventType"] == "alarm-cleared")
    })
}

/// Waits (at most 60 s) until every case has an alarm (`cleared`: a cleared one): whether all
/// have, and the cases that still have none.
async fn wait_cases(fleet: &Fleet, cleared: bool) -> (bool, Vec<(&'static str, &'static str)>) {
    let all = eventually(Duration::from_secs(60), || {
        CASES.iter().all(|(t, b)| has(fleet, t, b, cleared))
    })
    .await;
    let missing = CASES
        .into_iter()
        .filter(|(t, b)| !has(fleet, t, b, cleared))
        .collect();
    (all, missing)
}

/// mosquitto with the shipped files and the plugin enabled as detect.conf says (cert_identity,
/// no use_identity_as_username), and detect-fleet judging its events with `profile()`.
async fn start(pki: &Pki, work: &std::path::Path) -> (Broker, Fleet) {
    let broker = Broker::start_shipped_with_plugin(pki, "plugin_opt_flush_ms 250\n");
    let mut fleet = Fleet::configure(work, pki, &broker, &[profile()], &[], 1);
    let text = std::fs::read_to_string(&fleet.config).unwrap();
    let text = text.replacen(
        "client_id = \"detect-fleet-test\"\n",
        "client_id = \"detect-fleet\"\nsource = \"mosquitto-plugin\"\n",
        1,
    ) + "[[attach]]\nprofile = \"witness\"\ntarget = \"all-things\"\n";
    std::fs::write(&fleet.config, text).unwrap();
    fleet.set_fleet_key(&format!("duration_override_secs = {WINDOW_SECS}"));
    fleet.set_identity(&pki.issue_client("detect-fleet"));
    fleet.start_subscribed().await;
    (broker, fleet)
}

#[tokio::test]
async fn with_the_plugin_and_the_shipped_acl_each_cloud_side_metric_alarms_and_clears_and_forged_reports_and_verdicts_are_the_forgers_authorization_failures()
 {
    let pki = Pki::generate();
    let work = tempfile::tempdir().unwrap();
    let (broker, fleet) = start(&pki, work.path()).await;
    let id = |thing: &str| pki.issue_client(thing);
    let (agent_id, gw_a) = (id("gw-agent"), id("gw-a"));

    // Steady devices: an agent (killed below, so it is away) and one from another address.
    let spawn_agent = || {
        agent::spawn(
            work.path(),
            "gw-agent",
            broker.port,
            &pki.ca,
            &agent_id,
            "json",
            2,
            "",
        )
    };
    let mut gw_agent = Some(spawn_agent());
    let far = Online::start(&pki, &broker, &id("gw-far"), "gw-far", "127.0.0.2");
    // A reconnect storm: 12 connections, each publishing one report.
    let storm = id("gw-storm");
    for i in 0..12 {
        publish(
            &pki,
            &broker,
            &storm,
            "gw-storm",
            &report_topic("gw-storm"),
            &report(i),
        );
    }
    // A flood of 20 reports on one connection, each answered on the verdict it subscribed to.
    let flood_id = id("gw-flood");
    let verdicts = format!("{}/+", report_topic("gw-flood"));
    let flood = connect(&pki, &flood_id, None, "gw-flood", broker.port, &[&verdicts]).await;
    for i in 0..20 {
        flood
            .send(&report_topic("gw-flood"), report(100 + i).into_bytes())
            .await;
    }
    // One large message.
    let big = id("gw-big");
    let big_sends = |payload: &str| {
        publish(
            &pki,
            &broker,
            &big,
            "gw-big",
            "detect-agent/gw-big/alarms",
            payload,
        );
    };
    big_sends(&"x".repeat(4000));
    // gw-a forges a report and a verdict for gw-b: the ACL refuses both.
    let forged = [
        report_topic("gw-b"),
        format!("{}/accepted", report_topic("gw-b")),
    ];
    for topic in &forged {
        publish(&pki, &broker, &gw_a, "gw-a", topic, &report(7));
    }
    // The agent is killed once the fleet has its reports: the device is away.
    let reported = eventually(Duration::from_secs(30), || {
        fleet.cli(&["things", "list"]).1.contains("gw-agent ")
    })
    .await;
    assert!(reported, "{}", fleet.log());
    drop(gw_agent.take());

    let (raised, missing) = wait_cases(&fleet, false).await;
    assert!(raised, "no alarm: {missing:?}\n{}", fleet.log());

    // Back to normal: the agent returns, gw-far reconnects from 127.0.0.1, gw-big sends a
    // small message; the others are quiet windows.
    gw_agent = Some(spawn_agent());
    drop(far);
    let _near = Online::start(&pki, &broker, &id("gw-far"), "gw-far", "127.0.0.1");
    big_sends("small");
    let (cleared, missing) = wait_cases(&fleet, true).await;
    assert!(cleared, "not cleared: {missing:?}\n{}", fleet.log());

    // The forgeries: refused by the broker, never a report of gw-b, nothing for gw-b.
    let log = broker.log();
    for topic in forged {
        let quoted = format!("'{topic}'");
        let refused = log
            .lines()
            .any(|l| l.contains("Denied PUBLISH from gw-a (") && l.contains(&quoted));
        assert!(refused, "{topic}: {log}");
    }
    assert!(fleet.violations(&["--thing", "gw-b"]).is_empty());
    let (_, things, _) = fleet.cli(&["things", "list"]);
    assert!(!things.lines().any(|l| l.starts_with("gw-b ")), "{things}");
    let auth = fleet.violations(&["--thing", "gw-a"]);
    let auth = auth
        .iter()
        .find(|v| v["behavior"]["name"] == "auth")
        .unwrap();
    // Both denials counted: 2 in one window, or 1 in each of two windows in a row.
    let count = auth["lastViolationValue"]["count"].as_u64();
    assert!(matches!(count, Some(1 | 2)), "{auth}");
    let far = fleet.violations(&["--thing", "gw-far"]);
    let far = far
        .iter()
        .find(|v| v["behavior"]["name"] == "from")
        .unwrap();
    assert_eq!(
        far["lastViolationValue"]["cidrs"],
        json!(["127.0.0.2"]),
        "{far}"
    );
    drop(gw_agent);
}
