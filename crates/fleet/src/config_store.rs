//! `[store]` of the fleet config (issue #20): SQLite (the default) or the NATS JetStream
//! cluster store with its servers, login and TLS; checked at parse, secrets read at open.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use serde::Deserialize;

use crate::store::{NatsAuth, NatsOptions};

/// `[store]`.
#[derive(Debug, Clone, Deserialize)]
pub struct StoreConfig {
    /// "sqlite" (`[fleet] database`, the default) or "nats".
    #[serde(default)]
    pub kind: StoreKind,
    /// NATS servers (`nats://host:port` or `tls://host:port`); any one is enough to connect.
    #[serde(default)]
    pub servers: Vec<String>,
    /// A user with `password_file`, or `creds_file` (JWT + nkey seed), or `token_file`.
    pub user: Option<String>,
    pub password_file: Option<PathBuf>,
    pub creds_file: Option<PathBuf>,
    pub token_file: Option<PathBuf>,
    /// CA of the servers' certificates (PEM); TLS is required when set.
    pub ca_file: Option<PathBuf>,
    /// Client certificate and key (PEM), for servers that verify clients.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// JetStream replicas of every bucket and stream, when detect-fleet creates them.
    #[serde(default = "default_replicas")]
    pub replicas: usize,
    /// The longest one store call waits for the cluster.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            kind: StoreKind::Sqlite,
            servers: Vec::new(),
            user: None,
            password_file: None,
            creds_file: None,
            token_file: None,
            ca_file: None,
            cert_file: None,
            key_file: None,
            replicas: default_replicas(),
            timeout_secs: default_timeout(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum StoreKind {
    #[default]
    #[serde(rename = "sqlite")]
    Sqlite,
    #[serde(rename = "nats")]
    Nats,
}

fn default_replicas() -> usize {
    3
}
fn default_timeout() -> u64 {
    10
}

impl StoreConfig {
    /// The `[store]` rules, in the words check-config prints.
    pub fn check(&self) -> Result<(), String> {
        let nats_keys = !self.servers.is_empty()
            || self.user.is_some()
            || self.creds_file.is_some()
            || self.token_file.is_some()
            || self.ca_file.is_some()
            || self.cert_file.is_some();
        if self.kind == StoreKind::Sqlite {
            if nats_keys {
                return Err(
                    "[store] servers, logins and TLS files are for kind = \"nats\" (kind is \"sqlite\")"
                        .into(),
                );
            }
            return Ok(());
        }
        if self.servers.is_empty() {
            return Err(
                "[store] kind = \"nats\" needs servers = [\"nats://HOST:4222\", ...]".into(),
            );
        }
        if let Some(s) = self
            .servers
            .iter()
            .find(|s| !(s.starts_with("nats://") || s.starts_with("tls://")))
        {
            return Err(format!(
                "[store] servers: {s:?} must start with nats:// or tls://"
            ));
        }
        if self.user.is_some() != self.password_file.is_some() {
            return Err("[store] user and password_file go together".into());
        }
        let logins = [
            self.user.is_some(),
            self.creds_file.is_some(),
            self.token_file.is_some(),
        ];
        if logins.iter().filter(|l| **l).count() > 1 {
            return Err(
                "[store] give one login: user/password_file, creds_file or token_file".into(),
            );
        }
        if self.cert_file.is_some() != self.key_file.is_some() {
            return Err("[store] cert_file and key_file go together".into());
        }
        if !(1..=5).contains(&self.replicas) {
            return Err(format!(
                "[store] replicas {}: JetStream allows 1–5",
                self.replicas
            ));
        }
        if !(1..=300).contains(&self.timeout_secs) {
            return Err(format!(
                "[store] timeout_secs {}: must be 1–300",
                self.timeout_secs
            ));
        }
        Ok(())
    }

    /// The cluster store's options, secrets read from their files.
    pub fn nats_options(&self) -> anyhow::Result<NatsOptions> {
        let read = |key: &str, path: &PathBuf| {
            std::fs::read_to_string(path)
                .map(|s| s.trim_end_matches(['\r', '\n']).to_string())
                .with_context(|| format!("[store] {key} {}", path.display()))
        };
        let auth = match (
            &self.user,
            &self.password_file,
            &self.creds_file,
            &self.token_file,
        ) {
            (Some(u), Some(p), _, _) => {
                NatsAuth::UserPassword(u.clone(), read("password_file", p)?)
            }
            (_, _, Some(c), _) => NatsAuth::CredsFile(c.clone()),
            (_, _, _, Some(t)) => NatsAuth::Token(read("token_file", t)?),
            _ => NatsAuth::None,
        };
        Ok(NatsOptions {
            servers: self.servers.clone(),
            auth,
            ca_file: self.ca_file.clone(),
            client_cert: self.cert_file.clone().zip(self.key_file.clone()),
            replicas: self.replicas,
            timeout: Duration::from_secs(self.timeout_secs),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::Config;

    const BASE: &str =
        "[broker]\nusername = \"u\"\npassword_file = \"/pw\"\n[fleet]\nprofiles_dir = \"/p\"\n";

    fn parse(store: &str) -> Result<Config, String> {
        Config::parse(&format!("{BASE}[store]\n{store}"), Path::new("f.toml"))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn sqlite_is_the_default_and_nats_needs_servers_and_one_login() {
        let c = Config::parse(BASE, Path::new("f.toml")).unwrap();
        assert_eq!(c.store.kind, super::StoreKind::Sqlite);
        assert_eq!((c.store.replicas, c.store.timeout_secs), (3, 10));
        let e = parse("kind = \"nats\"").unwrap_err();
        assert!(e.contains("needs servers"), "{e}");
        let e = parse("kind = \"nats\"\nservers = [\"127.0.0.1:4222\"]").unwrap_err();
        assert!(e.contains("must start with nats://"), "{e}");
        let e = parse("servers = [\"nats://127.0.0.1:4222\"]").unwrap_err();
        assert!(e.contains("for kind = \"nats\""), "{e}");
        let two = "kind = \"nats\"\nservers = [\"nats://a:4222\"]\ntoken_file = \"/t\"\ncreds_file = \"/c\"";
        assert!(parse(two).unwrap_err().contains("give one login"));
        let e = parse("kind = \"nats\"\nservers = [\"nats://a:4222\"]\nreplicas = 7").unwrap_err();
        assert!(e.contains("replicas 7"), "{e}");
        let ok = parse("kind = \"nats\"\nservers = [\"nats://a:4222\", \"tls://b:4222\"]\nuser = \"f\"\npassword_file = \"/pw\"\nreplicas = 1").unwrap();
        assert_eq!(ok.store.servers.len(), 2);
    }
}
