//! Runs a real one-node nats-server (Debian's 2.9) on free loopback ports: its NATS port with a
//! system account, and its MQTT gateway (JetStream on, as MQTT needs) with password users.
//! Killed on Drop. Needs the `nats-server` binary (PATH or /usr/sbin; apt-get install nats-server).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

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

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn binary() -> PathBuf {
    let from_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("nats-server"))
            .find(|p| p.is_file())
    });
    from_path.unwrap_or_else(|| PathBuf::from("/usr/sbin/nats-server"))
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
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(binary())
            .arg("-c")
            .arg(&self.conf)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start nats-server (apt-get install nats-server): {e}")
            });
        self.child = Some(child);
        for p in [self.port, self.mqtt_port] {
            self.wait_port(p);
        }
    }

    fn wait_port(&mut self, port: u16) {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        for _ in 0..200 {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
                return;
            }
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().unwrap()) {
                panic!("nats-server exited with {status}; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("nats-server did not listen on {addr}; log:\n{}", self.log());
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
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.stop();
    }
}
