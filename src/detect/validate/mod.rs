//! The checks of detect-rules §2 on a parsed profile document, collecting every problem, and
//! the translation into `Profile`: profile-level keys here, one behavior in `behavior.rs`, its
//! criteria in `criteria.rs`, its value (and our cidrsFile) in `value.rs`. Evaluates nothing.

mod behavior;
mod criteria;
mod value;

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::{Map, Value};

use super::profile::{Problem, Profile, Warning};

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
const MAX_BEHAVIORS: usize = 100;
const MAX_VALUE_ELEMENTS: usize = 1000;

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

pub(super) use crate::report::keys::is_name;

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
                if let Some((behavior, n)) = behavior::behavior(&mut cx, b) {
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
