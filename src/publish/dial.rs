//! Owns reaching the broker for the bridge: the TCP + TLS dial (its errors worded as rumqttc
//! worded them when it dialled itself) and the private socket rumqttc dials instead.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::{TlsConnector, client::TlsStream};

use super::bridge::BridgeError;

/// The longest path a Unix socket address holds (`sun_path` is 108 bytes with the NUL).
pub const MAX_SOCKET_PATH: usize = 107;

/// Makes `<dir>/mqtt-bridge` (mode 0700), removes the sockets other processes left there and
/// returns this publisher's socket path in it.
pub fn socket_path(dir: &Path) -> Result<PathBuf, BridgeError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    static PUBLISHERS: AtomicU32 = AtomicU32::new(0);
    let dir = dir.join("mqtt-bridge");
    let fail = |source| BridgeError::Socket {
        path: dir.clone(),
        source,
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(fail)?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).map_err(fail)?;
    let pid = std::process::id();
    for entry in std::fs::read_dir(&dir).map_err(fail)?.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.ends_with(".sock") && !name.starts_with(&format!("{pid}-")) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    let n = PUBLISHERS.fetch_add(1, Ordering::Relaxed);
    let path = dir.join(format!("{pid}-{n}.sock"));
    if path.as_os_str().len() > MAX_SOCKET_PATH {
        return Err(BridgeError::LongPath { path });
    }
    Ok(path)
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
