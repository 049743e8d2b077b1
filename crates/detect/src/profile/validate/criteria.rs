//! A behavior's criteria (detect-rules §2.3, §2.6): datapoint counts, durations, operator vs
//! metric type, statistical and ML rules, and the `Rule` the engine evaluates. Values: `value.rs`.

use serde_json::{Map, Value};

use super::context::Ctx;
use super::value::{reference, value_field};
use crate::criteria::{Criterion, Learned, StaticThreshold, StatisticalThreshold};
use crate::learn::Confidence;
use crate::metrics::{CloudMetric, CloudRef, CustomKind, DURATIONS, Kind, MetricRef, MetricSpec};
use crate::operators::Operator;
use crate::profile::model::Rule;

const CRITERIA_KEYS: [&str; 7] = [
    "comparisonOperator",
    "value",
    "statisticalThreshold",
    "durationSeconds",
    "consecutiveDatapointsToAlarm",
    "consecutiveDatapointsToClear",
    "mlDetectionConfig",
];
const STATISTICS: [&str; 11] = [
    "p0", "p0.1", "p0.01", "p1", "p10", "p50", "p90", "p99", "p99.9", "p99.99", "p100",
];

/// Where a behavior's metric lives.
pub(super) enum Class {
    Device(&'static MetricSpec),
    Cloud { ml: bool, metric: CloudMetric },
    Custom,
}

pub(super) struct CriteriaOut {
    /// `None` when problems were recorded or nothing can evaluate it.
    pub(super) rule: Option<Rule>,
    /// Why the device does not evaluate it (a warning), when it loads.
    pub(super) not_evaluated: Option<String>,
    pub(super) elements: usize,
    pub(super) digest: String,
}

pub(super) fn criteria(
    cx: &mut Ctx,
    c: &Map<String, Value>,
    class: &Class,
    metric: &str,
) -> CriteriaOut {
    cx.keys("criteria", c, &CRITERIA_KEYS, &[]);
    let count = |cx: &mut Ctx, key: &str| match c.get(key) {
        None => 1,
        Some(v) => match v.as_u64() {
            Some(n @ 1..=10) => n as u32,
            _ => {
                cx.err(&format!("criteria.{key}"), format!("{v} is outside 1-10"));
                1
            }
        },
    };
    let to_alarm = count(cx, "consecutiveDatapointsToAlarm");
    let to_clear = count(cx, "consecutiveDatapointsToClear");
    let duration = c.get("durationSeconds").map(|v| match v.as_u64() {
        Some(d) if DURATIONS.contains(&d) => d,
        _ => {
            cx.err(
                "criteria.durationSeconds",
                format!("{v} is not one of 300, 600, 900, 1800, 3600"),
            );
            0
        }
    });
    let operator = c.get("comparisonOperator").and_then(|v| {
        let op = v.as_str().and_then(Operator::from_name);
        if op.is_none() {
            cx.err(
                "criteria.comparisonOperator",
                format!(
                    "{v} is not one of {}",
                    Operator::ALL.map(Operator::name).join(", ")
                ),
            );
        }
        op
    });
    let mut out = CriteriaOut {
        rule: None,
        not_evaluated: None,
        elements: 0,
        digest: String::new(),
    };
    if let Some(ml) = c.get("mlDetectionConfig") {
        let level = ml_config(cx, c, ml, class, metric);
        let metric = match class {
            Class::Device(spec) if spec.ml => MetricRef::Aws(spec),
            Class::Custom => MetricRef::Custom {
                name: metric.to_string(),
                kind: CustomKind::Number,
            },
            // Learned per thing by the fleet from its 300 s windows (§5); a message size is
            // the window's largest (the model watches for rises).
            Class::Cloud {
                ml: true,
                metric: m,
            } => {
                out.not_evaluated = Some(cloud_side(metric));
                cloud_ref(*m, Operator::LessThanEquals, None)
            }
            _ => return out,
        };
        out.rule = level.map(|level| Rule {
            criterion: Criterion::Learned(Learned::new(level, &metric)),
            metric,
            duration_secs: None,
            to_alarm,
            to_clear,
        });
        return out;
    }
    let judged = match c.get("statisticalThreshold") {
        Some(st) => statistical_rule(cx, c, st, class, metric, operator, duration, &mut out),
        None => static_rule(cx, c, class, metric, operator, duration, &mut out),
    };
    if let Some((metric, criterion)) = judged {
        out.rule = Some(Rule {
            metric,
            criterion,
            duration_secs: duration,
            to_alarm,
            to_clear,
        });
    }
    out
}

/// A statistical criterion (§4.8): its metric and criterion when the fleet can evaluate it.
#[allow(clippy::too_many_arguments)]
fn statistical_rule(
    cx: &mut Ctx,
    c: &Map<String, Value>,
    st: &Value,
    class: &Class,
    metric: &str,
    operator: Option<Operator>,
    duration: Option<u64>,
    out: &mut CriteriaOut,
) -> Option<(MetricRef, Criterion)> {
    let statistic = statistical(cx, c, st, operator, duration);
    if let Class::Custom = class
        && operator.is_some_and(|o| !o.is_numeric())
    {
        cx.err(
            "criteria.comparisonOperator",
            "a custom number metric takes lt, lte, gt or gte",
        );
    }
    out.not_evaluated = Some(match class {
        Class::Cloud { .. } => cloud_side(metric),
        _ => "statisticalThreshold needs the fleet's percentile (§4.8)".into(),
    });
    // Numeric metrics only: counts and traffic, custom numbers (the type it implies).
    let metric = match class {
        Class::Device(spec) if matches!(spec.kind, Kind::Count | Kind::Traffic) => {
            MetricRef::Aws(spec)
        }
        Class::Cloud { metric, .. } if *metric != CloudMetric::SourceIp => {
            cloud_ref(*metric, operator?, duration)
        }
        Class::Custom => MetricRef::Custom {
            name: metric.to_string(),
            kind: CustomKind::Number,
        },
        _ => return None,
    };
    let criterion = StatisticalThreshold::new(operator?, statistic?);
    Some((metric, Criterion::Statistical(criterion)))
}

/// A static criterion (§2.3, §2.4): its metric and criterion when the device evaluates it.
fn static_rule(
    cx: &mut Ctx,
    c: &Map<String, Value>,
    class: &Class,
    metric: &str,
    operator: Option<Operator>,
    duration: Option<u64>,
    out: &mut CriteriaOut,
) -> Option<(MetricRef, Criterion)> {
    let Some(operator) = operator else {
        if !c.contains_key("comparisonOperator") {
            cx.err(
                "criteria.comparisonOperator",
                "is required (or statisticalThreshold / mlDetectionConfig)",
            );
        }
        return None;
    };
    let Some(value) = c.get("value") else {
        cx.err(
            "criteria.value",
            "is required with a static comparisonOperator",
        );
        return None;
    };
    let (field, raw) = value_field(cx, value)?;
    // What the metric takes: its kind's operators, value field, durations.
    let (operators, want_field, takes_duration, metric_ref): (
        &[Operator],
        &str,
        bool,
        Option<MetricRef>,
    ) = match class {
        Class::Device(spec) => (
            spec.kind.operators(),
            spec.kind.value_field(),
            spec.kind.takes_duration(),
            Some(MetricRef::Aws(spec)),
        ),
        Class::Custom => {
            let kind =
                CustomKind::from_value_field(if field == "cidrsFile" { "cidrs" } else { field });
            let Some(kind) = kind else {
                cx.err(
                        &format!("criteria.value.{field}"),
                        "a custom metric takes number, numbers, strings or cidrs (its type is inferred from the field)",
                    );
                return None;
            };
            (
                kind.operators(),
                kind.value_field(),
                kind == CustomKind::Number,
                Some(MetricRef::Custom {
                    name: metric.to_string(),
                    kind,
                }),
            )
        }
        Class::Cloud { metric: m, .. } => {
            let cidr = *m == CloudMetric::SourceIp;
            let kind = if cidr { Kind::CidrSet } else { Kind::Count };
            let cloud = cloud_ref(*m, operator, duration);
            (kind.operators(), kind.value_field(), !cidr, Some(cloud))
        }
    };
    if !operators.contains(&operator) {
        cx.err(
            "criteria.comparisonOperator",
            format!(
                "{} does not apply to {metric} (takes {})",
                operator.name(),
                operators
                    .iter()
                    .map(|o| o.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
    }
    let field_ok = field == want_field || (field == "cidrsFile" && want_field == "cidrs");
    if !field_ok {
        cx.err(
            &format!("criteria.value.{field}"),
            format!("{metric} takes value.{want_field}"),
        );
    }
    if duration.is_some() && !takes_duration {
        cx.err(
            "criteria.durationSeconds",
            format!("not allowed for the list metric {metric}"),
        );
    }
    let (reference, elements, digest) = reference(cx, field, raw)?;
    out.elements = elements;
    out.digest = digest;
    if let Class::Cloud { .. } = class {
        out.not_evaluated = Some(cloud_side(metric));
    }
    match metric_ref {
        None => None,
        Some(metric) if field_ok => Some((
            metric,
            Criterion::Static(StaticThreshold {
                operator,
                reference,
            }),
        )),
        Some(_) => None,
    }
}

/// Why the device does not evaluate a cloud-side behavior (the fleet does, from the broker).
fn cloud_side(metric: &str) -> String {
    format!("{metric} is a cloud-side metric (§3.3), measured by the broker")
}

/// A cloud-side rule's metric (§3.4): the window is `durationSeconds` or 300 s; a message
/// size is judged by the window's largest message when large values violate, else its
/// smallest. The dimension is set by the behavior (`metricDimension`).
fn cloud_ref(metric: CloudMetric, operator: Operator, duration: Option<u64>) -> MetricRef {
    MetricRef::Cloud(CloudRef {
        metric,
        window_secs: duration.filter(|d| *d > 0).unwrap_or(DURATIONS[0]),
        dimension: None,
        largest: matches!(operator, Operator::LessThan | Operator::LessThanEquals),
    })
}

/// Checks an ML criterion (§5); its confidence level when it is valid.
fn ml_config(
    cx: &mut Ctx,
    c: &Map<String, Value>,
    ml: &Value,
    class: &Class,
    metric: &str,
) -> Option<Confidence> {
    let mut level = None;
    if let Some(m) = cx.object("criteria.mlDetectionConfig", ml) {
        cx.keys("criteria.mlDetectionConfig", m, &["confidenceLevel"], &[]);
        level = m
            .get("confidenceLevel")
            .and_then(Value::as_str)
            .and_then(Confidence::from_name);
        match level {
            Some(_) => {}
            None => cx.err(
                "criteria.mlDetectionConfig.confidenceLevel",
                "is required: LOW, MEDIUM or HIGH",
            ),
        }
    }
    for k in [
        "comparisonOperator",
        "value",
        "statisticalThreshold",
        "durationSeconds",
    ] {
        if c.contains_key(k) {
            cx.err(
                &format!("criteria.{k}"),
                "not allowed with mlDetectionConfig",
            );
        }
    }
    let capable = match class {
        Class::Device(spec) => spec.ml,
        Class::Cloud { ml, .. } => *ml,
        Class::Custom => true, // inferred to be of type number (the only ML type, §3.2)
    };
    if !capable {
        cx.err(
            "criteria.mlDetectionConfig",
            format!("ML Detect does not support {metric} (§5)"),
        );
    }
    level
}

fn statistical(
    cx: &mut Ctx,
    c: &Map<String, Value>,
    st: &Value,
    operator: Option<Operator>,
    duration: Option<u64>,
) -> Option<&'static str> {
    let mut statistic = None;
    if let Some(s) = cx.object("criteria.statisticalThreshold", st) {
        cx.keys("criteria.statisticalThreshold", s, &["statistic"], &[]);
        let written = s.get("statistic").and_then(Value::as_str);
        statistic = STATISTICS.into_iter().find(|p| Some(*p) == written);
        if statistic.is_none() {
            cx.err(
                "criteria.statisticalThreshold.statistic",
                format!("must be one of {}", STATISTICS.join(", ")),
            );
        }
    }
    if c.contains_key("value") {
        cx.err("criteria.value", "not allowed with statisticalThreshold");
    }
    if duration.is_none() {
        cx.err(
            "criteria.durationSeconds",
            "is required with statisticalThreshold",
        );
    }
    match operator {
        Some(o) if o.is_numeric() => {}
        Some(o) => cx.err(
            "criteria.comparisonOperator",
            format!("{} cannot compare with a percentile", o.name()),
        ),
        None if !c.contains_key("comparisonOperator") => cx.err(
            "criteria.comparisonOperator",
            "is required with statisticalThreshold",
        ),
        None => {}
    }
    statistic
}
