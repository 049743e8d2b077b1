//! The shipped mosquitto configuration and ACL (config/mosquitto/) with real clients: each
//! device reaches only its own topics whatever client id it picks; detect-fleet reaches all.
pub(crate) mod client;
mod client_id;

use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

use client::{Client, connect};
use detect_testkit::broker::Broker;
use detect_testkit::certs::{Identity, Pki};
use detect_testkit::eventually;
use detect_testkit::fleet::{Fleet, forbid_port};
use detect_testkit::fleet_agent as agent;

const GW_B_REPORT: &str = "$aws/things/gw-b/defender/metrics/json";
const GW_B_ACCEPTED: &str = "$aws/things/gw-b/defender/metrics/json/accepted";

/// detect-fleet on `broker`, logged in as `id` (the shipped ACL's `detect-fleet`), subscribed.
async fn fleet(work: &Path, pki: &Pki, broker: &Broker, id: &Identity) -> Fleet {
    let mut fleet = Fleet::configure(work, pki, broker, &[], &[], 1);
    fleet.set_identity(id);
    fleet.start_subscribed().await;
    fleet
}

/// The shipped broker and a subscribed fleet as `detect-fleet`, working in `work`.
async fn shipped_with_fleet(pki: &Pki, work: &Path) -> (Broker, Fleet) {
    let broker = Broker::start_shipped(pki);
    let fleet = fleet(work, pki, &broker, &pki.issue_client("detect-fleet")).await;
    (broker, fleet)
}

fn report(id: u64) -> Vec<u8> {
    serde_json::to_vec(&detect_testkit::report_json(id)).unwrap()
}

/// Waits (at most 20 s) for the broker's `Denied PUBLISH from CLIENT_ID (… 'TOPIC' …)` line.
async fn denied(broker: &Broker, client_id: &str, topic: &str) -> bool {
    let from = format!("Denied PUBLISH from {client_id} (");
    let topic = format!("'{topic}'");
    eventually(Duration::from_secs(20), || {
        broker
            .log()
            .lines()
            .any(|l| l.contains(&from) && l.contains(&topic))
    })
    .await
}

fn listed(fleet: &Fleet, thing: &str) -> bool {
    let (_, out, _) = fleet.cli(&["things", "list"]);
    out.lines().any(|l| l.starts_with(&format!("{thing} ")))
}

#[tokio::test]
async fn with_the_shipped_acl_an_agent_gets_its_verdicts_and_its_on_device_alarms_reach_the_fleet_identity()
 {
    let pki = Pki::generate();
    let broker = Broker::start_shipped(&pki);
    let work = tempfile::tempdir().unwrap();
    let fleet_id = pki.issue_client("detect-fleet");
    let fleet = fleet(work.path(), &pki, &broker, &fleet_id).await;
    let watcher = connect(
        &pki,
        &fleet_id,
        None,
        "alarm-watcher",
        broker.port,
        &["detect-agent/+/alarms"],
    )
    .await;
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let profile = work.path().join("on-device.json");
    let text = serde_json::to_vec(&forbid_port("on-device", port)).unwrap();
    std::fs::write(&profile, text).unwrap();
    let extra = format!(
        "[detect]\nprofiles = [{:?}]\n",
        profile.display().to_string()
    );
    let gw = pki.issue_client("gw-a");
    let dir = work.path();
    let agent = agent::spawn(dir, "gw-a", broker.port, &pki.ca, &gw, "json", 2, &extra);

    // agent → detect-fleet → verdict back to the agent.
    let answered = eventually(Duration::from_secs(30), || {
        agent.log().contains("the backend answers with verdicts") && listed(&fleet, "gw-a")
    })
    .await;
    assert!(answered, "{}\n{}", agent.log(), fleet.log());
    // The agent's on-device alarm, on its own topic, reaches the fleet's identity.
    let _listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let alarmed = eventually(Duration::from_secs(30), || {
        watcher
            .received()
            .iter()
            .any(|(t, p)| t == "detect-agent/gw-a/alarms" && p.contains("in-alarm"))
    })
    .await;
    assert!(alarmed, "{:?}\n{}", watcher.received(), agent.log());
    assert!(!broker.log().contains("Denied PUBLISH"), "{}", broker.log());
}

#[tokio::test]
async fn a_device_cannot_publish_a_report_for_another_thing_even_under_that_things_client_id() {
    let pki = Pki::generate();
    let work = tempfile::tempdir().unwrap();
    let (broker, fleet) = shipped_with_fleet(&pki, work.path()).await;
    let gw_a = pki.issue_client("gw-a");
    let honest: Client = connect(&pki, &gw_a, None, "gw-a", broker.port, &[]).await;
    honest.send(GW_B_REPORT, report(7)).await;
    let posing = connect(&pki, &gw_a, None, "gw-b", broker.port, &[]).await;
    posing.send(GW_B_REPORT, report(8)).await;
    assert!(
        denied(&broker, "gw-a", GW_B_REPORT).await,
        "{}",
        broker.log()
    );
    assert!(
        denied(&broker, "gw-b", GW_B_REPORT).await,
        "{}",
        broker.log()
    );
    // Its own topic works under either client id, and is recorded as gw-a (the user name).
    posing
        .send("$aws/things/gw-a/defender/metrics/json", report(9))
        .await;
    let own = eventually(Duration::from_secs(20), || listed(&fleet, "gw-a")).await;
    assert!(own, "{}", fleet.log());
    assert!(
        !listed(&fleet, "gw-b"),
        "{}",
        fleet.cli(&["things", "list"]).1
    );
}

#[tokio::test]
async fn a_device_can_neither_forge_another_things_verdict_nor_read_it_even_under_its_client_id() {
    let pki = Pki::generate();
    let work = tempfile::tempdir().unwrap();
    let (broker, fleet) = shipped_with_fleet(&pki, work.path()).await;
    let (gw_a, gw_b) = (pki.issue_client("gw-a"), pki.issue_client("gw-b"));
    let port = broker.port;
    let owner = connect(&pki, &gw_b, None, "gw-b-verdicts", port, &[GW_B_ACCEPTED]).await;
    let spy = connect(
        &pki,
        &gw_a,
        None,
        "gw-b",
        port,
        &[GW_B_ACCEPTED, "$aws/things/+/defender/metrics/+/+"],
    )
    .await;
    let forged = br#"{"thingName":"gw-b","reportId":99,"status":"ACCEPTED","timestamp":1}"#;
    spy.send(GW_B_ACCEPTED, forged.to_vec()).await;
    assert!(
        denied(&broker, "gw-b", GW_B_ACCEPTED).await,
        "{}",
        broker.log()
    );
    let reporter = connect(&pki, &gw_b, None, "gw-b-reports", port, &[]).await;
    reporter.send(GW_B_REPORT, report(5)).await;
    let got = eventually(Duration::from_secs(20), || {
        owner
            .received()
            .iter()
            .any(|(_, p)| p.contains(r#""reportId":5"#))
    })
    .await;
    assert!(got, "{:?}\n{}", owner.received(), fleet.log());
    // Delivered to every subscriber in the same pass: a late copy would be here by now.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(owner.received().len(), 1, "{:?}", owner.received());
    assert!(spy.received().is_empty(), "{:?}", spy.received());
}

#[tokio::test]
async fn a_device_cannot_publish_on_the_broker_event_topics() {
    let pki = Pki::generate();
    let broker = Broker::start_shipped(&pki);
    let fleet_id = pki.issue_client("detect-fleet");
    let port = broker.port;
    let reader = connect(&pki, &fleet_id, None, "events", port, &["$detect/broker/#"]).await;
    let gw_a = pki.issue_client("gw-a");
    let device = connect(&pki, &gw_a, None, "gw-a", port, &[]).await;
    let fake = br#"{"ev":"disconnect","client_id":"gw-b"}"#.to_vec();
    device.send("$detect/broker/events", fake).await;
    assert!(
        denied(&broker, "gw-a", "$detect/broker/events").await,
        "{}",
        broker.log()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(reader.received().is_empty(), "{:?}", reader.received());
}

#[tokio::test]
async fn with_the_password_variant_a_device_reaches_only_its_own_topics() {
    let pki = Pki::generate();
    let users = [
        ("gw-a", "pw a"),
        ("gw-b", "pw b"),
        ("detect-fleet", "pw fleet"),
    ];
    let broker = Broker::start_shipped_with_passwords(&pki, &users);
    let port = broker.port;
    // Any certificate: the listener does not ask for one, the user name is who logs in.
    let tls = &pki.client_ec;
    let fleet = connect(
        &pki,
        tls,
        Some(users[2]),
        "detect-fleet",
        port,
        &["$aws/things/+/defender/metrics/json"],
    )
    .await;
    let owner = connect(&pki, tls, Some(users[1]), "gw-b", port, &[GW_B_ACCEPTED]).await;
    let device = connect(&pki, tls, Some(users[0]), "gw-b-2", port, &[]).await;
    device.send(GW_B_REPORT, report(1)).await;
    device.send(GW_B_ACCEPTED, b"{}".to_vec()).await;
    device
        .send("$aws/things/gw-a/defender/metrics/json", report(2))
        .await;
    let own = eventually(Duration::from_secs(20), || !fleet.received().is_empty()).await;
    assert!(own, "{}", broker.log());
    assert!(
        denied(&broker, "gw-b-2", GW_B_ACCEPTED).await,
        "{}",
        broker.log()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let topics: Vec<String> = fleet.received().into_iter().map(|(t, _)| t).collect();
    assert_eq!(topics, ["$aws/things/gw-a/defender/metrics/json"]);
    assert!(owner.received().is_empty(), "{:?}", owner.received());
}
