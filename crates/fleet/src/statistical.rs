//! Statistical thresholds across a profile's devices (detect-rules §4.8, with its inferred
//! choices): windows aligned to multiples of `durationSeconds` since the epoch; per device one
//! value per window (sum of deltas for bytes/packets, last value for gauges); the threshold is
//! the nearest-rank percentile of the previous complete window's values. The threshold is
//! handed to the behavior's statistical criterion as a value, which the agent's
//! `detect::Engine` evaluates; its fingerprint and JSON stay as written, so alarms survive new
//! thresholds. Reads and writes samples only through the store; no other I/O.

use std::collections::HashMap;

use detect::{Behavior, Criterion, Datapoint, Kind, MetricRef, Observation, Profile, Rule};

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
}

#[derive(Default)]
pub struct Statistical {
    by_profile: HashMap<String, Vec<Stat>>,
    /// (profile, behavior, window start) → threshold (None: no population).
    thresholds: HashMap<(String, String, u64), Option<f64>>,
    /// Every cloud-side window ending by then is judged for every thing (detect-rules §3.4):
    /// a cloud-side population is complete only then. None until the first close.
    cloud_closed_ms: Option<u64>,
    /// Before the first close since the start: (profile, behavior) → the newest cloud-side
    /// window with samples before the asked one and its threshold (looked up once).
    cloud_at_start: HashMap<(String, String), (u64, Option<f64>)>,
}

/// How far back the start-up look-up searches for the last judged cloud-side window: the
/// judge catches up at most this many windows of a thing (a day of 300 s windows).
const START_LOOKBACK_WINDOWS: u64 = 288;

impl Statistical {
    /// Finds the statistical behaviors of `profiles`; one on a metric that is not a number
    /// (a list, or cloud-side) is skipped with a warning. `duration_override_secs` (`[fleet]
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
            cloud_closed_ms: None,
            cloud_at_start: HashMap::new(),
        }
    }

    /// This observation's (a report's) samples for the statistical behaviors of `profile`.
    pub fn samples<O: Observation + ?Sized>(
        &self,
        profile: &str,
        thing: &str,
        observation: &O,
        now_ms: u64,
    ) -> Vec<Sample> {
        let Some(stats) = self.by_profile.get(profile) else {
            return Vec::new();
        };
        stats
            .iter()
            .filter_map(|s| {
                let value = match observation.datapoint(&s.metric)? {
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

    /// The judge closed every thing's cloud-side windows that end by `ms`.
    pub fn cloud_closed_until(&mut self, ms: u64) {
        self.cloud_closed_ms = Some(ms);
        self.cloud_at_start.clear();
    }

    /// `profile` with each statistical behavior given the threshold of the previous complete
    /// window at `now_ms`; behaviors without a population stay unevaluated. A cloud-side
    /// population is complete once the judge closed that window for every thing: asked
    /// before (a report or the sweep in the grace after its end), the threshold is the last
    /// complete window's, the one the thing was last judged with; before the first close
    /// since the start, it is read as found and not kept.
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
            let (previous, keep) = match (&s.metric, self.cloud_closed_ms) {
                // Not known yet since the start: as found, not kept.
                (MetricRef::Cloud(_), None) => (previous, false),
                (MetricRef::Cloud(_), Some(closed)) => {
                    let Some(last) = (closed - closed % s.window_ms).checked_sub(s.window_ms)
                    else {
                        continue;
                    };
                    (previous.min(last), true)
                }
                _ => (previous, true),
            };
            let key = (profile.name.clone(), s.name.clone(), previous);
            let threshold = match self.thresholds.get(&key).filter(|_| keep) {
                Some(t) => *t,
                None if !keep => {
                    at_start(&mut self.cloud_at_start, store, &profile.name, s, previous)?
                }
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
            if let Some(t) = threshold {
                arm(&mut profile.behaviors[s.index], t);
            }
        }
        Ok(profile)
    }
}

/// Before the first close since the start, the window before `previous` may not be
/// closed for every thing yet (the fleet was away): the threshold is that of the newest
/// window with samples at or before `previous`, the one the things were last judged with,
/// so a restart neither drops a behavior's threshold (which would invalidate its alarm)
/// nor reads a half-filled population. Looked up once per behavior, then kept until the
/// first close.
fn at_start(
    cache: &mut HashMap<(String, String), (u64, Option<f64>)>,
    store: &mut dyn Samples,
    profile: &str,
    s: &Stat,
    previous: u64,
) -> Result<Option<f64>, StoreError> {
    let key = (profile.to_string(), s.name.clone());
    if let Some((_, t)) = cache.get(&key) {
        return Ok(*t);
    }
    let mut found = (previous, None);
    for k in 0..=START_LOOKBACK_WINDOWS {
        let Some(start) = previous.checked_sub(k * s.window_ms) else {
            break;
        };
        let values = store.window(profile, &s.name, start)?;
        if !values.is_empty() {
            found = (start, percentile(values, s.percent));
            break;
        }
    }
    tracing::info!(profile, behavior = %s.name, window_start_ms = found.0, threshold = ?found.1, "statistical threshold at start, until the first close");
    cache.insert(key, found);
    Ok(found.1)
}

/// `[fleet] duration_override_secs`: every behavior of `profile` that has a `durationSeconds`
/// is evaluated over `secs` instead (traffic sums of §4.4, statistical windows of §4.8). The
/// behavior's JSON and fingerprint stay as written, so events show the profile's value.
/// Cloud-side rules get it as their window whether or not they set `durationSeconds`.
pub fn override_durations(profile: &mut Profile, secs: u64) {
    for b in &mut profile.behaviors {
        if let Some(rule) = &mut b.rule {
            if rule.duration_secs.is_some() {
                rule.duration_secs = Some(secs);
            }
            if let MetricRef::Cloud(c) = &mut rule.metric {
                c.window_secs = secs;
            }
        }
    }
}

fn stat(p: &Profile, index: usize, b: &Behavior, duration_override: Option<u64>) -> Option<Stat> {
    let criteria = b.json.get("criteria")?;
    let Some(Rule {
        metric,
        criterion: Criterion::Statistical(c),
        ..
    }) = &b.rule
    else {
        if criteria.get("statisticalThreshold").is_some() {
            tracing::warn!(profile = %p.name, behavior = %b.name, "statistical behavior cannot be resolved; not evaluated");
        }
        return None;
    };
    // As written: the rule's own may already be `override_durations`'.
    let duration = criteria.get("durationSeconds")?.as_u64()?;
    let window_ms = duration_override.unwrap_or(duration).checked_mul(1000)?;
    Some(Stat {
        index,
        name: b.name.clone(),
        percent: c.percentile()?,
        window_ms: window_ms.max(1),
        metric: metric.clone(),
    })
}

/// Hands `threshold` to the statistical criterion of `b` (the detect crate's rounding and
/// checks apply: a threshold that is not a finite number leaves it unevaluated).
fn arm(b: &mut Behavior, threshold: f64) {
    if let Some(rule) = &mut b.rule {
        rule.set_threshold(Some(threshold));
    }
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
    use std::path::Path;

    use detect::profile;

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
        let mut r = p.behaviors[s.index].clone();
        assert!(r.evaluated_rule().is_none(), "no threshold yet");
        arm(&mut r, 7.0);
        assert!(r.evaluated_rule().is_some());
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
