//! A test MQTT client on the alarm topics: subscribes to `detect-agent/+/alarms` with the
//! backend's certificate and records every message (topic, JSON payload) in arrival order.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS, Transport};
use serde_json::Value;
use tokio::sync::watch;

use super::backend::tls;
use super::certs::Pki;

pub const ALARM_FILTER: &str = "detect-agent/+/alarms";

pub struct Alarms {
    got: Arc<Mutex<Vec<(String, Value)>>>,
    subscribed: watch::Receiver<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl Alarms {
    /// Connects (reconnecting after a broker restart) and waits until subscribed to `filter`.
    pub async fn start(pki: &Pki, port: u16, filter: &str) -> Alarms {
        let id = format!(
            "alarm-listener-{}",
            super::agent_config::rand_suffix() % 1_000_000
        );
        let mut options = MqttOptions::new(id, "127.0.0.1", port);
        options
            .set_transport(Transport::tls_with_config(tls(pki, &pki.backend)))
            .set_keep_alive(Duration::from_secs(5));
        let (client, mut eventloop) = AsyncClient::new(options, 16);
        let got = Arc::new(Mutex::new(Vec::new()));
        let (sub_tx, subscribed) = watch::channel(0u64);
        let shared = got.clone();
        let filter = filter.to_string();
        let task = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                        client.try_subscribe(&filter, QoS::AtLeastOnce).unwrap();
                    }
                    Ok(Event::Incoming(Incoming::SubAck(_))) => sub_tx.send_modify(|n| *n += 1),
                    Ok(Event::Incoming(Incoming::Publish(p))) => {
                        let value = serde_json::from_slice(&p.payload)
                            .unwrap_or_else(|e| Value::String(format!("not JSON: {e}")));
                        shared.lock().unwrap().push((p.topic.clone(), value));
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        let alarms = Alarms {
            got,
            subscribed,
            task,
        };
        alarms.wait_subscribed(0).await;
        alarms
    }

    /// Waits (at most 20 s) until more than `seen` subscriptions were acknowledged.
    pub async fn wait_subscribed(&self, seen: u64) {
        let mut rx = self.subscribed.clone();
        let waited =
            tokio::time::timeout(Duration::from_secs(20), rx.wait_for(|n| *n > seen)).await;
        assert!(
            matches!(waited, Ok(Ok(_))),
            "alarm listener did not (re)subscribe"
        );
    }

    pub fn subscriptions(&self) -> u64 {
        *self.subscribed.borrow()
    }

    /// Every message so far, oldest first.
    pub fn received(&self) -> Vec<(String, Value)> {
        self.got.lock().unwrap().clone()
    }

    /// The payloads whose `violationEventType` is `kind`.
    /// Each violation's notified transitions, in order: the same transition sent again (at
    /// least once) counts once, a second alarm of one episode shows as a second id.
    pub fn transitions(&self) -> std::collections::BTreeMap<String, Vec<String>> {
        let mut by_id: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        for (_, v) in self.received() {
            let id = v["violationId"].as_str().unwrap_or("?").to_string();
            let kind = v["violationEventType"].as_str().unwrap_or("?").to_string();
            let seen = by_id.entry(id).or_default();
            if !seen.contains(&kind) {
                seen.push(kind);
            }
        }
        by_id
    }

    pub fn of_type(&self, kind: &str) -> Vec<Value> {
        self.received()
            .into_iter()
            .map(|(_, v)| v)
            .filter(|v| v["violationEventType"] == kind)
            .collect()
    }
}

impl Drop for Alarms {
    fn drop(&mut self) {
        self.task.abort();
    }
}
