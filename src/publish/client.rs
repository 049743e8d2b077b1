//! Owns the MQTT session: one background task that (re)connects with backoff, subscribes to
//! the verdict topics, matches PUBACKs and verdicts to the report in flight. Does not build
//! or encode reports; it takes bytes and a report id.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rumqttc::{
    AsyncClient, ConnectionError, Event, EventLoop, Incoming, MqttOptions, Outgoing, QoS,
    SubscribeReasonCode, TlsConfiguration, Transport,
};
use tokio::sync::{oneshot, watch};
use tokio::time::{Instant, timeout_at};

use super::backoff::Backoff;
use super::tls::{self, MqttSettings};
use super::topics::Topics;
use super::verdict::{self, Encoding, Status, Verdict};

/// AWS IoT Core drops PUBLISH payloads above 128 KiB (protocol doc §4, §7.1 item 16).
pub const MAX_PAYLOAD: usize = 128 * 1024;
/// Room for the fixed header and topic around a maximal payload.
const MAX_OUTGOING_PACKET: usize = MAX_PAYLOAD + 1024;
/// Verdicts are a few hundred bytes; nothing else is subscribed.
const MAX_INCOMING_PACKET: usize = 16 * 1024;
/// Small request queue: one report, a subscribe, acks.
const REQUEST_CAPACITY: usize = 8;

/// What the connection is doing, for logs and systemd `STATUS=`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnState {
    Connecting {
        attempt: u32,
    },
    /// Connected, waiting for the SUBACK of the verdict topics.
    Subscribing,
    /// Publishing allowed. `verdicts` is false when the broker refused the subscription.
    Ready {
        verdicts: bool,
    },
    Backoff {
        attempt: u32,
        error: String,
        retry_in: Duration,
    },
    Closed,
}

impl ConnState {
    /// One line for systemd `STATUS=`.
    pub fn describe(&self) -> String {
        match self {
            ConnState::Connecting { attempt } => format!("connecting (attempt {attempt})"),
            ConnState::Subscribing => "connected, subscribing to verdicts".to_string(),
            ConnState::Ready { verdicts: true } => "connected".to_string(),
            ConnState::Ready { verdicts: false } => {
                "connected, verdict subscription refused".to_string()
            }
            ConnState::Backoff {
                attempt,
                error,
                retry_in,
            } => format!(
                "disconnected after attempt {attempt}: {error}; retry in {}s",
                retry_in.as_secs()
            ),
            ConnState::Closed => "closed".to_string(),
        }
    }
}

/// How one publish ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Accepted,
    /// `code` is the backend's `ErrorCode` (an open set, protocol doc §3.3), or
    /// `"Unspecified"` when the rejection carried none.
    Rejected {
        code: String,
        message: Option<String>,
    },
    /// The broker took the report (PUBACK) but no verdict came within the wait.
    Acked,
    /// The report did not reach the broker; the reason says why.
    NotDelivered(String),
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("MQTT settings: format segment {0:?} is neither \"json\" nor \"cbor\"")]
    BadFormat(String),
    #[error("MQTT settings: {field} is empty")]
    Empty { field: &'static str },
}

/// The report waiting for its PUBACK and verdict.
struct InFlight {
    report_id: u64,
    pkid: Option<u16>,
    puback: Option<oneshot::Sender<()>>,
    verdict: Option<oneshot::Sender<Verdict>>,
}

#[derive(Default)]
struct Shared {
    inflight: Mutex<Option<InFlight>>,
}

impl Shared {
    fn slot(&self) -> MutexGuard<'_, Option<InFlight>> {
        // A poisoned lock only means a panic elsewhere; the slot is still consistent.
        self.inflight.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Handle to the MQTT session. Dropping it without `shutdown` aborts the connection task
/// (no DISCONNECT is sent).
pub struct Publisher {
    client: AsyncClient,
    topics: Topics,
    shared: Arc<Shared>,
    state: watch::Receiver<ConnState>,
    stopping: watch::Sender<bool>,
    one_at_a_time: tokio::sync::Mutex<()>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Publisher {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl Publisher {
    /// Starts the connection task on the current tokio runtime. TLS files are read on each
    /// connection attempt, so a missing or bad file shows up as a connection error with
    /// backoff, not here.
    pub fn start(settings: MqttSettings, backoff: Backoff) -> Result<Publisher, PublishError> {
        let encoding = Encoding::from_segment(&settings.format_segment)
            .ok_or_else(|| PublishError::BadFormat(settings.format_segment.clone()))?;
        for (field, value) in [
            ("endpoint", &settings.endpoint),
            ("client_id", &settings.client_id),
            ("thing_name", &settings.thing_name),
        ] {
            if value.is_empty() {
                return Err(PublishError::Empty { field });
            }
        }
        let topics = Topics::new(&settings.thing_name, &settings.format_segment);
        let mut options = MqttOptions::new(
            settings.client_id.clone(),
            settings.endpoint.clone(),
            settings.port,
        );
        options
            .set_keep_alive(Duration::from_secs(settings.keep_alive_secs))
            .set_clean_session(true)
            .set_max_packet_size(MAX_INCOMING_PACKET, MAX_OUTGOING_PACKET)
            .set_request_channel_capacity(REQUEST_CAPACITY)
            .set_inflight(2);
        let (client, eventloop) = AsyncClient::new(options, REQUEST_CAPACITY);
        let shared = Arc::new(Shared::default());
        let (state_tx, state) = watch::channel(ConnState::Connecting { attempt: 0 });
        let (stopping, stop_rx) = watch::channel(false);
        let driver = Driver {
            eventloop,
            client: client.clone(),
            settings,
            topics: topics.clone(),
            encoding,
            backoff,
            state: state_tx,
            shared: shared.clone(),
            stopping: stop_rx,
        };
        let task = tokio::spawn(driver.run());
        Ok(Publisher {
            client,
            topics,
            shared,
            state,
            stopping,
            one_at_a_time: tokio::sync::Mutex::new(()),
            task: Some(task),
        })
    }

    /// Watch the connection state (for systemd `STATUS=`). Do not hold a `borrow()` across
    /// an await: it blocks the connection task's updates.
    pub fn state(&self) -> watch::Receiver<ConnState> {
        self.state.clone()
    }

    pub fn topics(&self) -> &Topics {
        &self.topics
    }

    /// Publishes one encoded report at QoS 1 and waits, at most `wait` in total, for the
    /// connection, the PUBACK and then the verdict for `report_id`. One report at a time.
    pub async fn publish(&self, report_id: u64, payload: Vec<u8>, wait: Duration) -> Outcome {
        let deadline = Instant::now() + wait;
        let Ok(_turn) = timeout_at(deadline, self.one_at_a_time.lock()).await else {
            return Outcome::NotDelivered("another report is still in flight".to_string());
        };
        if payload.len() > MAX_PAYLOAD {
            return Outcome::NotDelivered(format!(
                "payload of {} bytes exceeds the {MAX_PAYLOAD}-byte limit",
                payload.len()
            ));
        }
        let mut state = self.state.clone();
        let ready = timeout_at(deadline, async {
            state
                .wait_for(|s| matches!(s, ConnState::Ready { .. }))
                .await
                .map(|s| matches!(*s, ConnState::Ready { verdicts: true }))
        })
        .await;
        let verdicts = match ready {
            Ok(Ok(verdicts)) => verdicts,
            Ok(Err(_)) => return Outcome::NotDelivered("publisher stopped".to_string()),
            Err(_) => {
                let now = self.state.borrow().describe();
                return Outcome::NotDelivered(format!("not connected within {wait:?}: {now}"));
            }
        };
        let (puback_tx, puback_rx) = oneshot::channel();
        let (verdict_tx, verdict_rx) = oneshot::channel();
        *self.shared.slot() = Some(InFlight {
            report_id,
            pkid: None,
            puback: Some(puback_tx),
            verdict: Some(verdict_tx),
        });
        let outcome = match self.client.try_publish(
            self.topics.publish.as_str(),
            QoS::AtLeastOnce,
            false,
            payload,
        ) {
            Err(e) => Outcome::NotDelivered(format!("MQTT request queue: {e}")),
            Ok(()) => match timeout_at(deadline, puback_rx).await {
                Err(_) => Outcome::NotDelivered(format!("no PUBACK within {wait:?}")),
                Ok(Err(_)) => Outcome::NotDelivered("connection lost before PUBACK".to_string()),
                // Without the verdict subscription there is nothing to wait for.
                Ok(Ok(())) if !verdicts => Outcome::Acked,
                Ok(Ok(())) => match timeout_at(deadline, verdict_rx).await {
                    Ok(Ok(v)) => match v.status {
                        Status::Accepted => Outcome::Accepted,
                        Status::Rejected => Outcome::Rejected {
                            code: v.error_code.unwrap_or_else(|| "Unspecified".to_string()),
                            message: v.error_message,
                        },
                    },
                    Ok(Err(_)) | Err(_) => Outcome::Acked,
                },
            },
        };
        *self.shared.slot() = None;
        outcome
    }

    /// Sends DISCONNECT and waits up to `within` for the task to finish, then aborts it.
    pub async fn shutdown(mut self, within: Duration) {
        self.stopping.send_replace(true);
        if let Err(e) = self.client.try_disconnect() {
            tracing::debug!(error = %e, "MQTT disconnect request not queued");
        }
        let Some(mut task) = self.task.take() else {
            return;
        };
        if tokio::time::timeout(within, &mut task).await.is_err() {
            tracing::warn!(
                within_ms = within.as_millis() as u64,
                "MQTT task did not stop in time; aborted"
            );
            task.abort();
        }
    }
}

/// The background task's state.
struct Driver {
    eventloop: EventLoop,
    client: AsyncClient,
    settings: MqttSettings,
    topics: Topics,
    encoding: Encoding,
    backoff: Backoff,
    state: watch::Sender<ConnState>,
    shared: Arc<Shared>,
    stopping: watch::Receiver<bool>,
}

impl Driver {
    async fn run(mut self) {
        let mut attempt: u32 = 0;
        let mut connected = false;
        loop {
            if *self.stopping.borrow() && !connected {
                break;
            }
            if !connected {
                attempt = attempt.saturating_add(1);
                self.state.send_replace(ConnState::Connecting { attempt });
                if let Err(error) = self.prepare_connection() {
                    if self.back_off(attempt, error).await {
                        break;
                    }
                    continue;
                }
            }
            let mut stopping = self.stopping.clone();
            let polled = tokio::select! {
                polled = self.eventloop.poll() => polled,
                _ = stopping.wait_for(|s| *s), if !connected => break,
            };
            match polled {
                Ok(event) => {
                    if let Event::Incoming(Incoming::ConnAck(_)) = event {
                        connected = true;
                        attempt = 0;
                        self.backoff.reset();
                        self.on_connected();
                    } else if self.on_event(event) {
                        break;
                    }
                }
                Err(e) => {
                    if *self.stopping.borrow() {
                        break;
                    }
                    // Dropping the senders tells `publish` the connection is gone.
                    *self.shared.slot() = None;
                    let error = describe_error(&e);
                    if connected {
                        tracing::warn!(error = %error, "MQTT connection lost");
                        connected = false;
                        attempt = attempt.saturating_add(1);
                    }
                    if self.back_off(attempt.max(1), error).await {
                        break;
                    }
                }
            }
        }
        *self.shared.slot() = None;
        self.state.send_replace(ConnState::Closed);
    }

    /// Fresh TLS config from the files; drops whatever an old session left queued so a
    /// report given up as NotDelivered is never sent late.
    fn prepare_connection(&mut self) -> Result<(), String> {
        let config = tls::client_config(&self.settings).map_err(|e| e.to_string())?;
        self.eventloop.clean();
        self.eventloop.pending.clear();
        self.eventloop
            .mqtt_options
            .set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(config)));
        Ok(())
    }

    /// Logs the failure, publishes the state, sleeps. True when asked to stop meanwhile.
    async fn back_off(&mut self, attempt: u32, error: String) -> bool {
        let retry_in = self.backoff.next_delay();
        tracing::warn!(
            endpoint = %self.settings.endpoint,
            port = self.settings.port,
            attempt,
            retry_in_ms = retry_in.as_millis() as u64,
            error = %error,
            "MQTT connection failed"
        );
        self.state.send_replace(ConnState::Backoff {
            attempt,
            error,
            retry_in,
        });
        let mut stopping = self.stopping.clone();
        tokio::select! {
            _ = tokio::time::sleep(retry_in) => false,
            _ = stopping.wait_for(|s| *s) => true,
        }
    }

    fn on_connected(&mut self) {
        tracing::info!(endpoint = %self.settings.endpoint, port = self.settings.port, "MQTT connected");
        self.state.send_replace(ConnState::Subscribing);
        // Subscribe before publishing (protocol doc §2.2); QoS 1 like aws-c-iot (§2.3).
        let topics = self
            .topics
            .subscriptions()
            .map(|t| rumqttc::SubscribeFilter::new(t.to_string(), QoS::AtLeastOnce));
        if let Err(e) = self.client.try_subscribe_many(topics) {
            tracing::warn!(error = %e, "could not queue the verdict subscription");
            self.state
                .send_replace(ConnState::Ready { verdicts: false });
        }
    }

    /// Handles one event; true when the session is over (our own DISCONNECT went out).
    fn on_event(&mut self, event: Event) -> bool {
        match event {
            Event::Incoming(Incoming::SubAck(ack)) => {
                let ok = ack
                    .return_codes
                    .iter()
                    .all(|c| matches!(c, SubscribeReasonCode::Success(_)));
                if !ok {
                    tracing::warn!(codes = ?ack.return_codes, "broker refused the verdict subscription; reports will only be acked");
                }
                self.state.send_replace(ConnState::Ready { verdicts: ok });
            }
            Event::Incoming(Incoming::Publish(p)) => self.on_message(&p.topic, &p.payload),
            Event::Incoming(Incoming::PubAck(ack)) => {
                let mut slot = self.shared.slot();
                if let Some(f) = slot.as_mut().filter(|f| f.pkid == Some(ack.pkid)) {
                    tracing::debug!(report_id = f.report_id, pkid = ack.pkid, "PUBACK");
                    if let Some(tx) = f.puback.take() {
                        let _ = tx.send(());
                    }
                }
            }
            Event::Outgoing(Outgoing::Publish(pkid)) => {
                if let Some(f) = self.shared.slot().as_mut().filter(|f| f.pkid.is_none()) {
                    f.pkid = Some(pkid);
                }
            }
            Event::Outgoing(Outgoing::Disconnect) => return *self.stopping.borrow(),
            _ => {}
        }
        false
    }

    fn on_message(&mut self, topic: &str, payload: &[u8]) {
        let status = if topic == self.topics.accepted {
            Status::Accepted
        } else if topic == self.topics.rejected {
            Status::Rejected
        } else {
            tracing::debug!(topic, "message on an unexpected topic ignored");
            return;
        };
        let v = match verdict::parse(payload, self.encoding, status) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, bytes = payload.len(), "malformed verdict ignored");
                return;
            }
        };
        let mut slot = self.shared.slot();
        let matched = slot.as_mut().filter(|f| match v.report_id {
            Some(id) => id == f.report_id,
            // A rejection without reportId belongs to the report in flight (protocol doc §3.2).
            None => v.status == Status::Rejected,
        });
        let report_id = v.report_id.or(matched.as_ref().map(|f| f.report_id));
        match v.status {
            Status::Accepted => tracing::info!(report_id, verdict = "accepted", "report verdict"),
            Status::Rejected => tracing::warn!(
                report_id,
                verdict = "rejected",
                error_code = v.error_code.as_deref().unwrap_or("Unspecified"),
                error_message = v.error_message.as_deref().unwrap_or(""),
                "report verdict"
            ),
        }
        match matched.and_then(|f| f.verdict.take()) {
            Some(tx) => {
                let _ = tx.send(v);
            }
            None => tracing::info!(report_id, "verdict for a report no longer in flight"),
        }
    }
}

/// rumqttc's messages, with the TLS cause spelled out.
fn describe_error(e: &ConnectionError) -> String {
    match e {
        ConnectionError::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            format!("connection refused: {io}")
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_send<T: Send>(_: &T) {}

    #[test]
    fn publish_futures_can_be_spawned() {
        // Compile-time check: the daemon may run publish() inside tokio::spawn.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let settings = MqttSettings {
                endpoint: "127.0.0.1".to_string(),
                port: 1,
                ca_file: "/nonexistent/ca.pem".into(),
                cert_file: "/nonexistent/cert.pem".into(),
                key_file: "/nonexistent/key.pem".into(),
                tls_server_name: None,
                client_id: "t".to_string(),
                thing_name: "t".to_string(),
                format_segment: "json".to_string(),
                keep_alive_secs: 30,
            };
            let p = Publisher::start(settings, Backoff::reconnect(1)).unwrap();
            let fut = p.publish(1, Vec::new(), Duration::ZERO);
            is_send(&fut);
            assert!(matches!(fut.await, Outcome::NotDelivered(_)));
            let oversized = p.publish(2, vec![0; MAX_PAYLOAD + 1], Duration::from_secs(1));
            assert!(matches!(oversized.await, Outcome::NotDelivered(r) if r.contains("exceeds")));
            is_send(&p.shutdown(Duration::from_secs(1)));
        });
    }

    #[test]
    fn bad_settings_are_refused_up_front() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut s = MqttSettings {
                endpoint: "127.0.0.1".to_string(),
                port: 1,
                ca_file: "ca".into(),
                cert_file: "c".into(),
                key_file: "k".into(),
                tls_server_name: None,
                client_id: "t".to_string(),
                thing_name: "t".to_string(),
                format_segment: "xml".to_string(),
                keep_alive_secs: 30,
            };
            let err = Publisher::start(s.clone(), Backoff::reconnect(1))
                .err()
                .unwrap();
            assert!(err.to_string().contains("\"xml\""), "{err}");
            s.format_segment = "cbor".to_string();
            s.thing_name.clear();
            let err = Publisher::start(s, Backoff::reconnect(1)).err().unwrap();
            assert!(err.to_string().contains("thing_name"), "{err}");
        });
    }
}
