//! The config file of a real `detect-agent run` for the tests (its broker, identity, interval,
//! format and extra sections). Used by the agent's and the fleet's tests.

use std::path::{Path, PathBuf};

use super::certs::Identity;

pub struct Setup<'a> {
    pub dir: &'a Path,
    pub port: u16,
    pub ca: &'a Path,
    pub id: &'a Identity,
    pub format: &'a str,
    pub interval: u64,
    pub extra: &'a str,
}

impl<'a> Setup<'a> {
    /// A setup with nothing extra: the broker on `port`, the thing `id`, `interval` seconds.
    pub fn plain(
        dir: &'a Path,
        port: u16,
        ca: &'a Path,
        id: &'a Identity,
        format: &'a str,
        interval: u64,
    ) -> Setup<'a> {
        Setup {
            dir,
            port,
            ca,
            id,
            format,
            interval,
            extra: "",
        }
    }
}

pub fn config(s: &Setup) -> PathBuf {
    let path = s.dir.join(format!("config-{}.toml", s.format));
    let text = format!(
        r#"thing_name = "{thing}"
[mqtt]
endpoint = "127.0.0.1"
port = {port}
ca_file = "{ca}"
cert_file = "{cert}"
key_file = "{key}"
tls_server_name = "localhost"
[report]
interval_secs = {interval}
format = "{format}"
verdict_timeout_secs = 3
[state]
dir = "{state}"
{extra}
"#,
        thing = s.id.name,
        port = s.port,
        ca = s.ca.display(),
        cert = s.id.cert.display(),
        key = s.id.key.display(),
        interval = s.interval,
        format = s.format,
        state = s.dir.join("state").display(),
        extra = s.extra,
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// `Setup::extra` that counts loopback traffic (the tests send theirs over lo).
pub const COUNT_LOOPBACK: &str =
    "[collect]\ninclude_interfaces = [\"lo\"]\nexclude_interfaces = []\n";

/// Rewrites `verdict_timeout_secs` in a config written by `config`.
pub fn set_verdict_timeout(config: &Path, secs: u64) {
    let text = std::fs::read_to_string(config).unwrap();
    let old = "verdict_timeout_secs = 3";
    assert!(text.contains(old), "{text}");
    let new = format!("verdict_timeout_secs = {secs}");
    std::fs::write(config, text.replace(old, &new)).unwrap();
}

pub fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}
