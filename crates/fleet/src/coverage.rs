//! What detect-fleet evaluates of each loaded profile, in its own terms (issue #17 item 5):
//! `check-config` prints it and `run` logs it, instead of the agent's "on the device" wording.

use detect::MetricRef;
use detect::profile::{Behavior, Profile};

use crate::config::{BrokerSource, Config};
use crate::sources;
use crate::window::Dimensions;

/// What feeds cloud-side behaviors: `[broker] source` and `[[dimension]]` (issue #18).
pub struct Feeds {
    pub source: BrokerSource,
    pub dimensions: Dimensions,
}

impl Feeds {
    pub fn new(config: &Config) -> Feeds {
        Feeds {
            source: config.broker.source,
            dimensions: Dimensions::new(&config.dimension),
        }
    }
}

/// Why detect-fleet does not evaluate `b`, or `None` when it does (static rules, statistical
/// ones once a window's percentile is known, cloud-side ones its broker source feeds).
pub fn not_evaluated(b: &Behavior, feeds: &Feeds) -> Option<String> {
    if let Some(MetricRef::Cloud(c)) = b.rule.as_ref().map(|r| &r.metric) {
        let source = feeds.source.name();
        if !sources::feeds(feeds.source, c.metric) {
            return Some(format!(
                "{} is a cloud-side metric that [broker] source = {source:?} does not feed",
                b.metric
            ));
        }
        return match &c.dimension {
            Some(d) if !feeds.dimensions.has(&d.name) => Some(format!(
                "metricDimension {:?} is not defined by any [[dimension]]",
                d.name
            )),
            _ => None,
        };
    }
    if b.rule.is_some() {
        return None;
    }
    let criteria = b.json.get("criteria");
    Some(match criteria {
        None => "no criteria: the metric is only retained, nothing evaluates it".to_string(),
        Some(_) => format!(
            "{} is a cloud-side metric: the broker measures it, detect-fleet does not",
            b.metric
        ),
    })
}

/// What an evaluated cloud-side behavior misses from its source, or `None` (nats-server:
/// topic dimensions and publish/subscribe denials, docs/brokers.md).
pub fn partly(b: &Behavior, feeds: &Feeds) -> Option<String> {
    let Some(MetricRef::Cloud(c)) = b.rule.as_ref().map(|r| &r.metric) else {
        return None;
    };
    if feeds.source != BrokerSource::Nats || not_evaluated(b, feeds).is_some() {
        return None;
    }
    sources::nats_gaps(c.metric, c.dimension.is_some()).map(str::to_string)
}

/// One line per profile: what detect-fleet evaluates and what it does not, and why.
pub fn describe(p: &Profile, feeds: &Feeds) -> Vec<String> {
    let (on, off): (Vec<&Behavior>, Vec<&Behavior>) = p
        .behaviors
        .iter()
        .partition(|b| not_evaluated(b, feeds).is_none());
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
    for b in &on {
        if let Some(gap) = partly(b, feeds) {
            out.push(format!("  warning: behavior {}: {gap}", b.name));
        }
    }
    for b in off {
        let why = not_evaluated(b, feeds).unwrap_or_default();
        out.push(format!(
            "  behavior {}: not evaluated by detect-fleet: {why}",
            b.name
        ));
    }
    out
}
