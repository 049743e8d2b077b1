//! A plain MQTT client for the authorization tests: logs in with a certificate (or a user name
//! and password) under a client id of its choosing, subscribes, and records what it receives.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use detect_testkit::backend::tls;
use detect_testkit::certs::{Identity, Pki};
use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS, Transport};

/// What a client received: (topic, payload), in arrival order.
type Got = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

pub(crate) struct Client {
    pub(crate) mqtt: AsyncClient,
    got: Got,
    task: tokio::task::JoinHandle<()>,
}

/// Connects to the broker on `port` as certificate `id` (and `login`, when given) with
/// `client_id`, subscribes to `filters` and waits (at most 20 s) for the SUBACK.
pub(crate) async fn connect(
    pki: &Pki,
    id: &Identity,
    login: Option<(&str, &str)>,
    client_id: &str,
    port: u16,
    filters: &[&str],
) -> Client {
    let mut o = MqttOptions::new(client_id, "127.0.0.1", port);
    o.set_transport(Transport::tls_with_config(tls(pki, id)))
        .set_keep_alive(Duration::from_secs(5));
    if let Some((user, password)) = login {
        o.set_credentials(user, password);
    }
    let (mqtt, mut el) = AsyncClient::new(o, 16);
    let got: Got = Arc::default();
    let (tx, mut ready) = tokio::sync::watch::channel(false);
    let shared = got.clone();
    let sub = mqtt.clone();
    let filters: Vec<String> = filters.iter().map(|f| f.to_string()).collect();
    let task = tokio::spawn(async move {
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Incoming::ConnAck(_))) if filters.is_empty() => {
                    let _ = tx.send(true);
                }
                Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                    let all = filters
                        .iter()
                        .map(|f| rumqttc::SubscribeFilter::new(f.clone(), QoS::AtLeastOnce));
                    sub.try_subscribe_many(all).unwrap();
                }
                Ok(Event::Incoming(Incoming::SubAck(_))) => {
                    let _ = tx.send(true);
                }
                Ok(Event::Incoming(Incoming::Publish(p))) => {
                    shared
                        .lock()
                        .unwrap()
                        .push((p.topic.clone(), p.payload.to_vec()));
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    let up = tokio::time::timeout(Duration::from_secs(20), ready.wait_for(|r| *r)).await;
    assert!(
        matches!(up, Ok(Ok(_))),
        "{client_id} did not connect and subscribe"
    );
    Client { mqtt, got, task }
}

impl Client {
    /// Publishes `payload` on `topic` at QoS 1.
    pub(crate) async fn send(&self, topic: &str, payload: Vec<u8>) {
        self.mqtt
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
            .unwrap();
    }

    /// Every message received so far: (topic, payload as text).
    pub(crate) fn received(&self) -> Vec<(String, String)> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .map(|(t, p)| (t.clone(), String::from_utf8_lossy(p).into_owned()))
            .collect()
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.task.abort();
    }
}
