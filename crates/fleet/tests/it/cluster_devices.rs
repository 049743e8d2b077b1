//! Simulated devices for the cluster failure test: one MQTT client publishing a report per
//! device per round and recording every answer (thing, report id, bytes, arrival time).
//!
//! It keeps what it sent, so the test can tell whether every report got an answer, whether
//! the answers of one report are all the same (a stored answer sent again), and how long after
//! a fault every device was answered again.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use detect_testkit::backend::tls;
use detect_testkit::certs::Pki;
use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS, Transport};
use serde_json::Value;
use tokio::sync::watch;

use super::cluster_store::report;

/// Reports sent, answers sent again (the same bytes), and reports answered after a newer one.
pub struct Checked {
    pub sent: usize,
    pub again: usize,
    pub late: usize,
}

/// One answer as received: the report it answers, its topic's verdict and bytes.
struct Answer {
    thing: String,
    report_id: u64,
    accepted: bool,
    bytes: Vec<u8>,
    at: Instant,
}

type Key = (String, u64);

pub struct Devices {
    client: AsyncClient,
    got: Arc<Mutex<Vec<Answer>>>,
    subscribed: watch::Receiver<u64>,
    /// Every report published: (thing, report id) → when.
    sent: BTreeMap<Key, Instant>,
    next_id: u64,
    pub count: usize,
}

pub fn name(i: usize) -> String {
    format!("dev-{i}")
}

impl Devices {
    /// Connects (reconnecting and subscribing again after a broker restart) and waits until
    /// subscribed to every answer topic.
    pub async fn start(pki: &Pki, port: u16, count: usize) -> Devices {
        let mut o = MqttOptions::new("simulated-devices", "127.0.0.1", port);
        o.set_transport(Transport::tls_with_config(tls(pki, &pki.client_rsa)))
            .set_keep_alive(Duration::from_secs(5))
            .set_inflight(200);
        let (client, mut el) = AsyncClient::new(o, 4 * count);
        let got: Arc<Mutex<Vec<Answer>>> = Arc::default();
        let (tx, subscribed) = watch::channel(0u64);
        let (shared, sub) = (got.clone(), client.clone());
        tokio::spawn(async move {
            loop {
                match el.poll().await {
                    Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                        let filter = "$aws/things/+/defender/metrics/+/+";
                        let _ = sub.try_subscribe(filter, QoS::AtLeastOnce);
                    }
                    Ok(Event::Incoming(Incoming::SubAck(_))) => tx.send_modify(|n| *n += 1),
                    Ok(Event::Incoming(Incoming::Publish(p))) => {
                        let v: Value = serde_json::from_slice(&p.payload).unwrap_or(Value::Null);
                        let answer = Answer {
                            thing: v["thingName"].as_str().unwrap_or("?").to_string(),
                            report_id: v["reportId"].as_u64().unwrap_or(0),
                            accepted: p.topic.ends_with("/accepted"),
                            bytes: p.payload.to_vec(),
                            at: Instant::now(),
                        };
                        shared.lock().unwrap().push(answer);
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        let d = Devices {
            client,
            got,
            subscribed,
            sent: BTreeMap::new(),
            next_id: 0,
            count,
        };
        d.wait_subscribed(0).await;
        d
    }

    /// Waits (at most 30 s) for a subscription after the first `seen`.
    pub async fn wait_subscribed(&self, seen: u64) {
        let mut rx = self.subscribed.clone();
        let up = tokio::time::timeout(Duration::from_secs(30), rx.wait_for(|n| *n > seen)).await;
        assert!(up.is_ok(), "devices not subscribed again within 30 s");
    }

    pub fn subscriptions(&self) -> u64 {
        *self.subscribed.borrow()
    }

    /// One report per device under a new id, the time in ms as real agents use (`bad` devices
    /// listen on port 22).
    pub async fn round(&mut self, bad: &[usize]) {
        self.next_id = (self.next_id + 1).max(detect_testkit::now_ms());
        for i in 0..self.count {
            let ports: &[u16] = if bad.contains(&i) { &[22] } else { &[] };
            let topic = format!("$aws/things/{}/defender/metrics/json", name(i));
            let body = report(self.next_id, ports);
            self.client
                .publish(topic, QoS::AtLeastOnce, false, body)
                .await
                .unwrap();
            self.sent.insert((name(i), self.next_id), Instant::now());
        }
    }

    /// How long after `since` every device had an answer to a report it sent after `since`
    /// (`None`: some device has none yet).
    pub fn served_after(&self, since: Instant) -> Option<Duration> {
        let got = self.got.lock().unwrap();
        let mut first: BTreeMap<&str, Instant> = BTreeMap::new();
        for a in got.iter() {
            let key = (a.thing.clone(), a.report_id);
            if self.sent.get(&key).is_some_and(|&t| t >= since) {
                let e = first.entry(a.thing.as_str()).or_insert(a.at);
                *e = (*e).min(a.at);
            }
        }
        if first.len() < self.count {
            return None;
        }
        first.values().max().map(|t| t.duration_since(since))
    }

    /// Reports sent and not answered yet.
    pub fn unanswered(&self) -> Vec<Key> {
        let got = self.got.lock().unwrap();
        let answered: std::collections::BTreeSet<Key> =
            got.iter().map(|a| (a.thing.clone(), a.report_id)).collect();
        self.sent
            .keys()
            .filter(|k| !answered.contains(*k))
            .cloned()
            .collect()
    }

    /// Waits (at most `limit`) until every report sent has an answer; then checks that all
    /// answers of one report are the same bytes (its stored answer sent again), that each
    /// accepts its report unless a newer one of its device was accepted first, and that
    /// nothing answers a report never sent.
    pub async fn check_answers(&self, limit: Duration) -> Result<Checked, String> {
        let all = || self.unanswered().is_empty();
        if !detect_testkit::eventually(limit, all).await {
            let missing = self.unanswered();
            return Err(format!(
                "{} of {} reports got no answer within {limit:?}: {:?}",
                missing.len(),
                self.sent.len(),
                &missing[..missing.len().min(20)]
            ));
        }
        let got = self.got.lock().unwrap();
        let mut by_report: BTreeMap<Key, Vec<&Answer>> = BTreeMap::new();
        for a in got.iter() {
            by_report
                .entry((a.thing.clone(), a.report_id))
                .or_default()
                .push(a);
        }
        let mut again = 0;
        let mut late = 0;
        for (key, answers) in &by_report {
            if !self.sent.contains_key(key) {
                return Err(format!("an answer to {key:?}, never sent"));
            }
            let first = answers[0];
            if answers.iter().any(|a| a.bytes != first.bytes) {
                return Err(format!(
                    "{key:?} answered differently {} times",
                    answers.len()
                ));
            }
            again += answers.len() - 1;
            if first.accepted {
                continue;
            }
            // The one rejection allowed: a report handed over by an instance that gave its
            // partition up can reach the new owner after a newer report of that device
            // (devices here report every 2 s, far more often than the hold time).
            let text = String::from_utf8_lossy(&first.bytes);
            let newer = (key.0.clone(), key.1 + 1)..(key.0.clone(), u64::MAX);
            let superseded = by_report.range(newer).any(|(_, a)| a[0].accepted);
            if !(superseded && text.contains("is not greater than the last accepted")) {
                return Err(format!("{key:?} rejected: {text}"));
            }
            late += 1;
        }
        Ok(Checked {
            sent: self.sent.len(),
            again,
            late,
        })
    }
}
