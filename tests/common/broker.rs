//! Runs a real mosquitto with mutual TLS on a free loopback port; stop/start keep the port.
//! Killed on Drop. Needs the `mosquitto` binary (PATH or /usr/sbin).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::certs::Pki;

pub struct Broker {
    pub port: u16,
    conf: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

fn mosquitto_binary() -> PathBuf {
    let from_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("mosquitto"))
            .find(|p| p.is_file())
    });
    from_path.unwrap_or_else(|| PathBuf::from("/usr/sbin/mosquitto"))
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

impl Broker {
    /// Writes the config into the PKI directory and starts mosquitto.
    pub fn start(pki: &Pki) -> Broker {
        let port = free_port();
        let dir = pki.dir.path();
        let conf = dir.join(format!("mosquitto-{port}.conf"));
        let log = dir.join(format!("mosquitto-{port}.log"));
        let text = format!(
            "# written by tests/common/broker.rs\n\
             user root\n\
             persistence false\n\
             log_dest stderr\n\
             log_type all\n\
             listener {port} 127.0.0.1\n\
             cafile {ca}\n\
             certfile {cert}\n\
             keyfile {key}\n\
             require_certificate true\n\
             use_identity_as_username true\n\
             allow_anonymous false\n",
            ca = pki.ca.display(),
            cert = pki.server.cert.display(),
            key = pki.server.key.display(),
        );
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
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(mosquitto_binary())
            .arg("-c")
            .arg(&self.conf)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start mosquitto (apt-get install mosquitto): {e}"));
        self.child = Some(child);
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        for _ in 0..200 {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
                return;
            }
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().unwrap()) {
                panic!("mosquitto exited with {status}; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("mosquitto did not listen on {addr}; log:\n{}", self.log());
    }

    /// Kills mosquitto and waits for it to exit; the port is free afterwards.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
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
