//! `detect-agent run` under a fake systemd notify socket: the watchdog is fed through long
//! waits, a refused reload shows in STATUS=, the last verdict survives a reload, and a
//! baseline with nothing to count is not rewritten every cycle.
mod common;

use std::time::{Duration, Instant};

use common::agent::{Setup, config, set_verdict_timeout, spawn};
use common::notify::NotifySocket;
use common::{Backend, Broker, Pki, eventually};

/// A loopback port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test]
async fn the_watchdog_is_fed_while_a_cycle_waits_for_a_broker_that_is_down() {
    let pki = Pki::generate();
    let work = tempfile::tempdir().unwrap();
    let notify = NotifySocket::bind(work.path());
    let cfg = config(&Setup {
        dir: work.path(),
        port: closed_port(),
        ca: &pki.ca,
        id: &pki.client_ec,
        format: "json",
        interval: 1,
        extra: "",
    });
    // Each cycle waits 6 s for a connection that never comes: longer than WATCHDOG_USEC.
    set_verdict_timeout(&cfg, 6);
    let mut agent = spawn(
        &cfg,
        &[
            ("NOTIFY_SOCKET", notify.path.to_str().unwrap()),
            ("WATCHDOG_USEC", "1000000"),
        ],
    );
    assert!(
        eventually(Duration::from_secs(10), || notify
            .messages()
            .contains(&"READY=1".to_string()))
        .await
    );
    let from = Instant::now();
    tokio::time::sleep(Duration::from_secs(14)).await;
    assert!(agent.alive(), "{}", agent.log());
    let pings: Vec<Instant> = notify
        .timed()
        .into_iter()
        .filter(|(t, m)| m == "WATCHDOG=1" && *t >= from)
        .map(|(t, _)| t)
        .collect();
    let log = agent.log();
    assert!(
        log.contains("not connected within"),
        "the cycles did not wait on the broker; log:\n{log}"
    );
    // systemd kills at WATCHDOG_USEC without a ping: every gap must stay below it.
    let mut last = from;
    for t in &pings {
        let gap = t.duration_since(last);
        assert!(
            gap < Duration::from_millis(900),
            "{gap:?} without WATCHDOG=1 ({} pings); log:\n{log}",
            pings.len()
        );
        last = *t;
    }
    assert!(pings.len() >= 20, "{} pings in 14 s", pings.len());
}
