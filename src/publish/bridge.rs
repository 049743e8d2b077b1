//! Owns the in-process bridge between rumqttc and the broker: takes the TLS stream `dial`
//! made, hands rumqttc one private Unix socket connection for it, and drops PUBLISHes too big
//! for rumqttc (issue #11 item 3), acking them itself. Speaks no MQTT beyond that (`frames`).

use std::collections::VecDeque;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};
use tokio::time::timeout;
use tokio_rustls::client::TlsStream;

use super::dial::MAX_SOCKET_PATH;
use super::frames::{self, FrameError, Frames, Seen};
use super::log_limit::LogLimit;

/// Bytes read from either side at a time.
const CHUNK: usize = 16 * 1024;
/// A side that takes no bytes for this long is stuck: the bridge ends (as rumqttc does on a
/// PUBLISH that the broker does not take, `steps::PUBACK_TIMEOUT`).
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// PUBACKs for dropped messages waiting for rumqttc's own PUBACKs to go first; when full, the
/// bridge stops reading from the broker until they are out.
const MAX_PENDING_ACKS: usize = 16;

/// Why the bridge ended or could not start; one line each, for the session's log.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    #[error("bridge socket {path}: {source}")]
    Socket { path: PathBuf, source: io::Error },
    #[error(
        "bridge socket {path}: path longer than {MAX_SOCKET_PATH} bytes; use a shorter [state] dir"
    )]
    LongPath { path: PathBuf },
    #[error("MQTT client did not connect to the bridge socket within {0:?}")]
    NoClient(Duration),
    #[error("bridge socket: a connection from pid {0:?}, not from this process")]
    Stranger(Option<i32>),
    #[error("I/O: {0}")]
    Broker(io::Error),
    #[error("from the broker: {0}")]
    Frame(#[from] FrameError),
    #[error("the {0} took no data for {WRITE_TIMEOUT:?}")]
    Stalled(Side),
}

/// The two ends of the bridge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// rumqttc, on the Unix socket.
    Client,
    Broker,
}

impl std::fmt::Display for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Side::Client => "MQTT client",
            Side::Broker => "broker",
        })
    }
}

/// One running bridge: waits for rumqttc on the socket, then copies until either side closes.
/// Dropping it ends the bridge.
pub struct Bridge {
    task: tokio::task::JoinHandle<()>,
    ended: oneshot::Receiver<BridgeError>,
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Bridge {
    /// Waits on `listener` (bound at `socket`, removed after the accept) for one connection
    /// from this process within `accept_within`, then bridges it to `broker`. Incoming
    /// PUBLISHes with a remaining length above `limit` are dropped.
    pub fn start(
        listener: UnixListener,
        socket: PathBuf,
        broker: TlsStream<TcpStream>,
        limit: usize,
        accept_within: Duration,
    ) -> Bridge {
        let (tx, ended) = oneshot::channel();
        let unlink = Unlink(socket);
        let task = tokio::spawn(serve(listener, unlink, broker, limit, accept_within, tx));
        Bridge { task, ended }
    }

    /// Waits, at most `within`, for the bridge to end by itself (after rumqttc closed its
    /// socket), then ends it.
    pub async fn finish(mut self, within: Duration) {
        let _ = timeout(within, &mut self.task).await;
    }

    /// Why the bridge ended, if it ended on an error (said once).
    pub fn error(&mut self) -> Option<BridgeError> {
        self.ended.try_recv().ok()
    }
}

/// Removes the socket file when dropped: right after the one accept, or when the task is
/// aborted before it.
struct Unlink(PathBuf);

impl Drop for Unlink {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The bridge task: one accept, then `pump`. Its error goes to `ended` while both streams are
/// still open, so the session has it by the time rumqttc sees its socket close.
async fn serve(
    listener: UnixListener,
    unlink: Unlink,
    mut broker: TlsStream<TcpStream>,
    limit: usize,
    within: Duration,
    ended: oneshot::Sender<BridgeError>,
) {
    let mut client = match accept(listener, unlink, within).await {
        Ok(client) => client,
        Err(e) => {
            let _ = ended.send(e);
            return;
        }
    };
    match pump(&mut client, &mut broker, limit).await {
        Ok(()) => {
            let _ = timeout(WRITE_TIMEOUT, broker.shutdown()).await;
        }
        Err(e) => {
            let _ = ended.send(e);
        }
    }
    drop(client);
}

/// The one connection, from this process, within `within`; the socket file is gone after.
async fn accept(
    listener: UnixListener,
    unlink: Unlink,
    within: Duration,
) -> Result<UnixStream, BridgeError> {
    let accepted = timeout(within, listener.accept()).await;
    drop(listener);
    let path = unlink.0.clone();
    drop(unlink);
    let client = match accepted {
        Err(_) => return Err(BridgeError::NoClient(within)),
        Ok(Err(source)) => return Err(BridgeError::Socket { path, source }),
        Ok(Ok((client, _))) => client,
    };
    let pid = client.peer_cred().ok().and_then(|c| c.pid());
    if pid != i32::try_from(std::process::id()).ok() {
        return Err(BridgeError::Stranger(pid));
    }
    Ok(client)
}

/// Copies both ways until either side closes. Reads wait without a timeout: rumqttc's keep
/// alive closes its side when the broker goes quiet, and that ends the bridge.
async fn pump(
    client: &mut UnixStream,
    broker: &mut (impl AsyncRead + AsyncWrite + Unpin),
    limit: usize,
) -> Result<(), BridgeError> {
    let (client_rx, client_tx) = client.split();
    let (broker_rx, broker_tx) = tokio::io::split(broker);
    let (acks_tx, acks_rx) = mpsc::channel(MAX_PENDING_ACKS);
    tokio::select! {
        r = down(broker_rx, client_tx, limit, acks_tx) => r,
        r = up(client_rx, broker_tx, acks_rx) => r,
    }
}

/// Writes all of `bytes` to `to` and flushes it (TLS keeps records buffered until a flush)
/// within `WRITE_TIMEOUT`; `Ok(false)` when rumqttc's side is closed (it went away: not an
/// error of the bridge).
async fn send(
    to: &mut (impl AsyncWrite + Unpin),
    bytes: &[u8],
    side: Side,
) -> Result<bool, BridgeError> {
    let written = async {
        to.write_all(bytes).await?;
        to.flush().await
    };
    match timeout(WRITE_TIMEOUT, written).await {
        Err(_) => Err(BridgeError::Stalled(side)),
        Ok(Err(_)) if side == Side::Client => Ok(false),
        Ok(Err(e)) => Err(BridgeError::Broker(e)),
        Ok(Ok(())) => Ok(true),
    }
}

/// Broker → rumqttc: every packet within `limit` byte for byte; a PUBLISH above it is read
/// and dropped, logged (rate-limited), and, at QoS 1, its PUBACK handed to `up`.
async fn down(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    limit: usize,
    acks: mpsc::Sender<(u64, u16)>,
) -> Result<(), BridgeError> {
    let mut frames = Frames::new(limit);
    let mut buf = vec![0; CHUNK];
    let mut out = Vec::with_capacity(CHUNK + 5);
    let mut seen = Vec::new();
    let mut noise = LogLimit::default();
    // QoS-1 PUBLISHes passed to rumqttc so far: each gets its PUBACK before a later dropped one.
    let mut forwarded_qos1: u64 = 0;
    loop {
        let due = noise.due();
        let n = tokio::select! {
            n = from.read(&mut buf) => n.map_err(BridgeError::Broker)?,
            _ = tokio::time::sleep_until(due.unwrap_or_else(tokio::time::Instant::now)), if due.is_some() => {
                if let Some(suppressed) = noise.take_suppressed(tokio::time::Instant::now()) {
                    tracing::warn!(suppressed, "oversized MQTT messages dropped: log lines suppressed");
                }
                continue;
            }
        };
        if n == 0 {
            return Ok(());
        }
        out.clear();
        frames.feed(&buf[..n], &mut out, &mut seen)?;
        // The PUBACKs owed are queued before rumqttc can see (and ack) what follows them.
        for s in seen.drain(..) {
            match s {
                Seen::Forwarded(first)
                    if frames::kind(first) == frames::PUBLISH && frames::qos(first) == 1 =>
                {
                    forwarded_qos1 += 1;
                }
                Seen::Forwarded(_) => {}
                Seen::Dropped(d) => {
                    if noise.allow(tokio::time::Instant::now()) {
                        // The topic as a str field: the log writes it quoted and escaped.
                        tracing::warn!(
                            topic = d.topic.as_str(),
                            bytes = d.size,
                            limit,
                            qos = d.qos,
                            "MQTT message above the size limit dropped"
                        );
                    }
                    // Delivered QoS is min(publish, subscription) (MQTT 3.1.1 §3.8.4) and the
                    // agent subscribes at QoS 1, so QoS 2 only comes from a broker breaking
                    // that rule: it is dropped unacknowledged (the session is clean).
                    if let (1, Some(pid)) = (d.qos, d.pid)
                        && acks.send((forwarded_qos1, pid)).await.is_err()
                    {
                        return Ok(());
                    }
                }
            }
        }
        if !send(&mut to, &out, Side::Client).await? {
            return Ok(());
        }
    }
}

/// rumqttc → broker, byte for byte; PUBACKs for dropped messages go in between packets, right
/// after rumqttc has acked every QoS-1 message that came before them (MQTT 3.1.1 §4.6).
async fn up(
    mut from: impl AsyncRead + Unpin,
    to: impl AsyncWrite + Unpin,
    acks: mpsc::Receiver<(u64, u16)>,
) -> Result<(), BridgeError> {
    let mut up = Up {
        // No limit: only the packet boundaries matter here (rumqttc bounds what it sends).
        frames: Frames::new(usize::MAX),
        client_acks: 0,
        pending: VecDeque::with_capacity(MAX_PENDING_ACKS),
        acks,
        to,
    };
    let mut buf = vec![0; CHUNK];
    let mut out = Vec::with_capacity(CHUNK + 5);
    let mut seen = Vec::new();
    loop {
        tokio::select! {
            n = from.read(&mut buf) => {
                // A read error on the local socket is rumqttc going away: the same as EOF.
                let n = n.unwrap_or(0);
                if n == 0 {
                    return Ok(());
                }
                let mut rest = &buf[..n];
                while !rest.is_empty() {
                    out.clear();
                    let used = up.frames.feed_packet(rest, &mut out, &mut seen)?;
                    rest = &rest[used..];
                    up.client_acks += seen
                        .drain(..)
                        .filter(|s| matches!(s, Seen::Forwarded(first) if frames::kind(*first) == frames::PUBACK))
                        .count() as u64;
                    send(&mut up.to, &out, Side::Broker).await?;
                    up.ack_due().await?;
                }
            }
            a = up.acks.recv(), if up.pending.len() < MAX_PENDING_ACKS => match a {
                Some(a) => {
                    up.pending.push_back(a);
                    up.ack_due().await?;
                }
                None => return Ok(()),
            },
        }
    }
}

/// The rumqttc → broker side's state.
struct Up<W> {
    frames: Frames,
    /// PUBACKs rumqttc has sent.
    client_acks: u64,
    /// (PUBACKs rumqttc must have sent first, packet id) for dropped messages, oldest first.
    pending: VecDeque<(u64, u16)>,
    acks: mpsc::Receiver<(u64, u16)>,
    to: W,
}

impl<W: AsyncWrite + Unpin> Up<W> {
    /// Sends the PUBACKs for dropped messages that are due (between two packets of rumqttc).
    async fn ack_due(&mut self) -> Result<(), BridgeError> {
        while self.pending.len() < MAX_PENDING_ACKS {
            match self.acks.try_recv() {
                Ok(a) => self.pending.push_back(a),
                Err(_) => break,
            }
        }
        while let Some(&(after, pid)) = self.pending.front()
            && self.frames.at_boundary()
            && self.client_acks >= after
        {
            send(&mut self.to, &frames::puback(pid), Side::Broker).await?;
            self.pending.pop_front();
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "bridge_tests.rs"]
mod tests;
