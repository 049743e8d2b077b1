//! Loopback sockets the tests open themselves: a dual-stack listener, connected pairs, and a
//! port free on both 127.0.0.1 and ::1, and the fixture built from them. Shared by the
//! collector and dump tests.

use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
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

/// Sockets one test owns; all on loopback except the two wildcard TCP listeners.
pub struct Fixture {
    pub lo4: TcpListener,
    pub lo6: TcpListener,
    pub any4: TcpListener,
    /// `[::]:P` with IPV6_V6ONLY off (dual stack).
    pub dual: TcpListener,
    /// 127.0.0.1:P and [::1]:P on the same port P: one (P, "lo") entry in the report.
    pub shared: (TcpListener, TcpListener),
    pub udp4: UdpSocket,
    pub udp6: UdpSocket,
    pub udp_connected: UdpSocket,
    /// (client, accepted server side)
    pub conns: Vec<(TcpStream, TcpStream)>,
    /// Last field: released after the sockets above are closed.
    _turn: std::sync::MutexGuard<'static, ()>,
}

impl Fixture {
    pub fn open() -> Fixture {
        let turn = exclusive();
        let lo4 = TcpListener::bind("127.0.0.1:0").unwrap();
        let lo6 = TcpListener::bind("[::1]:0").unwrap();
        let any4 = TcpListener::bind("0.0.0.0:0").unwrap();
        let dual = dual_stack_listener();
        let shared = shared_port_pair();
        let udp4 = UdpSocket::bind("127.0.0.1:0").unwrap();
        let udp6 = UdpSocket::bind("[::1]:0").unwrap();
        let udp_connected = UdpSocket::bind("127.0.0.1:0").unwrap();
        udp_connected.connect(udp4.local_addr().unwrap()).unwrap();
        let conns = vec![
            connect(v4(port(&lo4)), &lo4),
            connect(v4(port(&lo4)), &lo4),
            connect(v6(port(&lo6)), &lo6),
            connect(v4(port(&any4)), &any4),
            // IPv4 into the dual-stack listener: the server side is ::ffff:127.0.0.1.
            connect(v4(port(&dual)), &dual),
            connect(v6(port(&dual)), &dual),
        ];
        Fixture {
            lo4,
            lo6,
            any4,
            dual,
            shared,
            udp4,
            udp6,
            udp_connected,
            conns,
            _turn: turn,
        }
    }

    pub fn tcp_listener_ports(&self) -> BTreeSet<u16> {
        [&self.lo4, &self.lo6, &self.any4, &self.dual, &self.shared.0]
            .into_iter()
            .map(port)
            .collect()
    }

    pub fn udp_ports(&self) -> BTreeSet<u16> {
        [&self.udp4, &self.udp6, &self.udp_connected]
            .into_iter()
            .map(|u| u.local_addr().unwrap().port())
            .collect()
    }

    /// Every TCP port on either end of the fixture's connections.
    pub fn conn_ports(&self) -> BTreeSet<u16> {
        let mut p = self.tcp_listener_ports();
        for (c, _) in &self.conns {
            p.insert(c.local_addr().unwrap().port());
        }
        p
    }

    /// Every local port the fixture owns: listeners, UDP sockets, connection client ends.
    pub fn ports(&self) -> BTreeSet<u16> {
        let mut p = self.conn_ports();
        p.extend(self.udp_ports());
        p
    }
}
