//! Cluster mode's failures end to end (issue #20, "Done when" bullet 1): three nats-server
//! (replicas 3), mosquitto with persistence, three detect-fleet instances with one config and
//! a few hundred simulated devices, through `kill -9` of an instance, SIGSTOP of one for 30 s,
//! a mosquitto restart, and `kill -9` of the nats-server leading the records bucket's stream
//! (then started again: it must catch up as a replica).
//!
//! After each: every injected compromise raised exactly one `in-alarm` and its clear (over
//! MQTT and in `violations`), every report sent got an answer (the same bytes if several), and
//! every device was served again within 15 s; the times are printed (`-- --nocapture`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use detect_testkit::alarms::Alarms;
use detect_testkit::broker::{Broker, Login};
use detect_testkit::certs::Pki;
use detect_testkit::eventually;
use detect_testkit::fleet::{Fleet, forbid_port, logs};
use detect_testkit::nats_cluster::{NatsCluster, pause};

use super::cluster_devices::{Devices, name};

const DEVICES: usize = 200;
/// Between two rounds of reports (`min_interval_secs` is 1).
const ROUND: Duration = Duration::from_millis(2000);

/// A round of reports every ROUND until every device was answered to a report sent after
/// `since` (or `limit` passed); the time that took.
async fn until_served(devices: &mut Devices, since: Instant, limit: Duration) -> Option<Duration> {
    loop {
        devices.round(&[]).await;
        let next = Instant::now() + ROUND;
        let served = || devices.served_after(since).is_some();
        eventually(next.saturating_duration_since(Instant::now()), served).await;
        tokio::time::sleep_until(next.into()).await;
        if let Some(t) = devices.served_after(since) {
            return Some(t);
        }
        if since.elapsed() > limit {
            return None;
        }
    }
}

/// Sends the compromised round for `bad` and waits until their in-alarm was notified.
async fn compromise(devices: &mut Devices, alarms: &Alarms, bad: &[usize], fleets: &[Fleet]) {
    devices.round(bad).await;
    let raised = || {
        let things: BTreeSet<String> = alarms
            .of_type("in-alarm")
            .iter()
            .filter_map(|v| v["thingName"].as_str().map(str::to_string))
            .collect();
        bad.iter().all(|&i| things.contains(&name(i)))
    };
    let ok = eventually(Duration::from_secs(30), raised).await;
    assert!(
        ok,
        "in-alarm for {bad:?}: {:?}\n{}",
        alarms.received(),
        logs(fleets)
    );
    tokio::time::sleep(ROUND).await;
}

/// Every compromised device so far: one violation, notified as exactly one in-alarm and one
/// clear (the same transition sent again counts once), recorded once, none active; every
/// report answered.
async fn check(phase: &str, devices: &Devices, alarms: &Alarms, fleets: &[Fleet], bad: &[usize]) {
    let transitions = || {
        let mut by_id: BTreeMap<String, (String, Vec<String>)> = BTreeMap::new();
        for (_, v) in alarms.received() {
            let id = v["violationId"].as_str().unwrap_or("?").to_string();
            let thing = v["thingName"].as_str().unwrap_or("?").to_string();
            let kind = v["violationEventType"].as_str().unwrap_or("?").to_string();
            let seen = &mut by_id.entry(id).or_insert((thing, Vec::new())).1;
            if !seen.contains(&kind) {
                seen.push(kind);
            }
        }
        by_id
    };
    let settled = || {
        let t = transitions();
        t.len() == bad.len() && t.values().all(|(_, k)| k.len() == 2)
    };
    let ok = eventually(Duration::from_secs(30), settled).await;
    let t = transitions();
    assert!(
        ok,
        "{phase}: {} violations, each in-alarm and clear: {t:#?}\n{}",
        bad.len(),
        logs(fleets)
    );
    let things: BTreeSet<&str> = t.values().map(|(thing, _)| thing.as_str()).collect();
    let want: BTreeSet<String> = bad.iter().map(|&i| name(i)).collect();
    assert_eq!(
        things,
        want.iter().map(String::as_str).collect(),
        "{phase}: {t:#?}"
    );
    for (thing, kinds) in t.values() {
        assert_eq!(
            kinds,
            &["in-alarm", "alarm-cleared"],
            "{phase}: {thing}: {t:#?}"
        );
    }
    let live = fleets
        .iter()
        .find(|f| f.pid().is_some())
        .expect("a live instance");
    let recorded = live.violations(&[]);
    assert_eq!(recorded.len(), bad.len(), "{phase}: {recorded:#?}");
    assert!(live.violations(&["--active"]).is_empty(), "{phase}");
    match devices.check_answers(Duration::from_secs(30)).await {
        Ok(c) => println!(
            "{phase}: {} reports so far, each answered ({} answers sent again, {} after a newer report)",
            c.sent, c.again, c.late
        ),
        Err(e) => panic!("{phase}: {e}\n{}", logs(fleets)),
    }
}

#[tokio::test]
async fn three_instances_answer_every_report_through_each_failure() {
    let started = Instant::now();
    let pki = Pki::generate();
    let work = tempfile::tempdir().unwrap();
    let keep = work.path().join("mosquitto");
    std::fs::create_dir_all(&keep).unwrap();
    let lines = format!(
        "persistence true\npersistence_location {}/\n",
        keep.display()
    );
    let mut broker = Broker::start_with_lines(&pki, Login::Certificate, &lines);
    let mut nats = NatsCluster::start(work.path());
    let alarms = Alarms::start(&pki, broker.port, "detect-fleet/alarms/+").await;
    let profiles = [forbid_port("no-ssh", 22)];
    let attach = [("no-ssh", "all-things")];
    let names = ["a", "b", "c"];
    let mut fleets = nats.fleets(work.path(), &pki, &broker, &names, &profiles, &attach);
    for f in &mut fleets {
        f.start_subscribed().await;
    }
    let mut devices = Devices::start(&pki, broker.port, DEVICES).await;
    let since = Instant::now();
    let up = until_served(&mut devices, since, Duration::from_secs(40)).await;
    assert!(
        up.is_some(),
        "not every device answered at start\n{}",
        logs(&fleets)
    );
    let claimed = |f: &Fleet| f.log().contains(": Claimed");
    let all_own = eventually(Duration::from_secs(20), || fleets.iter().all(claimed)).await;
    assert!(all_own, "each instance owns partitions\n{}", logs(&fleets));
    let mut bad: Vec<usize> = Vec::new();

    // 1. kill -9 of instance a between two compromised devices' alarm and clear.
    compromise(&mut devices, &alarms, &[3, 101], &fleets).await;
    bad.extend([3, 101]);
    fleets[0].kill9();
    let t = until_served(&mut devices, Instant::now(), Duration::from_secs(15)).await;
    let t = t.unwrap_or_else(|| panic!("kill -9: not served within 15 s\n{}", logs(&fleets)));
    println!(
        "kill -9 of an instance: every device answered again {:.1} s after",
        t.as_secs_f64()
    );
    check("kill -9", &devices, &alarms, &fleets, &bad).await;
    fleets[0].start_subscribed().await;

    // 2. SIGSTOP of instance b for 30 s, then SIGCONT: it judges nothing it no longer owns.
    compromise(&mut devices, &alarms, &[17, 150], &fleets).await;
    bad.extend([17, 150]);
    let b = fleets[1].pid().unwrap();
    pause(b, true);
    let stopped = Instant::now();
    let t = until_served(&mut devices, stopped, Duration::from_secs(15)).await;
    while stopped.elapsed() < Duration::from_secs(30) {
        devices.round(&[]).await;
        tokio::time::sleep(ROUND).await;
    }
    pause(b, false);
    let t = t.unwrap_or_else(|| panic!("SIGSTOP: not served within 15 s\n{}", logs(&fleets)));
    println!(
        "SIGSTOP of an instance: every device answered again {:.1} s after",
        t.as_secs_f64()
    );
    let woke = Instant::now();
    until_served(&mut devices, woke, Duration::from_secs(20)).await;
    until_served(&mut devices, Instant::now(), Duration::from_secs(20)).await;
    check("SIGSTOP 30 s", &devices, &alarms, &fleets, &bad).await;

    // 3. mosquitto restarted (SIGTERM, same port; its persistence keeps the sessions).
    compromise(&mut devices, &alarms, &[77, 120], &fleets).await;
    bad.extend([77, 120]);
    // Nothing in flight: a device's clean session would miss an answer sent while it is away.
    if let Err(e) = devices.check_answers(Duration::from_secs(30)).await {
        panic!("before the broker restart: {e}\n{}", logs(&fleets));
    }
    let (seen, listening) = (devices.subscriptions(), alarms.subscriptions());
    broker.restart();
    let restarted = Instant::now();
    devices.wait_subscribed(seen).await;
    alarms.wait_subscribed(listening).await;
    let t = until_served(&mut devices, restarted, Duration::from_secs(30)).await;
    let t =
        t.unwrap_or_else(|| panic!("broker restart: not served within 30 s\n{}", logs(&fleets)));
    println!(
        "mosquitto restart: every device answered again {:.1} s after",
        t.as_secs_f64()
    );
    check("mosquitto restart", &devices, &alarms, &fleets, &bad).await;

    // 4. kill -9 of the nats-server leading the records bucket's stream (the hard case: every
    //    record write waits for the other two to elect a leader), then started again.
    compromise(&mut devices, &alarms, &[45, 190], &fleets).await;
    bad.extend([45, 190]);
    let records = "KV_detect-fleet-records";
    let known = || nats.stream_leader(records).is_some();
    eventually(Duration::from_secs(10), known).await;
    let leader = nats.stream_leader(records);
    let leader = leader.unwrap_or_else(|| panic!("no leader of {records} within 10 s"));
    let meta = if nats.meta_leader() == Some(leader) {
        ", also the meta leader"
    } else {
        ""
    };
    nats.kill(leader);
    let killed = Instant::now();
    let t = until_served(&mut devices, killed, Duration::from_secs(15)).await;
    let t = t.unwrap_or_else(|| {
        panic!(
            "nats-server kill -9: not served within 15 s\n{}",
            logs(&fleets)
        )
    });
    println!(
        "kill -9 of nats-server n{leader} (the records' stream leader{meta}): every device answered again {:.1} s after",
        t.as_secs_f64()
    );
    check("nats-server kill -9", &devices, &alarms, &fleets, &bad).await;

    // 5. The killed nats-server started again (same store) across an alarm: it rejoins.
    compromise(&mut devices, &alarms, &[60, 170], &fleets).await;
    bad.extend([60, 170]);
    nats.restart(leader);
    let current = || nats.replica_current(records, leader);
    let caught_up = eventually(Duration::from_secs(30), current).await;
    assert!(
        caught_up,
        "n{leader} not a current replica of {records} again\n{}",
        nats.log(leader)
    );
    let back = Instant::now();
    let t = until_served(&mut devices, back, Duration::from_secs(15)).await;
    let t = t.unwrap_or_else(|| panic!("nats-server restart: not served\n{}", logs(&fleets)));
    println!(
        "nats-server n{leader} restarted and current again: every device answered again {:.1} s after",
        t.as_secs_f64()
    );
    check("nats-server restarted", &devices, &alarms, &fleets, &bad).await;
    println!(
        "cluster failover test: {:.0} s in all",
        started.elapsed().as_secs_f64()
    );
}
