//! Owns the /proc/net/{tcp,tcp6,udp,udp6} reader: the socket table when sock_diag is missing.
//! Does not pick between sources or label interfaces (see `sockets`).
//!
//! Hand-parsed rather than with procfs: procfs-core 0.18 parses a whole file in one
//! `from_buf_read` that returns an error for the file on the first bad line, and the brief
//! (skip a malformed line with a warning, never fail the sample) needs line-by-line control.
//! Addresses are hex, one 32-bit word at a time in host byte order (kernel `%08X` of a
//! `__be32`), so `u32::to_ne_bytes` restores the network-order bytes.

use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;

use super::{CollectError, Proto, Socket, SocketSource, SocketTable, unmap};

/// Kernel socket states as printed in the `st` column (include/net/tcp_states.h).
const TCP_ESTABLISHED: u8 = 0x01;
const TCP_CLOSE: u8 = 0x07;
const TCP_LISTEN: u8 = 0x0A;

/// Reads root/proc/net/{tcp,tcp6,udp,udp6}. tcp6/udp6 may be missing (IPv6-less host).
pub fn read(root: &Path) -> Result<SocketTable, CollectError> {
    let mut table = SocketTable {
        tcp_listen: Vec::new(),
        udp_listen: Vec::new(),
        tcp_established: Vec::new(),
        source: SocketSource::ProcNet,
    };
    for (file, proto, optional) in [
        ("tcp", Proto::Tcp, false),
        ("tcp6", Proto::Tcp, true),
        ("udp", Proto::Udp, false),
        ("udp6", Proto::Udp, true),
    ] {
        let path = root.join("proc/net").join(file);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if optional && e.kind() == ErrorKind::NotFound => continue,
            Err(e) => return Err(CollectError::read(&path, e)),
        };
        parse_into(&text, proto, &path, &mut table);
    }
    Ok(table)
}

/// Parses one file's text and files each wanted row; bad rows are skipped with a warning.
fn parse_into(text: &str, proto: Proto, path: &Path, table: &mut SocketTable) {
    // Line 1 is the column header.
    for (index, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let row = match parse_line(line) {
            Some(row) => row,
            None => {
                tracing::warn!(file = %path.display(), line = index + 1, "skipping malformed socket line");
                continue;
            }
        };
        let socket = Socket {
            proto,
            local: unmap(row.local),
            remote: unmap(row.remote),
            inode: row.inode,
            interface: None,
        };
        match (proto, row.state) {
            (Proto::Tcp, TCP_LISTEN) => table.tcp_listen.push(socket),
            (Proto::Tcp, TCP_ESTABLISHED) => table.tcp_established.push(socket),
            // Listening UDP = bound and unconnected: state 07 with no remote (protocol doc §6, §7.1 #10).
            (Proto::Udp, TCP_CLOSE) if is_unconnected_bound(&socket) => {
                table.udp_listen.push(socket)
            }
            _ => {}
        }
    }
}

/// True for a UDP socket with a local port and an unspecified remote.
pub(crate) fn is_unconnected_bound(socket: &Socket) -> bool {
    socket.local.port() != 0 && socket.remote.port() == 0 && socket.remote.ip().is_unspecified()
}

struct Row {
    local: SocketAddr,
    remote: SocketAddr,
    state: u8,
    inode: u64,
}

/// `sl: local rem st tx:rx tr:tm retr uid timeout inode ...`; `None` when anything is off.
fn parse_line(line: &str) -> Option<Row> {
    let mut fields = line.split_whitespace();
    let sl = fields.next()?;
    if !sl.ends_with(':') {
        return None;
    }
    let local = parse_addr(fields.next()?)?;
    let remote = parse_addr(fields.next()?)?;
    let state = u8::from_str_radix(fields.next()?, 16).ok()?;
    // tx:rx, tr:tm, retrnsmt, uid, timeout, then the inode.
    let inode = fields.nth(5)?.parse::<u64>().ok()?;
    Some(Row {
        local,
        remote,
        state,
        inode,
    })
}

/// `0100007F:0277` or a 32-digit IPv6 form, each 8-digit word in host byte order.
fn parse_addr(field: &str) -> Option<SocketAddr> {
    let (ip, port) = field.split_once(':')?;
    if port.len() != 4 || !field.bytes().all(|b| b == b':' || b.is_ascii_hexdigit()) {
        return None;
    }
    let port = u16::from_str_radix(port, 16).ok()?;
    let ip: IpAddr = match ip.len() {
        8 => Ipv4Addr::from(word(ip)?.to_ne_bytes()).into(),
        32 => {
            let mut bytes = [0u8; 16];
            for (i, chunk) in bytes.chunks_exact_mut(4).enumerate() {
                chunk.copy_from_slice(&word(ip.get(i * 8..i * 8 + 8)?)?.to_ne_bytes());
            }
            Ipv6Addr::from(bytes).into()
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

fn word(hex: &str) -> Option<u32> {
    u32::from_str_radix(hex, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_endian = "little")]
    #[test]
    fn parses_v4_and_v6_words() {
        let a = parse_addr("0100007F:0277").unwrap();
        assert_eq!(a, "127.0.0.1:631".parse().unwrap());
        let b = parse_addr("00000000000000000000000001000000:1F90").unwrap();
        assert_eq!(b, "[::1]:8080".parse().unwrap());
        let c = parse_addr("0000000000000000FFFF00000100007F:0016").unwrap();
        assert_eq!(unmap(c), "127.0.0.1:22".parse().unwrap());
    }

    #[test]
    fn rejects_odd_fields() {
        assert!(parse_addr("0100007F").is_none());
        assert!(parse_addr("0100007:0277").is_none());
        assert!(parse_addr("0100007G:0277").is_none());
        assert!(parse_addr("0100007F:10000").is_none());
        assert!(parse_addr("0100007F:+277").is_none());
        assert!(parse_line("0: 0100007F:0277 00000000:0000 0A").is_none());
        assert!(parse_line("").is_none());
    }
}
