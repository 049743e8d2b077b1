//! The metric vocabulary: the `aws:` device-side metrics as one table (detect-rules §3.1),
//! custom metric types (§3.2), `MetricRef` and `Datapoint`. Reads no report (`from_report.rs`
//! does), compares nothing (`criteria/`), sums no window (the engine keeps that history).

use std::net::IpAddr;

use super::operators::Operator;
use protocol::NetworkStats;

/// What a metric's datapoint is, which decides its operators and value field (§3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A gauge read from one report: port and connection counts.
    Count,
    /// Bytes or packets since the previous report (§4.4): summed over `durationSeconds`.
    Traffic,
    /// A set of ports.
    PortSet,
    /// A set of addresses.
    CidrSet,
}

/// Where a device-side metric's datapoint comes from in the report model. One variant per
/// `TABLE` row (the discriminant indexes per-report caches).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    TcpPortCount,
    UdpPortCount,
    EstablishedCount,
    TcpPorts,
    UdpPorts,
    DestinationIps,
    BytesIn,
    BytesOut,
    PacketsIn,
    PacketsOut,
}

/// One row of `TABLE`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct MetricSpec {
    pub name: &'static str,
    pub source: Source,
    pub kind: Kind,
    /// ML Detect supports it (§5); device-side ML is not evaluated on the device.
    pub ml: bool,
}

/// detect-rules §3.1, in its order. "No other device-side `aws:` metric exists."
pub const TABLE: [MetricSpec; 10] = [
    row("aws:all-bytes-in", Source::BytesIn, Kind::Traffic, true),
    row("aws:all-bytes-out", Source::BytesOut, Kind::Traffic, true),
    row("aws:all-packets-in", Source::PacketsIn, Kind::Traffic, true),
    row(
        "aws:all-packets-out",
        Source::PacketsOut,
        Kind::Traffic,
        true,
    ),
    row(
        "aws:num-listening-tcp-ports",
        Source::TcpPortCount,
        Kind::Count,
        true,
    ),
    row(
        "aws:num-listening-udp-ports",
        Source::UdpPortCount,
        Kind::Count,
        true,
    ),
    row(
        "aws:num-established-tcp-connections",
        Source::EstablishedCount,
        Kind::Count,
        true,
    ),
    row(
        "aws:listening-tcp-ports",
        Source::TcpPorts,
        Kind::PortSet,
        false,
    ),
    row(
        "aws:listening-udp-ports",
        Source::UdpPorts,
        Kind::PortSet,
        false,
    ),
    row(
        "aws:destination-ip-addresses",
        Source::DestinationIps,
        Kind::CidrSet,
        false,
    ),
];

const fn row(name: &'static str, source: Source, kind: Kind, ml: bool) -> MetricSpec {
    MetricSpec {
        name,
        source,
        kind,
        ml,
    }
}

/// Cloud-side metrics (§3.3): they load, are never evaluated on the device, one warning each;
/// detect-fleet evaluates them over windows of broker counters (§3.4).
/// The bool says whether ML Detect supports it (§5).
pub const CLOUD_SIDE: [(&str, bool); 8] = [
    ("aws:message-byte-size", true),
    ("aws:num-messages-sent", true),
    ("aws:num-messages-received", true),
    ("aws:num-authorization-failures", true),
    ("aws:source-ip-address", false),
    ("aws:num-connection-attempts", true),
    ("aws:num-disconnects", true),
    ("aws:disconnect-duration", false),
];

/// A cloud-side metric (§3.3), in `CLOUD_SIDE`'s order. The broker measures it; the fleet
/// hands the engine a closed window of its counters as an observation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloudMetric {
    MessageByteSize,
    MessagesSent,
    MessagesReceived,
    AuthorizationFailures,
    SourceIp,
    ConnectionAttempts,
    Disconnects,
    DisconnectDuration,
}

impl CloudMetric {
    pub const ALL: [CloudMetric; 8] = [
        CloudMetric::MessageByteSize,
        CloudMetric::MessagesSent,
        CloudMetric::MessagesReceived,
        CloudMetric::AuthorizationFailures,
        CloudMetric::SourceIp,
        CloudMetric::ConnectionAttempts,
        CloudMetric::Disconnects,
        CloudMetric::DisconnectDuration,
    ];

    pub fn name(self) -> &'static str {
        CLOUD_SIDE[self as usize].0
    }

    pub fn from_name(name: &str) -> Option<CloudMetric> {
        CloudMetric::ALL.into_iter().find(|m| m.name() == name)
    }
}

/// A behavior's cloud-side metric as evaluated (detect-rules §3.3 and our §3.4): which one,
/// over which window, narrowed by which `TOPIC_FILTER` dimension.
#[derive(Debug, Clone, PartialEq)]
pub struct CloudRef {
    pub metric: CloudMetric,
    /// The window: `durationSeconds`, 300 when absent (§3.4).
    pub window_secs: u64,
    pub dimension: Option<Dimension>,
    /// `aws:message-byte-size`: a window's datapoint is its largest message (operators that
    /// alarm on large values) or its smallest (the others) (§3.4).
    pub largest: bool,
}

/// `metricDimension`: the dimension's name (defined in the fleet's config) and `NOT_IN`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dimension {
    pub name: String,
    pub not_in: bool,
}

/// The durations AWS documents for `durationSeconds` (§2.3, §4.5).
pub const DURATIONS: [u64; 5] = [300, 600, 900, 1800, 3600];

impl Kind {
    pub fn operators(self) -> &'static [Operator] {
        match self {
            Kind::Count | Kind::Traffic => &Operator::NUMERIC,
            Kind::PortSet => &[Operator::InPortSet, Operator::NotInPortSet],
            Kind::CidrSet => &[Operator::InCidrSet, Operator::NotInCidrSet],
        }
    }

    /// The `value` field a behavior on this kind uses (§2.6).
    pub fn value_field(self) -> &'static str {
        match self {
            Kind::Count | Kind::Traffic => "count",
            Kind::PortSet => "ports",
            Kind::CidrSet => "cidrs",
        }
    }

    /// `durationSeconds` is allowed (one of `DURATIONS`) on numeric metrics only (§4.5).
    pub fn takes_duration(self) -> bool {
        matches!(self, Kind::Count | Kind::Traffic)
    }
}

/// A custom metric's type (§3.2). A profile does not carry it: the loader infers it from the
/// behavior's value field (`number`, `numbers`, `strings`, `cidrs`) and operator (ours).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CustomKind {
    Number,
    NumberList,
    StringList,
    IpAddressList,
}

impl CustomKind {
    pub fn operators(self) -> &'static [Operator] {
        match self {
            CustomKind::Number => &Operator::NUMERIC,
            CustomKind::NumberList | CustomKind::StringList => {
                &[Operator::InSet, Operator::NotInSet]
            }
            CustomKind::IpAddressList => &[Operator::InCidrSet, Operator::NotInCidrSet],
        }
    }

    pub fn value_field(self) -> &'static str {
        match self {
            CustomKind::Number => "number",
            CustomKind::NumberList => "numbers",
            CustomKind::StringList => "strings",
            CustomKind::IpAddressList => "cidrs",
        }
    }

    /// The inverse of `value_field`: the type a value field implies.
    pub fn from_value_field(field: &str) -> Option<CustomKind> {
        [
            CustomKind::Number,
            CustomKind::NumberList,
            CustomKind::StringList,
            CustomKind::IpAddressList,
        ]
        .into_iter()
        .find(|k| k.value_field() == field)
    }

    pub fn name(self) -> &'static str {
        match self {
            CustomKind::Number => "number",
            CustomKind::NumberList => "number-list",
            CustomKind::StringList => "string-list",
            CustomKind::IpAddressList => "ip-address-list",
        }
    }
}

/// The metric a rule evaluates.
#[derive(Debug, Clone, PartialEq)]
pub enum MetricRef {
    Aws(&'static MetricSpec),
    Custom {
        name: String,
        kind: CustomKind,
    },
    /// Measured by the broker; a device report has no datapoint for it.
    Cloud(CloudRef),
}

impl MetricRef {
    pub fn name(&self) -> &str {
        match self {
            MetricRef::Aws(spec) => spec.name,
            MetricRef::Custom { name, .. } => name,
            MetricRef::Cloud(c) => c.metric.name(),
        }
    }
}

/// Looks up a device-side `aws:` metric.
pub fn spec(name: &str) -> Option<&'static MetricSpec> {
    TABLE.iter().find(|s| s.name == name)
}

/// One datapoint. Lists are sorted and de-duplicated (the §6.3 `metricValue` rendering).
#[derive(Debug, Clone, PartialEq)]
pub enum Datapoint {
    Count(u64),
    Number(f64),
    Ports(Vec<u16>),
    Addresses(Vec<IpAddr>),
    Numbers(Vec<f64>),
    Strings(Vec<String>),
}

/// The field of a network_stats delta that a traffic metric reads.
pub fn traffic(source: Source, stats: &NetworkStats) -> Option<u64> {
    match source {
        Source::BytesIn => Some(stats.bytes_in),
        Source::BytesOut => Some(stats.bytes_out),
        Source::PacketsIn => Some(stats.packets_in),
        Source::PacketsOut => Some(stats.packets_out),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn table_names_are_unique_aws_names_and_cover_every_source() {
        let names: BTreeSet<&str> = TABLE.iter().map(|s| s.name).collect();
        assert_eq!(names.len(), TABLE.len());
        assert!(TABLE.iter().all(|s| s.name.starts_with("aws:")));
        for (cloud, _) in CLOUD_SIDE {
            assert!(!names.contains(cloud), "{cloud} is cloud-side");
        }
        let mut sources: Vec<usize> = TABLE.iter().map(|s| s.source as usize).collect();
        sources.sort_unstable();
        let indexes: Vec<usize> = (0..TABLE.len()).collect();
        assert_eq!(
            sources, indexes,
            "each source once, discriminants index TABLE-sized caches"
        );
    }

    #[test]
    fn ml_only_on_numeric_metrics_and_operators_match_value_fields() {
        for s in &TABLE {
            assert_eq!(s.ml, s.kind.takes_duration(), "{}", s.name);
            for op in s.kind.operators() {
                assert_eq!(
                    op.is_numeric(),
                    s.kind.value_field() == "count",
                    "{}",
                    s.name
                );
            }
        }
        let ml_device = TABLE.iter().filter(|s| s.ml).count();
        assert_eq!(ml_device, 7, "§5: seven device-side ML metrics");
        let ml_cloud = CLOUD_SIDE.iter().filter(|(_, ml)| *ml).count();
        assert_eq!(ml_cloud, 6, "§5: six cloud-side ML metrics");
    }

    #[test]
    fn cloud_metrics_follow_the_cloud_side_table() {
        for (i, m) in CloudMetric::ALL.into_iter().enumerate() {
            assert_eq!(m as usize, i);
            assert_eq!(CloudMetric::from_name(m.name()), Some(m));
        }
        assert_eq!(CloudMetric::from_name("aws:all-bytes-in"), None);
    }

    #[test]
    fn custom_kinds_round_trip_their_value_fields() {
        for f in ["number", "numbers", "strings", "cidrs"] {
            assert_eq!(CustomKind::from_value_field(f).unwrap().value_field(), f);
        }
        assert_eq!(CustomKind::from_value_field("count"), None);
        assert_eq!(CustomKind::from_value_field("ports"), None);
    }
}
