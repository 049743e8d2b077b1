//! Owns reaching the broker for the bridge: the TCP + TLS dial (its errors worded as rumqttc
//! worded them when it dialled itself) and the private socket rumqttc dials instead.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::net::{TcpStream, UnixListener};
use tokio_rustls::{TlsConnector, client::TlsStream};

use super::bridge::BridgeError;

/// The longest path a Unix socket address holds (`sun_path` is 108 bytes with the NUL).
pub const MAX_SOCKET_PATH: usize = 107;

/// Where the bridge socket goes, best first: systemd's `RuntimeDirectory=` (a tmpfs), then
/// `mqtt-bridge/` in the state dir, then a fresh directory in the temp dir, each mode 0700. A
/// read-only or full state disk (issue #11 item 4) only moves the socket.
pub struct SocketDirs {
    preferred: Vec<PathBuf>,
    /// The fresh temp directory, once made (removed on drop).
    fresh: Option<PathBuf>,
    /// This publisher's number in the process: socket names never collide across a reload.
    n: u32,
}

impl Drop for SocketDirs {
    fn drop(&mut self) {
        if let Some(dir) = &self.fresh {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

impl SocketDirs {
    pub fn new(state_dir: &Path) -> Self {
        static PUBLISHERS: AtomicU32 = AtomicU32::new(0);
        let runtime = std::env::var_os("RUNTIME_DIRECTORY").map(PathBuf::from);
        let preferred = runtime
            .into_iter()
            .chain([state_dir.to_path_buf()])
            .map(|d| d.join("mqtt-bridge"))
            .collect();
        Self {
            preferred,
            fresh: None,
            n: PUBLISHERS.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// Listens on a new socket in the first directory that takes one; the first error when
    /// none does.
    pub fn bind(&mut self) -> Result<(UnixListener, PathBuf), BridgeError> {
        let mut first = None;
        for dir in self.preferred.clone() {
            match self.bind_in(&dir, true) {
                Ok(bound) => return Ok(bound),
                Err(e) => {
                    first.get_or_insert(e);
                }
            }
        }
        let fresh = match &self.fresh {
            Some(dir) => Ok(dir.clone()),
            None => self.make_fresh(),
        };
        match fresh.and_then(|dir| self.bind_in(&dir, false)) {
            Ok(bound) => Ok(bound),
            Err(e) => Err(first.unwrap_or(e)),
        }
    }

    /// A new directory of ours in the temp dir (never one that already exists).
    fn make_fresh(&mut self) -> Result<PathBuf, BridgeError> {
        use std::os::unix::fs::DirBuilderExt;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = std::env::temp_dir().join(format!(
            "detect-agent-{}-{}-{nanos}",
            std::process::id(),
            self.n
        ));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|source| BridgeError::Socket {
                path: dir.clone(),
                source,
            })?;
        self.fresh = Some(dir.clone());
        Ok(dir)
    }

    /// Binds `<dir>/<pid>-<n>.sock`; `make` creates `dir` (0700) and removes the sockets
    /// other processes left in it.
    fn bind_in(&self, dir: &Path, make: bool) -> Result<(UnixListener, PathBuf), BridgeError> {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        let fail = |path: &Path| {
            let path = path.to_path_buf();
            move |source| BridgeError::Socket { path, source }
        };
        let pid = std::process::id();
        if make {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(fail(dir))?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .map_err(fail(dir))?;
            for entry in std::fs::read_dir(dir).map_err(fail(dir))?.flatten() {
                let name = entry.file_name();
                let name = name.to_string_lossy();
                if name.ends_with(".sock") && !name.starts_with(&format!("{pid}-")) {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        let path = dir.join(format!("{pid}-{}.sock", self.n));
        if path.as_os_str().len() > MAX_SOCKET_PATH {
            return Err(BridgeError::LongPath { path });
        }
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).map_err(fail(&path))?;
        Ok((listener, path))
    }
}

/// Why the broker could not be reached; the wording is rumqttc's, from before the bridge.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    #[error("connection refused: {0}")]
    Refused(io::Error),
    #[error("I/O: {0}")]
    Tcp(io::Error),
    #[error("TLS: endpoint {0:?} is not a valid DNS name or IP address")]
    Name(String),
    #[error("TLS: I/O: {0}")]
    Tls(io::Error),
    #[error("Network timeout")]
    Timeout,
}

impl From<io::Error> for DialError {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::ConnectionRefused {
            DialError::Refused(e)
        } else {
            DialError::Tcp(e)
        }
    }
}

/// TCP to `endpoint:port`, then TLS with `config`, verifying the server against `endpoint`
/// (or `tls_server_name`, which `config` carries), all within `within`.
pub async fn dial(
    endpoint: &str,
    port: u16,
    config: Arc<ClientConfig>,
    within: Duration,
) -> Result<TlsStream<TcpStream>, DialError> {
    let deadline = tokio::time::Instant::now() + within;
    let dialled = tokio::time::timeout_at(deadline, async {
        let mut last = io::Error::new(
            io::ErrorKind::InvalidInput,
            "could not resolve to any address",
        );
        for addr in tokio::net::lookup_host((endpoint, port)).await? {
            match TcpStream::connect(addr).await {
                Ok(tcp) => return Ok(tcp),
                Err(e) => last = e,
            }
        }
        Err(DialError::from(last))
    })
    .await;
    let tcp = dialled.map_err(|_| DialError::Timeout)??;
    let name = ServerName::try_from(endpoint.to_string())
        .map_err(|_| DialError::Name(endpoint.to_string()))?;
    let tls = TlsConnector::from(config).connect(name, tcp);
    let tls = tokio::time::timeout_at(deadline, tls).await;
    tls.map_err(|_| DialError::Timeout)?.map_err(DialError::Tls)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_socket_goes_to_the_state_dir_or_else_a_fresh_private_temp_dir() {
        use std::os::unix::fs::PermissionsExt;
        let work = tempfile::tempdir().unwrap();
        let mut dirs = SocketDirs::new(work.path());
        let (_listener, path) = dirs.bind().unwrap();
        assert_eq!(
            path.parent(),
            Some(work.path().join("mqtt-bridge").as_path())
        );
        let mode = std::fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);

        // A state dir that cannot be made (under a file: fails even as root).
        std::fs::write(work.path().join("file"), "").unwrap();
        let mut dirs = SocketDirs::new(&work.path().join("file/state"));
        let (_listener, path) = dirs.bind().unwrap();
        let fresh = path.parent().unwrap().to_path_buf();
        assert!(fresh.starts_with(std::env::temp_dir()), "{path:?}");
        let mode = std::fs::metadata(&fresh).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        std::fs::remove_file(&path).unwrap();
        drop(dirs);
        assert!(!fresh.exists(), "the fresh directory is removed");
    }
}
