//! The wire protocol (protocol doc §1–§4, §7) as both programs speak it: report model, keys,
//! encodings, limits, topics, verdicts, thing names and the broker-event schema. No I/O.

pub mod broker;
pub mod civil;
mod custom_cut;
pub mod decode;
pub mod encode;
pub mod format;
pub mod identity;
pub mod keys;
pub mod limits;
mod measure;
pub mod model;
pub mod topics;
pub mod verdict;

pub use decode::{DecodeError, Decoded, decode, decode_value};
pub use encode::{Encoded, ReportError, encode};
pub use format::{Encoding, Format, UnknownFormat};
pub use limits::{Cut, ListCut, MAX_PUBLISH_BYTES, MAX_REPORT_BYTES};
pub use model::{
    Connection, ConnectionList, CustomValue, Header, MAX_DECODED_REPORT_ID, MetricType, Metrics,
    Missing, NetworkStats, Port, PortList, Report, unmap_ip,
};
pub use topics::{ReportTopic, Topics};
