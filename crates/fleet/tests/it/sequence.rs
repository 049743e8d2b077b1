//! The sequence rule over a real broker (issue #17): only the same bytes are a redelivery; a
//! different report under a used report_id is judged (and refused) by the rule, logged at INFO.
use detect_testkit::broker::Broker;
use detect_testkit::certs::Pki;
use detect_testkit::fleet::{Fleet, forbid_port};
use serde_json::{Value, json};

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
