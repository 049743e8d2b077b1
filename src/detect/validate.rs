//! The checks of detect-rules §2 on a parsed profile document, collecting every problem, and
//! the translation into `Profile`. Reads only the cidrsFile a behavior names (our extension).
//! Does not evaluate anything.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Map, Value};

use super::cidr::{Block, CidrSet, parse_block};
use super::metrics::{self, CLOUD_SIDE, CustomKind, DURATIONS, Kind, MetricRef};
use super::operators::Operator;
use super::profile::{Behavior, Problem, Profile, Reference, Rule, Warning};

const PROFILE_KEYS: [&str; 6] = [
    "securityProfileName",
    "securityProfileDescription",
    "behaviors",
    "additionalMetricsToRetain",
    "additionalMetricsToRetainV2",
    "metricsExportConfig",
];
/// Keys of `describe-security-profile` output and account-side settings: accepted, ignored.
const IGNORED_KEYS: [&str; 6] = [
    "securityProfileArn",
    "version",
    "creationDate",
    "lastModifiedDate",
    "alertTargets",
    "tags",
];
const BEHAVIOR_KEYS: [&str; 6] = [
    "name",
    "metric",
    "metricDimension",
    "criteria",
    "suppressAlerts",
    "exportMetric",
];
const CRITERIA_KEYS: [&str; 7] = [
    "comparisonOperator",
    "value",
    "statisticalThreshold",
    "durationSeconds",
    "consecutiveDatapointsToAlarm",
    "consecutiveDatapointsToClear",
    "mlDetectionConfig",
];
/// MetricValue fields (§2.4) and ours, `cidrsFile`.
const VALUE_KEYS: [&str; 7] = [
    "count",
    "ports",
    "cidrs",
    "number",
    "numbers",
    "strings",
    "cidrsFile",
];
const STATISTICS: [&str; 11] = [
    "p0", "p0.1", "p0.01", "p1", "p10", "p50", "p90", "p99", "p99.9", "p99.99", "p100",
];
const MAX_BEHAVIORS: usize = 100;
const MAX_VALUE_ELEMENTS: usize = 1000;
/// Cloud-side metrics a `TOPIC_FILTER` dimension may narrow (§3.3).
const DIMENSION_METRICS: [&str; 4] = [
    "aws:num-messages-sent",
    "aws:num-messages-received",
    "aws:message-byte-size",
    "aws:num-authorization-failures",
];

struct Ctx<'a> {
    path: &'a Path,
    behavior: Option<String>,
    problems: Vec<Problem>,
    warnings: Vec<Warning>,
}

impl Ctx<'_> {
    fn item(&self, field: &str, message: String) -> Problem {
        Problem {
            path: self.path.to_path_buf(),
            behavior: self.behavior.clone(),
            field: field.to_string(),
            message,
        }
    }

    fn err(&mut self, field: &str, message: impl Into<String>) {
        let p = self.item(field, message.into());
        self.problems.push(p);
    }

    fn warn(&mut self, field: &str, message: impl Into<String>) {
        let p = self.item(field, message.into());
        self.warnings.push(p);
    }

    /// Flags keys outside `known` (and not in `ignored`) as unknown.
    fn keys(&mut self, field: &str, obj: &Map<String, Value>, known: &[&str], ignored: &[&str]) {
        for k in obj.keys() {
            if !known.contains(&k.as_str()) && !ignored.contains(&k.as_str()) {
                let at = if field.is_empty() {
                    k.clone()
                } else {
                    format!("{field}.{k}")
                };
                self.err(&at, format!("unknown key (known: {})", known.join(", ")));
            }
        }
    }

    fn object<'v>(&mut self, field: &str, v: &'v Value) -> Option<&'v Map<String, Value>> {
        let o = v.as_object();
        if o.is_none() {
            self.err(field, "must be an object");
        }
        o
    }

    fn name(&mut self, field: &str, v: Option<&Value>, required: bool) -> Option<String> {
        match v {
            None if required => {
                self.err(field, "is required");
                None
            }
            None => None,
            Some(Value::String(s)) if is_name(s) => Some(s.clone()),
            Some(Value::String(s)) => {
                self.err(
                    field,
                    format!("{s:?} must be 1-128 characters of [a-zA-Z0-9:_-]"),
                );
                None
            }
            Some(_) => {
                self.err(field, "must be a string");
                None
            }
        }
    }

    fn boolean(&mut self, field: &str, v: Option<&Value>) -> bool {
        match v {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                self.err(field, "must be true or false");
                false
            }
        }
    }

    fn string_len(&mut self, field: &str, v: Option<&Value>, min: usize, max: usize) {
        match v {
            None => self.err(field, "is required"),
            Some(Value::String(s)) if (min..=max).contains(&s.chars().count()) => {}
            Some(Value::String(_)) => self.err(field, format!("must be {min}-{max} characters")),
            Some(_) => self.err(field, "must be a string"),
        }
    }
}

/// §2.5 names: 1–128 of `[a-zA-Z0-9:_-]`.
pub(super) fn is_name(s: &str) -> bool {
    (1..=128).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '_' | '-'))
}

/// Validates a whole profile document; every problem is collected.
pub(super) fn profile(path: &Path, root: &Value) -> Result<(Profile, Vec<Warning>), Vec<Problem>> {
    let mut cx = Ctx {
        path,
        behavior: None,
        problems: Vec::new(),
        warnings: Vec::new(),
    };
    let Some(obj) = cx.object("file", root) else {
        return Err(cx.problems);
    };
    cx.keys("", obj, &PROFILE_KEYS, &IGNORED_KEYS);
    let name = cx.name("securityProfileName", obj.get("securityProfileName"), true);
    if let Some(d) = obj.get("securityProfileDescription") {
        match d.as_str() {
            Some(s)
                if s.chars().count() <= 1000
                    && s.chars().all(|c| c.is_ascii_graphic() || c == ' ') => {}
            Some(_) => cx.err(
                "securityProfileDescription",
                "must be at most 1000 printable characters or spaces",
            ),
            None => cx.err("securityProfileDescription", "must be a string"),
        }
    }
    retained(&mut cx, obj);
    if let Some(m) = obj.get("metricsExportConfig")
        && let Some(m) = cx.object("metricsExportConfig", m)
    {
        cx.keys("metricsExportConfig", m, &["mqttTopic", "roleArn"], &[]);
        cx.string_len("metricsExportConfig.mqttTopic", m.get("mqttTopic"), 1, 512);
        cx.string_len("metricsExportConfig.roleArn", m.get("roleArn"), 20, 2048);
    }
    let mut behaviors = Vec::new();
    let mut elements = 0;
    match obj.get("behaviors") {
        None => {}
        Some(Value::Array(list)) => {
            if list.len() > MAX_BEHAVIORS {
                cx.err(
                    "behaviors",
                    format!(
                        "{} behaviors; at most {MAX_BEHAVIORS} are allowed",
                        list.len()
                    ),
                );
            }
            let mut names = BTreeSet::new();
            for (i, b) in list.iter().enumerate() {
                cx.behavior = Some(
                    b.get("name")
                        .and_then(Value::as_str)
                        .filter(|n| is_name(n))
                        .map_or_else(|| format!("behaviors[{i}]"), str::to_string),
                );
                if let Some(n) = b.get("name").and_then(Value::as_str)
                    && !names.insert(n.to_string())
                {
                    cx.err("name", "is used by another behavior of this profile");
                }
                if let Some((behavior, n)) = behavior(&mut cx, b) {
                    elements += n;
                    behaviors.push(behavior);
                }
            }
            cx.behavior = None;
        }
        Some(_) => cx.err("behaviors", "must be an array"),
    }
    if elements > MAX_VALUE_ELEMENTS {
        cx.err(
            "behaviors",
            format!(
                "{elements} value elements; at most {MAX_VALUE_ELEMENTS} per profile (use \"cidrsFile\" for large address lists)"
            ),
        );
    }
    match name {
        Some(name) if cx.problems.is_empty() => Ok((
            Profile {
                name,
                path: path.to_path_buf(),
                behaviors,
            },
            cx.warnings,
        )),
        _ => Err(cx.problems),
    }
}

fn retained(cx: &mut Ctx, obj: &Map<String, Value>) {
    if let Some(v) = obj.get("additionalMetricsToRetain") {
        let ok = v.as_array().is_some_and(|a| a.iter().all(Value::is_string));
        if !ok {
            cx.err(
                "additionalMetricsToRetain",
                "must be an array of metric names",
            );
        }
    }
    if let Some(v) = obj.get("additionalMetricsToRetainV2") {
        let Some(list) = v.as_array() else {
            cx.err("additionalMetricsToRetainV2", "must be an array");
            return;
        };
        for (i, m) in list.iter().enumerate() {
            let field = format!("additionalMetricsToRetainV2[{i}]");
            if let Some(m) = cx.object(&field, m) {
                cx.keys(
                    &field,
                    m,
                    &["metric", "metricDimension", "exportMetric"],
                    &[],
                );
                cx.string_len(&format!("{field}.metric"), m.get("metric"), 1, 128);
                cx.boolean(&format!("{field}.exportMetric"), m.get("exportMetric"));
            }
        }
    }
}

/// Where a behavior's metric lives.
enum Class {
    Device(&'static metrics::MetricSpec),
    Cloud { ml: bool },
    Custom,
}

/// One behavior; returns it with its number of value elements (§2.5), or `None` on problems.
fn behavior(cx: &mut Ctx, b: &Value) -> Option<(Behavior, usize)> {
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
    if let Some(d) = obj.get("metricDimension") {
        dimension(cx, d, metric.as_deref(), class.as_ref());
    }
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
                match out.evaluated {
                    Ok(r) => rule = r,
                    Err(why) => not_evaluated = Some(why),
                }
            }
        }
        (Some(_), None) => {}
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
    Some((
        Behavior {
            name: name?,
            metric: metric?,
            json: b.clone(),
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
    if let Some((_, ml)) = CLOUD_SIDE.iter().find(|(n, _)| *n == m) {
        return Some(Class::Cloud { ml: *ml });
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

fn dimension(cx: &mut Ctx, d: &Value, metric: Option<&str>, class: Option<&Class>) {
    if let Some(d) = cx.object("metricDimension", d) {
        cx.keys("metricDimension", d, &["dimensionName", "operator"], &[]);
        cx.name(
            "metricDimension.dimensionName",
            d.get("dimensionName"),
            true,
        );
        match d.get("operator").map(|o| o.as_str()) {
            None | Some(Some("IN" | "NOT_IN")) => {}
            _ => cx.err("metricDimension.operator", "must be \"IN\" or \"NOT_IN\""),
        }
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
}

struct CriteriaOut {
    /// `Ok(Some)`: evaluated; `Ok(None)`: problems were recorded; `Err`: loads, not evaluated.
    evaluated: Result<Option<Rule>, String>,
    elements: usize,
    digest: String,
}

fn criteria(cx: &mut Ctx, c: &Map<String, Value>, class: &Class, metric: &str) -> CriteriaOut {
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
        evaluated: Ok(None),
        elements: 0,
        digest: String::new(),
    };
    if let Some(ml) = c.get("mlDetectionConfig") {
        ml_config(cx, c, ml, class, metric);
        out.evaluated =
            Err("ML Detect (mlDetectionConfig) needs a model trained on the fleet (§5)".into());
        return out;
    }
    if let Some(st) = c.get("statisticalThreshold") {
        statistical(cx, c, st, operator, duration);
        if let Class::Custom = class
            && operator.is_some_and(|o| !o.is_numeric())
        {
            cx.err(
                "criteria.comparisonOperator",
                "a custom number metric takes lt, lte, gt or gte",
            );
        }
        out.evaluated = Err("statisticalThreshold needs the fleet's percentile (§4.8)".into());
        return out;
    }
    let Some(operator) = operator else {
        if !c.contains_key("comparisonOperator") {
            cx.err(
                "criteria.comparisonOperator",
                "is required (or statisticalThreshold / mlDetectionConfig)",
            );
        }
        return out;
    };
    let Some(value) = c.get("value") else {
        cx.err(
            "criteria.value",
            "is required with a static comparisonOperator",
        );
        return out;
    };
    let Some((field, raw)) = value_field(cx, value) else {
        return out;
    };
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
                return out;
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
        Class::Cloud { .. } => {
            let cidr = metric == "aws:source-ip-address";
            let kind = if cidr { Kind::CidrSet } else { Kind::Count };
            (kind.operators(), kind.value_field(), !cidr, None)
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
    let Some((reference, elements, digest)) = reference(cx, field, raw) else {
        return out;
    };
    out.elements = elements;
    out.digest = digest;
    match metric_ref {
        None => {
            out.evaluated = Err(format!(
                "{metric} is a cloud-side metric (§3.3), measured by the broker"
            ));
        }
        Some(metric) if field_ok => {
            out.evaluated = Ok(Some(Rule {
                metric,
                operator,
                reference,
                duration_secs: duration,
                to_alarm,
                to_clear,
            }))
        }
        Some(_) => {}
    }
    out
}

fn ml_config(cx: &mut Ctx, c: &Map<String, Value>, ml: &Value, class: &Class, metric: &str) {
    if let Some(m) = cx.object("criteria.mlDetectionConfig", ml) {
        cx.keys("criteria.mlDetectionConfig", m, &["confidenceLevel"], &[]);
        match m.get("confidenceLevel").and_then(Value::as_str) {
            Some("LOW" | "MEDIUM" | "HIGH") => {}
            _ => cx.err(
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
        Class::Cloud { ml } => *ml,
        Class::Custom => true, // inferred to be of type number (the only ML type, §3.2)
    };
    if !capable {
        cx.err(
            "criteria.mlDetectionConfig",
            format!("ML Detect does not support {metric} (§5)"),
        );
    }
}

fn statistical(
    cx: &mut Ctx,
    c: &Map<String, Value>,
    st: &Value,
    operator: Option<Operator>,
    duration: Option<u64>,
) {
    if let Some(s) = cx.object("criteria.statisticalThreshold", st) {
        cx.keys("criteria.statisticalThreshold", s, &["statistic"], &[]);
        match s.get("statistic").and_then(Value::as_str) {
            Some(p) if STATISTICS.contains(&p) => {}
            _ => cx.err(
                "criteria.statisticalThreshold.statistic",
                format!("must be one of {}", STATISTICS.join(", ")),
            ),
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
}

/// The one field of a `value` object.
fn value_field<'v>(cx: &mut Ctx, value: &'v Value) -> Option<(&'v str, &'v Value)> {
    let obj = cx.object("criteria.value", value)?;
    cx.keys("criteria.value", obj, &VALUE_KEYS, &[]);
    let fields: Vec<(&str, &Value)> = obj
        .iter()
        .filter(|(k, _)| VALUE_KEYS.contains(&k.as_str()))
        .map(|(k, v)| (k.as_str(), v))
        .collect();
    match fields.as_slice() {
        [one] => Some(*one),
        [] => {
            cx.err(
                "criteria.value",
                format!("needs one of {}", VALUE_KEYS.join(", ")),
            );
            None
        }
        _ => {
            cx.err("criteria.value", "must hold exactly one field");
            None
        }
    }
}

/// Parses a value field; returns it with its element count (§2.5; cidrsFile entries are ours and
/// not counted) and a digest of file contents for the fingerprint.
fn reference(cx: &mut Ctx, field: &str, raw: &Value) -> Option<(Reference, usize, String)> {
    let at = format!("criteria.value.{field}");
    let list = |cx: &mut Ctx| -> Option<&Vec<Value>> {
        let l = raw.as_array();
        if l.is_none() {
            cx.err(&at, "must be an array");
        }
        l
    };
    let before = cx.problems.len();
    let out = match field {
        "count" => match raw.as_u64() {
            Some(n) => (Reference::Count(n), 1),
            None => {
                cx.err(&at, format!("{raw} must be an integer >= 0"));
                return None;
            }
        },
        "number" => match raw.as_f64() {
            Some(x) => (Reference::Number(x), 1),
            None => {
                cx.err(&at, format!("{raw} must be a number"));
                return None;
            }
        },
        "ports" => {
            let l = list(cx)?;
            let mut set = BTreeSet::new();
            for (i, p) in l.iter().enumerate() {
                match p.as_u64().filter(|p| *p <= 65535) {
                    Some(p) => {
                        set.insert(p as u16);
                    }
                    None => cx.err(&format!("{at}[{i}]"), format!("{p} is not a port 0-65535")),
                }
            }
            (Reference::Ports(set), l.len())
        }
        "cidrs" => {
            let l = list(cx)?;
            let mut blocks = Vec::with_capacity(l.len());
            for (i, c) in l.iter().enumerate() {
                match c.as_str().map(cidr_entry) {
                    Some(Ok(b)) => blocks.push(b),
                    Some(Err(e)) => cx.err(&format!("{at}[{i}]"), e),
                    None => cx.err(&format!("{at}[{i}]"), "must be a string"),
                }
            }
            (
                Reference::Cidrs(Arc::new(CidrSet::from_blocks(blocks))),
                l.len(),
            )
        }
        "numbers" => {
            let l = list(cx)?;
            let mut xs = Vec::with_capacity(l.len());
            for (i, x) in l.iter().enumerate() {
                match x.as_f64() {
                    Some(x) => xs.push(x),
                    None => cx.err(&format!("{at}[{i}]"), format!("{x} must be a number")),
                }
            }
            (Reference::Numbers(xs), l.len())
        }
        "strings" => {
            let l = list(cx)?;
            let mut set = BTreeSet::new();
            for (i, s) in l.iter().enumerate() {
                match s.as_str() {
                    Some(s) => {
                        set.insert(s.to_string());
                    }
                    None => cx.err(&format!("{at}[{i}]"), "must be a string"),
                }
            }
            (Reference::Strings(set), l.len())
        }
        "cidrsFile" => {
            let Some(p) = raw.as_str() else {
                cx.err(&at, "must be a path");
                return None;
            };
            let set = cidrs_file(cx, &at, &resolve(cx.path, p))?;
            let digest = format!("{:016x}", set.digest());
            return Some((Reference::Cidrs(Arc::new(set)), 0, digest));
        }
        _ => return None,
    };
    (cx.problems.len() == before).then_some((out.0, out.1, String::new()))
}

/// §2.4: 2–43 characters of `[a-fA-F0-9:./]`, and a CIDR or address (inferred).
fn cidr_entry(s: &str) -> Result<Block, String> {
    let chars_ok = (2..=43).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_hexdigit() || matches!(c, ':' | '.' | '/'));
    if !chars_ok {
        return Err(format!("{s:?} must be 2-43 characters of [a-fA-F0-9:./]"));
    }
    parse_block(s)
}

/// A relative cidrsFile path is relative to the profile file's directory.
fn resolve(profile: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    match profile.parent() {
        Some(dir) if p.is_relative() => dir.join(p),
        _ => p.to_path_buf(),
    }
}

/// Our extension: one CIDR or address per line, `#` starts a comment, blank lines skipped.
/// Every bad line is named (file:line), at most 20 of them.
fn cidrs_file(cx: &mut Ctx, at: &str, file: &Path) -> Option<CidrSet> {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => {
            cx.err(at, format!("cannot read {}: {e}", file.display()));
            return None;
        }
    };
    let mut blocks = Vec::new();
    let mut bad = 0;
    for (n, line) in text.lines().enumerate() {
        let entry = line.split('#').next().unwrap_or("").trim();
        if entry.is_empty() {
            continue;
        }
        match parse_block(entry) {
            Ok(b) => blocks.push(b),
            Err(e) => {
                bad += 1;
                if bad <= 20 {
                    cx.err(at, format!("{}:{}: {e}", file.display(), n + 1));
                }
            }
        }
    }
    if bad > 20 {
        cx.err(
            at,
            format!("{}: {} more bad lines", file.display(), bad - 20),
        );
    }
    (bad == 0).then(|| CidrSet::from_blocks(blocks))
}
