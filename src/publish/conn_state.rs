//! Owns the connection state the session publishes (for `publish` waits, logs and systemd
//! `STATUS=`) and its one-line description. Does not change it; `session` does.

use std::time::Duration;

/// What the connection is doing, for logs and systemd `STATUS=`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnState {
    Connecting {
        attempt: u32,
    },
    /// Connected, waiting for the SUBACK of the verdict topics.
    Subscribing,
    /// Publishing allowed. `verdicts` is false when the broker refused the subscription.
    Ready {
        verdicts: bool,
    },
    Backoff {
        attempt: u32,
        error: String,
        retry_in: Duration,
    },
    Closed,
}

impl ConnState {
    /// One line for systemd `STATUS=`.
    pub fn describe(&self) -> String {
        match self {
            ConnState::Connecting { attempt } => format!("connecting (attempt {attempt})"),
            ConnState::Subscribing => "connected, subscribing to verdicts".to_string(),
            ConnState::Ready { verdicts: true } => "connected".to_string(),
            ConnState::Ready { verdicts: false } => {
                "connected, verdict subscription refused".to_string()
            }
            ConnState::Backoff {
                attempt,
                error,
                retry_in,
            } => format!(
                "disconnected after attempt {attempt}: {error}; retry in {}s",
                retry_in.as_secs()
            ),
            ConnState::Closed => "closed".to_string(),
        }
    }
}
