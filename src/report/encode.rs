//! Encodes a report with the protocol crate's encoder and logs any size cut once, with
//! kept/total per list. Does not choose what is cut (`protocol::limits`).

use protocol::Format;
pub use protocol::encode::{Encoded, ReportError};

use super::model::Report;

/// `protocol::encode`, logging the cut when the report had to lose list entries to stay
/// under `MAX_REPORT_BYTES`.
pub fn encode(report: &Report, format: Format) -> Result<Encoded, ReportError> {
    let encoded = protocol::encode(report, format)?;
    if let Some(c) = &encoded.cut {
        tracing::warn!(
            report_id = report.header.report_id,
            format = %format,
            tcp_ports_kept = c.tcp_ports.kept,
            tcp_ports_total = c.tcp_ports.total,
            udp_ports_kept = c.udp_ports.kept,
            udp_ports_total = c.udp_ports.total,
            connections_kept = c.connections.kept,
            connections_total = c.connections.total,
            custom_items_kept = c.custom_items.kept,
            custom_items_total = c.custom_items.total,
            size = encoded.bytes.len(),
            "report lists cut to stay under the payload limit"
        );
    }
    Ok(encoded)
}
