//! The statistical criterion (detect-rules §4.8): an operator against a percentile of the
//! fleet's values. The threshold is a value handed in by whoever computes it; keeps no state.

use super::static_threshold::Reference;
use crate::operators::Operator;

/// `comparisonOperator` with `statisticalThreshold`.
#[derive(Debug, Clone)]
pub struct StatisticalThreshold {
    pub operator: Operator,
    /// The `statistic` as written: `pN`, N of 0–100 (validated by the loader).
    pub statistic: &'static str,
    /// This window's threshold, as datapoints are compared with it; `None` (always on the
    /// device): the behavior is not evaluated.
    threshold: Option<Threshold>,
}

/// A handed-in threshold as the static value it stands for: `{"count": n}` or `{"number": x}`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Threshold {
    Count(u64),
    Number(f64),
}

impl Threshold {
    /// The static value (a count or a number: nothing to free, see `Criterion::judge`).
    pub fn reference(self) -> Reference {
        match self {
            Threshold::Count(n) => Reference::Count(n),
            Threshold::Number(x) => Reference::Number(x),
        }
    }
}

impl StatisticalThreshold {
    /// Without a threshold until one is handed in.
    pub fn new(operator: Operator, statistic: &'static str) -> Self {
        StatisticalThreshold {
            operator,
            statistic,
            threshold: None,
        }
    }

    /// N of the `statistic` `pN`.
    pub fn percentile(&self) -> Option<f64> {
        self.statistic.strip_prefix('p')?.parse().ok()
    }

    /// Hands in this window's threshold (the caller computes percentiles: the fleet). `None`,
    /// or a value that is not a finite number, leaves the behavior unevaluated. For a metric
    /// whose datapoints are counts, the threshold compares rounded up (as `{"count": ⌈t⌉}`);
    /// for a number metric, as it is (`{"number": t}`).
    pub fn set_threshold(&mut self, threshold: Option<f64>, counts: bool) {
        self.threshold = threshold.filter(|t| t.is_finite()).map(|t| {
            if counts {
                Threshold::Count(t.ceil() as u64)
            } else {
                Threshold::Number(t)
            }
        });
    }

    /// The value datapoints are compared with, once a threshold is handed in.
    pub fn threshold(&self) -> Option<Threshold> {
        self.threshold
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::criteria::static_threshold::judge;
    use crate::metrics::Datapoint;

    #[test]
    fn a_count_compares_with_the_threshold_rounded_up_a_number_as_it_is() {
        let mut c = StatisticalThreshold::new(Operator::GreaterThan, "p90");
        assert_eq!(c.percentile(), Some(90.0));
        assert!(c.threshold().is_none());
        let violates = |c: &StatisticalThreshold, dp: Datapoint| {
            judge(c.operator, &c.threshold().unwrap().reference(), &dp, 1).violating
        };
        c.set_threshold(Some(7.5), true);
        // 8 > ⌈7.5⌉ = 8 is false: a violation, as with the static value {"count": 8}.
        assert!(violates(&c, Datapoint::Count(8)));
        assert!(!violates(&c, Datapoint::Count(9)));
        c.set_threshold(Some(7.5), false);
        assert!(!violates(&c, Datapoint::Number(8.0)));
        c.set_threshold(Some(f64::INFINITY), false);
        assert!(c.threshold().is_none(), "not a value a profile could hold");
        c.set_threshold(None, true);
        assert!(c.threshold().is_none());
    }
}
