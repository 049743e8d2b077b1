//! Turns a Sample into an AWS IoT Device Defender metrics report (protocol doc §1–§4): build
//! and deltas here; model, keys, limits, encoders and decoder from the protocol crate.

pub mod build;
pub mod delta;
pub mod encode;

pub use protocol::{decode, format, keys, limits, model};

pub use build::{build, build_with_custom};
pub use decode::{DecodeError, decode_value};
pub use delta::{Baseline, NetworkStats, Rebase};
pub use encode::{Encoded, ReportError, encode};
pub use format::{Format, UnknownFormat};
pub use limits::{Cut, ListCut};
pub use model::{
    Connection, ConnectionList, CustomValue, Header, Metrics, Missing, Port, PortList, Report,
};

/// The report cap (`protocol::MAX_REPORT_BYTES`) under its old name.
pub use protocol::MAX_REPORT_BYTES as MAX_PAYLOAD_BYTES;
