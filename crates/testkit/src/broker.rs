//! Runs a real mosquitto with TLS on a free loopback port, logging clients in by certificate,
//! password, or both; stop/start keep the port.
//! Killed on Drop. Needs the `mosquitto` binary (PATH or /usr/sbin).

use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use super::certs::Pki;
use super::server::{self, free_port};

/// The mosquitto configuration shipped for detect-fleet (config/mosquitto/detect.conf):
/// `Broker::start_shipped` runs it whole; every other test broker takes its broker-wide lines.
pub const SHIPPED_CONF: &str = include_str!("../../../config/mosquitto/detect.conf");
/// The ACL shipped with it (config/mosquitto/detect.acl).
pub const SHIPPED_ACL: &str = include_str!("../../../config/mosquitto/detect.acl");

/// The broker-wide lines of the shipped configuration (those before its first `listener`),
/// without `acl_file`: the older tests' clients do not log in as their thing names.
pub fn shipped_broker_wide() -> String {
    SHIPPED_CONF
        .lines()
        .take_while(|l| !l.starts_with("listener "))
        .filter(|l| !l.starts_with("acl_file "))
        .map(|l| format!("{l}\n"))
        .collect()
}

pub struct Broker {
    pub port: u16,
    conf: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

/// How the broker lets clients in. TLS with the test CA's server certificate, except
/// `PlainPassword`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Login {
    /// Client certificate only; its CN is the user name (the AWS IoT way).
    Certificate,
    /// User name and password from a mosquitto `password_file`, and a client certificate.
    PasswordAndCertificate,
    /// User name and password only (`require_certificate false`).
    Password,
    /// Plain MQTT (no TLS) on the loopback listener, user name and password only.
    PlainPassword,
}

/// (user, password) pairs written with `mosquitto_passwd` for the password logins.
pub const USERS: &[(&str, &str)] = &[
    ("thing-ec", "thing-ec password, with spaces"),
    ("defender-backend", "backend-secret"),
];

pub(crate) fn mosquitto_passwd(file: &Path, create: bool, user: &str, password: &str) {
    let mut cmd = Command::new("mosquitto_passwd");
    cmd.arg("-b");
    if create {
        cmd.arg("-c");
    }
    let out = cmd
        .arg(file)
        .arg(user)
        .arg(password)
        .output()
        .unwrap_or_else(|e| panic!("cannot run mosquitto_passwd (apt-get install mosquitto): {e}"));
    assert!(out.status.success(), "mosquitto_passwd: {out:?}");
}

impl Broker {
    /// Writes the config into the PKI directory and starts mosquitto (client certificates).
    pub fn start(pki: &Pki) -> Broker {
        Broker::start_with(pki, Login::Certificate)
    }

    /// Starts mosquitto with the given login; a password file for `USERS` is made with
    /// `mosquitto_passwd -b -c` in the PKI directory when the login needs one.
    pub fn start_with(pki: &Pki, login: Login) -> Broker {
        Broker::start_with_lines(pki, login, "")
    }

    /// As `start_with`, with `extra` config lines appended (e.g. `plugin …`, `plugin_opt_…`,
    /// `acl_file …`; see `bin::mosquitto_plugin`).
    pub fn start_with_lines(pki: &Pki, login: Login, extra: &str) -> Broker {
        let port = free_port();
        let dir = pki.dir.path();
        let auth = match login {
            Login::Certificate => {
                "require_certificate true\nuse_identity_as_username true\n".to_string()
            }
            Login::PasswordAndCertificate | Login::Password | Login::PlainPassword => {
                let passwords = dir.join(format!("mosquitto-{port}.passwd"));
                for (i, (user, password)) in USERS.iter().enumerate() {
                    mosquitto_passwd(&passwords, i == 0, user, password);
                }
                let require = match login {
                    Login::PasswordAndCertificate => "require_certificate true\n",
                    Login::Password => "require_certificate false\n",
                    _ => "",
                };
                format!("{require}password_file {}\n", passwords.display())
            }
        };
        let tls = if login == Login::PlainPassword {
            String::new()
        } else {
            format!(
                "cafile {ca}\ncertfile {cert}\nkeyfile {key}\n",
                ca = pki.ca.display(),
                cert = pki.server.cert.display(),
                key = pki.server.key.display(),
            )
        };
        let text = format!(
            "# written by crates/testkit/src/broker.rs\n\
             user root\n\
             persistence false\n\
             log_dest stderr\n\
             log_type all\n\
             listener {port} 127.0.0.1\n\
             {tls}\
             {auth}\
             allow_anonymous false\n\
             {shipped}\
             {extra}\n",
            shipped = shipped_broker_wide(),
        );
        Broker::run(pki, port, &text)
    }

    /// Writes `text` as the config of a broker on `port` (in the PKI directory) and starts it.
    pub(crate) fn run(pki: &Pki, port: u16, text: &str) -> Broker {
        let dir = pki.dir.path();
        let conf = dir.join(format!("mosquitto-{port}.conf"));
        let log = dir.join(format!("mosquitto-{port}.log"));
        std::fs::write(&conf, text).unwrap();
        let mut broker = Broker {
            port,
            conf,
            log,
            child: None,
        };
        broker.start_again();
        broker
    }

    /// Starts mosquitto (again) on the same port and waits until it accepts connections.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "broker already running");
        let child = server::start("mosquitto", &self.conf, &self.log, &[self.port]);
        self.child = Some(child);
    }

    /// Stops mosquitto as `systemctl restart` does (SIGTERM: it writes its persistence file,
    /// if configured, and exits; killed after 10 s) and starts it again on the same port.
    pub fn restart(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Ok(pid) = i32::try_from(child.id()) {
                // SAFETY: kill(2) on the pid of a child this runner started and has not reaped.
                unsafe { libc::kill(pid, libc::SIGTERM) };
            }
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while matches!(child.try_wait(), Ok(None)) && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            self.child = Some(child);
            self.stop();
        }
        self.start_again();
    }

    /// Kills mosquitto and waits for it to exit; the port is free afterwards.
    pub fn stop(&mut self) {
        server::stop(&mut self.child);
    }

    /// Sends SIGHUP (mosquitto reloads its configuration); false when it is not running.
    pub fn reload(&self) -> bool {
        let Some(pid) = self.child.as_ref().and_then(|c| i32::try_from(c.id()).ok()) else {
            return false;
        };
        // SAFETY: kill(2) on the pid of a child this runner started and has not reaped.
        unsafe { libc::kill(pid, libc::SIGHUP) == 0 }
    }

    /// True while the mosquitto process has not exited.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Publishes `file` retained on `topic` with mosquitto_pub, as the backend's identity.
    pub fn retain(&self, pki: &Pki, topic: &str, file: &Path) {
        let out = Command::new("mosquitto_pub")
            .args(["-h", "127.0.0.1", "--insecure", "-q", "1", "-r"])
            .args(["-p", &self.port.to_string(), "-t", topic])
            .arg("--cafile")
            .arg(&pki.ca)
            .arg("--cert")
            .arg(&pki.backend.cert)
            .arg("--key")
            .arg(&pki.backend.key)
            .arg("-f")
            .arg(file)
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run mosquitto_pub (apt-get install mosquitto-clients): {e}")
            });
        assert!(out.status.success(), "mosquitto_pub: {out:?}");
    }

    pub fn conf(&self) -> &Path {
        &self.conf
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}
