//! Runs the real `detect-agent run` binary for the daemon tests: its config file, its log,
//! signals, and the helpers that read the backend's record of what it published.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub use super::agent_config::{COUNT_LOOPBACK, Setup, config, rand_suffix, set_verdict_timeout};
use super::{Backend, Received, eventually};

pub struct Agent {
    pub child: Child,
    pub log: PathBuf,
}

/// A failed assertion must not leave the agent running.
impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Agent {
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, sig) }, 0);
    }

    /// SIGTERM, then the exit status, which must come within 5 s.
    pub async fn stop(mut self) -> (ExitStatus, Duration) {
        let t0 = Instant::now();
        self.signal(libc::SIGTERM);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status, t0.elapsed());
            }
            if t0.elapsed() > Duration::from_secs(10) {
                let _ = self.child.kill();
                panic!("agent ignored SIGTERM for 10 s; log:\n{}", self.log());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Switches a config written by `config` to a user name / password login: writes the
/// password file (0600, with a trailing newline as `echo` leaves it) next to the config and,
/// unless `keep_cert`, drops the client certificate lines.
pub fn use_password(config: &Path, username: &str, password: &str, keep_cert: bool) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let file = config.with_file_name(format!("password-{}", rand_suffix()));
    std::fs::write(&file, format!("{password}\n")).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let text = std::fs::read_to_string(config).unwrap();
    let mut out = String::new();
    for line in text.lines() {
        let cert_line = line.starts_with("cert_file =") || line.starts_with("key_file =");
        if !cert_line || keep_cert {
            out.push_str(line);
            out.push('\n');
        }
        if line == "[mqtt]" {
            out.push_str(&format!(
                "username = {username:?}\npassword_file = {file:?}\n"
            ));
        }
    }
    std::fs::write(config, out).unwrap();
    file
}

pub fn spawn(config: &Path, env: &[(&str, &str)]) -> Agent {
    spawn_wrapped(config, env, &[])
}

/// Like `spawn`, started through `wrapper` (a program and its arguments, which must exec
/// the agent binary and its arguments appended to them, e.g. `unshare -m sh -c '…; exec
/// "$0" "$@"'`), so the wrapper's pid is the agent's.
pub fn spawn_wrapped(config: &Path, env: &[(&str, &str)], wrapper: &[&str]) -> Agent {
    let log = config.with_extension(format!("log-{}", rand_suffix()));
    let file = std::fs::File::create(&log).unwrap();
    let mut cmd = match wrapper.split_first() {
        Some((program, args)) => {
            let mut c = Command::new(program);
            c.args(args).arg(super::bin::agent());
            c
        }
        None => Command::new(super::bin::agent()),
    };
    cmd.arg("run")
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "info")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(file);
    for (k, v) in env {
        cmd.env(k, v);
    }
    Agent {
        child: cmd.spawn().unwrap(),
        log,
    }
}

pub fn accepted_for<'a>(got: &'a [Received], thing: &str) -> Vec<&'a Received> {
    got.iter()
        .filter(|r| r.thing == thing && r.rejected.is_none())
        .collect()
}

/// (report id, bytes_in) of `thing`'s accepted reports that carry network_stats.
pub fn bytes_in_of_accepted(got: &[Received], thing: &str, short: bool) -> Vec<(u64, u64)> {
    let (path, key) = if short {
        ("/met/ns", "bi")
    } else {
        ("/metrics/network_stats", "bytes_in")
    };
    accepted_for(got, thing)
        .iter()
        .filter_map(|r| {
            let ns = r.value.as_ref()?.pointer(path)?;
            Some((r.report_id?, ns.get(key)?.as_u64()?))
        })
        .collect()
}

/// The highest report id the backend has received so far.
pub fn last_report_id(backend: &Backend) -> u64 {
    backend
        .received()
        .iter()
        .filter_map(|r| r.report_id)
        .max()
        .unwrap()
}

/// Waits up to `limit` for an accepted report of `thing` with network_stats and an id above
/// `after`; the first such (report id, bytes_in).
pub async fn first_stats_after(
    backend: &Backend,
    thing: &str,
    short: bool,
    after: u64,
    limit: Duration,
) -> Option<(u64, u64)> {
    let find = || {
        bytes_in_of_accepted(&backend.received(), thing, short)
            .into_iter()
            .find(|(id, _)| *id > after)
    };
    eventually(limit, || find().is_some()).await;
    find()
}

/// Sends `bytes` through a loopback TCP connection (counted on `lo`).
pub async fn loopback_traffic(bytes: usize) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let reader = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 64 * 1024];
        let mut n = 0;
        while n < bytes {
            let r = s.read(&mut buf).await.unwrap();
            if r == 0 {
                break;
            }
            n += r;
        }
        n
    });
    let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
    let chunk = vec![7u8; 64 * 1024];
    let mut sent = 0;
    while sent < bytes {
        c.write_all(&chunk).await.unwrap();
        sent += chunk.len();
    }
    drop(c);
    assert!(reader.await.unwrap() >= bytes);
}
