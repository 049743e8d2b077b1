//! Real `detect-agent run` processes for the fleet tests. The agent binary is another
//! package's, so `CARGO_BIN_EXE_` does not name it: it is built once with
//! `cargo build -p detect-agent` and taken from the same target directory as detect-fleet.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use super::agent_config;
use super::certs::Identity;

/// `target/debug/detect-agent`, built (or checked fresh) once per test binary.
pub fn binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let fleet = Path::new(env!("CARGO_BIN_EXE_detect-fleet"));
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = Command::new(cargo);
        // The CARGO_* variables cargo sets for this test (CARGO_MANIFEST_DIR, CARGO_PKG_*,
        // ...) would reach build scripts that watch them (ring's) and make this build, and
        // the next one from a shell, recompile half the tree.
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy();
            if key.starts_with("CARGO_") && key != "CARGO_HOME" && key != "CARGO_TARGET_DIR" {
                build.env_remove(&*key);
            }
        }
        let status = build
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
/// reporting every `interval` seconds in `format` to the broker on `port`, with `extra`
/// config sections (`[collect]`, ...); its config, state and log live in `dir/agent-{thing}/`.
#[allow(clippy::too_many_arguments)]
pub fn spawn(
    dir: &Path,
    thing: &str,
    port: u16,
    ca: &Path,
    id: &Identity,
    format: &str,
    interval: u64,
    extra: &str,
) -> Agent {
    let dir = dir.join(format!("agent-{thing}"));
    std::fs::create_dir_all(&dir).unwrap();
    let id = Identity {
        name: thing.to_string(),
        cert: id.cert.clone(),
        key: id.key.clone(),
    };
    let config = agent_config::config(&agent_config::Setup {
        dir: &dir,
        port,
        ca,
        id: &id,
        format,
        interval,
        extra,
    });
    agent_config::set_verdict_timeout(&config, 1);
    let log = dir.join("agent.log");
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
