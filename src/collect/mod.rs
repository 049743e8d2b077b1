//! Reads what the host does on the network: sockets, interface addresses, byte counters and
//! owning processes, from a root path (live `/` or a fixture tree). Plain data only: nothing
//! here knows about reports or the wire.

pub mod custom;
pub mod interfaces;
pub mod netdev;
pub mod processes;
pub mod procnet;
pub mod sockdiag;
pub mod sockets;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Transport protocol of a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Proto {
    Tcp,
    Udp,
}

/// One socket as the kernel reports it, with the interface its local address belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Socket {
    pub proto: Proto,
    /// Local address; IPv4-mapped IPv6 addresses are already unwrapped to IPv4.
    pub local: SocketAddr,
    /// Remote address; unspecified (`0.0.0.0:0` / `[::]:0`) for listeners.
    pub remote: SocketAddr,
    /// Socket inode, the key for process attribution (0 when unknown).
    pub inode: u64,
    /// Interface owning `local.ip()` when exactly one does; `None` for wildcard binds.
    pub interface: Option<String>,
}

/// Which kernel interface the socket table came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketSource {
    /// netlink sock_diag (NETLINK_INET_DIAG).
    SockDiag,
    /// /proc/net/{tcp,tcp6,udp,udp6}, used when sock_diag is unavailable.
    ProcNet,
}

/// The sockets the report cares about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketTable {
    /// TCP sockets in state LISTEN.
    pub tcp_listen: Vec<Socket>,
    /// UDP sockets that are bound and unconnected (state 07, remote unspecified).
    pub udp_listen: Vec<Socket>,
    /// TCP sockets in state ESTABLISHED.
    pub tcp_established: Vec<Socket>,
    pub source: SocketSource,
}

/// 64-bit interface counters as read from /proc/net/dev (since boot, not deltas).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Counters {
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub packets_in: u64,
    pub packets_out: u64,
}

/// One full sample of the host.
#[derive(Debug, Clone)]
pub struct Sample {
    pub sockets: SocketTable,
    /// Counters per interface, after the include/exclude filter.
    pub counters: BTreeMap<String, Counters>,
    /// /proc/sys/kernel/random/boot_id, to tell a reboot from a counter wrap.
    pub boot_id: Option<String>,
}

/// What to sample and where from.
#[derive(Debug, Clone)]
pub struct CollectOptions {
    /// Root of the file system to read (`/` live, a fixture tree in tests).
    pub root: PathBuf,
    /// Read sockets from /proc/net even when sock_diag works.
    pub force_procnet: bool,
    /// Interfaces whose counters are summed; empty means all but `exclude`.
    pub include: Vec<String>,
    /// Interfaces left out of the counters (default: `lo`).
    pub exclude: Vec<String>,
}

impl Default for CollectOptions {
    fn default() -> Self {
        Self {
            root: PathBuf::from("/"),
            force_procnet: false,
            include: Vec::new(),
            exclude: vec!["lo".to_string()],
        }
    }
}

/// Why a sample (or one of its sources) could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    /// A file under the root could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The kernel has no sock_diag for this socket family (no CONFIG_INET_DIAG, qemu-user).
    #[error("sock_diag unavailable: {0}")]
    SockDiagUnavailable(String),
    /// A netlink system call failed.
    #[error("sock_diag {op} failed: {source}")]
    SockDiag {
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// The kernel's netlink answer did not have the expected shape.
    #[error("sock_diag answer malformed: {0}")]
    SockDiagMalformed(String),
    /// getifaddrs(3) failed.
    #[error("getifaddrs failed: {0}")]
    Getifaddrs(#[source] std::io::Error),
}

impl CollectError {
    pub(crate) fn read(path: &std::path::Path, source: std::io::Error) -> Self {
        Self::Read {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Takes one sample of the host: socket table, interface counters and boot id.
pub fn sample(opts: &CollectOptions) -> Result<Sample, CollectError> {
    match sample_lenient(opts)? {
        (sample, None) => Ok(sample),
        (_, Some(err)) => Err(err),
    }
}

/// Like `sample`, but counters that cannot be read leave `counters` empty and come back as
/// the error beside the sample: the daemon still reports the sockets then, since a broken
/// /proc/net/dev must not hide a backdoor listener. The socket table is required.
pub fn sample_lenient(opts: &CollectOptions) -> LenientSample {
    let sockets = sockets::read(opts)?;
    let (counters, err) = match netdev::read(&opts.root, &opts.include, &opts.exclude) {
        Ok(counters) => (counters, None),
        Err(err) => (BTreeMap::new(), Some(err)),
    };
    let sample = Sample {
        sockets,
        counters,
        boot_id: boot_id(&opts.root),
    };
    Ok((sample, err))
}

/// What `sample_lenient` returns: the sample and its counters error, or why no sample.
pub type LenientSample = Result<(Sample, Option<CollectError>), CollectError>;

/// `sample_lenient` plus the custom metrics of `specs`: their commands start before the
/// socket table is read and are collected after it (each under its own timeout), so a hung
/// command never delays the sockets. Readings come back even when the sample fails.
/// Setting `stop` (from another thread) kills the commands still running.
pub fn sample_with_custom(
    opts: &CollectOptions,
    specs: &[custom::MetricSpec],
    state: &mut custom::CustomState,
    stop: &std::sync::atomic::AtomicBool,
) -> (LenientSample, Vec<custom::Reading>) {
    let pending = custom::start(specs);
    let sample = sample_lenient(opts);
    (sample, pending.finish(&opts.root, state, stop))
}

/// root/proc/sys/kernel/random/boot_id, trimmed; `None` when unreadable or empty.
pub fn boot_id(root: &std::path::Path) -> Option<String> {
    let path = root.join("proc/sys/kernel/random/boot_id");
    let id = std::fs::read_to_string(path).ok()?;
    let id = id.trim();
    (!id.is_empty()).then(|| id.to_string())
}

/// Kernel text holding names that need not be UTF-8 (an interface name may be any bytes but
/// NUL, '/', ':' and whitespace; a process name anything): valid UTF-8 is kept, every other
/// byte and the backslash itself become `\xNN`. One odd name (which anyone with
/// CAP_NET_ADMIN can create) then never fails a whole file, and distinct names stay distinct.
pub fn lossless_text(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c == '\\' {
                out.push_str("\\x5c");
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

/// Unwraps an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) to plain IPv4 (one rule, in
/// the protocol crate).
pub(crate) use protocol::unmap_ip;

/// `unmap_ip` for a socket address; other addresses are returned unchanged.
pub(crate) fn unmap(addr: std::net::SocketAddr) -> std::net::SocketAddr {
    match addr {
        std::net::SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => std::net::SocketAddr::new(v4.into(), v6.port()),
            None => addr,
        },
        v4 => v4,
    }
}

impl SocketTable {
    /// Sorts each list by (local, remote, inode). Sources return kernel order (unspecified);
    /// the report sorts what it needs, so this is for stable dumps and tests.
    pub fn sort(&mut self) {
        for list in [
            &mut self.tcp_listen,
            &mut self.udp_listen,
            &mut self.tcp_established,
        ] {
            list.sort_by_key(|a| (a.local, a.remote, a.inode));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lossless_text_escapes_only_what_is_not_plain_utf8() {
        assert_eq!(lossless_text(b"eth0"), "eth0");
        assert_eq!(lossless_text("wlän0".as_bytes()), "wlän0");
        assert_eq!(lossless_text(b"x\xff"), "x\\xff");
        // A literal backslash cannot be mistaken for an escaped byte.
        assert_eq!(lossless_text(b"x\\xff"), "x\\x5cxff");
        assert_ne!(lossless_text(b"a\xfe"), lossless_text(b"a\xff"));
    }
}
