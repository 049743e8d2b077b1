//! Webhook alerts: the in-alarm event is POSTed as JSON to a loopback HTTP server written
//! here, retried after a 500 until a 2xx, and then never sent again.
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use detect_testkit::backend::tls;
use detect_testkit::broker::Broker;
use detect_testkit::certs::Pki;
use detect_testkit::eventually;
use detect_testkit::fleet::{Fleet, forbid_port};
use rumqttc::{AsyncClient, MqttOptions, QoS, Transport};
use serde_json::{Value, json};

/// (HTTP status answered, JSON body) of each POST, in arrival order.
type Posts = Arc<Mutex<Vec<(u16, Value)>>>;

/// Answers 500 to the first POST and 204 to the others; records (status, body) of each.
fn hook_server() -> (u16, Posts) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let got: Posts = Arc::default();
    let shared = got.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_err() {
                continue;
            }
            let mut g = shared.lock().unwrap();
            let status = if g.is_empty() { 500 } else { 204 };
            g.push((status, serde_json::from_slice(&body).unwrap_or(Value::Null)));
            drop(g);
            let reason = if status == 500 {
                "Internal Server Error"
            } else {
                "No Content"
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status} {reason}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
        }
    });
    (port, got)
}

#[tokio::test]
async fn a_webhook_gets_each_alarm_as_json_retried_after_a_500_until_a_2xx_and_only_then() {
    let pki = Pki::generate();
    let broker = Broker::start(&pki);
    let work = tempfile::tempdir().unwrap();
    let (hook_port, got) = hook_server();
    let mut fleet = Fleet::configure(
        work.path(),
        &pki,
        &broker,
        &[forbid_port("no-ssh", 22)],
        &[("no-ssh", "all-things")],
        1,
    );
    let text = std::fs::read_to_string(&fleet.config).unwrap();
    let topic_line = "mqtt_topic = \"detect-fleet/alarms/{thing}\"\n";
    assert!(text.contains(topic_line));
    let hook = format!("{topic_line}webhook_url = \"http://127.0.0.1:{hook_port}/detect\"\n");
    std::fs::write(&fleet.config, text.replace(topic_line, &hook)).unwrap();
    fleet.start_subscribed().await;

    let mut o = MqttOptions::new("hook-device", "127.0.0.1", broker.port);
    o.set_transport(Transport::tls_with_config(tls(&pki, &pki.client_ec)));
    let (c, mut el) = AsyncClient::new(o, 10);
    tokio::spawn(async move {
        loop {
            if el.poll().await.is_err() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
    let report = json!({
        "header": {"report_id": 1, "version": "1.0"},
        "metrics": {"listening_tcp_ports": {"ports": [{"port": 22}]}}
    });
    c.publish(
        "$aws/things/hooked/defender/metrics/json",
        QoS::AtLeastOnce,
        false,
        serde_json::to_vec(&report).unwrap(),
    )
    .await
    .unwrap();
    let delivered = eventually(Duration::from_secs(30), || got.lock().unwrap().len() >= 2).await;
    assert!(delivered, "{:?}\n{}", got.lock().unwrap(), fleet.log());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let got = got.lock().unwrap().clone();
    assert_eq!(got.len(), 2, "sent again after a 2xx: {got:?}");
    assert_eq!(got[0].0, 500);
    assert_eq!(got[0].1, got[1].1, "the retry carries the same event");
    let e = &got[1].1;
    assert_eq!(e["violationEventType"], "in-alarm", "{e}");
    assert_eq!(e["thingName"], "hooked", "{e}");
    assert_eq!(e["securityProfileName"], "no-ssh", "{e}");
    assert_eq!(e["metricValue"]["ports"], json!([22]), "{e}");
    assert!(
        fleet.log().contains("webhook alert not accepted"),
        "{}",
        fleet.log()
    );
}
