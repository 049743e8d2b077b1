//! Owns the size of a report before it is encoded: every list entry measured with the
//! serializer that writes it, each distinct shape once, so a cut can be planned without re-encoding.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use super::custom_cut;
use super::encode::{ConnectionEntry, PortEntry, ReportError, size_of, to_bytes, tree};
use super::format::Format;
use super::limits::{self, Facts, MAX_REPORT_BYTES, PortFacts, Selection, Sizes};
use super::model::{Connection, CustomValue, Port, PortList, Report};

/// The loopback interface: a port whose bind address it owns is reachable from this host
/// only, and any local user can open thousands of them (cut order in `limits.rs`).
const LOOPBACK_INTERFACE: &str = "lo";

/// Growth of one list's length header when entries are added (CBOR: at most 4 bytes).
const SLACK_PER_LIST: usize = 4;

/// Encoded sizes of the report with empty lists and of every list entry on its own.
pub(super) struct Measured {
    base: usize,
    /// Per entry, plus one byte in JSON for its comma (so each list is over by one).
    sep: usize,
    tcp: Vec<usize>,
    udp: Vec<usize>,
    connections: Vec<usize>,
    /// Item sizes per custom metric, in name order (empty for `number`).
    custom: Vec<Vec<usize>>,
}

impl Measured {
    /// Never more than the whole report's size: entries without separators or list headers.
    pub(super) fn lower_bound(&self) -> usize {
        let lists = [&self.tcp, &self.udp, &self.connections]
            .into_iter()
            .chain(&self.custom);
        let (entries, sum) = lists.fold((0, 0), |(n, s), l| {
            (n + l.len(), s + l.iter().sum::<usize>())
        });
        self.base + sum - entries * self.sep
    }

    /// Step 1 (`custom_cut`) then step 2 (`limits::plan`) of the cut order in `limits.rs`
    /// (bounded, no re-encode loop).
    pub(super) fn plan(&self, report: &Report) -> Selection {
        let custom_slack = SLACK_PER_LIST * self.custom.len();
        let room =
            (MAX_REPORT_BYTES - 1).saturating_sub(self.base + 3 * SLACK_PER_LIST + custom_slack);
        let sockets: usize = [&self.tcp, &self.udp, &self.connections]
            .iter()
            .map(|l| l.iter().sum::<usize>())
            .sum();
        let (custom_kept, custom_bytes) =
            custom_cut::plan(&self.custom, custom_cut::budget(room, sockets));
        let mut sel = self.plan_sockets(report, self.base + custom_bytes + custom_slack);
        sel.custom = Some(custom_kept);
        sel
    }

    /// Items of all custom lists: kept by `sel`, and in all.
    pub(super) fn custom_cut(&self, sel: &Selection) -> limits::ListCut {
        let lens = self.custom.iter().map(Vec::len);
        limits::ListCut {
            kept: lens
                .clone()
                .enumerate()
                .map(|(i, n)| n.min(sel.custom_kept(i)))
                .sum(),
            total: lens.sum(),
        }
    }

    fn plan_sockets(&self, report: &Report, base: usize) -> Selection {
        let m = &report.metrics;
        let ips: Vec<IpAddr> = m
            .established
            .connections
            .iter()
            .map(|c| c.remote.ip())
            .collect();
        let facts = |list: &PortList| -> Vec<PortFacts> {
            list.ports
                .iter()
                .map(|p| PortFacts {
                    port: p.port,
                    loopback: p.interface.as_deref() == Some(LOOPBACK_INTERFACE),
                })
                .collect()
        };
        let (tcp, udp) = (facts(&m.listening_tcp_ports), facts(&m.listening_udp_ports));
        let facts = Facts {
            tcp: &tcp,
            udp: &udp,
            remote_ips: &ips,
        };
        let sizes = Sizes {
            base,
            slack_per_list: SLACK_PER_LIST,
            tcp: &self.tcp,
            udp: &self.udp,
            connections: &self.connections,
        };
        limits::plan(&sizes, &facts)
    }
}

/// Measures the entries with the serializer that writes them, into a byte counter. An entry's
/// size depends only on its `SizeKey`, so each distinct key is serialized once: a table of
/// 20 000 connections needs a few hundred small serializations, not 20 000.
pub(super) fn measure<'a>(report: &'a Report, format: Format) -> Result<Measured, ReportError> {
    let short = format.short_keys();
    let m = &report.metrics;
    let mut sizes = SizeCache {
        known: HashMap::new(),
        last: None,
        sep: usize::from(!format.is_cbor()),
    };
    let mut ports = |list: &'a PortList| -> Result<Vec<usize>, ReportError> {
        list.ports
            .iter()
            .map(|p| {
                sizes.get(SizeKey::port(p), || {
                    size_of(report, format, &PortEntry(p, short))
                })
            })
            .collect()
    };
    let tcp = ports(&m.listening_tcp_ports)?;
    let udp = ports(&m.listening_udp_ports)?;
    let connections = m
        .established
        .connections
        .iter()
        .map(|c| {
            sizes.get(SizeKey::connection(c), || {
                size_of(report, format, &ConnectionEntry(c, short))
            })
        })
        .collect::<Result<Vec<usize>, _>>()?;
    let custom = report
        .custom_metrics
        .values()
        .map(|value| custom_items(report, format, value, sizes.sep))
        .collect::<Result<Vec<_>, _>>()?;
    let base = to_bytes(report, format, &tree(report, format, &Selection::base()))?.len();
    Ok(Measured {
        base,
        sep: sizes.sep,
        tcp,
        udp,
        connections,
        custom,
    })
}

/// Each item of a custom list on its own, with its separator; nothing for a `number`.
fn custom_items(
    report: &Report,
    format: Format,
    value: &CustomValue,
    sep: usize,
) -> Result<Vec<usize>, ReportError> {
    fn sizes<T: serde::Serialize>(
        report: &Report,
        format: Format,
        sep: usize,
        items: impl Iterator<Item = T>,
    ) -> Result<Vec<usize>, ReportError> {
        items
            .map(|item| Ok(size_of(report, format, &item)? + sep))
            .collect()
    }
    match value {
        CustomValue::Number(_) => Ok(Vec::new()),
        CustomValue::NumberList(vs) => sizes(report, format, sep, vs.iter()),
        CustomValue::StringList(vs) => sizes(report, format, sep, vs.iter()),
        CustomValue::IpList(ips) => sizes(report, format, sep, ips.iter().map(|ip| ip.to_string())),
    }
}

/// Entry sizes (with the JSON separator) by `SizeKey`, each serialized once. Neighbours in a
/// sorted list often share a key: the last one is checked before hashing.
struct SizeCache<'a> {
    known: HashMap<SizeKey<'a>, usize>,
    last: Option<(SizeKey<'a>, usize)>,
    sep: usize,
}

impl<'a> SizeCache<'a> {
    fn get(
        &mut self,
        key: SizeKey<'a>,
        measure: impl FnOnce() -> Result<usize, ReportError>,
    ) -> Result<usize, ReportError> {
        if let Some((last, n)) = &self.last
            && *last == key
        {
            return Ok(*n);
        }
        let n = match self.known.get(&key) {
            Some(n) => *n,
            None => {
                let n = measure()? + self.sep;
                self.known.insert(key, n);
                n
            }
        };
        self.last = Some((key, n));
        Ok(n)
    }
}

/// Everything an entry's encoded size depends on, in both encodings: which list, the remote
/// address text's length (digits, dots, colons, brackets and hex letters are never escaped
/// in JSON; CBOR only writes the length), the number's width class and the interface name
/// (whose JSON escaping is left to the serializer).
#[derive(Clone, Copy, Hash, PartialEq, Eq)]
struct SizeKey<'a> {
    remote_len: Option<usize>,
    number: u8,
    interface: Option<&'a str>,
}

impl<'a> SizeKey<'a> {
    fn port(p: &'a Port) -> Self {
        Self {
            remote_len: None,
            number: width_class(p.port),
            interface: p.interface.as_deref(),
        }
    }

    fn connection(c: &'a Connection) -> Self {
        let remote_len = match c.remote {
            // `Connection::remote_addr` writes "a.b.c.d:port" for these.
            SocketAddr::V4(a) => {
                let octets: usize = a.ip().octets().into_iter().map(|o| digits(o.into())).sum();
                octets + 3 + 1 + digits(a.port())
            }
            SocketAddr::V6(_) => c.remote_addr().len(),
        };
        Self {
            remote_len: Some(remote_len),
            number: width_class(c.local_port),
            interface: c.local_interface.as_deref(),
        }
    }
}

fn digits(v: u16) -> usize {
    1 + [10, 100, 1000, 10_000].iter().filter(|b| v >= **b).count()
}

/// Numbers of one class have the same JSON digit count and CBOR head size (heads grow at 24
/// and 256, RFC 8949 §3).
fn width_class(v: u16) -> u8 {
    [10, 24, 100, 256, 1000, 10_000]
        .iter()
        .filter(|b| v >= **b)
        .count() as u8
}
