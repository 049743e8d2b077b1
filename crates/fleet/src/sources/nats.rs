//! `[broker] source = "nats"`: a task on nats-server's system account (async-nats) that reads
//! the CONNECT, DISCONNECT and AUTH.ERR advisories, polls CONNZ, and hands `Delivery`s on.
//!
//! Reconnects are async-nats's, with our backoff (jitter, cap); the queue to the service is
//! bounded and what it drops is counted into the next delivery. Nothing here judges.

use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::Delivery;
use super::nats_events::{ConnzReply, Kind, Tracker, kind};
use crate::config::Nats;

pub const NAME: &str = "nats";

/// The advisories read (docs/brokers.md).
pub const SUBJECTS: [&str; 3] = [
    "$SYS.ACCOUNT.*.CONNECT",
    "$SYS.ACCOUNT.*.DISCONNECT",
    "$SYS.SERVER.*.CLIENT.AUTH.ERR",
];
const CONNZ_PING: &str = "$SYS.REQ.SERVER.PING.CONNZ";
/// Connections asked for per CONNZ page, pages per server per poll, servers per poll.
const PAGE: u64 = 1024;
const MAX_PAGES: u64 = 100;
const MAX_SERVERS: usize = 64;
/// How long replies to a CONNZ ping are gathered.
const GATHER: Duration = Duration::from_millis(750);
/// Deliveries queued to the service at most.
pub const QUEUE: usize = 1024;

/// What the task tells the service.
#[derive(Debug)]
pub enum Feed {
    /// Subscribed to the advisories (again): windows may close after a grace.
    Up,
    /// The connection is lost: advisories meanwhile are gone, windows wait.
    Down,
    Delivery(Delivery),
}

/// Starts the task; its feeds arrive on the returned queue.
pub fn spawn(config: Nats, now_ms: fn() -> u64) -> mpsc::Receiver<Feed> {
    let (tx, rx) = mpsc::channel(QUEUE);
    tokio::spawn(run(config, tx, now_ms));
    rx
}

/// Sends deliveries without waiting: a full queue drops one and counts its events (the
/// connection's Up and Down wait for room instead: they are never dropped).
struct Sender {
    tx: mpsc::Sender<Feed>,
    instance: String,
    seq: u64,
    dropped: u64,
}

impl Sender {
    fn deliver(&mut self, events: Vec<protocol::broker::Event>) {
        if events.is_empty() {
            return;
        }
        let n = events.len() as u64;
        let d = Delivery {
            source: NAME,
            instance: self.instance.clone(),
            seq: self.seq,
            dropped: self.dropped,
            events,
        };
        match self.tx.try_send(Feed::Delivery(d)) {
            Ok(()) => {
                self.seq += 1;
                self.dropped = 0;
            }
            Err(_) => {
                self.dropped += n;
                tracing::warn!(
                    dropped = self.dropped,
                    "nats: the fleet's queue is full: broker events dropped"
                );
            }
        }
    }
}

async fn options(
    config: &Nats,
    tx: mpsc::Sender<Feed>,
) -> Result<async_nats::ConnectOptions, String> {
    let opts = match (&config.user, &config.password_file, &config.creds_file) {
        (Some(user), Some(file), _) => {
            let pw = std::fs::read_to_string(file)
                .map_err(|e| format!("[nats] password_file {}: {e}", file.display()))?;
            let pw = pw.trim_end_matches(['\r', '\n']).to_string();
            async_nats::ConnectOptions::with_user_and_password(user.clone(), pw)
        }
        (_, _, Some(creds)) => async_nats::ConnectOptions::with_credentials_file(creds)
            .await
            .map_err(|e| format!("[nats] creds_file {}: {e}", creds.display()))?,
        _ => return Err("[nats] no credentials".into()),
    };
    let backoff = Mutex::new(link::backoff::Backoff::new(
        Duration::from_millis(250),
        Duration::from_secs(30),
        link::random::seed(),
    ));
    let opts = match &config.ca_file {
        Some(ca) => opts.add_root_certificates(ca.clone()).require_tls(true),
        None => opts.require_tls(config.url.starts_with("tls://")),
    };
    Ok(opts
        .name("detect-fleet")
        .retry_on_initial_connect()
        .connection_timeout(Duration::from_secs(5))
        .request_timeout(Some(Duration::from_secs(5)))
        .subscription_capacity(QUEUE)
        .reconnect_delay_callback(move |attempts| {
            let Ok(mut b) = backoff.lock() else {
                return Duration::from_secs(5);
            };
            if attempts <= 1 {
                b.reset();
            }
            b.next_delay()
        })
        .event_callback(move |event| {
            let tx = tx.clone();
            async move {
                match event {
                    async_nats::Event::Connected => {
                        tracing::info!("nats: connected to the system account");
                        let _ = tx.send(Feed::Up).await;
                    }
                    async_nats::Event::Disconnected => {
                        tracing::warn!("nats: disconnected; advisories meanwhile are lost");
                        let _ = tx.send(Feed::Down).await;
                    }
                    other => tracing::warn!(event = %other, "nats: connection event"),
                }
            }
        }))
}

async fn run(config: Nats, tx: mpsc::Sender<Feed>, now_ms: fn() -> u64) {
    let mut sender = Sender {
        tx: tx.clone(),
        instance: format!("{:016x}", link::random::seed()),
        seq: 0,
        dropped: 0,
    };
    let mut tracker = Tracker::default();
    let mut malformed = 0u64;
    let opts = match options(&config, tx.clone()).await {
        Ok(o) => o,
        Err(e) => {
            tracing::error!(error = %e, "nats source not started: cloud-side windows get no events");
            return;
        }
    };
    tracing::info!(url = %config.url, "nats: connecting to the system account");
    let client = match opts.connect(config.url.as_str()).await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(url = %config.url, error = %e, "nats source not started");
            return;
        }
    };
    let mut subs = Vec::new();
    for s in SUBJECTS {
        match client.subscribe(s).await {
            Ok(sub) => subs.push(sub),
            Err(e) => {
                tracing::error!(subject = s, error = %e, "nats: cannot subscribe: source stopped");
                return;
            }
        }
    }
    if client.flush().await.is_ok() {
        tracing::info!(subjects = ?SUBJECTS, "nats: subscribed to the advisories");
        let _ = tx.send(Feed::Up).await;
    }
    let mut advisories = futures_util::stream::select_all(subs);
    let mut poll = tokio::time::interval(Duration::from_secs(config.connz_interval_secs));
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            m = advisories.next() => {
                let Some(m) = m else {
                    tracing::error!("nats: subscriptions ended: source stopped");
                    return;
                };
                let Some(k) = kind(m.subject.as_str()) else { continue };
                match tracker.advisory(k, &m.payload, now_ms()) {
                    Ok(events) => sender.deliver(events),
                    Err(why) => {
                        malformed += 1;
                        tracing::warn!(subject = %m.subject, bytes = m.payload.len(), malformed, error = %why, "nats: advisory unreadable: skipped");
                    }
                }
                if k == Kind::Connect && tracker.untracked > 0 && tracker.untracked.is_power_of_two() {
                    tracing::warn!(untracked = tracker.untracked, "nats: too many connections: message counters not kept for some");
                }
            }
            _ = poll.tick() => {
                let events = connz(&client, &mut tracker, &mut malformed, now_ms).await;
                for chunk in events.chunks(1000) {
                    sender.deliver(chunk.to_vec());
                }
            }
        }
    }
}

/// One CONNZ round: a ping to every server, then further pages server by server.
async fn connz(
    client: &async_nats::Client,
    tracker: &mut Tracker,
    malformed: &mut u64,
    now_ms: fn() -> u64,
) -> Vec<protocol::broker::Event> {
    let body = |offset: u64| Bytes::from(format!(r#"{{"offset":{offset},"limit":{PAGE}}}"#));
    let inbox = client.new_inbox();
    let Ok(mut sub) = client.subscribe(inbox.clone()).await else {
        return Vec::new();
    };
    if client
        .publish_with_reply(CONNZ_PING, inbox, body(0))
        .await
        .is_err()
    {
        return Vec::new();
    }
    let mut replies = Vec::new();
    let deadline = tokio::time::Instant::now() + GATHER;
    while replies.len() < MAX_SERVERS {
        match tokio::time::timeout_at(deadline, sub.next()).await {
            Ok(Some(m)) => replies.push(m.payload),
            _ => break,
        }
    }
    let _ = sub.unsubscribe().await;
    let mut events = Vec::new();
    let mut bad = |why: String| {
        *malformed += 1;
        tracing::warn!(malformed = *malformed, error = %why, "nats: CONNZ reply unreadable: skipped");
    };
    for payload in replies {
        let mut page = match serde_json::from_slice::<ConnzReply>(&payload) {
            Ok(ConnzReply { data: Some(d), .. }) => d,
            Ok(r) => {
                bad(format!("no data: {:?}", r.error));
                continue;
            }
            Err(e) => {
                bad(e.to_string());
                continue;
            }
        };
        let server = page.server_id.clone();
        let mut conns = std::mem::take(&mut page.connections);
        let mut complete = true;
        let mut pages = 1;
        while page.offset + (conns.len() as u64) < page.total && complete {
            let subject = format!("$SYS.REQ.SERVER.{server}.CONNZ");
            let next = client.request(subject, body(conns.len() as u64)).await;
            match next.map(|m| serde_json::from_slice::<ConnzReply>(&m.payload)) {
                Ok(Ok(ConnzReply {
                    data: Some(mut d), ..
                })) if pages < MAX_PAGES && !d.connections.is_empty() => {
                    conns.append(&mut d.connections);
                    pages += 1;
                }
                _ => complete = false,
            }
        }
        events.extend(tracker.connz(&server, &conns, complete, now_ms()));
    }
    events
}

#[cfg(test)]
#[path = "nats_tests.rs"]
mod tests;
