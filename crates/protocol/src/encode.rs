//! Encodes a report model as JSON or CBOR with long or short keys (protocol doc §1.1, §2.1):
//! one key-value tree, two serializers, omitted optional keys, size limit applied. Does not
//! decide what the report contains (the agent's `src/report/build.rs`) nor where it is sent.

use std::borrow::Cow;

use serde::ser::{SerializeMap, SerializeSeq};

use super::format::Format;
use super::keys::{IP_LIST, Key, NUMBER, NUMBER_LIST, STRING_LIST, is_custom_metric_name};
use super::limits::{Cut, MAX_REPORT_BYTES, Selection};
use super::measure::measure;
use super::model::{Connection, CustomValue, Port, PortList, Report, VERSION};

/// Encoded report bytes, and what had to be dropped to fit `MAX_REPORT_BYTES`.
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
        "custom metric name {name:?} is invalid: 1–128 characters of [a-zA-Z0-9:_-], not starting with \"aws:\""
    )]
    MetricName { name: String },
    #[error("custom metric {name:?} holds a number that is not finite ({value})")]
    NotFinite { name: String, value: f64 },
}

/// Encodes `report` in `format`, cutting lists by the policy in `limits.rs` when the whole
/// report would not stay under `MAX_REPORT_BYTES`; `Encoded::cut` says what went (the agent
/// logs it).
///
/// Every list entry is measured once by running the same serializer into a byte counter, so a
/// huge table is never serialized whole: the full report is encoded only when the sum of its
/// parts says it may fit (separators and CBOR length headers only add bytes).
pub fn encode(report: &Report, format: Format) -> Result<Encoded, ReportError> {
    check_custom(report)?;
    let m = &report.metrics;
    let (tcp, udp, conns) = (
        m.listening_tcp_ports.ports.len(),
        m.listening_udp_ports.ports.len(),
        m.established.connections.len(),
    );
    let measured = measure(report, format)?;
    if measured.lower_bound() < MAX_REPORT_BYTES {
        let whole = to_bytes(
            report,
            format,
            &tree(report, format, &Selection::all(tcp, udp, conns)),
        )?;
        if whole.len() < MAX_REPORT_BYTES {
            return Ok(Encoded {
                bytes: whole,
                cut: None,
            });
        }
    }
    let sel = measured.plan(report);
    let bytes = to_bytes(report, format, &tree(report, format, &sel))?;
    if bytes.len() >= MAX_REPORT_BYTES {
        return Err(ReportError::TooLarge {
            report_id: report.header.report_id,
            format,
            size: bytes.len(),
            limit: MAX_REPORT_BYTES,
        });
    }
    let cut = sel.cut(tcp, udp, conns, measured.custom_cut(&sel));
    Ok(Encoded { bytes, cut })
}

/// A key-value tree: maps keep insertion order and definite lengths in both encodings. List
/// entries borrow the model and serialize directly (`PortEntry`, `ConnectionEntry`).
pub(super) enum Node<'a> {
    Map(Vec<(Cow<'static, str>, Node<'a>)>),
    Array(Vec<Node<'a>>),
    UInt(u64),
    Float(f64),
    Text(String),
    Ports(&'a [Port], &'a [usize], bool),
    Connections(&'a [Connection], &'a [usize], bool),
}

impl serde::Serialize for Node<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Node::UInt(v) => s.serialize_u64(*v),
            Node::Float(v) => s.serialize_f64(*v),
            Node::Text(t) => s.serialize_str(t),
            Node::Array(items) => seq(s, items.len(), items.iter()),
            Node::Ports(all, kept, short) => {
                // Indices come from `Selection` and are always in range; checked anyway.
                let kept = || kept.iter().filter_map(|i| all.get(*i));
                seq(s, kept().count(), kept().map(|p| PortEntry(p, *short)))
            }
            Node::Connections(all, kept, short) => {
                // Indices come from `Selection` and are always in range; checked anyway.
                let kept = || kept.iter().filter_map(|i| all.get(*i));
                let entries = kept().map(|c| ConnectionEntry(c, *short));
                seq(s, kept().count(), entries)
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

/// A definite-length array (CBOR: never the indefinite form that `collect_seq` may choose).
fn seq<S: serde::Serializer, T: serde::Serialize>(
    s: S,
    len: usize,
    items: impl Iterator<Item = T>,
) -> Result<S::Ok, S::Error> {
    let mut out = s.serialize_seq(Some(len))?;
    for item in items {
        out.serialize_element(&item)?;
    }
    out.end()
}

/// One listening port: `{port, interface?}`.
pub(super) struct PortEntry<'a>(pub(super) &'a Port, pub(super) bool);

impl serde::Serialize for PortEntry<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (p, short) = (self.0, self.1);
        let mut map = s.serialize_map(Some(1 + usize::from(p.interface.is_some())))?;
        map.serialize_entry(Key::Port.name(short), &u64::from(p.port))?;
        if let Some(name) = &p.interface {
            map.serialize_entry(Key::Interface.name(short), name.as_str())?;
        }
        map.end()
    }
}

/// One established connection: `{remote_addr, local_port, local_interface?}`.
pub(super) struct ConnectionEntry<'a>(pub(super) &'a Connection, pub(super) bool);

impl serde::Serialize for ConnectionEntry<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (c, short) = (self.0, self.1);
        let mut map = s.serialize_map(Some(2 + usize::from(c.local_interface.is_some())))?;
        map.serialize_entry(Key::RemoteAddr.name(short), c.remote_addr().as_str())?;
        map.serialize_entry(Key::LocalPort.name(short), &u64::from(c.local_port))?;
        if let Some(name) = &c.local_interface {
            map.serialize_entry(Key::LocalInterface.name(short), name.as_str())?;
        }
        map.end()
    }
}

/// An `io::Write` that only counts bytes: sizes without buffers.
#[derive(Default)]
struct Counter(usize);

impl std::io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn encode_err(report: &Report, format: Format) -> impl Fn(String) -> ReportError {
    move |detail| ReportError::Encode {
        report_id: report.header.report_id,
        format,
        detail,
    }
}

pub(super) fn size_of<T: serde::Serialize>(
    report: &Report,
    format: Format,
    value: &T,
) -> Result<usize, ReportError> {
    let err = encode_err(report, format);
    let mut counter = Counter::default();
    if format.is_cbor() {
        ciborium::into_writer(value, &mut counter).map_err(|e| err(e.to_string()))?;
    } else {
        serde_json::to_writer(&mut counter, value).map_err(|e| err(e.to_string()))?;
    }
    Ok(counter.0)
}

pub(super) fn to_bytes<T: serde::Serialize>(
    report: &Report,
    format: Format,
    value: &T,
) -> Result<Vec<u8>, ReportError> {
    let err = encode_err(report, format);
    if format.is_cbor() {
        let mut out = Vec::new();
        ciborium::into_writer(value, &mut out).map_err(|e| err(e.to_string()))?;
        Ok(out)
    } else {
        serde_json::to_vec(value).map_err(|e| err(e.to_string()))
    }
}

fn entry(key: Key, short: bool, value: Node<'_>) -> (Cow<'static, str>, Node<'_>) {
    (Cow::Borrowed(key.name(short)), value)
}

/// The whole report with the selected list entries. Optional keys are left out, never null
/// (protocol doc §7.1 item 7); header and the three lists are present unless `missing` says
/// a decoded report lacked them.
pub(super) fn tree<'a>(report: &'a Report, format: Format, sel: &'a Selection) -> Node<'a> {
    let short = format.short_keys();
    let m = &report.metrics;
    let header = Node::Map(vec![
        entry(Key::ReportId, short, Node::UInt(report.header.report_id)),
        entry(Key::Version, short, Node::Text(VERSION.to_string())),
    ]);
    let ports = |list: &'a PortList, kept: &'a [usize]| {
        Node::Map(vec![
            entry(Key::Ports, short, Node::Ports(&list.ports, kept, short)),
            entry(Key::Total, short, Node::UInt(list.total)),
        ])
    };
    let mut metrics = Vec::new();
    if !m.missing.listening_tcp_ports {
        let node = ports(&m.listening_tcp_ports, &sel.tcp);
        metrics.push(entry(Key::ListeningTcpPorts, short, node));
    }
    if !m.missing.listening_udp_ports {
        let node = ports(&m.listening_udp_ports, &sel.udp);
        metrics.push(entry(Key::ListeningUdpPorts, short, node));
    }
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
    let conns = Node::Connections(&m.established.connections, &sel.connections, short);
    if !m.missing.tcp_connections {
        metrics.push(entry(
            Key::TcpConnections,
            short,
            Node::Map(vec![entry(
                Key::EstablishedConnections,
                short,
                Node::Map(vec![
                    entry(Key::Connections, short, conns),
                    entry(Key::Total, short, Node::UInt(m.established.total)),
                ]),
            )]),
        ));
    }
    let mut root = vec![
        entry(Key::Header, short, header),
        entry(Key::Metrics, short, Node::Map(metrics)),
    ];
    if !report.custom_metrics.is_empty() {
        root.push(entry(Key::CustomMetrics, short, custom_node(report, sel)));
    }
    Node::Map(root)
}

/// `{name: [ {value_key: value} ]}`: always a one-element array (protocol doc §1.5,
/// §7.1 item 1); names and value keys are never abbreviated (§1.1). Lists keep the prefix
/// that `sel` chose (`custom_cut.rs`).
fn custom_node(report: &Report, sel: &Selection) -> Node<'static> {
    let metrics = report
        .custom_metrics
        .iter()
        .enumerate()
        .map(|(i, (name, value))| {
            let n = sel.custom_kept(i);
            let (key, node) = match value {
                CustomValue::Number(v) => (NUMBER, Node::Float(*v)),
                CustomValue::NumberList(vs) => (
                    NUMBER_LIST,
                    Node::Array(vs.iter().take(n).map(|v| Node::Float(*v)).collect()),
                ),
                CustomValue::StringList(vs) => (
                    STRING_LIST,
                    Node::Array(vs.iter().take(n).map(|v| Node::Text(v.clone())).collect()),
                ),
                CustomValue::IpList(ips) => (
                    IP_LIST,
                    Node::Array(
                        ips.iter()
                            .take(n)
                            .map(|ip| Node::Text(ip.to_string()))
                            .collect(),
                    ),
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
        if !is_custom_metric_name(name) {
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
#[path = "encode_tests.rs"]
mod tests;
