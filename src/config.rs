//! The configuration file (TOML): its keys, defaults and validation, done once at load.
//! Unknown keys are errors; every error names the file and the key. No other I/O here, but
//! for the `[[custom_metrics]]` checks (a command's file mode, a file's readability).

mod custom_metrics;

use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use custom_metrics::{CustomMetric, DEFAULT_TIMEOUT_SECS, MAX_TIMEOUT_SECS};

use crate::collect::CollectOptions;
use crate::report::Format;

/// Where `run`, `dump` and `check-config` look when `--config` is not given.
pub const DEFAULT_PATH: &str = "/etc/detect-agent/config.toml";
/// AWS throttles reports sent more often than this (protocol doc §4, §7.1 item 2).
pub const AWS_MIN_INTERVAL_SECS: u64 = 300;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Thing name; also the MQTT client id unless `client_id` is set. Defaults to the
    /// hostname for `dump`; required by `run`.
    pub thing_name: Option<String>,
    pub client_id: Option<String>,
    pub mqtt: Option<Mqtt>,
    #[serde(default)]
    pub report: Report,
    #[serde(default)]
    pub state: State,
    #[serde(default)]
    pub collect: Collect,
    #[serde(default)]
    pub log: Log,
    /// `[[custom_metrics]]` tables, checked by `problems` / `custom_metric_specs`.
    #[serde(default)]
    pub custom_metrics: Vec<CustomMetric>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mqtt {
    pub endpoint: String,
    #[serde(default = "default_port")]
    pub port: u16,
    pub ca_file: PathBuf,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// Name to verify in the server certificate when `endpoint` is an IP address.
    pub tls_server_name: Option<String>,
    #[serde(default = "default_keep_alive")]
    pub keep_alive_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Report {
    #[serde(default = "default_interval")]
    pub interval_secs: u64,
    #[serde(default = "default_format")]
    pub format: Format,
    /// How long to wait for the broker's PUBACK and the backend's verdict.
    #[serde(default = "default_verdict_timeout")]
    pub verdict_timeout_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    #[serde(default = "default_state_dir")]
    pub dir: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Collect {
    /// Interfaces whose counters are summed into network_stats; empty = all.
    #[serde(default)]
    pub include_interfaces: Vec<String>,
    /// Interfaces left out of network_stats (applied after include).
    #[serde(default = "default_exclude")]
    pub exclude_interfaces: Vec<String>,
    /// Read sockets from /proc/net even when netlink sock_diag works.
    #[serde(default)]
    pub force_procnet: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Log {
    /// tracing level or target list ("info", "warn,detect_agent=debug"); RUST_LOG wins.
    #[serde(default = "default_level")]
    pub level: String,
    #[serde(default)]
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

fn default_port() -> u16 {
    8883
}
fn default_keep_alive() -> u64 {
    60
}
fn default_interval() -> u64 {
    AWS_MIN_INTERVAL_SECS
}
fn default_format() -> Format {
    Format::Cbor
}
fn default_verdict_timeout() -> u64 {
    10
}
fn default_state_dir() -> PathBuf {
    PathBuf::from("/var/lib/detect-agent")
}
fn default_exclude() -> Vec<String> {
    vec!["lo".to_string()]
}
fn default_level() -> String {
    "info".to_string()
}

impl Default for Report {
    fn default() -> Self {
        Self {
            interval_secs: default_interval(),
            format: default_format(),
            verdict_timeout_secs: default_verdict_timeout(),
        }
    }
}
impl Default for State {
    fn default() -> Self {
        Self {
            dir: default_state_dir(),
        }
    }
}
impl Default for Collect {
    fn default() -> Self {
        Self {
            include_interfaces: Vec::new(),
            exclude_interfaces: default_exclude(),
            force_procnet: false,
        }
    }
}
impl Default for Log {
    fn default() -> Self {
        Self {
            level: default_level(),
            format: LogFormat::Text,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config {path}: {key}: {message}")]
    Invalid {
        path: PathBuf,
        key: &'static str,
        message: String,
    },
}

/// A problem found by [`Config::problems`]; warnings do not stop the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    Error(String),
    Warning(String),
}

impl Config {
    /// Reads and parses `path`, then applies the checks that make a config unusable.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses TOML text; `path` only names the source in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().replace('\n', " | "),
        })?;
        let invalid = |key, message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            key,
            message,
        };
        if config.report.interval_secs == 0 {
            return Err(invalid("report.interval_secs", "must be at least 1".into()));
        }
        if config.report.interval_secs > 86_400 {
            return Err(invalid(
                "report.interval_secs",
                "must be at most 86400 (one day)".into(),
            ));
        }
        if config.report.verdict_timeout_secs == 0 || config.report.verdict_timeout_secs > 60 {
            return Err(invalid(
                "report.verdict_timeout_secs",
                "must be between 1 and 60".into(),
            ));
        }
        if let Some(m) = &config.mqtt {
            if m.endpoint.trim().is_empty() {
                return Err(invalid("mqtt.endpoint", "must not be empty".into()));
            }
            if m.port == 0 {
                return Err(invalid("mqtt.port", "must be between 1 and 65535".into()));
            }
            if !(5..=1200).contains(&m.keep_alive_secs) {
                return Err(invalid(
                    "mqtt.keep_alive_secs",
                    "must be between 5 and 1200".into(),
                ));
            }
        }
        if let Err(e) = parse_log_level(&config.log.level) {
            return Err(invalid("log.level", e));
        }
        Ok(config)
    }

    /// Checks that do not make the file unparseable but matter: thing name rules, every
    /// `[[custom_metrics]]` error and the AWS interval floor. (`check-config` adds the file
    /// and certificate checks.)
    pub fn problems(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        for (key, value) in [
            ("thing_name", self.thing_name.as_deref()),
            ("client_id", self.client_id.as_deref()),
        ] {
            let Some(value) = value else { continue };
            match crate::identity::check(value) {
                Ok(Some(w)) => out.push(Problem::Warning(format!("{key}: {w}"))),
                Ok(None) => {}
                Err(e) => out.push(Problem::Error(format!("{key}: {e}"))),
            }
        }
        if let Err(errors) = self.custom_metric_specs() {
            out.extend(errors.into_iter().map(Problem::Error));
        }
        if self.report.interval_secs < AWS_MIN_INTERVAL_SECS {
            out.push(Problem::Warning(format!(
                "report.interval_secs = {}: AWS IoT Device Defender throttles reports sent more often than every {AWS_MIN_INTERVAL_SECS} s",
                self.report.interval_secs
            )));
        }
        out
    }

    /// The MQTT client id: `client_id`, else the thing name.
    pub fn client_id(&self) -> Option<&str> {
        self.client_id.as_deref().or(self.thing_name.as_deref())
    }

    /// The `[[custom_metrics]]` as specs for `collect::custom`, or one line per error naming
    /// the metric and the key (also listed by `problems`, so check-config, startup and a
    /// SIGHUP reload refuse the same configs).
    pub fn custom_metric_specs(
        &self,
    ) -> Result<Vec<crate::collect::custom::MetricSpec>, Vec<String>> {
        custom_metrics::specs(&self.custom_metrics)
    }

    /// Collector options from the `[collect]` table.
    pub fn collect_options(&self) -> CollectOptions {
        CollectOptions {
            force_procnet: self.collect.force_procnet,
            include: self.collect.include_interfaces.clone(),
            exclude: self.collect.exclude_interfaces.clone(),
            ..CollectOptions::default()
        }
    }
}

/// Parses a level or a `target=level` list without pulling in a regex engine.
/// Each comma-separated part is a level (`info`) or `target=level`; a bare word that is not a
/// level (a typo such as `loud`) is refused rather than read as a target name.
pub fn parse_log_level(s: &str) -> Result<tracing_subscriber::filter::Targets, String> {
    const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let level = part.rsplit_once('=').map_or(part, |(_, l)| l);
        if !LEVELS.contains(&level.to_ascii_lowercase().as_str()) {
            return Err(format!(
                "{s:?}: {part:?} is not a level (off, error, warn, info, debug, trace) or target=level"
            ));
        }
    }
    s.parse::<tracing_subscriber::filter::Targets>()
        .map_err(|e| format!("{s:?} is not a log level or target list: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("test.toml"))
    }

    #[test]
    fn documented_example_parses() {
        let c = parse(
            r#"
thing_name = "gateway-01"
[mqtt]
endpoint = "abc123-ats.iot.eu-west-1.amazonaws.com"
port = 8883
ca_file = "/etc/detect-agent/AmazonRootCA1.pem"
cert_file = "/etc/detect-agent/device.pem.crt"
key_file = "/etc/detect-agent/private.pem.key"
[report]
interval_secs = 300
format = "cbor"
[state]
dir = "/var/lib/detect-agent"
"#,
        )
        .unwrap();
        assert_eq!(c.client_id(), Some("gateway-01"));
        assert_eq!(c.report.format, Format::Cbor);
        assert!(c.problems().is_empty());
    }

    #[test]
    fn unknown_keys_are_errors_naming_the_key() {
        let err = parse("thing_name = \"a\"\n[report]\ninterval_sec = 5\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("interval_sec"), "{err}");
        assert!(err.contains("test.toml"), "{err}");
        let err = parse("thingname = \"a\"\n").unwrap_err().to_string();
        assert!(err.contains("thingname"), "{err}");
    }

    #[test]
    fn bad_values_name_their_key() {
        let err = parse("[report]\ninterval_secs = 0\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("report.interval_secs"), "{err}");
        let err = parse("[report]\nformat = \"xml\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("xml"), "{err}");
        let err = parse("[log]\nlevel = \"loud\"\n").unwrap_err().to_string();
        assert!(err.contains("log.level"), "{err}");
    }

    #[test]
    fn short_interval_is_a_warning_not_an_error() {
        let c = parse("[report]\ninterval_secs = 2\n").unwrap();
        assert!(matches!(&c.problems()[..], [Problem::Warning(w)] if w.contains("throttles")));
    }

    #[test]
    fn bad_thing_name_is_an_error() {
        let c = parse("thing_name = \"a\\u0007b\"\n").unwrap();
        assert!(matches!(&c.problems()[..], [Problem::Error(e)] if e.starts_with("thing_name")));
    }
}

#[cfg(test)]
mod shipped_example {
    /// The documented example in config/ must stay a valid config.
    #[test]
    fn config_example_parses() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config/config.toml");
        let c = super::Config::load(std::path::Path::new(path)).unwrap();
        assert_eq!(c.thing_name.as_deref(), Some("gateway-01"));
        assert!(c.problems().is_empty(), "{:?}", c.problems());
    }
}
