//! A strict stand-in for the Device Defender service: subscribes to every thing's metrics
//! topic, validates each report and answers on `/accepted` or `/rejected` in the request's
//! encoding (protocol doc §3). Records what it saw so tests can assert.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS, TlsConfiguration, Transport};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{Value, json};
use tokio::sync::watch;

use super::certs::{Identity, Pki};
use super::now_ms;
use super::validate::{report_id_of, validate};

/// `#` does not match `$` topics, so the filter names `$aws` explicitly.
pub const FILTER: &str = "$aws/things/+/defender/metrics/+";

/// How the backend answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Validate strictly; accept valid reports.
    Validate,
    /// Reject everything with this code; `with_report_id: false` mimics the doc example.
    Reject {
        code: String,
        message: String,
        with_report_id: bool,
    },
    /// Record, but never answer.
    Silent,
    /// Validate like `Validate`, but answer only after this long.
    Late(Duration),
}

impl Mode {
    /// Rejects every report with `Throttled`.
    pub fn throttled(with_report_id: bool) -> Mode {
        Mode::Reject {
            code: "Throttled".to_string(),
            message: "too fast".to_string(),
            with_report_id,
        }
    }
}

/// Waits (at most 20 s) until the SUBACK count `rx` is above `seen`.
pub async fn wait_above(rx: &watch::Receiver<u64>, seen: u64, who: &str) {
    let mut rx = rx.clone();
    let waited = tokio::time::timeout(Duration::from_secs(20), rx.wait_for(|n| *n > seen)).await;
    assert!(matches!(waited, Ok(Ok(_))), "{who} did not (re)subscribe");
}

#[derive(Debug, Clone)]
pub struct Received {
    pub thing: String,
    pub format: String,
    pub report_id: Option<u64>,
    pub value: Option<Value>,
    /// `None` when accepted, else the error code sent (or that would have been sent).
    pub rejected: Option<String>,
}

struct State {
    mode: Mode,
    received: Vec<Received>,
    last_ids: HashMap<String, u64>,
}

pub struct Backend {
    state: Arc<Mutex<State>>,
    subscribed: watch::Receiver<u64>,
    task: tokio::task::JoinHandle<()>,
}

pub fn tls(pki: &Pki, id: &Identity) -> TlsConfiguration {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(&pki.ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let chain = CertificateDer::pem_file_iter(&id.cert)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(&id.key).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap();
    TlsConfiguration::Rustls(Arc::new(config))
}

impl Backend {
    /// Connects to the broker and waits (bounded) until the subscription is acknowledged.
    pub async fn start(pki: &Pki, port: u16) -> Backend {
        Backend::start_with(pki, port, None).await
    }

    /// Like `start`, logging in with `(user, password)` as well as its certificate.
    pub async fn start_with(pki: &Pki, port: u16, login: Option<(&str, &str)>) -> Backend {
        let mut options = MqttOptions::new(pki.backend.name.clone(), "127.0.0.1", port);
        options
            .set_transport(Transport::tls_with_config(tls(pki, &pki.backend)))
            .set_keep_alive(Duration::from_secs(5))
            .set_max_packet_size(256 * 1024, 64 * 1024);
        if let Some((user, password)) = login {
            options.set_credentials(user, password);
        }
        let (client, mut eventloop) = AsyncClient::new(options, 16);
        let state = Arc::new(Mutex::new(State {
            mode: Mode::Validate,
            received: Vec::new(),
            last_ids: HashMap::new(),
        }));
        let (sub_tx, subscribed) = watch::channel(0u64);
        let shared = state.clone();
        let task = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                        client.try_subscribe(FILTER, QoS::AtLeastOnce).unwrap();
                    }
                    Ok(Event::Incoming(Incoming::SubAck(_))) => {
                        sub_tx.send_modify(|n| *n += 1);
                    }
                    Ok(Event::Incoming(Incoming::Publish(p))) => {
                        let delay = match shared.lock().unwrap().mode {
                            Mode::Late(d) => d,
                            _ => Duration::ZERO,
                        };
                        if let Some((topic, body)) = answer(&shared, &p.topic, &p.payload) {
                            if delay.is_zero() {
                                client
                                    .try_publish(topic, QoS::AtLeastOnce, false, body)
                                    .unwrap();
                            } else {
                                let client = client.clone();
                                tokio::spawn(async move {
                                    tokio::time::sleep(delay).await;
                                    let _ =
                                        client.publish(topic, QoS::AtLeastOnce, false, body).await;
                                });
                            }
                        }
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        let backend = Backend {
            state,
            subscribed,
            task,
        };
        backend.wait_subscribed(0).await;
        backend
    }

    /// How many SUBACKs so far (one per (re)connection).
    pub fn subscriptions(&self) -> u64 {
        *self.subscribed.borrow()
    }

    /// Waits (at most 20 s) until more than `seen` subscriptions were acknowledged.
    pub async fn wait_subscribed(&self, seen: u64) {
        wait_above(&self.subscribed, seen, "backend").await;
    }

    pub fn set_mode(&self, mode: Mode) {
        self.state.lock().unwrap().mode = mode;
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().received.clone()
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Validates one report and builds the reply (topic, payload), or None in Silent mode.
fn answer(state: &Mutex<State>, topic: &str, payload: &[u8]) -> Option<(String, Vec<u8>)> {
    // $aws/things/{thing}/defender/metrics/{format}
    let parts: Vec<&str> = topic.split('/').collect();
    let (thing, format) = match parts.as_slice() {
        ["$aws", "things", thing, "defender", "metrics", format] => (*thing, *format),
        _ => return None,
    };
    let decoded: Result<Value, String> = match format {
        "json" => serde_json::from_slice(payload).map_err(|e| e.to_string()),
        "cbor" => ciborium::from_reader(payload).map_err(|e| e.to_string()),
        other => Err(format!("unknown format segment {other:?}")),
    };
    let mut state = state.lock().unwrap();
    let last = state.last_ids.get(thing).copied();
    let checked = decoded
        .clone()
        .and_then(|v| validate(&v).map(|id| (v, id)))
        .and_then(|(v, id)| match last {
            Some(prev) if id <= prev => Err(format!("report_id {id} not greater than {prev}")),
            _ => Ok((v, id)),
        });
    let report_id = decoded.as_ref().ok().and_then(report_id_of);
    let mode = state.mode.clone();
    let (rejected, body) = match (&mode, &checked) {
        (
            Mode::Reject {
                code,
                message,
                with_report_id,
            },
            _,
        ) => {
            let id = report_id.filter(|_| *with_report_id);
            (Some(code.clone()), rejection(thing, id, code, message))
        }
        (_, Err(why)) => (
            Some("InvalidPayload".to_string()),
            rejection(thing, report_id, "InvalidPayload", why),
        ),
        (_, Ok((_, id))) => {
            state.last_ids.insert(thing.to_string(), *id);
            (
                None,
                json!({"thingName": thing, "reportId": id, "status": "ACCEPTED", "timestamp": now_ms()}),
            )
        }
    };
    state.received.push(Received {
        thing: thing.to_string(),
        format: format.to_string(),
        report_id,
        value: decoded.ok(),
        rejected: rejected.clone(),
    });
    if mode == Mode::Silent {
        return None;
    }
    let suffix = if rejected.is_some() {
        "rejected"
    } else {
        "accepted"
    };
    let bytes = match format {
        "cbor" => {
            let mut out = Vec::new();
            ciborium::into_writer(&body, &mut out).unwrap();
            out
        }
        _ => serde_json::to_vec(&body).unwrap(),
    };
    Some((format!("{topic}/{suffix}"), bytes))
}

fn rejection(thing: &str, report_id: Option<u64>, code: &str, message: &str) -> Value {
    let mut v = json!({
        "thingName": thing,
        "status": "REJECTED",
        "statusDetails": {"ErrorCode": code, "ErrorMessage": message},
        "timestamp": now_ms(),
    });
    if let Some(id) = report_id {
        v["reportId"] = json!(id);
    }
    v
}
