//! The cluster store's pruning: ended violations, sent or suppressed outbox events, old
//! answers, samples and rejections, found by reading each bucket whole (hourly, not per report).

use async_nats::jetstream::consumer::DeliverPolicy;

use super::nats::{Nats, backend, names};
use super::nats_kv::{self, Answer, from_bytes};
use super::nats_rest::{cursor_of, suppressed};
use super::{LastRejection, Sink, Store, StoreError, Violation};

impl Store for Nats {
    fn prune(
        &mut self,
        history_before_ms: u64,
        reports_before_ms: u64,
    ) -> Result<usize, StoreError> {
        self.settle_for_read();
        let js = self.js.clone();
        // It reads whole buckets: thirty times the bound of a single call.
        let bound = self.bridge.timeout * 30;
        self.bridge.run_within("prune", bound, async move {
            let mut dropped = 0;
            let (h, r) = (history_before_ms, reports_before_ms);
            let what = |b: &str, k: &str| format!("bucket {b} key {k}");
            for x in nats_kv::values(&js.violations, &js.client, ">").await? {
                let v: Violation = from_bytes(&what(names::VIOLATIONS, &x.key), &x.payload)?;
                if v.violation_end_time.is_some_and(|t| t < h) {
                    purge(&js.violations, &x.key).await?;
                    dropped += 1;
                }
            }
            let sent = cursor_of(&js, Sink::Mqtt)
                .await?
                .min(cursor_of(&js, Sink::Webhook).await?);
            let prefix = format!("{}.", names::OUTBOX_SUBJECT);
            let all = DeliverPolicy::All;
            let outbox = nats_kv::scan(
                &js.outbox,
                &js.client,
                &prefix,
                "*",
                all,
                usize::MAX,
                |_| true,
            );
            for x in outbox.await? {
                let w = format!("stream {} position {}", names::OUTBOX, x.seq);
                let e: detect::Event = from_bytes(&w, &x.payload)?;
                let done = x.seq <= sent || suppressed(&x);
                if done && e.violation_event_time < h {
                    js.outbox
                        .delete_message(x.seq)
                        .await
                        .map_err(|e| backend(&w, e))?;
                    dropped += 1;
                }
            }
            for x in nats_kv::values(&js.answers, &js.client, ">").await? {
                let a: Answer = from_bytes(&what(names::ANSWERS, &x.key), &x.payload)?;
                if a.time_ms < r {
                    purge(&js.answers, &x.key).await?;
                    dropped += 1;
                }
            }
            for x in nats_kv::values(&js.samples, &js.client, ">").await? {
                let window = x.key.split('.').nth(2).and_then(|w| w.parse::<u64>().ok());
                if window.is_some_and(|w| w < r) {
                    purge(&js.samples, &x.key).await?;
                    dropped += 1;
                }
            }
            // Not counted: a thing's last rejection is a note, not history.
            for x in nats_kv::values(&js.rejections, &js.client, ">").await? {
                let l: LastRejection = from_bytes(&what(names::REJECTIONS, &x.key), &x.payload)?;
                if l.time_ms < r {
                    purge(&js.rejections, &x.key).await?;
                }
            }
            Ok(dropped)
        })
    }
}

async fn purge(kv: &async_nats::jetstream::kv::Store, key: &str) -> Result<(), StoreError> {
    let what = format!("bucket {} key {key}", kv.name);
    kv.purge(key).await.map_err(|e| backend(&what, e))
}
