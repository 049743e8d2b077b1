//! Owns the one-line description of a failed MQTT connection: rumqttc's error, with the TLS
//! cause and the broker's CONNACK refusal spelled out. Does not decide what happens next.

use rumqttc::{ConnectReturnCode, ConnectionError};

/// rumqttc's messages, with the TLS cause and the broker's CONNACK refusal spelled out.
pub(super) fn describe_error(e: &ConnectionError) -> String {
    match e {
        ConnectionError::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            format!("connection refused: {io}")
        }
        ConnectionError::ConnectionRefused(code) => connack_refused(*code),
        other => other.to_string(),
    }
}

/// One line for a CONNACK refusal (MQTT 3.1.1 §3.2.2.3), saying which setting to look at.
fn connack_refused(code: ConnectReturnCode) -> String {
    let (what, hint) = match code {
        ConnectReturnCode::BadUserNamePassword => (
            "bad user name or password",
            "check [mqtt] username and password_file",
        ),
        ConnectReturnCode::NotAuthorized => (
            "not authorized",
            "check [mqtt] username, password_file and cert_file, and the broker's access rules",
        ),
        ConnectReturnCode::BadClientId => ("client id refused", "check client_id / thing_name"),
        ConnectReturnCode::RefusedProtocolVersion => (
            "protocol version refused",
            "the broker does not speak MQTT 3.1.1",
        ),
        ConnectReturnCode::ServiceUnavailable => ("server unavailable", "the broker is busy"),
        ConnectReturnCode::Success => ("success code on a failed connect", "a broker bug"),
    };
    format!("CONNACK refused: {what} ({hint})")
}
