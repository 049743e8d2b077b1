//! systemd's notify protocol (sd_notify(3)): READY=1, STATUS=, WATCHDOG=1, STOPPING=1 sent
//! as datagrams to $NOTIFY_SOCKET. A no-op when not run by systemd; no dependency needed.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// A handle on $NOTIFY_SOCKET, read once at start.
#[derive(Debug)]
pub struct Notifier {
    socket: Option<(UnixDatagram, std::os::unix::net::SocketAddr)>,
    watchdog: Option<Duration>,
}

impl Notifier {
    /// Reads NOTIFY_SOCKET and WATCHDOG_USEC/WATCHDOG_PID from the environment.
    pub fn from_env() -> Self {
        let socket = std::env::var_os("NOTIFY_SOCKET").and_then(|path| {
            let addr = socket_addr(path.as_encoded_bytes()).ok()?;
            let sock = UnixDatagram::unbound().ok()?;
            // Never block the loop on a slow or stuck listener: a full queue drops the message.
            sock.set_nonblocking(true).ok()?;
            Some((sock, addr))
        });
        let pid_ok = match std::env::var("WATCHDOG_PID") {
            Ok(p) => p.trim().parse::<u32>().ok() == Some(std::process::id()),
            Err(_) => true,
        };
        let watchdog = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|&us| us > 0 && pid_ok)
            .map(Duration::from_micros);
        Self { socket, watchdog }
    }

    /// The interval at which WATCHDOG=1 must be sent: half of WATCHDOG_USEC (sd_watchdog_enabled(3)).
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog.map(|d| d / 2)
    }

    pub fn ready(&self) {
        self.send("READY=1");
    }

    pub fn status(&self, status: &str) {
        // One line: a newline would start a new assignment.
        let clean: String = status
            .chars()
            .map(|c| if c == '\n' { ' ' } else { c })
            .collect();
        self.send(&format!("STATUS={clean}"));
    }

    pub fn watchdog(&self) {
        self.send("WATCHDOG=1");
    }

    pub fn reloading(&self) {
        self.send("RELOADING=1");
    }

    pub fn stopping(&self) {
        self.send("STOPPING=1");
    }

    fn send(&self, msg: &str) {
        if let Some((sock, addr)) = &self.socket
            && let Err(e) = sock.send_to_addr(msg.as_bytes(), addr)
        {
            tracing::debug!(error = %e, "systemd notify failed");
        }
    }
}

/// NOTIFY_SOCKET is a path, or an abstract name written with a leading '@'.
fn socket_addr(raw: &[u8]) -> std::io::Result<std::os::unix::net::SocketAddr> {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::net::SocketAddr;
    match raw.split_first() {
        Some((b'@', name)) => SocketAddr::from_abstract_name(name),
        _ => SocketAddr::from_pathname(std::ffi::OsStr::from_bytes(raw)),
    }
}
