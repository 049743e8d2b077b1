//! One behavior (detect-rules §2.2): keys, name, metric class (device-side, cloud-side,
//! custom), dimension, and its fingerprint. Criteria are checked in `criteria.rs`.

use std::sync::Arc;

use serde_json::Value;

use super::context::Ctx;
use super::criteria::{Class, criteria};
use crate::metrics::{self, CLOUD_SIDE, CloudMetric, Dimension, MetricRef};
use crate::profile::model::{Behavior, Rule, fingerprint_of};
use protocol::keys::is_name;

const BEHAVIOR_KEYS: [&str; 6] = [
    "name",
    "metric",
    "metricDimension",
    "criteria",
    "suppressAlerts",
    "exportMetric",
];
/// Cloud-side metrics a `TOPIC_FILTER` dimension may narrow (§3.3).
const DIMENSION_METRICS: [&str; 4] = [
    "aws:num-messages-sent",
    "aws:num-messages-received",
    "aws:message-byte-size",
    "aws:num-authorization-failures",
];

/// One behavior; returns it with its number of value elements (§2.5), or `None` on problems.
pub(super) fn behavior(cx: &mut Ctx, b: &Value) -> Option<(Behavior, usize)> {
    let before = cx.problems.len();
    let obj = cx.object("behavior", b)?;
    cx.keys("", obj, &BEHAVIOR_KEYS, &[]);
    let name = cx.name("name", obj.get("name"), true);
    let metric = match obj.get("metric") {
        None => {
            cx.err(
                "metric",
                "is required (a behavior without a metric evaluates nothing)",
            );
            None
        }
        Some(Value::String(m)) => Some(m.clone()),
        Some(_) => {
            cx.err("metric", "must be a string");
            None
        }
    };
    let class = metric.as_deref().and_then(|m| classify(cx, m));
    let suppress_alerts = cx.boolean("suppressAlerts", obj.get("suppressAlerts"));
    cx.boolean("exportMetric", obj.get("exportMetric"));
    let dim = obj
        .get("metricDimension")
        .and_then(|d| dimension(cx, d, metric.as_deref(), class.as_ref()));
    let mut not_evaluated = None;
    let mut rule = None;
    let mut elements = 0;
    let mut digest = String::new();
    match (obj.get("criteria"), &class) {
        (None, _) => {
            not_evaluated =
                Some("no criteria: the metric is retained, nothing is evaluated (§4.9)".to_string())
        }
        (Some(c), Some(class)) => {
            if let Some(c) = cx.object("criteria", c) {
                let out = criteria(cx, c, class, metric.as_deref().unwrap_or(""));
                elements = out.elements;
                digest = out.digest;
                rule = out.rule;
                not_evaluated = out.not_evaluated;
            }
        }
        (Some(_), None) => {}
    }
    if let Some(Rule {
        metric: MetricRef::Cloud(c),
        ..
    }) = &mut rule
    {
        c.dimension = dim;
    }
    if let Some(why) = &not_evaluated {
        cx.warn("criteria", format!("not evaluated on the device: {why}"));
    }
    if cx.problems.len() > before {
        return None;
    }
    let pick = |k: &str| obj.get(k).map_or(String::new(), Value::to_string);
    let crit = |k: &str| {
        obj.get("criteria")
            .and_then(|c| c.get(k))
            .map_or(String::new(), Value::to_string)
    };
    let fingerprint = [
        pick("metric"),
        pick("metricDimension"),
        crit("comparisonOperator"),
        crit("value"),
        digest,
        crit("statisticalThreshold"),
        crit("mlDetectionConfig"),
        crit("durationSeconds"),
    ]
    .join("|");
    let fingerprint = fingerprint_of(&fingerprint);
    Some((
        Behavior {
            name: name?,
            metric: metric?,
            json: Arc::new(b.clone()),
            suppress_alerts,
            rule,
            not_evaluated,
            fingerprint,
        },
        elements,
    ))
}

fn classify(cx: &mut Ctx, m: &str) -> Option<Class> {
    if let Some(spec) = metrics::spec(m) {
        return Some(Class::Device(spec));
    }
    if let (Some(metric), Some((_, ml))) = (
        CloudMetric::from_name(m),
        CLOUD_SIDE.iter().find(|(n, _)| *n == m),
    ) {
        return Some(Class::Cloud { ml: *ml, metric });
    }
    if m.starts_with("aws:") {
        cx.err(
            "metric",
            format!("{m:?} is not an AWS IoT Device Defender metric"),
        );
        return None;
    }
    if !is_name(m) {
        cx.err(
            "metric",
            format!("custom metric name {m:?} must be 1-128 characters of [a-zA-Z0-9:_-]"),
        );
        return None;
    }
    Some(Class::Custom)
}

/// `metricDimension`: the dimension it names (defined in the fleet's config) and whether
/// it is `NOT_IN` (`IN` when absent).
fn dimension(
    cx: &mut Ctx,
    d: &Value,
    metric: Option<&str>,
    class: Option<&Class>,
) -> Option<Dimension> {
    let mut out = None;
    if let Some(d) = cx.object("metricDimension", d) {
        cx.keys("metricDimension", d, &["dimensionName", "operator"], &[]);
        let name = cx.name(
            "metricDimension.dimensionName",
            d.get("dimensionName"),
            true,
        );
        let not_in = match d.get("operator").map(|o| o.as_str()) {
            None | Some(Some("IN")) => false,
            Some(Some("NOT_IN")) => true,
            _ => {
                cx.err("metricDimension.operator", "must be \"IN\" or \"NOT_IN\"");
                false
            }
        };
        out = name.map(|name| Dimension { name, not_in });
    }
    let topic_metric = metric.is_some_and(|m| DIMENSION_METRICS.contains(&m));
    if class.is_some() && !topic_metric {
        cx.err(
            "metricDimension",
            format!(
                "only the topic-scoped cloud-side metrics take a dimension ({})",
                DIMENSION_METRICS.join(", ")
            ),
        );
    }
    out
}
