//! `detect-agent run` against brokers set up unlike AWS IoT (issue #12): mosquitto with a
//! `password_file`, with and without a client certificate; a wrong password; and a plain
//! broker where no backend ever answers, at `interval_secs = 2`. Real binary, real mosquitto.
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use detect_testkit::agent::{
    Setup, accepted_for, config, set_verdict_timeout, spawn, use_password,
};
use detect_testkit::broker::{Login, USERS};
use detect_testkit::{Backend, Broker, Mode, Pki, eventually};

/// The agent's config for `thing-ec` (the first of `USERS`) on the broker at `port`, logging
/// in with `password`, and with its client certificate as well when `keep_cert`.
fn password_config(dir: &Path, port: u16, pki: &Pki, password: &str, keep_cert: bool) -> PathBuf {
    let cfg = config(&Setup::plain(dir, port, &pki.ca, &pki.client_ec, "cbor", 1));
    use_password(&cfg, USERS[0].0, password, keep_cert);
    cfg
}

#[tokio::test]
async fn a_password_login_gets_reports_accepted_with_and_without_a_client_certificate() {
    let pki = Pki::generate();
    let (thing_user, thing_password) = USERS[0];
    let backend_login = Some(USERS[1]);
    assert_eq!(thing_user, pki.client_ec.name);
    for (login, keep_cert) in [
        (Login::Password, false),
        (Login::PasswordAndCertificate, true),
    ] {
        let broker = Broker::start_with(&pki, login);
        let backend = Backend::start_with(&pki, broker.port, backend_login).await;
        let work = tempfile::tempdir().unwrap();
        let cfg = password_config(work.path(), broker.port, &pki, thing_password, keep_cert);
        let text = std::fs::read_to_string(&cfg).unwrap();
        assert_eq!(text.contains("cert_file"), keep_cert, "{text}");
        let agent = spawn(&cfg, &[]);
        let ok = eventually(Duration::from_secs(30), || {
            accepted_for(&backend.received(), thing_user).len() >= 2
        })
        .await;
        let log = agent.log();
        let (status, _) = agent.stop().await;
        assert!(
            ok,
            "{login:?}: no two accepted reports\nagent:\n{log}\nbroker:\n{}",
            broker.log()
        );
        assert!(status.success(), "{login:?}: exit {status:?}");
        assert!(
            !log.contains(thing_password),
            "{login:?}: password logged\n{log}"
        );
        // The broker saw a password login by that user (not an anonymous or cert-name one).
        let blog = broker.log();
        assert!(
            blog.contains(&format!("u'{thing_user}'")),
            "{login:?}: {blog}"
        );
    }
}

#[tokio::test]
async fn a_wrong_password_gives_one_clear_error_per_attempt_backs_off_and_never_crashes() {
    let pki = Pki::generate();
    let broker = Broker::start_with(&pki, Login::Password);
    let work = tempfile::tempdir().unwrap();
    let wrong = "not-the-password";
    let cfg = password_config(work.path(), broker.port, &pki, wrong, false);
    let mut agent = spawn(&cfg, &[]);
    let t0 = Instant::now();
    let seen = eventually(Duration::from_secs(30), || {
        agent.log().matches("MQTT connection failed").count() >= 3
    })
    .await;
    let took = t0.elapsed();
    let log = agent.log();
    assert!(seen, "no three failed attempts in 30 s:\n{log}");
    assert!(agent.alive(), "agent died:\n{log}");
    assert!(!log.contains("panicked"), "{log}");
    assert!(!log.contains(wrong), "password logged:\n{log}");
    // One line per attempt, and that line says what the broker refused.
    let failures: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("MQTT connection failed"))
        .collect();
    for line in &failures {
        assert!(
            line.contains("CONNACK refused: not authorized")
                || line.contains("CONNACK refused: bad user name or password"),
            "unclear error line: {line}"
        );
        assert!(line.contains("password_file"), "no hint: {line}");
    }
    // Nothing else repeats it, except a report that could not go out quoting the state.
    let mut others = log
        .lines()
        .filter(|l| l.contains("CONNACK refused") && !l.contains("MQTT connection failed"));
    assert!(others.all(|l| l.contains("report not delivered")), "{log}");
    // Backoff: attempts counted up, each waiting at least the 1 s initial delay.
    for (i, line) in failures.iter().take(3).enumerate() {
        assert!(line.contains(&format!("attempt={}", i + 1)), "{line}");
        let retry_ms: u64 = line
            .split("retry_in_ms=")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no retry_in_ms: {line}"));
        assert!(retry_ms >= 1000, "{line}");
    }
    assert!(took >= Duration::from_secs(2), "three attempts in {took:?}");
    let (status, took) = agent.stop().await;
    assert!(status.success(), "exit {status:?}");
    assert!(took < Duration::from_secs(5), "SIGTERM took {took:?}");
}

#[tokio::test]
async fn a_plain_broker_without_a_backend_gets_a_report_on_every_2_s_slot() {
    let pki = Pki::generate();
    let broker = Broker::start(&pki);
    // Records every report on the broker, never answers: a plain broker with a subscriber.
    let backend = Backend::start(&pki, broker.port).await;
    backend.set_mode(Mode::Silent);
    let work = tempfile::tempdir().unwrap();
    let cfg = config(&Setup::plain(
        work.path(),
        broker.port,
        &pki.ca,
        &pki.client_rsa,
        "json",
        2,
    ));
    // The setting: a 10 s verdict wait used to hold every slot for 10 s.
    set_verdict_timeout(&cfg, 10);
    let agent = spawn(&cfg, &[]);
    let ids = || -> BTreeSet<u64> {
        backend
            .received()
            .iter()
            .filter(|r| r.thing == pki.client_rsa.name)
            .filter_map(|r| r.report_id)
            .collect()
    };
    assert!(
        eventually(Duration::from_secs(20), || !ids().is_empty()).await,
        "no first report:\n{}",
        agent.log()
    );
    let before = ids().len();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let during = ids().len() - before;
    let log = agent.log();
    let (status, _) = agent.stop().await;
    assert!(status.success(), "exit {status:?}");
    // Five slots in 10 s; at least four distinct reports (12 s apart before issue #12).
    assert!(during >= 4, "{during} reports in 10 s:\n{log}");
    assert!(log.contains("not well below"), "no startup warning:\n{log}");
}
