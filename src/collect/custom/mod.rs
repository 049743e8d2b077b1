//! Custom metrics (protocol doc §1.5): the metric spec built from the config, its sources
//! (`command`, `file`, built-in probes) and one reading per metric. Knows nothing of reports.

pub mod builtins;
pub mod command;
pub mod file;
pub mod parse;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

pub use builtins::{Builtin, CpuTimes, CustomState};
pub use parse::ParseError;

/// Most bytes read from a command's stdout or from a `file` source; more is an error for
/// that metric (the report cut in `report::limits` handles what does fit).
pub const MAX_OUTPUT_BYTES: usize = 64 * 1024;

/// The metric type and value are protocol data (protocol doc §1.5); their one definition
/// is in the protocol crate.
pub use protocol::{CustomValue, MetricType};

/// Where a metric's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Builtin(Builtin),
    /// argv (argv[0] an absolute path), run without a shell under `timeout`.
    Command {
        argv: Vec<String>,
        timeout: Duration,
    },
    /// Read at every sample; the path is used as given (not under the collectors' root).
    File(PathBuf),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Builtin(b) => write!(f, "builtin {}", b.name()),
            Source::Command { argv, .. } => write!(f, "command {}", argv.join(" ")),
            Source::File(path) => write!(f, "file {}", path.display()),
        }
    }
}

/// One configured custom metric, already validated by the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricSpec {
    pub name: String,
    pub kind: MetricType,
    pub source: Source,
}

/// What one metric gave this sample: its value, or why it is left out of the report.
#[derive(Debug)]
pub struct Reading {
    pub name: String,
    pub kind: MetricType,
    /// `Source`'s description ("command /usr/local/bin/battery --percent").
    pub source: String,
    pub value: Result<CustomValue, CustomError>,
}

/// Why one metric has no value this sample.
#[derive(Debug, thiserror::Error)]
pub enum CustomError {
    #[error("cannot start {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("killed after its timeout of {}s", .0.as_secs())]
    Timeout(Duration),
    #[error("exited with {status}{}", stderr_suffix(.stderr))]
    Exit { status: String, stderr: String },
    #[error("more than {MAX_OUTPUT_BYTES} bytes of output (the cap for one metric)")]
    TooLarge,
    #[error("killed: the agent is stopping")]
    Stopped,
    #[error("cannot wait for the command: {0}")]
    Wait(#[source] std::io::Error),
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Parse(#[from] ParseError),
}

fn stderr_suffix(stderr: &str) -> String {
    if stderr.is_empty() {
        String::new()
    } else {
        format!(" (stderr: {stderr})")
    }
}

/// A custom metric name as AWS accepts it (protocol doc §1.5): 1–128 of `[a-zA-Z0-9:_-]`,
/// not starting with `aws:`.
pub fn valid_name(name: &str) -> bool {
    crate::identity::is_custom_metric_name(name)
}

/// The custom metrics of one sample while their commands run: commands start in `start`,
/// before the socket table is read, so a slow one never delays the sockets; `finish` reads
/// files and built-ins and then collects the commands, each bounded by its own timeout.
pub struct Pending<'a> {
    specs: &'a [MetricSpec],
    commands: Vec<Option<Result<command::Running, CustomError>>>,
}

/// Starts every `command` metric of `specs` (concurrently, each with its own deadline).
pub fn start(specs: &[MetricSpec]) -> Pending<'_> {
    let now = Instant::now();
    let commands = specs
        .iter()
        .map(|spec| match &spec.source {
            Source::Command { argv, timeout } => Some(command::spawn(argv, now, *timeout)),
            _ => None,
        })
        .collect();
    Pending { specs, commands }
}

impl Pending<'_> {
    /// One reading per spec, in spec order. Built-ins read under `root`; `state` carries
    /// what `cpu_usage` needs from the previous sample; `stop` set kills running commands.
    pub fn finish(self, root: &Path, state: &mut CustomState, stop: &AtomicBool) -> Vec<Reading> {
        let mut outputs: HashMap<usize, Result<Vec<u8>, CustomError>> = HashMap::new();
        let mut running = Vec::new();
        for (i, started) in self.commands.into_iter().enumerate() {
            match started {
                Some(Ok(r)) => running.push((i, r)),
                Some(Err(e)) => {
                    outputs.insert(i, Err(e));
                }
                None => {}
            }
        }
        let (index, procs): (Vec<usize>, Vec<command::Running>) = running.into_iter().unzip();
        outputs.extend(index.into_iter().zip(command::finish_all(procs, stop)));
        self.specs
            .iter()
            .enumerate()
            .map(|(i, spec)| {
                let value = match &spec.source {
                    Source::Builtin(b) => builtins::read(*b, root, state),
                    Source::File(path) => file::read(path).and_then(|t| parsed(spec.kind, &t)),
                    Source::Command { .. } => match outputs.remove(&i) {
                        Some(out) => {
                            out.and_then(|b| parsed(spec.kind, &String::from_utf8_lossy(&b)))
                        }
                        None => Err(CustomError::Wait(std::io::Error::other("never started"))),
                    },
                };
                Reading {
                    name: spec.name.clone(),
                    kind: spec.kind,
                    source: spec.source.to_string(),
                    value,
                }
            })
            .collect()
    }
}

fn parsed(kind: MetricType, text: &str) -> Result<CustomValue, CustomError> {
    Ok(parse::value(kind, text)?)
}

/// The values of the readings that have one, by name (the report's `custom_metrics`).
pub fn values(readings: &[Reading]) -> BTreeMap<String, CustomValue> {
    readings
        .iter()
        .filter_map(|r| Some((r.name.clone(), r.value.as_ref().ok()?.clone())))
        .collect()
}

/// Every metric of `specs`, read now (commands concurrently).
pub fn read_all(specs: &[MetricSpec], root: &Path, state: &mut CustomState) -> Vec<Reading> {
    start(specs).finish(root, state, &AtomicBool::new(false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_aws_pattern() {
        assert!(valid_name("battery_pct"));
        assert!(valid_name("a:b-c_9"));
        assert!(valid_name(&"x".repeat(128)));
        assert!(!valid_name(""));
        assert!(!valid_name(&"x".repeat(129)));
        assert!(!valid_name("aws:cpu"));
        assert!(!valid_name("bad name"));
        assert!(!valid_name("dot.name"));
    }

    #[test]
    fn type_names_round_trip() {
        for t in MetricType::ALL {
            assert_eq!(MetricType::from_name(t.name()), Some(t));
        }
        assert_eq!(MetricType::from_name("ip-list"), None);
    }
}
