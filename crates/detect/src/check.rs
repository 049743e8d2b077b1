//! The one-sample check of `dump --profile`: every behavior judged on one observation
//! without state, with the offending elements. Does not raise alarms (see `engine.rs`).

use super::criteria::Criterion;
use super::event::MetricValue;
use super::metrics::MetricRef;
use super::observation::Observation;
use super::profile::Profile;

/// One behavior judged on one sample (`dump --profile`).
#[derive(Debug, Clone, PartialEq)]
pub struct BehaviorCheck {
    pub profile: String,
    pub behavior: String,
    pub metric: String,
    pub outcome: CheckOutcome,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CheckOutcome {
    Normal {
        value: MetricValue,
    },
    /// `offending`: the ports/addresses/elements outside (or inside) the set, or the value.
    Violating {
        value: MetricValue,
        offending: Vec<String>,
    },
    NoDatapoint {
        why: String,
    },
    NotEvaluated {
        why: String,
    },
}

/// How many offending elements a check lists.
const CHECK_OFFENDING_MAX: usize = 20;

/// Judges every behavior of `profiles` on this one observation, without state: traffic metrics
/// use its own delta (one sample has no window), datapoint counts are not applied.
pub fn check<O: Observation + ?Sized>(profiles: &[Profile], observation: &O) -> Vec<BehaviorCheck> {
    let mut out = Vec::new();
    for profile in profiles {
        for behavior in &profile.behaviors {
            // A cloud-side rule is the fleet's (from broker windows): not evaluated here.
            let rule = behavior
                .evaluated_rule()
                .filter(|r| !matches!(r.metric, MetricRef::Cloud(_)));
            let outcome = match rule {
                None => CheckOutcome::NotEvaluated {
                    why: behavior.not_evaluated.clone().unwrap_or_default(),
                },
                Some(rule) if matches!(rule.criterion, Criterion::Learned(_)) => {
                    CheckOutcome::NotEvaluated {
                        why: "ML Detect: judged by this device's learned model, not one sample"
                            .into(),
                    }
                }
                Some(rule) => match observation.datapoint(&rule.metric) {
                    None => CheckOutcome::NoDatapoint {
                        why: observation.missing(&rule.metric),
                    },
                    Some(dp) => {
                        let j = rule.criterion.judge(&dp, CHECK_OFFENDING_MAX);
                        let value = MetricValue::from(&dp);
                        if j.violating {
                            CheckOutcome::Violating {
                                value,
                                offending: j.offending,
                            }
                        } else {
                            CheckOutcome::Normal { value }
                        }
                    }
                },
            };
            out.push(BehaviorCheck {
                profile: profile.name.clone(),
                behavior: behavior.name.clone(),
                metric: behavior.metric.clone(),
                outcome,
            });
        }
    }
    out
}
