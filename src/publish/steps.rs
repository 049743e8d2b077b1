//! Owns the deadlines of the MQTT steps inside one session: SUBACK after SUBSCRIBE, PUBACK
//! after PUBLISH (CONNACK is bounded by rumqttc's connection timeout). No I/O; `session` asks.

use std::time::Duration;

use rumqttc::{Event, Incoming, Outgoing};
use tokio::time::Instant;

/// How long the broker may take to answer a SUBSCRIBE (a few bytes each way) before the
/// session counts as stuck and is reconnected (with the backoff).
pub const SUBACK_TIMEOUT: Duration = Duration::from_secs(10);
/// The same for a QoS-1 PUBLISH: its payload of up to 128 KiB must get through first, which
/// takes 30 s at about 35 kbit/s (a weak cellular link still counts as working).
pub const PUBACK_TIMEOUT: Duration = Duration::from_secs(30);

/// The answer the session waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    SubAck,
    PubAck,
}

impl Step {
    pub fn timeout(self) -> Duration {
        match self {
            Step::SubAck => SUBACK_TIMEOUT,
            Step::PubAck => PUBACK_TIMEOUT,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Step::SubAck => "SUBACK",
            Step::PubAck => "PUBACK",
        }
    }
}

/// The one step being waited for, and until when. A SUBACK wait comes first (nothing is
/// published before it); while a PUBACK is awaited, later publishes keep the first deadline.
#[derive(Debug, Default)]
pub struct Steps {
    waiting: Option<(Step, Instant)>,
}

impl Steps {
    /// Arms or clears the wait that `event` starts or ends; `now` is when it happened.
    pub fn observe(&mut self, event: &Event, now: Instant) {
        match event {
            Event::Outgoing(Outgoing::Subscribe(_)) => {
                self.waiting = Some((Step::SubAck, now + SUBACK_TIMEOUT));
            }
            Event::Outgoing(Outgoing::Publish(_)) if self.waiting.is_none() => {
                self.waiting = Some((Step::PubAck, now + PUBACK_TIMEOUT));
            }
            Event::Incoming(Incoming::SubAck(_)) => self.end(Step::SubAck),
            Event::Incoming(Incoming::PubAck(_)) => self.end(Step::PubAck),
            _ => {}
        }
    }

    fn end(&mut self, step: Step) {
        if matches!(self.waiting, Some((s, _)) if s == step) {
            self.waiting = None;
        }
    }

    /// Forgets every wait (the connection is gone).
    pub fn clear(&mut self) {
        self.waiting = None;
    }

    /// The step being waited for and its deadline.
    pub fn due(&self) -> Option<(Step, Instant)> {
        self.waiting
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rumqttc::{PubAck, SubAck};

    #[test]
    fn each_request_arms_its_answer_and_the_answer_clears_it() {
        let t0 = Instant::now();
        let mut s = Steps::default();
        assert_eq!(s.due(), None);
        s.observe(&Event::Outgoing(Outgoing::Subscribe(1)), t0);
        assert_eq!(s.due(), Some((Step::SubAck, t0 + SUBACK_TIMEOUT)));
        // A PUBACK does not end a SUBACK wait.
        s.observe(&Event::Incoming(Incoming::PubAck(PubAck::new(1))), t0);
        assert_eq!(s.due().map(|d| d.0), Some(Step::SubAck));
        s.observe(
            &Event::Incoming(Incoming::SubAck(SubAck::new(1, Vec::new()))),
            t0,
        );
        assert_eq!(s.due(), None);
        let t1 = t0 + Duration::from_secs(3);
        s.observe(&Event::Outgoing(Outgoing::Publish(2)), t1);
        // A second publish keeps the first deadline.
        s.observe(&Event::Outgoing(Outgoing::Publish(3)), t1 + SUBACK_TIMEOUT);
        assert_eq!(s.due(), Some((Step::PubAck, t1 + PUBACK_TIMEOUT)));
        s.observe(&Event::Incoming(Incoming::PubAck(PubAck::new(2))), t1);
        assert_eq!(s.due(), None);
        s.observe(&Event::Outgoing(Outgoing::Publish(4)), t1);
        s.clear();
        assert_eq!(s.due(), None);
    }
}
