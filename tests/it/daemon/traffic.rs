//! `detect-agent run` traffic accounting end to end: no byte lost and none counted twice
//! across broker outages, rejections, missed and late verdicts, restarts and a state
//! directory that takes no writes. Real binary, real mosquitto, strict backend.
use std::time::Duration;

use detect_testkit::agent::{
    COUNT_LOOPBACK, Setup, accepted_for, bytes_in_of_accepted, config, first_stats_after,
    last_report_id, loopback_traffic, set_verdict_timeout, spawn,
};
use detect_testkit::{Backend, Broker, Mode, Pki, eventually};

#[tokio::test]
async fn outages_rejections_and_missed_verdicts_roll_traffic_into_the_next_accepted_report() {
    const OUTAGE_BYTES: usize = 8 * 1024 * 1024;
    const REJECTED_BYTES: usize = 4 * 1024 * 1024;
    const SILENT_BYTES: usize = 5 * 1024 * 1024;
    let pki = Pki::generate();
    let mut broker = Broker::start(&pki);
    let backend = Backend::start(&pki, broker.port).await;
    let work = tempfile::tempdir().unwrap();
    let cfg = config(&Setup {
        dir: work.path(),
        port: broker.port,
        ca: &pki.ca,
        id: &pki.client_rsa,
        format: "json",
        interval: 1,
        extra: COUNT_LOOPBACK,
    });
    let mut agent = spawn(&cfg, &[]);
    let thing = pki.client_rsa.name.clone();
    assert!(
        first_stats_after(&backend, &thing, false, 0, Duration::from_secs(30))
            .await
            .is_some(),
        "no accepted report with network_stats; log:\n{}",
        agent.log()
    );

    // Outage: the broker is down while traffic flows; reports are not delivered.
    broker.stop();
    let subs = backend.subscriptions();
    loopback_traffic(OUTAGE_BYTES).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        agent.alive(),
        "agent died during the outage; log:\n{}",
        agent.log()
    );
    let last_before = last_report_id(&backend);
    broker.start_again();
    backend.wait_subscribed(subs).await;
    let after = first_stats_after(
        &backend,
        &thing,
        false,
        last_before,
        Duration::from_secs(60),
    )
    .await
    .unwrap_or_else(|| {
        panic!(
            "no accepted report after the broker came back; log:\n{}",
            agent.log()
        )
    });
    assert!(
        after.1 >= OUTAGE_BYTES as u64,
        "first accepted report after the outage has bytes_in {} < {OUTAGE_BYTES}; log:\n{}",
        after.1,
        agent.log()
    );

    // Rejections (Throttled): the agent carries on; the traffic shows up once accepted.
    backend.set_mode(Mode::Reject {
        code: "Throttled".into(),
        message: "too fast".into(),
        with_report_id: false,
    });
    let n = backend.received().len();
    assert!(eventually(Duration::from_secs(20), || backend.received().len() > n).await);
    loopback_traffic(REJECTED_BYTES).await;
    let n = backend.received().len();
    assert!(
        eventually(Duration::from_secs(20), || backend.received().len()
            >= n + 2)
        .await
    );
    let last_rejected = last_report_id(&backend);
    backend.set_mode(Mode::Validate);
    let first_ok = first_stats_after(
        &backend,
        &thing,
        false,
        last_rejected,
        Duration::from_secs(20),
    )
    .await
    .expect("no accepted report after the rejections stopped");
    assert!(
        first_ok.1 >= REJECTED_BYTES as u64,
        "accepted report after rejections has bytes_in {} < {REJECTED_BYTES}",
        first_ok.1
    );

    // The backend misses a report (as when it reconnects after a broker restart later than
    // the agent): the broker acks it but no verdict comes, so its traffic is not settled.
    backend.set_mode(Mode::Silent);
    loopback_traffic(SILENT_BYTES).await;
    let n = backend.received().len();
    assert!(eventually(Duration::from_secs(20), || backend.received().len() > n).await);
    let last_silent = last_report_id(&backend);
    backend.set_mode(Mode::Validate);
    let after_silence = first_stats_after(
        &backend,
        &thing,
        false,
        last_silent,
        Duration::from_secs(20),
    )
    .await
    .expect("no accepted report after the backend answered again");
    let log = agent.log();
    assert!(
        after_silence.1 >= SILENT_BYTES as u64,
        "accepted report after a verdict-less ack has bytes_in {} < {SILENT_BYTES}; log:\n{log}",
        after_silence.1
    );
    assert!(log.contains("Throttled"), "rejection not logged:\n{log}");
    let (status, _) = agent.stop().await;
    assert!(status.success());
}

#[tokio::test]
async fn traffic_while_the_agent_is_stopped_is_in_the_first_report_after_restart() {
    const STOPPED_BYTES: usize = 6 * 1024 * 1024;
    let pki = Pki::generate();
    let broker = Broker::start(&pki);
    let backend = Backend::start(&pki, broker.port).await;
    let work = tempfile::tempdir().unwrap();
    let cfg = config(&Setup {
        dir: work.path(),
        port: broker.port,
        ca: &pki.ca,
        id: &pki.client_ec,
        format: "cbor-short",
        interval: 1,
        extra: COUNT_LOOPBACK,
    });
    let thing = pki.client_ec.name.clone();
    let agent = spawn(&cfg, &[]);
    assert!(
        first_stats_after(&backend, &thing, true, 0, Duration::from_secs(30))
            .await
            .is_some(),
        "no accepted report with network_stats; log:\n{}",
        agent.log()
    );
    let (status, _) = agent.stop().await;
    assert!(status.success());
    let last_before = last_report_id(&backend);

    loopback_traffic(STOPPED_BYTES).await;

    let agent = spawn(&cfg, &[]);
    assert!(
        first_stats_after(&backend, &thing, true, last_before, Duration::from_secs(30))
            .await
            .is_some(),
        "no accepted report after the restart; log:\n{}",
        agent.log()
    );
    // The very first accepted report after the restart carries the delta (the baseline was
    // on disk), not only a later one.
    let got = backend.received();
    let first_id = accepted_for(&got, &thing)
        .iter()
        .filter_map(|r| r.report_id)
        .filter(|id| *id > last_before)
        .min()
        .unwrap();
    let first = bytes_in_of_accepted(&got, &thing, true)
        .into_iter()
        .find(|(id, _)| *id == first_id)
        .expect("first report after the restart has no network_stats");
    assert!(
        first.1 >= STOPPED_BYTES as u64,
        "first report after the restart has bytes_in {} < {STOPPED_BYTES}",
        first.1
    );
    let (status, _) = agent.stop().await;
    assert!(status.success());
}

/// A state directory that takes no writes (a full or read-only disk) costs persistence, not
/// the reports: they are still published with rising ids, and the failure is logged.
#[tokio::test]
async fn reports_go_on_when_the_state_dir_takes_no_writes() {
    let pki = Pki::generate();
    let broker = Broker::start(&pki);
    let backend = Backend::start(&pki, broker.port).await;
    let work = tempfile::tempdir().unwrap();
    let state = work.path().join("state");
    // A directory where the report id's atomic write puts its temp file: that write fails,
    // even as root. (The baseline is rewritten in place; traffic_netns.rs makes the
    // whole directory read-only.)
    std::fs::create_dir_all(state.join(".report_id.tmp")).unwrap();
    let cfg = config(&Setup {
        dir: work.path(),
        port: broker.port,
        ca: &pki.ca,
        id: &pki.client_ec,
        format: "json-short",
        interval: 1,
        extra: "",
    });
    let agent = spawn(&cfg, &[]);
    let thing = pki.client_ec.name.clone();
    let ok = eventually(Duration::from_secs(30), || {
        accepted_for(&backend.received(), &thing).len() >= 2
    })
    .await;
    let log = agent.log();
    let (status, _) = agent.stop().await;
    assert!(ok, "no two accepted reports; log:\n{log}");
    assert!(status.success());
    assert!(log.contains("cannot persist the report id"), "{log}");
    let got = backend.received();
    let ids: Vec<u64> = accepted_for(&got, &thing)
        .iter()
        .filter_map(|r| r.report_id)
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    assert!(!state.join("report_id").exists());
}

/// A verdict that comes after the agent stopped waiting for it (but before the next report)
/// still settles that report: its traffic is not counted again in the next one.
#[tokio::test]
async fn a_late_acceptance_settles_its_report_before_the_next_one() {
    // Far above what the other tests of this file send over lo at the same time (< 24 MiB).
    const LATE_BYTES: usize = 64 * 1024 * 1024;
    let pki = Pki::generate();
    let broker = Broker::start(&pki);
    let backend = Backend::start(&pki, broker.port).await;
    let work = tempfile::tempdir().unwrap();
    let cfg = config(&Setup {
        dir: work.path(),
        port: broker.port,
        ca: &pki.ca,
        id: &pki.client_sec1,
        format: "cbor",
        interval: 8,
        extra: COUNT_LOOPBACK,
    });
    // Timeline per slot: publish at 0, the wait ends at 2 s, the late verdict comes at 4 s,
    // the next slot is at 8 s.
    set_verdict_timeout(&cfg, 2);
    let agent = spawn(&cfg, &[]);
    let thing = pki.client_sec1.name.clone();
    assert!(
        first_stats_after(&backend, &thing, false, 0, Duration::from_secs(40))
            .await
            .is_some(),
        "no accepted report with network_stats; log:\n{}",
        agent.log()
    );
    backend.set_mode(Mode::Late(Duration::from_secs(4)));
    let before = last_report_id(&backend);
    loopback_traffic(LATE_BYTES).await;
    let late = first_stats_after(&backend, &thing, false, before, Duration::from_secs(20))
        .await
        .expect("no report after the traffic");
    backend.set_mode(Mode::Validate);
    let next = first_stats_after(&backend, &thing, false, late.0, Duration::from_secs(30))
        .await
        .expect("no report after the late one");
    let log = agent.log();
    let (status, _) = agent.stop().await;
    assert!(status.success());
    assert!(
        late.1 >= LATE_BYTES as u64,
        "late-accepted report has bytes_in {} < {LATE_BYTES}; log:\n{log}",
        late.1
    );
    assert!(
        next.1 < LATE_BYTES as u64,
        "the report after a late acceptance counted its traffic again ({} bytes); log:\n{log}",
        next.1
    );
    assert!(log.contains("late verdict"), "{log}");
}
