//! The AWS-shaped API over real HTTP against `detect-fleet run` (issue #21 item 2): an alarm
//! raised by a report through mosquitto is listed, its event and the report's datapoints are
//! read back, a verification posted with the token is stored and the CLI sees it.

use detect_testkit::fleet::{forbid_port, single};
use serde_json::json;

use crate::answers::{client, send};
use crate::http_client::request;

const TOKEN: &str = "api-token-for-tests-0123456789";

#[tokio::test]
async fn the_api_lists_an_alarm_its_event_and_history_and_stores_a_verification() {
    let (pki, broker, _work, mut fleet) =
        single(&[forbid_port("no-ssh", 22)], &[("no-ssh", "all-things")]);
    fleet.set_token(TOKEN);
    fleet.start_subscribed().await;
    let addr = fleet.http_addr().expect("HTTP listener address in the log");
    let (c, got) = client(&pki, broker.port).await;
    let report = serde_json::to_vec(&json!({
        "header": {"report_id": 1, "version": "1.0"},
        "metrics": {
            "listening_tcp_ports": {"ports": [{"port": 22}, {"port": 443}]},
            "network_stats": {"bytes_in": 1234, "bytes_out": 99, "packets_in": 3, "packets_out": 2}
        },
        "custom_metrics": {"temperature": [{"number": 21.5}]}
    }))
    .unwrap();
    let (topic, v) = send(&c, &got, "api-1", "json", report).await;
    assert!(topic.ends_with("/accepted"), "{v}");
    let get = |path: String| async move {
        let a = request(addr, "GET", &path, &[], "").await;
        (a.status, a.json())
    };

    // The alarm, newest first (the report's commit is visible once answered).
    let (status, v) = get("/api/v1/active-violations?thingName=api-1".into()).await;
    assert_eq!(status, 200, "{v}");
    let alarm = &v["activeViolations"][0];
    assert_eq!(alarm["securityProfileName"], "no-ssh", "{v}");
    assert_eq!(alarm["lastViolationValue"], json!({"ports": [22, 443]}));
    let id = alarm["violationId"].as_str().unwrap().to_string();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let range = format!("startTime={}&endTime={}", now - 600, now + 600);

    let (status, v) = get(format!("/api/v1/violation-events?{range}&thingName=api-1")).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["violationEvents"][0]["violationEventType"], "in-alarm");
    assert_eq!(v["violationEvents"][0]["violationId"], id.as_str());

    let metric = |m: &str| format!("/api/v1/metric-values?thingName=api-1&metricName={m}&{range}");
    let (status, v) = get(metric("aws:listening-tcp-ports")).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v["metricDatumList"][0]["value"],
        json!({"ports": [22, 443]})
    );
    let (_, v) = get(metric("aws:all-bytes-in")).await;
    assert_eq!(v["metricDatumList"][0]["value"], json!({"count": 1234}));
    let (_, v) = get(metric("temperature")).await;
    assert_eq!(v["metricDatumList"][0]["value"], json!({"number": 21.5}));
    let (_, v) = get("/api/v1/things/api-1".into()).await;
    assert_eq!(
        v["lastMetrics"]["device"]["aws:num-listening-tcp-ports"],
        json!({"count": 2})
    );
    assert_eq!(v["securityProfileNames"], json!(["no-ssh"]));
    let (_, v) = get("/api/v1/security-profiles/no-ssh/targets".into()).await;
    assert_eq!(
        v["securityProfileTargets"][0]["arn"],
        "arn:detect-fleet:iot:::all/things"
    );

    // Bad parameters and unknown ids: AWS's errors, never a 500.
    let (status, v) = get("/api/v1/active-violations?maxResults=1000".into()).await;
    assert_eq!(
        (status, v["__type"].as_str()),
        (400, Some("InvalidRequestException"))
    );
    assert!(v["message"].as_str().unwrap().contains("maxResults"), "{v}");
    let bearer = format!("Authorization: Bearer {TOKEN}");
    let body =
        r#"{"verificationState":"TRUE_POSITIVE","verificationStateDescription":"port 22 open"}"#;
    let unknown = "/api/v1/violations/verification-state/0123456789abcdef0123456789abcdef";
    let a = request(addr, "POST", unknown, &[&bearer], body).await;
    assert_eq!(a.status, 404, "{}", a.body);
    let path = format!("/api/v1/violations/verification-state/{id}");
    let a = request(addr, "POST", &path, &["Authorization: Bearer wrong"], body).await;
    assert_eq!(a.status, 401, "{}", a.body);
    let a = request(addr, "POST", &path, &[], body).await;
    assert_eq!(a.status, 401, "{}", a.body);
    let a = request(
        addr,
        "POST",
        &path,
        &[&bearer],
        r#"{"verificationState":"SURE"}"#,
    )
    .await;
    assert_eq!(a.status, 400, "{}", a.body);
    let a = request(addr, "POST", &path, &[&bearer], body).await;
    assert_eq!(a.status, 200, "{}", a.body);

    // Stored: the API and the CLI read it back.
    let (_, v) = get("/api/v1/active-violations?verificationState=TRUE_POSITIVE".into()).await;
    assert_eq!(
        v["activeViolations"][0]["verificationStateDescription"],
        "port 22 open"
    );
    let listed = fleet.violations(&["--thing", "api-1"]);
    assert_eq!(
        listed[0]["verificationState"], "TRUE_POSITIVE",
        "{listed:?}"
    );
}
