//! Real `detect-agent run` processes for the fleet tests, one per simulated device: config,
//! state and log in a directory of their own. The binary is taken by path (see bin.rs).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::agent_config;
use super::certs::Identity;

/// The agent binary the fleet tests run (`$DETECT_AGENT_BIN` or target/<profile>/detect-agent).
pub fn binary() -> &'static Path {
    super::bin::agent()
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
