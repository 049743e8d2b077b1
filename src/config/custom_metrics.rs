//! The `[[custom_metrics]]` tables: their keys as written, and their validation into
//! `collect::custom::MetricSpec`s, every error one line naming the metric and the key.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::collect::custom::{Builtin, MetricSpec, MetricType, Source, valid_name};

/// `timeout_secs` when a command metric does not set it.
pub const DEFAULT_TIMEOUT_SECS: u64 = 5;
/// The longest `timeout_secs` allowed (the daemon's sample timeout leaves room for it).
pub const MAX_TIMEOUT_SECS: u64 = 60;

/// One `[[custom_metrics]]` table (docs/configuration.md, "Custom metrics").
#[derive(Debug, Clone, Deserialize)]
pub struct CustomMetric {
    /// Registered name: 1–128 of [a-zA-Z0-9:_-], not starting with "aws:" (protocol doc §1.5).
    pub name: String,
    /// number | number-list | string-list | ip-address-list.
    #[serde(rename = "type")]
    pub kind: String,
    pub builtin: Option<String>,
    /// argv, no shell; argv[0] an absolute path to an executable file.
    pub command: Option<Vec<String>>,
    pub file: Option<PathBuf>,
    /// Command only, 1–60 (default 5).
    pub timeout_secs: Option<u64>,
}

/// The specs of `list`, or every error found (one line each).
pub fn specs(list: &[CustomMetric]) -> Result<Vec<MetricSpec>, Vec<String>> {
    let mut errors = Vec::new();
    let mut specs = Vec::new();
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, m) in list.iter().enumerate() {
        let mut error = |key: &str, message: String| {
            errors.push(format!(
                "custom_metrics[{i}] {:?}: {key}: {message}",
                m.name
            ));
        };
        if !valid_name(&m.name) {
            error(
                "name",
                "must be 1-128 characters of [a-zA-Z0-9:_-] and not start with \"aws:\"".into(),
            );
        }
        if let Some(first) = seen.insert(&m.name, i) {
            error("name", format!("already used by custom_metrics[{first}]"));
        }
        let kind = MetricType::from_name(&m.kind);
        if kind.is_none() {
            error(
                "type",
                format!(
                    "{:?} is not one of number, number-list, string-list, ip-address-list",
                    m.kind
                ),
            );
        }
        if m.timeout_secs.is_some() && m.command.is_none() {
            error("timeout_secs", "applies to a command source only".into());
        }
        let source = match (&m.builtin, &m.command, &m.file) {
            (Some(b), None, None) => builtin(b, kind, &mut error),
            (None, Some(argv), None) => command(argv, m.timeout_secs, &mut error),
            (None, None, Some(path)) => file(path, &mut error),
            (None, None, None) => {
                error(
                    "builtin",
                    "one source is required: builtin, command or file".into(),
                );
                None
            }
            _ => {
                let given: Vec<&str> = [
                    ("builtin", m.builtin.is_some()),
                    ("command", m.command.is_some()),
                    ("file", m.file.is_some()),
                ]
                .into_iter()
                .filter_map(|(k, set)| set.then_some(k))
                .collect();
                error(
                    &given.join("/"),
                    "exactly one source is allowed: builtin, command or file".into(),
                );
                None
            }
        };
        if let (Some(kind), Some(source)) = (kind, source) {
            specs.push(MetricSpec {
                name: m.name.clone(),
                kind,
                source,
            });
        }
    }
    if errors.is_empty() {
        Ok(specs)
    } else {
        Err(errors)
    }
}

fn builtin(
    name: &str,
    kind: Option<MetricType>,
    error: &mut impl FnMut(&str, String),
) -> Option<Source> {
    let Some(b) = Builtin::from_name(name) else {
        let known: Vec<&str> = Builtin::ALL.iter().map(|b| b.name()).collect();
        error(
            "builtin",
            format!("{name:?} is not a built-in ({})", known.join(", ")),
        );
        return None;
    };
    if let Some(kind) = kind
        && kind != b.metric_type()
    {
        error(
            "type",
            format!(
                "\"{kind}\" does not match builtin {}, which is a {}",
                b.name(),
                b.metric_type()
            ),
        );
    }
    Some(Source::Builtin(b))
}

fn command(
    argv: &[String],
    timeout_secs: Option<u64>,
    error: &mut impl FnMut(&str, String),
) -> Option<Source> {
    let timeout = timeout_secs.unwrap_or(DEFAULT_TIMEOUT_SECS);
    if !(1..=MAX_TIMEOUT_SECS).contains(&timeout) {
        error(
            "timeout_secs",
            format!("{timeout} is not between 1 and {MAX_TIMEOUT_SECS}"),
        );
    }
    let Some(program) = argv.first() else {
        error(
            "command",
            "is empty; give the program and its arguments as a list".into(),
        );
        return None;
    };
    let path = std::path::Path::new(program);
    let problem = if !path.is_absolute() {
        Some("is not an absolute path (no shell, no PATH lookup)".to_string())
    } else {
        match std::fs::metadata(path) {
            Err(e) => Some(format!("cannot be read: {e}")),
            Ok(m) if !m.is_file() => Some("is not a regular file".into()),
            Ok(m) if m.permissions().mode() & 0o111 == 0 => Some("is not executable".into()),
            Ok(_) => None,
        }
    };
    if let Some(p) = problem {
        error("command", format!("{program} {p}"));
    }
    Some(Source::Command {
        argv: argv.to_vec(),
        timeout: Duration::from_secs(timeout),
    })
}

fn file(path: &std::path::Path, error: &mut impl FnMut(&str, String)) -> Option<Source> {
    if !path.is_absolute() {
        error(
            "file",
            format!("{} is not an absolute path", path.display()),
        );
    } else if let Err(e) = crate::collect::custom::file::read(path) {
        error("file", e.to_string());
    }
    Some(Source::File(path.to_path_buf()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Vec<CustomMetric> {
        crate::config::Config::parse(text, std::path::Path::new("t.toml"))
            .unwrap()
            .custom_metrics
    }

    #[test]
    fn specs_get_their_source_and_the_default_timeout() {
        let list = parse(
            "[[custom_metrics]]\nname = \"echo\"\ntype = \"number\"\ncommand = [\"/bin/echo\", \"1\"]\n\
             [[custom_metrics]]\nname = \"mods\"\ntype = \"string-list\"\nbuiltin = \"kernel_modules\"\n",
        );
        let specs = specs(&list).unwrap();
        assert_eq!(
            specs[0].source,
            Source::Command {
                argv: vec!["/bin/echo".into(), "1".into()],
                timeout: Duration::from_secs(DEFAULT_TIMEOUT_SECS),
            }
        );
        assert_eq!(specs[1].kind, MetricType::StringList);
        assert_eq!(specs[1].source, Source::Builtin(Builtin::KernelModules));
    }

    #[test]
    fn each_error_is_one_line_naming_the_metric_and_the_key() {
        let list =
            parse("[[custom_metrics]]\nname = \"a b\"\ntype = \"text\"\nbuiltin = \"cpu_usage\"\n");
        let errors = specs(&list).unwrap_err();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].starts_with("custom_metrics[0] \"a b\": name: "));
        assert!(errors[1].starts_with("custom_metrics[0] \"a b\": type: \"text\""));
        assert!(errors.iter().all(|e| !e.contains('\n')));
    }

    #[test]
    fn unknown_keys_in_a_table_are_parse_errors() {
        let err = crate::config::Config::parse(
            "[[custom_metrics]]\nname = \"x\"\ntype = \"number\"\nbuiltin = \"cpu_usage\"\ntimeout = 3\n",
            std::path::Path::new("t.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("timeout"), "{err}");
    }
}
