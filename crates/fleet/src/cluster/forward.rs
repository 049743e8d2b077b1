//! Forwarding a report to the instance that owns its thing: a NATS request on the owner's
//! subject with the report as payload and its thing and topic as headers; the answer replies.
//!
//! The owner judges only while `owns(thing)` holds, else it refuses (`Detect-Refused`) and the
//! forwarder asks again, with backoff, whoever the leases name next, until its time limit.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use async_nats::{HeaderMap, client::RequestErrorKind};
use bytes::Bytes;
use futures_util::StreamExt;
use link::Backoff;
use tokio::sync::Semaphore;

use super::Ownership;

pub const THING: &str = "Detect-Thing";
pub const TOPIC: &str = "Detect-Topic";
/// Set on a reply that is no answer, with the reason (`not-owner`, `no-thing`, `failed: …`).
pub const REFUSED: &str = "Detect-Refused";
/// Forwarded reports judged at once by one instance at most (more wait in the subscription).
const IN_FLIGHT: usize = 64;
/// One request's bound (the handler's judging included).
const REQUEST: Duration = Duration::from_secs(2);

/// The subject an instance serves forwarded reports on.
pub fn subject(bucket: &str, instance: &str) -> String {
    format!("detect-fleet.cluster.to.{bucket}.{instance}")
}

#[derive(Debug, Clone)]
pub struct Report {
    pub thing: String,
    pub topic: String,
    pub payload: Bytes,
}

/// What came of a forward.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The owner's answer.
    Answer(Bytes),
    /// This instance owns the thing now: judge it here.
    Mine,
}

/// Serves this instance's subject: each report whose thing it owns goes to `handler`, whose
/// bytes are the reply; any other is refused. Ends when the subscription ends.
pub async fn serve<F, Fut>(
    client: async_nats::Client,
    ownership: Ownership,
    bucket: &str,
    handler: F,
) -> anyhow::Result<tokio::task::JoinHandle<()>>
where
    F: Fn(Report) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<Bytes>> + Send + 'static,
{
    let subject = subject(bucket, ownership.instance());
    let mut sub = client
        .subscribe(subject.clone())
        .await
        .with_context(|| format!("subscribing to {subject}"))?;
    let (handler, slots) = (Arc::new(handler), Arc::new(Semaphore::new(IN_FLIGHT)));
    Ok(tokio::spawn(async move {
        while let Some(msg) = sub.next().await {
            let Some(reply) = msg.reply.clone() else {
                continue;
            };
            let Ok(slot) = slots.clone().acquire_owned().await else {
                break;
            };
            let (client, ownership, handler) = (client.clone(), ownership.clone(), handler.clone());
            tokio::spawn(async move {
                let header = |name: &str| {
                    msg.headers
                        .as_ref()
                        .and_then(|h| h.get(name))
                        .map(|v| v.as_str().to_owned())
                        .unwrap_or_default()
                };
                let report = Report {
                    thing: header(THING),
                    topic: header(TOPIC),
                    payload: msg.payload.clone(),
                };
                let mut headers = HeaderMap::new();
                let body = if report.thing.is_empty() {
                    headers.insert(REFUSED, "no-thing");
                    Bytes::new()
                } else if !ownership.owns(&report.thing) {
                    headers.insert(REFUSED, "not-owner");
                    Bytes::new()
                } else {
                    match handler(report).await {
                        Ok(body) => body,
                        Err(e) => {
                            headers.insert(REFUSED, format!("failed: {e:#}").as_str());
                            Bytes::new()
                        }
                    }
                };
                if let Err(e) = client.publish_with_headers(reply, headers, body).await {
                    tracing::debug!("cluster: forwarded report's reply not sent: {e}");
                }
                drop(slot);
            });
        }
    }))
}

/// Hands `report` to its thing's owner and waits (at most `limit`) for the answer.
pub async fn forward(
    client: &async_nats::Client,
    ownership: &Ownership,
    bucket: &str,
    report: Report,
    limit: Duration,
) -> anyhow::Result<Outcome> {
    let deadline = Instant::now() + limit;
    let partition = ownership.partition(&report.thing);
    let seed = u64::from(partition) ^ u64::from(std::process::id()) << 32;
    let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(1), seed);
    let mut last = String::from("no owner known");
    loop {
        if ownership.owns(&report.thing) {
            return Ok(Outcome::Mine);
        }
        let owner = ownership.owner_hint(partition);
        if !owner.is_empty() && owner != ownership.instance() {
            let mut headers = HeaderMap::new();
            headers.insert(THING, report.thing.as_str());
            headers.insert(TOPIC, report.topic.as_str());
            let wait = deadline
                .saturating_duration_since(Instant::now())
                .min(REQUEST);
            let request = async_nats::Request::new()
                .headers(headers)
                .payload(report.payload.clone())
                .timeout(Some(wait));
            match client.send_request(subject(bucket, &owner), request).await {
                Ok(msg) => match msg.headers.as_ref().and_then(|h| h.get(REFUSED)) {
                    None => return Ok(Outcome::Answer(msg.payload)),
                    Some(why) => last = format!("{owner} refused: {}", why.as_str()),
                },
                Err(e) if e.kind() == RequestErrorKind::NoResponders => {
                    last = format!("{owner} does not listen");
                }
                Err(e) => last = format!("asking {owner}: {e}"),
            }
        }
        let pause = backoff.next_delay();
        if Instant::now() + pause >= deadline {
            bail!(
                "forwarding a report of {:?} (partition {partition}) failed for {limit:?}: {last}",
                report.thing
            );
        }
        tokio::time::sleep(pause).await;
    }
}
