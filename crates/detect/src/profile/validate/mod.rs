//! The checks of detect-rules §2 on a parsed profile document, collecting every problem, and
//! the translation into `Profile`: profile-level keys here, one behavior in `behavior.rs`, its
//! criteria in `criteria.rs`, its value (and our cidrsFile) in `value.rs`, the problem list in
//! `context.rs`. Evaluates nothing.

mod behavior;
mod context;
mod criteria;
mod value;

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::{Map, Value};

use crate::profile::model::{Problem, Profile, Warning};
use context::Ctx;
use protocol::keys::is_name;

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

/// Validates a whole profile document; every problem is collected.
pub(super) fn profile(path: &Path, root: &Value) -> Result<(Profile, Vec<Warning>), Vec<Problem>> {
    let mut cx = Ctx::new(path);
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
