//! Owns the MQTT 3.1.1 framing the bridge needs: packet boundaries (fixed header and
//! remaining-length varint, spec §2.2) and dropping PUBLISH packets above a size limit without
//! buffering them. No I/O; does not decode anything but the fixed header and a dropped
//! PUBLISH's topic and packet id.

/// PUBLISH packet type (MQTT 3.1.1 §2.2.1).
pub const PUBLISH: u8 = 3;
/// PUBACK packet type.
pub const PUBACK: u8 = 4;
/// The packet type in a fixed header's first byte (MQTT 3.1.1 §2.2.1).
pub fn kind(first: u8) -> u8 {
    first >> 4
}

/// The QoS bits of a PUBLISH fixed header's first byte (MQTT 3.1.1 §3.3.1.2).
pub fn qos(first: u8) -> u8 {
    (first >> 1) & 0x03
}

/// How many bytes of a dropped message's topic are kept for the log line.
const TOPIC_KEPT: usize = 256;

/// A PUBLISH above the limit that was consumed and not forwarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    /// The topic (lossy UTF-8, at most `TOPIC_KEPT` bytes of it).
    pub topic: String,
    /// The packet's remaining length (variable header + payload).
    pub size: usize,
    pub qos: u8,
    /// The packet id, for QoS 1 and 2.
    pub pid: Option<u16>,
}

/// What `Frames::feed` saw besides the bytes it forwarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// A packet whose fixed header (first byte given) was forwarded.
    Forwarded(u8),
    /// A PUBLISH above the limit, fully consumed.
    Dropped(Dropped),
}

/// The stream broke the framing rules, or a packet other than PUBLISH exceeded the limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("malformed MQTT remaining length (more than 4 bytes)")]
    BadLength,
    #[error("MQTT packet of type {kind} with {size} bytes exceeds the {limit}-byte limit")]
    TooBig { kind: u8, size: usize, limit: usize },
    #[error(
        "malformed PUBLISH of {size} bytes: its topic and packet id do not fit in it (QoS {qos})"
    )]
    BadPublish { size: usize, qos: u8 },
}

/// Where the parser is inside the stream.
#[derive(Debug)]
enum State {
    /// Collecting a fixed header: first byte and up to 4 length bytes.
    Header { buf: [u8; 5], len: usize },
    /// Forwarding a packet body; `left` bytes to go.
    Body { left: usize },
    /// Consuming a PUBLISH above the limit.
    Drop(Dropping),
}

/// The parts of a dropped PUBLISH read so far. `left` counts the bytes of the packet still
/// to consume; the 2-byte fields may arrive one byte at a time.
#[derive(Debug)]
struct Dropping {
    qos: u8,
    size: usize,
    left: usize,
    phase: Phase,
    /// Bytes of the 2-byte field being read (topic length or packet id, big endian).
    field: Vec<u8>,
    topic: Vec<u8>,
    pid: Option<u16>,
}

/// The part of a dropped PUBLISH being read (MQTT 3.1.1 §3.3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    TopicLen,
    /// Topic bytes still to read.
    Topic(usize),
    PacketId,
    /// The payload, skipped.
    Payload,
}

/// Splits one direction of an MQTT byte stream into packets, forwarding each byte of those
/// within `limit` (remaining length, as rumqttc counts it) and consuming PUBLISHes above it.
#[derive(Debug)]
pub struct Frames {
    limit: usize,
    state: State,
}

impl Frames {
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            state: State::Header {
                buf: [0; 5],
                len: 0,
            },
        }
    }

    /// True between packets (no partial packet seen).
    pub fn at_boundary(&self) -> bool {
        matches!(self.state, State::Header { len: 0, .. })
    }

    /// Consumes `input`, appending the bytes to forward to `out` (at most `input.len() + 5`)
    /// and what it saw to `seen`.
    pub fn feed(
        &mut self,
        mut input: &[u8],
        out: &mut Vec<u8>,
        seen: &mut Vec<Seen>,
    ) -> Result<(), FrameError> {
        while !input.is_empty() {
            let used = self.feed_packet(input, out, seen)?;
            input = &input[used..];
        }
        Ok(())
    }

    /// Like `feed`, but stops right after the first packet that ends in `input` (so the
    /// caller can act between packets); returns how many bytes it consumed.
    pub fn feed_packet(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        seen: &mut Vec<Seen>,
    ) -> Result<usize, FrameError> {
        let mut used = 0;
        while used < input.len() {
            let rest = &input[used..];
            match &mut self.state {
                State::Header { buf, len } => {
                    buf[*len] = rest[0];
                    *len += 1;
                    used += 1;
                    let n = *len;
                    if n == 1 {
                        continue;
                    }
                    if buf[n - 1] & 0x80 != 0 {
                        if n == 5 {
                            return Err(FrameError::BadLength);
                        }
                        continue;
                    }
                    let header = *buf;
                    let size = buf[1..n]
                        .iter()
                        .rev()
                        .fold(0usize, |acc, b| (acc << 7) | usize::from(b & 0x7f));
                    self.begin(&header[..n], size, out, seen)?;
                }
                State::Body { left } => {
                    let take = (*left).min(rest.len());
                    out.extend_from_slice(&rest[..take]);
                    *left -= take;
                    used += take;
                    if *left == 0 {
                        self.state = Frames::new(self.limit).state;
                    }
                }
                State::Drop(d) => {
                    used += d.consume(rest)?;
                    if d.left == 0 {
                        seen.push(Seen::Dropped(Dropped {
                            topic: String::from_utf8_lossy(&d.topic).into_owned(),
                            size: d.size,
                            qos: d.qos,
                            pid: d.pid,
                        }));
                        self.state = Frames::new(self.limit).state;
                    }
                }
            }
            if self.at_boundary() {
                break;
            }
        }
        Ok(used)
    }

    /// Decides what to do with a packet whose fixed header is complete.
    fn begin(
        &mut self,
        header: &[u8],
        size: usize,
        out: &mut Vec<u8>,
        seen: &mut Vec<Seen>,
    ) -> Result<(), FrameError> {
        let first = header[0];
        let kind = kind(first);
        if size <= self.limit {
            out.extend_from_slice(header);
            seen.push(Seen::Forwarded(first));
            self.state = if size == 0 {
                Frames::new(self.limit).state
            } else {
                State::Body { left: size }
            };
            return Ok(());
        }
        if kind != PUBLISH {
            return Err(FrameError::TooBig {
                kind,
                size,
                limit: self.limit,
            });
        }
        self.state = State::Drop(Dropping::new(qos(first), size));
        Ok(())
    }
}

impl Dropping {
    fn new(qos: u8, size: usize) -> Self {
        Self {
            qos,
            size,
            left: size,
            phase: Phase::TopicLen,
            field: Vec::with_capacity(2),
            topic: Vec::new(),
            pid: None,
        }
    }

    /// Consumes what it can of `input` (never past the packet); returns how many bytes.
    fn consume(&mut self, input: &[u8]) -> Result<usize, FrameError> {
        let bad = FrameError::BadPublish {
            size: self.size,
            qos: self.qos,
        };
        let mut used = 0;
        while used < input.len() && self.left > 0 {
            let rest = &input[used..];
            let step = match self.phase {
                Phase::TopicLen | Phase::PacketId => {
                    self.field.push(rest[0]);
                    if let [hi, lo] = self.field[..] {
                        self.field.clear();
                        let v = u16::from_be_bytes([hi, lo]);
                        if self.phase == Phase::PacketId {
                            self.pid = Some(v);
                            self.phase = Phase::Payload;
                        } else {
                            let topic_len = usize::from(v);
                            let pid_len = if self.qos > 0 { 2 } else { 0 };
                            if 2 + topic_len + pid_len > self.size {
                                return Err(bad);
                            }
                            self.phase = Phase::Topic(topic_len);
                        }
                    }
                    1
                }
                Phase::Topic(topic_left) => {
                    let take = topic_left.min(rest.len());
                    let keep = take.min(TOPIC_KEPT.saturating_sub(self.topic.len()));
                    self.topic.extend_from_slice(&rest[..keep]);
                    self.phase = Phase::Topic(topic_left - take);
                    take
                }
                Phase::Payload => rest.len().min(self.left),
            };
            used += step;
            self.left -= step;
            if self.phase == Phase::Topic(0) {
                self.phase = if self.qos > 0 {
                    Phase::PacketId
                } else {
                    Phase::Payload
                };
            }
        }
        // The packet ended before its topic and packet id did.
        if self.left == 0 && self.phase != Phase::Payload {
            return Err(bad);
        }
        Ok(used)
    }
}

/// The PUBACK for packet id `pid` (MQTT 3.1.1 §3.4).
pub fn puback(pid: u16) -> [u8; 4] {
    let [hi, lo] = pid.to_be_bytes();
    [PUBACK << 4, 0x02, hi, lo]
}

#[cfg(test)]
#[path = "frames_tests.rs"]
mod tests;
