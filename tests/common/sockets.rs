//! Loopback sockets the tests open themselves: a dual-stack listener, connected pairs, and a
//! port free on both 127.0.0.1 and ::1. Shared by the collector and dump tests.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::FromRawFd;
use std::time::Duration;

pub fn port(l: &TcpListener) -> u16 {
    l.local_addr().unwrap().port()
}

pub fn v4(p: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], p))
}

pub fn v6(p: u16) -> SocketAddr {
    SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, p))
}

/// A `[::]:0` listener with IPV6_V6ONLY off, so it also accepts IPv4 (dual stack).
pub fn dual_stack_listener() -> TcpListener {
    // SAFETY: plain socket calls on a descriptor this function owns; every result checked.
    unsafe {
        let fd = libc::socket(libc::AF_INET6, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0);
        let off: libc::c_int = 0;
        let rc = libc::setsockopt(
            fd,
            libc::IPPROTO_IPV6,
            libc::IPV6_V6ONLY,
            (&off as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
        assert_eq!(rc, 0);
        let mut addr: libc::sockaddr_in6 = std::mem::zeroed();
        addr.sin6_family = libc::AF_INET6 as libc::sa_family_t;
        let rc = libc::bind(
            fd,
            (&addr as *const libc::sockaddr_in6).cast(),
            std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
        );
        assert_eq!(rc, 0);
        assert_eq!(libc::listen(fd, 16), 0);
        TcpListener::from_raw_fd(fd)
    }
}

/// 127.0.0.1:P and [::1]:P for some free P (bounded retries).
pub fn shared_port_pair() -> (TcpListener, TcpListener) {
    for _ in 0..50 {
        let v4 = TcpListener::bind("127.0.0.1:0").unwrap();
        if let Ok(v6) = TcpListener::bind(("::1", port(&v4))) {
            return (v4, v6);
        }
    }
    panic!("no port free on both 127.0.0.1 and ::1 after 50 tries");
}

/// (client, accepted server side) of one connection to `listener` at `to`.
pub fn connect(to: SocketAddr, listener: &TcpListener) -> (TcpStream, TcpStream) {
    let client = TcpStream::connect_timeout(&to, Duration::from_secs(5)).unwrap();
    let (server, _) = listener.accept().unwrap();
    (client, server)
}

static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Serialises the tests of one binary that open socket fixtures: the kernel may give two
/// concurrent fixtures the same port number on different addresses, which would mix their
/// sockets in port-filtered assertions. Hold the guard as long as the sockets live.
pub fn exclusive() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}
