//! The fleet config file (issue #9 Contract): `[broker]`, `[fleet]`, `[alerts]`, `[[attach]]`,
//! parsed with every unknown key listed. Does not load profiles or open the broker.

use std::path::{Path, PathBuf};

use serde::Deserialize;

pub const DEFAULT_PATH: &str = "/etc/detect-fleet/fleet.toml";

#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    pub broker: Broker,
    pub fleet: Fleet,
    #[serde(default)]
    pub alerts: Alerts,
    #[serde(default)]
    pub attach: Vec<Attach>,
    /// `[[dimension]]`: `TOPIC_FILTER` dimensions that `metricDimension` names (issue #18).
    #[serde(default)]
    pub dimension: Vec<DimensionConfig>,
    /// `[nats]`: nats-server's system account, read when `[broker] source = "nats"`.
    pub nats: Option<Nats>,
    /// `[store]`: SQLite (default) or the NATS JetStream cluster store (issue #20).
    #[serde(default)]
    pub store: crate::config_store::StoreConfig,
    /// `[cluster]`: one of several instances sharing the NATS store (issue #20).
    #[serde(default)]
    pub cluster: crate::config_cluster::ClusterConfig,
    /// `[http]`: the listener for `/metrics`, the API and the console (issue #21).
    #[serde(default)]
    pub http: crate::config_http::HttpConfig,
}

/// `[nats]`: where detect-fleet reads nats-server's advisories and CONNZ (docs/brokers.md).
#[derive(Debug, Clone, Deserialize)]
pub struct Nats {
    /// The NATS client URL (not the MQTT port), e.g. `nats://127.0.0.1:4222`.
    pub url: String,
    /// A system-account user with `password_file`, or a `creds_file` (JWT + nkey seed).
    pub user: Option<String>,
    pub password_file: Option<PathBuf>,
    pub creds_file: Option<PathBuf>,
    /// The CA of nats-server's certificate (PEM) when the URL is `tls://`; absent: the system's.
    pub ca_file: Option<PathBuf>,
    /// How often CONNZ is polled for the running message counters.
    #[serde(default = "default_connz_interval")]
    pub connz_interval_secs: u64,
}

fn default_connz_interval() -> u64 {
    10
}

/// Which broker integration feeds the cloud-side metrics (`[broker] source`, issue #18).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum BrokerSource {
    /// Nothing: cloud-side behaviors are loaded and never evaluated (the default).
    #[default]
    #[serde(rename = "none")]
    None,
    /// The mosquitto plugin's batches on `$detect/broker/events` (crates/mosquitto-plugin).
    #[serde(rename = "mosquitto-plugin")]
    MosquittoPlugin,
    /// nats-server's system-account advisories and CONNZ (`[nats]`, sources/nats.rs).
    #[serde(rename = "nats")]
    Nats,
}

impl BrokerSource {
    pub fn name(self) -> &'static str {
        match self {
            BrokerSource::None => "none",
            BrokerSource::MosquittoPlugin => "mosquitto-plugin",
            BrokerSource::Nats => "nats",
        }
    }
}

/// `[[dimension]]`: a named `TOPIC_FILTER` dimension (AWS's CreateDimension).
#[derive(Debug, Clone, Deserialize)]
pub struct DimensionConfig {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub values: Vec<String>,
}

/// `[broker]`: where the devices publish.
#[derive(Debug, Clone, Deserialize)]
pub struct Broker {
    #[serde(default = "default_endpoint")]
    pub endpoint: String,
    #[serde(default = "default_port")]
    pub port: u16,
    /// Absent: plain MQTT, allowed only for a loopback broker (with username/password_file).
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub tls_server_name: Option<String>,
    pub username: Option<String>,
    pub password_file: Option<PathBuf>,
    #[serde(default = "default_client_id")]
    pub client_id: String,
    /// Which integration feeds the cloud-side metrics: "none", "mosquitto-plugin", "nats".
    #[serde(default)]
    pub source: BrokerSource,
}

/// `[fleet]`.
#[derive(Debug, Clone, Deserialize)]
pub struct Fleet {
    pub profiles_dir: PathBuf,
    #[serde(default = "default_database")]
    pub database: PathBuf,
    #[serde(default = "default_min_interval")]
    pub min_interval_secs: u64,
    /// Violation history kept this many days (detect-rules §6.5).
    #[serde(default = "default_history_days")]
    pub history_days: u64,
    /// Every datapoint of every thing (the metric history, ListMetricValues) kept this many
    /// days (issue #21).
    #[serde(default = "default_metric_history_days")]
    pub metric_history_days: u64,
    /// Tests and demos only: every `durationSeconds` is evaluated as this many seconds
    /// (traffic sums, statistical windows), so a window passes in seconds, not minutes.
    pub duration_override_secs: Option<u64>,
}

/// `[fleet] duration_override_secs` must lie in 1..=this (the longest durationSeconds).
pub const MAX_DURATION_OVERRIDE_SECS: u64 = 3600;

/// `[alerts]`.
#[derive(Debug, Clone, Deserialize)]
pub struct Alerts {
    #[serde(default = "default_topic")]
    pub mqtt_topic: String,
    pub webhook_url: Option<String>,
}

impl Default for Alerts {
    fn default() -> Self {
        Alerts {
            mqtt_topic: default_topic(),
            webhook_url: None,
        }
    }
}

/// `[[attach]]`: a profile (by `securityProfileName`) on a target.
#[derive(Debug, Clone, Deserialize)]
pub struct Attach {
    pub profile: String,
    pub target: String,
}

fn default_endpoint() -> String {
    "127.0.0.1".into()
}
fn default_port() -> u16 {
    8883
}
fn default_client_id() -> String {
    "detect-fleet".into()
}

impl Broker {
    /// The client id of the connection that publishes alerts (`client_id` + `-alerts`).
    pub fn alerts_client_id(&self) -> String {
        alerts_client_id(&self.client_id)
    }
}

/// The alerts connection's client id for the fleet's `client_id`.
pub fn alerts_client_id(client_id: &str) -> String {
    format!("{client_id}-alerts")
}
fn default_database() -> PathBuf {
    "/var/lib/detect-fleet/fleet.db".into()
}
fn default_min_interval() -> u64 {
    300
}
fn default_history_days() -> u64 {
    90
}
fn default_metric_history_days() -> u64 {
    14
}
fn default_topic() -> String {
    "detect-fleet/alarms/{thing}".into()
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config {path}: cannot read: {source}")]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config {path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("config {path}: unknown keys: {}", keys.join(", "))]
    UnknownKeys { path: PathBuf, keys: Vec<String> },
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Unreadable {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text, path)
    }

    /// Parses and checks the text; `path` only names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let de = toml::Deserializer::parse(text).map_err(|e| invalid(e.to_string()))?;
        let mut unknown = Vec::new();
        let config: Config = serde_ignored::deserialize(de, |p| unknown.push(p.to_string()))
            .map_err(|e| invalid(e.to_string()))?;
        if !unknown.is_empty() {
            return Err(ConfigError::UnknownKeys {
                path: path.to_path_buf(),
                keys: unknown,
            });
        }
        config.check().map_err(invalid)?;
        Ok(config)
    }

    fn check(&self) -> Result<(), String> {
        let b = &self.broker;
        if b.cert_file.is_some() != b.key_file.is_some() {
            return Err("[broker] cert_file and key_file go together".into());
        }
        if b.username.is_some() != b.password_file.is_some() {
            return Err("[broker] username and password_file go together".into());
        }
        if b.ca_file.is_none() {
            if b.cert_file.is_some() {
                return Err("[broker] cert_file needs ca_file (TLS)".into());
            }
            if b.username.is_none() {
                return Err(
                    "[broker] ca_file is required (or username/password_file on a loopback broker)"
                        .into(),
                );
            }
            if !is_local(&b.endpoint) {
                return Err(format!(
                    "[broker] endpoint {:?}: plain MQTT (no ca_file) is allowed only for a loopback broker",
                    b.endpoint
                ));
            }
        } else if b.cert_file.is_none() && b.username.is_none() {
            return Err("[broker] give cert_file/key_file or username/password_file".into());
        }
        if b.client_id.is_empty() || b.client_id.len() > 128 {
            return Err(format!("[broker] client_id {:?}: 1–128 bytes", b.client_id));
        }
        if self.fleet.min_interval_secs == 0 {
            return Err("[fleet] min_interval_secs must be at least 1".into());
        }
        if let Some(secs) = self.fleet.duration_override_secs
            && !(1..=MAX_DURATION_OVERRIDE_SECS).contains(&secs)
        {
            return Err(format!(
                "[fleet] duration_override_secs {secs}: must be 1–{MAX_DURATION_OVERRIDE_SECS} (or absent)"
            ));
        }
        if self.fleet.history_days == 0 {
            return Err("[fleet] history_days must be at least 1".into());
        }
        if self.fleet.metric_history_days == 0 {
            return Err("[fleet] metric_history_days must be at least 1".into());
        }
        if !self.alerts.mqtt_topic.contains("{thing}") {
            return Err(format!(
                "[alerts] mqtt_topic {:?} must contain {{thing}}",
                self.alerts.mqtt_topic
            ));
        }
        if let Some(url) = &self.alerts.webhook_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            return Err(format!(
                "[alerts] webhook_url {url:?}: must start with https:// (or http://)"
            ));
        }
        check_dimensions(&self.dimension)?;
        check_nats(self)?;
        self.store.check()?;
        self.cluster.check(&self.store)?;
        self.http.check()?;
        crate::targets::check(&self.attach)
    }
}

/// `[broker] source = "nats"` needs `[nats]` with a URL and one way to log in.
fn check_nats(c: &Config) -> Result<(), String> {
    let Some(n) = &c.nats else {
        return match c.broker.source {
            BrokerSource::Nats => Err("[broker] source = \"nats\" needs a [nats] section".into()),
            _ => Ok(()),
        };
    };
    if !(n.url.starts_with("nats://") || n.url.starts_with("tls://")) {
        return Err(format!(
            "[nats] url {:?}: must start with nats:// or tls://",
            n.url
        ));
    }
    if n.user.is_some() != n.password_file.is_some() {
        return Err("[nats] user and password_file go together".into());
    }
    if n.user.is_some() == n.creds_file.is_some() {
        return Err("[nats] give user/password_file or creds_file (one of them)".into());
    }
    if !(1..=3600).contains(&n.connz_interval_secs) {
        return Err(format!(
            "[nats] connz_interval_secs {}: must be 1–3600",
            n.connz_interval_secs
        ));
    }
    Ok(())
}

/// AWS's dimension rules: a name of [a-zA-Z0-9:_-], type `TOPIC_FILTER`, 1–5 filters of valid
/// MQTT filter syntax.
fn check_dimensions(dims: &[DimensionConfig]) -> Result<(), String> {
    let mut seen = std::collections::BTreeSet::new();
    for d in dims {
        let at = format!("[[dimension]] {:?}", d.name);
        if !protocol::keys::is_name(&d.name) || !seen.insert(&d.name) {
            return Err(format!(
                "{at}: name must be unique, 1-128 characters of [a-zA-Z0-9:_-]"
            ));
        }
        if d.kind != "TOPIC_FILTER" {
            return Err(format!("{at}: type {:?}: only TOPIC_FILTER", d.kind));
        }
        if !(1..=5).contains(&d.values.len()) {
            return Err(format!("{at}: values: 1-5 topic filters"));
        }
        for f in &d.values {
            let levels: Vec<&str> = f.split('/').collect();
            let bad_hash = levels.iter().rev().skip(1).any(|l| l.contains('#'));
            let bad_level = levels
                .iter()
                .any(|l| l.len() > 1 && (l.contains('+') || l.contains('#')));
            if f.is_empty() || f.len() > 256 || bad_hash || bad_level {
                return Err(format!("{at}: {f:?} is not an MQTT topic filter"));
            }
        }
    }
    Ok(())
}

/// A loopback broker: plain MQTT never leaves the host.
fn is_local(endpoint: &str) -> bool {
    endpoint == "localhost"
        || endpoint
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
[broker]
ca_file = "/ca.pem"
cert_file = "/f.crt"
key_file = "/f.key"
[fleet]
profiles_dir = "/p"
"#;

    #[test]
    fn the_defaults_are_the_contracts() {
        let c = Config::parse(BASE, Path::new("f.toml")).unwrap();
        assert_eq!(c.broker.port, 8883);
        assert_eq!(c.broker.client_id, "detect-fleet");
        assert_eq!(c.fleet.min_interval_secs, 300);
        assert_eq!(c.alerts.mqtt_topic, "detect-fleet/alarms/{thing}");
    }

    #[test]
    fn the_shipped_fleet_toml_parses_with_the_contract_keys() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/fleet.toml");
        let c = Config::load(&path).unwrap();
        assert_eq!(c.broker.tls_server_name.as_deref(), Some("localhost"));
        assert_eq!(
            c.fleet.database,
            Path::new("/var/lib/detect-fleet/fleet.db")
        );
        assert_eq!(c.attach[0].target, "group:gateways");
        assert_eq!(c.dimension[0].name, "own-reports");
    }

    #[test]
    fn the_shipped_cloud_profile_has_one_rule_per_cloud_side_metric_on_defined_dimensions() {
        use detect::MetricRef;
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let c = Config::load(&root.join("config/fleet.toml")).unwrap();
        let dims = crate::window::Dimensions::new(&c.dimension);
        let path = root.join("config/profiles/fleet-cloud.json");
        let loaded = detect::profile::load_all(&[path]).unwrap();
        let mut metrics = std::collections::BTreeSet::new();
        for b in &loaded.profiles[0].behaviors {
            let Some(MetricRef::Cloud(r)) = b.rule.as_ref().map(|r| &r.metric) else {
                panic!("{} has no cloud-side rule", b.name);
            };
            metrics.insert(r.metric.name());
            if let Some(d) = &r.dimension {
                assert!(dims.has(&d.name), "{}", d.name);
            }
        }
        assert_eq!(metrics.len(), 8);
    }

    #[test]
    fn every_unknown_key_is_listed() {
        let text = format!("{BASE}colour = 1\n[alerts]\nmqtt_topik = \"x\"\n");
        let e = Config::parse(&text, Path::new("f.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("fleet.colour") && e.contains("alerts.mqtt_topik"),
            "{e}"
        );
    }

    #[test]
    fn the_duration_override_is_absent_by_default_and_bounded() {
        let c = Config::parse(BASE, Path::new("f.toml")).unwrap();
        assert_eq!(c.fleet.duration_override_secs, None);
        let ok = format!("{BASE}duration_override_secs = 12\n");
        let c = Config::parse(&ok, Path::new("f.toml")).unwrap();
        assert_eq!(c.fleet.duration_override_secs, Some(12));
        for bad in ["0", "3601"] {
            let text = format!("{BASE}duration_override_secs = {bad}\n");
            let e = Config::parse(&text, Path::new("f.toml"))
                .unwrap_err()
                .to_string();
            assert!(e.contains("duration_override_secs"), "{e}");
        }
    }

    #[test]
    fn the_nats_source_needs_a_nats_section_with_one_login() {
        let nats = BASE.replace("[fleet]", "source = \"nats\"\n[fleet]");
        let e = Config::parse(&nats, Path::new("f.toml")).unwrap_err();
        assert!(e.to_string().contains("needs a [nats] section"), "{e}");
        let ok = format!(
            "{nats}[nats]\nurl = \"nats://127.0.0.1:4222\"\nuser = \"sys\"\npassword_file = \"/p\"\n"
        );
        let c = Config::parse(&ok, Path::new("f.toml")).unwrap();
        assert_eq!(c.nats.map(|n| n.connz_interval_secs), Some(10));
        for (bad, why) in [
            (
                "url = \"http://x\"\nuser = \"s\"\npassword_file = \"/p\"",
                "nats:// or tls://",
            ),
            ("url = \"nats://x\"\nuser = \"s\"", "go together"),
            ("url = \"nats://x\"", "one of them"),
            (
                "url = \"nats://x\"\ncreds_file = \"/c\"\nconnz_interval_secs = 0",
                "connz_interval_secs",
            ),
        ] {
            let text = format!("{nats}[nats]\n{bad}\n");
            let e = Config::parse(&text, Path::new("f.toml")).unwrap_err();
            assert!(e.to_string().contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn the_broker_source_defaults_to_none_and_dimensions_are_checked() {
        let c = Config::parse(BASE, Path::new("f.toml")).unwrap();
        assert_eq!(c.broker.source, BrokerSource::None);
        let text = BASE.replace("[fleet]", "source = \"mosquitto-plugin\"\n[fleet]")
            + "[[dimension]]\nname = \"own\"\ntype = \"TOPIC_FILTER\"\nvalues = [\"$aws/things/${iot:ClientId}/#\"]\n";
        let c = Config::parse(&text, Path::new("f.toml")).unwrap();
        assert_eq!(c.broker.source, BrokerSource::MosquittoPlugin);
        assert_eq!(c.dimension[0].values.len(), 1);
        for bad in ["a/#/b", "a/b+", ""] {
            let t = text.replace("$aws/things/${iot:ClientId}/#", bad);
            let e = Config::parse(&t, Path::new("f.toml"))
                .unwrap_err()
                .to_string();
            assert!(e.contains("[[dimension]]"), "{e}");
        }
        let t = text.replace("mosquitto-plugin", "kafka");
        assert!(Config::parse(&t, Path::new("f.toml")).is_err());
    }

    #[test]
    fn plain_mqtt_is_refused_for_a_remote_broker() {
        let text = "[broker]\nendpoint = \"10.0.0.1\"\nusername = \"u\"\npassword_file = \"/p\"\n[fleet]\nprofiles_dir = \"/p\"\n";
        let e = Config::parse(text, Path::new("f.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("loopback"), "{e}");
        let local = text.replace("10.0.0.1", "127.0.0.1");
        assert!(Config::parse(&local, Path::new("f.toml")).is_ok());
    }
}
