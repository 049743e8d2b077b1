//! Security profiles as users have them (a CreateSecurityProfile body or the output of
//! `describe-security-profile`, detect-rules §2): the loaded model, its problems and warnings.
//! The checks themselves live in `validate.rs`; this file reads the file and names things.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::cidr::CidrSet;
use super::metrics::MetricRef;
use super::operators::{Operator, PortSet};

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
    /// The behavior object as given in the profile; events carry it (§6.3).
    pub json: serde_json::Value,
    pub suppress_alerts: bool,
    /// `Some` when the device evaluates it; `None` for cloud-side metrics, statistical and ML
    /// behaviors and behaviors without criteria (each of which got a `Warning`).
    pub rule: Option<Rule>,
    /// Why `rule` is `None` (the warning's text), for `dump --profile`.
    pub not_evaluated: Option<String>,
    /// What the behavior evaluates (metric, dimension, operator, value with the cidrsFile
    /// contents, threshold, ML config, duration): a changed fingerprint invalidates its active
    /// alarm on reload (§6.1); datapoint counts and `suppressAlerts` are not part of it.
    pub fingerprint: String,
}

/// A static-threshold behavior the device evaluates.
#[derive(Debug, Clone)]
pub struct Rule {
    pub metric: MetricRef,
    pub operator: Operator,
    pub reference: Reference,
    /// `durationSeconds`: for traffic metrics the window the deltas are summed over (§4.4).
    pub duration_secs: Option<u64>,
    /// `consecutiveDatapointsToAlarm` / `ToClear`, 1–10, default 1 (§2.3).
    pub to_alarm: u32,
    pub to_clear: u32,
}

/// The `value` of a behavior, parsed (§2.4, plus our `cidrsFile`).
#[derive(Debug, Clone)]
pub enum Reference {
    Count(u64),
    Number(f64),
    Ports(PortSet),
    /// From `cidrs` or from our `cidrsFile` extension; shared, it may hold 100 000 blocks.
    Cidrs(Arc<CidrSet>),
    Numbers(Vec<f64>),
    Strings(BTreeSet<String>),
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

/// Loads and validates one profile file. Its cidrsFile paths are read too (relative to the
/// profile's directory).
pub fn load(path: &Path) -> Result<Loaded, ProfileError> {
    load_all(std::slice::from_ref(&path.to_path_buf()))
}

/// Profiles AWS attaches to one target (detect-rules §2.5); more only warns.
const MAX_PROFILES: usize = 5;

/// Loads several profiles; all problems of all files are returned together. Profile names must
/// differ (alarms are keyed by profile and behavior name).
pub fn load_all(paths: &[PathBuf]) -> Result<Loaded, ProfileError> {
    let mut out = Loaded::default();
    let mut problems = Vec::new();
    for path in paths {
        match read(path) {
            Ok((profile, warnings)) => {
                if let Some(other) = out.profiles.iter().find(|p| p.name == profile.name) {
                    problems.push(problem(
                        path,
                        "securityProfileName",
                        format!(
                            "{:?} is also the name of the profile in {}",
                            profile.name,
                            other.path.display()
                        ),
                    ));
                }
                out.profiles.push(profile);
                out.warnings.extend(warnings);
            }
            Err(mut p) => problems.append(&mut p),
        }
    }
    if out.profiles.len() > MAX_PROFILES
        && let Some(last) = out.profiles.last()
    {
        out.warnings.push(problem(
            &last.path,
            "securityProfileName",
            format!(
                "{} profiles apply to this thing; AWS attaches at most {MAX_PROFILES} to one target (all are evaluated here)",
                out.profiles.len()
            ),
        ));
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(ProfileError { problems })
    }
}

/// Parses one profile from text; `path` names it and anchors relative cidrsFile paths.
pub fn parse(text: &str, path: &Path) -> Result<(Profile, Vec<Warning>), ProfileError> {
    parse_inner(text, path).map_err(|problems| ProfileError { problems })
}

fn read(path: &Path) -> Result<(Profile, Vec<Warning>), Vec<Problem>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| vec![problem(path, "file", format!("cannot read: {e}"))])?;
    parse_inner(&text, path)
}

fn parse_inner(text: &str, path: &Path) -> Result<(Profile, Vec<Warning>), Vec<Problem>> {
    let root: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        vec![problem(
            path,
            "file",
            format!("not JSON (line {}, column {}): {e}", e.line(), e.column()),
        )]
    })?;
    super::validate::profile(path, &root)
}

fn problem(path: &Path, field: &str, message: String) -> Problem {
    Problem {
        path: path.to_path_buf(),
        behavior: None,
        field: field.to_string(),
        message,
    }
}

#[cfg(test)]
#[path = "profile_tests.rs"]
mod tests;
