//! The cluster store's building blocks: key encoding, the JSON kept in each bucket, reading
//! a bucket's (or the outbox's) messages through an ordered consumer, and read-modify-write.
//! No trait logic here.

use std::collections::BTreeMap;

use async_nats::jetstream::consumer::{DeliverPolicy, push};
use async_nats::jetstream::{kv, stream};
use bytes::Bytes;
use detect::{EngineState, Event};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use super::nats::backend;
use super::{Recorded, StoreError, StoredReport};
use crate::witness::Witness;

/// A name as one KV key token: `[A-Za-z0-9_-]` kept, every other byte as `=XX` (hex).
pub fn enc(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            out.push(b as char);
        } else {
            out.push_str(&format!("={b:02X}"));
        }
    }
    out
}

/// The inverse of [`enc`]; `None` for a token it did not write.
pub fn dec(token: &str) -> Option<String> {
    let bytes = token.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' {
            let hex = token.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A thing's value in `detect-fleet-records`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Stored {
    /// `Version`: +1 per commit (the KV revision is the compare-and-set; this counts commits).
    pub version: u64,
    pub last_report: Option<(u64, u64)>,
    pub states: BTreeMap<String, EngineState>,
    pub witness: Option<Witness>,
    /// This thing's value per statistical window, so a summed sample adds to what is there
    /// without reading `detect-fleet-samples` (windows of the last two days).
    #[serde(default)]
    pub windows: Vec<Window>,
    /// The last commit's effects on the other buckets and the outbox, applied after it.
    #[serde(default)]
    pub relay: Relay,
    /// `relay` was applied (all of it is idempotent: applying it again changes nothing).
    #[serde(default)]
    pub relayed: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Window {
    pub profile: String,
    pub behavior: String,
    pub start_ms: u64,
    pub value: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Relay {
    pub answers: Vec<Answer>,
    pub events: Vec<Noted>,
    pub touched: Vec<(String, u64)>,
    /// Absolute values for `detect-fleet-samples` (already summed).
    pub samples: Vec<Window>,
}

/// A `StoredReport` as JSON (`detect-fleet-answers`, and in a record's relay).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Answer {
    pub thing: String,
    pub report_id: u64,
    pub time_ms: u64,
    pub accepted: bool,
    pub answer: serde_json::Value,
    pub digest: Option<String>,
}

impl Answer {
    pub fn of(a: &StoredReport) -> Answer {
        Answer {
            thing: a.thing.clone(),
            report_id: a.report_id,
            time_ms: a.time_ms,
            accepted: a.accepted,
            answer: a.answer.clone(),
            digest: a
                .digest
                .map(|d| d.iter().map(|b| format!("{b:02x}")).collect()),
        }
    }

    pub fn stored(&self) -> StoredReport {
        let digest = self.digest.as_deref().and_then(|hex| {
            let mut d = [0u8; 32];
            for (i, byte) in d.iter_mut().enumerate() {
                *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
            }
            Some(d)
        });
        StoredReport {
            thing: self.thing.clone(),
            report_id: self.report_id,
            time_ms: self.time_ms,
            accepted: self.accepted,
            answer: self.answer.clone(),
            digest,
        }
    }
}

/// A `Recorded` event as JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Noted {
    pub event: Event,
    pub suppressed: bool,
}

impl Noted {
    pub fn of(r: &Recorded) -> Noted {
        Noted {
            event: r.event.clone(),
            suppressed: r.suppressed,
        }
    }

    pub fn recorded(&self) -> Recorded {
        Recorded {
            event: self.event.clone(),
            suppressed: self.suppressed,
        }
    }
}

pub fn to_bytes<T: Serialize>(v: &T) -> Bytes {
    // Our own plain data: serializing cannot fail (string keys only).
    Bytes::from(serde_json::to_vec(v).unwrap_or_default())
}

pub fn from_bytes<T: serde::de::DeserializeOwned>(
    what: &str,
    bytes: &[u8],
) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::Json {
        path: format!("nats {what}"),
        what: "value".into(),
        source,
    })
}

/// How long one try to create a scan's consumer waits, and how many tries.
const CONSUMER_WAIT: std::time::Duration = std::time::Duration::from_millis(1500);
const CONSUMER_TRIES: u32 = 5;

/// One message read back: its subject after the prefix, sequence, headers and payload.
pub struct Read {
    pub key: String,
    pub seq: u64,
    pub headers: Option<async_nats::HeaderMap>,
    pub payload: Bytes,
}

/// Every message on `filter` (`prefix` + a subject pattern) from `deliver`, through an
/// ordered consumer: for a bucket (`LastPerSubject`) the live keys, deletions left out; for
/// the outbox every message from a position. Stops after `max` messages kept by `keep`, or
/// once it has as many as were pending when it started (later writes do not prolong it).
pub async fn scan(
    stream: &stream::Stream,
    client: &async_nats::Client,
    prefix: &str,
    pattern: &str,
    deliver: DeliverPolicy,
    max: usize,
    keep: impl Fn(&Read) -> bool,
) -> Result<Vec<Read>, StoreError> {
    let what = format!(
        "stream {} subjects {prefix}{pattern}",
        stream.cached_info().config.name
    );
    // nats-server before 2.9.12 may place an ephemeral consumer of a replicated stream on a
    // peer that is down (nats-server PR #3820), and then never answers the creation: each try
    // is bounded and another try places it again (docs/fleet.md "Running a cluster").
    let mut tries = 0;
    let consumer = loop {
        tries += 1;
        let config = push::OrderedConfig {
            deliver_subject: client.new_inbox(),
            filter_subject: format!("{prefix}{pattern}"),
            deliver_policy: deliver,
            ..Default::default()
        };
        match tokio::time::timeout(CONSUMER_WAIT, stream.create_consumer(config)).await {
            Ok(made) => break made.map_err(|e| backend(&what, e))?,
            Err(_) if tries < CONSUMER_TRIES => {
                tracing::debug!(what, tries, "consumer not created in time; placed again");
            }
            Err(_) => return Err(backend(&what, "consumer not created (a nats-server down?)")),
        }
    };
    let mut out = Vec::new();
    // What was there when the consumer was made: writes after it do not keep the scan going.
    let expected = consumer.cached_info().num_pending;
    if expected == 0 {
        return Ok(out);
    }
    let mut messages = consumer.messages().await.map_err(|e| backend(&what, e))?;
    let mut delivered = 0;
    while let Some(m) = messages.next().await {
        delivered += 1;
        let m = m.map_err(|e| backend(&what, e))?;
        let info = m.info().map_err(|e| backend(&what, e.to_string()))?;
        let (seq, pending) = (info.stream_sequence, info.pending);
        let deleted = m
            .headers
            .as_ref()
            .and_then(|h| h.get("KV-Operation"))
            .is_some_and(|op| op.as_str() == "DEL" || op.as_str() == "PURGE");
        let read = Read {
            key: m
                .subject
                .as_str()
                .strip_prefix(prefix)
                .unwrap_or("")
                .to_string(),
            seq,
            headers: m.headers.clone(),
            payload: m.payload.clone(),
        };
        if !deleted && keep(&read) {
            out.push(read);
        }
        if pending == 0 || delivered >= expected || out.len() >= max {
            break;
        }
    }
    Ok(out)
}

/// The live keys and values of `kv` under `pattern` (`>` for all).
pub async fn values(
    kv: &kv::Store,
    client: &async_nats::Client,
    pattern: &str,
) -> Result<Vec<Read>, StoreError> {
    let prefix = format!("$KV.{}.", kv.name);
    let last = DeliverPolicy::LastPerSubject;
    scan(
        &kv.stream,
        client,
        &prefix,
        pattern,
        last,
        usize::MAX,
        |_| true,
    )
    .await
}

/// Reads `key`, changes it with `change` (None: leave it) and writes it back against the
/// revision read; retried on a concurrent write, at most 10 times.
pub async fn modify<T, F>(kv: &kv::Store, key: &str, change: F) -> Result<bool, StoreError>
where
    T: Serialize + serde::de::DeserializeOwned,
    F: Fn(Option<T>) -> Option<T>,
{
    let what = format!("bucket {} key {key}", kv.name);
    for _ in 0..10 {
        let entry = kv.entry(key).await.map_err(|e| backend(&what, e))?;
        let live = entry.filter(|e| e.operation == kv::Operation::Put);
        let old = match &live {
            Some(e) => Some(from_bytes::<T>(&what, &e.value)?),
            None => None,
        };
        let Some(new) = change(old) else {
            return Ok(false);
        };
        let bytes = to_bytes(&new);
        match &live {
            Some(e) => match kv.update(key, bytes, e.revision).await {
                Ok(_) => return Ok(true),
                Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => continue,
                Err(e) => return Err(backend(&what, e)),
            },
            None => match kv.create(key, bytes).await {
                Ok(_) => return Ok(true),
                Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => continue,
                Err(e) => return Err(backend(&what, e)),
            },
        }
    }
    Err(backend(&what, "changed concurrently 10 times in a row"))
}
