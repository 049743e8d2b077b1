//! Decodes a metrics report from JSON or CBOR, long or short keys (protocol doc §1.1–§1.5,
//! §2.1) into the `Report` model, with errors that name the key path. Does not judge the
//! report's content (detect does) nor read files.
//!
//! Rules: one spelling per report (mixing is an error, §2.1); unknown keys are errors; the
//! header's `version` must have major 1 (§1.3); every `metrics` section is optional (an
//! absent one is recorded in `Metrics::missing`); a present section without its list holds an
//! empty list; a missing `total` is filled from the list
//! (distinct ports, or the number of connections; detect-rules §3.1); `network_stats` must
//! carry all four deltas (every reference agent sends them together); custom metrics are an
//! array of exactly one object (§1.5); `null` in an optional key (or as a custom metric)
//! reads as absent, in a required one it is refused; a key given twice is refused. Lists are
//! sorted as the model requires.
//!
//! One pass, no generic tree (issue #17 item 6): JSON (serde_json's streaming reader), CBOR
//! (`cbor.rs`) and an already parsed JSON value all drive the same typed walk (`walk.rs`), which
//! checks each key against the schema as it is read and refuses a value of the wrong type
//! before reading its contents. A refused payload costs next to nothing; an accepted one costs
//! its model, at most 24 bytes per input byte (a list of empty strings in CBOR).

#[macro_use]
mod walk;
mod cbor;
mod ctx;
mod custom;
mod fields;
mod leaf;
mod peek;
mod sections;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use serde::de::{DeserializeSeed, MapAccess};
use serde_json::Value;

use super::format::Format;
use super::keys::Key;
use super::model::{ConnectionList, Metrics, Missing, PortList, Report};
use ctx::Ctx;
use custom::Custom;
use sections::{HeaderShape, MetricsShape};
use walk::{Any, Opt, Shape};

pub use peek::report_id;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("not a JSON report: {0}")]
    Json(String),
    #[error("not a CBOR report: {0}")]
    Cbor(String),
    #[error("{path}: unknown key {key:?}")]
    UnknownKey { path: String, key: String },
    #[error(
        "{path}: key {key:?} is a {found} key but this report uses {used} keys: a report uses long keys or short keys throughout, never both"
    )]
    MixedKeys {
        path: String,
        key: String,
        found: &'static str,
        used: &'static str,
    },
    #[error("{path} is required")]
    Missing { path: String },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

/// A decoded report and the encoding it came in.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    pub report: Report,
    pub format: Format,
}

/// Decodes bytes: CBOR when the first byte starts a CBOR map (major type 5, 0xa0–0xbf, never
/// the first byte of JSON text), else JSON. One pass over the bytes straight into the model.
pub fn decode(bytes: &[u8]) -> Result<Decoded, DecodeError> {
    let cbor = matches!(bytes.first(), Some(0xa0..=0xbf));
    let c = Ctx::new(bytes.len(), !cbor);
    let report = if cbor {
        let mut de = cbor::Reader::new(bytes);
        let r = Any(Root(&c)).deserialize(&mut de);
        r.map_err(|e| c.take_err().unwrap_or_else(|| e.into_error(&c)))?
    } else {
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let r = Any(Root(&c))
            .deserialize(&mut de)
            .and_then(|r| de.end().map(|()| r));
        r.map_err(|e| json_error(&c, e))?
    };
    let format = match (cbor, c.short()) {
        (false, false) => Format::Json,
        (false, true) => Format::JsonShort,
        (true, false) => Format::Cbor,
        (true, true) => Format::CborShort,
    };
    Ok(Decoded { report, format })
}

/// Decodes a report already parsed as JSON (format Json or JsonShort). It is written out and
/// read again: one reader fewer compiled into the agent, for a path only `evaluate` takes.
pub fn decode_value(v: &Value) -> Result<Decoded, DecodeError> {
    let bytes = serde_json::to_vec(v).map_err(|e| DecodeError::Json(e.to_string()))?;
    decode(&bytes)
}

/// `metrics` left out: every section missing.
fn absent() -> Metrics {
    Metrics {
        listening_tcp_ports: PortList::default(),
        listening_udp_ports: PortList::default(),
        established: ConnectionList::default(),
        network_stats: None,
        missing: Missing {
            listening_tcp_ports: true,
            listening_udp_ports: true,
            tcp_connections: true,
        },
    }
}

fn json_error(c: &Ctx, e: serde_json::Error) -> DecodeError {
    c.take_err()
        .unwrap_or_else(|| DecodeError::Json(e.to_string()))
}

/// The whole report: `header`, and `metrics` or `custom_metrics` or both.
struct Root<'c>(&'c Ctx);

impl<'de> Shape<'de> for Root<'_> {
    type Out = Report;

    fn ctx(&self) -> &Ctx {
        self.0
    }

    fn want(&self) -> &'static str {
        "an object"
    }

    fn map<A: MapAccess<'de>>(self, mut a: A) -> Result<Report, A::Error> {
        let (c, mut seen) = (self.0, 0);
        let allowed = [Key::Header, Key::Metrics, Key::CustomMetrics];
        let (mut header, mut metrics, mut custom) = (None, None, None);
        while let Some(k) = c.key(&mut a, &allowed, &mut seen)? {
            match k {
                Key::Header => header = Some(a.next_value_seed(Any(HeaderShape(c)))?),
                Key::Metrics => metrics = a.next_value_seed(Any(Opt(MetricsShape(c))))?,
                _ => custom = a.next_value_seed(Any(Opt(Custom(c))))?,
            }
            c.pop();
        }
        let Some(header) = header else {
            return Err(c.fail(missing(&c.child(Key::Header))));
        };
        if metrics.is_none() && custom.is_none() {
            let m = "has neither metrics nor custom_metrics: a report needs at least one of them";
            return Err(c.fail(invalid("report", m)));
        }
        Ok(Report {
            header,
            metrics: metrics.unwrap_or_else(absent),
            custom_metrics: custom.unwrap_or_else(BTreeMap::new),
        })
    }
}

fn unmap(a: SocketAddr) -> SocketAddr {
    match a {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(v4.into(), v6.port()),
            None => SocketAddr::new(IpAddr::V6(*v6.ip()), v6.port()),
        },
        v4 => v4,
    }
}

fn spelling(short: bool) -> &'static str {
    if short { "short" } else { "long" }
}

fn missing(path: &str) -> DecodeError {
    DecodeError::Missing {
        path: path.to_string(),
    }
}

fn invalid(path: &str, message: &str) -> DecodeError {
    DecodeError::Invalid {
        path: path.to_string(),
        message: message.to_string(),
    }
}

#[cfg(test)]
mod cbor_tests;
#[cfg(test)]
mod null_tests;
#[cfg(test)]
mod tests;
