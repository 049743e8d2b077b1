//! Builds the report model from one socket table (protocol doc §1.4, §10): port filter,
//! (port, interface) dedupe, wildcard handling, address formatting, sorting. Does not read
//! the host, compute deltas or apply size limits.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};

use super::model::{
    Connection, ConnectionList, CustomValue, Header, Metrics, NetworkStats, Port, PortList, Report,
};
use crate::collect::{Socket, SocketTable, unmap};

/// The report for one sample. `report_id` comes from the caller (state keeps it increasing).
pub fn build(sockets: &SocketTable, network_stats: Option<NetworkStats>, report_id: u64) -> Report {
    build_with_custom(sockets, network_stats, BTreeMap::new(), report_id)
}

/// `build` with the sample's custom metric values by name (protocol doc §1.5).
pub fn build_with_custom(
    sockets: &SocketTable,
    network_stats: Option<NetworkStats>,
    custom_metrics: BTreeMap<String, CustomValue>,
    report_id: u64,
) -> Report {
    Report {
        header: Header { report_id },
        metrics: Metrics {
            listening_tcp_ports: port_list(&sockets.tcp_listen),
            listening_udp_ports: port_list(&sockets.udp_listen),
            established: connection_list(&sockets.tcp_established),
            network_stats,
            missing: Default::default(),
        },
        custom_metrics,
    }
}

/// Ports 1–65535 only (protocol doc §4); one entry per (port, interface) pair whatever the
/// address family, so 0.0.0.0:22 and [::]:22 give one entry (protocol doc §10).
fn port_list(sockets: &[Socket]) -> PortList {
    let set: BTreeSet<Port> = sockets
        .iter()
        .filter(|s| s.local.port() != 0)
        .map(|s| Port {
            port: s.local.port(),
            interface: interface_of(s),
        })
        .collect();
    let ports: Vec<Port> = set.into_iter().collect();
    PortList {
        total: ports.len() as u64,
        ports,
    }
}

/// Every established connection is listed (no dedupe): `total` is the true count.
fn connection_list(sockets: &[Socket]) -> ConnectionList {
    let mut connections: Vec<Connection> = sockets
        .iter()
        .map(|s| Connection {
            remote: normalize(s.remote),
            local_port: s.local.port(),
            local_interface: interface_of(s),
        })
        .collect();
    // Same result as a stable sort (entries that compare equal are identical), less work.
    connections.sort_unstable();
    ConnectionList {
        total: connections.len() as u64,
        connections,
    }
}

/// Interface name, never for a wildcard bind and never an address-like or empty string
/// (protocol doc §6 table: reference agents wrote "0.0.0.0"; §10: omit the key instead).
fn interface_of(s: &Socket) -> Option<String> {
    if unmap(s.local).ip().is_unspecified() {
        return None;
    }
    s.interface
        .as_ref()
        .filter(|name| !name.is_empty() && name.parse::<IpAddr>().is_err())
        .cloned()
}

/// Unwraps IPv4-mapped addresses (collect already does; done again defensively, §10) and
/// drops IPv6 flow info / scope id so that equal endpoints compare and sort equal.
fn normalize(addr: SocketAddr) -> SocketAddr {
    let plain = unmap(addr);
    SocketAddr::new(plain.ip(), plain.port())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::{Proto, SocketSource};

    fn sock(proto: Proto, local: &str, remote: &str, iface: Option<&str>) -> Socket {
        Socket {
            proto,
            local: local.parse().unwrap(),
            remote: remote.parse().unwrap(),
            inode: 0,
            interface: iface.map(str::to_string),
        }
    }

    fn table() -> SocketTable {
        use Proto::*;
        SocketTable {
            tcp_listen: vec![
                sock(Tcp, "[::]:22", "[::]:0", None),
                sock(Tcp, "0.0.0.0:22", "0.0.0.0:0", None),
                sock(Tcp, "0.0.0.0:0", "0.0.0.0:0", None),
                sock(Tcp, "127.0.0.1:631", "0.0.0.0:0", Some("lo")),
                sock(Tcp, "[::1]:631", "[::]:0", Some("lo")),
                sock(Tcp, "0.0.0.0:80", "0.0.0.0:0", Some("0.0.0.0")),
                sock(Tcp, "192.0.2.1:8080", "0.0.0.0:0", Some("")),
                sock(Tcp, "[::ffff:0.0.0.0]:443", "[::]:0", Some("eth0")),
            ],
            udp_listen: vec![
                sock(Udp, "0.0.0.0:68", "0.0.0.0:0", None),
                sock(Udp, "127.0.0.53:53", "0.0.0.0:0", Some("lo")),
            ],
            tcp_established: vec![
                sock(Tcp, "[::1]:4000", "[::1]:5000", Some("lo")),
                sock(Tcp, "127.0.0.1:4001", "[::ffff:127.0.0.2]:80", Some("lo")),
                sock(Tcp, "127.0.0.1:4002", "127.0.0.1:80", None),
            ],
            source: SocketSource::ProcNet,
        }
    }

    #[test]
    fn ports_are_filtered_deduped_and_sorted() {
        let r = build(&table(), None, 7);
        let tp = &r.metrics.listening_tcp_ports;
        let got: Vec<(u16, Option<&str>)> = tp
            .ports
            .iter()
            .map(|p| (p.port, p.interface.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                (22, None),
                (80, None),
                (443, None),
                (631, Some("lo")),
                (8080, None)
            ]
        );
        assert_eq!(tp.total, 5);
        assert_eq!(r.metrics.listening_udp_ports.total, 2);
        assert_eq!(r.header.report_id, 7);
    }

    #[test]
    fn connections_with_ties_are_in_model_order() {
        let ips = [
            "10.0.0.1",
            "10.0.0.2",
            "9.255.255.255",
            "::1",
            "2001:db8::1",
            "::ffff:10.0.0.1",
        ];
        let mut table = table();
        table.tcp_established = (0..600)
            .map(|i| {
                let remote = SocketAddr::new(ips[i % ips.len()].parse().unwrap(), [80, 443][i % 2]);
                let iface = [None, Some("lo"), Some("eth0")][i % 3];
                let local = format!("127.0.0.1:{}", [4000, 3999][i % 5 / 4]);
                sock(Proto::Tcp, &local, &remote.to_string(), iface)
            })
            .collect();
        table.tcp_established.reverse();
        let got = build(&table, None, 1).metrics.established.connections;
        let mut want = got.clone();
        want.reverse();
        want.sort();
        assert_eq!(got, want);
        assert!(got.windows(2).any(|w| w[0].remote == w[1].remote));
    }

    #[test]
    fn connections_are_normalized_and_sorted() {
        let r = build(&table(), None, 1);
        let c = &r.metrics.established;
        assert_eq!(c.total, 3);
        let addrs: Vec<String> = c.connections.iter().map(Connection::remote_addr).collect();
        assert_eq!(addrs, ["127.0.0.1:80", "127.0.0.2:80", "[::1]:5000"]);
        assert_eq!(c.connections[0].local_port, 4002);
        assert_eq!(c.connections[0].local_interface, None);
        assert_eq!(c.connections[1].local_interface.as_deref(), Some("lo"));
    }
}
