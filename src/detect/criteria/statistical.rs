//! The statistical criterion (detect-rules §4.8): an operator against a percentile of the
//! fleet's values. The threshold is a value handed in by whoever computes it; keeps no state.

use super::static_threshold::{Judgement, Reference, judge};
use crate::detect::metrics::Datapoint;
use crate::detect::operators::Operator;

/// `comparisonOperator` with `statisticalThreshold`.
#[derive(Debug, Clone)]
pub struct StatisticalThreshold {
    pub operator: Operator,
    /// N of the `statistic` `pN` (0–100).
    pub percentile: f64,
    /// This window's threshold, set by the caller that computes percentiles (the fleet);
    /// `None` (always on the device): the behavior is not evaluated.
    pub threshold: Option<f64>,
}

impl StatisticalThreshold {
    /// Does `dp` violate the criterion with its threshold? `None` without a threshold. A count
    /// is compared with the threshold rounded up, a number with the threshold as it is.
    pub fn judge(&self, dp: &Datapoint, limit: usize) -> Option<Judgement> {
        let t = self.threshold?;
        let reference = match dp {
            Datapoint::Count(_) => Reference::Count(t.ceil() as u64),
            _ => Reference::Number(t),
        };
        Some(judge(self.operator, &reference, dp, limit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_threshold_is_needed_and_counts_compare_with_it_rounded_up() {
        let mut c = StatisticalThreshold {
            operator: Operator::GreaterThan,
            percentile: 90.0,
            threshold: None,
        };
        assert_eq!(c.judge(&Datapoint::Count(8), 1), None);
        c.threshold = Some(7.5);
        // 8 > ceil(7.5) = 8 is false: a violation, as with the static value {"count": 8}.
        assert_eq!(
            c.judge(&Datapoint::Count(8), 1).map(|j| j.violating),
            Some(true)
        );
        assert_eq!(
            c.judge(&Datapoint::Count(9), 1).map(|j| j.violating),
            Some(false)
        );
        assert_eq!(
            c.judge(&Datapoint::Number(8.0), 1).map(|j| j.violating),
            Some(false)
        );
    }
}
