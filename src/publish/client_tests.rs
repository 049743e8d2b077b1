use super::*;
use crate::publish::ClientCert;

fn is_send<T: Send>(_: &T) {}

/// Settings for a broker on a closed port, with no client certificate and format `format`.
fn settings(format: &str) -> MqttSettings {
    MqttSettings {
        endpoint: "127.0.0.1".to_string(),
        port: 1,
        ca_file: "/nonexistent/ca.pem".into(),
        client_cert: None,
        login: None,
        tls_server_name: None,
        client_id: "t".to_string(),
        thing_name: "t".to_string(),
        format_segment: format.to_string(),
        keep_alive_secs: 30,
    }
}

#[test]
fn publish_futures_can_be_spawned() {
    // Compile-time check: the daemon may run publish() inside tokio::spawn.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    rt.block_on(async {
        let settings = MqttSettings {
            client_cert: Some(ClientCert {
                cert_file: "/nonexistent/cert.pem".into(),
                key_file: "/nonexistent/key.pem".into(),
            }),
            ..settings("json")
        };
        let p = Publisher::start(settings, Backoff::reconnect(1), dir.path()).unwrap();
        let fut = p.publish(1, Vec::new(), Duration::ZERO);
        is_send(&fut);
        assert!(matches!(fut.await, Outcome::NotDelivered(_)));
        let oversized = p.publish(2, vec![0; MAX_PUBLISH_BYTES + 1], Duration::from_secs(1));
        assert!(matches!(oversized.await, Outcome::NotDelivered(r) if r.contains("exceeds")));
        let alarm = p.send("t/alarms", b"{}".to_vec(), Duration::from_millis(50));
        is_send(&alarm);
        assert!(matches!(alarm.await, Err(NotSent(r)) if r.contains("not connected")));
        is_send(&p.shutdown(Duration::from_secs(1)));
    });
}

#[test]
fn bad_settings_are_refused_up_front() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    rt.block_on(async {
        let mut s = settings("xml");
        let err = Publisher::start(s.clone(), Backoff::reconnect(1), dir.path())
            .err()
            .unwrap();
        assert!(err.to_string().contains("\"xml\""), "{err}");
        s.format_segment = "cbor".to_string();
        s.thing_name.clear();
        let err = Publisher::start(s, Backoff::reconnect(1), dir.path())
            .err()
            .unwrap();
        assert!(err.to_string().contains("thing_name"), "{err}");
    });
}
