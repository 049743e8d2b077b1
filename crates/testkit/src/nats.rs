//! Runs a real one-node nats-server (Debian's 2.9) on free loopback ports: its NATS port with a
//! system account, and its MQTT gateway (JetStream on, as MQTT needs) with password users.
//! Killed on Drop. Needs the `nats-server` binary (PATH or /usr/sbin; apt-get install nats-server).

use std::path::{Path, PathBuf};
use std::process::Child;

use super::server::{self, free_port};

/// The system-account user (advisories, CONNZ) and its password.
pub const SYS_USER: (&str, &str) = ("sys", "sys password");

pub struct Nats {
    /// The NATS client port (`nats://127.0.0.1:PORT`).
    pub port: u16,
    /// The MQTT gateway's port.
    pub mqtt_port: u16,
    /// The NATS port wants TLS (`tls://`; the MQTT gateway stays plain).
    pub tls: bool,
    conf: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl Nats {
    /// Writes the config into `dir` and starts nats-server with the device account's `users`
    /// ((user, password) pairs, MQTT logins) and the system account; waits for both ports.
    pub fn start(dir: &Path, users: &[(&str, &str)]) -> Nats {
        Nats::start_with(dir, users, None)
    }

    /// `start`, with TLS on the NATS port when `tls` gives the server's (certificate, key).
    pub fn start_with(dir: &Path, users: &[(&str, &str)], tls: Option<(&Path, &Path)>) -> Nats {
        let (port, mqtt_port) = (free_port(), free_port());
        let conf = dir.join(format!("nats-{port}.conf"));
        let log = dir.join(format!("nats-{port}.log"));
        let users: Vec<String> = users
            .iter()
            .map(|(u, p)| format!("{{ user: {u:?}, password: {p:?} }}"))
            .collect();
        let text = format!(
            "# written by crates/testkit/src/nats.rs\n\
             server_name: \"testkit-{port}\"\n\
             listen: \"127.0.0.1:{port}\"\n\
             jetstream {{ store_dir: {js:?}, max_memory_store: 64MB, max_file_store: 128MB }}\n\
             accounts {{\n\
               SYS {{ users = [ {{ user: {su:?}, password: {sp:?} }} ] }}\n\
               DEV {{ jetstream: enabled, users = [ {users} ] }}\n\
             }}\n\
             system_account: SYS\n\
             mqtt {{ listen: \"127.0.0.1:{mqtt_port}\" }}\n\
             {tls_block}",
            tls_block = tls.map_or(String::new(), |(c, k)| format!(
                "tls {{ cert_file: {:?}, key_file: {:?} }}\n",
                c.display().to_string(),
                k.display().to_string()
            )),
            js = dir.join(format!("js-{port}")).display().to_string(),
            su = SYS_USER.0,
            sp = SYS_USER.1,
            users = users.join(", "),
        );
        std::fs::write(&conf, text).unwrap();
        let mut nats = Nats {
            port,
            mqtt_port,
            tls: tls.is_some(),
            conf,
            log,
            child: None,
        };
        nats.start_again();
        nats
    }

    /// Starts nats-server (again) on the same ports and waits until both listen.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "nats-server already running");
        let ports = [self.port, self.mqtt_port];
        let child = server::start("nats-server", &self.conf, &self.log, &ports);
        self.child = Some(child);
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls { "tls" } else { "nats" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Kills nats-server and waits for it to exit.
    pub fn stop(&mut self) {
        server::stop(&mut self.child);
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.stop();
    }
}
