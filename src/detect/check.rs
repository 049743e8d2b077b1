//! The one-sample check of `dump --profile`: every behavior judged on one report without
//! state, with the offending elements. Does not raise alarms (see `engine.rs`).

use super::event::MetricValue;
use super::metrics::{self, Kind, MetricRef};
use super::operators::judge;
use super::profile::Profile;
use crate::report::Report;

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

/// Judges every behavior of `profiles` on this one report, without state: traffic metrics use
/// the report's own delta (one sample has no window), datapoint counts are not applied.
pub fn check(profiles: &[Profile], report: &Report) -> Vec<BehaviorCheck> {
    let mut out = Vec::new();
    for profile in profiles {
        for behavior in &profile.behaviors {
            let outcome = match &behavior.rule {
                None => CheckOutcome::NotEvaluated {
                    why: behavior.not_evaluated.clone().unwrap_or_default(),
                },
                Some(rule) => match metrics::extract(&rule.metric, report) {
                    None => CheckOutcome::NoDatapoint {
                        why: missing_why(&rule.metric),
                    },
                    Some(dp) => {
                        let j = judge(rule.operator, &rule.reference, &dp, CHECK_OFFENDING_MAX);
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

fn missing_why(metric: &MetricRef) -> String {
    match metric {
        MetricRef::Aws(spec) if spec.kind == Kind::Traffic => {
            "no network_stats in this sample (a delta needs two samples: dump --delta)".into()
        }
        MetricRef::Aws(spec) => format!("the report has no section for {}", spec.name),
        MetricRef::Custom { name, kind } => {
            format!(
                "no custom metric {name:?} of type {} in the report",
                kind.name()
            )
        }
    }
}
