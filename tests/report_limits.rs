//! A host with 20 000+ established connections and thousands of listeners: every encoding
//! stays under MAX_PAYLOAD_BYTES, keeps true totals, is deterministic and still shows every
//! distinct remote IP and every listener it can (protocol doc §4, §7.1 items 12 and 16).

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use detect_agent::collect::{Proto, Socket, SocketSource, SocketTable};
use detect_agent::report::{self, Format, ListCut, MAX_PAYLOAD_BYTES};

fn sock(proto: Proto, local: SocketAddr, remote: SocketAddr, iface: Option<&str>) -> Socket {
    Socket {
        proto,
        local,
        remote,
        inode: 0,
        interface: iface.map(str::to_string),
    }
}

const KNOWN: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const BULK: usize = 20_000;

/// Distinct "unknown" remote IPs, all sorting after the known one.
fn rare_ips() -> Vec<IpAddr> {
    let mut ips: Vec<IpAddr> = (1..=150u8)
        .map(|i| IpAddr::V4(Ipv4Addr::new(203, 0, 113, i)))
        .collect();
    ips.extend((1..=150u16).map(|i| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, i))));
    ips
}

fn big_table(tcp_ports: u16, udp_ports: u16) -> SocketTable {
    let any4 = SocketAddr::from(([0, 0, 0, 0], 0));
    let lo = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
    let mut tcp_established: Vec<Socket> = (0..BULK)
        .map(|i| {
            let remote = SocketAddr::from((KNOWN, 443 + (i % 7) as u16));
            sock(Proto::Tcp, lo(20_000 + i as u16), remote, Some("eth0"))
        })
        .collect();
    for (i, ip) in rare_ips().into_iter().enumerate() {
        tcp_established.push(sock(
            Proto::Tcp,
            lo(50_000 + i as u16),
            SocketAddr::new(ip, 8883),
            Some("eth0"),
        ));
    }
    SocketTable {
        tcp_listen: (1..=tcp_ports)
            .map(|p| sock(Proto::Tcp, lo(p), any4, Some("lo")))
            .collect(),
        udp_listen: (1..=udp_ports)
            .map(|p| sock(Proto::Udp, SocketAddr::from(([0, 0, 0, 0], p)), any4, None))
            .collect(),
        tcp_established,
        source: SocketSource::SockDiag,
    }
}

fn decode(bytes: &[u8], format: Format) -> serde_json::Value {
    if format.is_cbor() {
        let v: ciborium::Value = ciborium::from_reader(bytes).unwrap();
        // ciborium::Value → serde_json::Value through serde (text keys only).
        serde_json::to_value(&v).unwrap()
    } else {
        serde_json::from_slice(bytes).unwrap()
    }
}

/// Long-key view of the lists: (ports tp, total tp, ports up, total up, remote addrs, total).
fn lists(v: &serde_json::Value, short: bool) -> (usize, u64, usize, u64, Vec<String>, u64) {
    let k = |long: &'static str, s: &'static str| if short { s } else { long };
    let m = &v[k("metrics", "met")];
    let tp = &m[k("listening_tcp_ports", "tp")];
    let up = &m[k("listening_udp_ports", "up")];
    let ec = &m[k("tcp_connections", "tc")][k("established_connections", "ec")];
    let addrs = ec[k("connections", "cs")]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c[k("remote_addr", "rad")].as_str().unwrap().to_string())
        .collect();
    (
        tp[k("ports", "pts")].as_array().unwrap().len(),
        tp[k("total", "t")].as_u64().unwrap(),
        up[k("ports", "pts")].as_array().unwrap().len(),
        up[k("total", "t")].as_u64().unwrap(),
        addrs,
        ec[k("total", "t")].as_u64().unwrap(),
    )
}

/// Encodes `r` and checks the payload stays under the limit.
fn encode_under_limit(r: &report::Report, format: Format) -> report::Encoded {
    let enc = report::encode(r, format).unwrap();
    assert!(
        enc.bytes.len() < MAX_PAYLOAD_BYTES,
        "{format}: {}",
        enc.bytes.len()
    );
    enc
}

#[test]
fn twenty_thousand_connections_fit_with_every_remote_ip() {
    let mut table = big_table(1500, 500);
    let total_conns = (BULK + rare_ips().len()) as u64;
    let r = report::build(&table, None, 42);
    // Same sockets in another order: the model sorts, so the bytes must not change.
    table.tcp_established.reverse();
    table.tcp_listen.reverse();
    let r2 = report::build(&table, None, 42);
    for format in Format::ALL {
        let enc = encode_under_limit(&r, format);
        assert_eq!(
            report::encode(&r2, format).unwrap(),
            enc,
            "{format}: not deterministic"
        );
        let cut = enc.cut.expect("a cut must be reported");
        assert_eq!(
            cut.tcp_ports,
            ListCut {
                kept: 1500,
                total: 1500
            }
        );
        assert_eq!(
            cut.udp_ports,
            ListCut {
                kept: 500,
                total: 500
            }
        );
        assert_eq!(cut.connections.total, total_conns as usize);

        let (tp, tp_total, up, up_total, addrs, conn_total) =
            lists(&decode(&enc.bytes, format), format.short_keys());
        assert_eq!(
            (tp, tp_total, up, up_total),
            (1500, 1500, 500, 500),
            "{format}"
        );
        assert_eq!(
            conn_total, total_conns,
            "{format}: total must stay the true count"
        );
        assert_eq!(addrs.len(), cut.connections.kept);
        assert!(addrs.len() < BULK, "{format}");
        let seen: BTreeSet<IpAddr> = addrs
            .iter()
            .map(|a| a.parse::<SocketAddr>().unwrap().ip())
            .collect();
        for ip in rare_ips().into_iter().chain([IpAddr::V4(KNOWN)]) {
            assert!(
                seen.contains(&ip),
                "{format}: remote {ip} hidden by the cut"
            );
        }
        // The connections that went out are in sorted order.
        let parsed: Vec<SocketAddr> = addrs.iter().map(|a| a.parse().unwrap()).collect();
        let mut sorted = parsed.clone();
        sorted.sort();
        assert_eq!(parsed, sorted, "{format}");
    }
}

#[test]
fn listeners_alone_over_the_limit_are_cut_too() {
    let r = report::build(&big_table(65_535, 2_000), None, 43);
    for format in Format::ALL {
        let enc = encode_under_limit(&r, format);
        let cut = enc.cut.unwrap();
        assert!(
            cut.tcp_ports.kept > 1000 && cut.tcp_ports.kept < 65_535,
            "{cut:?}"
        );
        assert_eq!(
            (cut.udp_ports.kept, cut.connections.kept),
            (0, 0),
            "{cut:?}"
        );
        let (tp, tp_total, up, up_total, addrs, conn_total) =
            lists(&decode(&enc.bytes, format), format.short_keys());
        assert_eq!((tp, tp_total), (cut.tcp_ports.kept, 65_535));
        assert_eq!((up, up_total), (0, 2_000));
        assert_eq!(
            (addrs.len(), conn_total),
            (0, (BULK + rare_ips().len()) as u64)
        );
        // The kept budget is used: the report is not cut far below the limit.
        assert!(
            enc.bytes.len() > MAX_PAYLOAD_BYTES - 100,
            "{format}: {}",
            enc.bytes.len()
        );
    }
}
