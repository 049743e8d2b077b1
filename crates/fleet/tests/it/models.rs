//! `detect-fleet models` (issue #19 item 3) on a real store: the per-thing models learned from
//! real reports through a real broker, summed per ML behavior as AWS's training summaries.
use std::time::{SystemTime, UNIX_EPOCH};

use detect_testkit::fleet::{Fleet, single};
use serde_json::{Value, json};

use crate::answers::{client, send};

fn profile() -> Value {
    json!({"securityProfileName": "learned", "behaviors": [
        {"name": "bytes-out-ml", "metric": "aws:all-bytes-out",
         "criteria": {"mlDetectionConfig": {"confidenceLevel": "MEDIUM"}}},
        {"name": "bytes-out-static", "metric": "aws:all-bytes-out",
         "criteria": {"comparisonOperator": "greater-than", "value": {"count": 1000000000}}}]})
}

fn report(id: u64, bytes: u64) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "header": {"report_id": id, "version": "1.0"},
        "metrics": {"network_stats": {
            "bytes_in": bytes, "bytes_out": bytes, "packets_in": 10, "packets_out": 10}}
    }))
    .unwrap()
}

fn models(fleet: &Fleet) -> Vec<Value> {
    let (ok, out, err) = fleet.cli(&["models", "--format", "json"]);
    assert!(ok, "{out}{err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[tokio::test]
async fn models_lists_each_ml_behavior_with_its_status_from_the_things_records() {
    let (pki, broker, _work, mut fleet) = single(&[profile()], &[("learned", "all-things")]);
    // Before any report: the behavior is listed, no thing has reported.
    let before = models(&fleet);
    assert_eq!(before.len(), 1, "only the ML behavior: {before:?}");
    assert_eq!(before[0]["modelStatus"], "PENDING_BUILD");
    assert_eq!(before[0]["thingsTotal"], 0);

    fleet.start_subscribed().await;
    let (c, got) = client(&pki, broker.port).await;
    let now_s = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    for thing in ["ml-a", "ml-b"] {
        for i in 0..3 {
            let (topic, v) = send(&c, &got, thing, "json", report(now_s - 30 + i * 5, 5000)).await;
            assert!(topic.ends_with("/json/accepted"), "{v}");
        }
    }
    let after = models(&fleet);
    let s = &after[0];
    assert_eq!(s["securityProfileName"], "learned", "{s}");
    assert_eq!(s["behaviorName"], "bytes-out-ml", "{s}");
    assert_eq!(s["metric"], "aws:all-bytes-out", "{s}");
    assert_eq!(s["modelStatus"], "PENDING_BUILD", "{s}");
    assert_eq!(
        (s["thingsActive"].as_u64(), s["thingsTotal"].as_u64()),
        (Some(0), Some(2))
    );
    let pct = s["datapointsCollectionPercentage"].as_u64().unwrap();
    assert!(pct < 100, "{s}");
    assert!(s.get("lastModelRefreshDate").is_none(), "{s}");
    assert_eq!(s["groupCalibrated"], false, "{s}");

    let (ok, table, err) = fleet.cli(&["models"]);
    assert!(ok, "{err}");
    assert!(table.starts_with("PROFILE"), "{table}");
    assert!(table.contains("STATUS"), "{table}");
    let row = table.lines().nth(1).unwrap_or_default();
    assert!(
        row.starts_with("learned")
            && row.contains("bytes-out-ml")
            && row.contains("PENDING_BUILD")
            && row.split_whitespace().rev().take(2).eq(["no", "0/2"]),
        "{table}"
    );
}
