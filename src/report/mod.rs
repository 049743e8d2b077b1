//! Turns a Sample into an AWS IoT Device Defender metrics report (protocol doc §1–§4):
//! model, key names, limits, deltas, the JSON/CBOR encoders and the decoder that reads them
//! back (for `evaluate` and the fleet side). No I/O here.

pub mod build;
mod custom_cut;
pub mod decode;
pub mod delta;
pub mod encode;
pub mod format;
pub mod keys;
pub mod limits;
mod measure;
pub mod model;

pub use build::{build, build_with_custom};
pub use decode::{DecodeError, decode, decode_value};
pub use delta::{Baseline, NetworkStats, Rebase};
pub use encode::{Encoded, ReportError, encode};
pub use format::{Format, UnknownFormat};
pub use limits::{Cut, ListCut, MAX_PAYLOAD_BYTES};
pub use model::{
    Connection, ConnectionList, CustomValue, Header, Metrics, Missing, Port, PortList, Report,
};
