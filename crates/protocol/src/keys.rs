//! The long ↔ short key dictionary of protocol doc §1.1, as one table used by both encoders.
//! Does not decide which sections a report has (see `encode.rs`); custom-metric names and
//! their value keys are deliberately absent: they are never abbreviated.

/// A structural key of the report. The discriminant is the row index in `TABLE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    Header,
    ReportId,
    Version,
    Metrics,
    CustomMetrics,
    TcpConnections,
    EstablishedConnections,
    Connections,
    RemoteAddr,
    LocalPort,
    LocalInterface,
    Total,
    ListeningTcpPorts,
    ListeningUdpPorts,
    Ports,
    Port,
    Interface,
    NetworkStats,
    BytesIn,
    BytesOut,
    PacketsIn,
    PacketsOut,
}

/// (key, long, short): protocol doc §1.1 rows 1–22, in order.
pub const TABLE: [(Key, &str, &str); 22] = [
    (Key::Header, "header", "hed"),
    (Key::ReportId, "report_id", "rid"),
    (Key::Version, "version", "v"),
    (Key::Metrics, "metrics", "met"),
    (Key::CustomMetrics, "custom_metrics", "cmet"),
    (Key::TcpConnections, "tcp_connections", "tc"),
    (Key::EstablishedConnections, "established_connections", "ec"),
    (Key::Connections, "connections", "cs"),
    (Key::RemoteAddr, "remote_addr", "rad"),
    (Key::LocalPort, "local_port", "lp"),
    (Key::LocalInterface, "local_interface", "li"),
    (Key::Total, "total", "t"),
    (Key::ListeningTcpPorts, "listening_tcp_ports", "tp"),
    (Key::ListeningUdpPorts, "listening_udp_ports", "up"),
    (Key::Ports, "ports", "pts"),
    (Key::Port, "port", "pt"),
    (Key::Interface, "interface", "if"),
    (Key::NetworkStats, "network_stats", "ns"),
    (Key::BytesIn, "bytes_in", "bi"),
    (Key::BytesOut, "bytes_out", "bo"),
    (Key::PacketsIn, "packets_in", "pi"),
    (Key::PacketsOut, "packets_out", "po"),
];

/// Custom-metric value keys (protocol doc §1.1 second table, §1.5): identical in both spellings.
pub const NUMBER: &str = "number";
pub const NUMBER_LIST: &str = "number_list";
pub const STRING_LIST: &str = "string_list";
pub const IP_LIST: &str = "ip_list";

pub use crate::identity::{is_custom_metric_name, is_registry_name as is_name};

impl Key {
    /// The spelling of this key; one report uses one spelling throughout (protocol doc §7.1 item 5).
    pub fn name(self, short: bool) -> &'static str {
        let (_, long, short_name) = TABLE[self as usize];
        if short { short_name } else { long }
    }

    /// Whether a report may leave this key out (protocol doc §1.2–§1.4); a `null` value of an
    /// optional key reads as absent. `metrics` and `custom_metrics` are each optional, one of
    /// the two must be there; the four `network_stats` counters come together or not at all.
    pub fn optional(self) -> bool {
        !matches!(
            self,
            Key::Header
                | Key::ReportId
                | Key::Version
                | Key::RemoteAddr
                | Key::Port
                | Key::BytesIn
                | Key::BytesOut
                | Key::PacketsIn
                | Key::PacketsOut
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_rows_match_discriminants() {
        for (i, (key, _, _)) in TABLE.iter().enumerate() {
            assert_eq!(*key as usize, i, "{key:?}");
        }
    }

    #[test]
    fn spellings_are_unique_and_disjoint() {
        let mut all: Vec<&str> = TABLE.iter().flat_map(|(_, l, s)| [*l, *s]).collect();
        all.extend([NUMBER, NUMBER_LIST, STRING_LIST, IP_LIST]);
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n);
        assert_eq!(Key::LocalInterface.name(true), "li");
        assert_eq!(Key::LocalInterface.name(false), "local_interface");
    }
}
