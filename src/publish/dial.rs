//! Owns reaching the broker for the bridge: the TCP + TLS dial (failing with rumqttc's own
//! error types, so `conn_error` words them as before) and the private socket rumqttc dials.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use rumqttc::tokio_rustls::{TlsConnector, client::TlsStream};
use rumqttc::{ConnectionError, TlsError};
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;

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

/// TCP to `endpoint:port`, then TLS with `config`, verifying the server against `endpoint`
/// (or `tls_server_name`, which `config` carries). Errors are rumqttc's own, so they read as
/// before the bridge (`conn_error`).
pub async fn dial(
    endpoint: &str,
    port: u16,
    config: Arc<ClientConfig>,
) -> Result<TlsStream<TcpStream>, ConnectionError> {
    let mut last = io::Error::new(
        io::ErrorKind::InvalidInput,
        "could not resolve to any address",
    );
    let mut tcp = None;
    for addr in tokio::net::lookup_host((endpoint, port)).await? {
        match TcpStream::connect(addr).await {
            Ok(s) => {
                tcp = Some(s);
                break;
            }
            Err(e) => last = e,
        }
    }
    let tcp = tcp.ok_or(ConnectionError::Io(last))?;
    let name = ServerName::try_from(endpoint.to_string())
        .map_err(|e| ConnectionError::Tls(TlsError::DNSName(e)))?;
    TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| ConnectionError::Tls(TlsError::Io(e)))
}
