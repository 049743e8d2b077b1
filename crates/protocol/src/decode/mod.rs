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
//! reads as absent, in a required one it is refused. Lists are sorted as the model requires.

mod cbor;
mod custom;
mod sections;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use serde_json::{Map, Value};

use super::format::Format;
use super::keys::Key;
use super::model::{ConnectionList, Metrics, Missing, PortList, Report};
use cbor::from_cbor;
use custom::custom;
use sections::Reader;

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
/// the first byte of JSON text), else JSON.
pub fn decode(bytes: &[u8]) -> Result<Decoded, DecodeError> {
    if !matches!(bytes.first(), Some(0xa0..=0xbf)) {
        let v: Value =
            serde_json::from_slice(bytes).map_err(|e| DecodeError::Json(e.to_string()))?;
        return decode_value(&v);
    }
    let v = from_cbor(bytes, &mut 0)?;
    let mut d = decode_value(&v)?;
    d.format = if d.format.short_keys() {
        Format::CborShort
    } else {
        Format::Cbor
    };
    Ok(d)
}

/// Decodes a report already parsed as JSON (format Json or JsonShort).
pub fn decode_value(v: &Value) -> Result<Decoded, DecodeError> {
    let mut r = Reader { short: None };
    let root = object(v, "report")?;
    let f = r.fields(root, "", &[Key::Header, Key::Metrics, Key::CustomMetrics])?;
    let path = |k: Key, r: &Reader| r.name(k).to_string();
    let header = match get(&f, Key::Header) {
        Some(h) => r.header(h, &path(Key::Header, &r))?,
        None => return Err(missing(&path(Key::Header, &r))),
    };
    let metrics = match get(&f, Key::Metrics) {
        Some(m) => r.metrics(m, &path(Key::Metrics, &r))?,
        None => Metrics {
            listening_tcp_ports: PortList::default(),
            listening_udp_ports: PortList::default(),
            established: ConnectionList::default(),
            network_stats: None,
            missing: Missing {
                listening_tcp_ports: true,
                listening_udp_ports: true,
                tcp_connections: true,
            },
        },
    };
    let custom_metrics = match get(&f, Key::CustomMetrics) {
        Some(c) => custom(c, &path(Key::CustomMetrics, &r))?,
        None if get(&f, Key::Metrics).is_none() => {
            return Err(invalid(
                "report",
                "has neither metrics nor custom_metrics: a report needs at least one of them",
            ));
        }
        None => BTreeMap::new(),
    };
    let format = if r.short == Some(true) {
        Format::JsonShort
    } else {
        Format::Json
    };
    Ok(Decoded {
        report: Report {
            header,
            metrics,
            custom_metrics,
        },
        format,
    })
}

fn get<'v>(fields: &[(Key, &'v Value)], key: Key) -> Option<&'v Value> {
    fields.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

fn object<'v>(v: &'v Value, path: &str) -> Result<&'v Map<String, Value>, DecodeError> {
    v.as_object()
        .ok_or_else(|| invalid(path, &format!("{} is not an object", kind(v))))
}

fn array<'v>(v: Option<&'v Value>, path: &str) -> Result<&'v [Value], DecodeError> {
    match v {
        None => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(v) => Err(invalid(path, &format!("{} is not an array", kind(v)))),
    }
}

fn text(v: Option<&Value>, path: &str) -> Result<Option<String>, DecodeError> {
    match v {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(v) => Err(invalid(path, &format!("{v} is not a string"))),
    }
}

fn count(v: Option<&Value>, path: &str) -> Result<Option<u64>, DecodeError> {
    match v {
        None => Ok(None),
        Some(v) => integer(v)
            .map(Some)
            .ok_or_else(|| invalid(path, &format!("{v} is not an integer >= 0"))),
    }
}

/// A non-negative integer; an integral float is accepted (aws-c-iot writes report_id as a
/// JSON double, protocol doc §1.3).
fn integer(v: &Value) -> Option<u64> {
    v.as_u64().or_else(|| {
        let f = v.as_f64()?;
        (f >= 0.0 && f.fract() == 0.0 && f < 2f64.powi(64)).then_some(f as u64)
    })
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

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn spelling(short: bool) -> &'static str {
    if short { "short" } else { "long" }
}

fn at(path: &str) -> String {
    if path.is_empty() {
        "report".to_string()
    } else {
        path.to_string()
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
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
