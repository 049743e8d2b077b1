//! A loaded security profile (detect-rules §2): profiles, behaviors and their rules, and the
//! problems and warnings of loading. Reading and checking files: `load.rs`, `validate/`.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use crate::criteria::Criterion;
use crate::metrics::MetricRef;

/// One loaded profile.
#[derive(Debug, Clone)]
pub struct Profile {
    pub name: String,
    /// The file it came from (errors and warnings name it).
    pub path: PathBuf,
    pub behaviors: Vec<Behavior>,
}

#[derive(Debug, Clone)]
pub struct Behavior {
    pub name: String,
    pub metric: String,
    /// The behavior object as given in the profile; events carry it (§6.3). Shared: every
    /// engine state and event of the behavior holds it.
    pub json: Arc<serde_json::Value>,
    pub suppress_alerts: bool,
    /// `None` for ML behaviors and behaviors without criteria (a cloud-side rule is kept: a
    /// report has no datapoint for it, the fleet's broker windows do); a
    /// statistical rule is evaluated only once its threshold is handed in (`evaluated_rule`).
    pub rule: Option<Rule>,
    /// Why the device does not evaluate it (the warning's text), for `dump --profile`.
    pub not_evaluated: Option<String>,
    /// What the behavior evaluates (metric, dimension, operator, value with the cidrsFile
    /// contents, threshold, ML config, duration), as `fingerprint_of` that text: a changed
    /// fingerprint invalidates its active alarm on reload (§6.1); datapoint counts and
    /// `suppressAlerts` are not part of it.
    pub fingerprint: String,
}

/// A behavior's fingerprint from the text of what it evaluates: 16 hex digits of its FNV-1a
/// 64-bit hash, so a saved state carries 16 bytes per behavior whatever the size of its value
/// (a port or CIDR set). Stable across versions and machines: saved states compare it.
pub fn fingerprint_of(text: &str) -> String {
    format!("{:016x}", crate::hash::fnv1a(text.as_bytes()))
}

/// True when a saved fingerprint is `loaded` (a `Behavior::fingerprint`): states saved before
/// fingerprints were hashed carry the whole text, which always holds `|` separators.
pub fn same_fingerprint(saved: &str, loaded: &str) -> bool {
    if saved.contains('|') {
        fingerprint_of(saved) == loaded
    } else {
        saved == loaded
    }
}

impl Behavior {
    /// The rule, when it can be evaluated now: a static one, or a statistical one with its
    /// threshold (detect-rules §4.8; the device never has one).
    #[inline(never)] // three callers; smaller outlined (aarch64-musl size)
    pub fn evaluated_rule(&self) -> Option<&Rule> {
        self.rule.as_ref().filter(|r| r.criterion.ready())
    }
}

/// What a behavior evaluates: a metric, its criterion, window and datapoint counts.
#[derive(Debug, Clone)]
pub struct Rule {
    pub metric: MetricRef,
    pub criterion: Criterion,
    /// `durationSeconds`: for traffic metrics the window the deltas are summed over (§4.4).
    pub duration_secs: Option<u64>,
    /// `consecutiveDatapointsToAlarm` / `ToClear`, 1–10, default 1 (§2.3).
    pub to_alarm: u32,
    pub to_clear: u32,
}

impl Rule {
    /// Hands a statistical rule this window's threshold (see
    /// `StatisticalThreshold::set_threshold`); a static rule keeps its value.
    pub fn set_threshold(&mut self, threshold: Option<f64>) {
        let counts = matches!(self.metric, MetricRef::Aws(_) | MetricRef::Cloud(_));
        if let Criterion::Statistical(c) = &mut self.criterion {
            c.set_threshold(threshold, counts);
        }
    }
}

/// One problem in a profile: file, behavior (name or `behaviors[i]`), field, what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: PathBuf,
    pub behavior: Option<String>,
    pub field: String,
    pub message: String,
}

/// A behavior that loads but is not evaluated on the device; same shape as `Problem`.
pub type Warning = Problem;

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.path.display())?;
        if let Some(b) = &self.behavior {
            write!(f, "behavior {b}: ")?;
        }
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Every problem found, across all files loaded together; displayed on one line, `; `-separated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ProfileError {
    pub problems: Vec<Problem>,
}

impl fmt::Display for ProfileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

/// Profiles and the warnings of behaviors not evaluated on the device.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    pub profiles: Vec<Profile>,
    pub warnings: Vec<Warning>,
}
