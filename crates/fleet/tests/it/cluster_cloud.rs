//! Cloud-side metrics in cluster mode (issue #20 item 3): two instances over a three-node
//! NATS cluster both read every batch of the mosquitto plugin; each counts and judges only the
//! things it owns, so each thing's cloud-side alarm is raised and cleared exactly once.
use std::time::Duration;

use detect_testkit::alarms::Alarms;
use detect_testkit::broker::Broker;
use detect_testkit::certs::Pki;
use detect_testkit::eventually;
use detect_testkit::fleet::{Fleet, logs};
use detect_testkit::nats_cluster::NatsCluster;
use serde_json::json;

use super::cloud_side::{WINDOW_SECS, behavior, client, disconnect, send, window_ahead};

const THINGS: usize = 12;

#[tokio::test]
async fn two_instances_judge_each_things_broker_events_once() {
    let pki = Pki::generate();
    let broker = Broker::start(&pki);
    let work = tempfile::tempdir().unwrap();
    let nats = NatsCluster::start(work.path());
    let alarms = Alarms::start(&pki, broker.port, "detect-fleet/alarms/+").await;
    let profile = json!({"securityProfileName": "flaps", "behaviors": [
        behavior("disconnects", "aws:num-disconnects", "less-than", json!({"count": 2}))]});
    let attach = [("flaps", "all-things")];
    let profiles = std::slice::from_ref(&profile);
    let mut fleets = nats.fleets(work.path(), &pki, &broker, &["a", "b"], profiles, &attach);
    for f in &fleets {
        f.set_fleet_key(&format!("duration_override_secs = {WINDOW_SECS}"));
        let text = std::fs::read_to_string(&f.config).unwrap();
        let id = "client_id = \"detect-fleet-test\"\n";
        let text = text.replacen(id, &format!("{id}source = \"mosquitto-plugin\"\n"), 1);
        std::fs::write(&f.config, text).unwrap();
    }
    for f in &mut fleets {
        f.start_subscribed().await;
    }
    let claimed = || fleets.iter().all(|f| f.log().contains(": Claimed"));
    assert!(
        eventually(Duration::from_secs(30), claimed).await,
        "{}",
        logs(&fleets)
    );
    // Let the partitions settle (a new member's share is released to it within 2 s).
    tokio::time::sleep(Duration::from_secs(4)).await;

    // Window A: three disconnects per thing (abnormal); window B, right after: none.
    let plugin = client(&pki, &broker, "plugin-sim").await;
    let a = window_ahead(2);
    let events = (0..THINGS)
        .flat_map(|i| (0..3).map(move |k| disconnect(a + 10 + k, &format!("dev-{i}"))))
        .collect();
    send(&plugin, "run-1", 0, events).await;
    let raised = || alarms.of_type("in-alarm").len() >= THINGS;
    assert!(
        eventually(Duration::from_secs(40), raised).await,
        "{:?}\n{}",
        alarms.received(),
        logs(&fleets)
    );
    let cleared = || alarms.of_type("alarm-cleared").len() >= THINGS;
    assert!(
        eventually(Duration::from_secs(40), cleared).await,
        "{:?}\n{}",
        alarms.received(),
        logs(&fleets)
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let t = alarms.transitions();
    assert_eq!(t.len(), THINGS, "one violation per thing: {t:#?}");
    for kinds in t.values() {
        assert_eq!(kinds, &["in-alarm", "alarm-cleared"], "{t:#?}");
    }
    let v = fleets[0].violations(&[]);
    assert_eq!(v.len(), THINGS, "{v:#?}");
    // Both instances read the batch and counted only their own things: between them, all.
    let counted = |f: &Fleet| -> (usize, usize) {
        let log = f.log();
        let line = log
            .lines()
            .find(|l| l.contains("seq=0") && l.contains("counted the owned things"))
            .unwrap_or_else(|| panic!("no batch line:\n{log}"))
            .to_string();
        let field = |k: &str| -> usize {
            let rest = &line[line.find(k).unwrap_or_else(|| panic!("{k}: {line}")) + k.len()..];
            rest.split(' ')
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("{line}"))
        };
        (field("things="), field("elsewhere="))
    };
    let (a, b) = (counted(&fleets[0]), counted(&fleets[1]));
    assert_eq!(a.0 + b.0, THINGS, "things counted by a {a:?} and b {b:?}");
    assert!(
        a.0 > 0 && b.0 > 0,
        "both instances own some things: a {a:?}, b {b:?}"
    );
    assert_eq!(
        a.1,
        3 * b.0 as u64 as usize,
        "a left b's events to b: a {a:?}, b {b:?}"
    );
}
