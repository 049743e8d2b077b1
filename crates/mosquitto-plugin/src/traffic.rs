//! Accepted publishes and deliveries of the current window, summed per (client id, topic,
//! direction), with a cap per client and in total; turned into `Event::Traffic` at each flush.

use foldhash::HashMap;

use protocol::broker::{Direction, Event};

/// Distinct (topic, direction) pairs kept per client in one window; more are dropped, counted.
pub const MAX_TOPICS_PER_CLIENT: usize = 64;
/// (client, topic, direction) entries in one window; reaching it makes the plugin flush early.
pub const MAX_ENTRIES: usize = 4096;

#[derive(Debug, Clone, Copy, Default)]
struct Sum {
    msgs: u64,
    bytes: u64,
    min: u64,
    max: u64,
}

impl Sum {
    fn add(&mut self, size: u64) {
        self.min = if self.msgs == 0 {
            size
        } else {
            self.min.min(size)
        };
        self.max = self.max.max(size);
        self.msgs += 1;
        self.bytes += size;
    }
}

#[derive(Default)]
struct Topics {
    sent: HashMap<Box<str>, Sum>,
    received: HashMap<Box<str>, Sum>,
}

/// One window's traffic.
#[derive(Default)]
pub struct Traffic {
    clients: HashMap<Box<str>, Topics>,
    entries: usize,
    /// Bytes the Traffic events will take in JSON, roughly (for the early flush).
    pub approx_bytes: usize,
}

/// JSON of one Traffic event without its strings, roughly.
const EVENT_OVERHEAD: usize = 200;

impl Traffic {
    /// Counts one message of `size` payload bytes; false when it was dropped (a cap).
    pub fn add(&mut self, client_id: &str, topic: &str, dir: Direction, size: u64) -> bool {
        let full = self.entries >= MAX_ENTRIES;
        let topics = match self.clients.get_mut(client_id) {
            Some(t) => t,
            None if full => return false,
            None => self.clients.entry(client_id.into()).or_default(),
        };
        let count = topics.sent.len() + topics.received.len();
        let map = match dir {
            Direction::Sent => &mut topics.sent,
            Direction::Received => &mut topics.received,
        };
        match map.get_mut(topic) {
            Some(sum) => sum.add(size),
            None if full || count >= MAX_TOPICS_PER_CLIENT => return false,
            None => {
                map.entry(topic.into()).or_default().add(size);
                self.entries += 1;
                self.approx_bytes += EVENT_OVERHEAD + client_id.len() + topic.len();
            }
        }
        true
    }

    /// True when no new entry fits: time to flush.
    pub fn is_full(&self) -> bool {
        self.entries >= MAX_ENTRIES
    }

    /// The window's events, leaving the table empty.
    pub fn drain(&mut self, from_ms: u64, to_ms: u64) -> Vec<Event> {
        let mut out = Vec::with_capacity(self.entries);
        for (client_id, topics) in self.clients.drain() {
            let both = [
                (Direction::Sent, topics.sent),
                (Direction::Received, topics.received),
            ];
            for (dir, map) in both {
                for (topic, s) in map {
                    out.push(Event::Traffic {
                        from_ms,
                        to_ms,
                        client_id: client_id.to_string(),
                        topic: topic.into(),
                        dir,
                        msgs: s.msgs,
                        bytes: s.bytes,
                        min_bytes: s.min,
                        max_bytes: s.max,
                    });
                }
            }
        }
        self.entries = 0;
        self.approx_bytes = 0;
        self.clients.shrink_to(256);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_counts_bytes_min_and_max_per_client_topic_and_direction() {
        let mut t = Traffic::default();
        for size in [5, 20, 7] {
            assert!(t.add("gw-a", "t/1", Direction::Sent, size));
        }
        assert!(t.add("gw-a", "t/1", Direction::Received, 3));
        let mut ev = t.drain(0, 1000);
        ev.sort_by_key(|e| format!("{e:?}"));
        assert_eq!(ev.len(), 2);
        assert!(
            matches!(
                &ev[1],
                Event::Traffic {
                    dir: Direction::Sent,
                    msgs: 3,
                    bytes: 32,
                    min_bytes: 5,
                    max_bytes: 20,
                    ..
                }
            ),
            "{ev:?}"
        );
        assert!(
            matches!(
                &ev[0],
                Event::Traffic {
                    dir: Direction::Received,
                    msgs: 1,
                    bytes: 3,
                    min_bytes: 3,
                    max_bytes: 3,
                    ..
                }
            ),
            "{ev:?}"
        );
        assert!(t.drain(1000, 2000).is_empty());
    }

    #[test]
    fn topics_beyond_the_per_client_cap_are_refused_and_others_still_counted() {
        let mut t = Traffic::default();
        for i in 0..MAX_TOPICS_PER_CLIENT {
            assert!(t.add("a", &format!("t/{i}"), Direction::Sent, 1));
        }
        assert!(!t.add("a", "t/new", Direction::Sent, 1));
        assert!(
            t.add("a", "t/0", Direction::Sent, 1),
            "a known topic still counts"
        );
        assert!(t.add("b", "t/new", Direction::Sent, 1));
    }

    #[test]
    fn the_table_reports_full_at_its_entry_cap() {
        let mut t = Traffic::default();
        for i in 0..MAX_ENTRIES {
            assert!(t.add(&format!("c{i}"), "t", Direction::Sent, 1));
        }
        assert!(t.is_full());
        assert!(!t.add("new", "t", Direction::Sent, 1));
        assert_eq!(t.drain(0, 1).len(), MAX_ENTRIES);
        assert!(!t.is_full());
    }
}
