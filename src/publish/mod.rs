//! Delivers encoded reports over MQTT with TLS (client certificate and/or password), reads the
//! backend's verdicts (protocol doc §2–§3), and sends alarm messages at QoS 1
//! (`Publisher::send`). Knows nothing of /proc, of how a report is built or of when an alarm is raised.

pub mod backoff;
mod bridge;
pub mod check;
pub mod client;
mod conn_error;
mod conn_state;
mod dial;
mod frames;
mod inflight;
mod log_limit;
pub mod login;
mod session;
mod steps;
pub mod tls;
pub mod topics;
pub mod validity;
pub mod verdict;

pub use backoff::Backoff;
pub use check::{Problem, Severity, check_ca, check_identity, check_password_file};
pub use client::{MAX_PAYLOAD, NotSent, Outcome, PublishError, Publisher};
pub use conn_state::ConnState;
pub use login::{Login, LoginError, Password, read_password};
pub use tls::{ClientCert, MqttSettings, TlsError, client_config};
pub use topics::Topics;
pub use verdict::{Encoding, Status, Verdict, VerdictError};
