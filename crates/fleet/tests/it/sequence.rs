//! The sequence rule over a real broker (issue #17): a backlog held by the broker while
//! detect-fleet was down is accepted in order; only the same bytes are a redelivery.
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use detect_testkit::broker::Broker;
use detect_testkit::certs::Pki;
use detect_testkit::eventually;
use detect_testkit::fleet::{Fleet, forbid_port};
use serde_json::{Value, json};

use rumqttc::QoS;

use crate::answers::{client, rejected, send};

fn report(id: u64, ports: &[u16]) -> Vec<u8> {
    let ports: Vec<Value> = ports.iter().map(|p| json!({"port": p})).collect();
    let total = ports.len();
    serde_json::to_vec(&json!({
        "header": {"report_id": id, "version": "1.0"},
        "metrics": {"listening_tcp_ports": {"ports": ports, "total": total}}
    }))
    .unwrap()
}

#[tokio::test]
async fn two_different_reports_under_one_report_id_are_not_a_redelivery() {
    let pki = Pki::generate();
    let broker = Broker::start(&pki);
    let work = tempfile::tempdir().unwrap();
    let profiles = [forbid_port("no-8080", 8080)];
    let mut fleet = Fleet::configure(
        work.path(),
        &pki,
        &broker,
        &profiles,
        &[("no-8080", "all-things")],
        1,
    );
    fleet.start_subscribed().await;
    let (c, got) = client(&pki, broker.port).await;

    let first = report(1_800_000_000, &[22]);
    let (topic, v) = send(&c, &got, "t-reuse", "json", first.clone()).await;
    assert!(topic.ends_with("/json/accepted"), "{v}");
    // Another report in the same epoch second (AWS's Python agent at `-i 0.5`): refused by
    // the sequence rule, not answered with the first one's ACCEPTED.
    let other = report(1_800_000_000, &[22, 8080]);
    let a = send(&c, &got, "t-reuse", "json", other).await;
    rejected(&a, "InvalidPayload", "t-reuse", "json");
    let message = a.1["statusDetails"]["ErrorMessage"]
        .as_str()
        .unwrap_or_default();
    assert!(message.contains("not greater than"), "{message}");
    assert!(
        fleet
            .log()
            .contains("report_id reused with different bytes"),
        "{}",
        fleet.log()
    );
    // The first report's bytes again: the stored answer, timestamp included.
    let (topic, again) = send(&c, &got, "t-reuse", "json", first).await;
    assert!(topic.ends_with("/json/accepted"));
    assert_eq!(again, v);
    assert!(
        fleet.violations(&[]).is_empty(),
        "the refused report was not evaluated"
    );
}

/// Item 1: three reports published 2 s apart (ids in epoch seconds, as AWS's agents write
/// them) into detect-fleet's persistent session while it is down reach it at once on restart:
/// all accepted in order, the second one's forbidden listener raised, the third's clearing it.
#[tokio::test]
async fn a_backlog_queued_while_detect_fleet_was_down_is_accepted_and_evaluated_in_order() {
    let pki = Pki::generate();
    let broker = Broker::start(&pki);
    let work = tempfile::tempdir().unwrap();
    let profiles = [forbid_port("no-8080", 8080)];
    let attach = [("no-8080", "all-things")];
    let mut fleet = Fleet::configure(work.path(), &pki, &broker, &profiles, &attach, 1);
    fleet.start_subscribed().await;
    fleet.kill9();
    let (c, got) = client(&pki, broker.port).await;
    let topic = "$aws/things/t-backlog/defender/metrics/json";
    let mut ids = Vec::new();
    for (i, ports) in [&[22][..], &[22, 8080], &[22]].into_iter().enumerate() {
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(2100)).await;
        }
        let id = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        ids.push(id);
        c.publish(topic, QoS::AtLeastOnce, false, report(id, ports))
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    fleet.start();
    let answered = || got.lock().unwrap().len() >= 3;
    assert!(
        eventually(Duration::from_secs(20), answered).await,
        "{:?}\n{}",
        got.lock().unwrap(),
        fleet.log()
    );
    let answers = got.lock().unwrap().clone();
    let seen: Vec<(String, Value)> = answers
        .iter()
        .map(|(t, v)| (t.clone(), v["reportId"].clone()))
        .collect();
    let expected: Vec<(String, Value)> = ids
        .iter()
        .map(|id| (format!("{topic}/accepted"), json!(id)))
        .collect();
    assert_eq!(seen, expected, "{answers:?}");
    let v = fleet.violations(&[]);
    assert_eq!(v.len(), 1, "{v:?}");
    assert!(
        v[0]["lastViolationValue"].to_string().contains("8080"),
        "{v:?}"
    );
    assert!(
        v[0]["violationEndTime"].as_u64().is_some(),
        "cleared by the third: {v:?}"
    );
    let (_, things, _) = fleet.cli(&["things", "list"]);
    assert!(things.contains(&ids[2].to_string()), "{things}");
}
