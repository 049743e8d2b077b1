//! Statistical thresholds across a profile's devices (detect-rules §4.8, with its inferred
//! choices): windows aligned to multiples of `durationSeconds` since the epoch; per device one
//! value per window (sum of deltas for bytes/packets, last value for gauges); the threshold is
//! the nearest-rank percentile of the previous complete window's values. The resolved
//! threshold turns the behavior into a static one (`value`), which the agent's `detect::Engine`
//! evaluates; its fingerprint and JSON stay the original's, so alarms survive new thresholds.
//! Reads and writes samples only through the store; no other I/O.

use std::collections::HashMap;
use std::path::Path;

use detect_agent::detect::metrics::{self, Datapoint, Kind, MetricRef};
use detect_agent::detect::{Behavior, Profile, profile};
use detect_agent::report::Report;
use serde_json::Value;

use crate::store::{Sample, Samples, StoreError};

/// One statistical behavior of a profile.
#[derive(Debug, Clone)]
struct Stat {
    index: usize,
    name: String,
    /// N of `pN`.
    percent: f64,
    window_ms: u64,
    metric: MetricRef,
    /// The behavior JSON with a placeholder `value`, to resolve.
    template: Value,
    /// The value key: `count` for `aws:` metrics, `number` for custom numbers.
    value_key: &'static str,
    /// `[fleet] duration_override_secs`: replaces `durationSeconds` once resolved.
    duration_override: Option<u64>,
}

#[derive(Default)]
pub struct Statistical {
    by_profile: HashMap<String, Vec<Stat>>,
    /// (profile, behavior, window start) → threshold (None: no population).
    thresholds: HashMap<(String, String, u64), Option<f64>>,
}

impl Statistical {
    /// Finds the statistical behaviors of `profiles`; a behavior the agent's loader refuses
    /// once resolved is skipped with a warning. `duration_override_secs` (`[fleet]
    /// duration_override_secs`, tests and demos) replaces every `durationSeconds` as the
    /// window length.
    pub fn new(profiles: &[Profile], duration_override_secs: Option<u64>) -> Statistical {
        let mut by_profile = HashMap::new();
        for p in profiles {
            let stats: Vec<Stat> = p
                .behaviors
                .iter()
                .enumerate()
                .filter_map(|(i, b)| stat(p, i, b, duration_override_secs))
                .collect();
            if !stats.is_empty() {
                by_profile.insert(p.name.clone(), stats);
            }
        }
        Statistical {
            by_profile,
            thresholds: HashMap::new(),
        }
    }

    /// This report's samples for the statistical behaviors of `profile`.
    pub fn samples(&self, profile: &str, thing: &str, report: &Report, now_ms: u64) -> Vec<Sample> {
        let Some(stats) = self.by_profile.get(profile) else {
            return Vec::new();
        };
        stats
            .iter()
            .filter_map(|s| {
                let value = match metrics::extract(&s.metric, report)? {
                    Datapoint::Count(n) => n as f64,
                    Datapoint::Number(x) if x >= 0.0 => x,
                    _ => return None, // negative custom values: no percentile (§4.8)
                };
                Some(Sample {
                    profile: profile.to_string(),
                    behavior: s.name.clone(),
                    window_start_ms: now_ms - now_ms % s.window_ms,
                    thing: thing.to_string(),
                    value,
                    sum: matches!(&s.metric, MetricRef::Aws(spec) if spec.kind == Kind::Traffic),
                })
            })
            .collect()
    }

    /// `profile` with each statistical behavior resolved against the previous complete
    /// window at `now_ms`; behaviors without a population stay unevaluated.
    pub fn resolve(
        &mut self,
        store: &mut dyn Samples,
        mut profile: Profile,
        now_ms: u64,
    ) -> Result<Profile, StoreError> {
        let Some(stats) = self.by_profile.get(&profile.name) else {
            return Ok(profile);
        };
        for s in stats {
            let current = now_ms - now_ms % s.window_ms;
            let Some(previous) = current.checked_sub(s.window_ms) else {
                continue;
            };
            let key = (profile.name.clone(), s.name.clone(), previous);
            let threshold = match self.thresholds.get(&key) {
                Some(t) => *t,
                None => {
                    let values = store.window(&profile.name, &s.name, previous)?;
                    let t = percentile(values, s.percent);
                    tracing::info!(profile = %profile.name, behavior = %s.name, window_start_ms = previous, threshold = ?t, "statistical threshold");
                    self.thresholds
                        .retain(|(p, b, _), _| !(p == &profile.name && b == &s.name));
                    self.thresholds.insert(key, t);
                    t
                }
            };
            if let Some(t) = threshold
                && let Some(b) = resolved(&profile, s, t)
            {
                profile.behaviors[s.index] = b;
            }
        }
        Ok(profile)
    }
}

/// `[fleet] duration_override_secs`: every behavior of `profile` that has a `durationSeconds`
/// is evaluated over `secs` instead (traffic sums of §4.4, statistical windows of §4.8). The
/// behavior's JSON and fingerprint stay as written, so events show the profile's value.
pub fn override_durations(profile: &mut Profile, secs: u64) {
    for b in &mut profile.behaviors {
        if let Some(rule) = &mut b.rule
            && rule.duration_secs.is_some()
        {
            rule.duration_secs = Some(secs);
        }
    }
}

fn stat(p: &Profile, index: usize, b: &Behavior, duration_override: Option<u64>) -> Option<Stat> {
    let criteria = b.json.get("criteria")?;
    let statistic = criteria
        .get("statisticalThreshold")?
        .get("statistic")?
        .as_str()?;
    let percent: f64 = statistic.strip_prefix('p')?.parse().ok()?;
    let duration = criteria.get("durationSeconds")?.as_u64()?;
    let window_ms = duration_override.unwrap_or(duration).checked_mul(1000)?;
    let mut template = b.json.clone();
    let c = template.get_mut("criteria")?.as_object_mut()?;
    c.remove("statisticalThreshold");
    let value_key = if b.metric.starts_with("aws:") {
        "count"
    } else {
        "number"
    };
    c.insert("value".into(), serde_json::json!({ value_key: 0 }));
    let mut s = Stat {
        index,
        name: b.name.clone(),
        percent,
        window_ms: window_ms.max(1),
        metric: MetricRef::Custom {
            name: String::new(),
            kind: metrics::CustomKind::Number,
        },
        template,
        value_key,
        duration_override,
    };
    match resolved(p, &s, 0.0) {
        Some(r) => s.metric = r.rule?.metric,
        None => {
            tracing::warn!(profile = %p.name, behavior = %b.name, "statistical behavior cannot be resolved; not evaluated");
            return None;
        }
    }
    Some(s)
}

/// The behavior with `threshold` as its static value, parsed by the agent's loader.
fn resolved(p: &Profile, s: &Stat, threshold: f64) -> Option<Behavior> {
    let mut json = s.template.clone();
    let v = if s.value_key == "count" {
        Value::from(threshold.ceil() as u64)
    } else {
        Value::from(threshold)
    };
    json["criteria"]["value"][s.value_key] = v;
    let doc = serde_json::json!({"securityProfileName": p.name, "behaviors": [json]});
    let (parsed, _) = profile::parse(&doc.to_string(), Path::new(&p.path)).ok()?;
    let mut b = parsed.behaviors.into_iter().next()?;
    let original = &p.behaviors[s.index];
    b.json = original.json.clone();
    b.fingerprint = original.fingerprint.clone();
    let rule = b.rule.as_mut()?;
    if let Some(secs) = s.duration_override {
        rule.duration_secs = Some(secs);
    }
    Some(b)
}

/// Nearest-rank percentile: the value at rank ⌈N/100 × n⌉ (at least 1) of the sorted values.
pub fn percentile(mut values: Vec<f64>, percent: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let rank = ((percent / 100.0) * values.len() as f64).ceil() as usize;
    Some(values[rank.clamp(1, values.len()) - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_duration_override_sets_every_window_and_traffic_sum() {
        let doc = serde_json::json!({"securityProfileName": "p", "behaviors": [
            {"name": "stat", "metric": "aws:all-bytes-out", "criteria": {"comparisonOperator": "less-than-equals", "statisticalThreshold": {"statistic": "p90"}, "durationSeconds": 300}},
            {"name": "static", "metric": "aws:all-bytes-in", "criteria": {"comparisonOperator": "less-than", "value": {"count": 5}, "durationSeconds": 600}},
            {"name": "ports", "metric": "aws:num-listening-tcp-ports", "criteria": {"comparisonOperator": "less-than", "value": {"count": 5}}}
        ]});
        let (mut p, _) = profile::parse(&doc.to_string(), Path::new("p.json")).unwrap();
        override_durations(&mut p, 12);
        let duration = |b: &Behavior| b.rule.as_ref().and_then(|r| r.duration_secs);
        assert_eq!(duration(&p.behaviors[1]), Some(12));
        assert_eq!(duration(&p.behaviors[2]), None);
        let stats = Statistical::new(std::slice::from_ref(&p), Some(12));
        let s = &stats.by_profile["p"][0];
        assert_eq!(s.window_ms, 12_000);
        let r = resolved(&p, s, 7.0).unwrap();
        assert_eq!(duration(&r), Some(12));
        // Events keep the behavior as written.
        assert_eq!(r.json["criteria"]["durationSeconds"], 300);
        let plain = Statistical::new(std::slice::from_ref(&p), None);
        assert_eq!(plain.by_profile["p"][0].window_ms, 300_000);
    }

    #[test]
    fn nearest_rank() {
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(percentile(v.clone(), 90.0), Some(9.0));
        assert_eq!(percentile(v.clone(), 50.0), Some(5.0));
        assert_eq!(percentile(v.clone(), 0.0), Some(1.0));
        assert_eq!(percentile(v.clone(), 100.0), Some(10.0));
        assert_eq!(percentile(v, 99.9), Some(10.0));
        assert_eq!(percentile(Vec::new(), 50.0), None);
    }
}
