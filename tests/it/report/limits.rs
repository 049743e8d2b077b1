//! A host with 20 000+ established connections and thousands of listeners: every encoding
//! stays under MAX_PAYLOAD_BYTES, keeps true totals, is deterministic and still shows every
//! distinct remote IP and every listener it can (protocol doc §4, §7.1 items 12 and 16).

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use detect_agent::collect::{Proto, Socket, SocketSource, SocketTable};
use detect_agent::report::{self, CustomValue, Format, ListCut, MAX_PAYLOAD_BYTES};

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
fn listeners_alone_over_the_limit_are_cut_and_leave_udp_and_connections_their_share() {
    let r = report::build(&big_table(65_535, 2_000), None, 43);
    for format in Format::ALL {
        let enc = encode_under_limit(&r, format);
        let cut = enc.cut.unwrap();
        assert!(
            cut.tcp_ports.kept > 1000 && cut.tcp_ports.kept < 65_535,
            "{cut:?}"
        );
        // A flood of TCP listeners never empties the other lists (limits.rs, round 1).
        assert_eq!(cut.udp_ports.kept, 2_000, "{cut:?}");
        assert!(cut.connections.kept > rare_ips().len(), "{cut:?}");
        let v = decode(&enc.bytes, format);
        let (tp, tp_total, up, up_total, addrs, conn_total) = lists(&v, format.short_keys());
        assert_eq!((tp, tp_total), (cut.tcp_ports.kept, 65_535));
        assert_eq!((up, up_total), (2_000, 2_000));
        assert_eq!(
            (addrs.len(), conn_total),
            (cut.connections.kept, (BULK + rare_ips().len()) as u64)
        );
        let seen: BTreeSet<IpAddr> = addrs
            .iter()
            .map(|a| a.parse::<SocketAddr>().unwrap().ip())
            .collect();
        assert_eq!(seen.len(), rare_ips().len() + 1, "{format}");
        // Every privileged port is in (they come first).
        let k = |long: &'static str, s: &'static str| if format.short_keys() { s } else { long };
        let ports: BTreeSet<u64> = v[k("metrics", "met")][k("listening_tcp_ports", "tp")]
            [k("ports", "pts")]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[k("port", "pt")].as_u64().unwrap())
        .collect();
        assert!((1..1024).all(|p| ports.contains(&p)), "{format}");
        // The kept budget is used: the report is not cut far below the limit.
        assert!(
            enc.bytes.len() > MAX_PAYLOAD_BYTES - 100,
            "{format}: {}",
            enc.bytes.len()
        );
    }
}

fn long_strings(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("module_{:08}_{:08x}", n - i, i * 7919))
        .collect()
}

/// Three TCP and one UDP listener, no connections.
fn small_table() -> SocketTable {
    SocketTable {
        tcp_established: Vec::new(),
        ..big_table(3, 1)
    }
}

fn custom_report(table: &SocketTable, big: usize) -> report::Report {
    let custom = [
        ("a_huge", CustomValue::StringList(long_strings(big))),
        ("b_battery", CustomValue::Number(87.5)),
        (
            "c_peers",
            CustomValue::IpList(vec![
                "198.51.100.2".parse().unwrap(),
                "2001:db8::9".parse().unwrap(),
            ]),
        ),
        (
            "d_temps",
            CustomValue::NumberList((0..big).map(|i| i as f64 + 0.25).collect()),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    report::build_with_custom(table, None, custom, 44)
}

/// The custom metrics of a decoded payload (`custom_metrics` or `cmet`).
fn custom_of(v: &serde_json::Value, short: bool) -> &serde_json::Map<String, serde_json::Value> {
    v[if short { "cmet" } else { "custom_metrics" }]
        .as_object()
        .unwrap()
}

fn items<'a>(
    c: &'a serde_json::Map<String, serde_json::Value>,
    name: &str,
    key: &str,
) -> &'a Vec<serde_json::Value> {
    let value = c[name].as_array().unwrap();
    assert_eq!(value.len(), 1, "{name}: a one-element array");
    value[0][key].as_array().unwrap()
}

#[test]
fn huge_custom_lists_are_cut_item_wise_and_the_report_still_goes_out() {
    let r = custom_report(&small_table(), 40_000);
    for format in Format::ALL {
        let enc = encode_under_limit(&r, format);
        let cut = enc.cut.expect("a cut must be reported");
        assert_eq!(cut.custom_items.total, 80_002, "{format}");
        assert!(cut.custom_items.kept < 80_002, "{cut:?}");
        let v = decode(&enc.bytes, format);
        let c = custom_of(&v, format.short_keys());
        // The number and the small list are never lost to the big ones.
        assert_eq!(c["b_battery"][0]["number"].as_f64(), Some(87.5), "{format}");
        assert_eq!(items(c, "c_peers", "ip_list").len(), 2, "{format}");
        // Each big list keeps a prefix of its own order, and they share the room.
        let strings = items(c, "a_huge", "string_list");
        let numbers = items(c, "d_temps", "number_list");
        let want = long_strings(40_000);
        for (got, want) in strings.iter().zip(&want) {
            assert_eq!(got.as_str(), Some(want.as_str()));
        }
        assert_eq!(numbers[0].as_f64(), Some(0.25));
        assert_eq!(
            numbers.last().unwrap().as_f64(),
            Some((numbers.len() - 1) as f64 + 0.25)
        );
        assert!(strings.len() > 1000 && numbers.len() > 1000, "{format}");
        assert_eq!(
            strings.len() + numbers.len() + 2,
            cut.custom_items.kept,
            "{format}"
        );
        // The sockets were small: everything of them went out.
        assert_eq!(cut.tcp_ports.kept, 3);
        assert_eq!(cut.connections.kept, cut.connections.total);
        // The room is used: not cut far below the limit.
        assert!(
            enc.bytes.len() > MAX_PAYLOAD_BYTES - 200,
            "{format}: {}",
            enc.bytes.len()
        );
        assert_eq!(
            report::encode(&r, format).unwrap(),
            enc,
            "{format}: not deterministic"
        );
    }
}

#[test]
fn custom_lists_keep_their_share_next_to_a_huge_socket_table_and_every_listener_stays() {
    let r = custom_report(&big_table(1500, 500), 40_000);
    for format in Format::ALL {
        let enc = encode_under_limit(&r, format);
        let cut = enc.cut.unwrap();
        // Listeners before anything else of the sockets, as without custom metrics.
        assert_eq!(
            (cut.tcp_ports.kept, cut.udp_ports.kept),
            (1500, 500),
            "{format}"
        );
        let v = decode(&enc.bytes, format);
        let c = custom_of(&v, format.short_keys());
        let strings = items(c, "a_huge", "string_list");
        let numbers = items(c, "d_temps", "number_list");
        let custom_bytes: usize = strings.iter().map(|s| s.as_str().unwrap().len()).sum();
        // About a quarter of the payload for the custom items, the rest for the sockets.
        assert!(custom_bytes > 10_000, "{format}: {custom_bytes}");
        assert!(strings.len() + numbers.len() < 3_000, "{format}");
        assert_eq!(items(c, "c_peers", "ip_list").len(), 2, "{format}");
        // Connections: at least one per remote IP still fits beside them.
        let (_, _, _, _, addrs, _) = lists(&v, format.short_keys());
        let seen: BTreeSet<IpAddr> = addrs
            .iter()
            .map(|a| a.parse::<SocketAddr>().unwrap().ip())
            .collect();
        assert_eq!(seen.len(), rare_ips().len() + 1, "{format}");
    }
}

#[test]
fn one_custom_list_over_the_limit_alone_is_cut_to_fit() {
    let table = SocketTable {
        tcp_listen: Vec::new(),
        udp_listen: Vec::new(),
        ..small_table()
    };
    let custom = [(
        "only".to_string(),
        CustomValue::StringList(long_strings(100_000)),
    )]
    .into_iter()
    .collect();
    let r = report::build_with_custom(&table, None, custom, 45);
    for format in Format::ALL {
        let enc = encode_under_limit(&r, format);
        let cut = enc.cut.unwrap();
        assert_eq!(cut.custom_items.total, 100_000);
        let v = decode(&enc.bytes, format);
        let kept = items(custom_of(&v, format.short_keys()), "only", "string_list").len();
        assert_eq!(kept, cut.custom_items.kept, "{format}");
        assert!(
            enc.bytes.len() > MAX_PAYLOAD_BYTES - 100,
            "{format}: {}",
            enc.bytes.len()
        );
    }
}
