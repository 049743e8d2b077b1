//! A behavior's criterion, one of a closed set (detect-rules §2.3, §5), one file each: `Static`,
//! `Statistical` (a percentile handed in) and `Learned` (a model the engine keeps, `learn/`).

pub mod learned;
pub mod number_set;
pub mod static_threshold;
pub mod statistical;

pub use learned::Learned;
pub use number_set::NumberSet;
pub use static_threshold::{Judgement, PortSet, Reference, StaticThreshold, judge};
pub use statistical::{StatisticalThreshold, Threshold};

use std::mem::ManuallyDrop;

use crate::metrics::Datapoint;
use crate::operators::Operator;

/// What a behavior's datapoints are judged against.
#[derive(Debug, Clone)]
pub enum Criterion {
    Static(StaticThreshold),
    Statistical(StatisticalThreshold),
    Learned(Learned),
}

impl Criterion {
    pub fn operator(&self) -> Operator {
        match self {
            Criterion::Static(c) => c.operator,
            Criterion::Statistical(c) => c.operator,
            Criterion::Learned(_) => Operator::GreaterThan, // the model watches for rises
        }
    }

    /// Can it judge now? A static criterion always; a statistical one once its threshold is
    /// handed in; a learned one always (its model decides whether it may alarm yet).
    pub fn ready(&self) -> bool {
        match self {
            Criterion::Static(_) | Criterion::Learned(_) => true,
            Criterion::Statistical(c) => c.threshold().is_some(),
        }
    }

    /// Does `dp` violate the criterion? A criterion that is not `ready` finds nothing. `limit`
    /// caps the offending elements listed (see `static_threshold::judge`). A learned criterion
    /// needs its model: the engine judges it (`Engine::evaluate`); here it finds nothing.
    pub fn judge(&self, dp: &Datapoint, limit: usize) -> Judgement {
        // A statistical threshold is a count or a number, which own nothing: not dropping it
        // keeps drop glue out of this function (the agent binary's size).
        let threshold;
        let (operator, reference) = match self {
            Criterion::Static(c) => (c.operator, &c.reference),
            Criterion::Statistical(c) => match c.threshold() {
                Some(t) => {
                    threshold = ManuallyDrop::new(t.reference());
                    (c.operator, &*threshold)
                }
                None => return Judgement::default(),
            },
            Criterion::Learned(_) => return Judgement::default(),
        };
        judge(operator, reference, dp, limit)
    }
}
