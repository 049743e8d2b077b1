//! Owns one decision: whether a report's outcome (accepted, rejected, acknowledged without a
//! verdict, not delivered, accepted too late) lets the counter baseline advance.

use std::collections::VecDeque;

use crate::config::Backend;
use crate::publish::Outcome;
use crate::report::Baseline;

/// Reports whose fate is unknown, newest last: a few slots' worth.
const MAX_UNSETTLED: usize = 4;

/// What settles a report's traffic, from `[report] backend` and, for `auto`, whether a
/// verdict was ever heard (kept in the state directory beside the baseline). Silence never
/// unlearns it: a backend down for any number of intervals, or still reconnecting after a
/// broker restart, must not make a PUBACK settle traffic the backend never counted (issue
/// #11 items 1–2). A rolled-over report the backend did accept is counted twice, unless its
/// verdict still comes before the next report (see `Unsettled`): over-reporting beats
/// losing a spike.
#[derive(Debug, Default)]
pub(crate) struct Verdicts {
    mode: Backend,
    /// A verdict was heard, by this agent or one before it.
    answering: bool,
}

impl Verdicts {
    pub(crate) fn new(mode: Backend, answering: bool) -> Self {
        Self { mode, answering }
    }

    /// True once a verdict was heard (the fact to persist).
    pub(crate) fn answering(&self) -> bool {
        self.answering
    }

    /// True when `outcome` lets the baseline advance to the report's sample.
    pub(crate) fn settles(&mut self, outcome: &Outcome) -> bool {
        match outcome {
            Outcome::Accepted => true,
            Outcome::Rejected { .. } | Outcome::NotDelivered(_) => false,
            Outcome::Acked => match self.mode {
                Backend::Verdicts => false,
                Backend::None => true,
                Backend::Auto => !self.answering,
            },
        }
    }

    /// A verdict came (in time or late): the backend answers. True when that is news.
    pub(crate) fn heard(&mut self) -> bool {
        !std::mem::replace(&mut self.answering, true)
    }
}

/// Reports that did not settle but may still be accepted (no verdict in time, or no PUBACK in
/// time), each with the baseline it would settle to. A late "accepted" for one of them settles
/// it then, so the next report does not count its traffic again.
#[derive(Debug, Default)]
pub(crate) struct Unsettled {
    reports: VecDeque<(u64, Baseline)>,
}

impl Unsettled {
    pub(crate) fn remember(&mut self, report_id: u64, settles_to: Baseline) {
        if self.reports.len() == MAX_UNSETTLED {
            self.reports.pop_front();
        }
        self.reports.push_back((report_id, settles_to));
    }

    /// Forgets everything: a report settled (it covers the older ones), or the baseline was
    /// rebased and the remembered ones no longer compare with it.
    pub(crate) fn clear(&mut self) {
        self.reports.clear();
    }

    /// A late verdict for `report_id`: when accepted and remembered, the baseline to settle to.
    /// Reports up to it are forgotten either way (a later one may still be accepted).
    pub(crate) fn late(&mut self, report_id: u64, accepted: bool) -> Option<Baseline> {
        let at = self.reports.iter().position(|(id, _)| *id == report_id)?;
        let (_, baseline) = self.reports.drain(..=at).next_back()?;
        accepted.then_some(baseline)
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

    fn base(n: u64) -> Baseline {
        let counters = [(
            "eth0".to_string(),
            crate::collect::Counters {
                bytes_in: n,
                ..Default::default()
            },
        )]
        .into();
        Baseline::new(Some("boot"), &counters)
    }

    #[test]
    fn a_late_acceptance_settles_its_report_and_forgets_older_ones() {
        let mut u = Unsettled::default();
        for id in 1..=6 {
            u.remember(id, base(id * 100));
        }
        // Only the newest MAX_UNSETTLED are kept.
        assert_eq!(u.late(1, true), None);
        assert_eq!(u.late(4, true), Some(base(400)));
        assert_eq!(u.late(3, true), None, "older than a settled one");
        // A late rejection settles nothing but forgets up to it.
        assert_eq!(u.late(5, false), None);
        assert_eq!(u.late(5, true), None);
        assert_eq!(u.late(6, true), Some(base(600)));
        u.remember(7, base(700));
        u.clear();
        assert_eq!(u.late(7, true), None);
    }

    #[test]
    fn auto_settles_on_puback_until_the_first_verdict_and_never_after() {
        let mut v = Verdicts::new(Backend::Auto, false);
        assert!(v.settles(&Outcome::Acked));
        assert!(!v.settles(&Outcome::NotDelivered("down".into())));
        assert!(v.heard(), "the first verdict is news");
        assert!(!v.heard());
        assert!(v.answering());
        // However long the backend stays silent, a PUBACK never settles again.
        for _ in 0..100 {
            assert!(!v.settles(&Outcome::Acked));
        }
        assert!(!v.settles(&rejected()));
        assert!(v.settles(&Outcome::Accepted));
        // Learned by an earlier agent (the state directory).
        assert!(!Verdicts::new(Backend::Auto, true).settles(&Outcome::Acked));
    }

    #[test]
    fn verdicts_and_none_do_not_depend_on_what_was_heard() {
        for answering in [false, true] {
            let mut v = Verdicts::new(Backend::Verdicts, answering);
            assert!(!v.settles(&Outcome::Acked));
            assert!(v.settles(&Outcome::Accepted));
            let mut n = Verdicts::new(Backend::None, answering);
            assert!(n.settles(&Outcome::Acked));
            assert!(n.settles(&Outcome::Accepted));
            assert!(!n.settles(&rejected()));
            assert!(!n.settles(&Outcome::NotDelivered("down".into())));
        }
    }
}
