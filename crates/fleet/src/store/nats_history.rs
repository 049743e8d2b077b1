//! The cluster store's metric history and event log (issue #21). History points go to the
//! stream `DETECT_FLEET_HISTORY`, one subject per (thing, side), `max_age` the history kept
//! (set by `prune_history` to the configured days); each message is the point's time (8
//! bytes, big-endian) then its data. They are published right after the thing's record is
//! written (as the outbox's relay): a crash in between loses those points, never a report.
//! Events are listed from the outbox stream.

use std::time::Duration;

use async_nats::jetstream::consumer::DeliverPolicy;
use async_nats::jetstream::stream;
use detect::Event;

use super::nats::{Js, backend, names};
use super::nats_kv::{self, enc, from_bytes};
use super::nats_rest::suppressed;
use super::{
    Commit, EventLog, EventQuery, HistoryPoint, Listed, MetricHistory, Nats, Side, StoreError,
    Violation,
};

pub const HISTORY: &str = "DETECT_FLEET_HISTORY";
const SUBJECT: &str = "detect-fleet.history";
/// Until the first prune sets the configured days: the default `metric_history_days`.
const DEFAULT_MAX_AGE: Duration = Duration::from_secs(14 * 86_400);

fn token(thing: &str, side: Side) -> String {
    format!("{}.{}", enc(thing), side as u8)
}

/// The history stream, made on first use with the outbox's replicas.
async fn stream(js: &Js) -> Result<stream::Stream, StoreError> {
    let replicas = js.outbox.cached_info().config.num_replicas;
    js.context
        .get_or_create_stream(stream::Config {
            name: HISTORY.to_string(),
            subjects: vec![format!("{SUBJECT}.>")],
            num_replicas: replicas,
            storage: stream::StorageType::File,
            max_age: DEFAULT_MAX_AGE,
            ..Default::default()
        })
        .await
        .map_err(|e| backend(&format!("stream {HISTORY}"), e))
}

async fn send(js: &Js, subject: &str, payload: &[u8]) -> Result<(), String> {
    let ack = js
        .context
        .publish(subject.to_string(), payload.to_vec().into())
        .await
        .map_err(|e| e.to_string())?;
    ack.await.map(|_| ()).map_err(|e| e.to_string())
}

/// Publishes a commit's points (called after its record is written); the stream is made
/// when the first publish finds none.
pub(super) async fn publish(js: &Js, c: &Commit) -> Result<(), StoreError> {
    for p in &c.history {
        let subject = format!("{SUBJECT}.{}", token(&c.thing, p.side));
        let mut payload = p.time_ms.to_be_bytes().to_vec();
        payload.extend_from_slice(&p.data);
        if send(js, &subject, &payload).await.is_err() {
            stream(js).await?;
            send(js, &subject, &payload)
                .await
                .map_err(|e| StoreError::Backend {
                    path: format!("stream {HISTORY} subject {subject}"),
                    source: e.into(),
                })?;
        }
    }
    Ok(())
}

impl MetricHistory for Nats {
    fn history(
        &mut self,
        thing: &str,
        side: Side,
        from_ms: u64,
        to_ms: u64,
        limit: usize,
    ) -> Result<Vec<HistoryPoint>, StoreError> {
        let js = self.js.clone();
        let pattern = token(thing, side);
        let what = format!("stream {HISTORY} subject {SUBJECT}.{pattern}");
        self.bridge.run(&what, async move {
            let stream = stream(&js).await?;
            let time = |r: &nats_kv::Read| {
                r.payload
                    .get(..8)
                    .and_then(|b| b.try_into().ok())
                    .map(u64::from_be_bytes)
            };
            let prefix = format!("{SUBJECT}.");
            let all = DeliverPolicy::All;
            let reads = nats_kv::scan(&stream, &js.client, &prefix, &pattern, all, limit, |r| {
                time(r).is_some_and(|t| (from_ms..to_ms).contains(&t))
            })
            .await?;
            let mut out: Vec<HistoryPoint> = reads
                .iter()
                .filter_map(|r| {
                    Some(HistoryPoint {
                        side,
                        time_ms: time(r)?,
                        data: r.payload.get(8..)?.to_vec(),
                    })
                })
                .collect();
            out.sort_by_key(|p| p.time_ms);
            Ok(out)
        })
    }

    /// Sets the stream's `max_age` to what is kept; JetStream drops older points itself.
    fn prune_history(&mut self, before_ms: u64) -> Result<usize, StoreError> {
        let js = self.js.clone();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let age = Duration::from_millis(now.saturating_sub(before_ms).max(60_000));
        let what = format!("stream {HISTORY}");
        self.bridge.run(&what.clone(), async move {
            let mut config = stream(&js).await?.cached_info().config.clone();
            if config.max_age != age {
                config.max_age = age;
                js.context
                    .update_stream(config)
                    .await
                    .map_err(|e| backend(&what, e))?;
            }
            Ok(0)
        })
    }
}

/// Scans the whole outbox stream (kept until `prune`), then sorts by time: a cluster lists
/// events by a scan, SQLite by its index.
impl EventLog for Nats {
    fn events(&mut self, q: &EventQuery) -> Result<Vec<Listed>, StoreError> {
        let js = self.js.clone();
        let q = q.clone();
        let what = format!("stream {}", names::OUTBOX);
        let bound = self.bridge.timeout * 10;
        self.bridge.run_within(&what.clone(), bound, async move {
            let prefix = format!("{}.", names::OUTBOX_SUBJECT);
            let all = DeliverPolicy::All;
            let reads = nats_kv::scan(
                &js.outbox,
                &js.client,
                &prefix,
                "*",
                all,
                usize::MAX,
                |_| true,
            )
            .await?;
            let mut list = Vec::new();
            for r in &reads {
                let event: Event = from_bytes(&format!("{what} position {}", r.seq), &r.payload)?;
                let t = event.violation_event_time;
                if (q.start_ms..q.end_ms).contains(&t)
                    && q.after.is_none_or(|a| (t, r.seq) > a)
                    && q.thing.as_ref().is_none_or(|x| *x == event.thing_name)
                    && q.profile
                        .as_ref()
                        .is_none_or(|x| *x == event.security_profile_name)
                {
                    list.push((r.seq, event, suppressed(r)));
                }
            }
            list.sort_by_key(|(seq, e, _)| (e.violation_event_time, *seq));
            list.truncate(q.limit);
            let mut out = Vec::with_capacity(list.len());
            for (position, event, suppressed) in list {
                let key = enc(&event.violation_id);
                let w = format!("bucket {} key {key}", names::VIOLATIONS);
                let got = js.violations.get(&key).await.map_err(|e| backend(&w, e))?;
                let v: Option<Violation> = got.map(|b| from_bytes(&w, &b)).transpose()?;
                out.push(Listed {
                    position,
                    event,
                    suppressed,
                    verification_state: v
                        .as_ref()
                        .map_or("UNKNOWN".into(), |v| v.verification_state.clone()),
                    verification_state_description: v
                        .and_then(|v| v.verification_state_description),
                });
            }
            Ok(out)
        })
    }
}
