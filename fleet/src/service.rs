//! `detect-fleet run`: the MQTT side (issue #9 items 2 and 6). A persistent session with
//! manual acks: a report is acknowledged only after `Judge::handle` stored its outcome; alerts
//! go out at QoS 1 from the store's outbox and are marked sent on PUBACK. Decides nothing
//! about reports or alarms (that is `judge`).

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use detect_agent::publish::backoff::Backoff;
use detect_agent::publish::login::{Login, read_password};
use detect_agent::publish::tls::{ClientCert, MqttSettings, client_config};
use rumqttc::{
    AsyncClient, Event, Incoming, MqttOptions, Outgoing, QoS, TlsConfiguration, Transport,
};

use crate::config::Config;
use crate::intake::{MAX_REPORT_BYTES, ReportTopic};
use crate::judge::Judge;
use crate::store::{Store, StoreError, registry};

pub const REPORT_TOPICS: [&str; 2] = [
    "$aws/things/+/defender/metrics/json",
    "$aws/things/+/defender/metrics/cbor",
];

/// Requests queued to the MQTT event loop; a full queue drops an answer (counted, logged;
/// the report stays unacknowledged only if its ack is dropped too, and is then redelivered).
const REQUEST_CAPACITY: usize = 8192;
/// QoS 1 messages in flight at once.
const INFLIGHT: u16 = 100;
/// Largest incoming packet read: reports above `MAX_REPORT_BYTES` are read and rejected, but a
/// packet above this limit breaks the connection (rumqttc) and the broker would redeliver it
/// forever; the README tells to set the broker's own limit (mosquitto `message_size_limit`)
/// below it.
const MAX_INCOMING_PACKET: usize = 16 * 1024 * 1024;
/// Unsent alerts read from the store at once.
const OUTBOX_BATCH: usize = 200;
const REFRESH_EVERY: Duration = Duration::from_secs(2);
const SWEEP_EVERY: Duration = Duration::from_secs(60);
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// Stored answers are kept this long for redeliveries.
const REPORTS_KEPT_MS: u64 = 48 * 3600 * 1000;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("broker setup: {0}")]
    Setup(String),
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The options for a connection attempt: files are read again each time (renewed
/// certificates, rotated passwords).
fn options(config: &Config) -> Result<MqttOptions, String> {
    let b = &config.broker;
    let mut o = MqttOptions::new(b.client_id.clone(), b.endpoint.clone(), b.port);
    o.set_keep_alive(Duration::from_secs(30))
        .set_clean_session(false)
        .set_manual_acks(true)
        .set_inflight(INFLIGHT)
        .set_max_packet_size(MAX_INCOMING_PACKET, MAX_REPORT_BYTES * 2);
    if let (Some(user), Some(file)) = (&b.username, &b.password_file) {
        let password = read_password(file).map_err(|e| e.to_string())?;
        o.set_credentials(user.clone(), password.expose());
    }
    if let Some(ca) = &b.ca_file {
        let settings = MqttSettings {
            endpoint: b.endpoint.clone(),
            port: b.port,
            ca_file: ca.clone(),
            client_cert: match (&b.cert_file, &b.key_file) {
                (Some(c), Some(k)) => Some(ClientCert {
                    cert_file: c.clone(),
                    key_file: k.clone(),
                }),
                _ => None,
            },
            login: match (&b.username, &b.password_file) {
                (Some(u), Some(p)) => Some(Login {
                    username: u.clone(),
                    password_file: p.clone(),
                }),
                _ => None,
            },
            tls_server_name: b.tls_server_name.clone(),
            client_id: b.client_id.clone(),
            thing_name: b.client_id.clone(),
            format_segment: "json".into(),
            keep_alive_secs: 30,
        };
        let tls = client_config(&settings).map_err(|e| e.to_string())?;
        o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(tls)));
    }
    Ok(o)
}

/// What each of our QoS 1 publishes was, in the order the event loop sends them.
#[derive(Default)]
struct InFlight {
    /// One entry per QoS 1 publish queued: `Some(event id)` for an alert.
    queued: VecDeque<Option<i64>>,
    by_pkid: HashMap<u16, i64>,
    alerts: HashSet<i64>,
}

impl InFlight {
    fn forget(&mut self) {
        *self = InFlight::default();
    }
}

pub struct Service {
    config: Config,
    judge: Judge,
    store: Box<dyn Store>,
    client: AsyncClient,
    flight: InFlight,
    dropped: u64,
}

impl Service {
    pub fn new(
        config: Config,
        judge: Judge,
        store: Box<dyn Store>,
    ) -> Result<(Service, rumqttc::EventLoop), RunError> {
        let opts = options(&config).map_err(RunError::Setup)?;
        let (client, eventloop) = AsyncClient::new(opts, REQUEST_CAPACITY);
        let service = Service {
            config,
            judge,
            store,
            client,
            flight: InFlight::default(),
            dropped: 0,
        };
        Ok((service, eventloop))
    }

    /// Runs until SIGTERM/SIGINT; returns an error only when the store fails (the process
    /// then exits without acknowledging, and the broker redelivers to the next run).
    pub async fn run(mut self, mut eventloop: rumqttc::EventLoop) -> Result<(), RunError> {
        let mut backoff = Backoff::new(
            Duration::from_millis(200),
            Duration::from_secs(30),
            detect_agent::daemon::random::seed(),
        );
        let mut refresh = tokio::time::interval(REFRESH_EVERY);
        let mut sweep = tokio::time::interval(SWEEP_EVERY);
        let mut prune = tokio::time::interval(PRUNE_EVERY);
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(|e| RunError::Setup(format!("SIGTERM handler: {e}")))?;
        self.refresh()?;
        loop {
            tokio::select! {
                polled = eventloop.poll() => match polled {
                    Ok(event) => {
                        backoff.reset();
                        self.on_event(event)?;
                    }
                    Err(e) => {
                        eventloop.pending.clear();
                        self.flight.forget();
                        let delay = backoff.next_delay();
                        tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "broker connection lost");
                        tokio::time::sleep(delay).await;
                        match options(&self.config) {
                            Ok(o) => eventloop.mqtt_options = o,
                            Err(e) => tracing::warn!(error = %e, "broker setup failed; keeping the previous one"),
                        }
                    }
                },
                _ = refresh.tick() => {
                    self.refresh()?;
                    self.send_alerts()?;
                }
                _ = sweep.tick() => {
                    let w = self.judge.sweep(self.store.as_mut(), now_ms())?;
                    if !w.events.is_empty() {
                        tracing::info!(events = w.events.len(), "sweep: alarms invalidated");
                        self.send_alerts()?;
                    }
                }
                _ = prune.tick() => {
                    let now = now_ms();
                    let history = self.config.fleet.history_days.saturating_mul(86_400_000);
                    let n = self.store.prune(now.saturating_sub(history), now.saturating_sub(REPORTS_KEPT_MS))?;
                    tracing::info!(rows = n, "pruned history");
                }
                _ = term.recv() => break,
                _ = tokio::signal::ctrl_c() => break,
            }
        }
        tracing::info!(dropped_answers = self.dropped, "stopping");
        Ok(())
    }

    fn refresh(&mut self) -> Result<(), StoreError> {
        let things = self.store.things()?;
        self.judge.set_registry(registry(&things));
        Ok(())
    }

    fn on_event(&mut self, event: Event) -> Result<(), RunError> {
        match event {
            Event::Incoming(Incoming::ConnAck(ack)) => {
                tracing::info!(
                    session_present = ack.session_present,
                    "connected to the broker"
                );
                for t in REPORT_TOPICS {
                    if let Err(e) = self.client.try_subscribe(t, QoS::AtLeastOnce) {
                        tracing::warn!(topic = t, error = %e, "subscribe not queued");
                    }
                }
                self.send_alerts()?;
            }
            Event::Incoming(Incoming::SubAck(ack)) => {
                tracing::info!(codes = ?ack.return_codes, "subscribed to the report topics");
            }
            Event::Incoming(Incoming::Publish(p)) => self.on_report(p)?,
            Event::Outgoing(Outgoing::Publish(pkid)) => {
                if let Some(Some(id)) = self.flight.queued.pop_front() {
                    self.flight.by_pkid.insert(pkid, id);
                }
            }
            Event::Incoming(Incoming::PubAck(ack)) => {
                if let Some(id) = self.flight.by_pkid.remove(&ack.pkid) {
                    self.flight.alerts.remove(&id);
                    self.store.mark_sent(id)?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn on_report(&mut self, p: rumqttc::Publish) -> Result<(), RunError> {
        let topic = ReportTopic::parse(&p.topic);
        if let Some(topic) = topic {
            let handled = self
                .judge
                .handle(self.store.as_mut(), &topic, &p.payload, now_ms())?;
            self.publish(handled.answer_topic, handled.answer, None);
            if !handled.events.is_empty() {
                self.send_alerts()?;
            }
        }
        if let Err(e) = self.client.try_ack(&p) {
            tracing::warn!(error = %e, "ack not queued; the broker redelivers the report");
        }
        Ok(())
    }

    fn publish(&mut self, topic: String, payload: Vec<u8>, alert: Option<i64>) -> bool {
        match self
            .client
            .try_publish(topic, QoS::AtLeastOnce, false, payload)
        {
            Ok(()) => {
                self.flight.queued.push_back(alert);
                true
            }
            Err(e) => {
                self.dropped += 1;
                tracing::warn!(error = %e, dropped = self.dropped, "request queue full: message not sent now");
                false
            }
        }
    }

    /// Publishes stored, unsent, unsuppressed events not already in flight.
    fn send_alerts(&mut self) -> Result<(), StoreError> {
        for u in self.store.unsent(OUTBOX_BATCH)? {
            if self.flight.alerts.contains(&u.id) {
                continue;
            }
            let topic = self
                .config
                .alerts
                .mqtt_topic
                .replace("{thing}", &u.event.thing_name);
            let payload = serde_json::to_vec(&u.event).unwrap_or_default();
            if self.publish(topic, payload, Some(u.id)) {
                self.flight.alerts.insert(u.id);
            }
        }
        Ok(())
    }
}
