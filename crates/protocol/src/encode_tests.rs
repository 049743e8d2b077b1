//! Tests of encode.rs: every output byte against a straightforward reference encoder,
//! and the custom-metric rules. Kept apart so the encoder itself stays short.

use super::*;
use std::net::IpAddr;

use crate::ListCut;
use crate::model::{ConnectionList, Header, Metrics, NetworkStats};

fn report(custom: &[(&str, CustomValue)]) -> Report {
    Report {
        header: Header { report_id: 3 },
        metrics: Metrics {
            listening_tcp_ports: PortList::default(),
            listening_udp_ports: PortList::default(),
            established: ConnectionList::default(),
            network_stats: None,
            missing: Default::default(),
        },
        custom_metrics: custom
            .iter()
            .map(|(n, v)| (n.to_string(), v.clone()))
            .collect(),
    }
}

/// The straightforward encoder this module replaced, built on an independent value tree:
/// encode everything; when too big, measure each entry alone and let the cut policy
/// (limits.rs module doc) choose.
mod reference {
    use super::*;
    use crate::limits::{Facts, PortFacts, Sizes, plan};
    use ciborium::Value;

    fn bytes(v: &Value, format: Format) -> Vec<u8> {
        let mut out = Vec::new();
        if format.is_cbor() {
            ciborium::into_writer(v, &mut out).unwrap();
        } else {
            serde_json::to_writer(&mut out, v).unwrap();
        }
        out
    }

    fn map(short: bool, fields: Vec<(Key, Value)>) -> Value {
        Value::Map(
            fields
                .into_iter()
                .map(|(k, v)| (Value::Text(k.name(short).into()), v))
                .collect(),
        )
    }

    fn port(p: &Port, short: bool) -> Value {
        let mut f = vec![(Key::Port, Value::from(u64::from(p.port)))];
        if let Some(i) = &p.interface {
            f.push((Key::Interface, Value::Text(i.clone())));
        }
        map(short, f)
    }

    fn conn(c: &Connection, short: bool) -> Value {
        let mut f = vec![
            (Key::RemoteAddr, Value::Text(c.remote_addr())),
            (Key::LocalPort, Value::from(u64::from(c.local_port))),
        ];
        if let Some(i) = &c.local_interface {
            f.push((Key::LocalInterface, Value::Text(i.clone())));
        }
        map(short, f)
    }

    fn whole(r: &Report, short: bool, tcp: &[usize], udp: &[usize], conns: &[usize]) -> Value {
        let m = &r.metrics;
        let ports = |l: &PortList, kept: &[usize]| {
            map(
                short,
                vec![
                    (
                        Key::Ports,
                        Value::Array(kept.iter().map(|i| port(&l.ports[*i], short)).collect()),
                    ),
                    (Key::Total, Value::from(l.total)),
                ],
            )
        };
        let mut metrics = vec![
            (Key::ListeningTcpPorts, ports(&m.listening_tcp_ports, tcp)),
            (Key::ListeningUdpPorts, ports(&m.listening_udp_ports, udp)),
        ];
        if let Some(ns) = &m.network_stats {
            let f = [ns.bytes_in, ns.bytes_out, ns.packets_in, ns.packets_out].map(Value::from);
            let [bi, bo, pi, po] = f;
            metrics.push((
                Key::NetworkStats,
                map(
                    short,
                    vec![
                        (Key::BytesIn, bi),
                        (Key::BytesOut, bo),
                        (Key::PacketsIn, pi),
                        (Key::PacketsOut, po),
                    ],
                ),
            ));
        }
        let cs = conns
            .iter()
            .map(|i| conn(&m.established.connections[*i], short))
            .collect();
        let ec = map(
            short,
            vec![
                (Key::Connections, Value::Array(cs)),
                (Key::Total, Value::from(m.established.total)),
            ],
        );
        metrics.push((
            Key::TcpConnections,
            map(short, vec![(Key::EstablishedConnections, ec)]),
        ));
        let header = map(
            short,
            vec![
                (Key::ReportId, Value::from(r.header.report_id)),
                (Key::Version, Value::Text(VERSION.into())),
            ],
        );
        let mut v = map(
            short,
            vec![(Key::Header, header), (Key::Metrics, map(short, metrics))],
        );
        if !r.custom_metrics.is_empty() {
            let cm = r
                .custom_metrics
                .iter()
                .map(|(name, value)| {
                    let CustomValue::Number(x) = value else {
                        panic!("reference handles numbers only")
                    };
                    let obj = Value::Map(vec![(Value::Text(NUMBER.into()), Value::Float(*x))]);
                    (Value::Text(name.clone()), Value::Array(vec![obj]))
                })
                .collect();
            if let Value::Map(entries) = &mut v {
                entries.push((
                    Value::Text(Key::CustomMetrics.name(short).into()),
                    Value::Map(cm),
                ));
            }
        }
        v
    }

    /// Tcp port, udp port and connection indices kept.
    pub type Kept = (Vec<usize>, Vec<usize>, Vec<usize>);

    /// The bytes, and what was kept when the report had to be cut. Entry sizes come from
    /// the independent value tree; the choice from the policy itself (`limits::plan`).
    pub fn encode(r: &Report, f: Format) -> (Vec<u8>, Option<Kept>) {
        let short = f.short_keys();
        let m = &r.metrics;
        let all = |n: usize| (0..n).collect::<Vec<usize>>();
        let (nt, nu, nc) = (
            all(m.listening_tcp_ports.ports.len()),
            all(m.listening_udp_ports.ports.len()),
            all(m.established.connections.len()),
        );
        let out = bytes(&whole(r, short, &nt, &nu, &nc), f);
        if out.len() < MAX_REPORT_BYTES {
            return (out, None);
        }
        let sep = usize::from(!f.is_cbor());
        let base = bytes(&whole(r, short, &[], &[], &[]), f).len();
        let size = |v: Value| bytes(&v, f).len() + sep;
        let port_sizes =
            |l: &PortList| -> Vec<usize> { l.ports.iter().map(|p| size(port(p, short))).collect() };
        let port_facts = |l: &PortList| -> Vec<PortFacts> {
            l.ports
                .iter()
                .map(|p| PortFacts {
                    port: p.port,
                    loopback: p.interface.as_deref() == Some("lo"),
                })
                .collect()
        };
        let conns = &m.established.connections;
        let (tcp, udp) = (
            port_sizes(&m.listening_tcp_ports),
            port_sizes(&m.listening_udp_ports),
        );
        let conn_sizes: Vec<usize> = conns.iter().map(|c| size(conn(c, short))).collect();
        let (tf, uf) = (
            port_facts(&m.listening_tcp_ports),
            port_facts(&m.listening_udp_ports),
        );
        let ips: Vec<IpAddr> = conns.iter().map(|c| c.remote.ip()).collect();
        let sel = plan(
            &Sizes {
                base,
                slack_per_list: 4,
                tcp: &tcp,
                udp: &udp,
                connections: &conn_sizes,
            },
            &Facts {
                tcp: &tf,
                udp: &uf,
                remote_ips: &ips,
            },
        );
        let kept = (sel.tcp, sel.udp, sel.connections);
        (
            bytes(&whole(r, short, &kept.0, &kept.1, &kept.2), f),
            Some(kept),
        )
    }
}

/// Deterministic pseudo-random numbers (no extra crate).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % below
    }
}

/// Varied entries: IPv4 and IPv6 remotes (few distinct IPs, so duplicates), ports of every
/// CBOR width, interface names that JSON escapes or that cross CBOR length headers.
fn varied(seed: u64, tcp: usize, udp: usize, conns: usize) -> Report {
    let mut rng = Lcg(seed);
    let ifaces = [
        None,
        Some("eth0".to_string()),
        Some("we\"ird\\na\u{1}me\u{7f}".to_string()),
        Some("wlan-é-ü".to_string()),
        Some("x".repeat(30)),
        Some("y".repeat(300)),
    ];
    let port_no = |rng: &mut Lcg| {
        [
            1, 9, 10, 23, 24, 99, 100, 255, 256, 999, 1000, 9999, 10000, 65533,
        ][rng.next(14) as usize]
            + rng.next(3) as u16
    };
    let ports = |n: usize, rng: &mut Lcg| {
        let mut ports: Vec<Port> = (0..n)
            .map(|_| Port {
                port: port_no(rng),
                interface: ifaces[rng.next(6) as usize].clone(),
            })
            .collect();
        ports.sort();
        ports.dedup();
        PortList {
            total: ports.len() as u64 + rng.next(3),
            ports,
        }
    };
    let listening_tcp_ports = ports(tcp, &mut rng);
    let listening_udp_ports = ports(udp, &mut rng);
    let connections: Vec<Connection> = (0..conns)
        .map(|_| {
            let ip: IpAddr = match rng.next(4) {
                0 => IpAddr::from([10, 0, 0, rng.next(4) as u8]),
                1 => IpAddr::from([0; 4].map(|_| [0, 9, 10, 99, 100, 255][rng.next(6) as usize])),
                2 => "2001:db8::1".parse().unwrap(),
                _ => IpAddr::from([0x2001, 0xdb8, 0, 0, 0, 0, rng.next(9) as u16, 1]),
            };
            Connection {
                remote: std::net::SocketAddr::new(ip, port_no(&mut rng)),
                local_port: port_no(&mut rng),
                local_interface: ifaces[rng.next(6) as usize].clone(),
            }
        })
        .collect();
    Report {
        header: Header {
            report_id: seed + 1,
        },
        metrics: Metrics {
            listening_tcp_ports,
            listening_udp_ports,
            established: ConnectionList {
                total: conns as u64,
                connections,
            },
            network_stats: seed.is_multiple_of(2).then_some(NetworkStats {
                bytes_in: u64::MAX,
                bytes_out: 0,
                packets_in: 24,
                packets_out: 70_000,
            }),
            missing: Default::default(),
        },
        custom_metrics: [("m1".to_string(), CustomValue::Number(0.5))]
            .into_iter()
            .take((seed % 3) as usize)
            .collect(),
    }
}

fn same_as_reference(r: &Report) -> usize {
    let mut cuts = 0;
    for f in Format::ALL {
        let got = encode(r, f).unwrap();
        let (bytes, kept) = reference::encode(r, f);
        assert!(got.bytes == bytes, "{f}: bytes differ from the reference");
        let m = &r.metrics;
        let want = kept.and_then(|(t, u, c)| {
            Selection {
                tcp: t,
                udp: u,
                connections: c,
                custom: None,
            }
            .cut(
                m.listening_tcp_ports.ports.len(),
                m.listening_udp_ports.ports.len(),
                m.established.connections.len(),
                ListCut { kept: 0, total: 0 },
            )
        });
        assert_eq!(got.cut, want, "{f}");
        cuts += usize::from(got.cut.is_some());
    }
    cuts
}

#[test]
fn big_and_odd_tables_match_the_straightforward_encoder() {
    let mut cuts = 0;
    // Sorted as build() makes them, and unsorted (a Report can be built by hand).
    for (seed, tcp, udp, conns) in [
        (0, 3, 2, 5),
        (1, 40, 30, 0),
        (2, 5, 5, 20_000),
        (3, 3000, 0, 10),
        (4, 200, 2000, 100),
    ] {
        let mut r = varied(seed, tcp, udp, conns);
        cuts += same_as_reference(&r);
        r.metrics.established.connections.sort();
        cuts += same_as_reference(&r);
    }
    assert!(cuts >= 8, "{cuts}");
}

#[test]
fn reports_just_under_and_over_the_limit_match_the_straightforward_encoder() {
    let full = varied(5, 4, 4, 4000);
    for f in Format::ALL {
        // The first connection count whose whole report no longer fits, by bisection.
        let with = |n: usize| {
            let mut r = full.clone();
            r.metrics.established.connections.truncate(n);
            r
        };
        let (mut lo, mut hi) = (0, 4000);
        while hi - lo > 1 {
            let mid = (lo + hi) / 2;
            if reference::encode(&with(mid), f).1.is_some() {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        for n in [lo - 1, lo, hi, hi + 1] {
            let r = with(n);
            let got = encode(&r, f).unwrap();
            assert!(got.bytes == reference::encode(&r, f).0, "{f} at {n}");
            assert_eq!(got.cut.is_some(), n >= hi, "{f} at {n}");
        }
    }
}

#[test]
fn custom_metrics_are_wrapped_and_never_abbreviated() {
    let r = report(&[
        ("battery_pct", CustomValue::Number(87.5)),
        ("cpu", CustomValue::NumberList(vec![12.0, -3.25])),
        ("fw", CustomValue::StringList(vec!["net".into()])),
        (
            "peers",
            CustomValue::IpList(vec![
                "198.51.100.2".parse().unwrap(),
                "::1".parse().unwrap(),
            ]),
        ),
    ]);
    let json = String::from_utf8(encode(&r, Format::JsonShort).unwrap().bytes).unwrap();
    assert!(
        json.ends_with(
            r#""cmet":{"battery_pct":[{"number":87.5}],"cpu":[{"number_list":[12.0,-3.25]}],"fw":[{"string_list":["net"]}],"peers":[{"ip_list":["198.51.100.2","::1"]}]}}"#
        ),
        "{json}"
    );
    let cbor = encode(&r, Format::CborShort).unwrap().bytes;
    let v: ciborium::Value = ciborium::from_reader(cbor.as_slice()).unwrap();
    let text = serde_json::to_string(&v).unwrap();
    assert!(
        text.contains(r#""cmet":{"battery_pct":[{"number":87.5}]"#),
        "{text}"
    );
}

#[test]
fn bad_custom_metrics_are_errors_naming_the_metric() {
    let err = encode(
        &report(&[("x", CustomValue::Number(f64::NAN))]),
        Format::Json,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("\"x\"") && err.contains("NaN"), "{err}");
    for name in ["aws:cpu", "", "cpu usage", &"m".repeat(129)] {
        let err = encode(&report(&[(name, CustomValue::Number(1.0))]), Format::Json)
            .unwrap_err()
            .to_string();
        assert!(err.contains(&format!("{name:?}")), "{err}");
    }
}
