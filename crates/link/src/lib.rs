//! What both programs need to reach a broker: TLS client config (rustls on ring), password
//! login, reconnect backoff with jitter, and kernel randomness. No MQTT session logic.

pub mod backoff;
pub mod login;
pub mod random;
pub mod tls;

pub use backoff::Backoff;
pub use login::{Login, LoginError, Password, read_password};
pub use tls::{ClientCert, MqttSettings, TlsError, client_config};
