//! The report as plain data (protocol doc §1): header, the three socket lists, network stats
//! and custom metrics. Does not know key spellings, encodings or size limits.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use std::fmt;

/// Report format version; every reference agent sends "1.0" (protocol doc §1.3).
pub const VERSION: &str = "1.0";

#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub header: Header,
    pub metrics: Metrics,
    /// Custom metrics by registered name (protocol doc §1.5); the section is omitted when empty.
    pub custom_metrics: BTreeMap<String, CustomValue>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// 1..=`MAX_DECODED_REPORT_ID`, increasing; chosen by the caller (protocol doc §1.3, §10).
    pub report_id: u64,
}

/// The largest `report_id` a decoded report may carry: the largest a signed 64-bit store
/// column (SQLite INTEGER) holds exactly; above it the decoder refuses the report (§1.3).
pub const MAX_DECODED_REPORT_ID: u64 = i64::MAX as u64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metrics {
    pub listening_tcp_ports: PortList,
    pub listening_udp_ports: PortList,
    pub established: ConnectionList,
    /// Deltas since the previous report; `None` when no honest delta exists (protocol doc §1.4).
    pub network_stats: Option<NetworkStats>,
    /// Sections a decoded report left out (all are optional, protocol doc §1.4). Reports the
    /// agent builds leave out none; detect gives no datapoint for a missing section
    /// (detect-rules §4.6) and the encoder omits it.
    pub missing: Missing,
}

/// Which list sections are absent (as opposed to present and empty: an empty list is a
/// conforming datapoint, an absent section is none).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Missing {
    pub listening_tcp_ports: bool,
    pub listening_udp_ports: bool,
    /// `tcp_connections` or its `established_connections` is absent.
    pub tcp_connections: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortList {
    /// Sorted by (port, interface), no duplicate pairs.
    pub ports: Vec<Port>,
    /// True number of entries before any size cut.
    pub total: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Port {
    /// 1–65535 (protocol doc §4).
    pub port: u16,
    /// Interface owning the bind address; `None` for wildcard binds (protocol doc §10).
    pub interface: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectionList {
    /// Sorted by (remote address, local port, local interface).
    pub connections: Vec<Connection>,
    /// True number of established connections before any size cut.
    pub total: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Connection {
    /// Remote endpoint; IPv4-mapped IPv6 already unwrapped to IPv4, scope id dropped.
    pub remote: SocketAddr,
    pub local_port: u16,
    pub local_interface: Option<String>,
}

impl Connection {
    /// `a.b.c.d:port` or `[v6]:port` (protocol doc §1.4, §7.1 item 8).
    pub fn remote_addr(&self) -> String {
        match unmap_ip(self.remote.ip()) {
            IpAddr::V4(ip) => format!("{ip}:{}", self.remote.port()),
            IpAddr::V6(ip) => format!("[{ip}]:{}", self.remote.port()),
        }
    }
}

/// The registered metric type (CreateCustomMetric `metricType`, protocol doc §1.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricType {
    Number,
    NumberList,
    StringList,
    IpAddressList,
}

impl MetricType {
    pub const ALL: [MetricType; 4] = [
        MetricType::Number,
        MetricType::NumberList,
        MetricType::StringList,
        MetricType::IpAddressList,
    ];

    /// The config spelling, the same as AWS's `metricType`.
    pub fn name(self) -> &'static str {
        match self {
            MetricType::Number => "number",
            MetricType::NumberList => "number-list",
            MetricType::StringList => "string-list",
            MetricType::IpAddressList => "ip-address-list",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }
}

impl fmt::Display for MetricType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One custom metric value; the report encodes it as a one-element array of one object.
#[derive(Debug, Clone, PartialEq)]
pub enum CustomValue {
    Number(f64),
    NumberList(Vec<f64>),
    StringList(Vec<String>),
    IpList(Vec<IpAddr>),
}

impl CustomValue {
    pub fn metric_type(&self) -> MetricType {
        match self {
            CustomValue::Number(_) => MetricType::Number,
            CustomValue::NumberList(_) => MetricType::NumberList,
            CustomValue::StringList(_) => MetricType::StringList,
            CustomValue::IpList(_) => MetricType::IpAddressList,
        }
    }
}

/// Bytes and packets since the previous report, summed over interfaces; never negative.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NetworkStats {
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub packets_in: u64,
    pub packets_out: u64,
}

/// Unwraps an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) to plain IPv4: the one rule, used
/// by the agent's collectors, the report and the detect engine.
pub fn unmap_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_addr_brackets_v6_and_unwraps_mapped() {
        let c = |s: &str| Connection {
            remote: s.parse().unwrap(),
            local_port: 1,
            local_interface: None,
        };
        assert_eq!(c("203.0.113.7:443").remote_addr(), "203.0.113.7:443");
        assert_eq!(c("[2001:db8::5]:8883").remote_addr(), "[2001:db8::5]:8883");
        assert_eq!(c("[::ffff:10.0.0.1]:80").remote_addr(), "10.0.0.1:80");
        assert_eq!(c("[fe80::1%3]:22").remote_addr(), "[fe80::1]:22");
    }
}
