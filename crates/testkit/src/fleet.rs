//! Runs `detect-fleet` (the binary under test): a config written into a work directory,
//! `run` as a child process (killed on drop, or with SIGKILL by a test), the other
//! subcommands as commands whose output the tests read.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::broker::Broker;
use super::certs::Pki;

pub struct Fleet {
    pub dir: PathBuf,
    pub config: PathBuf,
    child: Option<Child>,
    runs: u32,
}

/// A profile forbidding one listening TCP port (criteria describe normal behaviour).
pub fn forbid_port(name: &str, port: u16) -> serde_json::Value {
    serde_json::json!({
        "securityProfileName": name,
        "behaviors": [{
            "name": "no-forbidden-listener",
            "metric": "aws:listening-tcp-ports",
            "criteria": {"comparisonOperator": "not-in-port-set", "value": {"ports": [port]}}
        }]
    })
}

impl Fleet {
    /// Writes `fleet.toml` (the backend certificate, `profiles` into profiles/, `attach` as
    /// (profile, target) pairs) into `dir`; starts nothing.
    pub fn configure(
        dir: &Path,
        pki: &Pki,
        broker: &Broker,
        profiles: &[serde_json::Value],
        attach: &[(&str, &str)],
        min_interval_secs: u64,
    ) -> Fleet {
        Fleet::configure_port(dir, pki, broker.port, profiles, attach, min_interval_secs)
    }

    /// `configure` for an MQTT broker on `port` that is not a testkit `Broker` (nats-server).
    pub fn configure_port(
        dir: &Path,
        pki: &Pki,
        port: u16,
        profiles: &[serde_json::Value],
        attach: &[(&str, &str)],
        min_interval_secs: u64,
    ) -> Fleet {
        let profiles_dir = dir.join("profiles");
        std::fs::create_dir_all(&profiles_dir).unwrap();
        for (i, p) in profiles.iter().enumerate() {
            let path = profiles_dir.join(format!("profile-{i}.json"));
            std::fs::write(path, serde_json::to_vec_pretty(p).unwrap()).unwrap();
        }
        let mut text = format!(
            r#"[broker]
endpoint = "127.0.0.1"
port = {port}
ca_file = "{ca}"
cert_file = "{cert}"
key_file = "{key}"
tls_server_name = "localhost"
client_id = "detect-fleet-test"
[fleet]
profiles_dir = "{profiles}"
database = "{db}"
min_interval_secs = {min_interval_secs}
[alerts]
mqtt_topic = "detect-fleet/alarms/{{thing}}"
[http]
listen = "127.0.0.1:0"
"#,
            ca = pki.ca.display(),
            cert = pki.backend.cert.display(),
            key = pki.backend.key.display(),
            profiles = profiles_dir.display(),
            db = dir.join("fleet.db").display(),
        );
        for (profile, target) in attach {
            text.push_str(&format!(
                "[[attach]]\nprofile = {profile:?}\ntarget = {target:?}\n"
            ));
        }
        let config = dir.join("fleet.toml");
        std::fs::write(&config, text).unwrap();
        Fleet {
            dir: dir.to_path_buf(),
            config,
            child: None,
            runs: 0,
        }
    }

    /// Requires `token` on the HTTP API (`[http] token_file`, written beside the config).
    pub fn set_token(&self, token: &str) {
        let file = self.dir.join("http.token");
        std::fs::write(&file, format!("{token}\n")).unwrap();
        let text = std::fs::read_to_string(&self.config).unwrap();
        let listen = "listen = \"127.0.0.1:0\"\n";
        assert!(text.contains(listen), "{text}");
        let with_token = format!("{listen}token_file = {:?}\n", file.display().to_string());
        std::fs::write(&self.config, text.replace(listen, &with_token)).unwrap();
    }

    /// Adds `line` (a `key = value`) to the `[fleet]` section of the config file.
    /// Appends `text` (whole tables) to the config file.
    pub fn append_config(&self, text: &str) {
        let mut all = std::fs::read_to_string(&self.config).unwrap();
        all.push_str(text);
        std::fs::write(&self.config, all).unwrap();
    }

    pub fn set_fleet_key(&self, line: &str) {
        let text = std::fs::read_to_string(&self.config).unwrap();
        let text = text.replacen("[fleet]\n", &format!("[fleet]\n{line}\n"), 1);
        std::fs::write(&self.config, text).unwrap();
    }

    /// Logs in with `id`'s certificate instead of the backend's (e.g. CN `detect-fleet`, the
    /// identity the shipped ACL grants).
    pub fn set_identity(&self, id: &super::certs::Identity) {
        let text = std::fs::read_to_string(&self.config).unwrap();
        let text: String = text
            .lines()
            .map(|l| {
                if l.starts_with("cert_file = ") {
                    format!("cert_file = \"{}\"\n", id.cert.display())
                } else if l.starts_with("key_file = ") {
                    format!("key_file = \"{}\"\n", id.key.display())
                } else {
                    format!("{l}\n")
                }
            })
            .collect();
        std::fs::write(&self.config, text).unwrap();
    }

    /// `detect-fleet ARGS --config CONFIG`: (success, stdout, stderr).
    pub fn cli(&self, args: &[&str]) -> (bool, String, String) {
        let out = Command::new(super::bin::fleet())
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `violations --format json [extra]` parsed.
    pub fn violations(&self, extra: &[&str]) -> Vec<serde_json::Value> {
        let mut args = vec!["violations", "--format", "json"];
        args.extend_from_slice(extra);
        let (ok, out, err) = self.cli(&args);
        assert!(ok, "{err}");
        serde_json::from_str(&out).unwrap()
    }

    /// (behavior, endEventType or "") of every violation of `thing`.
    pub fn episodes(&self, thing: &str) -> Vec<(String, String)> {
        self.violations(&["--thing", thing])
            .iter()
            .map(|v| {
                let b = v["behavior"]["name"].as_str().unwrap_or("").to_string();
                (b, v["endEventType"].as_str().unwrap_or("").to_string())
            })
            .collect()
    }

    /// Starts `detect-fleet run`; its log goes to run-N.log.
    pub fn start(&mut self) {
        assert!(self.child.is_none());
        self.runs += 1;
        let log = self.dir.join(format!("run-{}.log", self.runs));
        let child = Command::new(super::bin::fleet())
            .arg("run")
            .arg("--config")
            .arg(&self.config)
            .env(
                "RUST_LOG",
                std::env::var("FLEET_TEST_LOG").unwrap_or("info".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    /// The running service's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Starts `run` and waits (at most 20 s) until it is subscribed.
    pub async fn start_subscribed(&mut self) {
        self.start();
        let up = super::eventually(std::time::Duration::from_secs(20), || self.connected()).await;
        assert!(up, "detect-fleet did not subscribe:\n{}", self.log());
    }

    /// SIGKILL, no goodbye.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// SIGTERM, then waits at most `limit` for the exit: its status, or None when it had not
    /// exited by then (it is then killed).
    pub fn terminate(&mut self, limit: std::time::Duration) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        // SAFETY: kill(2) with a pid and a signal number; no memory is shared.
        let rc = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        assert_eq!(rc, 0, "kill({}, SIGTERM) failed", child.id());
        let deadline = std::time::Instant::now() + limit;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    pub fn log(&self) -> String {
        (1..=self.runs)
            .map(|i| {
                std::fs::read_to_string(self.dir.join(format!("run-{i}.log"))).unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The address the current run's HTTP listener bound (`[http] listen`, port 0 in the
    /// config this writes), once it logged it.
    pub fn http_addr(&self) -> Option<std::net::SocketAddr> {
        let log = std::fs::read_to_string(self.dir.join(format!("run-{}.log", self.runs))).ok()?;
        let at = log.find("HTTP listening on ")? + "HTTP listening on ".len();
        let url = log[at..].split_whitespace().next()?;
        url.split("://").nth(1)?.parse().ok()
    }

    /// True once the current run logged its subscription to the broker.
    pub fn connected(&self) -> bool {
        std::fs::read_to_string(self.dir.join(format!("run-{}.log", self.runs)))
            .unwrap_or_default()
            .contains("subscribed to the report topics")
    }
}

/// A single-node test's world: a fresh PKI, mosquitto with mutual TLS, a work directory and
/// a `Fleet` configured in it (minimum report interval 1 s), not started. Bound in this order
/// (`let (pki, broker, work, fleet) = single(..)`), the fleet drops first, the broker after it.
pub fn single(
    profiles: &[serde_json::Value],
    attach: &[(&str, &str)],
) -> (Pki, Broker, tempfile::TempDir, Fleet) {
    let pki = Pki::generate();
    let broker = Broker::start(&pki);
    let work = tempfile::tempdir().unwrap();
    let fleet = Fleet::configure(work.path(), &pki, &broker, profiles, attach, 1);
    (pki, broker, work, fleet)
}

impl Drop for Fleet {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Every fleet's log, one after the other (a failing cluster test prints them all).
pub fn logs(fleets: &[Fleet]) -> String {
    let all: Vec<String> = fleets.iter().map(Fleet::log).collect();
    all.join("\n-----\n")
}
