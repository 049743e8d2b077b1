//! Cluster mode without a shared subscription: what happens to a report not judged on arrival.
//! It waits in the link's `Held` and is judged, in arrival order, once its partition is ours.
//!
//! Every instance receives every report. A report is judged on arrival only by the owner of its
//! partition while the store answers; otherwise each instance keeps it (acknowledged to the
//! broker: it lives here now) for a few leases. Whoever then claims the partition judges what it
//! kept, as it would a backlog the broker kept (report ids read as send times space them, see
//! `intake::sequence`); a report its old owner answered already gets its stored answer again.
//! docs/fleet.md "Cluster mode in `run`" tells why.

use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;

use bytes::Bytes;

use super::{RunError, Service};
use tokio::sync::broadcast::error::TryRecvError;

use crate::cluster::forward::Report;
use crate::cluster::held::HeldReport;
use crate::cluster::view::{Change, ChangeKind};
use crate::intake::ReportTopic;
use crate::judge::Handled;
use crate::store::StoreError;

impl Service {
    /// Whether this instance judges reports of `partition` now: it owns it and the store is
    /// not in a backoff.
    fn may_judge(&self, partition: u32) -> bool {
        self.cluster.as_ref().is_some_and(|l| {
            l.ownership.epoch(partition).is_some()
                && l.store_wait.is_none_or(|t| t <= Instant::now())
        })
    }

    /// Keeps a report of `partition` that arrived now.
    pub(super) fn hold(&mut self, partition: u32, topic: &str, payload: Bytes) {
        let Some(link) = self.cluster.as_mut() else {
            return;
        };
        if link.released.contains_key(&partition) {
            let Some(thing) = ReportTopic::parse(topic).map(|t| t.thing) else {
                return;
            };
            let topic = topic.to_string();
            link.hand_over(Report {
                thing,
                topic,
                payload,
            });
            return;
        }
        let report = HeldReport {
            topic: topic.to_string(),
            payload,
            arrived: Instant::now(),
        };
        if link.held.push(partition, report) > 0 {
            let n = link.held.overflow;
            if n.is_power_of_two() || n % 10_000 == 0 {
                tracing::warn!(
                    overflow = n,
                    held = link.held.len(),
                    "too many reports held: the oldest dropped"
                );
            }
        }
    }

    /// A report of `topic.thing` that arrived now (cluster mode, not shared): the answers of
    /// older reports of its partition judged first, and whether to judge it now (false: it is
    /// kept, acknowledge it).
    pub(super) fn route(
        &mut self,
        topic: &ReportTopic,
        raw_topic: &str,
        payload: &Bytes,
    ) -> Result<(Vec<Handled>, bool), RunError> {
        let Some(partition) = self
            .cluster
            .as_ref()
            .map(|l| l.ownership.partition(&topic.thing))
        else {
            return Ok((Vec::new(), true));
        };
        let earlier = if self.may_judge(partition) {
            self.judge_held(partition)?
        } else {
            Vec::new()
        };
        let waiting = self.cluster.as_ref().is_some_and(|l| l.held.has(partition));
        if waiting || !self.may_judge(partition) {
            // After any older report of its partition, to keep the arrival order.
            self.hold(partition, raw_topic, payload.clone());
            return Ok((earlier, false));
        }
        Ok((earlier, true))
    }

    /// Judges the reports of `partition` kept here, oldest first, until one cannot be judged
    /// (the partition moved, the store failed): it and the rest go back.
    pub(super) fn judge_held(&mut self, partition: u32) -> Result<Vec<Handled>, RunError> {
        let Some(mut waiting) = self.cluster.as_mut().map(|l| l.held.take(partition)) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        while let Some(r) = waiting.pop_front() {
            let Some(topic) = ReportTopic::parse(&r.topic) else {
                continue;
            };
            if !self.may_judge(partition) {
                waiting.push_front(r);
                break;
            }
            match self.judge_one(&topic, &r.payload, super::now_ms())? {
                Some(h) => {
                    out.push(h);
                    if let Some(link) = self.cluster.as_mut() {
                        link.unsynced.push((partition, r));
                    }
                }
                None => {
                    waiting.push_front(r);
                    break;
                }
            }
        }
        if !out.is_empty() {
            tracing::info!(
                partition,
                judged = out.len(),
                left = waiting.len(),
                "held reports judged"
            );
        }
        if let Some(link) = self.cluster.as_mut() {
            link.held.put_back(partition, waiting);
        }
        Ok(out)
    }

    /// The timer's turn: forgets reports kept too long, judges those of partitions that are
    /// ours now, and answers them.
    pub(super) async fn on_held_tick(&mut self) -> Result<(), RunError> {
        let Some(link) = self.cluster.as_mut() else {
            return Ok(());
        };
        link.check_broker();
        let now = Instant::now();
        loop {
            match link.changes.try_recv() {
                Ok(Change {
                    partition, kind, ..
                }) => match kind {
                    ChangeKind::Released => {
                        link.released.insert(partition, now);
                        // Kept since it stopped judging them: the new owner may lack them.
                        for r in link.held.take(partition) {
                            if let Some(t) = ReportTopic::parse(&r.topic) {
                                let (thing, topic, payload) = (t.thing, r.topic, r.payload);
                                link.hand_over(Report {
                                    thing,
                                    topic,
                                    payload,
                                });
                            }
                        }
                    }
                    ChangeKind::Claimed => {
                        link.released.remove(&partition);
                    }
                    ChangeKind::Lost | ChangeKind::Expired => {}
                },
                Err(TryRecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "ownership changes missed");
                }
                Err(_) => break,
            }
        }
        let keep = link.held.keep();
        link.released
            .retain(|_, at| now.duration_since(*at) <= keep);
        if link.held.is_empty() {
            return Ok(());
        }
        let ownership = &link.ownership;
        let owned = |p: u32| ownership.epoch(p).is_some();
        let (mine, others) = link.held.expire(Instant::now(), owned);
        if others > 0 {
            tracing::debug!(
                expired = others,
                "held reports of other instances' things forgotten"
            );
        }
        if mine > 0 {
            // Ours and not judged within the hold time (the store failed that long): lost.
            let keep_ms = link.held.keep().as_millis() as u64;
            tracing::warn!(
                expired = mine,
                keep_ms,
                "held reports of this instance's things forgotten unanswered"
            );
        }
        let partitions = link.held.partitions();
        let mut answers = Vec::new();
        for partition in partitions {
            if self.may_judge(partition) {
                answers.extend(self.judge_held(partition)?);
            }
        }
        if !answers.is_empty() && self.synced(answers.len())? {
            self.answer_all(answers).await;
        }
        Ok(())
    }

    /// Syncs the store after judging `reports`. False when, in cluster mode, the sync failed:
    /// a write refused (another instance wrote the thing first) or the store unreachable (a
    /// nats-server election, a lost connection: the store backs off). Nothing judged since the
    /// last sync is then answered or acknowledged; the held reports among them go back to
    /// their partitions, before newer ones, to be judged again (a report whose record did get
    /// written then gets its stored answer).
    pub(super) fn synced(&mut self, reports: usize) -> Result<bool, RunError> {
        let done = self.store.sync();
        let Some(link) = self.cluster.as_mut() else {
            return done.map(|()| true).map_err(RunError::from);
        };
        let judged = std::mem::take(&mut link.unsynced);
        let e = match done {
            Ok(()) => return Ok(true),
            Err(e @ (StoreError::Conflict { .. } | StoreError::Backend { .. })) => e,
            Err(e) => return Err(e.into()),
        };
        let back = judged.len();
        let mut by_partition: BTreeMap<u32, VecDeque<HeldReport>> = BTreeMap::new();
        for (partition, r) in judged {
            by_partition.entry(partition).or_default().push_back(r);
        }
        for (partition, q) in by_partition {
            link.held.put_back(partition, q);
        }
        if matches!(e, StoreError::Backend { .. }) {
            self.back_off(&e);
        }
        tracing::warn!(error = %e, reports, held_again = back, "batch not committed whole: its reports are left unanswered");
        Ok(false)
    }

    /// The store failed (cluster mode): reports wait, held, for a jittered, growing delay.
    pub(super) fn back_off(&mut self, e: &StoreError) {
        if let Some(link) = self.cluster.as_mut() {
            let delay = link.store_backoff.next_delay();
            link.store_wait = Some(Instant::now() + delay);
            tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "store unreachable: reports wait");
        }
    }
}
