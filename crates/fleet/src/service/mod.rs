//! `detect-fleet run`: the MQTT side (issue #9 items 2 and 6). Reports come in on a persistent
//! session with manual acks: a report is acknowledged only after `Judge::handle` stored its
//! outcome. Alerts leave from the store's outbox over their own connection (`alerts.rs`).
//! Decides nothing about reports or alarms (that is `judge`).

mod alerts;
pub mod cluster;
mod connection;
mod hold;
mod nats_intake;
mod webhook;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rumqttc::{AsyncClient, Event, Incoming, QoS};
use tokio::sync::{Notify, mpsc};

use crate::config::Config;
use crate::intake::ReportTopic;
use crate::judge::Judge;
use crate::sources::{self, Source};
use crate::store::{Outbox, Store, StoreError};
use connection::{Polled, drive, options};

pub const REPORT_TOPICS: [&str; 2] = protocol::topics::REPORT_FILTERS;
/// Cluster mode's shared subscription group (`$share/detect-fleet/<filter>`).
pub const SHARE_GROUP: &str = "detect-fleet";

/// Requests queued to the MQTT event loop; the service waits when it is full.
const REQUEST_CAPACITY: usize = 1024;
/// Reports stored in one transaction at most (those already received; never waits for more).
const BATCH: usize = 256;
/// Our answers in flight at once.
const INFLIGHT: u16 = 100;
const REFRESH_EVERY: Duration = Duration::from_secs(2);
const SWEEP_EVERY: Duration = Duration::from_secs(60);
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// Cluster mode: the pause of periodic store work after a failure, first and longest.
const QUIET_MIN: Duration = Duration::from_secs(5);
const QUIET_MAX: Duration = Duration::from_secs(60);
/// Cluster mode: how often reports held for partitions that became ours are judged.
const HELD_EVERY: Duration = Duration::from_millis(250);
/// Stored answers and statistical samples are kept this long.
pub const REPORTS_KEPT_MS: u64 = 48 * 3600 * 1000;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("broker setup: {0}")]
    Setup(String),
}

/// Whether this instance sends alerts and prunes now: always in single-node mode, in cluster
/// mode while it holds partition 0 (`cluster::Link::lead`).
pub type Lead = Arc<dyn Fn() -> bool + Send + Sync>;

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub struct Service {
    config: Config,
    judge: Judge,
    store: Box<dyn Store + Send>,
    client: AsyncClient,
    wake_alerts: Arc<Notify>,
    wake_webhook: Arc<Notify>,
    /// The broker integration read on this connection (`[broker] source`), if any.
    source: Option<Box<dyn Source>>,
    /// When cloud-side windows may close: a grace after the subscription, `None` while the
    /// connection is down (late batches would otherwise miss their windows).
    windows_from: Option<tokio::time::Instant>,
    /// `[broker] source = "nats"`: the nats task's feeds (its own connection, not this one).
    nats: Option<mpsc::Receiver<sources::nats::Feed>>,
    /// Cluster mode (`[cluster] enabled`): ownership, forwards and the inbox.
    cluster: Option<cluster::Link>,
    /// `[cluster] intake = "nats"`: reports from a JetStream consumer, answers over NATS.
    intake: Option<nats_intake::Intake>,
    /// Cluster mode: periodic store work failed (the store unreachable); none until this time,
    /// and the pause doubles at each failure (5 s to 60 s), so that a store call waiting out
    /// its timeout every 2 s does not starve the reports.
    quiet: Option<(tokio::time::Instant, Duration)>,
}

impl Service {
    /// Runs until SIGTERM/SIGINT. `store` serves the reports, `alert_store` (a second handle
    /// on the same database) the MQTT alert sender, `webhook_store` (a third) the webhook
    /// sender when `[alerts] webhook_url` is set. Returns an error when a store fails: the
    /// process then exits without acknowledging, and the broker redelivers to the next run.
    pub async fn run(
        config: Config,
        judge: Judge,
        store: Box<dyn Store + Send>,
        alert_store: Box<dyn Outbox + Send>,
        webhook_store: Option<Box<dyn Outbox + Send>>,
        cluster: Option<cluster::Link>,
    ) -> Result<(), RunError> {
        let lead: Lead = match &cluster {
            Some(link) => link.lead(),
            None => Arc::new(|| true),
        };
        let id = config.broker.client_id.clone();
        let opts = options(&config, &id, true, INFLIGHT).map_err(RunError::Setup)?;
        let (client, eventloop) = AsyncClient::new(opts, REQUEST_CAPACITY);
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(drive(eventloop, config.clone(), id, true, INFLIGHT, tx));
        let wake_alerts = Arc::new(Notify::new());
        let alerts = tokio::spawn(alerts::run(
            config.clone(),
            alert_store,
            wake_alerts.clone(),
            lead.clone(),
        ));
        let wake_webhook = Arc::new(Notify::new());
        let hook = match (&config.alerts.webhook_url, webhook_store) {
            (Some(url), Some(s)) => {
                tokio::spawn(webhook::run(url.clone(), s, wake_webhook.clone(), lead))
            }
            _ => tokio::spawn(std::future::pending()),
        };
        let source = sources::configured(config.broker.source);
        let nats = match (&config.broker.source, &config.nats) {
            (crate::config::BrokerSource::Nats, Some(n)) => {
                Some(sources::nats::spawn(n.clone(), now_ms))
            }
            _ => None,
        };
        let intake = match &cluster {
            Some(link) if config.cluster.intake == crate::config_cluster::Intake::Nats => {
                Some(nats_intake::Intake::start(link, config.store.replicas))
            }
            _ => None,
        };
        let service = Service {
            intake,
            source,
            nats,
            windows_from: None,
            config,
            judge,
            store,
            client,
            wake_alerts,
            wake_webhook,
            cluster,
            quiet: None,
        };
        let stopped = |name: &str, e: tokio::task::JoinError| {
            Err(RunError::Setup(format!("{name} stopped: {e}")))
        };
        tokio::select! {
            done = service.serve(rx) => done,
            failed = alerts => failed.unwrap_or_else(|e| stopped("alert sender", e)),
            failed = hook => failed.unwrap_or_else(|e| stopped("webhook sender", e)),
        }
    }

    async fn serve(mut self, mut rx: mpsc::UnboundedReceiver<Polled>) -> Result<(), RunError> {
        let mut refresh = tokio::time::interval(REFRESH_EVERY);
        let mut sweep = tokio::time::interval(SWEEP_EVERY);
        let mut prune = tokio::time::interval(PRUNE_EVERY);
        let mut held = tokio::time::interval(HELD_EVERY);
        held.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Cloud-side windows close only while subscribed, a grace after (re)subscribing, so
        // that batches the broker kept for our session count before their windows are judged.
        let (close_every, _) = self.judge.close_timing();
        let mut close = tokio::time::interval(close_every);
        close.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(|e| RunError::Setup(format!("SIGTERM handler: {e}")))?;
        self.refresh()?;
        // ML groups from the stored models before the first report is judged (docs/ml.md).
        if let Some(n) = self.judge.calibrate_from(self.store.as_mut(), now_ms())? {
            tracing::info!(behaviors = n, "ML groups calibrated at start-up");
        }
        let mut nats = self.nats.take();
        let mut inbox = self.cluster.as_mut().map(|l| {
            let (_, dead) = mpsc::channel(1);
            std::mem::replace(&mut l.inbox, dead)
        });
        let mut intake = self.intake.as_mut().and_then(|i| i.rx.take());
        loop {
            tokio::select! {
                delivery = async {
                    match intake.as_mut() {
                        Some(rx) => rx.recv().await,
                        None => std::future::pending().await,
                    }
                } => match (delivery, intake.as_mut()) {
                    (Some(d), Some(rx)) => self.on_intake(d, rx).await?,
                    _ => return Err(RunError::Setup("nats intake stopped".into())),
                },
                work = async {
                    match inbox.as_mut() {
                        Some(rx) => rx.recv().await,
                        None => std::future::pending().await,
                    }
                } => if let Some(work) = work {
                    self.on_work(work).await?;
                },
                feed = async {
                    match nats.as_mut() {
                        Some(rx) => rx.recv().await,
                        None => std::future::pending().await,
                    }
                } => match feed {
                    Some(feed) => {
                        // What else is queued, up to a batch, then one sync.
                        self.on_nats(feed)?;
                        for _ in 1..BATCH {
                            match nats.as_mut().map(|rx| rx.try_recv()) {
                                Some(Ok(feed)) => self.on_nats(feed)?,
                                _ => break,
                            }
                        }
                        let done = self.store.sync();
                        self.tolerate("broker events", done)?;
                    }
                    None => {
                        tracing::error!("nats source stopped: cloud-side windows get no more events");
                        nats = None;
                        self.windows_from = None;
                    }
                },
                got = rx.recv() => match got {
                    Some(Polled::Event(Event::Incoming(Incoming::Publish(p)))) => {
                        let mut batch = vec![p];
                        let mut other = Vec::new();
                        while batch.len() < BATCH {
                            match rx.try_recv() {
                                Ok(Polled::Event(Event::Incoming(Incoming::Publish(p)))) => batch.push(p),
                                Ok(Polled::Event(e)) => other.push(e),
                                Ok(Polled::Lost) => {
                                    self.mqtt_lost();
                                    break;
                                }
                                Err(_) => break,
                            }
                        }
                        self.on_reports(batch).await?;
                        for e in other {
                            self.on_event(e).await?;
                        }
                    }
                    Some(Polled::Event(event)) => self.on_event(event).await?,
                    Some(Polled::Lost) => self.mqtt_lost(),
                    None => return Err(RunError::Setup("MQTT connection task ended".into())),
                },
                _ = held.tick(), if self.cluster.is_some() => self.on_held_tick().await?,
                _ = refresh.tick() => {
                    if self.quieted() { continue }
                    let done = self.refresh();
                    self.tolerate("registry refresh", done)?;
                }
                _ = sweep.tick() => {
                    if self.quieted() { continue }
                    let done = self.judge.sweep(self.store.as_mut(), now_ms());
                    let Some(w) = self.tolerate("sweep", done)? else { continue };
                    let done = self.store.sync();
                    if self.tolerate("sweep", done)?.is_none() { continue }
                    crate::metrics::global().events(&w.events);
                    if !w.events.is_empty() {
                        tracing::info!(events = w.events.len(), "sweep: alarms invalidated");
                        self.wake_alerts.notify_one();
                        self.wake_webhook.notify_one();
                    }
                }
                _ = close.tick(), if self.windows_from.is_some_and(|t| t <= tokio::time::Instant::now()) => {
                    if self.quieted() { continue }
                    let done = self.judge.close_windows(self.store.as_mut(), now_ms());
                    let Some(w) = self.tolerate("closing windows", done)? else { continue };
                    let done = self.store.sync();
                    if self.tolerate("closing windows", done)?.is_none() { continue }
                    crate::metrics::global().events(&w.events);
                    if !w.events.is_empty() {
                        self.wake_alerts.notify_one();
                        self.wake_webhook.notify_one();
                    }
                }
                _ = prune.tick(), if self.cluster.as_ref().is_none_or(|l| l.leads()) => {
                    if self.quieted() { continue }
                    let now = now_ms();
                    let history = self.config.fleet.history_days.saturating_mul(86_400_000);
                    let done = self.store.prune(now.saturating_sub(history), now.saturating_sub(REPORTS_KEPT_MS));
                    if let Some(n) = self.tolerate("prune", done)? {
                        let metrics = self.config.fleet.metric_history_days.saturating_mul(86_400_000);
                        let done = self.store.prune_history(now.saturating_sub(metrics));
                        if let Some(points) = self.tolerate("prune metric history", done)? {
                            tracing::info!(rows = n, points, "pruned history");
                        }
                    }
                }
                _ = term.recv() => break,
                _ = tokio::signal::ctrl_c() => break,
            }
        }
        tracing::info!("stopping");
        if let Some(link) = &self.cluster {
            link.hand_back().await;
        }
        Ok(())
    }

    /// Periodic work's store error: in cluster mode an unreachable store (a nats-server
    /// election, a lost connection) is logged and the work done at its next turn, and a
    /// refused write (the thing moved: `Judge::commit_owned`) is left to the new owner;
    /// anything else, or any error in single-node mode, stops the service.
    fn tolerate<T>(
        &mut self,
        what: &str,
        done: Result<T, StoreError>,
    ) -> Result<Option<T>, RunError> {
        match done {
            Ok(v) => {
                self.quiet = None;
                Ok(Some(v))
            }
            Err(e @ StoreError::Backend { .. }) if self.cluster.is_some() => {
                let pause = self
                    .quiet
                    .map_or(QUIET_MIN, |(_, p)| (p * 2).min(QUIET_MAX));
                self.quiet = Some((tokio::time::Instant::now() + pause, pause));
                tracing::warn!(error = %e, pause_ms = pause.as_millis() as u64, "{what}: store unreachable, periodic work paused");
                Ok(None)
            }
            Err(e @ StoreError::Conflict { .. }) if self.cluster.is_some() => {
                tracing::warn!(error = %e, "{what}: a thing moved to another instance meanwhile: its part is left to the new owner");
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Whether periodic store work waits (`quiet`).
    fn quieted(&self) -> bool {
        self.quiet
            .is_some_and(|(until, _)| tokio::time::Instant::now() < until)
    }

    /// The MQTT connection is lost: windows fed over it wait (the nats source has its own).
    fn mqtt_lost(&mut self) {
        if self.source.is_some() {
            self.windows_from = None;
        }
        // Reports come over this connection (not from the NATS intake).
        if let (Some(link), None) = (self.cluster.as_mut(), &self.intake) {
            link.broker_lost();
        }
    }

    /// One feed of the nats source: its deliveries are witnessed like the plugin's batches
    /// (the caller syncs the store).
    fn on_nats(&mut self, feed: sources::nats::Feed) -> Result<(), RunError> {
        match feed {
            sources::nats::Feed::Up => {
                if self.windows_from.is_none() {
                    let (_, grace) = self.judge.close_timing();
                    self.windows_from = Some(tokio::time::Instant::now() + grace);
                }
            }
            sources::nats::Feed::Down => self.windows_from = None,
            sources::nats::Feed::Delivery(d) => {
                self.judge.witness(self.store.as_mut(), &d, now_ms())?;
            }
        }
        Ok(())
    }

    fn refresh(&mut self) -> Result<(), StoreError> {
        let registered = self.store.registered()?;
        self.judge.set_registry(registered);
        Ok(())
    }

    async fn on_event(&mut self, event: Event) -> Result<(), RunError> {
        match event {
            Event::Incoming(Incoming::ConnAck(ack)) => {
                tracing::info!(
                    session_present = ack.session_present,
                    "connected to the broker"
                );
                if let Some(s) = &self.source {
                    tracing::info!(source = s.name(), filters = ?s.filters(), "reading broker events");
                }
                let own = self.source.as_ref().map_or(&[][..], |s| s.filters());
                // `[cluster] intake = "nats"`: reports come from NATS, not this connection.
                let reports = if self.intake.is_some() {
                    &[][..]
                } else {
                    &REPORT_TOPICS[..]
                };
                let reports = reports.iter().map(|t| (t, true));
                for (t, report) in reports.chain(own.iter().map(|t| (t, false))) {
                    // Cluster mode: one shared subscription, each report reaches one instance;
                    // broker events reach every instance (each counts its own things').
                    let t = match &self.cluster {
                        Some(l) if l.shared && report => format!("$share/{SHARE_GROUP}/{t}"),
                        _ => t.to_string(),
                    };
                    if let Err(e) = self.client.subscribe(&t, QoS::AtLeastOnce).await {
                        tracing::warn!(topic = t, error = %e, "subscribe not queued");
                    }
                }
            }
            Event::Incoming(Incoming::SubAck(ack)) => {
                if self.source.is_some() && self.windows_from.is_none() {
                    let (_, grace) = self.judge.close_timing();
                    self.windows_from = Some(tokio::time::Instant::now() + grace);
                }
                tracing::info!(codes = ?ack.return_codes, "subscribed to the report topics");
                if let Some(link) = self.cluster.as_mut() {
                    link.broker_back();
                }
            }
            Event::Incoming(Incoming::Publish(p)) => self.on_reports(vec![p]).await?,
            _ => {}
        }
        Ok(())
    }

    /// Judges a batch of reports, commits each and syncs once, then answers and
    /// acknowledges them (nothing is acknowledged before its outcome is committed).
    async fn on_reports(&mut self, batch: Vec<rumqttc::Publish>) -> Result<(), RunError> {
        let mut answers = Vec::with_capacity(batch.len());
        let mut acks = Vec::with_capacity(batch.len());
        // Judged here: acknowledged once the batch's commits are synced.
        let mut judged = Vec::with_capacity(batch.len());
        for p in batch {
            if let Some(read) = self
                .source
                .as_ref()
                .and_then(|s| s.read(&p.topic, &p.payload))
            {
                match read {
                    Ok(d) => {
                        self.judge.witness(self.store.as_mut(), &d, now_ms())?;
                    }
                    Err(why) => {
                        tracing::warn!(topic = %p.topic, bytes = p.payload.len(), error = %why, "broker event batch unreadable: dropped")
                    }
                }
            } else if let Some(topic) = ReportTopic::parse(&p.topic) {
                match self.cluster.as_mut() {
                    Some(link) if link.shared && !link.ownership.owns(&topic.thing) => {
                        link.forward(p, topic.thing, self.client.clone());
                        continue;
                    }
                    Some(link) if !link.shared => {
                        // Every instance got it: judged here now, or kept (hold.rs).
                        let (earlier, now) = self.route(&topic, &p.topic, &p.payload)?;
                        answers.extend(earlier);
                        if !now {
                            acks.push(p);
                            continue;
                        }
                    }
                    _ => {}
                }
                match self.judge_one(&topic, &p.payload, now_ms())? {
                    Some(handled) => {
                        answers.push(handled);
                        judged.push(p);
                    }
                    None => self.keep_or_leave(p, topic.thing, &mut acks),
                }
                continue;
            }
            acks.push(p);
        }
        if !self.synced(answers.len())? {
            // Cluster mode: a write of the batch was refused at sync (another instance wrote
            // the thing first): nothing of it is answered, each report kept or left as one
            // that could not be judged.
            answers.clear();
            for p in std::mem::take(&mut judged) {
                if let Some(topic) = ReportTopic::parse(&p.topic) {
                    self.keep_or_leave(p, topic.thing, &mut acks);
                }
            }
        }
        acks.extend(judged);
        self.answer_all(answers).await;
        for p in &acks {
            if let Err(e) = self.client.ack(p).await {
                tracing::warn!(error = %e, "ack not queued; the broker redelivers the report");
            }
        }
        Ok(())
    }

    /// A report that could not be judged now: kept for its partition's owner when every
    /// instance receives every report (hold.rs; acknowledged), else forwarded or left
    /// unacknowledged (`not_judged`).
    fn keep_or_leave(
        &mut self,
        p: rumqttc::Publish,
        thing: String,
        acks: &mut Vec<rumqttc::Publish>,
    ) {
        match self.cluster.as_ref() {
            Some(link) if !link.shared => {
                let partition = link.ownership.partition(&thing);
                self.hold(partition, &p.topic, p.payload.clone());
                acks.push(p);
            }
            _ => self.not_judged(p, thing),
        }
    }

    /// Publishes judged reports' answers (their outcome committed and synced) and wakes the
    /// alert senders when any raised events.
    async fn answer_all(&mut self, answers: Vec<crate::judge::Handled>) {
        for handled in answers {
            if let Err(e) = self
                .client
                .publish(
                    handled.answer_topic,
                    QoS::AtLeastOnce,
                    false,
                    handled.answer,
                )
                .await
            {
                tracing::warn!(error = %e, "answer not queued");
            }
            if !handled.events.is_empty() {
                self.wake_alerts.notify_one();
                self.wake_webhook.notify_one();
            }
        }
    }
}
