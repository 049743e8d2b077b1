//! Cloud-side metrics (issue #18 item 1): a real mosquitto, the real fleet with
//! `[broker] source = "mosquitto-plugin"`, and batches published by the test on
//! `$detect/broker/events` as the plugin would. Windows are shrunk with
//! `duration_override_secs`; events are stamped into windows a few seconds ahead, so every
//! batch is counted before its window closes, whatever the machine's load.
use std::time::Duration;

use detect_testkit::now_ms;

use detect_testkit::alarms::Alarms;
use detect_testkit::backend::tls;
use detect_testkit::broker::Broker;
use detect_testkit::certs::Pki;
use detect_testkit::eventually;
use detect_testkit::fleet::Fleet;
use protocol::broker::{Access, BROKER_EVENTS_TOPIC, Batch, Direction, Event};
use rumqttc::{AsyncClient, MqttOptions, QoS, Transport};
use serde_json::{Value, json};

pub(super) const WINDOW_SECS: u64 = 4;

/// The start of the window `ahead` windows after the current one.
pub(super) fn window_ahead(ahead: u64) -> u64 {
    let w = WINDOW_SECS * 1000;
    (now_ms() / w + ahead) * w
}

/// A fleet reading the plugin's batches, windows of `WINDOW_SECS`, `profiles` on all things.
fn fleet(
    work: &std::path::Path,
    pki: &Pki,
    broker: &Broker,
    profiles: &[Value],
    source: &str,
) -> Fleet {
    let names: Vec<String> = profiles
        .iter()
        .map(|p| p["securityProfileName"].as_str().unwrap().to_string())
        .collect();
    let attach: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "all-things")).collect();
    let fleet = Fleet::configure(work, pki, broker, profiles, &attach, 1);
    fleet.set_fleet_key(&format!("duration_override_secs = {WINDOW_SECS}"));
    let text = std::fs::read_to_string(&fleet.config).unwrap();
    let id = "client_id = \"detect-fleet-test\"\n";
    let text = text.replacen(id, &format!("{id}source = {source:?}\n"), 1)
        + "[[dimension]]\nname = \"reports\"\ntype = \"TOPIC_FILTER\"\nvalues = [\"$aws/things/${iot:ClientId}/defender/#\"]\n";
    std::fs::write(&fleet.config, text).unwrap();
    fleet
}

/// A connected MQTT client standing in for the plugin (or a device).
pub(super) async fn client(pki: &Pki, broker: &Broker, id: &str) -> AsyncClient {
    let mut o = MqttOptions::new(id, "127.0.0.1", broker.port);
    o.set_transport(Transport::tls_with_config(tls(pki, &pki.client_ec)));
    let (c, mut el) = AsyncClient::new(o, 10);
    tokio::spawn(async move {
        loop {
            if el.poll().await.is_err() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
    c
}

pub(super) async fn send(c: &AsyncClient, instance: &str, seq: u64, events: Vec<Event>) {
    let batch = Batch {
        v: 1,
        source: "mosquitto".into(),
        instance: instance.into(),
        seq,
        sent_ms: now_ms(),
        dropped: 0,
        events,
    };
    c.publish(BROKER_EVENTS_TOPIC, QoS::AtLeastOnce, false, batch.encode())
        .await
        .unwrap();
}

fn connect(at_ms: u64, thing: &str, ip: &str, ok: bool) -> Event {
    let (client_id, ip) = (thing.into(), ip.into());
    Event::Connect {
        at_ms,
        client_id,
        ip,
        ok,
    }
}

pub(super) fn disconnect(at_ms: u64, thing: &str) -> Event {
    let (client_id, ip) = (thing.into(), "127.0.0.1".into());
    Event::Disconnect {
        at_ms,
        client_id,
        ip,
        connected_ms: Some(10),
    }
}

fn traffic(from_ms: u64, thing: &str, topic: &str, dir: Direction, msgs: u64, size: u64) -> Event {
    Event::Traffic {
        from_ms,
        to_ms: from_ms + 1,
        client_id: thing.into(),
        topic: topic.into(),
        dir,
        msgs,
        bytes: msgs * size,
        min_bytes: size,
        max_bytes: size,
    }
}

fn denied(at_ms: u64, thing: &str, topic: &str) -> Event {
    Event::Denied {
        at_ms,
        client_id: thing.into(),
        access: Access::Publish,
        topic: Some(topic.into()),
    }
}

pub(super) fn behavior(name: &str, metric: &str, op: &str, value: Value) -> Value {
    json!({"name": name, "metric": metric,
           "criteria": {"comparisonOperator": op, "value": value, "durationSeconds": 300}})
}

#[tokio::test]
async fn each_cloud_side_metric_raises_in_alarm_then_alarm_cleared_in_a_profile_that_also_judges_reports()
 {
    let pki = Pki::generate();
    let broker = Broker::start(&pki);
    let work = tempfile::tempdir().unwrap();
    let reports_dim = json!({"dimensionName": "reports"});
    let mut sent = behavior(
        "agent-alive",
        "aws:num-messages-sent",
        "greater-than",
        json!({"count": 0}),
    );
    sent["metricDimension"] = reports_dim;
    let profile = json!({"securityProfileName": "witness", "behaviors": [
        sent,
        behavior("received", "aws:num-messages-received", "less-than", json!({"count": 5})),
        behavior("size", "aws:message-byte-size", "less-than", json!({"count": 1000})),
        behavior("auth", "aws:num-authorization-failures", "less-than", json!({"count": 1})),
        {"name": "from", "metric": "aws:source-ip-address",
         "criteria": {"comparisonOperator": "in-cidr-set", "value": {"cidrs": ["127.0.0.1/32"]}}},
        behavior("attempts", "aws:num-connection-attempts", "less-than", json!({"count": 3})),
        behavior("disconnects", "aws:num-disconnects", "less-than", json!({"count": 2})),
        behavior("away", "aws:disconnect-duration", "less-than", json!({"count": 1})),
        {"name": "no-ssh", "metric": "aws:listening-tcp-ports",
         "criteria": {"comparisonOperator": "not-in-port-set", "value": {"ports": [22]}}}
    ]});
    let mut fleet = fleet(work.path(), &pki, &broker, &[profile], "mosquitto-plugin");
    fleet.start_subscribed().await;
    let alarms = Alarms::start(&pki, broker.port, "detect-fleet/alarms/+").await;
    let plugin = client(&pki, &broker, "plugin-sim").await;

    // Window A violates every cloud-side behavior; window B, right after it, none.
    let a = window_ahead(2);
    let b = a + WINDOW_SECS * 1000;
    let t = "gw1";
    let mut events = vec![
        connect(a + 10, t, "127.0.0.2", true),
        traffic(a + 20, t, "telemetry/gw1", Direction::Sent, 3, 5000),
        traffic(a + 20, t, "cmd/gw1", Direction::Received, 10, 10),
        denied(a + 30, t, "$aws/things/gw2/defender/metrics/json"),
    ];
    events.extend((0..4).map(|i| connect(a + 40 + i, t, "127.0.0.1", false)));
    events.extend((0..3).map(|i| disconnect(a + 50 + i, t)));
    send(&plugin, "run-1", 0, events).await;
    let report = "$aws/things/gw1/defender/metrics/json";
    let events = vec![
        connect(b + 10, t, "127.0.0.1", true),
        traffic(b + 20, t, report, Direction::Sent, 1, 100),
    ];
    send(&plugin, "run-1", 1, events).await;
    // A device-side alarm of the same thing and profile, from a report.
    let device = client(&pki, &broker, t).await;
    let r = json!({"header": {"report_id": 1, "version": "1.0"},
                   "metrics": {"listening_tcp_ports": {"ports": [{"port": 22}]}}});
    device
        .publish(
            report,
            QoS::AtLeastOnce,
            false,
            serde_json::to_vec(&r).unwrap(),
        )
        .await
        .unwrap();

    let cloud = [
        "agent-alive",
        "received",
        "size",
        "auth",
        "from",
        "attempts",
        "disconnects",
        "away",
    ];
    let cleared = |e: &[(String, String)], name: &str| {
        e.iter().any(|(b, end)| b == name && end == "alarm-cleared")
    };
    let all = eventually(Duration::from_secs(60), || {
        let e = fleet.episodes(t);
        cloud.iter().all(|n| cleared(&e, n))
    })
    .await;
    let e = fleet.episodes(t);
    assert!(all, "{e:?}\n{}", fleet.log());
    assert!(
        e.iter().any(|(b, _)| b == "no-ssh"),
        "device-side alarm too: {e:?}"
    );
    let v = fleet.violations(&["--thing", t]);
    let auth = v.iter().find(|v| v["behavior"]["name"] == "auth").unwrap();
    assert_eq!(
        auth["violationStartTime"],
        json!(b),
        "judged at the window's end: {auth}"
    );
    assert_eq!(auth["lastViolationValue"]["count"], json!(1), "{auth}");
    let from = v.iter().find(|v| v["behavior"]["name"] == "from").unwrap();
    assert_eq!(
        from["lastViolationValue"]["cidrs"],
        json!(["127.0.0.2"]),
        "{from}"
    );
    // The transitions went out on the alert topic like device-side ones.
    let sent = eventually(Duration::from_secs(20), || {
        alarms.of_type("alarm-cleared").len() >= cloud.len()
    })
    .await;
    assert!(sent, "{:?}", alarms.received());
    let published = alarms.of_type("in-alarm");
    let auth = published
        .iter()
        .find(|e| e["behavior"]["name"] == "auth")
        .unwrap();
    assert_eq!(auth["thingName"], t, "{auth}");
    assert_eq!(auth["securityProfileName"], "witness", "{auth}");
    assert_eq!(
        auth["reportId"],
        json!(b),
        "a window's id is its end: {auth}"
    );
    assert_eq!(
        auth["behavior"]["criteria"]["durationSeconds"], 300,
        "as written: {auth}"
    );
}

#[tokio::test]
async fn a_connected_thing_whose_agent_fell_silent_alarms_on_windows_of_zero_messages() {
    let pki = Pki::generate();
    let broker = Broker::start(&pki);
    let work = tempfile::tempdir().unwrap();
    let mut alive = behavior(
        "alive",
        "aws:num-messages-sent",
        "greater-than",
        json!({"count": 0}),
    );
    alive["criteria"]["consecutiveDatapointsToAlarm"] = json!(2);
    let p = json!({"securityProfileName": "alive", "behaviors": [alive]});
    let mut fleet = fleet(work.path(), &pki, &broker, &[p], "mosquitto-plugin");
    fleet.start_subscribed().await;
    let plugin = client(&pki, &broker, "plugin-sim").await;
    // It connects and then sends nothing: its windows are datapoints of 0.
    let a = window_ahead(2);
    send(
        &plugin,
        "run-1",
        0,
        vec![connect(a + 10, "quiet", "127.0.0.1", true)],
    )
    .await;
    let alarmed = eventually(Duration::from_secs(40), || {
        !fleet.violations(&[]).is_empty()
    })
    .await;
    assert!(alarmed, "{}", fleet.log());
    let v = &fleet.violations(&[])[0];
    assert_eq!(v["thingName"], "quiet", "{v}");
    assert_eq!(v["lastViolationValue"]["count"], json!(0), "{v}");
    let second_end = a + 2 * WINDOW_SECS * 1000;
    assert_eq!(
        v["violationStartTime"],
        json!(second_end),
        "two zero windows: {v}"
    );
}

#[tokio::test]
async fn a_seq_gap_is_logged_with_the_exact_number_of_missed_batches() {
    let pki = Pki::generate();
    let broker = Broker::start(&pki);
    let work = tempfile::tempdir().unwrap();
    let p = json!({"securityProfileName": "auth", "behaviors": [
        behavior("auth", "aws:num-authorization-failures", "less-than", json!({"count": 5}))]});
    let mut fleet = fleet(work.path(), &pki, &broker, &[p], "mosquitto-plugin");
    fleet.start_subscribed().await;
    let plugin = client(&pki, &broker, "plugin-sim").await;
    let a = window_ahead(3);
    send(&plugin, "run-7", 3, vec![denied(a + 1, "gw", "x")]).await;
    send(&plugin, "run-7", 4, vec![denied(a + 2, "gw", "x")]).await;
    send(&plugin, "run-7", 9, vec![denied(a + 3, "gw", "x")]).await;
    let logged = eventually(Duration::from_secs(20), || {
        fleet.log().contains("broker event batches missed")
    })
    .await;
    let log = fleet.log();
    assert!(logged, "{log}");
    let line = log
        .lines()
        .find(|l| l.contains("broker event batches missed"))
        .unwrap();
    assert!(
        line.contains("WARN") && line.contains("missed=4") && line.contains("seq=9"),
        "{line}"
    );
    assert_eq!(log.matches("batches missed").count(), 1, "{log}");
}

#[tokio::test]
async fn a_fleet_killed_and_restarted_keeps_open_window_counters_and_judges_every_window_that_ended_while_it_was_down()
 {
    let pki = Pki::generate();
    let broker = Broker::start(&pki);
    let work = tempfile::tempdir().unwrap();
    let p = json!({"securityProfileName": "auth", "behaviors": [
        behavior("auth", "aws:num-authorization-failures", "less-than", json!({"count": 6}))]});
    let mut fleet = fleet(work.path(), &pki, &broker, &[p], "mosquitto-plugin");
    fleet.start_subscribed().await;
    let plugin = client(&pki, &broker, "plugin-sim").await;
    let w = window_ahead(3);
    send(
        &plugin,
        "run-1",
        0,
        (0..3).map(|i| denied(w + i, "gw", "x")).collect(),
    )
    .await;
    // Counted: the thing has a record (things list shows it).
    let counted = eventually(Duration::from_secs(20), || {
        let (_, out, _) = fleet.cli(&["things", "list"]);
        out.contains("gw")
    })
    .await;
    assert!(counted, "{}", fleet.log());
    fleet.kill9();
    // While it is down: more denials in the same window, queued for its session; that window
    // and the quiet one after it end.
    let more = (0..3).map(|i| denied(w + 10 + i, "gw", "x")).collect();
    send(&plugin, "run-1", 1, more).await;
    let end = w + WINDOW_SECS * 1000;
    let next_end = end + WINDOW_SECS * 1000;
    while now_ms() < next_end + 1500 {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(fleet.violations(&[]).is_empty());
    fleet.start_subscribed().await;
    let judged = eventually(Duration::from_secs(30), || {
        let v = fleet.violations(&[]);
        v.len() == 1 && v[0]["endEventType"] == "alarm-cleared"
    })
    .await;
    assert!(judged, "{:?}\n{}", fleet.violations(&[]), fleet.log());
    let v = &fleet.violations(&[])[0];
    assert_eq!(
        v["lastViolationValue"]["count"],
        json!(6),
        "both batches counted: {v}"
    );
    assert_eq!(v["violationStartTime"], json!(end), "{v}");
    assert_eq!(v["violationEndTime"], json!(next_end), "{v}");
    assert!(!fleet.log().contains("batches missed"), "{}", fleet.log());
}

#[test]
fn check_config_says_which_cloud_side_behaviors_the_configured_source_feeds() {
    let pki = Pki::generate();
    let broker = Broker::start(&pki);
    let work = tempfile::tempdir().unwrap();
    let mut scoped = behavior(
        "mine",
        "aws:num-messages-sent",
        "less-than",
        json!({"count": 9}),
    );
    scoped["metricDimension"] = json!({"dimensionName": "undefined-dim"});
    let p = json!({"securityProfileName": "cloud", "behaviors": [
        behavior("auth", "aws:num-authorization-failures", "less-than", json!({"count": 5})),
        scoped]});
    let none = fleet(work.path(), &pki, &broker, std::slice::from_ref(&p), "none");
    let (ok, out, err) = none.cli(&["check-config"]);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("behavior auth: not evaluated by detect-fleet: aws:num-authorization-failures is a cloud-side metric that [broker] source = \"none\" does not feed"),
        "{out}"
    );
    let dir = work.path().join("plugin");
    std::fs::create_dir_all(&dir).unwrap();
    let plugin = fleet(&dir, &pki, &broker, &[p], "mosquitto-plugin");
    let (ok, out, err) = plugin.cli(&["check-config"]);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("profile cloud: detect-fleet evaluates auth\n"),
        "{out}"
    );
    assert!(
        out.contains("behavior mine: not evaluated by detect-fleet: metricDimension \"undefined-dim\" is not defined"),
        "{out}"
    );
    assert!(
        out.contains("[broker] source = \"mosquitto-plugin\""),
        "{out}"
    );
}
