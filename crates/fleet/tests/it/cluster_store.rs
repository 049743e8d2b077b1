//! `[store] kind = "nats"` end to end (issue #20 item 1): detect-fleet answers, raises and
//! clears an alarm (alerted over MQTT once each), and serves `things`, `violations` and `verify` with every piece of state
//! in a real nats-server's JetStream, across a `kill -9`, and writes no database file;
//! `check-config` reaches the cluster.
use std::time::Duration;

use detect_testkit::alarms::Alarms;
use detect_testkit::broker::Broker;
use detect_testkit::certs::Pki;
use detect_testkit::eventually;
use detect_testkit::fleet::{Fleet, forbid_port, single};
use detect_testkit::nats::Nats;
use serde_json::{Value, json};

use super::answers::{client, send};

pub(crate) fn report(id: u64, ports: &[u16]) -> Vec<u8> {
    let ports: Vec<Value> = ports.iter().map(|p| json!({"port": p})).collect();
    let total = ports.len();
    serde_json::to_vec(&json!({
        "header": {"report_id": id, "version": "1.0"},
        "metrics": {"listening_tcp_ports": {"ports": ports, "total": total}}
    }))
    .unwrap()
}

/// A nats-server with JetStream and detect-fleet configured on it (`[store] kind = "nats"`,
/// a user and its password file), profile `no-ssh` attached to all things; not started.
fn nats_fleet(work: &std::path::Path, pki: &Pki, broker: &Broker) -> (Nats, Fleet) {
    let nats = Nats::start(work, &[("fleet", "fleet password")]);
    let password = work.join("nats-password");
    std::fs::write(&password, "fleet password\n").unwrap();
    let profiles = [forbid_port("no-ssh", 22)];
    let attach = [("no-ssh", "all-things")];
    let fleet = Fleet::configure(&work.join("fleet"), pki, broker, &profiles, &attach, 1);
    let mut text = std::fs::read_to_string(&fleet.config).unwrap();
    text.push_str(&format!(
        "[store]\nkind = \"nats\"\nservers = [{:?}]\nuser = \"fleet\"\npassword_file = {:?}\nreplicas = 1\n",
        nats.url(),
        password.display().to_string()
    ));
    std::fs::write(&fleet.config, text).unwrap();
    (nats, fleet)
}

#[tokio::test]
async fn the_nats_store_keeps_records_answers_and_violations_across_a_kill_9() {
    let pki = Pki::generate();
    let broker = Broker::start(&pki);
    let work = tempfile::tempdir().unwrap();
    let (_nats, mut fleet) = nats_fleet(work.path(), &pki, &broker);
    let dir = work.path().join("fleet");
    let (ok, out, err) = fleet.cli(&["check-config"]);
    assert!(
        ok && out.contains("state in NATS JetStream at nats://"),
        "{out} {err}"
    );
    let alarms = Alarms::start(&pki, broker.port, "detect-fleet/alarms/+").await;
    fleet.start_subscribed().await;
    let (c, got) = client(&pki, broker.port).await;

    let (topic, first) = send(&c, &got, "gw-1", "json", report(10, &[22])).await;
    assert!(topic.ends_with("/json/accepted"), "{topic} {first}");
    let v = fleet.violations(&["--active"]);
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0]["thingName"], "gw-1");
    let id = v[0]["violationId"].as_str().unwrap().to_string();

    // The state is in NATS: a new process after kill -9 answers a redelivery from it, and
    // the alarm stays one alarm.
    fleet.kill9();
    fleet.start_subscribed().await;
    let (_, again) = send(&c, &got, "gw-1", "json", report(10, &[22])).await;
    assert_eq!(again, first, "the stored answer");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (topic, _) = send(&c, &got, "gw-1", "json", report(11, &[22])).await;
    assert!(topic.ends_with("/accepted"));
    assert_eq!(fleet.violations(&[]).len(), 1, "still one alarm");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    send(&c, &got, "gw-1", "json", report(12, &[])).await;
    let cleared = || fleet.violations(&["--active"]).is_empty();
    assert!(eventually(Duration::from_secs(10), cleared).await);
    let all = fleet.violations(&[]);
    assert_eq!(all[0]["endEventType"], "alarm-cleared", "{all:?}");
    // Alerts from the outbox stream over MQTT: the alarm and its clear, once each, across
    // the kill -9.
    let both = || alarms.of_type("alarm-cleared").len() == 1;
    assert!(
        eventually(Duration::from_secs(10), both).await,
        "{:?}",
        alarms.received()
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let raised = alarms.of_type("in-alarm");
    assert_eq!(raised.len(), 1, "{:?}", alarms.received());
    assert_eq!(raised[0]["violationId"], id.as_str());

    let (ok, out, err) = fleet.cli(&["verify", &id, "--state", "TRUE_POSITIVE"]);
    assert!(ok, "{out} {err}");
    assert_eq!(
        fleet.violations(&[])[0]["verificationState"],
        "TRUE_POSITIVE"
    );
    let (ok, out, err) = fleet.cli(&["things", "add", "gw-2", "--group", "gateways"]);
    assert!(ok, "{out} {err}");
    let (_, things, _) = fleet.cli(&["things", "list"]);
    let row = things.lines().find(|l| l.starts_with("gw-1 ")).unwrap();
    assert!(row.contains(" 12 "), "{things}");
    assert!(things.lines().any(|l| l.starts_with("gw-2 ")), "{things}");
    assert!(
        !dir.join("fleet.db").exists(),
        "no local database in nats mode"
    );
}

#[tokio::test]
async fn an_unreachable_nats_store_is_an_error_naming_the_servers() {
    let (_pki, _broker, _work, fleet) = single(&[], &[]);
    // A loopback port nothing listens on (bound, then closed).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut text = std::fs::read_to_string(&fleet.config).unwrap();
    text.push_str(&format!(
        "[store]\nkind = \"nats\"\nservers = [\"nats://127.0.0.1:{port}\"]\ntimeout_secs = 2\n"
    ));
    std::fs::write(&fleet.config, text).unwrap();
    for args in [&["things", "list"][..], &["check-config"]] {
        let (ok, _, err) = fleet.cli(args);
        assert!(!ok, "{args:?}");
        let named = format!("nats servers nats://127.0.0.1:{port}");
        assert!(err.contains(&named), "{args:?}: {err}");
    }
}

/// `crash.rs`'s load run on the nats store: `kill -9` mid-run, and every thing still ends with
/// its last report stored, one alarm, notified once.
#[tokio::test]
async fn kill_9_during_a_load_run_on_the_nats_store_repeats_no_alarm() {
    const THINGS: u64 = 60;
    const ROUNDS: u64 = 5;
    let pki = Pki::generate();
    let broker = Broker::start(&pki);
    let work = tempfile::tempdir().unwrap();
    let (_nats, mut fleet) = nats_fleet(work.path(), &pki, &broker);
    fleet.start_subscribed().await;
    let alarms = Alarms::start(&pki, broker.port, "detect-fleet/alarms/+").await;
    let (c, _got) = client(&pki, broker.port).await;
    for round in 0..ROUNDS {
        for t in 0..THINGS {
            let topic = format!("$aws/things/load-{t:03}/defender/metrics/json");
            let payload = report(1000 + round, &[22]);
            c.publish(topic, rumqttc::QoS::AtLeastOnce, false, payload)
                .await
                .unwrap();
        }
        if round == 2 {
            tokio::time::sleep(Duration::from_millis(150)).await;
            fleet.kill9();
            tokio::time::sleep(Duration::from_millis(500)).await;
            fleet.start();
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    let last = 1000 + ROUNDS - 1;
    let all_stored = || {
        let (_, out, _) = fleet.cli(&["things", "list"]);
        let done = out.lines().filter(|l| l.contains(&format!(" {last} ")));
        done.count() == THINGS as usize
    };
    assert!(
        eventually(Duration::from_secs(60), all_stored).await,
        "{}",
        fleet.log()
    );
    let notified = || alarms.of_type("in-alarm").len() >= THINGS as usize;
    assert!(eventually(Duration::from_secs(20), notified).await);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let v = fleet.violations(&[]);
    let things: std::collections::BTreeSet<_> =
        v.iter().map(|v| v["thingName"].to_string()).collect();
    assert_eq!((v.len(), things.len()), (THINGS as usize, THINGS as usize));
    assert_eq!(
        alarms.of_type("in-alarm").len(),
        THINGS as usize,
        "a notification was sent twice"
    );
}
