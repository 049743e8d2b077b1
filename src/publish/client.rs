//! Owns the publish calls: one message at a time, bounded waits for the connection, the PUBACK
//! and (reports only) the verdict; the connection task itself is `session`. Takes bytes.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use protocol::MAX_PUBLISH_BYTES;
use rumqttc::{AsyncClient, MqttOptions, QoS, Transport};
use tokio::sync::{oneshot, watch};
use tokio::time::{Instant, timeout_at};

use super::backoff::Backoff;
use super::conn_state::ConnState;
use super::dial::SocketDirs;
use super::inflight::{InFlight, Shared};
use super::session::Driver;
use super::tls::MqttSettings;
use super::topics::Topics;
use super::verdict::{Encoding, Status};

/// Room for the fixed header and topic around a maximal payload (`MAX_PUBLISH_BYTES`: AWS
/// IoT Core drops PUBLISH payloads above 128 KiB, protocol doc §4, §7.1 item 16).
const MAX_OUTGOING_PACKET: usize = MAX_PUBLISH_BYTES + 1024;
/// Verdicts are a few hundred bytes, but anyone allowed to publish on the verdict topics can
/// leave a bigger (retained) message there, and rumqttc drops the connection on a packet above
/// its limit: the agent would reconnect, resubscribe and get it again, forever (issue #11
/// item 3). AWS IoT Core carries no message above 128 KiB, so this limit (the same as
/// outgoing) takes any message a broker like it delivers; such a message is then ignored
/// (not a verdict) and logged. Bigger ones (brokers that allow them) never reach rumqttc:
/// the bridge drops them, acks them at QoS 1 and logs them (`bridge`), rate-limited.
pub(super) const MAX_INCOMING_PACKET: usize = MAX_OUTGOING_PACKET;
/// Small request queue: one report, a subscribe, acks.
const REQUEST_CAPACITY: usize = 8;

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

/// Why a plain send (`Publisher::send`) did not reach the broker.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NotSent(pub String);

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("MQTT settings: format segment {0:?} is neither \"json\" nor \"cbor\"")]
    BadFormat(String),
    #[error("MQTT settings: {field} is empty")]
    Empty { field: &'static str },
}

/// rumqttc's options, reaching the broker through the bridge's Unix socket at `socket`.
pub(super) fn mqtt_options(settings: &MqttSettings, socket: &str) -> MqttOptions {
    let mut options = MqttOptions::new(settings.client_id.clone(), socket, settings.port);
    options
        .set_transport(Transport::Unix)
        .set_keep_alive(Duration::from_secs(settings.keep_alive_secs))
        .set_clean_session(true)
        .set_max_packet_size(MAX_INCOMING_PACKET, MAX_OUTGOING_PACKET)
        .set_request_channel_capacity(REQUEST_CAPACITY)
        .set_inflight(2);
    options
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
    /// backoff, not here. `state_dir` (private to the agent) holds the socket between the
    /// TLS connection and rumqttc (`dial::SocketDirs`) when systemd gives no runtime dir.
    pub fn start(
        settings: MqttSettings,
        backoff: Backoff,
        state_dir: &Path,
    ) -> Result<Publisher, PublishError> {
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
        // The socket is chosen on each dial (`session`), which sets these options again.
        let options = mqtt_options(&settings, "");
        let sockets = SocketDirs::new(state_dir);
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
            noise: Default::default(),
            sockets,
            bridge: None,
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

    /// Verdicts (report id, status) that arrived after `publish` had stopped waiting for
    /// them, oldest first; each is returned once.
    pub fn late_verdicts(&self) -> Vec<(u64, Status)> {
        self.shared.take_late()
    }

    /// Publishes one encoded report at QoS 1 and waits, at most `wait` in total, for the
    /// connection, the PUBACK and then the verdict for `report_id`. One message at a time.
    pub async fn publish(&self, report_id: u64, payload: Vec<u8>, wait: Duration) -> Outcome {
        let deadline = Instant::now() + wait;
        let Ok(_turn) = timeout_at(deadline, self.one_at_a_time.lock()).await else {
            return Outcome::NotDelivered("another report is still in flight".to_string());
        };
        let (verdict_tx, verdict_rx) = oneshot::channel();
        let topic = self.topics.publish.clone();
        let sent = self
            .acked(
                &topic,
                payload,
                deadline,
                wait,
                Some(report_id),
                Some(verdict_tx),
            )
            .await;
        let outcome = match sent {
            Err(NotSent(reason)) => Outcome::NotDelivered(reason),
            // Without the verdict subscription there is nothing to wait for.
            Ok(false) => Outcome::Acked,
            Ok(true) => match timeout_at(deadline, verdict_rx).await {
                Ok(Ok(v)) => match v.status {
                    Status::Accepted => Outcome::Accepted,
                    Status::Rejected => Outcome::Rejected {
                        code: v.error_code.unwrap_or_else(|| "Unspecified".to_string()),
                        message: v.error_message,
                    },
                },
                Ok(Err(_)) | Err(_) => Outcome::Acked,
            },
        };
        *self.shared.slot() = None;
        outcome
    }

    /// A plain QoS-1 send (alarms): publishes `payload` on `topic` and waits, at most `wait`
    /// in total, for the connection and the broker's PUBACK. No verdict is involved, so it
    /// goes out whatever the backend answers to reports. One message at a time.
    pub async fn send(&self, topic: &str, payload: Vec<u8>, wait: Duration) -> Result<(), NotSent> {
        let deadline = Instant::now() + wait;
        let Ok(_turn) = timeout_at(deadline, self.one_at_a_time.lock()).await else {
            return Err(NotSent("a report is still in flight".to_string()));
        };
        let sent = self.acked(topic, payload, deadline, wait, None, None).await;
        *self.shared.slot() = None;
        sent.map(|_| ())
    }

    /// Waits for a ready connection, publishes at QoS 1 and waits for the PUBACK, all by
    /// `deadline`. True when the verdict topics are subscribed. The caller holds the turn
    /// and empties the in-flight slot afterwards.
    async fn acked(
        &self,
        topic: &str,
        payload: Vec<u8>,
        deadline: Instant,
        wait: Duration,
        report_id: Option<u64>,
        verdict: Option<oneshot::Sender<super::verdict::Verdict>>,
    ) -> Result<bool, NotSent> {
        if payload.len() > MAX_PUBLISH_BYTES {
            return Err(NotSent(format!(
                "payload of {} bytes exceeds the {MAX_PUBLISH_BYTES}-byte limit",
                payload.len()
            )));
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
            Ok(Err(_)) => return Err(NotSent("publisher stopped".to_string())),
            Err(_) => {
                let now = self.state.borrow().describe();
                return Err(NotSent(format!("not connected within {wait:?}: {now}")));
            }
        };
        let (puback_tx, puback_rx) = oneshot::channel();
        *self.shared.slot() = Some(InFlight {
            report_id,
            pkid: None,
            puback: Some(puback_tx),
            verdict,
        });
        if let Err(e) = self
            .client
            .try_publish(topic, QoS::AtLeastOnce, false, payload)
        {
            return Err(NotSent(format!("MQTT request queue: {e}")));
        }
        match timeout_at(deadline, puback_rx).await {
            Err(_) => Err(NotSent(format!("no PUBACK within {wait:?}"))),
            Ok(Err(_)) => Err(NotSent("connection lost before PUBACK".to_string())),
            Ok(Ok(())) => Ok(verdicts),
        }
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

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
