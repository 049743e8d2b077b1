//! The structural part of a report: header and the four `metrics` sections, with the key
//! spelling fixed by the first key and checked on every other (protocol doc §1.1, §1.3, §1.4).

use std::net::SocketAddr;

use serde_json::{Map, Value};

use super::{
    DecodeError, array, at, count, get, integer, invalid, join, missing, object, spelling, text,
    unmap,
};
use crate::keys::{Key, TABLE};
use crate::model::{
    Connection, ConnectionList, Header, MAX_DECODED_REPORT_ID, Metrics, Missing, NetworkStats,
    Port, PortList,
};

pub(super) struct Reader {
    /// The spelling fixed by the first structural key.
    pub(super) short: Option<bool>,
}

/// The major number of a `Major.Minor` version (the whole text when it has no dot).
fn major(version: &str) -> Option<u64> {
    let major = version.split('.').next()?;
    if major.is_empty() || !major.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    major.parse().ok()
}

impl Reader {
    pub(super) fn name(&self, k: Key) -> &'static str {
        k.name(self.short == Some(true))
    }

    /// The structural keys of `obj`, each one of `allowed`, all in the report's spelling. An
    /// optional key whose value is `null` (JSON `null`, CBOR 0xf6) is left out, as if absent;
    /// a required one keeps its `null` for the caller to refuse by name.
    pub(super) fn fields<'v>(
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
            if v.is_null() && key.optional() {
                continue;
            }
            out.push((*key, v));
        }
        Ok(out)
    }

    pub(super) fn header(&mut self, v: &Value, path: &str) -> Result<Header, DecodeError> {
        let f = self.fields(object(v, path)?, path, &[Key::ReportId, Key::Version])?;
        let id_path = join(path, self.name(Key::ReportId));
        let report_id = match get(&f, Key::ReportId) {
            Some(v) => match integer(v) {
                Some(id @ 1..=MAX_DECODED_REPORT_ID) => id,
                Some(id) if id > MAX_DECODED_REPORT_ID => {
                    let m = format!(
                        "{id} is above {MAX_DECODED_REPORT_ID}, the largest report_id accepted"
                    );
                    return Err(invalid(&id_path, &m));
                }
                _ => return Err(invalid(&id_path, &format!("{v} is not a positive integer"))),
            },
            None => return Err(missing(&id_path)),
        };
        let v_path = join(path, self.name(Key::Version));
        match get(&f, Key::Version) {
            // A major version adds or removes metrics (protocol doc §1.3): only 1 is known.
            Some(Value::String(s)) if major(s) == Some(1) => {}
            Some(Value::String(s)) => {
                let m = format!("{s:?} is not version 1.x, the only one understood");
                return Err(invalid(&v_path, &m));
            }
            Some(v) => return Err(invalid(&v_path, &format!("{v} is not a string"))),
            None => return Err(missing(&v_path)),
        }
        Ok(Header { report_id })
    }

    pub(super) fn metrics(&mut self, v: &Value, path: &str) -> Result<Metrics, DecodeError> {
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
        ports.sort_unstable();
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
        // Unstable, as in report::build: equal entries are identical, and one sort instance.
        connections.sort_unstable();
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
