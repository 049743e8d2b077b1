//! Encodes a report model as JSON or CBOR with long or short keys (protocol doc §1.1, §2.1):
//! one key-value tree, two serializers, omitted optional keys, size limit applied.
//! Does not decide what the report contains (see `build.rs`) nor where it is sent.

use std::borrow::Cow;
use std::net::IpAddr;

use serde::ser::{SerializeMap, SerializeSeq};

use super::format::Format;
use super::keys::{IP_LIST, Key, NUMBER, NUMBER_LIST, STRING_LIST};
use super::limits::{self, Cut, MAX_PAYLOAD_BYTES, Selection, Sizes};
use super::model::{Connection, CustomValue, Port, PortList, Report, VERSION};

/// Encoded report bytes, and what had to be dropped to fit `MAX_PAYLOAD_BYTES`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    pub bytes: Vec<u8>,
    pub cut: Option<Cut>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot encode report {report_id} as {format}: {detail}")]
    Encode {
        report_id: u64,
        format: Format,
        detail: String,
    },
    #[error(
        "report {report_id} as {format} is {size} bytes even with its lists cut; the limit is under {limit} bytes (custom metrics too large?)"
    )]
    TooLarge {
        report_id: u64,
        format: Format,
        size: usize,
        limit: usize,
    },
    #[error(
        "custom metric name {name:?} is invalid: 1–128 characters of [a-zA-Z0-9:_-], not starting with \"aws:\" (protocol doc §1.5)"
    )]
    MetricName { name: String },
    #[error("custom metric {name:?} holds a number that is not finite ({value})")]
    NotFinite { name: String, value: f64 },
}

/// Encodes `report` in `format`, cutting lists by the policy in `limits.rs` when the whole
/// report would not stay under `MAX_PAYLOAD_BYTES` (logged once, with kept/total per list).
pub fn encode(report: &Report, format: Format) -> Result<Encoded, ReportError> {
    check_custom(report)?;
    let m = &report.metrics;
    let (tcp, udp, conns) = (
        m.listening_tcp_ports.ports.len(),
        m.listening_udp_ports.ports.len(),
        m.established.connections.len(),
    );
    let whole = to_bytes(
        report,
        format,
        &tree(report, format, &Selection::all(tcp, udp, conns)),
    )?;
    if whole.len() < MAX_PAYLOAD_BYTES {
        return Ok(Encoded {
            bytes: whole,
            cut: None,
        });
    }
    let sel = select(report, format)?;
    let bytes = to_bytes(report, format, &tree(report, format, &sel))?;
    if bytes.len() >= MAX_PAYLOAD_BYTES {
        return Err(ReportError::TooLarge {
            report_id: report.header.report_id,
            format,
            size: bytes.len(),
            limit: MAX_PAYLOAD_BYTES,
        });
    }
    let cut = sel.cut(tcp, udp, conns);
    if let Some(c) = &cut {
        tracing::warn!(
            report_id = report.header.report_id,
            format = %format,
            tcp_ports_kept = c.tcp_ports.kept,
            tcp_ports_total = c.tcp_ports.total,
            udp_ports_kept = c.udp_ports.kept,
            udp_ports_total = c.udp_ports.total,
            connections_kept = c.connections.kept,
            connections_total = c.connections.total,
            size = bytes.len(),
            "report lists cut to stay under the payload limit"
        );
    }
    Ok(Encoded { bytes, cut })
}

/// Measures every entry once and lets `limits::plan` choose (bounded, no re-encode loop).
fn select(report: &Report, format: Format) -> Result<Selection, ReportError> {
    let short = format.short_keys();
    let sep = usize::from(!format.is_cbor()); // JSON: one comma per entry (over by one)
    let measure = |node: Node| to_bytes(report, format, &node).map(|b| b.len() + sep);
    let m = &report.metrics;
    let ports = |list: &PortList| -> Result<Vec<usize>, ReportError> {
        list.ports
            .iter()
            .map(|p| measure(port_node(p, short)))
            .collect()
    };
    let tcp = ports(&m.listening_tcp_ports)?;
    let udp = ports(&m.listening_udp_ports)?;
    let conns = m
        .established
        .connections
        .iter()
        .map(|c| measure(connection_node(c, short)))
        .collect::<Result<Vec<usize>, _>>()?;
    let base = to_bytes(report, format, &tree(report, format, &Selection::none()))?.len();
    let ips: Vec<IpAddr> = m
        .established
        .connections
        .iter()
        .map(|c| c.remote.ip())
        .collect();
    let sizes = Sizes {
        base,
        slack_per_list: 4,
        tcp: &tcp,
        udp: &udp,
        connections: &conns,
    };
    Ok(limits::plan(&sizes, &ips))
}

/// A key-value tree: maps keep insertion order and definite lengths in both encodings.
enum Node {
    Map(Vec<(Cow<'static, str>, Node)>),
    Array(Vec<Node>),
    UInt(u64),
    Float(f64),
    Text(String),
}

impl serde::Serialize for Node {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Node::UInt(v) => s.serialize_u64(*v),
            Node::Float(v) => s.serialize_f64(*v),
            Node::Text(t) => s.serialize_str(t),
            Node::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Node::Map(entries) => {
                let mut map = s.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    map.serialize_entry(k.as_ref(), v)?;
                }
                map.end()
            }
        }
    }
}

fn to_bytes(report: &Report, format: Format, node: &Node) -> Result<Vec<u8>, ReportError> {
    let err = |detail: String| ReportError::Encode {
        report_id: report.header.report_id,
        format,
        detail,
    };
    if format.is_cbor() {
        let mut out = Vec::new();
        ciborium::into_writer(node, &mut out).map_err(|e| err(e.to_string()))?;
        Ok(out)
    } else {
        serde_json::to_vec(node).map_err(|e| err(e.to_string()))
    }
}

fn entry(key: Key, short: bool, value: Node) -> (Cow<'static, str>, Node) {
    (Cow::Borrowed(key.name(short)), value)
}

/// The whole report with the selected list entries. Optional keys are left out, never null
/// (protocol doc §7.1 item 7); header and the three lists are always present.
fn tree(report: &Report, format: Format, sel: &Selection) -> Node {
    let short = format.short_keys();
    let m = &report.metrics;
    let header = Node::Map(vec![
        entry(Key::ReportId, short, Node::UInt(report.header.report_id)),
        entry(Key::Version, short, Node::Text(VERSION.to_string())),
    ]);
    let ports = |list: &PortList, kept: usize| {
        Node::Map(vec![
            entry(
                Key::Ports,
                short,
                Node::Array(
                    list.ports
                        .iter()
                        .take(kept)
                        .map(|p| port_node(p, short))
                        .collect(),
                ),
            ),
            entry(Key::Total, short, Node::UInt(list.total)),
        ])
    };
    let mut metrics = vec![
        entry(
            Key::ListeningTcpPorts,
            short,
            ports(&m.listening_tcp_ports, sel.tcp),
        ),
        entry(
            Key::ListeningUdpPorts,
            short,
            ports(&m.listening_udp_ports, sel.udp),
        ),
    ];
    if let Some(ns) = &m.network_stats {
        metrics.push(entry(
            Key::NetworkStats,
            short,
            Node::Map(vec![
                entry(Key::BytesIn, short, Node::UInt(ns.bytes_in)),
                entry(Key::BytesOut, short, Node::UInt(ns.bytes_out)),
                entry(Key::PacketsIn, short, Node::UInt(ns.packets_in)),
                entry(Key::PacketsOut, short, Node::UInt(ns.packets_out)),
            ]),
        ));
    }
    let conns = sel
        .connections
        .iter()
        .filter_map(|i| m.established.connections.get(*i))
        .map(|c| connection_node(c, short))
        .collect();
    metrics.push(entry(
        Key::TcpConnections,
        short,
        Node::Map(vec![entry(
            Key::EstablishedConnections,
            short,
            Node::Map(vec![
                entry(Key::Connections, short, Node::Array(conns)),
                entry(Key::Total, short, Node::UInt(m.established.total)),
            ]),
        )]),
    ));
    let mut root = vec![
        entry(Key::Header, short, header),
        entry(Key::Metrics, short, Node::Map(metrics)),
    ];
    if !report.custom_metrics.is_empty() {
        root.push(entry(Key::CustomMetrics, short, custom_node(report)));
    }
    Node::Map(root)
}

fn port_node(p: &Port, short: bool) -> Node {
    let mut fields = vec![entry(Key::Port, short, Node::UInt(u64::from(p.port)))];
    if let Some(name) = &p.interface {
        fields.push(entry(Key::Interface, short, Node::Text(name.clone())));
    }
    Node::Map(fields)
}

fn connection_node(c: &Connection, short: bool) -> Node {
    let mut fields = vec![
        entry(Key::RemoteAddr, short, Node::Text(c.remote_addr())),
        entry(Key::LocalPort, short, Node::UInt(u64::from(c.local_port))),
    ];
    if let Some(name) = &c.local_interface {
        fields.push(entry(Key::LocalInterface, short, Node::Text(name.clone())));
    }
    Node::Map(fields)
}

/// `{name: [ {value_key: value} ]}`: always a one-element array (protocol doc §1.5,
/// §7.1 item 1); names and value keys are never abbreviated (§1.1).
fn custom_node(report: &Report) -> Node {
    let metrics = report
        .custom_metrics
        .iter()
        .map(|(name, value)| {
            let (key, node) = match value {
                CustomValue::Number(v) => (NUMBER, Node::Float(*v)),
                CustomValue::NumberList(vs) => (
                    NUMBER_LIST,
                    Node::Array(vs.iter().map(|v| Node::Float(*v)).collect()),
                ),
                CustomValue::StringList(vs) => (
                    STRING_LIST,
                    Node::Array(vs.iter().map(|v| Node::Text(v.clone())).collect()),
                ),
                CustomValue::IpList(ips) => (
                    IP_LIST,
                    Node::Array(ips.iter().map(|ip| Node::Text(ip.to_string())).collect()),
                ),
            };
            let object = Node::Map(vec![(Cow::Borrowed(key), node)]);
            (Cow::Owned(name.clone()), Node::Array(vec![object]))
        })
        .collect();
    Node::Map(metrics)
}

/// Names per protocol doc §1.5; numbers must be finite (JSON has no NaN, serde_json would
/// write null, §7.1 item 7).
fn check_custom(report: &Report) -> Result<(), ReportError> {
    for (name, value) in &report.custom_metrics {
        let name_ok = (1..=128).contains(&name.len())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '_' | '-'))
            && !name.starts_with("aws:");
        if !name_ok {
            return Err(ReportError::MetricName { name: name.clone() });
        }
        let numbers: &[f64] = match value {
            CustomValue::Number(v) => std::slice::from_ref(v),
            CustomValue::NumberList(vs) => vs,
            _ => &[],
        };
        if let Some(bad) = numbers.iter().find(|v| !v.is_finite()) {
            return Err(ReportError::NotFinite {
                name: name.clone(),
                value: *bad,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::model::{ConnectionList, Header, Metrics};

    fn report(custom: &[(&str, CustomValue)]) -> Report {
        Report {
            header: Header { report_id: 3 },
            metrics: Metrics {
                listening_tcp_ports: PortList::default(),
                listening_udp_ports: PortList::default(),
                established: ConnectionList::default(),
                network_stats: None,
            },
            custom_metrics: custom
                .iter()
                .map(|(n, v)| (n.to_string(), v.clone()))
                .collect(),
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
}
