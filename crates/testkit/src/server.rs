//! A server process the tests start from a config file (mosquitto, nats-server): its output
//! appended to a log, started and waited for until its ports listen, killed on stop.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The server's binary: `name` on PATH, else `/usr/sbin/NAME` (where Debian puts daemons).
fn binary(name: &str) -> PathBuf {
    let from_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    });
    from_path.unwrap_or_else(|| Path::new("/usr/sbin").join(name))
}

/// A loopback port free right now (the OS picks it).
pub(crate) fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Starts `NAME -c conf` (the binary and the Debian package are both `name`) with its output
/// appended to `log` and waits until every port in `ports` accepts connections; panics, with
/// the log, when it exits or never listens.
pub(crate) fn start(name: &str, conf: &Path, log: &Path, ports: &[u16]) -> Child {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let mut child = Command::new(binary(name))
        .arg("-c")
        .arg(conf)
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {name} (apt-get install {name}): {e}"));
    let read_log = || std::fs::read_to_string(log).unwrap_or_default();
    for &port in ports {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut listening = false;
        for _ in 0..200 {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
                listening = true;
                break;
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!("{name} exited with {status}; log:\n{}", read_log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if !listening {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{name} did not listen on {addr}; log:\n{}", read_log());
        }
    }
    child
}

/// Kills the server, if running, and waits for it to exit (its ports are free afterwards).
pub(crate) fn stop(child: &mut Option<Child>) {
    if let Some(mut child) = child.take() {
        let _ = child.kill();
        let _ = child.wait();
    }
}
