//! Owns the MQTT connection task: (re)connects with backoff, subscribes to the verdict
//! topics before anything is published, and matches PUBACKs and verdicts to the report in flight.
//! A broker that leaves a SUBSCRIBE or PUBLISH unanswered (`steps`) gets a new connection.

use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, EventLoop, Incoming, Outgoing, QoS, SubscribeReasonCode};
use tokio::sync::watch;

use super::backoff::Backoff;
use super::bridge::Bridge;
use super::client::{MAX_INCOMING_PACKET, mqtt_options};
use super::conn_error::describe_error;
use super::conn_state::ConnState;
use super::dial::{self, SocketDirs};
use super::inflight::Shared;
use super::log_limit::LogLimit;
use super::login::read_password;
use super::steps::Steps;
use super::tls::{self, MqttSettings};
use super::topics::Topics;
use super::verdict::{self, Encoding, Status};

/// A connection up at least this long counts as a success: the next failure starts the
/// reconnect backoff over.
const STABLE_AFTER: Duration = Duration::from_secs(10);

/// How long the bridge may take to pass on the last bytes when the session ends.
const BRIDGE_FINISH: Duration = Duration::from_secs(2);

/// The background task's state.
pub(super) struct Driver {
    pub(super) eventloop: EventLoop,
    pub(super) client: AsyncClient,
    pub(super) settings: MqttSettings,
    pub(super) topics: Topics,
    pub(super) encoding: Encoding,
    pub(super) backoff: Backoff,
    pub(super) state: watch::Sender<ConnState>,
    pub(super) shared: Arc<Shared>,
    pub(super) stopping: watch::Receiver<bool>,
    /// Rate limit of the log lines rogue or malformed verdicts cause.
    pub(super) noise: LogLimit,
    /// Where the private Unix socket rumqttc dials goes (its `Transport::Unix` address).
    pub(super) sockets: SocketDirs,
    /// The bridge of the current connection attempt.
    pub(super) bridge: Option<Bridge>,
}

impl Driver {
    pub(super) async fn run(mut self) {
        let mut attempt: u32 = 0;
        let mut connected = false;
        // A stuck step ends the session like a lost connection (`prepare_connection` then
        // drops the old network).
        let mut steps = Steps::default();
        let mut connected_at = tokio::time::Instant::now();
        // A session ended by a step timeout (a broker that never sends SUBACK or PUBACK)
        // never counts as stable, however long it was up.
        let mut stuck = false;
        loop {
            if *self.stopping.borrow() && !connected {
                break;
            }
            if !connected {
                attempt = attempt.saturating_add(1);
                self.state.send_replace(ConnState::Connecting { attempt });
                let mut stopping = self.stopping.clone();
                let prepared = tokio::select! {
                    prepared = self.prepare_connection() => prepared,
                    _ = stopping.wait_for(|s| *s) => break,
                };
                if let Err(error) = prepared {
                    if self.back_off(attempt, error).await {
                        break;
                    }
                    continue;
                }
            }
            let mut stopping = self.stopping.clone();
            let due = steps.due();
            let noise_due = self.noise.due();
            let far = tokio::time::Instant::now() + Duration::from_secs(86_400);
            let polled = tokio::select! {
                polled = self.eventloop.poll() => polled.map_err(|e| describe_error(&e)),
                _ = stopping.wait_for(|s| *s), if !connected => break,
                _ = tokio::time::sleep_until(noise_due.unwrap_or(far)), if noise_due.is_some() => {
                    if let Some(suppressed) = self.noise.take_suppressed(tokio::time::Instant::now()) {
                        tracing::warn!(suppressed, "verdict messages for no report in flight or malformed: log lines suppressed");
                    }
                    continue;
                }
                _ = tokio::time::sleep_until(due.map_or(far, |d| d.1)), if due.is_some() => {
                    let (step, timeout) = due.map_or(("", Duration::ZERO), |d| (d.0.name(), d.0.timeout()));
                    stuck = true;
                    tracing::warn!(step, timeout_ms = timeout.as_millis() as u64, "MQTT step timed out; reconnecting");
                    Err(format!("no {step} within {}s", timeout.as_secs()))
                }
            };
            if let Ok(event) = &polled {
                steps.observe(event, tokio::time::Instant::now());
            }
            // When the bridge ended on an error, that error is why rumqttc lost its socket.
            let polled = polled.map_err(|e| match self.bridge.as_mut().and_then(Bridge::error) {
                Some(cause) => cause.to_string(),
                None => e,
            });
            match polled {
                Ok(event) => {
                    if let Event::Incoming(Incoming::ConnAck(_)) = event {
                        connected = true;
                        connected_at = tokio::time::Instant::now();
                        stuck = false;
                        self.on_connected();
                    } else if self.on_event(event) {
                        break;
                    }
                }
                Err(error) => {
                    if *self.stopping.borrow() {
                        break;
                    }
                    steps.clear();
                    // Dropping the senders tells `publish` the connection is gone.
                    *self.shared.slot() = None;
                    if connected {
                        let up_for = connected_at.elapsed();
                        tracing::warn!(error = %error, up_ms = up_for.as_millis() as u64, "MQTT connection lost");
                        connected = false;
                        // Only a connection that stayed up starts the backoff over: one that
                        // dies right after it is made (a hostile message after SUBACK) backs
                        // off like a failed attempt (issue #11 item 3).
                        // The loss counts as this attempt's failure.
                        if up_for >= STABLE_AFTER && !stuck {
                            attempt = 1;
                            self.backoff.reset();
                        }
                        stuck = false;
                    }
                    if self.back_off(attempt.max(1), error).await {
                        break;
                    }
                }
            }
        }
        *self.shared.slot() = None;
        // Closing rumqttc's socket lets the bridge pass on what it still holds (our
        // DISCONNECT) and close the TLS session itself.
        self.eventloop.clean();
        if let Some(bridge) = self.bridge.take() {
            bridge.finish(BRIDGE_FINISH).await;
        }
        self.state.send_replace(ConnState::Closed);
    }

    /// Fresh TLS config and password from the files (a renewed certificate or rotated
    /// password is picked up on reconnect); drops whatever an old session left queued so a
    /// report given up as NotDelivered is never sent late. Then dials the broker and starts
    /// the bridge that rumqttc connects through (`bridge`), all within rumqttc's connection
    /// timeout.
    async fn prepare_connection(&mut self) -> Result<(), String> {
        self.bridge = None;
        let config = tls::client_config(&self.settings).map_err(|e| e.to_string())?;
        let password = match &self.settings.login {
            Some(login) => Some(read_password(&login.password_file).map_err(|e| e.to_string())?),
            None => None,
        };
        self.eventloop.clean();
        self.eventloop.pending.clear();
        let within = Duration::from_secs(self.eventloop.network_options().connection_timeout());
        let broker = dial::dial(&self.settings.endpoint, self.settings.port, config, within)
            .await
            .map_err(|e| e.to_string())?;
        // Bound only now: the socket exists while rumqttc is about to connect, no longer.
        let (listener, socket) = self.sockets.bind().map_err(|e| e.to_string())?;
        let Some(address) = socket.to_str() else {
            let _ = std::fs::remove_file(&socket);
            return Err(format!(
                "bridge socket {}: not a UTF-8 path",
                socket.display()
            ));
        };
        let mut options = mqtt_options(&self.settings, address);
        if let (Some(login), Some(password)) = (&self.settings.login, password) {
            options.set_credentials(login.username.clone(), password.expose());
        }
        self.eventloop.mqtt_options = options;
        self.bridge = Some(Bridge::start(
            listener,
            socket,
            broker,
            MAX_INCOMING_PACKET,
            within,
        ));
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
        let now = tokio::time::Instant::now();
        let v = match verdict::parse(payload, self.encoding, status) {
            Ok(v) => v,
            Err(e) => {
                if self.noise.allow(now) {
                    tracing::warn!(error = %e, bytes = payload.len(), "malformed verdict ignored");
                }
                return;
            }
        };
        let mut slot = self.shared.slot();
        let matched = slot.as_mut().filter(|f| match v.report_id {
            Some(id) => f.report_id == Some(id),
            // A rejection without reportId belongs to the report in flight (protocol doc §3.2).
            None => v.status == Status::Rejected && f.report_id.is_some(),
        });
        // Anyone allowed to publish on the verdict topics can send verdicts for no report in
        // flight by the thousand: their lines are rate-limited, the rest counted.
        if matched.is_none() && !self.noise.allow(now) {
            drop(slot);
            self.shared.keep_late(v.report_id, v.status);
            return;
        }
        let report_id = v.report_id.or(matched.as_ref().and_then(|f| f.report_id));
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
            None => {
                tracing::info!(report_id, "verdict for a report no longer in flight");
                drop(slot);
                self.shared.keep_late(report_id, v.status);
            }
        }
    }
}
