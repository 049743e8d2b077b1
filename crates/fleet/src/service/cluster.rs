//! Cluster mode of `run` (issue #20 item 2): the link to the other instances. Reports of things
//! another instance owns are forwarded to it; reports forwarded here wait in the inbox.
//!
//! The keeper, the forward server and every forward run on a side runtime of their own, so the
//! service's blocking store calls never delay a lease renewal. The service loop judges inbox
//! work like its own reports; the instance holding partition 0 leads (alerts, pruning).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::anyhow;
use bytes::Bytes;
use rumqttc::{AsyncClient, Publish};
use std::collections::BTreeMap;

use tokio::sync::{Semaphore, broadcast, mpsc, oneshot};

use super::Lead;
use crate::cluster::forward::{self, Outcome, Report};
use crate::cluster::held::Held;
use crate::cluster::view::Change;
use crate::cluster::{self, Ownership, Settings};

/// Reports waiting for the service loop (forwarded here, or back here after a forward).
const INBOX: usize = 256;
/// Forwards of this instance in flight at once; more are dropped unacknowledged (counted).
const FORWARDS: usize = 1024;
/// How long a forward tries the owners (a killed owner's partitions move within ~8 s).
const FORWARD_LIMIT: Duration = Duration::from_secs(12);
/// Reports not judged on arrival are kept this many leases: a dead owner's partitions move
/// within about 1.4 leases, the rest covers the old owner's intake lag. Each kept report of a
/// partition that moves is judged again (mostly to send its stored answer again), so more
/// costs the new owner work right when it takes over (docs/fleet.md "Cluster mode in `run`").
const HOLD_LEASES: u32 = 2;
/// At most this many reports and payload bytes are kept (the oldest are dropped, counted).
const HOLD_REPORTS: usize = 100_000;
const HOLD_BYTES: usize = 64 << 20;
/// How long a stopping instance waits for its leases to be written as free.
const HAND_BACK_LIMIT: Duration = Duration::from_secs(5);
/// The partition whose holder leads: sends alerts and prunes.
const LEADER_PARTITION: u32 = 0;

/// A report for the service loop: `reply` when another instance forwarded it (the answer's
/// bytes go back), `ack` when it came from our broker connection (acknowledged once answered).
pub struct Work {
    pub report: Report,
    pub reply: Option<oneshot::Sender<Result<Bytes, String>>>,
    pub ack: Option<Publish>,
}

pub struct Link {
    pub ownership: Ownership,
    client: async_nats::Client,
    bucket: String,
    side: tokio::runtime::Handle,
    pub inbox: mpsc::Receiver<Work>,
    to_inbox: mpsc::Sender<Work>,
    forwards: Arc<Semaphore>,
    dropped: Arc<AtomicU64>,
    /// Reports arrive over a shared subscription (`[cluster] shared_subscription`): those of
    /// other instances' things are forwarded. Otherwise every instance gets every report and
    /// leaves the others' alone.
    pub shared: bool,
    /// Reports not judged on arrival (not shared): judged once their partition is ours.
    pub held: Held,
    /// The store failed: reports wait (held) until this time, then are tried again.
    pub store_wait: Option<std::time::Instant>,
    pub store_backoff: link::Backoff,
    /// Gains and losses of partitions, read at each held-reports tick.
    pub changes: broadcast::Receiver<Change>,
    /// Partitions this instance gave up to balance the cluster, and when: reports of theirs
    /// that arrive here are handed to the new owner for a hold time (it may have missed them).
    pub released: BTreeMap<u32, std::time::Instant>,
    /// Since when the broker connection is down (reports over MQTT only).
    broker_lost: Option<std::time::Instant>,
    /// Stepped aside for want of the broker (`check_broker`).
    aside: bool,
    /// The lease: cut off from the broker this long, the instance steps aside.
    ttl: Duration,
    /// Held reports judged since the last sync: back into `held` if the sync fails.
    pub unsynced: Vec<(u32, crate::cluster::held::HeldReport)>,
}

impl Link {
    /// Starts the ownership keeper and the forward server on `side` (not inside a runtime).
    pub fn start(
        side: &tokio::runtime::Runtime,
        client: async_nats::Client,
        settings: Settings,
        shared: bool,
    ) -> anyhow::Result<Link> {
        let bucket = settings.bucket.clone();
        let (keep, ttl) = (settings.ttl * HOLD_LEASES, settings.ttl);
        tracing::info!(instance = %settings.instance, partitions = settings.partitions, "cluster mode");
        let ownership = side.block_on(cluster::spawn(client.clone(), settings))?;
        let changes = ownership.changes();
        let (to_inbox, inbox) = mpsc::channel(INBOX);
        let tx = to_inbox.clone();
        let handler = move |report: Report| {
            let tx = tx.clone();
            async move {
                let (reply, answer) = oneshot::channel();
                let work = Work {
                    report,
                    reply: Some(reply),
                    ack: None,
                };
                tx.send(work)
                    .await
                    .map_err(|_| anyhow!("service stopped"))?;
                let answer = answer.await.map_err(|_| anyhow!("report dropped"))?;
                answer.map_err(|e| anyhow!(e))
            }
        };
        side.block_on(forward::serve(
            client.clone(),
            ownership.clone(),
            &bucket,
            handler,
        ))?;
        Ok(Link {
            ownership,
            client,
            bucket,
            side: side.handle().clone(),
            inbox,
            to_inbox,
            forwards: Arc::new(Semaphore::new(FORWARDS)),
            dropped: Arc::new(AtomicU64::new(0)),
            shared,
            held: Held::new(keep, HOLD_REPORTS, HOLD_BYTES),
            store_wait: None,
            changes,
            released: BTreeMap::new(),
            broker_lost: None,
            aside: false,
            ttl,
            unsynced: Vec::new(),
            store_backoff: link::Backoff::new(
                Duration::from_millis(250),
                Duration::from_secs(5),
                link::random::seed(),
            ),
        })
    }

    /// The broker connection (the reports' only way in) is lost.
    pub fn broker_lost(&mut self) {
        self.broker_lost.get_or_insert_with(std::time::Instant::now);
    }

    /// Subscribed again: a share is taken again if the instance had stepped aside.
    pub fn broker_back(&mut self) {
        self.broker_lost = None;
        if std::mem::take(&mut self.aside) {
            tracing::info!("cluster: the broker is back: taking a share again");
            self.ownership.step_aside(false);
        }
    }

    /// Cut off from the broker for a whole lease: no report of its partitions can reach this
    /// instance, so it hands them to the others (they keep and judge those reports) until the
    /// broker is back (docs/fleet.md "What each failure does").
    pub fn check_broker(&mut self) {
        let lost = self.broker_lost.is_some_and(|t| t.elapsed() >= self.ttl);
        if lost && !self.aside {
            tracing::warn!(
                "cluster: cut off from the broker for {:?}: stepping aside, its partitions go to the others",
                self.ttl
            );
            self.aside = true;
            self.ownership.step_aside(true);
        }
    }

    /// A graceful stop (the service judges no more): the leases are written as free so the
    /// others take this instance's things over at once (docs/fleet.md "Removing an instance").
    pub async fn hand_back(&self) {
        match self.ownership.hand_back(HAND_BACK_LIMIT).await {
            Some(n) => tracing::info!(partitions = n, "cluster: leases handed back"),
            None => tracing::warn!(
                "cluster: leases not handed back within {HAND_BACK_LIMIT:?}: the others take them over when they run out"
            ),
        }
    }

    /// The NATS client, the side runtime and the lease bucket (for the NATS intake).
    pub fn parts(&self) -> (async_nats::Client, tokio::runtime::Handle, String) {
        (self.client.clone(), self.side.clone(), self.bucket.clone())
    }

    /// Whether this instance leads now.
    pub fn leads(&self) -> bool {
        self.ownership.epoch(LEADER_PARTITION).is_some()
    }

    /// `leads` for the alert senders.
    pub fn lead(&self) -> Lead {
        let ownership = self.ownership.clone();
        Arc::new(move || ownership.epoch(LEADER_PARTITION).is_some())
    }

    /// Hands a report kept here (of a partition this instance gave up) to whoever owns its
    /// thing now; judged here if that is this instance again. Nothing to acknowledge.
    pub fn hand_over(&self, report: Report) {
        let Ok(slot) = self.forwards.clone().try_acquire_owned() else {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::warn!(
                thing = report.thing,
                dropped = n,
                "too many forwards in flight: held report dropped"
            );
            return;
        };
        let (client, ownership) = (self.client.clone(), self.ownership.clone());
        let (bucket, to_inbox) = (self.bucket.clone(), self.to_inbox.clone());
        self.side.spawn(async move {
            let thing = report.thing.clone();
            let outcome =
                forward::forward(&client, &ownership, &bucket, report.clone(), FORWARD_LIMIT).await;
            match outcome {
                Ok(Outcome::Answer(_)) => tracing::debug!(thing, "held report handed over"),
                Ok(Outcome::Mine) => {
                    let work = Work {
                        report,
                        reply: None,
                        ack: None,
                    };
                    if to_inbox.send(work).await.is_err() {
                        tracing::warn!("service stopped: held report dropped");
                    }
                }
                Err(e) => tracing::warn!(thing, "{e:#}: held report not handed over"),
            }
            drop(slot);
        });
    }

    /// Hands `p` (a report of `thing`, which another instance owns) to the owner; `p` is
    /// acknowledged once the owner answered, or judged here if the thing became ours.
    pub fn forward(&self, p: Publish, thing: String, mqtt: AsyncClient) {
        let Ok(slot) = self.forwards.clone().try_acquire_owned() else {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::warn!(
                thing,
                dropped = n,
                "too many forwards in flight: report left unacknowledged"
            );
            return;
        };
        let (client, ownership) = (self.client.clone(), self.ownership.clone());
        let (bucket, to_inbox) = (self.bucket.clone(), self.to_inbox.clone());
        self.side.spawn(async move {
            let report = Report {
                thing,
                topic: p.topic.clone(),
                payload: p.payload.clone(),
            };
            let outcome =
                forward::forward(&client, &ownership, &bucket, report.clone(), FORWARD_LIMIT)
                    .await;
            match outcome {
                Ok(Outcome::Answer(_)) => {
                    if let Err(e) = mqtt.ack(&p).await {
                        tracing::warn!(error = %e, "ack not queued; the broker redelivers the report");
                    }
                }
                Ok(Outcome::Mine) => {
                    let work = Work {
                        report,
                        reply: None,
                        ack: Some(p),
                    };
                    if to_inbox.send(work).await.is_err() {
                        tracing::warn!("service stopped: report left unacknowledged");
                    }
                }
                Err(e) => tracing::warn!("{e:#}: report left unacknowledged"),
            }
            drop(slot);
        });
    }
}

/// How many times a report is judged again after its record changed under it (another
/// instance committed it meanwhile: its lease moved, or nats-server accepted two writes).
const TRIES: usize = 3;

impl super::Service {
    /// Judges one report received at `now_ms`; in cluster mode a `Conflict` (the record
    /// changed since it was loaded, or the thing is not ours any more) is retried on a fresh
    /// load, then given up, and an unreachable store starts a backoff (`None`: not answered,
    /// not acknowledged). Single-node mode keeps failing on both.
    pub(super) fn judge_one(
        &mut self,
        topic: &crate::intake::ReportTopic,
        payload: &[u8],
        now_ms: u64,
    ) -> Result<Option<crate::judge::Handled>, super::RunError> {
        let tries = if self.cluster.is_some() { TRIES } else { 1 };
        for _ in 0..tries {
            let store = self.store.as_mut();
            let started = std::time::Instant::now();
            match self.judge.handle(store, topic, payload, now_ms) {
                Ok(h) => {
                    let m = crate::metrics::global();
                    m.report(h.accepted, h.replayed, h.rejected, started.elapsed());
                    m.events(&h.events);
                    if let Some(link) = self.cluster.as_mut()
                        && link.store_wait.take().is_some()
                    {
                        link.store_backoff.reset();
                        tracing::info!("store answers again");
                    }
                    return Ok(Some(h));
                }
                Err(e @ crate::store::StoreError::Conflict { .. }) if self.cluster.is_some() => {
                    tracing::info!(error = %e, "report judged again on a fresh load");
                    if !self.owns(&topic.thing) {
                        return Ok(None);
                    }
                }
                Err(e @ crate::store::StoreError::Backend { .. }) if self.cluster.is_some() => {
                    self.back_off(&e);
                    return Ok(None);
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(None)
    }

    fn owns(&self, thing: &str) -> bool {
        self.cluster
            .as_ref()
            .is_none_or(|l| l.ownership.owns(thing))
    }

    /// A report `judge_one` gave up on: forwarded if the thing is another's now, else left
    /// unacknowledged (the broker redelivers it on the next connection).
    pub(super) fn not_judged(&self, p: Publish, thing: String) {
        match &self.cluster {
            Some(link) if link.shared && !link.ownership.owns(&thing) => {
                link.forward(p, thing, self.client.clone())
            }
            _ => tracing::warn!(thing, "report not judged: left unacknowledged"),
        }
    }

    /// One report of the inbox: judged if the thing is ours, its answer published to the
    /// device, then replied to the forwarder or acknowledged to the broker.
    pub(super) async fn on_work(&mut self, work: Work) -> Result<(), super::RunError> {
        let Work { report, reply, ack } = work;
        let refuse = |reply: Option<oneshot::Sender<Result<Bytes, String>>>, why: &str| {
            if let Some(r) = reply {
                let _ = r.send(Err(why.to_string()));
            }
        };
        let Some(topic) = crate::intake::ReportTopic::parse(&report.topic) else {
            refuse(reply, "not a report topic");
            return Ok(());
        };
        if !self.owns(&topic.thing) {
            refuse(reply, "not-owner");
            if let Some(p) = ack {
                self.not_judged(p, topic.thing);
            }
            return Ok(());
        }
        // Reports of its partition kept here (not shared) are older: judged first.
        let partition = self
            .cluster
            .as_ref()
            .map(|l| l.ownership.partition(&topic.thing));
        if let Some(p) = partition.filter(|p| self.cluster.as_ref().is_some_and(|l| l.held.has(*p)))
        {
            let earlier = self.judge_held(p)?;
            if !self.synced(earlier.len())? {
                refuse(reply, "store unreachable");
                if let Some(p) = ack {
                    self.not_judged(p, topic.thing);
                }
                return Ok(());
            }
            self.answer_all(earlier).await;
        }
        let Some(handled) = self.judge_one(&topic, &report.payload, super::now_ms())? else {
            refuse(reply, "record changed meanwhile");
            if let Some(p) = ack {
                self.not_judged(p, topic.thing);
            }
            return Ok(());
        };
        if !self.synced(1)? {
            refuse(reply, "record changed meanwhile");
            if let Some(p) = ack {
                self.not_judged(p, topic.thing);
            }
            return Ok(());
        }
        let answer = Bytes::from(handled.answer.clone());
        self.answer(handled.answer_topic, handled.answer).await;
        if !handled.events.is_empty() {
            self.wake_alerts.notify_one();
            self.wake_webhook.notify_one();
        }
        if let Some(r) = reply {
            let _ = r.send(Ok(answer));
        }
        if let Some(p) = ack
            && let Err(e) = self.client.ack(&p).await
        {
            tracing::warn!(error = %e, "ack not queued; the broker redelivers the report");
        }
        Ok(())
    }
}
