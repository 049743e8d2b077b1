//! nats-server 2.9's system-account advisories and CONNZ pages turned into broker `Event`s
//! (issue #18 item 3, docs/brokers.md): parsing, and the running counters per connection.

use std::collections::{HashMap, HashSet};

use protocol::broker::{Access, Direction, Event};
use serde::Deserialize;

use super::go_time::rfc3339_ms;

/// Connections whose counters are kept at most; more are not tracked (counted, logged).
pub const MAX_CONNECTIONS: usize = 100_000;

/// What the advisories' `ConnectEventMsg` / `DisconnectEventMsg` (AUTH.ERR has the disconnect
/// shape) carry that we use; everything else is ignored.
#[derive(Debug, Default, Deserialize)]
struct Advisory {
    #[serde(default)]
    server: ServerInfo,
    client: ClientInfo,
    #[serde(default)]
    sent: DataStats,
    #[serde(default)]
    received: DataStats,
    #[serde(default)]
    reason: String,
}

#[derive(Debug, Default, Deserialize)]
struct ServerInfo {
    #[serde(default)]
    id: String,
}

#[derive(Debug, Default, Deserialize)]
struct ClientInfo {
    #[serde(default)]
    start: Option<String>,
    #[serde(default)]
    stop: Option<String>,
    #[serde(default)]
    host: String,
    /// The server's connection id (`cid`).
    #[serde(default)]
    id: u64,
    /// The MQTT client id (empty for NATS clients).
    #[serde(default)]
    client_id: String,
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
struct DataStats {
    #[serde(default)]
    msgs: u64,
    #[serde(default)]
    bytes: u64,
}

/// One CONNZ reply (`$SYS.REQ.SERVER.*.CONNZ`): the server's page of connections.
#[derive(Debug, Deserialize)]
pub struct ConnzReply {
    #[serde(default)]
    pub data: Option<Connz>,
    #[serde(default)]
    pub error: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
pub struct Connz {
    pub server_id: String,
    #[serde(default)]
    pub total: u64,
    #[serde(default)]
    pub offset: u64,
    #[serde(default)]
    pub connections: Vec<ConnInfo>,
}

#[derive(Debug, Deserialize)]
pub struct ConnInfo {
    pub cid: u64,
    #[serde(default)]
    pub mqtt_client: String,
    #[serde(default)]
    pub in_msgs: u64,
    #[serde(default)]
    pub in_bytes: u64,
    #[serde(default)]
    pub out_msgs: u64,
    #[serde(default)]
    pub out_bytes: u64,
}

/// The totals last seen of one MQTT connection.
#[derive(Debug, Clone, Default)]
struct Totals {
    client_id: String,
    sent: DataStats,
    received: DataStats,
    /// Complete polls in a row that did not list it (its DISCONNECT may still be on its way).
    absent: u8,
}

/// Which advisory a subject is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Connect,
    Disconnect,
    AuthError,
}

pub fn kind(subject: &str) -> Option<Kind> {
    if subject.ends_with(".AUTH.ERR") {
        Some(Kind::AuthError)
    } else if subject.ends_with(".DISCONNECT") {
        Some(Kind::Disconnect)
    } else if subject.ends_with(".CONNECT") {
        Some(Kind::Connect)
    } else {
        None
    }
}

/// The running counters of the MQTT connections seen, by (server id, cid).
#[derive(Debug, Default)]
pub struct Tracker {
    conns: HashMap<(String, u64), Totals>,
    /// Connections not tracked because of `MAX_CONNECTIONS`.
    pub untracked: u64,
}

impl Tracker {
    /// The events of one advisory received at `now_ms` (the fleet's clock stamps them). `Ok`
    /// with nothing for a NATS (non-MQTT) client; `Err` says why the payload is unreadable.
    pub fn advisory(
        &mut self,
        kind: Kind,
        payload: &[u8],
        now_ms: u64,
    ) -> Result<Vec<Event>, String> {
        let a: Advisory = serde_json::from_slice(payload).map_err(|e| e.to_string())?;
        let c = a.client;
        if c.client_id.is_empty() {
            return Ok(Vec::new());
        }
        let key = (a.server.id, c.id);
        let ip = c.host;
        let client_id = c.client_id;
        Ok(match kind {
            Kind::Connect => {
                if self.conns.len() < MAX_CONNECTIONS || self.conns.contains_key(&key) {
                    let totals = Totals {
                        client_id: client_id.clone(),
                        ..Totals::default()
                    };
                    self.conns.insert(key, totals);
                } else {
                    self.untracked += 1;
                }
                vec![Event::Connect {
                    at_ms: now_ms,
                    client_id,
                    ip,
                    ok: true,
                }]
            }
            Kind::AuthError => vec![
                Event::Connect {
                    at_ms: now_ms,
                    client_id: client_id.clone(),
                    ip,
                    ok: false,
                },
                Event::Denied {
                    at_ms: now_ms,
                    client_id,
                    access: Access::Connect,
                    topic: None,
                },
            ],
            // A client refused at login has its AUTH.ERR; it never was connected.
            Kind::Disconnect if a.reason == "Authentication Failure" => Vec::new(),
            Kind::Disconnect => {
                let connected_ms = match (c.start.as_deref(), c.stop.as_deref()) {
                    (Some(a), Some(b)) => match (rfc3339_ms(a), rfc3339_ms(b)) {
                        (Some(a), Some(b)) => b.checked_sub(a),
                        _ => None,
                    },
                    _ => None,
                };
                let mut out = Vec::new();
                if let Some(last) = self.conns.remove(&key) {
                    out.extend(deltas(&last, a.sent, a.received, now_ms));
                }
                out.push(Event::Disconnect {
                    at_ms: now_ms,
                    client_id,
                    ip,
                    connected_ms,
                });
                out
            }
        })
    }

    /// Message counts since the previous poll for one server's connections. A connection first
    /// seen here (its CONNECT missed, e.g. before the fleet started) only sets the baseline.
    /// With `complete`, the server's connections absent from two such polls in a row are
    /// forgotten (one absence may be a close whose DISCONNECT, with the last totals, is coming).
    pub fn connz(
        &mut self,
        server_id: &str,
        conns: &[ConnInfo],
        complete: bool,
        now_ms: u64,
    ) -> Vec<Event> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        for c in conns.iter().filter(|c| !c.mqtt_client.is_empty()) {
            let key = (server_id.to_string(), c.cid);
            seen.insert(c.cid);
            let sent = DataStats {
                msgs: c.in_msgs,
                bytes: c.in_bytes,
            };
            let received = DataStats {
                msgs: c.out_msgs,
                bytes: c.out_bytes,
            };
            let now = Totals {
                client_id: c.mqtt_client.clone(),
                sent,
                received,
                absent: 0,
            };
            match self.conns.get(&key) {
                Some(last) if last.client_id == c.mqtt_client => {
                    out.extend(deltas(last, sent, received, now_ms))
                }
                _ if self.conns.len() >= MAX_CONNECTIONS && !self.conns.contains_key(&key) => {
                    self.untracked += 1;
                    continue;
                }
                _ => {}
            }
            self.conns.insert(key, now);
        }
        if complete {
            self.conns.retain(|(s, cid), t| {
                if s != server_id || seen.contains(cid) {
                    return true;
                }
                t.absent += 1;
                t.absent < 2
            });
        }
        out
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.conns.len()
    }
}

/// Traffic events for the growth of a connection's totals, stamped `now_ms` (the window in
/// which it was seen). NATS gives totals only: `bytes` include its header overhead and the
/// smallest and largest message are the mean (docs/brokers.md).
fn deltas(last: &Totals, sent: DataStats, received: DataStats, now_ms: u64) -> Vec<Event> {
    let mut out = Vec::new();
    for (dir, before, after) in [
        (Direction::Sent, last.sent, sent),
        (Direction::Received, last.received, received),
    ] {
        let msgs = after.msgs.saturating_sub(before.msgs);
        if msgs == 0 {
            continue;
        }
        let bytes = after.bytes.saturating_sub(before.bytes);
        out.push(Event::Traffic {
            from_ms: now_ms.saturating_sub(1),
            to_ms: now_ms,
            client_id: last.client_id.clone(),
            topic: String::new(),
            dir,
            msgs,
            bytes,
            min_bytes: bytes / msgs,
            max_bytes: bytes / msgs,
        });
    }
    out
}

#[cfg(test)]
#[path = "nats_events_tests.rs"]
mod tests;
