//! What detect-fleet evaluates of each loaded profile, in its own terms (issue #17 item 5):
//! `check-config` prints it and `run` logs it, instead of the agent's "on the device" wording.

use detect::profile::{Behavior, Profile};

/// Why detect-fleet does not evaluate `b`, or `None` when it does (static rules, and
/// statistical ones once a window's percentile is known).
pub fn not_evaluated(b: &Behavior) -> Option<String> {
    if b.rule.is_some() {
        return None;
    }
    let criteria = b.json.get("criteria");
    Some(match criteria {
        None => "no criteria: the metric is only retained, nothing evaluates it".to_string(),
        Some(c) if c.get("mlDetectionConfig").is_some() => {
            "ML Detect (mlDetectionConfig): detect-fleet trains no model".to_string()
        }
        Some(_) => format!(
            "{} is a cloud-side metric: the broker measures it, detect-fleet does not",
            b.metric
        ),
    })
}

/// One line per profile: what detect-fleet evaluates and what it does not, and why.
pub fn describe(p: &Profile) -> Vec<String> {
    let (on, off): (Vec<&Behavior>, Vec<&Behavior>) =
        p.behaviors.iter().partition(|b| not_evaluated(b).is_none());
    let names = |list: &[&Behavior]| {
        list.iter()
            .map(|b| b.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut out = vec![if on.is_empty() {
        format!(
            "warning: profile {}: detect-fleet evaluates none of its {} behaviors: it can never alarm",
            p.name,
            p.behaviors.len()
        )
    } else {
        format!("profile {}: detect-fleet evaluates {}", p.name, names(&on))
    }];
    for b in off {
        let why = not_evaluated(b).unwrap_or_default();
        out.push(format!(
            "  behavior {}: not evaluated by detect-fleet: {why}",
            b.name
        ));
    }
    out
}
