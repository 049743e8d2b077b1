//! Owns the NETLINK_SOCK_DIAG reader: one state-filtered inet_diag dump per (family, protocol).
//! Does not fall back to /proc/net or label interfaces (see `sockets`).
//!
//! Messages are built and parsed as bytes (kernel ABI: include/uapi/linux/{netlink,inet_diag}.h),
//! every length checked before use, so an odd answer is an error, never a panic.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::{CollectError, Proto, Socket, SocketSource, SocketTable, unmap};

const NETLINK_SOCK_DIAG: libc::c_int = 4;
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x100 | 0x200;
const NLMSG_ERROR: u16 = 0x2;
const NLMSG_DONE: u16 = 0x3;
const NLMSG_HDRLEN: usize = 16;
/// inet_diag_req_v2: family, protocol, ext, pad, states (u32), inet_diag_sockid (48 bytes).
const REQ_LEN: usize = 8 + 48;
/// inet_diag_msg: family, state, timer, retrans, sockid (48), expires, rqueue, wqueue, uid, inode.
const MSG_LEN: usize = 4 + 48 + 20;

const TCP_ESTABLISHED: u8 = 1;
const TCP_CLOSE: u8 = 7;
const TCP_LISTEN: u8 = 10;

/// 64 KiB: the kernel caps one dump skb near 32 KiB, so a datagram never truncates.
const RECV_BUF: usize = 64 * 1024;
/// Upper bound on recv calls per dump (each carries at least one socket): ~1M datagrams.
const MAX_RECVS: usize = 1 << 20;
/// A kernel that stops answering must not hang the sample.
const RECV_TIMEOUT_SECS: i64 = 5;

/// Dumps TCP LISTEN|ESTABLISHED and unconnected UDP sockets for IPv4 and IPv6.
pub fn read() -> Result<SocketTable, CollectError> {
    let fd = open()?;
    let mut table = SocketTable {
        tcp_listen: Vec::new(),
        udp_listen: Vec::new(),
        tcp_established: Vec::new(),
        source: SocketSource::SockDiag,
    };
    let tcp_states = (1u32 << TCP_LISTEN) | (1u32 << TCP_ESTABLISHED);
    let udp_states = 1u32 << TCP_CLOSE;
    let mut buf = vec![0u8; RECV_BUF];
    let mut seq = 0u32;
    for family in [libc::AF_INET, libc::AF_INET6] {
        for (proto, states) in [(Proto::Tcp, tcp_states), (Proto::Udp, udp_states)] {
            seq += 1;
            dump(&fd, family, proto, states, seq, &mut buf, &mut table)?;
        }
    }
    Ok(table)
}

fn open() -> Result<OwnedFd, CollectError> {
    // SAFETY: plain socket(2) call; the result is checked before use.
    let raw = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            NETLINK_SOCK_DIAG,
        )
    };
    if raw < 0 {
        return Err(classify("socket", io::Error::last_os_error()));
    }
    // SAFETY: `raw` is a fresh descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let timeout = libc::timeval {
        tv_sec: RECV_TIMEOUT_SECS as _,
        tv_usec: 0,
    };
    // SAFETY: the option value points at a live timeval of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&timeout as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(classify(
            "setsockopt(SO_RCVTIMEO)",
            io::Error::last_os_error(),
        ));
    }
    Ok(fd)
}

/// Errors that mean "this kernel (or emulator) has no sock_diag" rather than a failure.
fn classify(op: &'static str, err: io::Error) -> CollectError {
    match err.raw_os_error() {
        Some(
            libc::EPROTONOSUPPORT
            | libc::EAFNOSUPPORT
            | libc::ENOSYS
            | libc::EOPNOTSUPP
            | libc::ENOENT
            | libc::ESOCKTNOSUPPORT,
        ) => CollectError::SockDiagUnavailable(format!("{op}: {err}")),
        _ => CollectError::SockDiag { op, source: err },
    }
}

fn request(
    family: libc::c_int,
    proto: Proto,
    states: u32,
    seq: u32,
) -> [u8; NLMSG_HDRLEN + REQ_LEN] {
    let mut msg = [0u8; NLMSG_HDRLEN + REQ_LEN];
    msg[0..4].copy_from_slice(&((NLMSG_HDRLEN + REQ_LEN) as u32).to_ne_bytes());
    msg[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    msg[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    msg[8..12].copy_from_slice(&seq.to_ne_bytes());
    // nlmsg_pid 0: the kernel fills in our port id.
    msg[16] = family as u8;
    msg[17] = match proto {
        Proto::Tcp => libc::IPPROTO_TCP as u8,
        Proto::Udp => libc::IPPROTO_UDP as u8,
    };
    // idiag_ext 0 (no extensions), pad 0, then the state mask; the sockid stays zero (wildcard).
    msg[20..24].copy_from_slice(&states.to_ne_bytes());
    msg
}

fn dump(
    fd: &OwnedFd,
    family: libc::c_int,
    proto: Proto,
    states: u32,
    seq: u32,
    buf: &mut [u8],
    table: &mut SocketTable,
) -> Result<(), CollectError> {
    let req = request(family, proto, states, seq);
    // SAFETY: zeroed sockaddr_nl is valid; nl_pid 0 addresses the kernel.
    let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    // SAFETY: buffer and address point at live memory of the lengths passed.
    let sent = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            req.as_ptr().cast(),
            req.len(),
            0,
            (&addr as *const libc::sockaddr_nl).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    if sent < 0 {
        return Err(classify("sendto", io::Error::last_os_error()));
    }
    for _ in 0..MAX_RECVS {
        // SAFETY: `buf` is writable for `buf.len()` bytes. MSG_TRUNC makes netlink return the
        // datagram's real length so truncation is detected below.
        let n = unsafe {
            libc::recv(
                fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_TRUNC,
            )
        };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(classify("recv", err));
        }
        let n = n as usize;
        if n > buf.len() {
            return Err(CollectError::SockDiagMalformed(format!(
                "datagram of {n} bytes exceeds the {} byte buffer",
                buf.len()
            )));
        }
        if n == 0 {
            return Err(CollectError::SockDiagMalformed(
                "empty datagram before NLMSG_DONE".into(),
            ));
        }
        if walk(&buf[..n], family, proto, seq, table)? {
            return Ok(());
        }
    }
    Err(CollectError::SockDiagMalformed(format!(
        "no NLMSG_DONE after {MAX_RECVS} datagrams"
    )))
}

/// Walks the netlink messages of one datagram; `Ok(true)` once NLMSG_DONE is seen.
fn walk(
    mut data: &[u8],
    family: libc::c_int,
    proto: Proto,
    seq: u32,
    table: &mut SocketTable,
) -> Result<bool, CollectError> {
    while data.len() >= NLMSG_HDRLEN {
        let len = u32_at(data, 0) as usize;
        let kind = u16::from_ne_bytes([data[4], data[5]]);
        let msg_seq = u32_at(data, 8);
        if len < NLMSG_HDRLEN || len > data.len() {
            return Err(CollectError::SockDiagMalformed(format!(
                "netlink message length {len} with {} bytes left",
                data.len()
            )));
        }
        let payload = &data[NLMSG_HDRLEN..len];
        if msg_seq == seq {
            match kind {
                NLMSG_DONE => return Ok(true),
                NLMSG_ERROR => {
                    let errno = payload.get(0..4).map(|_| {
                        i32::from_ne_bytes([payload[0], payload[1], payload[2], payload[3]])
                    });
                    match errno {
                        Some(0) => {}
                        // The kernel sends -errno (1..=4095, include/linux/err.h MAX_ERRNO);
                        // anything else is not negated (i32::MIN would overflow).
                        Some(e @ -4095..=-1) => {
                            return Err(classify("dump", io::Error::from_raw_os_error(-e)));
                        }
                        Some(e) => {
                            return Err(CollectError::SockDiagMalformed(format!(
                                "NLMSG_ERROR with error code {e}, not a negative errno"
                            )));
                        }
                        None => {
                            return Err(CollectError::SockDiagMalformed(
                                "short NLMSG_ERROR".into(),
                            ));
                        }
                    }
                }
                SOCK_DIAG_BY_FAMILY => {
                    if let Some((state, socket)) = parse_msg(payload, family, proto) {
                        file(table, state, socket);
                    } else {
                        return Err(CollectError::SockDiagMalformed(format!(
                            "inet_diag_msg of {} bytes (family {family})",
                            payload.len()
                        )));
                    }
                }
                _ => {}
            }
        }
        let step = (len + 3) & !3;
        data = data.get(step..).unwrap_or(&[]);
    }
    Ok(false)
}

fn file(table: &mut SocketTable, state: u8, socket: Socket) {
    match (socket.proto, state) {
        (Proto::Tcp, TCP_LISTEN) => table.tcp_listen.push(socket),
        (Proto::Tcp, TCP_ESTABLISHED) => table.tcp_established.push(socket),
        // Listening UDP = bound and unconnected (protocol doc §6, §7.1 #10).
        (Proto::Udp, TCP_CLOSE) if super::procnet::is_unconnected_bound(&socket) => {
            table.udp_listen.push(socket)
        }
        _ => {}
    }
}

fn parse_msg(p: &[u8], family: libc::c_int, proto: Proto) -> Option<(u8, Socket)> {
    if p.len() < MSG_LEN || i32::from(p[0]) != family {
        return None;
    }
    let state = p[1];
    let sport = u16::from_be_bytes([p[4], p[5]]);
    let dport = u16::from_be_bytes([p[6], p[7]]);
    let src = ip(family, p.get(8..24)?)?;
    let dst = ip(family, p.get(24..40)?)?;
    let inode = u64::from(u32_at(p, 68));
    Some((
        state,
        Socket {
            proto,
            local: unmap(SocketAddr::new(src, sport)),
            remote: unmap(SocketAddr::new(dst, dport)),
            inode,
            interface: None,
        },
    ))
}

fn ip(family: libc::c_int, b: &[u8]) -> Option<IpAddr> {
    if family == libc::AF_INET {
        let b: [u8; 4] = b.get(0..4)?.try_into().ok()?;
        Some(Ipv4Addr::from(b).into())
    } else {
        let b: [u8; 16] = b.try_into().ok()?;
        Some(Ipv6Addr::from(b).into())
    }
}

/// Reads a native-endian u32; callers have checked `off + 4 <= data.len()`.
fn u32_at(data: &[u8], off: usize) -> u32 {
    let mut b = [0u8; 4];
    if let Some(s) = data.get(off..off + 4) {
        b.copy_from_slice(s);
    }
    u32::from_ne_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> SocketTable {
        SocketTable {
            tcp_listen: Vec::new(),
            udp_listen: Vec::new(),
            tcp_established: Vec::new(),
            source: SocketSource::SockDiag,
        }
    }

    #[test]
    fn short_and_odd_messages_are_errors_not_panics() {
        let mut t = table();
        // Length field larger than the datagram.
        let mut m = vec![0u8; 20];
        m[0..4].copy_from_slice(&100u32.to_ne_bytes());
        assert!(walk(&m, libc::AF_INET, Proto::Tcp, 1, &mut t).is_err());
        // Length below the header size.
        m[0..4].copy_from_slice(&3u32.to_ne_bytes());
        assert!(walk(&m, libc::AF_INET, Proto::Tcp, 1, &mut t).is_err());
        // A socket message with a short payload.
        let mut m = vec![0u8; 24];
        m[0..4].copy_from_slice(&24u32.to_ne_bytes());
        m[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        m[8..12].copy_from_slice(&1u32.to_ne_bytes());
        assert!(walk(&m, libc::AF_INET, Proto::Tcp, 1, &mut t).is_err());
        // Trailing bytes shorter than a header are ignored; nothing parsed.
        assert!(!walk(&[0u8; 7], libc::AF_INET, Proto::Tcp, 1, &mut t).unwrap());
        assert!(t.tcp_listen.is_empty() && t.tcp_established.is_empty());
    }

    /// An NLMSG_ERROR message of sequence 7 carrying `code`.
    fn error_msg(code: i32) -> Vec<u8> {
        let mut m = vec![0u8; 36];
        m[0..4].copy_from_slice(&36u32.to_ne_bytes());
        m[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
        m[8..12].copy_from_slice(&7u32.to_ne_bytes());
        m[16..20].copy_from_slice(&code.to_ne_bytes());
        m
    }

    #[test]
    fn error_and_done_messages() {
        let mut t = table();
        let mut m = error_msg(-libc::ENOENT);
        let err = walk(&m, libc::AF_INET, Proto::Udp, 7, &mut t).unwrap_err();
        assert!(matches!(err, CollectError::SockDiagUnavailable(_)), "{err}");
        m[4..6].copy_from_slice(&NLMSG_DONE.to_ne_bytes());
        assert!(walk(&m, libc::AF_INET, Proto::Udp, 7, &mut t).unwrap());
        // Another request's sequence number is skipped.
        assert!(!walk(&m, libc::AF_INET, Proto::Udp, 8, &mut t).unwrap());
    }

    #[test]
    fn an_error_code_that_is_no_negative_errno_is_malformed_not_an_overflow() {
        let mut t = table();
        for code in [i32::MIN, -4096, 1, i32::MAX] {
            let err = walk(&error_msg(code), libc::AF_INET, Proto::Tcp, 7, &mut t).unwrap_err();
            assert!(
                matches!(&err, CollectError::SockDiagMalformed(t) if t.contains(&code.to_string())),
                "{code}: {err}"
            );
        }
        let err = walk(&error_msg(-4095), libc::AF_INET, Proto::Tcp, 7, &mut t).unwrap_err();
        assert!(matches!(err, CollectError::SockDiag { .. }), "{err}");
    }

    #[test]
    fn parses_an_inet_diag_msg() {
        let mut p = vec![0u8; MSG_LEN];
        p[0] = libc::AF_INET6 as u8;
        p[1] = TCP_LISTEN;
        p[4..6].copy_from_slice(&8080u16.to_be_bytes());
        p[8..24].copy_from_slice(&"::ffff:127.0.0.1".parse::<Ipv6Addr>().unwrap().octets());
        p[68..72].copy_from_slice(&4242u32.to_ne_bytes());
        let (state, s) = parse_msg(&p, libc::AF_INET6, Proto::Tcp).unwrap();
        assert_eq!(state, TCP_LISTEN);
        assert_eq!(s.local, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(s.remote, "[::]:0".parse().unwrap());
        assert_eq!(s.inode, 4242);
        assert!(parse_msg(&p[..MSG_LEN - 1], libc::AF_INET6, Proto::Tcp).is_none());
        assert!(parse_msg(&p, libc::AF_INET, Proto::Tcp).is_none());
    }
}
