//! The broker's witness on the wire: batches of per-client events a broker integration hands
//! detect-fleet, their topic and bounded encode/decode. Windows and judging are the fleet's.

use serde::{Deserialize, Serialize};

/// Where the mosquitto plugin publishes its batches. Topics starting with `$` are not matched
/// by a `#` subscription (MQTT 3.1.1 §4.7.2), and the shipped ACL lets only the fleet read it.
pub const BROKER_EVENTS_TOPIC: &str = "$detect/broker/events";

/// The one schema version this code writes and reads (`Batch::v`).
pub const BATCH_VERSION: u32 = 1;

/// A batch larger than this is refused unread; writers flush before they reach it.
pub const MAX_BATCH_BYTES: usize = 256 * 1024;

/// One flush of a broker integration. `seq` counts batches of one `instance` (a fresh random
/// id each time the plugin loads) from 0 without gaps, so the reader can say exactly how many
/// batches it missed; `dropped` counts events the writer lost to its own bounds since the
/// previous batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    pub v: u32,
    /// `mosquitto` or `nats`.
    pub source: String,
    pub instance: String,
    pub seq: u64,
    /// The writer's clock (epoch ms) when the batch was sent.
    pub sent_ms: u64,
    #[serde(default)]
    pub dropped: u64,
    pub events: Vec<Event>,
}

/// Which way a message went, seen from the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// The device published it and the broker accepted it (`aws:num-messages-sent`,
    /// `aws:message-byte-size`).
    Sent,
    /// The broker delivered it to the device (`aws:num-messages-received`).
    Received,
}

/// What the broker refused a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    Connect,
    Publish,
    Subscribe,
    Receive,
}

/// One thing the broker saw. Client ids are the MQTT client ids (the thing names of registered
/// things); addresses are IPs without port. Passwords never appear here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A CONNECT the broker accepted (`ok`) or refused (`aws:num-connection-attempts` counts
    /// both; a refusal is also an authorization failure).
    Connect {
        at_ms: u64,
        client_id: String,
        ip: String,
        ok: bool,
    },
    /// A network connection that closed before any CONNECT (TLS failure, bare TCP): no client
    /// id, so no thing; kept for the fleet's own counters.
    ClosedBeforeConnect { at_ms: u64, ip: String },
    /// A connected client went away (`aws:num-disconnects`); `connected_ms` is how long it was
    /// connected when the broker knows it.
    Disconnect {
        at_ms: u64,
        client_id: String,
        ip: String,
        #[serde(default)]
        connected_ms: Option<u64>,
    },
    /// Messages of one client on one topic in one direction over `[from_ms, to_ms)`: counts,
    /// payload bytes and the smallest and largest payload.
    Traffic {
        from_ms: u64,
        to_ms: u64,
        client_id: String,
        topic: String,
        dir: Direction,
        msgs: u64,
        bytes: u64,
        min_bytes: u64,
        max_bytes: u64,
    },
    /// A request the broker refused (`aws:num-authorization-failures`); `topic` is absent for
    /// a refused connect.
    Denied {
        at_ms: u64,
        client_id: String,
        access: Access,
        #[serde(default)]
        topic: Option<String>,
    },
}

/// Why a batch was refused.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error("broker event batch of {0} bytes is larger than the {MAX_BATCH_BYTES}-byte limit")]
    TooLarge(usize),
    #[error("broker event batch is not valid: {0}")]
    Invalid(#[from] serde_json::Error),
    #[error(
        "broker event batch has schema version {0}; this detect-fleet reads version {BATCH_VERSION}"
    )]
    Version(u32),
}

impl Batch {
    /// The batch as JSON bytes.
    pub fn encode(&self) -> Vec<u8> {
        // Serializing plain owned data to a Vec cannot fail: no map has non-string keys.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads one batch, refusing oversized input before parsing and unknown versions after.
    pub fn decode(bytes: &[u8]) -> Result<Batch, BatchError> {
        if bytes.len() > MAX_BATCH_BYTES {
            return Err(BatchError::TooLarge(bytes.len()));
        }
        let batch: Batch = serde_json::from_slice(bytes)?;
        if batch.v != BATCH_VERSION {
            return Err(BatchError::Version(batch.v));
        }
        Ok(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch() -> Batch {
        Batch {
            v: 1,
            source: "mosquitto".into(),
            instance: "a1b2".into(),
            seq: 7,
            sent_ms: 1_800_000_000_000,
            dropped: 0,
            events: vec![
                Event::Connect {
                    at_ms: 1,
                    client_id: "gw-a".into(),
                    ip: "127.0.0.2".into(),
                    ok: true,
                },
                Event::Traffic {
                    from_ms: 0,
                    to_ms: 1000,
                    client_id: "gw-a".into(),
                    topic: "t/1".into(),
                    dir: Direction::Sent,
                    msgs: 3,
                    bytes: 30,
                    min_bytes: 5,
                    max_bytes: 20,
                },
                Event::Denied {
                    at_ms: 2,
                    client_id: "gw-a".into(),
                    access: Access::Publish,
                    topic: Some("$aws/things/gw-b/defender/metrics/json".into()),
                },
            ],
        }
    }

    #[test]
    fn a_batch_reads_back_as_written() {
        let b = batch();
        assert_eq!(Batch::decode(&b.encode()).ok(), Some(b));
    }

    #[test]
    fn events_are_tagged_by_type_in_snake_case() {
        let text = String::from_utf8(batch().encode()).unwrap_or_default();
        assert!(text.contains(r#""type":"connect""#), "{text}");
        assert!(text.contains(r#""dir":"sent""#), "{text}");
        assert!(text.contains(r#""access":"publish""#), "{text}");
    }

    #[test]
    fn oversized_unknown_version_and_garbage_are_refused() {
        let big = vec![b' '; MAX_BATCH_BYTES + 1];
        assert!(matches!(Batch::decode(&big), Err(BatchError::TooLarge(_))));
        let mut b = batch();
        b.v = 2;
        assert!(matches!(
            Batch::decode(&b.encode()),
            Err(BatchError::Version(2))
        ));
        assert!(matches!(
            Batch::decode(b"{\"v\":1}"),
            Err(BatchError::Invalid(_))
        ));
    }
}
