//! Delivers encoded reports over MQTT with mutual TLS and reads the backend's verdicts
//! (protocol doc §2–§3), and sends alarm messages at QoS 1 (`Publisher::send`). Knows
//! nothing of /proc, of how a report is built or of when an alarm is raised.

pub mod backoff;
pub mod check;
pub mod client;
mod session;
pub mod tls;
pub mod topics;
pub mod validity;
pub mod verdict;

pub use backoff::Backoff;
pub use check::{Problem, Severity, check_identity};
pub use client::{MAX_PAYLOAD, NotSent, Outcome, PublishError, Publisher};
pub use session::ConnState;
pub use tls::{MqttSettings, TlsError, client_config};
pub use topics::Topics;
pub use verdict::{Encoding, Status, Verdict, VerdictError};
