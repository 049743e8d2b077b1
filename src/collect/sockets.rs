//! Owns the choice of socket source (sock_diag, else /proc/net) and the interface labels.
//! Does not parse either source itself (see `sockdiag`, `procnet`) nor attribute processes.

use std::path::Path;
use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};

use super::interfaces::Interfaces;
use super::{CollectError, CollectOptions, SocketTable, procnet, sockdiag};

/// Set once sock_diag has answered "unavailable": later samples go straight to /proc/net.
static SOCKDIAG_MISSING: AtomicBool = AtomicBool::new(false);
static WARN_FALLBACK: Once = Once::new();

/// Reads the socket table and labels each socket with the interface owning its local IP.
///
/// sock_diag is used when `opts.root` is `/` and `force_procnet` is off; a kernel (or qemu-user)
/// without it switches to /proc/net for the rest of the process, with one warning. A fixture
/// root is always read through /proc/net, since netlink can only see the live kernel.
pub fn read(opts: &CollectOptions) -> Result<SocketTable, CollectError> {
    let mut table = raw(opts)?;
    match Interfaces::live() {
        Ok(ifs) => label(&mut table, &ifs),
        Err(err) => tracing::warn!(error = %err, "no interface addresses; sockets left unlabelled"),
    }
    Ok(table)
}

/// The socket table without interface labels.
pub fn raw(opts: &CollectOptions) -> Result<SocketTable, CollectError> {
    let live = opts.root == Path::new("/");
    if opts.force_procnet || !live || SOCKDIAG_MISSING.load(Ordering::Relaxed) {
        return procnet::read(&opts.root);
    }
    match sockdiag::read() {
        Ok(table) => Ok(table),
        Err(CollectError::SockDiagUnavailable(detail)) => {
            SOCKDIAG_MISSING.store(true, Ordering::Relaxed);
            WARN_FALLBACK.call_once(|| {
                tracing::warn!(%detail, "sock_diag unavailable; reading sockets from /proc/net");
            });
            procnet::read(&opts.root)
        }
        Err(err) => {
            // A transient netlink failure (ENOBUFS, timeout): this sample still gets a table.
            tracing::warn!(error = %err, "sock_diag failed; reading sockets from /proc/net for this sample");
            procnet::read(&opts.root)
        }
    }
}

/// Fills `Socket::interface` from `ifs` (wildcard, unknown or ambiguous addresses stay `None`).
pub fn label(table: &mut SocketTable, ifs: &Interfaces) {
    for list in [
        &mut table.tcp_listen,
        &mut table.udp_listen,
        &mut table.tcp_established,
    ] {
        for socket in list.iter_mut() {
            socket.interface = ifs.owner(&socket.local.ip()).map(str::to_string);
        }
    }
}
