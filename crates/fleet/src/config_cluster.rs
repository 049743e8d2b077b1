//! `[cluster]` of the fleet config (issue #20 item 2): whether `run` shares the work with other
//! instances over the NATS store, this instance's name, the partitions and the lease length.

use std::time::Duration;

use serde::Deserialize;

use crate::cluster::{DEFAULT_PARTITIONS, Settings};
use crate::config_store::{StoreConfig, StoreKind};

/// `[cluster]`.
#[derive(Debug, Clone, Deserialize)]
pub struct ClusterConfig {
    /// Run as one of several instances (needs `[store] kind = "nats"`).
    #[serde(default)]
    pub enabled: bool,
    /// This instance's name, unique in the cluster; absent: `{hostname}-{pid}`.
    pub instance: Option<String>,
    /// Partitions things hash into; the same on every instance for the cluster's life.
    #[serde(default = "default_partitions")]
    pub partitions: u32,
    /// A partition whose lease is not renewed for this long is taken over by another instance.
    #[serde(default = "default_lease")]
    pub lease_secs: u64,
    /// true: one MQTT shared subscription (`$share/detect-fleet/...`), each report reaches
    /// one instance and goes on to its owner. false (the default): every instance receives
    /// every report and judges those it owns (mosquitto 2.0.11, Debian 12's, does not deliver
    /// `$aws/...` topics to shared subscriptions).
    #[serde(default)]
    pub shared_subscription: bool,
    /// Where reports come from: the MQTT broker of `[broker]` (the default) or NATS subjects
    /// (devices on nats-server's MQTT gateway; `service/nats_intake.rs`).
    #[serde(default)]
    pub intake: Intake,
}

/// `[cluster] intake`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Intake {
    /// Subscribed on `[broker]`'s MQTT connection.
    #[default]
    Mqtt,
    /// One JetStream work-queue stream of the report subjects and one durable pull consumer
    /// shared by every instance: each report goes to one instance.
    Nats,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            enabled: false,
            instance: None,
            partitions: default_partitions(),
            lease_secs: default_lease(),
            shared_subscription: false,
            intake: Intake::Mqtt,
        }
    }
}

fn default_partitions() -> u32 {
    DEFAULT_PARTITIONS
}
fn default_lease() -> u64 {
    6
}

impl ClusterConfig {
    /// The `[cluster]` rules, in the words check-config prints.
    pub fn check(&self, store: &StoreConfig) -> Result<(), String> {
        if !self.enabled {
            if self.intake == Intake::Nats {
                return Err("[cluster] intake = \"nats\" needs [cluster] enabled = true".into());
            }
            return Ok(());
        }
        if self.intake == Intake::Nats && self.shared_subscription {
            return Err(
                "[cluster] shared_subscription = true is for intake = \"mqtt\"; with intake = \"nats\" reports come from NATS"
                    .into(),
            );
        }
        if store.kind != StoreKind::Nats {
            return Err(
                "[cluster] enabled = true needs [store] kind = \"nats\" (instances share their state there)"
                    .into(),
            );
        }
        if !(2..=120).contains(&self.lease_secs) {
            return Err(format!(
                "[cluster] lease_secs {}: must be 2–120",
                self.lease_secs
            ));
        }
        self.settings(store.replicas)
            .check()
            .map_err(|e| format!("[cluster] {e}"))
    }

    /// The instance's name: `instance`, else `{hostname}-{pid}` with other characters as '-'.
    pub fn instance_name(&self) -> String {
        if let Some(name) = &self.instance {
            return name.clone();
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .unwrap_or_else(|_| "detect-fleet".into());
        let host: String = host
            .trim()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        format!("{host}-{}", std::process::id())
    }

    /// Whether `run`'s report connection uses a clean session: see `shared_subscription`
    /// and `instance` in docs/fleet.md "Cluster mode in run".
    pub fn clean_session(&self) -> bool {
        self.enabled
            && (self.shared_subscription || self.instance.is_none() || self.intake == Intake::Nats)
    }

    /// The ownership keeper's settings (the lease bucket has the store's replicas).
    pub fn settings(&self, replicas: usize) -> Settings {
        let mut s = Settings::new(&self.instance_name());
        s.partitions = self.partitions;
        s.replicas = replicas;
        s.ttl = Duration::from_secs(self.lease_secs);
        s
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::Config;

    const BASE: &str =
        "[broker]\nusername = \"u\"\npassword_file = \"/pw\"\n[fleet]\nprofiles_dir = \"/p\"\n";
    const NATS: &str = "[store]\nkind = \"nats\"\nservers = [\"nats://a:4222\"]\n";

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(&format!("{BASE}{text}"), Path::new("f.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn cluster_needs_the_nats_store_and_a_plain_name() {
        let c = parse("").unwrap();
        assert!(!c.cluster.enabled);
        let e = parse("[cluster]\nenabled = true\n").unwrap_err();
        assert!(e.contains("needs [store] kind = \"nats\""), "{e}");
        let e = parse(&format!(
            "{NATS}[cluster]\nenabled = true\ninstance = \"a.b\"\n"
        ))
        .unwrap_err();
        assert!(e.contains("instance name \"a.b\""), "{e}");
        let e = parse(&format!(
            "{NATS}[cluster]\nenabled = true\nlease_secs = 1\n"
        ))
        .unwrap_err();
        assert!(e.contains("lease_secs 1"), "{e}");
        let e = parse(&format!(
            "{NATS}[cluster]\nenabled = true\npartitions = 0\n"
        ))
        .unwrap_err();
        assert!(e.contains("partitions = 0"), "{e}");
        let c = parse(&format!("{NATS}[cluster]\nenabled = true\n")).unwrap();
        let s = c.cluster.settings(c.store.replicas);
        assert!(s.check().is_ok(), "{}", s.instance);
        assert_eq!((s.partitions, s.ttl.as_secs()), (64, 6));
        assert_eq!(c.cluster.intake, super::Intake::Mqtt);
    }

    #[test]
    fn nats_intake_needs_cluster_mode_and_no_shared_subscription() {
        let e = parse(&format!("{NATS}[cluster]\nintake = \"nats\"\n")).unwrap_err();
        assert!(
            e.contains("intake = \"nats\" needs [cluster] enabled"),
            "{e}"
        );
        let e = parse(&format!(
            "{NATS}[cluster]\nenabled = true\nintake = \"nats\"\nshared_subscription = true\n"
        ))
        .unwrap_err();
        assert!(
            e.contains("shared_subscription = true is for intake"),
            "{e}"
        );
        let e = parse(&format!(
            "{NATS}[cluster]\nenabled = true\nintake = \"kafka\"\n"
        ))
        .unwrap_err();
        assert!(e.contains("kafka"), "{e}");
        let c = parse(&format!(
            "{NATS}[cluster]\nenabled = true\nintake = \"nats\"\n"
        ))
        .unwrap();
        assert_eq!(c.cluster.intake, super::Intake::Nats);
        assert!(c.cluster.clean_session());
    }
}
