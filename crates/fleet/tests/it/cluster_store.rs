//! `[store] kind = "nats"` end to end (issue #20 item 1): detect-fleet answers, raises and
//! clears an alarm, and serves `things`, `violations` and `verify` with every piece of state
//! in a real nats-server's JetStream, across a `kill -9`, and writes no database file;
//! `check-config` reaches the cluster.
use std::time::Duration;

use detect_testkit::broker::Broker;
use detect_testkit::certs::Pki;
use detect_testkit::eventually;
use detect_testkit::fleet::{Fleet, forbid_port};
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

#[tokio::test]
async fn the_nats_store_keeps_records_answers_and_violations_across_a_kill_9() {
    let pki = Pki::generate();
    let broker = Broker::start(&pki);
    let work = tempfile::tempdir().unwrap();
    let nats = Nats::start(work.path(), &[("fleet", "fleet password")]);
    let password = work.path().join("nats-password");
    std::fs::write(&password, "fleet password\n").unwrap();
    let dir = work.path().join("fleet");
    let profiles = [forbid_port("no-ssh", 22)];
    let mut fleet = Fleet::configure(
        &dir,
        &pki,
        &broker,
        &profiles,
        &[("no-ssh", "all-things")],
        1,
    );
    let mut text = std::fs::read_to_string(&fleet.config).unwrap();
    text.push_str(&format!(
        "[store]\nkind = \"nats\"\nservers = [{:?}]\nuser = \"fleet\"\npassword_file = {:?}\nreplicas = 1\n",
        nats.url(),
        password.display().to_string()
    ));
    std::fs::write(&fleet.config, text).unwrap();
    let (ok, out, err) = fleet.cli(&["check-config"]);
    assert!(
        ok && out.contains("state in NATS JetStream at nats://"),
        "{out} {err}"
    );
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
    let pki = Pki::generate();
    let broker = Broker::start(&pki);
    let work = tempfile::tempdir().unwrap();
    let fleet = Fleet::configure(work.path(), &pki, &broker, &[], &[], 1);
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
