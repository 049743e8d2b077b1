//! Owns one decision: whether a report's outcome (accepted, rejected, acknowledged without a
//! verdict, not delivered) lets the counter baseline advance. Learns whether the backend answers.

use crate::publish::Outcome;

/// After this many acknowledged reports in a row without a verdict, a backend that used to
/// answer is taken as gone, and the broker's PUBACK settles the baseline again.
const SILENT_ACKS_BEFORE_PUBACK_SETTLES: u32 = 3;

/// Whether the backend answers with verdicts, learned from what it did. With a plain broker
/// that never answers, a PUBACK settles the baseline (issue #3: "without a verdict: the last
/// one the broker acknowledged"). Once a verdict has come, a PUBACK without one means the
/// report's fate is unknown (the backend may be reconnecting after a broker restart and never
/// saw it), so its traffic rolls into the next report rather than being lost; after
/// `SILENT_ACKS_BEFORE_PUBACK_SETTLES` silent acks in a row the backend is taken as gone. A
/// rolled-over report the backend did accept is counted twice: over-reporting beats losing a spike.
#[derive(Debug, Default)]
pub(crate) struct Verdicts {
    answering: bool,
    silent_acks: u32,
}

impl Verdicts {
    /// True when `outcome` lets the baseline advance to the report's sample.
    pub(crate) fn settles(&mut self, outcome: &Outcome) -> bool {
        match outcome {
            Outcome::Accepted | Outcome::Rejected { .. } => {
                self.answering = true;
                self.silent_acks = 0;
                matches!(outcome, Outcome::Accepted)
            }
            Outcome::NotDelivered(_) => false,
            Outcome::Acked if !self.answering => true,
            Outcome::Acked => {
                self.silent_acks += 1;
                if self.silent_acks < SILENT_ACKS_BEFORE_PUBACK_SETTLES {
                    return false;
                }
                *self = Self::default();
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejected() -> Outcome {
        Outcome::Rejected {
            code: "Throttled".into(),
            message: None,
        }
    }

    #[test]
    fn a_plain_broker_settles_on_puback() {
        let mut v = Verdicts::default();
        assert!(v.settles(&Outcome::Acked));
        assert!(v.settles(&Outcome::Acked));
        assert!(!v.settles(&Outcome::NotDelivered("down".into())));
        assert!(v.settles(&Outcome::Acked));
    }

    #[test]
    fn a_backend_that_answered_must_answer_again_until_it_is_taken_as_gone() {
        let mut v = Verdicts::default();
        assert!(v.settles(&Outcome::Accepted));
        assert!(!v.settles(&Outcome::Acked));
        assert!(!v.settles(&Outcome::Acked));
        // The third silent ack in a row carried everything since the last accepted report.
        assert!(v.settles(&Outcome::Acked));
        assert!(v.settles(&Outcome::Acked));
        // A rejection shows the backend is back; rejected traffic never settles.
        assert!(!v.settles(&rejected()));
        assert!(!v.settles(&Outcome::Acked));
        assert!(v.settles(&Outcome::Accepted));
        assert!(!v.settles(&Outcome::Acked));
        assert!(!v.settles(&Outcome::NotDelivered("down".into())));
        assert!(!v.settles(&Outcome::Acked));
        assert!(v.settles(&Outcome::Accepted));
    }
}
