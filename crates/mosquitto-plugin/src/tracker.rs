//! What the broker's callbacks mean, per client pointer (broker-witness §3.3): connects accepted
//! or refused, disconnects, traffic, inferred publish denials; plain values in, events out.

use foldhash::HashMap;

use protocol::broker::{Access, Direction, Event};

use crate::traffic::Traffic;

/// Clients followed at once; beyond it a client's connect and disconnect are dropped, counted.
pub const MAX_CLIENTS: usize = 100_000;
/// Events (other than traffic) held for one batch; reaching it makes the plugin flush early.
pub const MAX_EVENTS: usize = 2048;
/// Rough JSON bytes of the held events and traffic that make the plugin flush early (well
/// under `MAX_BATCH_BYTES`; the outbox splits a batch that still comes out larger).
pub const FLUSH_BYTES: usize = 128 * 1024;

/// Topics under which the plugin publishes; no client may write there.
pub const OWN_PREFIX: &str = "$detect/";

struct Client {
    id: Box<str>,
    ip: Box<str>,
    /// Epoch ms of the CONNECT (BASIC_AUTH), or of the first sign of life without one.
    since_ms: u64,
    /// Accepted (announced with `Connect{ok:true}`); false while the verdict is unknown.
    connected: bool,
}

/// A publish checked for WRITE whose MESSAGE has not come (yet): denied unless it comes next.
/// The buffers are reused: no allocation per publish.
#[derive(Default)]
struct PendingWrite {
    open: bool,
    ptr: usize,
    client_id: String,
    topic: String,
    at_ms: u64,
}

/// What the plugin answers an ACL question besides observing it.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// The configured verdict (defer or allow).
    Verdict,
    /// A client writing under `$detect/`: refused.
    Deny,
}

#[derive(Default)]
pub struct Tracker {
    clients: HashMap<usize, Client>,
    /// Pointers whose BASIC_AUTH is not settled yet (accepted at the next TICK).
    authenticating: Vec<usize>,
    events: Vec<Event>,
    event_bytes: usize,
    pub traffic: Traffic,
    /// Observations lost to the caps since the last batch.
    pub dropped: u64,
    pending: PendingWrite,
    /// The client whose DISCONNECT was the last callback: its will's WRITE check follows.
    gone: usize,
    /// The client whose BASIC_AUTH was the last callback: READ checks that follow re-check
    /// its resumed session's queue, deliveries already counted when they were queued.
    resuming: usize,
}

impl Tracker {
    fn push(&mut self, event: Event) {
        self.event_bytes += 120
            + match &event {
                Event::Connect { client_id, ip, .. } => client_id.len() + ip.len(),
                Event::Disconnect { client_id, ip, .. } => client_id.len() + ip.len(),
                Event::Denied {
                    client_id, topic, ..
                } => client_id.len() + topic.as_ref().map_or(0, |t| t.len()),
                _ => 0,
            };
        self.events.push(event);
    }

    /// True when the held events should be flushed now, before the timer.
    pub fn is_full(&self) -> bool {
        self.events.len() >= MAX_EVENTS
            || self.traffic.is_full()
            || self.event_bytes + self.traffic.approx_bytes >= FLUSH_BYTES
    }

    /// Takes the held events (traffic of `[from_ms, to_ms)` last) and the drop count.
    pub fn drain(&mut self, from_ms: u64, to_ms: u64) -> (Vec<Event>, u64) {
        let mut events = std::mem::take(&mut self.events);
        events.extend(self.traffic.drain(from_ms, to_ms));
        self.event_bytes = 0;
        // After a connection storm, give the memory back (and keep lookups in a small table).
        let n = self.clients.len();
        if self.clients.capacity() > 4 * n + 1024 {
            self.clients.shrink_to(2 * n);
        }
        (events, std::mem::take(&mut self.dropped))
    }

    /// A publish checked for WRITE and not followed by its MESSAGE was denied by an authority
    /// after this plugin; any callback but that MESSAGE settles it.
    fn settle_pending(&mut self) {
        if std::mem::take(&mut self.pending.open) {
            let p = &self.pending;
            let event = Event::Denied {
                at_ms: p.at_ms,
                client_id: p.client_id.clone(),
                access: Access::Publish,
                topic: Some(p.topic.clone()),
            };
            self.push(event);
        }
    }

    /// Start of every callback: settle what the previous one left open.
    fn begin(&mut self, ptr: usize, is_message: bool, is_read: bool) -> (bool, bool) {
        if !is_message {
            self.settle_pending();
        }
        let gone = std::mem::take(&mut self.gone) == ptr;
        let resuming = self.resuming == ptr && ptr != 0;
        if !(is_read && resuming) {
            self.resuming = 0;
        }
        (gone, resuming && is_read)
    }

    fn announce(&mut self, ptr: usize) {
        if let Some(c) = self.clients.get_mut(&ptr).filter(|c| !c.connected) {
            c.connected = true;
            let event = Event::Connect {
                at_ms: c.since_ms,
                client_id: c.id.to_string(),
                ip: c.ip.to_string(),
                ok: true,
            };
            self.push(event);
        }
    }

    /// A client to follow from now on; false when the cap is reached (counted).
    fn track(&mut self, ptr: usize, id: &str, ip: String, now_ms: u64, connected: bool) -> bool {
        if self.clients.len() >= MAX_CLIENTS && !self.clients.contains_key(&ptr) {
            self.dropped += 1;
            return false;
        }
        let client = Client {
            id: id.into(),
            ip: ip.into(),
            since_ms: now_ms,
            connected: false,
        };
        self.clients.insert(ptr, client);
        if connected {
            self.announce(ptr);
        }
        true
    }

    /// BASIC_AUTH: a CONNECT being authenticated. The verdict comes later (TICK or DISCONNECT).
    pub fn basic_auth(&mut self, ptr: usize, id: Option<&str>, ip: String, now_ms: u64) {
        self.begin(ptr, false, false);
        self.resuming = ptr;
        if self.track(ptr, id.unwrap_or(""), ip, now_ms, false) {
            self.authenticating.push(ptr);
        }
    }

    /// TICK: every CONNECT authenticated since the last one and still open was accepted.
    pub fn tick(&mut self) {
        self.begin(0, false, false);
        for ptr in std::mem::take(&mut self.authenticating) {
            self.announce(ptr);
        }
    }

    /// A live client acting (ACL check, MESSAGE): it was accepted; followed from now on if it
    /// never went through BASIC_AUTH (certificate listeners with `use_identity_as_username`).
    fn alive(&mut self, ptr: usize, id: &str, ip: impl FnOnce() -> String, now_ms: u64) {
        match self.clients.get_mut(&ptr) {
            Some(c) if c.connected => {}
            Some(_) => self.announce(ptr),
            None => {
                self.track(ptr, id, ip(), now_ms, true);
            }
        }
    }

    /// ACL_CHECK. `id` is the client's id (the broker asks nothing of a client without one).
    #[allow(clippy::too_many_arguments)]
    pub fn acl(
        &mut self,
        ptr: usize,
        id: &str,
        ip: impl FnOnce() -> String,
        write: bool,
        read: bool,
        topic: &str,
        size: u64,
        now_ms: u64,
    ) -> Answer {
        let (will, resumed) = self.begin(ptr, false, read);
        if write && topic.starts_with(OWN_PREFIX) {
            self.push(Event::Denied {
                at_ms: now_ms,
                client_id: id.into(),
                access: Access::Publish,
                topic: Some(topic.into()),
            });
            return Answer::Deny;
        }
        if read {
            // Deliveries, including those queued for an offline session (counted by id).
            if !resumed
                && !topic.starts_with(OWN_PREFIX)
                && !self.traffic.add(id, topic, Direction::Received, size)
            {
                self.dropped += 1;
            }
            return Answer::Verdict;
        }
        if will {
            return Answer::Verdict;
        }
        self.alive(ptr, id, ip, now_ms);
        if write && !topic.starts_with("$CONTROL/") {
            let p = &mut self.pending;
            (p.open, p.ptr, p.at_ms) = (true, ptr, now_ms);
            p.client_id.clear();
            p.client_id.push_str(id);
            p.topic.clear();
            p.topic.push_str(topic);
        }
        Answer::Verdict
    }

    /// MESSAGE: a PUBLISH the broker accepted.
    pub fn message(
        &mut self,
        ptr: usize,
        id: &str,
        ip: impl FnOnce() -> String,
        topic: &str,
        size: u64,
        now_ms: u64,
    ) {
        self.begin(ptr, true, false);
        if self.pending.open && self.pending.ptr == ptr && self.pending.topic == topic {
            // Its WRITE check just now already made the client known and announced.
            self.pending.open = false;
        } else {
            self.settle_pending();
            self.alive(ptr, id, ip, now_ms);
        }
        if !self.traffic.add(id, topic, Direction::Sent, size) {
            self.dropped += 1;
        }
    }

    /// DISCONNECT: any socket closing, before or after CONNECT, accepted or not.
    pub fn disconnect(
        &mut self,
        ptr: usize,
        id: Option<&str>,
        ip: impl FnOnce() -> String,
        now_ms: u64,
    ) {
        // A takeover closes the old connection in the middle of the new one's CONNECT: the new
        // client's re-checks of its resumed queue may still follow.
        let resuming = self.resuming;
        self.begin(ptr, false, false);
        if resuming != ptr {
            self.resuming = resuming;
        }
        self.gone = ptr;
        self.authenticating.retain(|p| *p != ptr);
        match (self.clients.remove(&ptr), id) {
            // BASIC_AUTH, then closed without an id: the CONNECT was refused.
            (Some(c), None) if !c.connected => {
                let client_id = c.id.to_string();
                self.push(Event::Connect {
                    at_ms: c.since_ms,
                    client_id: client_id.clone(),
                    ip: c.ip.into(),
                    ok: false,
                });
                self.push(Event::Denied {
                    at_ms: c.since_ms,
                    client_id,
                    access: Access::Connect,
                    topic: None,
                });
            }
            // Closed with its id: it had been accepted (announced now if no TICK came between).
            (Some(c), _) => {
                let (client_id, ip) = (c.id.to_string(), c.ip.to_string());
                if !c.connected {
                    self.push(Event::Connect {
                        at_ms: c.since_ms,
                        client_id: client_id.clone(),
                        ip: ip.clone(),
                        ok: true,
                    });
                }
                let connected_ms = Some(now_ms.saturating_sub(c.since_ms));
                self.push(Event::Disconnect {
                    at_ms: now_ms,
                    client_id,
                    ip,
                    connected_ms,
                });
            }
            // Never followed: no CONNECT at all (TLS failure, bare TCP), or over the cap /
            // a certificate client that did nothing (connect time unknown).
            (None, None) => self.push(Event::ClosedBeforeConnect {
                at_ms: now_ms,
                ip: ip(),
            }),
            (None, Some(id)) => {
                let ip = ip();
                self.push(Event::Connect {
                    at_ms: now_ms,
                    client_id: id.into(),
                    ip: ip.clone(),
                    ok: true,
                });
                self.push(Event::Disconnect {
                    at_ms: now_ms,
                    client_id: id.into(),
                    ip,
                    connected_ms: None,
                });
            }
        }
    }

    /// Clients followed now.
    #[cfg(test)]
    pub fn clients(&self) -> usize {
        self.clients.len()
    }
}

#[cfg(test)]
#[path = "tracker_tests.rs"]
mod tests;
