//! Reports this instance received but could not judge (another owns their partition, nobody
//! does, or the store is unreachable), kept per partition in arrival order for a bounded time.
//!
//! Cluster mode without a shared subscription: every instance receives every report, so when a
//! partition has no live owner (its owner died and the lease has not run out, or the leases
//! expired during a nats-server election) the reports are still here, and whoever claims the
//! partition judges them (docs/fleet.md "Cluster mode in `run`"). Bounded by age, count and
//! bytes; an overflow drops the oldest report and is counted.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;

/// One report as it arrived.
#[derive(Debug, Clone)]
pub struct HeldReport {
    pub topic: String,
    pub payload: Bytes,
    /// When it arrived here (for the age bound).
    pub arrived: Instant,
}

/// The reports kept, per partition, oldest first.
pub struct Held {
    by_partition: BTreeMap<u32, VecDeque<HeldReport>>,
    len: usize,
    bytes: usize,
    keep: Duration,
    max_len: usize,
    max_bytes: usize,
    /// Reports dropped because the bounds were reached before their time was up.
    pub overflow: u64,
}

impl Held {
    /// Keeps each report for `keep`, at most `max_len` reports and `max_bytes` of payload.
    pub fn new(keep: Duration, max_len: usize, max_bytes: usize) -> Held {
        Held {
            by_partition: BTreeMap::new(),
            len: 0,
            bytes: 0,
            keep,
            max_len,
            max_bytes,
            overflow: 0,
        }
    }

    /// How long a report is kept.
    pub fn keep(&self) -> Duration {
        self.keep
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether reports of `partition` are waiting.
    pub fn has(&self, partition: u32) -> bool {
        self.by_partition.contains_key(&partition)
    }

    /// The partitions with reports waiting.
    pub fn partitions(&self) -> Vec<u32> {
        self.by_partition.keys().copied().collect()
    }

    /// Keeps `report` (the newest of its partition); returns how many older reports were
    /// dropped to stay within the bounds.
    pub fn push(&mut self, partition: u32, report: HeldReport) -> usize {
        self.len += 1;
        self.bytes += report.payload.len();
        self.by_partition
            .entry(partition)
            .or_default()
            .push_back(report);
        let mut dropped = 0;
        while self.len > self.max_len || self.bytes > self.max_bytes {
            let oldest = self
                .by_partition
                .iter()
                .filter_map(|(p, q)| q.front().map(|r| (r.arrived, *p)))
                .min();
            let Some((_, p)) = oldest else { break };
            self.pop_front(p);
            dropped += 1;
        }
        self.overflow += dropped as u64;
        dropped
    }

    /// Forgets the reports older than the keep time; returns how many, those of partitions
    /// `mine` says are this instance's (forgotten unanswered: nobody else judges them) apart
    /// from the others'.
    pub fn expire(&mut self, now: Instant, mine: impl Fn(u32) -> bool) -> (usize, usize) {
        let keep = self.keep;
        let old: Vec<u32> = self.partitions();
        let (mut n, mut own) = (0, 0);
        for p in old {
            let before = n;
            while self
                .by_partition
                .get(&p)
                .and_then(|q| q.front())
                .is_some_and(|r| now.duration_since(r.arrived) > keep)
            {
                self.pop_front(p);
                n += 1;
            }
            if mine(p) {
                own += n - before;
            }
        }
        (own, n - own)
    }

    /// Takes every report of `partition`, oldest first.
    pub fn take(&mut self, partition: u32) -> VecDeque<HeldReport> {
        let q = self.by_partition.remove(&partition).unwrap_or_default();
        self.len -= q.len();
        self.bytes -= q.iter().map(|r| r.payload.len()).sum::<usize>();
        q
    }

    /// Puts back reports taken and not judged, before any that arrived since.
    pub fn put_back(&mut self, partition: u32, mut reports: VecDeque<HeldReport>) {
        if reports.is_empty() {
            return;
        }
        self.len += reports.len();
        self.bytes += reports.iter().map(|r| r.payload.len()).sum::<usize>();
        let q = self.by_partition.entry(partition).or_default();
        reports.append(q);
        *q = reports;
    }

    fn pop_front(&mut self, partition: u32) {
        let Some(q) = self.by_partition.get_mut(&partition) else {
            return;
        };
        if let Some(r) = q.pop_front() {
            self.len -= 1;
            self.bytes -= r.payload.len();
        }
        if q.is_empty() {
            self.by_partition.remove(&partition);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(n: usize, at: Instant) -> HeldReport {
        HeldReport {
            topic: format!("t{n}"),
            payload: Bytes::from(vec![0u8; 10]),
            arrived: at,
        }
    }

    fn topics(q: &VecDeque<HeldReport>) -> Vec<&str> {
        q.iter().map(|r| r.topic.as_str()).collect()
    }

    #[test]
    fn reports_come_back_per_partition_in_arrival_order() {
        let t = Instant::now();
        let mut h = Held::new(Duration::from_secs(10), 100, 1000);
        h.push(1, report(1, t));
        h.push(2, report(2, t));
        h.push(1, report(3, t));
        assert_eq!((h.len(), h.partitions()), (3, vec![1, 2]));
        let mut one = h.take(1);
        assert_eq!(topics(&one), ["t1", "t3"]);
        h.push(1, report(4, t));
        let rest = one.split_off(1);
        h.put_back(1, rest);
        assert_eq!(topics(&h.take(1)), ["t3", "t4"]);
        assert_eq!((h.len(), h.has(1), h.has(2)), (1, false, true));
    }

    #[test]
    fn old_reports_expire_and_an_overflow_drops_the_oldest() {
        let t = Instant::now();
        let mut h = Held::new(Duration::from_secs(10), 3, 1000);
        h.push(5, report(1, t));
        h.push(6, report(2, t + Duration::from_secs(1)));
        h.push(5, report(3, t + Duration::from_secs(2)));
        assert_eq!(h.push(6, report(4, t + Duration::from_secs(3))), 1);
        assert_eq!(h.overflow, 1);
        assert_eq!(topics(&h.take(5)), ["t3"]);
        h.push(5, report(5, t + Duration::from_secs(4)));
        let later = t + Duration::from_millis(13_500);
        // Both left of partition 6 (t2, t4), none of 5 (t5 is newer).
        assert_eq!(h.expire(later, |p| p == 6), (2, 0));
        assert_eq!(topics(&h.take(5)), ["t5"]);
        assert!(h.is_empty());
        // The byte bound: 10 bytes each, 25 allowed.
        let mut h = Held::new(Duration::from_secs(10), 100, 25);
        for i in 0..4 {
            h.push(0, report(i, t + Duration::from_secs(i as u64)));
        }
        assert_eq!((h.len(), h.overflow), (2, 2));
    }
}
