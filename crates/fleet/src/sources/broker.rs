//! The mosquitto plugin's batches (crates/mosquitto-plugin) on `$detect/broker/events`:
//! bounded decode, and the seq rule that says exactly how many batches were missed.

use protocol::broker::{BROKER_EVENTS_TOPIC, Batch};

use super::{Delivery, Source};

/// The mosquitto plugin, read over the fleet's MQTT connection.
pub struct Plugin;

pub const NAME: &str = "mosquitto-plugin";

impl Source for Plugin {
    fn name(&self) -> &'static str {
        NAME
    }

    fn filters(&self) -> &'static [&'static str] {
        &[BROKER_EVENTS_TOPIC]
    }

    fn read(&self, topic: &str, payload: &[u8]) -> Option<Result<Delivery, String>> {
        if topic != BROKER_EVENTS_TOPIC {
            return None;
        }
        Some(
            Batch::decode(payload)
                .map(|b| Delivery {
                    source: NAME,
                    instance: b.instance,
                    seq: b.seq,
                    dropped: b.dropped,
                    events: b.events,
                })
                .map_err(|e| e.to_string()),
        )
    }
}

/// Where a batch stands against the last one read from its source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The next one (or the first ever read).
    Next,
    /// Read before (a redelivery): its events are not counted again.
    Again,
    /// `missed` batches of this instance never arrived.
    Gap { missed: u64 },
    /// The writer restarted (a new instance): `missed` batches of the new one before this
    /// never arrived; what the old one sent after the last read is unknown.
    Restarted { missed: u64 },
}

/// The seq rule: each instance numbers its batches from 0 without gaps.
pub fn step(last: Option<&(String, u64)>, instance: &str, seq: u64) -> Step {
    match last {
        None => Step::Next,
        Some((i, s)) if i == instance => match seq.checked_sub(*s) {
            Some(1) => Step::Next,
            Some(0) | None => Step::Again,
            Some(d) => Step::Gap { missed: d - 1 },
        },
        Some(_) => Step::Restarted { missed: seq },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seq_rule_counts_missed_batches_exactly() {
        let last = ("a".to_string(), 7);
        assert_eq!(step(None, "a", 3), Step::Next);
        assert_eq!(step(Some(&last), "a", 8), Step::Next);
        assert_eq!(step(Some(&last), "a", 7), Step::Again);
        assert_eq!(step(Some(&last), "a", 2), Step::Again);
        assert_eq!(step(Some(&last), "a", 12), Step::Gap { missed: 4 });
        assert_eq!(step(Some(&last), "b", 0), Step::Restarted { missed: 0 });
        assert_eq!(step(Some(&last), "b", 5), Step::Restarted { missed: 5 });
    }

    #[test]
    fn only_the_events_topic_is_read_and_bad_batches_say_why() {
        assert!(
            Plugin
                .read("$aws/things/x/defender/metrics/json", b"{}")
                .is_none()
        );
        let e = Plugin.read(BROKER_EVENTS_TOPIC, b"{").unwrap().unwrap_err();
        assert!(e.contains("not valid"), "{e}");
        let big = vec![b' '; protocol::broker::MAX_BATCH_BYTES + 1];
        let e = Plugin.read(BROKER_EVENTS_TOPIC, &big).unwrap().unwrap_err();
        assert!(e.contains("larger"), "{e}");
    }
}
