//! End-to-end publishing against a real mosquitto with mutual TLS and the strict test backend:
//! verdicts, rejections, TLS failures with backoff, and reconnection after a broker restart.

use std::path::Path;
use std::time::Duration;

use detect_agent::publish::{Backoff, ClientCert, ConnState, MqttSettings, Outcome, Publisher};
use detect_testkit::alarms::Alarms;
use detect_testkit::{Backend, Broker, Identity, Mode, Pki, encode, eventually, report_json};

const WAIT: Duration = Duration::from_secs(15);

fn settings(port: u16, ca: &Path, id: &Identity, format: &str) -> MqttSettings {
    MqttSettings {
        endpoint: "127.0.0.1".to_string(),
        port,
        ca_file: ca.to_path_buf(),
        client_cert: Some(ClientCert {
            cert_file: id.cert.clone(),
            key_file: id.key.clone(),
        }),
        login: None,
        tls_server_name: None,
        client_id: id.name.clone(),
        thing_name: id.name.clone(),
        format_segment: format.to_string(),
        keep_alive_secs: 30,
    }
}

/// Short backoff so failure tests see several attempts.
fn fast_backoff() -> Backoff {
    Backoff::new(Duration::from_millis(100), Duration::from_secs(1), 1)
}

/// Starts a publisher; its bridge socket goes in the PKI directory (private to the test).
fn start(s: MqttSettings) -> Publisher {
    let dir = s.ca_file.parent().unwrap().to_path_buf();
    Publisher::start(s, fast_backoff(), &dir).unwrap()
}

async fn publish(p: &Publisher, id: u64, format: &str) -> Outcome {
    p.publish(id, encode(&report_json(id), format), WAIT).await
}

#[tokio::test]
async fn json_and_cbor_reports_are_accepted_with_their_ids() {
    detect_testkit::init_logs();
    let pki = Pki::generate();
    let broker = Broker::start(&pki);
    let backend = Backend::start(&pki, broker.port).await;

    let json = start(settings(broker.port, &pki.ca, &pki.client_ec, "json"));
    let cbor = start(settings(broker.port, &pki.ca, &pki.client_rsa, "cbor"));
    let sec1 = start(settings(broker.port, &pki.ca, &pki.client_sec1, "json"));
    assert_eq!(publish(&json, 1_000, "json").await, Outcome::Accepted);
    assert_eq!(publish(&json, 1_001, "json").await, Outcome::Accepted);
    assert_eq!(publish(&cbor, 2_000, "cbor").await, Outcome::Accepted);
    assert_eq!(publish(&sec1, 3_000, "json").await, Outcome::Accepted);
    assert_eq!(*json.state().borrow(), ConnState::Ready { verdicts: true });

    let got = backend.received();
    let seen: Vec<_> = got
        .iter()
        .map(|r| {
            (
                r.thing.as_str(),
                r.format.as_str(),
                r.report_id,
                r.rejected.clone(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("thing-ec", "json", Some(1_000), None),
            ("thing-ec", "json", Some(1_001), None),
            ("thing-rsa", "cbor", Some(2_000), None),
            ("thing-sec1", "json", Some(3_000), None),
        ]
    );
    assert_eq!(got[2].value.as_ref(), Some(&report_json(2_000)));
    for p in [json, cbor, sec1] {
        p.shutdown(Duration::from_secs(5)).await;
    }
}

#[tokio::test]
async fn rejections_carry_the_backend_error_code() {
    detect_testkit::init_logs();
    let pki = Pki::generate();
    let broker = Broker::start(&pki);
    let backend = Backend::start(&pki, broker.port).await;
    let p = start(settings(broker.port, &pki.ca, &pki.client_ec, "cbor"));

    backend.set_mode(Mode::throttled(true));
    assert_eq!(
        publish(&p, 10, "cbor").await,
        Outcome::Rejected {
            code: "Throttled".to_string(),
            message: Some("too fast".to_string())
        }
    );

    // The doc's rejection example has no reportId: it still belongs to the report in flight.
    backend.set_mode(Mode::Reject {
        code: "InvalidPayload".to_string(),
        message: "Malformed metrics report".to_string(),
        with_report_id: false,
    });
    assert!(matches!(
        publish(&p, 11, "cbor").await,
        Outcome::Rejected { code, .. } if code == "InvalidPayload"
    ));

    // Strict validation: mixed long/short keys, then a report id that does not increase.
    backend.set_mode(Mode::Validate);
    let mixed = serde_json::json!({"hed": {"report_id": 12, "v": "1.0"}, "met": {}});
    let outcome = p.publish(12, encode(&mixed, "cbor"), WAIT).await;
    assert!(
        matches!(outcome, Outcome::Rejected { ref code, .. } if code == "InvalidPayload"),
        "{outcome:?}"
    );
    assert_eq!(publish(&p, 20, "cbor").await, Outcome::Accepted);
    let outcome = publish(&p, 20, "cbor").await;
    assert!(
        matches!(outcome, Outcome::Rejected { ref message, .. }
        if message.as_deref().is_some_and(|m| m.contains("not greater"))),
        "{outcome:?}"
    );
    p.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn an_alarm_send_is_acknowledged_while_the_backend_rejects_every_report() {
    detect_testkit::init_logs();
    let pki = Pki::generate();
    let broker = Broker::start(&pki);
    let backend = Backend::start(&pki, broker.port).await;
    let alarms = Alarms::start(&pki, broker.port, "detect-agent/+/alarms").await;
    let p = start(settings(broker.port, &pki.ca, &pki.client_ec, "json"));
    backend.set_mode(Mode::throttled(false));
    assert!(matches!(
        publish(&p, 30, "json").await,
        Outcome::Rejected { code, .. } if code == "Throttled"
    ));
    let topic = "detect-agent/thing-ec/alarms";
    p.send(
        topic,
        br#"{"violationEventType":"in-alarm"}"#.to_vec(),
        WAIT,
    )
    .await
    .unwrap();
    // A rejection that arrives while an alarm is in flight is not taken for the alarm's.
    assert!(matches!(
        publish(&p, 31, "json").await,
        Outcome::Rejected { code, .. } if code == "Throttled"
    ));
    assert!(
        eventually(WAIT, || alarms.of_type("in-alarm").len() == 1).await,
        "{:?}",
        alarms.received()
    );
    assert_eq!(alarms.received()[0].0, topic);
    // The alarm never reached the report topic.
    assert_eq!(backend.received().len(), 2);
    p.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn puback_without_verdict_is_acked() {
    detect_testkit::init_logs();
    let pki = Pki::generate();
    let broker = Broker::start(&pki);
    let backend = Backend::start(&pki, broker.port).await;
    backend.set_mode(Mode::Silent);
    let p = start(settings(broker.port, &pki.ca, &pki.client_ec, "json"));
    let outcome = p
        .publish(5, encode(&report_json(5), "json"), Duration::from_secs(3))
        .await;
    assert_eq!(outcome, Outcome::Acked);
    assert_eq!(backend.received().len(), 1);
    p.shutdown(Duration::from_secs(5)).await;
}

/// Publishing through a broken TLS setup: NotDelivered within the wait, the state shows the
/// error and keeps retrying, and the broker never sees a report.
async fn undeliverable(pki: &Pki, broker: &Broker, backend: &Backend, s: MqttSettings) -> String {
    let p = start(s);
    let outcome = p
        .publish(1, encode(&report_json(1), "json"), Duration::from_secs(3))
        .await;
    assert!(matches!(outcome, Outcome::NotDelivered(_)), "{outcome:?}");
    let mut state = p.state();
    let retried = tokio::time::timeout(
        Duration::from_secs(10),
        // Map the Ref away at once: holding it would block the publisher's state updates.
        async {
            state
                .wait_for(|s| matches!(s, ConnState::Backoff { attempt, .. } if *attempt >= 2))
                .await
                .is_ok()
        },
    )
    .await;
    assert_eq!(
        retried,
        Ok(true),
        "no second attempt: {:?}",
        *p.state().borrow()
    );
    let error = match &*p.state().borrow() {
        ConnState::Backoff { error, .. } => error.clone(),
        other => panic!("unexpected state {other:?}"),
    };
    assert!(backend.received().is_empty());
    let _ = (pki, broker);
    p.shutdown(Duration::from_secs(5)).await;
    error
}

#[tokio::test]
async fn tls_failures_back_off_and_never_deliver() {
    detect_testkit::init_logs();
    let pki = Pki::generate();
    let broker = Broker::start(&pki);
    let backend = Backend::start(&pki, broker.port).await;

    let wrong_ca = settings(broker.port, &pki.other_ca, &pki.client_ec, "json");
    let error = undeliverable(&pki, &broker, &backend, wrong_ca).await;
    assert!(error.contains("UnknownIssuer"), "{error}");

    let mut missing = settings(broker.port, &pki.ca, &pki.client_ec, "json");
    missing.client_cert = Some(ClientCert {
        cert_file: pki.missing("absent.crt"),
        key_file: pki.client_ec.key.clone(),
    });
    let error = undeliverable(&pki, &broker, &backend, missing).await;
    assert!(
        error.contains("absent.crt") && error.contains("cannot read"),
        "{error}"
    );

    let expired = settings(broker.port, &pki.ca, &pki.client_expired, "json");
    let error = undeliverable(&pki, &broker, &backend, expired).await;
    assert!(error.contains("CertificateExpired"), "{error}");

    let foreign = settings(broker.port, &pki.ca, &pki.client_foreign, "json");
    let error = undeliverable(&pki, &broker, &backend, foreign).await;
    assert!(error.contains("UnknownCA"), "{error}");

    let mut mismatched = settings(broker.port, &pki.ca, &pki.client_ec, "json");
    mismatched.client_cert = Some(ClientCert {
        cert_file: pki.client_ec.cert.clone(),
        key_file: pki.client_rsa.key.clone(),
    });
    let error = undeliverable(&pki, &broker, &backend, mismatched).await;
    assert!(error.contains("does not match"), "{error}");
}

#[tokio::test]
async fn server_name_override_verifies_against_that_name() {
    detect_testkit::init_logs();
    let pki = Pki::generate();
    let broker = Broker::start(&pki);
    let _backend = Backend::start(&pki, broker.port).await;

    let mut good = settings(broker.port, &pki.ca, &pki.client_ec, "json");
    good.tls_server_name = Some("localhost".to_string());
    let p = start(good);
    assert_eq!(publish(&p, 7, "json").await, Outcome::Accepted);
    p.shutdown(Duration::from_secs(5)).await;

    let mut bad = settings(broker.port, &pki.ca, &pki.client_sec1, "json");
    bad.tls_server_name = Some("iot.example.com".to_string());
    let p = start(bad);
    let outcome = p
        .publish(8, encode(&report_json(8), "json"), Duration::from_secs(3))
        .await;
    assert!(matches!(outcome, Outcome::NotDelivered(_)), "{outcome:?}");
    p.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn reconnects_after_the_broker_restarts() {
    detect_testkit::init_logs();
    let pki = Pki::generate();
    let mut broker = Broker::start(&pki);
    let backend = Backend::start(&pki, broker.port).await;
    let p = start(settings(broker.port, &pki.ca, &pki.client_ec, "json"));
    assert_eq!(publish(&p, 100, "json").await, Outcome::Accepted);

    broker.stop();
    let state = p.state();
    assert!(
        eventually(Duration::from_secs(20), || matches!(
            *state.borrow(),
            ConnState::Backoff { .. }
        ))
        .await,
        "publisher did not notice the broker going away"
    );
    let outcome = p
        .publish(
            101,
            encode(&report_json(101), "json"),
            Duration::from_secs(1),
        )
        .await;
    assert!(matches!(outcome, Outcome::NotDelivered(_)), "{outcome:?}");

    let seen = backend.subscriptions();
    broker.start_again();
    backend.wait_subscribed(seen).await;
    assert_eq!(publish(&p, 102, "json").await, Outcome::Accepted);
    let ids: Vec<_> = backend.received().iter().map(|r| r.report_id).collect();
    assert_eq!(ids, [Some(100), Some(102)]);
    p.shutdown(Duration::from_secs(5)).await;
    assert_eq!(*state.borrow(), ConnState::Closed);
}

#[tokio::test]
async fn the_backend_rejects_custom_metrics_that_break_section_1_5() {
    let pki = Pki::generate();
    let broker = Broker::start(&pki);
    let backend = Backend::start(&pki, broker.port).await;
    backend.set_mode(Mode::Validate);
    let p = start(settings(broker.port, &pki.ca, &pki.client_ec, "json"));
    let with_custom = |id: u64, custom: serde_json::Value| {
        let mut r = report_json(id);
        r["custom_metrics"] = custom;
        encode(&r, "json")
    };
    let bad = [
        serde_json::json!({"m": {"number": 1}}),
        serde_json::json!({"m": [{"number": 1}, {"number": 2}]}),
        serde_json::json!({"m": [{"number": 1, "string_list": []}]}),
        serde_json::json!({"m": [{"numbers": [1]}]}),
        serde_json::json!({"m": [{"number_list": [1, "2"]}]}),
        serde_json::json!({"m": [{"ip_list": ["10.0.0.0/8"]}]}),
        serde_json::json!({"aws:m": [{"number": 1}]}),
    ];
    for (i, custom) in bad.into_iter().enumerate() {
        let id = 30 + i as u64;
        let outcome = p.publish(id, with_custom(id, custom.clone()), WAIT).await;
        assert!(
            matches!(outcome, Outcome::Rejected { ref code, .. } if code == "InvalidPayload"),
            "{custom}: {outcome:?}"
        );
    }
    let good = serde_json::json!({
        "a": [{"number": -0.5}],
        "b": [{"number_list": [1, 2.5]}],
        "c": [{"string_list": ["net"]}],
        "d": [{"ip_list": ["198.51.100.2", "2001:db8::9"]}],
    });
    assert_eq!(
        p.publish(40, with_custom(40, good), WAIT).await,
        Outcome::Accepted
    );
    p.shutdown(Duration::from_secs(5)).await;
}
