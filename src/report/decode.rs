//! Decodes a metrics report from JSON or CBOR, long or short keys (protocol doc §1.1–§1.5,
//! §2.1) into the `Report` model, with errors that name the key path. Does not judge the
//! report's content (detect does) nor read files.
//!
//! Rules: one spelling per report (mixing is an error, §2.1); unknown keys are errors; every
//! `metrics` section is optional (an absent one is recorded in `Metrics::missing`); a present
//! section without its list holds an empty list; a missing `total` is filled from the list
//! (distinct ports, or the number of connections; detect-rules §3.1); `network_stats` must
//! carry all four deltas (every reference agent sends them together); custom metrics are an
//! array of exactly one object (§1.5). Lists are sorted as the model requires.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use serde_json::{Map, Number, Value};

use super::format::Format;
use super::keys::{IP_LIST, Key, NUMBER, NUMBER_LIST, STRING_LIST, TABLE};
use super::model::{
    Connection, ConnectionList, CustomValue, Header, Metrics, Missing, NetworkStats, Port,
    PortList, Report,
};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("not a JSON report: {0}")]
    Json(String),
    #[error("not a CBOR report: {0}")]
    Cbor(String),
    #[error("{path}: unknown key {key:?}")]
    UnknownKey { path: String, key: String },
    #[error(
        "{path}: key {key:?} is a {found} key but this report uses {used} keys (never mix, protocol doc §2.1)"
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
    let cbor: ciborium::Value =
        ciborium::from_reader(bytes).map_err(|e| DecodeError::Cbor(e.to_string()))?;
    let v = from_cbor(&cbor, "report")?;
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
                "has neither metrics nor custom_metrics (protocol doc §1.2)",
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

struct Reader {
    /// The spelling fixed by the first structural key.
    short: Option<bool>,
}

impl Reader {
    fn name(&self, k: Key) -> &'static str {
        k.name(self.short == Some(true))
    }

    /// The structural keys of `obj`, each one of `allowed`, all in the report's spelling.
    fn fields<'v>(
        &mut self,
        obj: &'v Map<String, Value>,
        path: &str,
        allowed: &[Key],
    ) -> Result<Vec<(Key, &'v Value)>, DecodeError> {
        let mut out = Vec::with_capacity(obj.len());
        for (k, v) in obj {
            let row = TABLE
                .iter()
                .find(|(key, long, short)| allowed.contains(key) && (long == k || short == k));
            let Some((key, long, _)) = row else {
                return Err(DecodeError::UnknownKey {
                    path: at(path),
                    key: k.clone(),
                });
            };
            let is_short = k != long;
            match self.short {
                None => self.short = Some(is_short),
                Some(s) if s != is_short => {
                    return Err(DecodeError::MixedKeys {
                        path: at(path),
                        key: k.clone(),
                        found: spelling(is_short),
                        used: spelling(s),
                    });
                }
                Some(_) => {}
            }
            out.push((*key, v));
        }
        Ok(out)
    }

    fn header(&mut self, v: &Value, path: &str) -> Result<Header, DecodeError> {
        let f = self.fields(object(v, path)?, path, &[Key::ReportId, Key::Version])?;
        let id_path = join(path, self.name(Key::ReportId));
        let report_id = match get(&f, Key::ReportId) {
            Some(v) => match integer(v) {
                Some(id) if id > 0 => id,
                _ => return Err(invalid(&id_path, &format!("{v} is not a positive integer"))),
            },
            None => return Err(missing(&id_path)),
        };
        let v_path = join(path, self.name(Key::Version));
        match get(&f, Key::Version) {
            Some(Value::String(_)) => {}
            Some(v) => return Err(invalid(&v_path, &format!("{v} is not a string"))),
            None => return Err(missing(&v_path)),
        }
        Ok(Header { report_id })
    }

    fn metrics(&mut self, v: &Value, path: &str) -> Result<Metrics, DecodeError> {
        let allowed = [
            Key::ListeningTcpPorts,
            Key::ListeningUdpPorts,
            Key::TcpConnections,
            Key::NetworkStats,
        ];
        let f = self.fields(object(v, path)?, path, &allowed)?;
        let mut missing = Missing::default();
        let ports = |key: Key, gone: &mut bool, r: &mut Self| match get(&f, key) {
            Some(v) => r.port_list(v, &join(path, r.name(key))),
            None => {
                *gone = true;
                Ok(PortList::default())
            }
        };
        let listening_tcp_ports = ports(
            Key::ListeningTcpPorts,
            &mut missing.listening_tcp_ports,
            self,
        )?;
        let listening_udp_ports = ports(
            Key::ListeningUdpPorts,
            &mut missing.listening_udp_ports,
            self,
        )?;
        let established = match get(&f, Key::TcpConnections) {
            Some(v) => {
                let tc_path = join(path, self.name(Key::TcpConnections));
                let tc = self.fields(
                    object(v, &tc_path)?,
                    &tc_path,
                    &[Key::EstablishedConnections],
                )?;
                match get(&tc, Key::EstablishedConnections) {
                    Some(ec) => {
                        let ec_path = join(&tc_path, self.name(Key::EstablishedConnections));
                        self.connections(ec, &ec_path)?
                    }
                    None => {
                        missing.tcp_connections = true;
                        ConnectionList::default()
                    }
                }
            }
            None => {
                missing.tcp_connections = true;
                ConnectionList::default()
            }
        };
        let network_stats = match get(&f, Key::NetworkStats) {
            Some(v) => Some(self.network_stats(v, &join(path, self.name(Key::NetworkStats)))?),
            None => None,
        };
        Ok(Metrics {
            listening_tcp_ports,
            listening_udp_ports,
            established,
            network_stats,
            missing,
        })
    }

    fn port_list(&mut self, v: &Value, path: &str) -> Result<PortList, DecodeError> {
        let f = self.fields(object(v, path)?, path, &[Key::Ports, Key::Total])?;
        let list_path = join(path, self.name(Key::Ports));
        let mut ports = Vec::new();
        for (i, entry) in array(get(&f, Key::Ports), &list_path)?.iter().enumerate() {
            let p = format!("{list_path}[{i}]");
            let e = self.fields(object(entry, &p)?, &p, &[Key::Port, Key::Interface])?;
            let port_path = join(&p, self.name(Key::Port));
            let port = match get(&e, Key::Port) {
                Some(v) => match integer(v).and_then(|n| u16::try_from(n).ok()) {
                    Some(n) if n > 0 => n,
                    _ => return Err(invalid(&port_path, &format!("{v} is not a port 1-65535"))),
                },
                None => return Err(missing(&port_path)),
            };
            let interface = text(
                get(&e, Key::Interface),
                &join(&p, self.name(Key::Interface)),
            )?;
            ports.push(Port { port, interface });
        }
        ports.sort();
        ports.dedup();
        let distinct = {
            let mut n: Vec<u16> = ports.iter().map(|p| p.port).collect();
            n.dedup();
            n.len() as u64
        };
        let total = count(get(&f, Key::Total), &join(path, self.name(Key::Total)))?;
        Ok(PortList {
            ports,
            total: total.unwrap_or(distinct),
        })
    }

    fn connections(&mut self, v: &Value, path: &str) -> Result<ConnectionList, DecodeError> {
        let f = self.fields(object(v, path)?, path, &[Key::Connections, Key::Total])?;
        let list_path = join(path, self.name(Key::Connections));
        let mut connections = Vec::new();
        let keys = [Key::RemoteAddr, Key::LocalPort, Key::LocalInterface];
        for (i, entry) in array(get(&f, Key::Connections), &list_path)?
            .iter()
            .enumerate()
        {
            let p = format!("{list_path}[{i}]");
            let e = self.fields(object(entry, &p)?, &p, &keys)?;
            let ra_path = join(&p, self.name(Key::RemoteAddr));
            let remote = match get(&e, Key::RemoteAddr) {
                Some(Value::String(s)) => s.parse::<SocketAddr>().map_err(|_| {
                    invalid(&ra_path, &format!("{s:?} is not ip:port or [ipv6]:port"))
                })?,
                Some(v) => return Err(invalid(&ra_path, &format!("{v} is not a string"))),
                None => return Err(missing(&ra_path)),
            };
            let lp_path = join(&p, self.name(Key::LocalPort));
            let local_port = match get(&e, Key::LocalPort) {
                None => 0,
                Some(v) => integer(v)
                    .and_then(|n| u16::try_from(n).ok())
                    .ok_or_else(|| invalid(&lp_path, &format!("{v} is not a port 0-65535")))?,
            };
            let local_interface = text(
                get(&e, Key::LocalInterface),
                &join(&p, self.name(Key::LocalInterface)),
            )?;
            connections.push(Connection {
                remote: unmap(remote),
                local_port,
                local_interface,
            });
        }
        connections.sort();
        let total = count(get(&f, Key::Total), &join(path, self.name(Key::Total)))?;
        Ok(ConnectionList {
            total: total.unwrap_or(connections.len() as u64),
            connections,
        })
    }

    fn network_stats(&mut self, v: &Value, path: &str) -> Result<NetworkStats, DecodeError> {
        let keys = [Key::BytesIn, Key::BytesOut, Key::PacketsIn, Key::PacketsOut];
        let f = self.fields(object(v, path)?, path, &keys)?;
        let mut vals = [0u64; 4];
        for (slot, key) in vals.iter_mut().zip(keys) {
            let p = join(path, self.name(key));
            *slot = count(get(&f, key), &p)?.ok_or_else(|| missing(&p))?;
        }
        let [bytes_in, bytes_out, packets_in, packets_out] = vals;
        Ok(NetworkStats {
            bytes_in,
            bytes_out,
            packets_in,
            packets_out,
        })
    }
}

/// `custom_metrics`: `{name: [{value_key: value}]}` (protocol doc §1.5).
fn custom(v: &Value, path: &str) -> Result<BTreeMap<String, CustomValue>, DecodeError> {
    let mut out = BTreeMap::new();
    for (name, value) in object(v, path)? {
        let p = join(path, name);
        let name_ok = (1..=128).contains(&name.len())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '_' | '-'))
            && !name.starts_with("aws:");
        if !name_ok {
            return Err(invalid(
                &p,
                "a custom metric name is 1-128 characters of [a-zA-Z0-9:_-], not starting with \"aws:\"",
            ));
        }
        let one = match value.as_array().map(Vec::as_slice) {
            Some([one]) => one,
            _ => return Err(invalid(&p, "must be an array of exactly one object")),
        };
        let obj = object(one, &format!("{p}[0]"))?;
        let (key, inner) = match obj.iter().next() {
            Some(kv) if obj.len() == 1 => kv,
            _ => {
                return Err(invalid(
                    &format!("{p}[0]"),
                    "must hold exactly one of number, number_list, string_list, ip_list",
                ));
            }
        };
        let vp = format!("{p}[0].{key}");
        let numbers = |v: &Value| -> Result<Vec<f64>, DecodeError> {
            let list = v
                .as_array()
                .ok_or_else(|| invalid(&vp, "must be an array"))?;
            list.iter()
                .map(|x| {
                    x.as_f64()
                        .ok_or_else(|| invalid(&vp, &format!("{x} is not a number")))
                })
                .collect()
        };
        let strings = |v: &Value| -> Result<Vec<String>, DecodeError> {
            let list = v
                .as_array()
                .ok_or_else(|| invalid(&vp, "must be an array"))?;
            list.iter()
                .map(|x| {
                    x.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| invalid(&vp, &format!("{x} is not a string")))
                })
                .collect()
        };
        let cv = match key.as_str() {
            NUMBER => CustomValue::Number(
                inner
                    .as_f64()
                    .ok_or_else(|| invalid(&vp, &format!("{inner} is not a number")))?,
            ),
            NUMBER_LIST => CustomValue::NumberList(numbers(inner)?),
            STRING_LIST => CustomValue::StringList(strings(inner)?),
            IP_LIST => CustomValue::IpList(
                strings(inner)?
                    .iter()
                    .map(|s| {
                        s.parse::<IpAddr>()
                            .map_err(|_| invalid(&vp, &format!("{s:?} is not an IP address")))
                    })
                    .collect::<Result<_, _>>()?,
            ),
            other => {
                return Err(DecodeError::UnknownKey {
                    path: format!("{p}[0]"),
                    key: other.to_string(),
                });
            }
        };
        out.insert(name.clone(), cv);
    }
    Ok(out)
}

/// CBOR to the JSON data model: text keys only, integers, finite floats, no tags or bytes.
fn from_cbor(v: &ciborium::Value, path: &str) -> Result<Value, DecodeError> {
    use ciborium::Value as C;
    Ok(match v {
        C::Integer(i) => {
            let i = i128::from(*i);
            if let Ok(u) = u64::try_from(i) {
                Value::Number(u.into())
            } else if let Ok(s) = i64::try_from(i) {
                Value::Number(s.into())
            } else {
                return Err(invalid(path, "integer out of range"));
            }
        }
        C::Float(f) => Value::Number(
            Number::from_f64(*f).ok_or_else(|| invalid(path, "number is not finite"))?,
        ),
        C::Text(s) => Value::String(s.clone()),
        C::Bool(b) => Value::Bool(*b),
        C::Null => Value::Null,
        C::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, x)| from_cbor(x, &format!("{path}[{i}]")))
                .collect::<Result<_, _>>()?,
        ),
        C::Map(entries) => {
            let mut m = Map::new();
            for (k, x) in entries {
                let C::Text(k) = k else {
                    return Err(invalid(path, "map key is not a text string"));
                };
                let p = format!("{path}.{k}");
                if m.insert(k.clone(), from_cbor(x, &p)?).is_some() {
                    return Err(invalid(&p, "key appears twice"));
                }
            }
            Value::Object(m)
        }
        C::Tag(..) | C::Bytes(_) => {
            return Err(invalid(
                path,
                "CBOR tags and byte strings are not part of a report",
            ));
        }
        _ => return Err(invalid(path, "unsupported CBOR item")),
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
#[path = "decode_tests.rs"]
mod tests;
