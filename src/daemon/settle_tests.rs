//! The settle and verdict rules in-process (fake broker, paused clock): which outcome lets a
//! report's traffic settle, how long a report waits, late verdicts, `backend = auto|none`.
//! The same meanings as tests/it/daemon/traffic.rs, run.rs and report_id.rs, without waiting.

use std::time::Duration;

use super::fake_broker::Reply;
use super::rig::{Rig, cycle};

const VERDICTS: &str = "interval_secs = 60\nverdict_timeout_secs = 10\nbackend = \"verdicts\"";

/// Cycles at `bytes_in` counters each; the bytes_in of every report the broker received.
async fn run(rig: &Rig, counters: &[u64]) -> Vec<Option<u64>> {
    let mut agent = rig.agent();
    for &c in counters {
        rig.counters(c);
        cycle(&mut agent, rig.interval()).await;
    }
    rig.broker.reports().iter().map(|r| r.bytes_in()).collect()
}

#[tokio::test(start_paused = true)]
async fn an_accepted_report_settles_its_traffic_and_the_next_counts_only_what_is_new() {
    let rig = Rig::new(VERDICTS);
    let got = run(&rig, &[1_000, 1_500, 1_700]).await;
    assert_eq!(got[1..], [Some(500), Some(200)]);
    // An accepted report does not wait out its verdict timeout.
    assert!(rig.broker.reports().iter().all(|r| r.took.is_zero()));
}

#[tokio::test(start_paused = true)]
async fn a_rejected_report_is_not_retried_and_its_traffic_rolls_into_the_next_slot() {
    let rig = Rig::new(VERDICTS);
    let mut agent = rig.agent();
    rig.counters(1_000);
    cycle(&mut agent, rig.interval()).await;
    rig.broker.script(&[Reply::Reject("Throttled")]);
    rig.counters(1_500);
    let started = tokio::time::Instant::now();
    cycle(&mut agent, rig.interval()).await;
    // Throttled: the cycle ends at once with one publish, never a retry (protocol doc §4, §10).
    assert_eq!(started.elapsed(), Duration::ZERO);
    assert_eq!(rig.broker.reports().len(), 2);
    assert!(
        agent.last_verdict.ends_with("rejected: Throttled"),
        "{}",
        agent.last_verdict
    );
    // The next slot's report carries both slots' traffic, under a new report id.
    rig.counters(1_800);
    cycle(&mut agent, rig.interval()).await;
    let r = rig.broker.reports();
    assert_eq!(r.len(), 3);
    assert_eq!(r[2].bytes_in(), Some(800));
    let id = |i: usize| r[i].report["header"]["report_id"].as_u64().unwrap();
    assert!(id(2) > id(1) && id(1) > id(0));
}

#[tokio::test(start_paused = true)]
async fn no_verdict_by_the_timeout_rolls_the_traffic_and_the_wait_ends_before_the_next_slot() {
    let rig = Rig::new(VERDICTS);
    rig.broker.script(&[Reply::Accept, Reply::Silent]);
    let got = run(&rig, &[1_000, 1_500, 1_600]).await;
    let r = rig.broker.reports();
    // verdict_timeout_secs, waited in full (the interval is far longer).
    assert_eq!(
        (r[1].wait, r[1].took),
        (Duration::from_secs(10), Duration::from_secs(10))
    );
    assert_eq!(
        got[2],
        Some(600),
        "a PUBACK without a verdict settles nothing"
    );

    // Issue #12: interval 2 s, timeout 10 s: the wait ends slot_guard before the next slot.
    let rig = Rig::new("interval_secs = 2\nverdict_timeout_secs = 10\nbackend = \"verdicts\"");
    rig.broker.script(&[Reply::Silent]);
    run(&rig, &[1_000]).await;
    assert_eq!(rig.broker.reports()[0].took, Duration::from_millis(1_800));
}

#[tokio::test(start_paused = true)]
async fn a_verdict_after_the_wait_settles_its_report_as_late_before_the_next_sample() {
    let rig = Rig::new(VERDICTS);
    rig.broker.script(&[Reply::Accept, Reply::AcceptLate]);
    let mut agent = rig.agent();
    for c in [1_000, 1_500] {
        rig.counters(c);
        cycle(&mut agent, rig.interval()).await;
    }
    assert!(
        agent.last_verdict.ends_with("no verdict"),
        "{}",
        agent.last_verdict
    );
    rig.counters(1_600);
    cycle(&mut agent, rig.interval()).await;
    // Settled by the late "accepted": the next report does not count its 500 bytes again.
    assert_eq!(rig.broker.reports()[2].bytes_in(), Some(100));
    // A late "rejected" settles nothing: its traffic rolls into the next report.
    rig.broker.script(&[Reply::RejectLate]);
    for c in [1_700, 1_800] {
        rig.counters(c);
        cycle(&mut agent, rig.interval()).await;
    }
    assert_eq!(rig.broker.reports()[4].bytes_in(), Some(200));
}

#[tokio::test(start_paused = true)]
async fn an_undelivered_report_waits_for_the_broker_then_rolls_its_traffic() {
    let rig = Rig::new(VERDICTS);
    let mut agent = rig.agent();
    rig.counters(1_000);
    cycle(&mut agent, rig.interval()).await;
    rig.broker.up(false);
    rig.counters(1_500);
    let started = tokio::time::Instant::now();
    cycle(&mut agent, rig.interval()).await;
    assert_eq!(started.elapsed(), Duration::from_secs(10));
    assert!(
        agent.last_verdict.ends_with("not delivered"),
        "{}",
        agent.last_verdict
    );
    rig.broker.up(true);
    rig.counters(1_600);
    cycle(&mut agent, rig.interval()).await;
    let r = rig.broker.reports();
    assert_eq!(
        r.len(),
        2,
        "the undelivered report never reached the broker"
    );
    assert_eq!(r[1].bytes_in(), Some(600));
}

#[tokio::test(start_paused = true)]
async fn auto_settles_on_a_puback_until_a_verdict_is_heard_and_remembers_it_across_a_restart() {
    let rig = Rig::new("interval_secs = 60\nverdict_timeout_secs = 10\nbackend = \"auto\"");
    rig.broker.script(&[Reply::Silent; 3]);
    // No backend has answered: a PUBACK settles.
    assert_eq!(
        run(&rig, &[1_000, 1_500, 1_700]).await[1..],
        [Some(500), Some(200)]
    );
    // One verdict heard (accepted), then silence: a PUBACK no longer settles.
    rig.broker
        .script(&[Reply::Accept, Reply::Silent, Reply::Accept]);
    let got = run(&rig, &[1_800, 1_900, 2_000]).await;
    assert_eq!(got[4..], [Some(100), Some(200)]);
    // A restart on the same state directory remembers that the backend answers.
    rig.broker.script(&[Reply::Silent, Reply::Silent]);
    let got = run(&rig, &[2_500, 2_600]).await;
    assert_eq!(got[7], Some(600));
}

#[tokio::test(start_paused = true)]
async fn none_settles_on_every_puback_even_after_a_verdict() {
    let rig = Rig::new("interval_secs = 60\nverdict_timeout_secs = 10\nbackend = \"none\"");
    rig.broker
        .script(&[Reply::Silent, Reply::Accept, Reply::Silent, Reply::Silent]);
    let got = run(&rig, &[1_000, 1_500, 1_700, 2_000]).await;
    assert_eq!(got[1..], [Some(500), Some(200), Some(300)]);
}

#[tokio::test(start_paused = true)]
async fn a_reload_carries_the_unsettled_reports_so_a_late_verdict_still_settles() {
    let rig = Rig::new(VERDICTS);
    rig.broker.script(&[Reply::Accept, Reply::AcceptLate]);
    let mut agent = rig.agent();
    for c in [1_000, 1_500] {
        rig.counters(c);
        cycle(&mut agent, rig.interval()).await;
    }
    let mut agent = rig.reload(agent);
    rig.counters(1_600);
    cycle(&mut agent, rig.interval()).await;
    assert_eq!(rig.broker.reports()[2].bytes_in(), Some(100));
    assert!(
        agent.last_verdict.ends_with("accepted"),
        "{}",
        agent.last_verdict
    );
}
