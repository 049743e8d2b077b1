//! What the broker saw of one thing until its windows close (issue #18, detect-rules §3.4):
//! counters per bucket, the connection state, the last batch applied. Kept in the thing's
//! record (same compare-and-set as its engine state). Folds events; judges nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use protocol::broker::{Direction, Event};
use serde::{Deserialize, Serialize};

/// Distinct topics counted per bucket and direction; more fold into `OTHER_TOPIC`.
pub const MAX_TOPICS: usize = 64;
/// Distinct source addresses kept per bucket; more are counted, not kept.
pub const MAX_IPS: usize = 16;
/// The key of topics beyond `MAX_TOPICS` (no MQTT topic is empty).
pub const OTHER_TOPIC: &str = "";

/// One thing's broker counters and connection state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Witness {
    /// Windows ending at or before this are judged; an event before it is late.
    pub closed_until_ms: u64,
    /// The time of the thing's latest event (it is forgotten 48 h after, §3.4).
    pub last_event_ms: u64,
    /// The connection state at the end of buckets already dropped: (connected, since ms).
    pub base: Option<(bool, u64)>,
    /// By bucket start (ms since the epoch, a multiple of the bucket length).
    pub buckets: BTreeMap<u64, Bucket>,
}

/// The counters of one bucket (the shortest window; longer windows add buckets up).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Bucket {
    pub attempts: u64,
    pub disconnects: u64,
    /// Addresses of accepted connects.
    pub ips: BTreeSet<IpAddr>,
    pub ips_dropped: u64,
    /// Denials by topic (`OTHER_TOPIC` for those without one, a refused connect).
    pub denied: BTreeMap<String, u64>,
    pub sent: BTreeMap<String, Tally>,
    pub received: BTreeMap<String, Tally>,
    /// Topics folded into `OTHER_TOPIC` because of `MAX_TOPICS`.
    pub topics_folded: u64,
    /// The last connect or disconnect in the bucket: (connected after it, at ms).
    pub last_state: Option<(bool, u64)>,
}

/// Messages on one topic in one direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Tally {
    pub msgs: u64,
    pub bytes: u64,
    pub min: u64,
    pub max: u64,
}

impl Tally {
    fn add(&mut self, msgs: u64, bytes: u64, min: u64, max: u64) {
        if msgs == 0 {
            return;
        }
        self.min = if self.msgs == 0 {
            min
        } else {
            self.min.min(min)
        };
        self.max = self.max.max(max);
        self.msgs = self.msgs.saturating_add(msgs);
        self.bytes = self.bytes.saturating_add(bytes);
    }
}

impl Witness {
    /// A new witness whose first window is the one holding `at_ms`.
    pub fn starting(at_ms: u64, bucket_ms: u64) -> Witness {
        Witness {
            closed_until_ms: at_ms - at_ms % bucket_ms,
            last_event_ms: at_ms,
            ..Witness::default()
        }
    }

    /// Adds one event of this thing (client id already matched). Returns false when it is
    /// late: its bucket's windows are already judged, it counts nowhere.
    pub fn add(&mut self, event: &Event, bucket_ms: u64) -> bool {
        let at = match event {
            Event::Connect { at_ms, .. }
            | Event::Disconnect { at_ms, .. }
            | Event::Denied { at_ms, .. } => *at_ms,
            Event::Traffic { from_ms, .. } => *from_ms,
            Event::ClosedBeforeConnect { .. } => return true,
        };
        if at < self.closed_until_ms {
            return false;
        }
        self.last_event_ms = self.last_event_ms.max(at);
        let b = self.buckets.entry(at - at % bucket_ms).or_default();
        let state = |b: &mut Bucket, connected: bool| {
            if b.last_state.is_none_or(|(_, t)| t <= at) {
                b.last_state = Some((connected, at));
            }
        };
        match event {
            Event::Connect { ip, ok, .. } => {
                b.attempts += 1;
                if *ok {
                    state(b, true);
                    match ip.parse::<IpAddr>().map(protocol::model::unmap_ip) {
                        Ok(ip) if b.ips.len() < MAX_IPS || b.ips.contains(&ip) => {
                            b.ips.insert(ip);
                        }
                        _ => b.ips_dropped += 1,
                    }
                }
            }
            Event::Disconnect { .. } => {
                b.disconnects += 1;
                state(b, false);
            }
            Event::Denied { topic, .. } => {
                let topic = topic.as_deref().unwrap_or(OTHER_TOPIC);
                let key = fold(&b.denied, topic, &mut b.topics_folded);
                *b.denied.entry(key).or_default() += 1;
            }
            Event::Traffic {
                topic,
                dir,
                msgs,
                bytes,
                min_bytes,
                max_bytes,
                ..
            } => {
                let map = match dir {
                    Direction::Sent => &mut b.sent,
                    Direction::Received => &mut b.received,
                };
                let key = fold(map, topic, &mut b.topics_folded);
                map.entry(key)
                    .or_default()
                    .add(*msgs, *bytes, *min_bytes, *max_bytes);
            }
            Event::ClosedBeforeConnect { .. } => {}
        }
        true
    }

    /// Connected or not at `at_ms`, and since when (the last connect or disconnect before it).
    pub fn state_at(&self, at_ms: u64) -> Option<(bool, u64)> {
        self.buckets
            .range(..at_ms)
            .rev()
            .find_map(|(_, b)| b.last_state.filter(|(_, t)| *t < at_ms))
            .or(self.base)
    }

    /// Drops buckets that start before `keep_from_ms`, keeping their connection state.
    pub fn drop_before(&mut self, keep_from_ms: u64) {
        let kept = self.buckets.split_off(&keep_from_ms);
        let dropped = std::mem::replace(&mut self.buckets, kept);
        if let Some(s) = dropped.values().rev().find_map(|b| b.last_state) {
            self.base = Some(s);
        }
    }
}

/// The key `topic` counts under: itself, or `OTHER_TOPIC` once `MAX_TOPICS` are counted.
fn fold<V>(map: &BTreeMap<String, V>, topic: &str, folded: &mut u64) -> String {
    if map.contains_key(topic) || map.len() < MAX_TOPICS {
        topic.to_string()
    } else {
        *folded += 1;
        OTHER_TOPIC.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::broker::Access;

    fn connect(at_ms: u64, ok: bool) -> Event {
        let (client_id, ip) = ("t".into(), "::ffff:127.0.0.2".into());
        Event::Connect {
            at_ms,
            client_id,
            ip,
            ok,
        }
    }

    #[test]
    fn events_fold_into_their_bucket_and_late_ones_count_nowhere() {
        let mut w = Witness::starting(10_500, 1000);
        assert_eq!(w.closed_until_ms, 10_000);
        assert!(w.add(&connect(10_600, true), 1000));
        assert!(w.add(&connect(10_700, false), 1000));
        let traffic = |from_ms, min, max| Event::Traffic {
            from_ms,
            to_ms: from_ms + 900,
            client_id: "t".into(),
            topic: "a/b".into(),
            dir: Direction::Sent,
            msgs: 2,
            bytes: min + max,
            min_bytes: min,
            max_bytes: max,
        };
        assert!(w.add(&traffic(10_100, 5, 9), 1000));
        assert!(w.add(&traffic(10_200, 3, 4), 1000));
        let denied = Event::Denied {
            at_ms: 11_000,
            client_id: "t".into(),
            access: Access::Publish,
            topic: Some("x".into()),
        };
        assert!(w.add(&denied, 1000));
        let b = &w.buckets[&10_000];
        assert_eq!((b.attempts, b.ips.len()), (2, 1));
        assert_eq!(b.ips.iter().next().unwrap().to_string(), "127.0.0.2");
        let t = b.sent["a/b"];
        assert_eq!((t.msgs, t.bytes, t.min, t.max), (4, 21, 3, 9));
        assert_eq!(w.buckets[&11_000].denied["x"], 1);
        assert_eq!(w.state_at(11_000), Some((true, 10_600)));
        w.closed_until_ms = 11_000;
        assert!(!w.add(&connect(10_999, true), 1000), "late");
        w.drop_before(11_000);
        assert_eq!(w.base, Some((true, 10_600)));
        assert_eq!(w.state_at(12_000), Some((true, 10_600)));
    }

    #[test]
    fn topics_beyond_the_bound_fold_into_one_counted_key() {
        let mut w = Witness::starting(0, 1000);
        for i in 0..MAX_TOPICS + 3 {
            let e = Event::Denied {
                at_ms: 1,
                client_id: "t".into(),
                access: Access::Subscribe,
                topic: Some(format!("t/{i}")),
            };
            w.add(&e, 1000);
        }
        let b = &w.buckets[&0];
        assert_eq!(b.denied.len(), MAX_TOPICS + 1);
        assert_eq!(b.topics_folded, 3);
        assert_eq!(b.denied[OTHER_TOPIC], 3);
    }
}
