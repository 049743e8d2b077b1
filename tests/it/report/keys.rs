//! Encodes a fabricated socket table in all four formats and checks every key, type and
//! value against protocol doc §1.1/§1.4/§2.1, written out here independently of keys.rs.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use detect_agent::collect::{Proto, Socket, SocketSource, SocketTable};
use detect_agent::report::{self, Format, NetworkStats};

fn sock(proto: Proto, local: &str, remote: &str, iface: Option<&str>) -> Socket {
    Socket {
        proto,
        local: local.parse().unwrap(),
        remote: remote.parse().unwrap(),
        inode: 1,
        interface: iface.map(str::to_string),
    }
}

fn table() -> SocketTable {
    use Proto::*;
    SocketTable {
        tcp_listen: vec![
            // dual-stack duplicates: one entry without interface
            sock(Tcp, "0.0.0.0:22", "0.0.0.0:0", None),
            sock(Tcp, "[::]:22", "[::]:0", None),
            // specific v4 and v6 binds on lo: one entry with interface
            sock(Tcp, "127.0.0.1:8883", "0.0.0.0:0", Some("lo")),
            sock(Tcp, "[::1]:8883", "[::]:0", Some("lo")),
            sock(Tcp, "[::1]:9000", "[::]:0", Some("lo")),
            // port 0 never reported
            sock(Tcp, "127.0.0.1:0", "0.0.0.0:0", Some("lo")),
        ],
        udp_listen: vec![
            sock(Udp, "0.0.0.0:5353", "0.0.0.0:0", None),
            sock(Udp, "[::]:5353", "[::]:0", None),
            sock(Udp, "127.0.0.53:53", "0.0.0.0:0", Some("lo")),
        ],
        tcp_established: vec![
            sock(Tcp, "127.0.0.1:40000", "127.0.0.1:8883", Some("lo")),
            sock(Tcp, "[::1]:40001", "[::1]:8883", Some("lo")),
            sock(Tcp, "127.0.0.1:40002", "[::ffff:127.0.0.2]:443", None),
        ],
        source: SocketSource::SockDiag,
    }
}

/// (parent position, long, short, type) per protocol doc §1.1, typed as in §1.4.
#[derive(Clone, Copy, PartialEq, Debug)]
enum T {
    Obj,
    Arr,
    Int,
    Str,
}

const EXPECTED: &[(&str, &str, &str, T)] = &[
    ("root", "header", "hed", T::Obj),
    ("root", "metrics", "met", T::Obj),
    ("header", "report_id", "rid", T::Int),
    ("header", "version", "v", T::Str),
    ("metrics", "listening_tcp_ports", "tp", T::Obj),
    ("metrics", "listening_udp_ports", "up", T::Obj),
    ("metrics", "network_stats", "ns", T::Obj),
    ("metrics", "tcp_connections", "tc", T::Obj),
    ("tcp_connections", "established_connections", "ec", T::Obj),
    ("established_connections", "connections", "cs", T::Arr),
    ("established_connections", "total", "t", T::Int),
    ("connections", "remote_addr", "rad", T::Str),
    ("connections", "local_port", "lp", T::Int),
    ("connections", "local_interface", "li", T::Str),
    ("listening_tcp_ports", "ports", "pts", T::Arr),
    ("listening_tcp_ports", "total", "t", T::Int),
    ("listening_udp_ports", "ports", "pts", T::Arr),
    ("listening_udp_ports", "total", "t", T::Int),
    ("ports", "port", "pt", T::Int),
    ("ports", "interface", "if", T::Str),
    ("network_stats", "bytes_in", "bi", T::Int),
    ("network_stats", "bytes_out", "bo", T::Int),
    ("network_stats", "packets_in", "pi", T::Int),
    ("network_stats", "packets_out", "po", T::Int),
];

/// A decoder-neutral value: both JSON and CBOR payloads are converted to this.
#[derive(Debug, Clone, PartialEq)]
enum V {
    Map(Vec<(String, V)>),
    Arr(Vec<V>),
    Int(i128),
    Str(String),
    Other(String),
}

fn from_json(v: &serde_json::Value) -> V {
    use serde_json::Value as J;
    match v {
        J::Object(m) => V::Map(m.iter().map(|(k, v)| (k.clone(), from_json(v))).collect()),
        J::Array(a) => V::Arr(a.iter().map(from_json).collect()),
        J::Number(n) if n.is_u64() => V::Int(i128::from(n.as_u64().unwrap())),
        J::Number(n) if n.is_i64() => V::Int(i128::from(n.as_i64().unwrap())),
        J::String(s) => V::Str(s.clone()),
        other => V::Other(other.to_string()),
    }
}

fn from_cbor(v: &ciborium::Value) -> V {
    use ciborium::Value as C;
    match v {
        C::Map(m) => V::Map(
            m.iter()
                .map(|(k, v)| match k {
                    C::Text(k) => (k.clone(), from_cbor(v)),
                    other => panic!("CBOR map key is not text: {other:?}"),
                })
                .collect(),
        ),
        C::Array(a) => V::Arr(a.iter().map(from_cbor).collect()),
        C::Integer(i) => V::Int(i128::from(*i)),
        C::Text(s) => V::Str(s.clone()),
        other => V::Other(format!("{other:?}")),
    }
}

/// Fails on any indefinite-length item (additional info 31) anywhere in the payload.
fn assert_definite_cbor(bytes: &[u8]) {
    fn item(b: &[u8], mut i: usize) -> usize {
        let major = b[i] >> 5;
        let info = b[i] & 0x1f;
        i += 1;
        assert_ne!(info, 31, "indefinite-length CBOR item at byte {}", i - 1);
        let (arg, len) = match info {
            0..=23 => (u64::from(info), 0),
            24 => (u64::from(b[i]), 1),
            25 => (u64::from(u16::from_be_bytes([b[i], b[i + 1]])), 2),
            26 => (
                u64::from(u32::from_be_bytes(b[i..i + 4].try_into().unwrap())),
                4,
            ),
            27 => (u64::from_be_bytes(b[i..i + 8].try_into().unwrap()), 8),
            _ => panic!("reserved additional info {info}"),
        };
        i += len;
        match major {
            0 | 1 | 7 => i,
            2 | 3 => i + arg as usize,
            4 => (0..arg).fold(i, |i, _| item(b, i)),
            5 => (0..2 * arg).fold(i, |i, _| item(b, i)),
            6 => item(b, i),
            _ => unreachable!(),
        }
    }
    assert_eq!(
        item(bytes, 0),
        bytes.len(),
        "trailing bytes after the CBOR item"
    );
}

fn decode(bytes: &[u8], format: Format) -> V {
    if format.is_cbor() {
        assert_definite_cbor(bytes);
        from_cbor(&ciborium::from_reader::<ciborium::Value, _>(bytes).unwrap())
    } else {
        from_json(&serde_json::from_slice::<serde_json::Value>(bytes).unwrap())
    }
}

/// Walks the tree: every key must be in EXPECTED for its position, in the format's spelling,
/// with the right type. Returns the tree rewritten with long keys for value checks.
fn check_keys(v: &V, position: &str, short: bool, path: &str) -> V {
    match v {
        V::Map(entries) => V::Map(
            entries
                .iter()
                .map(|(k, child)| {
                    let row = EXPECTED
                        .iter()
                        .find(|(p, long, s, _)| *p == position && k == if short { s } else { long })
                        .unwrap_or_else(|| {
                            panic!("{path}: key {k:?} not allowed here (short={short})")
                        });
                    let ty = match child {
                        V::Map(_) => T::Obj,
                        V::Arr(_) => T::Arr,
                        V::Int(_) => T::Int,
                        V::Str(_) => T::Str,
                        V::Other(o) => panic!("{path}.{k}: unexpected value {o} (null/float/bool)"),
                    };
                    assert_eq!(ty, row.3, "{path}.{k}: wrong type");
                    let child_path = format!("{path}.{k}");
                    (
                        row.1.to_string(),
                        check_keys(child, row.1, short, &child_path),
                    )
                })
                .collect(),
        ),
        V::Arr(items) => V::Arr(
            items
                .iter()
                .map(|item| {
                    assert!(
                        matches!(item, V::Map(_)),
                        "{path}: array item is not an object"
                    );
                    check_keys(item, position, short, path)
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

fn get<'a>(v: &'a V, path: &[&str]) -> &'a V {
    path.iter().fold(v, |v, key| match v {
        V::Map(m) => {
            &m.iter()
                .find(|(k, _)| k == key)
                .unwrap_or_else(|| panic!("no {key}"))
                .1
        }
        _ => panic!("{key}: not an object"),
    })
}

fn s(x: &str) -> V {
    V::Str(x.to_string())
}

fn obj(items: &[(&str, V)]) -> V {
    V::Map(
        items
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    )
}

fn expected_long(stats: bool) -> V {
    let port = |p: i128, iface: Option<&str>| {
        let mut o = vec![("port", V::Int(p))];
        if let Some(i) = iface {
            o.push(("interface", s(i)));
        }
        obj(&o)
    };
    let conn = |ra: &str, lp: i128, li: Option<&str>| {
        let mut o = vec![("remote_addr", s(ra)), ("local_port", V::Int(lp))];
        if let Some(i) = li {
            o.push(("local_interface", s(i)));
        }
        obj(&o)
    };
    let mut metrics = vec![
        (
            "listening_tcp_ports",
            obj(&[
                (
                    "ports",
                    V::Arr(vec![
                        port(22, None),
                        port(8883, Some("lo")),
                        port(9000, Some("lo")),
                    ]),
                ),
                ("total", V::Int(3)),
            ]),
        ),
        (
            "listening_udp_ports",
            obj(&[
                (
                    "ports",
                    V::Arr(vec![port(53, Some("lo")), port(5353, None)]),
                ),
                ("total", V::Int(2)),
            ]),
        ),
    ];
    if stats {
        metrics.push((
            "network_stats",
            obj(&[
                ("bytes_in", V::Int(29_358_693_495)),
                ("bytes_out", V::Int(1 << 40)),
                ("packets_in", V::Int(0)),
                ("packets_out", V::Int(7)),
            ]),
        ));
    }
    metrics.push((
        "tcp_connections",
        obj(&[(
            "established_connections",
            obj(&[
                (
                    "connections",
                    V::Arr(vec![
                        conn("127.0.0.1:8883", 40000, Some("lo")),
                        conn("127.0.0.2:443", 40002, None),
                        conn("[::1]:8883", 40001, Some("lo")),
                    ]),
                ),
                ("total", V::Int(3)),
            ]),
        )]),
    ));
    obj(&[
        (
            "header",
            obj(&[
                ("report_id", V::Int(1_717_171_717_000)),
                ("version", s("1.0")),
            ]),
        ),
        ("metrics", obj(&metrics)),
    ])
}

/// Maps are compared as sets of keys (JSON decoders may reorder).
fn sorted(v: &V) -> V {
    match v {
        V::Map(m) => {
            let b: BTreeMap<String, V> = m.iter().map(|(k, v)| (k.clone(), sorted(v))).collect();
            V::Map(b.into_iter().collect())
        }
        V::Arr(a) => V::Arr(a.iter().map(sorted).collect()),
        o => o.clone(),
    }
}

#[test]
fn all_four_formats_follow_the_key_table() {
    let stats = NetworkStats {
        bytes_in: 29_358_693_495,
        bytes_out: 1 << 40,
        packets_in: 0,
        packets_out: 7,
    };
    for with_stats in [true, false] {
        let r = report::build(&table(), with_stats.then_some(stats), 1_717_171_717_000);
        for format in Format::ALL {
            let enc = report::encode(&r, format).unwrap();
            assert_eq!(enc.cut, None);
            assert!(enc.bytes.len() < report::MAX_PAYLOAD_BYTES);
            let tree = decode(&enc.bytes, format);
            let long = check_keys(&tree, "root", format.short_keys(), format.name());
            assert_eq!(
                sorted(&long),
                sorted(&expected_long(with_stats)),
                "{format}"
            );
            // Remote addresses parse as socket addresses; IPv6 ones are bracketed.
            let V::Arr(conns) = get(
                &long,
                &[
                    "metrics",
                    "tcp_connections",
                    "established_connections",
                    "connections",
                ],
            ) else {
                panic!()
            };
            for c in conns {
                let V::Str(ra) = get(c, &["remote_addr"]) else {
                    panic!()
                };
                let addr: SocketAddr = ra.parse().unwrap();
                assert_eq!(addr.is_ipv6(), ra.starts_with('['), "{ra}");
            }
        }
    }
}

#[test]
fn short_formats_use_only_short_spellings_at_the_top() {
    let r = report::build(&table(), None, 5);
    let json = String::from_utf8(report::encode(&r, Format::JsonShort).unwrap().bytes).unwrap();
    assert!(
        json.starts_with(r#"{"hed":{"rid":5,"v":"1.0"},"met":{"tp":{"pts":[{"pt":22}"#),
        "{json}"
    );
    for long in [
        "header",
        "metrics",
        "\"port\"",
        "\"interface\"",
        "total",
        "remote_addr",
    ] {
        assert!(!json.contains(long), "{long} in {json}");
    }
    assert!(!json.contains("null"));
    let long = String::from_utf8(report::encode(&r, Format::Json).unwrap().bytes).unwrap();
    assert!(
        long.starts_with(r#"{"header":{"report_id":5,"version":"1.0"},"metrics":{"#),
        "{long}"
    );
    assert!(
        !long.contains("\"0.0.0.0\"") && !long.contains("\"::\""),
        "{long}"
    );
}

#[test]
fn empty_table_still_sends_the_three_lists() {
    let empty = SocketTable {
        tcp_listen: vec![],
        udp_listen: vec![],
        tcp_established: vec![],
        source: SocketSource::ProcNet,
    };
    let r = report::build(&empty, None, 9);
    let json = String::from_utf8(report::encode(&r, Format::Json).unwrap().bytes).unwrap();
    assert_eq!(
        json,
        r#"{"header":{"report_id":9,"version":"1.0"},"metrics":{"listening_tcp_ports":{"ports":[],"total":0},"listening_udp_ports":{"ports":[],"total":0},"tcp_connections":{"established_connections":{"connections":[],"total":0}}}}"#
    );
}
