//! Real `detect-agent run` processes for the fleet tests. The agent binary is another
//! package's, so `CARGO_BIN_EXE_` does not name it: it is built once with
//! `cargo build -p detect-agent` and taken from the same target directory as detect-fleet.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use super::certs::Identity;

/// `target/debug/detect-agent`, built (or checked fresh) once per test binary.
pub fn binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let fleet = Path::new(env!("CARGO_BIN_EXE_detect-fleet"));
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args([
                "build",
                "--quiet",
                "-p",
                "detect-agent",
                "--bin",
                "detect-agent",
            ])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .unwrap();
        assert!(status.success(), "cargo build -p detect-agent failed");
        let bin = fleet.with_file_name("detect-agent");
        assert!(bin.is_file(), "{} missing", bin.display());
        bin
    })
}

pub fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
        ^ u128::from(std::process::id())
}

pub struct Agent {
    child: Child,
    pub log: PathBuf,
}

impl Agent {
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `detect-agent run` as `thing` (client id = thing name) with the certificate `id`,
/// reporting every `interval` seconds in `format` to the broker on `port`.
pub fn spawn(
    dir: &Path,
    thing: &str,
    port: u16,
    ca: &Path,
    id: &Identity,
    format: &str,
    interval: u64,
) -> Agent {
    let state = dir.join(format!("state-{thing}"));
    let config = dir.join(format!("agent-{thing}.toml"));
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
verdict_timeout_secs = 1
[state]
dir = "{state}"
"#,
        ca = ca.display(),
        cert = id.cert.display(),
        key = id.key.display(),
        state = state.display(),
    );
    std::fs::write(&config, text).unwrap();
    let log = dir.join(format!("agent-{thing}.log"));
    let child = Command::new(binary())
        .arg("run")
        .arg("--config")
        .arg(&config)
        .env("RUST_LOG", "info")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    Agent { child, log }
}
