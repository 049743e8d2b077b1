//! Delivers encoded reports over MQTT with TLS (client certificate and/or password), reads the
//! backend's verdicts (protocol doc §2–§3), and sends alarm messages at QoS 1
//! (`Publisher::send`). Knows nothing of /proc, of how a report is built or of when an alarm is raised.

mod bridge;
pub mod check;
pub mod client;
mod conn_error;
mod conn_state;
mod dial;
mod frames;
mod inflight;
mod log_limit;
mod session;
mod steps;
pub mod validity;

// Shared with the fleet: TLS, login and backoff from the link crate, topics and verdicts
// from the protocol crate; re-exported under their old paths.
pub use link::{backoff, login, tls};
pub use protocol::{topics, verdict};

pub use backoff::Backoff;
pub use check::{Problem, Severity, check_ca, check_identity, check_password_file};
pub use client::{NotSent, Outcome, PublishError, Publisher};
pub use conn_state::ConnState;
pub use login::{Login, LoginError, Password, read_password};
pub use tls::{ClientCert, MqttSettings, TlsError, client_config};
pub use topics::Topics;
pub use verdict::{Encoding, Status, Verdict, VerdictError};
