//! Reading profile files (detect-rules §2): one or several, every problem of every file
//! collected, names unique. The checks on one document: `validate/`.

use std::path::{Path, PathBuf};

use super::model::{Loaded, Problem, Profile, ProfileError, Warning};
use super::validate;

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
    validate::profile(path, &root)
}

fn problem(path: &Path, field: &str, message: String) -> Problem {
    Problem {
        path: path.to_path_buf(),
        behavior: None,
        field: field.to_string(),
        message,
    }
}
