//! The configuration file (TOML): its keys, defaults and validation, done once at load.
//! Unknown keys are errors, all of them listed; every error names the file and the key. The
//! structs below are the one list of known keys (a new key or table is a new field, nothing
//! else). No other I/O here, but for the `[[custom_metrics]]` checks (a command's file mode,
//! a file's readability).

mod custom_metrics;

use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use custom_metrics::{CustomMetric, DEFAULT_TIMEOUT_SECS, MAX_TIMEOUT_SECS};
pub use log_level::LogLevel;

use crate::collect::CollectOptions;
use crate::report::Format;

mod log_level;
mod login;
mod unknown;
use unknown::dotted;

/// Where `run`, `dump` and `check-config` look when `--config` is not given.
pub const DEFAULT_PATH: &str = "/etc/detect-agent/config.toml";
/// AWS throttles reports sent more often than this (protocol doc §4, §7.1 item 2).
pub const AWS_MIN_INTERVAL_SECS: u64 = 300;

#[derive(Debug, Clone, Default, Deserialize)]
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
    #[serde(default)]
    pub detect: Detect,
    /// `[[custom_metrics]]` tables, checked by `problems` / `custom_metric_specs`.
    #[serde(default)]
    pub custom_metrics: Vec<CustomMetric>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Mqtt {
    pub endpoint: String,
    #[serde(default = "default_port")]
    pub port: u16,
    /// The broker's CA: server verification is mandatory, whatever the login.
    pub ca_file: PathBuf,
    /// Client certificate login: `cert_file` and `key_file`, both or neither.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// User name / password login: `username` and `password_file`, both or neither. The
    /// password lives in its own file (systemd `LoadCredential=`), never in this one.
    pub username: Option<String>,
    pub password_file: Option<PathBuf>,
    /// Name to verify in the server certificate when `endpoint` is an IP address.
    pub tls_server_name: Option<String>,
    #[serde(default = "default_keep_alive")]
    pub keep_alive_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Report {
    #[serde(default = "default_interval")]
    pub interval_secs: u64,
    #[serde(default = "default_format")]
    pub format: Format,
    /// How long to wait for the broker's PUBACK and the backend's verdict.
    #[serde(default = "default_verdict_timeout")]
    pub verdict_timeout_secs: u64,
    /// Whether a backend answers reports with verdicts, which decides what settles a
    /// report's traffic (docs/metrics.md, "What settles a report's traffic").
    #[serde(default)]
    pub backend: Backend,
}

/// `[report] backend`: what settles a report's traffic (the baseline advances past it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// A broker's PUBACK settles until the first verdict ever heard; from then on (kept in
    /// the state directory, never unlearned) only an "accepted" verdict does.
    #[default]
    Auto,
    /// Only an "accepted" verdict settles (AWS IoT Device Defender, or a backend like it).
    Verdicts,
    /// A PUBACK settles: a plain broker, no backend answers.
    None,
}

impl Backend {
    /// The value as the config spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Auto => "auto",
            Backend::Verdicts => "verdicts",
            Backend::None => "none",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct State {
    #[serde(default = "default_state_dir")]
    pub dir: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
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

/// Detect on the device (issue #8): the security profiles evaluated on every sample and the
/// topic their alarm events go to.
#[derive(Debug, Clone, Deserialize)]
pub struct Detect {
    /// AWS security-profile JSON files; empty (the default) = no detection.
    #[serde(default)]
    pub profiles: Vec<PathBuf>,
    /// MQTT topic of the alarm events; `{thing}` is replaced by the thing name.
    #[serde(default = "default_alarm_topic")]
    pub alarm_topic: String,
}

/// The default `detect.alarm_topic`.
pub const DEFAULT_ALARM_TOPIC: &str = "detect-agent/{thing}/alarms";

#[derive(Debug, Clone, Deserialize)]
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
fn default_alarm_topic() -> String {
    DEFAULT_ALARM_TOPIC.to_string()
}

impl Report {
    /// A warning when `verdict_timeout_secs` is not well below `interval_secs`, i.e. more
    /// than half of it. The wait never delays the next slot (it is cut short before it), so
    /// such a setting only means verdicts slower than the cut arrive late.
    pub fn verdict_wait_warning(&self) -> Option<String> {
        let (wait, interval) = (self.verdict_timeout_secs, self.interval_secs);
        (wait.saturating_mul(2) > interval).then(|| {
            format!(
                "report.verdict_timeout_secs = {wait} is not well below report.interval_secs = {interval} \
                 (well below = at most half of it): a report's verdict wait never delays the next slot, \
                 so it is cut short just before that slot and slower verdicts settle as late ones"
            )
        })
    }
}

impl Default for Report {
    fn default() -> Self {
        Self {
            interval_secs: default_interval(),
            format: default_format(),
            verdict_timeout_secs: default_verdict_timeout(),
            backend: Backend::default(),
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
impl Default for Detect {
    fn default() -> Self {
        Self {
            profiles: Vec::new(),
            alarm_topic: default_alarm_topic(),
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
    /// Every key the structs do not read, dotted (`report.interval_sec`, `custom_metrics[1].nme`).
    #[error("config {path}: unknown key(s): {} (config/config.toml lists every key)", keys.join(", "))]
    UnknownKeys { path: PathBuf, keys: Vec<String> },
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
        let (config, unknown) = Self::load_keeping_unknown(path)?;
        refuse_unknown(config, unknown, path)
    }

    /// Like `load`, but unknown keys come back beside the config instead of refusing it, so
    /// `check-config` can list them with every other problem.
    pub fn load_keeping_unknown(path: &Path) -> Result<(Self, Vec<String>), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse_keeping_unknown(&text, path)
    }

    /// Parses TOML text; `path` only names the source in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let (config, unknown) = Self::parse_keeping_unknown(text, path)?;
        refuse_unknown(config, unknown, path)
    }

    /// Parses TOML text and checks values; unknown keys (dotted) are returned, not refused.
    pub fn parse_keeping_unknown(
        text: &str,
        path: &Path,
    ) -> Result<(Self, Vec<String>), ConfigError> {
        let parse_error = |e: toml::de::Error| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().replace('\n', " | "),
        };
        // serde stops at the first unknown key with deny_unknown_fields; serde_ignored hands
        // every key no struct field reads to this callback, so all of them are listed at once.
        let mut unknown = Vec::new();
        let de = toml::Deserializer::parse(text).map_err(parse_error)?;
        let config: Config = serde_ignored::deserialize(de, |key| unknown.push(dotted(&key)))
            .map_err(parse_error)?;

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
        if let Err(e) = LogLevel::parse(&config.log.level) {
            return Err(invalid("log.level", e));
        }
        if let Err(e) = check_topic(&config.detect.alarm_topic) {
            return Err(invalid("detect.alarm_topic", e));
        }
        Ok((config, unknown))
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
        if let Some(m) = &self.mqtt {
            out.extend(m.login_problems());
        }
        if let Some(w) = self.report.verdict_wait_warning() {
            out.push(Problem::Warning(w));
        }
        if let Some(Err(e)) = self.thing_name.as_deref().map(|t| self.alarm_topic(t)) {
            out.push(Problem::Error(format!("detect.alarm_topic: {e}")));
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

    /// The alarm topic with `{thing}` replaced by `thing`, checked again (the thing name is
    /// part of it).
    pub fn alarm_topic(&self, thing: &str) -> Result<String, String> {
        let topic = self.detect.alarm_topic.replace("{thing}", thing);
        check_topic(&topic).map(|()| topic)
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

fn refuse_unknown(config: Config, keys: Vec<String>, path: &Path) -> Result<Config, ConfigError> {
    if keys.is_empty() {
        Ok(config)
    } else {
        Err(ConfigError::UnknownKeys {
            path: path.to_path_buf(),
            keys,
        })
    }
}

/// An MQTT topic we may publish on: not empty, no wildcards (`+`, `#`), no NUL, at most
/// 65 535 bytes (MQTT 3.1.1 §4.7).
fn check_topic(topic: &str) -> Result<(), String> {
    if topic.is_empty() {
        return Err("must not be empty".into());
    }
    if let Some(c) = topic.chars().find(|c| matches!(c, '+' | '#' | '\0')) {
        return Err(format!(
            "{topic:?} contains {c:?}; a topic to publish on cannot hold MQTT wildcards or NUL"
        ));
    }
    if topic.len() > 65_535 {
        return Err(format!("{} bytes; MQTT allows at most 65535", topic.len()));
    }
    Ok(())
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
    fn a_bad_value_is_still_named_when_keys_are_fine() {
        let err = parse("[report]\ninterval_secs = \"five\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("interval_secs") && err.contains("test.toml"),
            "{err}"
        );
    }

    #[test]
    fn report_backend_is_auto_unless_set_and_a_bad_value_names_the_key() {
        assert_eq!(parse("").unwrap().report.backend, Backend::Auto);
        for (text, want) in [
            ("verdicts", Backend::Verdicts),
            ("none", Backend::None),
            ("auto", Backend::Auto),
        ] {
            let c = parse(&format!("[report]\nbackend = \"{text}\"\n")).unwrap();
            assert_eq!(c.report.backend, want);
            assert_eq!(want.as_str(), text);
        }
        let err = parse("[report]\nbackend = \"sometimes\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("backend") && err.contains("verdicts"), "{err}");
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
        let c = parse("[report]\ninterval_secs = 2\nverdict_timeout_secs = 1\n").unwrap();
        assert!(matches!(&c.problems()[..], [Problem::Warning(w)] if w.contains("throttles")));
    }

    #[test]
    fn a_verdict_timeout_above_half_the_interval_warns() {
        for (interval, wait, warns) in [
            (300, 10, false),
            (20, 10, false),
            (20, 11, true),
            (2, 10, true),
            (1, 1, true),
        ] {
            let c = parse(&format!(
                "[report]\ninterval_secs = {interval}\nverdict_timeout_secs = {wait}\n"
            ))
            .unwrap();
            let w = c.report.verdict_wait_warning();
            assert_eq!(w.is_some(), warns, "{interval} {wait}: {w:?}");
            if let Some(w) = w {
                assert!(
                    w.contains("report.verdict_timeout_secs") && w.contains("well below"),
                    "{w}"
                );
                assert!(c.problems().contains(&Problem::Warning(w)));
            }
        }
    }

    #[test]
    fn alarm_topic_defaults_substitutes_the_thing_and_refuses_wildcards() {
        let c = parse("thing_name = \"gw-01\"\n").unwrap();
        assert!(c.detect.profiles.is_empty());
        assert_eq!(
            c.alarm_topic("gw-01"),
            Ok("detect-agent/gw-01/alarms".to_string())
        );
        assert!(c.problems().is_empty());
        let c = parse("thing_name = \"gw\"\n[detect]\nalarm_topic = \"site/{thing}/{thing}\"\nprofiles = [\"/p.json\"]\n").unwrap();
        assert_eq!(c.alarm_topic("gw"), Ok("site/gw/gw".to_string()));
        assert_eq!(c.detect.profiles, [PathBuf::from("/p.json")]);
        for bad in ["a/+/b", "a/#", ""] {
            let err = parse(&format!("[detect]\nalarm_topic = {bad:?}\n"))
                .unwrap_err()
                .to_string();
            assert!(err.contains("detect.alarm_topic"), "{err}");
        }
        let err = parse("[detect]\nprofile = []\n").unwrap_err().to_string();
        assert!(err.contains("profile"), "{err}");
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
