//! Numbered batches of one plugin instance: a random instance id, `seq` from 0 without gaps over
//! the batches actually handed to the broker, split when one would exceed `MAX_BATCH_BYTES`.

use std::hash::{BuildHasher, Hasher};

use protocol::broker::{BATCH_VERSION, Batch, Event, MAX_BATCH_BYTES};

pub struct Outbox {
    pub instance: String,
    seq: u64,
    /// Events lost since the last batch that went out (caps, refused publishes, oversize).
    dropped: u64,
}

/// 128 random bits as hex, from std's per-process random hash keys (no dependency, no I/O).
fn random_id() -> String {
    let word = || {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        h.finish()
    };
    format!("{:016x}{:016x}", word(), word())
}

impl Outbox {
    pub fn new() -> Outbox {
        Outbox {
            instance: random_id(),
            seq: 0,
            dropped: 0,
        }
    }

    /// Sends `events` (and `dropped` more lost ones) with `send`, which returns false when the
    /// broker refused a payload: its events count as dropped in the next batch and its `seq`
    /// is reused, so the reader sees every loss either as a gap or in `dropped`. Returns the
    /// number of batches sent.
    pub fn flush(
        &mut self,
        events: Vec<Event>,
        dropped: u64,
        now_ms: u64,
        send: &mut dyn FnMut(&[u8]) -> bool,
    ) -> usize {
        self.dropped += dropped;
        let mut sent = 0;
        let mut todo = vec![events];
        while let Some(events) = todo.pop() {
            let batch = Batch {
                v: BATCH_VERSION,
                source: "mosquitto".into(),
                instance: self.instance.clone(),
                seq: self.seq,
                sent_ms: now_ms,
                dropped: self.dropped,
                events,
            };
            let bytes = batch.encode();
            let n = batch.events.len();
            if bytes.len() > MAX_BATCH_BYTES {
                if n <= 1 {
                    self.dropped += n as u64;
                    continue;
                }
                let mut first = batch.events;
                let second = first.split_off(n / 2);
                todo.push(second);
                todo.push(first);
                continue;
            }
            if send(&bytes) {
                self.seq += 1;
                self.dropped = 0;
                sent += 1;
            } else {
                self.dropped += n as u64;
            }
        }
        sent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disconnect(topic_len: usize) -> Event {
        Event::Denied {
            at_ms: 1,
            client_id: "c".into(),
            access: protocol::broker::Access::Publish,
            topic: Some("t".repeat(topic_len)),
        }
    }

    #[test]
    fn batches_are_numbered_from_zero_and_a_refused_one_reuses_its_number() {
        let mut out = Outbox::new();
        let mut seen = Vec::new();
        let mut ok = true;
        for _ in 0..3 {
            out.flush(vec![disconnect(1)], 0, 5, &mut |b| {
                let batch = Batch::decode(b).unwrap();
                seen.push((batch.seq, batch.dropped, ok));
                ok
            });
            ok = !ok;
        }
        assert_eq!(seen, vec![(0, 0, true), (1, 0, false), (1, 1, true)]);
        assert_eq!(out.instance.len(), 32);
        assert_ne!(Outbox::new().instance, out.instance);
    }

    #[test]
    fn an_oversized_batch_is_split_in_order_and_an_oversized_event_dropped() {
        let mut out = Outbox::new();
        let events: Vec<Event> = (0..8)
            .map(|_| disconnect(60_000))
            .chain([disconnect(MAX_BATCH_BYTES)])
            .collect();
        let mut got = Vec::new();
        let sent = out.flush(events, 2, 5, &mut |b| {
            assert!(b.len() <= MAX_BATCH_BYTES);
            got.push(Batch::decode(b).unwrap());
            true
        });
        assert_eq!(sent, got.len());
        assert!(sent >= 2);
        assert_eq!(got.iter().map(|b| b.events.len()).sum::<usize>(), 8);
        assert_eq!(
            got.iter().map(|b| b.seq).collect::<Vec<_>>(),
            (0..sent as u64).collect::<Vec<_>>()
        );
        assert_eq!(got[0].dropped, 2);
        let mut next = Vec::new();
        out.flush(vec![], 0, 6, &mut |b| {
            next.push(Batch::decode(b).unwrap());
            true
        });
        assert_eq!(next[0].dropped, 1, "the event too large for any batch");
    }
}
