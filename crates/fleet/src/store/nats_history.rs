//! The cluster store's metric history and event log (issue #21). The history is not kept
//! yet: `ListMetricValues` answers an empty list on `[store] kind = "nats"` (docs/fleet.md
//! says so) and commits drop the points. Events are listed from the outbox stream.

use async_nats::jetstream::consumer::DeliverPolicy;
use detect::Event;

use super::nats::{backend, names};
use super::nats_kv::{self, enc, from_bytes};
use super::nats_rest::suppressed;
use super::{
    EventLog, EventQuery, HistoryPoint, Listed, MetricHistory, Nats, Side, StoreError, Violation,
};

impl MetricHistory for Nats {
    fn history(
        &mut self,
        _thing: &str,
        _side: Side,
        _from_ms: u64,
        _to_ms: u64,
        _limit: usize,
    ) -> Result<Vec<HistoryPoint>, StoreError> {
        Ok(Vec::new())
    }

    fn prune_history(&mut self, _before_ms: u64) -> Result<usize, StoreError> {
        Ok(0)
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
