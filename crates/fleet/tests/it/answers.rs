//! detect-fleet answers like AWS (protocol doc §3): a plain MQTT client publishes good and bad
//! reports and reads the answers on `…/accepted` and `…/rejected`, in the report's encoding.
use std::sync::{Arc, Mutex};
use std::time::Duration;

use detect_testkit::backend::tls;
use detect_testkit::broker::Broker;
use detect_testkit::certs::Pki;
use detect_testkit::eventually;
use detect_testkit::fleet::{Fleet, single};
use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS, Transport};
use serde_json::{Value, json};

pub(crate) type Got = Arc<Mutex<Vec<(String, Value)>>>;

/// A device-like client that subscribes to every answer topic; CBOR answers are decoded.
pub(crate) async fn client(pki: &Pki, port: u16) -> (AsyncClient, Got) {
    connect(Some(pki), port, None).await
}

/// `client` logging in with the broker's test user as well as its certificate.
async fn client_with_login(pki: &Pki, port: u16) -> (AsyncClient, Got) {
    connect(Some(pki), port, Some(detect_testkit::broker::USERS[0])).await
}

/// `Some(pki)`: TLS with a client certificate; `None`: plain MQTT (a loopback broker).
async fn connect(pki: Option<&Pki>, port: u16, login: Option<(&str, &str)>) -> (AsyncClient, Got) {
    let mut o = MqttOptions::new("plain-test-client", "127.0.0.1", port);
    if let Some(pki) = pki {
        o.set_transport(Transport::tls_with_config(tls(pki, &pki.client_rsa)));
    }
    o.set_keep_alive(Duration::from_secs(5))
        .set_max_packet_size(512 * 1024, 512 * 1024);
    if let Some((user, password)) = login {
        o.set_credentials(user, password);
    }
    let (c, mut el) = AsyncClient::new(o, 64);
    let got: Got = Arc::default();
    let (tx, mut rx) = tokio::sync::watch::channel(false);
    let shared = got.clone();
    let sub = c.clone();
    tokio::spawn(async move {
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                    sub.try_subscribe("$aws/things/+/defender/metrics/+/+", QoS::AtLeastOnce)
                        .unwrap();
                }
                Ok(Event::Incoming(Incoming::SubAck(_))) => {
                    let _ = tx.send(true);
                }
                Ok(Event::Incoming(Incoming::Publish(p))) => {
                    let v: Value = if p.topic.contains("/cbor/") {
                        ciborium::from_reader(&p.payload[..]).unwrap()
                    } else {
                        serde_json::from_slice(&p.payload).unwrap()
                    };
                    shared.lock().unwrap().push((p.topic.clone(), v));
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(20), rx.wait_for(|s| *s))
        .await
        .unwrap()
        .unwrap();
    (c, got)
}

fn report(id: u64) -> Value {
    json!({
        "header": {"report_id": id, "version": "1.0"},
        "metrics": {"listening_tcp_ports": {"ports": [{"port": 22}], "total": 1}}
    })
}

pub(super) fn cbor(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(v, &mut out).unwrap();
    out
}

/// Publishes `payload` for `thing` and waits for the answer count of that thing to grow;
/// returns (topic, answer).
pub(crate) async fn send(
    c: &AsyncClient,
    got: &Got,
    thing: &str,
    format: &str,
    payload: Vec<u8>,
) -> (String, Value) {
    let prefix = format!("$aws/things/{thing}/defender/metrics/");
    let count = || {
        got.lock()
            .unwrap()
            .iter()
            .filter(|(t, _)| t.starts_with(&prefix))
            .count()
    };
    let before = count();
    c.publish(
        format!("{prefix}{format}"),
        QoS::AtLeastOnce,
        false,
        payload,
    )
    .await
    .unwrap();
    assert!(
        eventually(Duration::from_secs(10), || count() > before).await,
        "no answer for {thing}"
    );
    got.lock()
        .unwrap()
        .iter()
        .filter(|(t, _)| t.starts_with(&prefix))
        .nth(before)
        .cloned()
        .unwrap()
}

pub(crate) fn rejected(answer: &(String, Value), code: &str, thing: &str, format: &str) {
    let (topic, v) = answer;
    assert_eq!(
        topic,
        &format!("$aws/things/{thing}/defender/metrics/{format}/rejected"),
        "{v}"
    );
    assert_eq!(v["status"], "REJECTED", "{v}");
    assert_eq!(v["thingName"], thing, "{v}");
    assert_eq!(v["statusDetails"]["ErrorCode"], code, "{v}");
    assert!(
        v["statusDetails"]["ErrorMessage"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{v}"
    );
    assert!(v["timestamp"].as_u64().is_some(), "{v}");
}

#[tokio::test]
async fn bad_reports_are_rejected_with_aws_error_codes_and_a_redelivered_report_gets_its_stored_answer()
 {
    let (pki, broker, _work, mut fleet) = single(&[], &[]);
    fleet.start_subscribed().await;
    let (c, got) = client(&pki, broker.port).await;
    let j = |v: &Value| serde_json::to_vec(v).unwrap();

    // Structure: not JSON, mixed long/short keys, unknown key, custom number not in an array.
    rejected(
        &send(&c, &got, "t-json", "json", b"{not json".to_vec()).await,
        "InvalidPayload",
        "t-json",
        "json",
    );
    let mixed =
        json!({"hed": {"rid": 5, "v": "1.0"}, "metrics": {"listening_tcp_ports": {"ports": []}}});
    let a = send(&c, &got, "t-mixed", "json", j(&mixed)).await;
    rejected(&a, "InvalidPayload", "t-mixed", "json");
    let unknown = json!({"header": {"report_id": 5, "version": "1.0"}, "metrics": {}, "extra": 1});
    rejected(
        &send(&c, &got, "t-unknown", "json", j(&unknown)).await,
        "InvalidPayload",
        "t-unknown",
        "json",
    );
    let custom = json!({"header": {"report_id": 5, "version": "1.0"}, "custom_metrics": {"temp": {"number": 1}}});
    rejected(
        &send(&c, &got, "t-custom", "json", j(&custom)).await,
        "InvalidPayload",
        "t-custom",
        "json",
    );
    // Encoding: JSON on the cbor topic; the answer is CBOR and names the report.
    let a = send(&c, &got, "t-enc", "cbor", j(&report(9))).await;
    rejected(&a, "InvalidPayload", "t-enc", "cbor");
    assert_eq!(a.1["reportId"], 9);
    // Size: above IoT Core's 128 KB.
    let mut big = report(5);
    big["metrics"]["listening_tcp_ports"]["ports"] = (1..=9000)
        .map(|p| json!({"port": p, "interface": "eth0"}))
        .collect();
    let big = j(&big);
    assert!(big.len() > 128 * 1024);
    rejected(
        &send(&c, &got, "t-big", "json", big).await,
        "InvalidPayload",
        "t-big",
        "json",
    );

    // A good CBOR report is accepted, answered in CBOR with the AWS shape.
    let (topic, v) = send(&c, &got, "t-seq", "cbor", cbor(&report(100))).await;
    assert_eq!(topic, "$aws/things/t-seq/defender/metrics/cbor/accepted");
    assert_eq!(v["status"], "ACCEPTED");
    assert_eq!(v["reportId"], 100);
    assert_eq!(v["thingName"], "t-seq");
    // Too soon after it: Throttled (min_interval_secs = 1).
    let a = send(&c, &got, "t-seq", "cbor", cbor(&report(101))).await;
    rejected(&a, "Throttled", "t-seq", "cbor");
    assert_eq!(a.1["reportId"], 101);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // report_id must increase per thing.
    let a = send(&c, &got, "t-seq", "cbor", cbor(&report(99))).await;
    rejected(&a, "InvalidPayload", "t-seq", "cbor");
    // The same report again (a redelivery): the stored answer, evaluated once.
    let (topic, again) = send(&c, &got, "t-seq", "cbor", cbor(&report(100))).await;
    assert_eq!(topic, "$aws/things/t-seq/defender/metrics/cbor/accepted");
    assert_eq!(again, v, "the stored answer, timestamp included");
    let (topic, _) = send(&c, &got, "t-seq", "cbor", cbor(&report(102))).await;
    assert!(topic.ends_with("/accepted"));
    let (_, things, _) = fleet.cli(&["things", "list"]);
    let row = things.lines().find(|l| l.starts_with("t-seq ")).unwrap();
    assert!(row.contains(" 102 "), "{things}");
    // Thing names AWS refuses: longer than 128 bytes.
    let long = "x".repeat(129);
    rejected(
        &send(&c, &got, &long, "json", j(&report(1))).await,
        "InvalidPayload",
        &long,
        "json",
    );
}

/// Rewrites the fleet's `[broker]` to log in as the broker's `defender-backend` user with
/// `password_file`, without the config lines that start with one of `drop`.
fn password_login(fleet: &Fleet, password: &std::path::Path, drop: &[&str]) {
    let text = std::fs::read_to_string(&fleet.config).unwrap();
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| !drop.iter().any(|k| l.starts_with(k)))
        .collect();
    let login =
        format!("[broker]\nusername = \"defender-backend\"\npassword_file = {password:?}\n");
    let text = (kept.join("\n") + "\n").replacen("[broker]\n", &login, 1);
    std::fs::write(&fleet.config, text).unwrap();
}

#[tokio::test]
async fn detect_fleet_logs_in_with_a_user_name_and_password_file_over_tls_without_a_certificate() {
    use detect_testkit::broker::Login;
    let pki = Pki::generate();
    let broker = Broker::start_with(&pki, Login::Password);
    let work = tempfile::tempdir().unwrap();
    let mut fleet = Fleet::configure(work.path(), &pki, &broker, &[], &[], 1);
    // TLS (server verified against the CA), no client certificate: user name and password only.
    let password = work.path().join("password");
    std::fs::write(&password, "backend-secret\n").unwrap();
    password_login(&fleet, &password, &["cert_file", "key_file"]);
    fleet.start_subscribed().await;
    let (c, got) = client_with_login(&pki, broker.port).await;
    let (topic, v) = send(
        &c,
        &got,
        "t-login",
        "json",
        serde_json::to_vec(&report(1)).unwrap(),
    )
    .await;
    assert_eq!(
        topic, "$aws/things/t-login/defender/metrics/json/accepted",
        "{v}"
    );

    // A wrong password: the broker refuses, detect-fleet keeps retrying and never subscribes.
    std::fs::write(&password, "wrong\n").unwrap();
    let mut other = Fleet::configure(&work.path().join("other"), &pki, &broker, &[], &[], 1);
    password_login(&other, &password, &["cert_file", "key_file"]);
    other.start();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!other.connected(), "{}", other.log());
    assert!(
        other.log().contains("broker connection lost"),
        "{}",
        other.log()
    );
}

#[tokio::test]
async fn detect_fleet_answers_over_plain_mqtt_to_a_loopback_broker_with_a_user_name_and_password() {
    use detect_testkit::broker::Login;
    let pki = Pki::generate();
    let broker = Broker::start_with(&pki, Login::PlainPassword);
    let work = tempfile::tempdir().unwrap();
    let mut fleet = Fleet::configure(work.path(), &pki, &broker, &[], &[], 1);
    // No ca_file (plain MQTT, which check-config allows only for a loopback endpoint), no
    // client certificate: user name and password_file.
    let password = work.path().join("password");
    std::fs::write(&password, "backend-secret\n").unwrap();
    password_login(
        &fleet,
        &password,
        &["ca_file", "cert_file", "key_file", "tls_server_name"],
    );
    let (ok, out, err) = fleet.cli(&["check-config"]);
    assert!(ok, "{out}{err}");
    fleet.start_subscribed().await;
    let (c, got) = connect(None, broker.port, Some(detect_testkit::broker::USERS[0])).await;
    let (topic, v) = send(
        &c,
        &got,
        "t-plain",
        "json",
        serde_json::to_vec(&report(1)).unwrap(),
    )
    .await;
    assert_eq!(
        topic, "$aws/things/t-plain/defender/metrics/json/accepted",
        "{v}"
    );
    assert_eq!(v["reportId"], 1);
    // The broker saw detect-fleet's login by user name on the plain listener.
    assert!(
        broker.log().contains("u'defender-backend'"),
        "{}",
        broker.log()
    );
}

/// A QoS 0 report published while detect-fleet is stopped waits in its persistent session
/// (the shipped `queue_qos0_messages true`) and is answered once it is back.
#[tokio::test]
async fn a_qos0_report_sent_while_the_fleet_is_stopped_is_answered_after_it_starts() {
    assert!(
        detect_testkit::broker::SHIPPED_CONF
            .lines()
            .any(|l| l.trim() == "queue_qos0_messages true"),
        "config/mosquitto/detect.conf must set queue_qos0_messages"
    );
    let (pki, broker, _work, mut fleet) = single(&[], &[]);
    fleet.start_subscribed().await;
    let (c, got) = client(&pki, broker.port).await;
    fleet.kill9();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let payload = serde_json::to_vec(&report(41)).unwrap();
    c.publish(
        "$aws/things/away/defender/metrics/json",
        QoS::AtMostOnce,
        false,
        payload,
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    fleet.start_subscribed().await;
    let answered = || {
        got.lock().unwrap().iter().any(|(t, v)| {
            t.ends_with("/away/defender/metrics/json/accepted") && v["reportId"] == 41
        })
    };
    assert!(
        eventually(Duration::from_secs(20), answered).await,
        "the QoS 0 report was lost:\n{}",
        fleet.log()
    );
}

/// A thing whose every report was rejected is listed by `things list` with its last
/// rejection; the `/rejected` answer carries the readable header's `reportId`.
#[tokio::test]
async fn things_list_shows_a_thing_whose_reports_were_all_rejected() {
    let (pki, broker, _work, mut fleet) = single(&[], &[]);
    fleet.start_subscribed().await;
    let (c, got) = client(&pki, broker.port).await;
    let mixed = br#"{"hed":{"rid":12,"version":"1.0"},"met":{}}"#.to_vec();
    let a = send(&c, &got, "never-ok", "json", mixed).await;
    rejected(&a, "InvalidPayload", "never-ok", "json");
    assert_eq!(a.1["reportId"], 12, "{}", a.1);
    let (ok, out, err) = fleet.cli(&["things", "list"]);
    assert!(ok, "{err}");
    let header = out.lines().next().unwrap_or_default();
    assert!(
        header.contains("LAST_REJECTED") && header.contains("REJECTION"),
        "{out}"
    );
    let row = out
        .lines()
        .find(|l| l.starts_with("never-ok"))
        .unwrap_or_default();
    assert!(
        row.contains("InvalidPayload: Malformed metrics report"),
        "{out}"
    );
    assert!(row.contains('T') && row.contains('Z'), "{out}");
}
