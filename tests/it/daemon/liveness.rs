//! `detect-agent run` under a fake systemd notify socket: the watchdog is fed through long
//! waits, a refused reload shows in STATUS=, the last verdict survives a reload, and a
//! baseline with nothing to count is not rewritten every cycle.
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use detect_testkit::agent::{Setup, config, set_verdict_timeout, spawn};
use detect_testkit::notify::NotifySocket;
use detect_testkit::{Backend, Broker, Pki, eventually};

/// A JSON config for `pki.client_ec`, one report a second, with `extra` lines.
fn json_config(pki: &Pki, dir: &Path, port: u16, extra: &str) -> PathBuf {
    config(&Setup {
        dir,
        port,
        ca: &pki.ca,
        id: &pki.client_ec,
        format: "json",
        interval: 1,
        extra,
    })
}

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
    let cfg = json_config(&pki, work.path(), closed_port(), "");
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

#[tokio::test]
async fn a_refused_reload_shows_in_status_and_a_taken_one_keeps_the_last_verdict() {
    let pki = Pki::generate();
    let broker = Broker::start(&pki);
    let _backend = Backend::start(&pki, broker.port).await;
    let work = tempfile::tempdir().unwrap();
    let notify = NotifySocket::bind(work.path());
    let cfg = json_config(&pki, work.path(), broker.port, "");
    let agent = spawn(&cfg, &[("NOTIFY_SOCKET", notify.path.to_str().unwrap())]);
    let accepted = || notify.last_status().is_some_and(|s| s.contains("accepted"));
    assert!(
        eventually(Duration::from_secs(20), accepted).await,
        "{:?}; log:\n{}",
        notify.messages(),
        agent.log()
    );

    // A config the agent refuses: STATUS= says so (systemctl reload itself succeeds).
    let good = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, format!("{good}\nbogus_key = 1\n")).unwrap();
    agent.signal(libc::SIGHUP);
    assert!(
        eventually(Duration::from_secs(10), || notify
            .last_status()
            .is_some_and(
                |s| s.contains("reload refused") && s.contains("bogus_key")
            ))
        .await,
        "{:?}",
        notify.messages()
    );
    // It stays there through later cycles.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let status = notify.last_status().unwrap();
    assert!(status.contains("reload refused"), "{status}");

    // A config it takes: the refusal goes, the last verdict stays from the first STATUS= on.
    std::fs::write(&cfg, &good).unwrap();
    let seen = notify.messages().len();
    agent.signal(libc::SIGHUP);
    assert!(
        eventually(Duration::from_secs(10), || notify.messages()[seen..]
            .iter()
            .any(|m| m == "READY=1"))
        .await,
        "{:?}",
        notify.messages()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after: Vec<String> = notify.messages()[seen..]
        .iter()
        .filter(|m| m.starts_with("STATUS="))
        .cloned()
        .collect();
    assert!(!after.is_empty(), "{:?}", notify.messages());
    for s in &after {
        assert!(
            s.contains("last verdict: report") && !s.contains("reload refused"),
            "{after:?}"
        );
    }
    let (status, _) = agent.stop().await;
    assert!(status.success());
}

#[tokio::test]
async fn a_baseline_with_no_counted_interface_is_written_once() {
    let pki = Pki::generate();
    let broker = Broker::start(&pki);
    let backend = Backend::start(&pki, broker.port).await;
    let work = tempfile::tempdir().unwrap();
    let cfg = json_config(
        &pki,
        work.path(),
        broker.port,
        "[collect]\ninclude_interfaces = [\"none-such0\"]\n",
    );
    let agent = spawn(&cfg, &[]);
    let baseline = work.path().join("state/baseline.slots");
    assert!(
        eventually(Duration::from_secs(20), || backend.received().len() >= 2).await,
        "{}",
        agent.log()
    );
    let first = std::fs::metadata(&baseline).unwrap().modified().unwrap();
    let n = backend.received().len();
    assert!(
        eventually(Duration::from_secs(20), || backend.received().len()
            >= n + 3)
        .await
    );
    let later = std::fs::metadata(&baseline).unwrap().modified().unwrap();
    let log = agent.log();
    assert_eq!(first, later, "baseline rewritten; log:\n{log}");
    assert!(
        log.matches("counter baseline restarted").count() <= 1,
        "{log}"
    );
    let (status, _) = agent.stop().await;
    assert!(status.success());
}
