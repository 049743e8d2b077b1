//! `[cluster] intake = "nats"` (issue #20 item 2): reports taken straight from NATS subjects
//! (devices on nats-server's MQTT gateway), each to one instance, answers published as NATS.
//!
//! nats-server maps the MQTT topic `$aws/things/X/defender/metrics/json` to the subject
//! `$aws.things.X.defender.metrics.json`. One work-queue stream (`STREAM`, the store's replicas)
//! captures the six-token report subjects (answers have seven: not captured) and one durable
//! pull consumer (`CONSUMER`) serves every instance. A report is acknowledged once its outcome
//! is committed and synced and its answer published; one of another instance's thing is
//! forwarded to its owner (`cluster::forward`) and acknowledged when the owner answered, else
//! nak'ed with a delay. docs/fleet.md "Reports straight from NATS subjects".

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer, message::Acker, stream};
use bytes::Bytes;
use futures_util::StreamExt;
use link::Backoff;
use tokio::sync::{Semaphore, mpsc};

use super::{RunError, Service};
use crate::cluster::Ownership;
use crate::cluster::forward::{self, Outcome, Report};
use crate::intake::ReportTopic;

pub const STREAM: &str = "detect-fleet-reports";
pub const CONSUMER: &str = "detect-fleet-intake";
/// The report subjects (`json` and `cbor`; the `.../accepted` answers have one token more).
pub const SUBJECTS: &str = "$aws.things.*.defender.metrics.*";
/// A report not acknowledged this long after its delivery is delivered again, to any
/// instance: a killed instance's reports come back within it (its leases move in 6–8 s).
const ACK_WAIT: Duration = Duration::from_secs(6);
/// Reports delivered and not acknowledged yet, all instances together (then nats-server waits).
const MAX_ACK_PENDING: i64 = 4096;
/// Reports one pull asks for. With QUEUE, what an instance holds before judging it: small
/// enough to be judged well within ACK_WAIT even by a slow instance (else delivered again).
const PULL_BATCH: usize = 64;
/// A pull request lapses after this: nats-server delivers no report to a stopped instance
/// (SIGSTOP, a hung process) later than this after its last pull. Idle heartbeats every
/// HEARTBEAT tell a lost pull early.
const PULL_EXPIRES: Duration = Duration::from_secs(5);
const HEARTBEAT: Duration = Duration::from_secs(2);
/// Deliveries waiting for the service loop (the pulling task waits when it is full).
const QUEUE: usize = 256;
/// The stream keeps at most this many reports, this long (nats-server drops the oldest).
const MAX_MSGS: i64 = 2_000_000;
const MAX_AGE: Duration = Duration::from_secs(3600);
/// How long one forward tries the owners: less than ACK_WAIT, so the report is nak'ed before
/// nats-server would deliver it again.
const FORWARD_LIMIT: Duration = Duration::from_secs(4);
/// Forwards in flight at once; a report beyond is nak'ed with RETRY (counted).
const FORWARDS: usize = 1024;
/// A report not judged now (its forward failed, its record changed) comes back after this.
const RETRY: Duration = Duration::from_secs(1);
/// The intake's counters are logged this often when they changed.
const LOG_EVERY: Duration = Duration::from_secs(5);

/// One report taken from the consumer.
pub struct Delivery {
    subject: String,
    payload: Bytes,
    acker: Acker,
}

pub struct Intake {
    /// Taken by the service loop.
    pub rx: Option<mpsc::Receiver<Delivery>>,
    client: async_nats::Client,
    ownership: Ownership,
    bucket: String,
    side: tokio::runtime::Handle,
    forwards: Arc<Semaphore>,
    counts: Arc<Counts>,
}

/// Reports taken, judged here, forwarded, nak'ed for lack of a forward slot.
#[derive(Default)]
struct Counts {
    taken: AtomicU64,
    judged: AtomicU64,
    forwarded: AtomicU64,
    refused: AtomicU64,
}

impl Counts {
    fn add(n: &AtomicU64) -> u64 {
        n.fetch_add(1, Ordering::Relaxed) + 1
    }

    fn get(&self) -> [u64; 4] {
        [&self.taken, &self.judged, &self.forwarded, &self.refused]
            .map(|n| n.load(Ordering::Relaxed))
    }
}

/// Logs `counts` every LOG_EVERY when they changed, for the life of the process.
async fn log_counts(counts: Arc<Counts>) {
    let mut last = [0; 4];
    loop {
        tokio::time::sleep(LOG_EVERY).await;
        let now = counts.get();
        if now != last {
            let [taken, judged, forwarded, refused] = now;
            tracing::info!(taken, judged, forwarded, refused, "nats intake counts");
            last = now;
        }
    }
}

impl Intake {
    /// Starts pulling on the cluster's side runtime (the stream and consumer are created when
    /// missing, `replicas` copies).
    pub fn start(link: &super::cluster::Link, replicas: usize) -> Intake {
        let (client, side, bucket) = link.parts();
        let (tx, rx) = mpsc::channel(QUEUE);
        side.spawn(pull(client.clone(), replicas, tx));
        let counts = Arc::new(Counts::default());
        side.spawn(log_counts(counts.clone()));
        Intake {
            rx: Some(rx),
            client,
            ownership: link.ownership.clone(),
            bucket,
            side,
            forwards: Arc::new(Semaphore::new(FORWARDS)),
            counts,
        }
    }

    /// Hands `d` to its thing's owner; acknowledged once the owner answered.
    fn forward(&mut self, d: Delivery, thing: String, topic: String) {
        Counts::add(&self.counts.forwarded);
        let Ok(slot) = self.forwards.clone().try_acquire_owned() else {
            let n = Counts::add(&self.counts.refused);
            tracing::warn!(
                thing,
                refused = n,
                "too many forwards in flight: report nak'ed"
            );
            self.side.spawn(settle(d.acker, AckKind::Nak(Some(RETRY))));
            return;
        };
        let (client, ownership) = (self.client.clone(), self.ownership.clone());
        let bucket = self.bucket.clone();
        self.side.spawn(async move {
            let report = Report {
                thing,
                topic,
                payload: d.payload,
            };
            let kind =
                match forward::forward(&client, &ownership, &bucket, report, FORWARD_LIMIT).await {
                    Ok(Outcome::Answer(_)) => AckKind::Ack,
                    // Ours now: delivered again at once, to us or another taker.
                    Ok(Outcome::Mine) => AckKind::Nak(None),
                    Err(e) => {
                        tracing::warn!("{e:#}: report nak'ed");
                        AckKind::Nak(Some(RETRY))
                    }
                };
            settle(d.acker, kind).await;
            drop(slot);
        });
    }
}

async fn settle(acker: Acker, kind: AckKind) {
    if let Err(e) = acker.ack_with(kind).await {
        tracing::warn!("nats intake: ack not sent ({e}); the report comes again");
    }
}

/// Opens the stream and the consumer and pulls into `tx` until the service loop is gone;
/// any failure starts again after a jittered backoff (250 ms to 5 s).
async fn pull(client: async_nats::Client, replicas: usize, tx: mpsc::Sender<Delivery>) {
    let js = jetstream::new(client);
    let seed = link::random::seed();
    let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(5), seed);
    loop {
        match open(&js, replicas).await {
            Ok(mut messages) => {
                tracing::info!(
                    stream = STREAM,
                    consumer = CONSUMER,
                    "taking reports from NATS"
                );
                backoff.reset();
                while let Some(next) = messages.next().await {
                    match next {
                        Ok(m) => {
                            let (m, acker) = m.split();
                            let d = Delivery {
                                subject: m.subject.to_string(),
                                payload: m.payload,
                                acker,
                            };
                            if tx.send(d).await.is_err() {
                                return;
                            }
                        }
                        Err(e) => {
                            tracing::warn!("nats intake: {e}; pulling again");
                            break;
                        }
                    }
                }
            }
            Err(e) => tracing::warn!("nats intake: {e:#}; trying again"),
        }
        if tx.is_closed() {
            return;
        }
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

async fn open(js: &jetstream::Context, replicas: usize) -> anyhow::Result<consumer::pull::Stream> {
    use anyhow::Context as _;
    let config = stream::Config {
        name: STREAM.to_owned(),
        subjects: vec![SUBJECTS.to_owned()],
        retention: stream::RetentionPolicy::WorkQueue,
        num_replicas: replicas.max(1),
        max_messages: MAX_MSGS,
        max_age: MAX_AGE,
        discard: stream::DiscardPolicy::Old,
        ..Default::default()
    };
    let stream = js
        .get_or_create_stream(config)
        .await
        .with_context(|| format!("opening stream {STREAM}"))?;
    let config = consumer::pull::Config {
        durable_name: Some(CONSUMER.to_owned()),
        ack_policy: consumer::AckPolicy::Explicit,
        ack_wait: ACK_WAIT,
        max_deliver: -1,
        max_ack_pending: MAX_ACK_PENDING,
        ..Default::default()
    };
    let consumer: consumer::PullConsumer = stream
        .get_or_create_consumer(CONSUMER, config)
        .await
        .with_context(|| format!("opening consumer {CONSUMER} of stream {STREAM}"))?;
    consumer
        .stream()
        .max_messages_per_batch(PULL_BATCH)
        .expires(PULL_EXPIRES)
        .heartbeat(HEARTBEAT)
        .messages()
        .await
        .with_context(|| format!("pulling from consumer {CONSUMER}"))
}

/// The MQTT topic of a subject nats-server made of one ('.' separates levels, "//" was '.').
pub fn topic_of(subject: &str) -> String {
    subject
        .split('.')
        .map(|level| level.replace("//", "."))
        .collect::<Vec<_>>()
        .join("/")
}

/// The subject nats-server delivers to the MQTT topic `topic`'s subscribers.
pub fn subject_of(topic: &str) -> String {
    let mut s = String::with_capacity(topic.len() + 4);
    for c in topic.chars() {
        match c {
            '/' => s.push('.'),
            '.' => s.push_str("//"),
            c => s.push(c),
        }
    }
    s
}

impl Service {
    /// Publishes an answer: as a NATS message with the NATS intake, else on the broker.
    pub(super) async fn answer(&self, topic: String, answer: Vec<u8>) {
        match &self.intake {
            Some(i) => {
                if let Err(e) = i.client.publish(subject_of(&topic), answer.into()).await {
                    tracing::warn!(error = %e, "answer not published");
                }
            }
            None => {
                let qos = rumqttc::QoS::AtLeastOnce;
                if let Err(e) = self.client.publish(topic, qos, false, answer).await {
                    tracing::warn!(error = %e, "answer not queued");
                }
            }
        }
    }

    /// `first` and what else waits (up to a batch): judged, committed, synced once, then
    /// answered and acknowledged; others' things forwarded.
    pub(super) async fn on_intake(
        &mut self,
        first: Delivery,
        rx: &mut mpsc::Receiver<Delivery>,
    ) -> Result<(), RunError> {
        let mut batch = vec![first];
        while batch.len() < super::BATCH {
            match rx.try_recv() {
                Ok(d) => batch.push(d),
                Err(_) => break,
            }
        }
        let mut done = Vec::with_capacity(batch.len());
        for d in batch {
            let Some(intake) = self.intake.as_mut() else {
                return Ok(());
            };
            Counts::add(&intake.counts.taken);
            let topic_text = topic_of(&d.subject);
            let Some(topic) = ReportTopic::parse(&topic_text) else {
                tracing::warn!(subject = d.subject, "not a report subject: dropped");
                self.intake_ack(d.acker, AckKind::Term);
                continue;
            };
            let owned = self
                .cluster
                .as_ref()
                .is_none_or(|l| l.ownership.owns(&topic.thing));
            if !owned {
                intake.forward(d, topic.thing, topic_text);
                continue;
            }
            match self.judge_one(&topic, &d.payload, super::now_ms())? {
                Some(handled) => done.push((handled, d.acker)),
                None => self.intake_ack(d.acker, AckKind::Nak(Some(RETRY))),
            }
        }
        if !self.synced(done.len())? {
            // Not committed (the store failed or another instance wrote first): redelivered.
            for (_, acker) in done {
                self.intake_ack(acker, AckKind::Nak(Some(RETRY)));
            }
            return Ok(());
        }
        for (handled, acker) in done {
            self.answer(handled.answer_topic, handled.answer).await;
            if !handled.events.is_empty() {
                self.wake_alerts.notify_one();
                self.wake_webhook.notify_one();
            }
            self.intake_ack(acker, AckKind::Ack);
            if let Some(i) = &self.intake {
                Counts::add(&i.counts.judged);
            }
        }
        Ok(())
    }

    /// Acknowledges (or naks, or terminates) one delivery from the side runtime.
    fn intake_ack(&self, acker: Acker, kind: AckKind) {
        if let Some(i) = &self.intake {
            i.side.spawn(settle(acker, kind));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_and_topics_map_as_nats_server_does() {
        let topic = "$aws/things/dev-1/defender/metrics/json";
        assert_eq!(subject_of(topic), "$aws.things.dev-1.defender.metrics.json");
        assert_eq!(topic_of(&subject_of(topic)), topic);
        assert_eq!(subject_of("a.b/c"), "a//b.c");
        assert_eq!(topic_of("a//b.c"), "a.b/c");
        let answer = "$aws/things/x/defender/metrics/cbor/accepted";
        assert_eq!(topic_of(&subject_of(answer)), answer);
    }
}
