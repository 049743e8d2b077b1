//! Cluster mode of `detect-fleet run` end to end (issue #20 item 2): three nats-server (R3),
//! mosquitto, two detect-fleet instances with one config sharing ~50 devices' reports, one
//! injected compromise per phase raising one alarm and its clear, across `kill -9` of one
//! instance, `SIGSTOP` of the other for longer than a lease, a graceful stop (SIGTERM) that
//! hands the leases back, and one instance cut off from the broker (it steps aside).
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use detect_testkit::alarms::Alarms;
use detect_testkit::broker::Broker;
use detect_testkit::certs::Pki;
use detect_testkit::eventually;
use detect_testkit::fleet::{Fleet, forbid_port, logs};
use detect_testkit::nats_cluster::{NatsCluster, pause};
use detect_testkit::relay::Relay;
use rumqttc::{AsyncClient, QoS};

use super::answers::{Got, client};
use super::cluster_ownership::{lease_bucket, lease_history};
use super::cluster_store::report;

const THINGS: usize = 50;

/// Accepted answers received per thing.
fn answered(got: &Got) -> BTreeMap<String, usize> {
    let mut n = BTreeMap::new();
    for (topic, _) in got.lock().unwrap().iter() {
        if !topic.ends_with("/accepted") {
            continue;
        }
        if let Some(thing) = topic
            .strip_prefix("$aws/things/")
            .and_then(|t| t.split('/').next())
        {
            *n.entry(thing.to_string()).or_default() += 1;
        }
    }
    n
}

/// Publishes a report per thing (a fresh id each time; `bad` things listen on port 22) and
/// again, every 1.5 s, for those not answered yet (a report that reached no owner: a
/// partition changing hands), until each thing got an answer or `limit` passed.
async fn round(
    c: &AsyncClient,
    got: &Got,
    id: &mut u64,
    bad: &[usize],
    limit: Duration,
) -> Result<Duration, String> {
    let start = Instant::now();
    let before = answered(got);
    let count =
        |n: &BTreeMap<String, usize>, i: usize| n.get(&format!("dev-{i}")).copied().unwrap_or(0);
    let mut missing: Vec<usize> = (0..THINGS).collect();
    while !missing.is_empty() {
        if start.elapsed() > limit {
            return Err(format!(
                "report {id}: no answer within {limit:?} for dev-{missing:?}"
            ));
        }
        // Ids are send times, as agents use: kept reports judged together stay spaced by them.
        *id = (*id + 1).max(detect_testkit::now_ms());
        for &i in &missing {
            let ports: &[u16] = if bad.contains(&i) { &[22] } else { &[] };
            let topic = format!("$aws/things/dev-{i}/defender/metrics/json");
            c.publish(topic, QoS::AtLeastOnce, false, report(*id, ports))
                .await
                .unwrap();
        }
        let done = || {
            let n = answered(got);
            missing.iter().all(|&i| count(&n, i) > count(&before, i))
        };
        eventually(Duration::from_millis(1500), done).await;
        let n = answered(got);
        missing.retain(|&i| count(&n, i) <= count(&before, i));
    }
    Ok(start.elapsed())
}

#[tokio::test]
async fn two_instances_share_reports_across_a_kill_9_and_a_sigstop() {
    let pki = Pki::generate();
    let broker = Broker::start(&pki);
    let work = tempfile::tempdir().unwrap();
    let nats = NatsCluster::start(work.path());
    let alarms = Alarms::start(&pki, broker.port, "detect-fleet/alarms/+").await;
    let profiles = [forbid_port("no-ssh", 22)];
    let attach = [("no-ssh", "all-things")];
    let mut fleets = nats.fleets(work.path(), &pki, &broker, &["a", "b"], &profiles, &attach);
    let (ok, out, err) = fleets[0].cli(&["check-config"]);
    assert!(
        ok && out.contains("[cluster] enabled: instance \"a\""),
        "{out} {err}"
    );
    for f in &mut fleets {
        f.start_subscribed().await;
    }
    let (c, got) = client(&pki, broker.port).await;
    let mut id = 0;

    // Phase 1: both instances up; dev-7 and dev-31 compromised, then clean again.
    round(&c, &got, &mut id, &[], Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", logs(&fleets)));
    let judged = |f: &Fleet| f.log().contains(": Claimed");
    assert!(fleets.iter().all(judged), "both instances own partitions");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    round(&c, &got, &mut id, &[7, 31], Duration::from_secs(15))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", logs(&fleets)));
    let raised = || alarms.of_type("in-alarm").len() >= 2;
    assert!(
        eventually(Duration::from_secs(15), raised).await,
        "{:?}",
        alarms.received()
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    round(&c, &got, &mut id, &[], Duration::from_secs(15))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", logs(&fleets)));
    let cleared = || alarms.of_type("alarm-cleared").len() >= 2;
    assert!(
        eventually(Duration::from_secs(15), cleared).await,
        "{:?}",
        alarms.received()
    );

    // Phase 2: dev-12 and dev-44 compromised, instance a killed, the clears judged by b.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    round(&c, &got, &mut id, &[12, 44], Duration::from_secs(15))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", logs(&fleets)));
    fleets[0].kill9();
    let killed = Instant::now();
    // min_interval_secs = 1: a report sooner would be rejected as too frequent.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    round(&c, &got, &mut id, &[], Duration::from_millis(13_500))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", logs(&fleets)));
    println!(
        "cluster kill -9: every thing answered again {:.1} s after the kill",
        killed.elapsed().as_secs_f64()
    );
    check_alarms(
        &alarms,
        &fleets[1],
        &["dev-7", "dev-31", "dev-12", "dev-44"],
    )
    .await;

    // Phase 3: a back (same name and session), then b stopped (SIGSTOP) longer than a lease
    // while dev-3 and dev-25 are compromised, then woken: b owns nothing from the moment it
    // wakes, and a's alarms are the only ones.
    fleets[0].start_subscribed().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    round(&c, &got, &mut id, &[], Duration::from_secs(20))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", logs(&fleets)));
    let b = fleets[1].pid().unwrap();
    pause(b, true);
    let stopped = Instant::now();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let answered = round(&c, &got, &mut id, &[3, 25], Duration::from_secs(15)).await;
    let waited = stopped.elapsed();
    if waited < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_secs(10) - waited).await;
    }
    pause(b, false);
    answered.unwrap_or_else(|e| panic!("{e}\n{}", logs(&fleets)));
    println!(
        "cluster SIGSTOP: every thing answered again {:.1} s after the stop",
        waited.as_secs_f64()
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    round(&c, &got, &mut id, &[], Duration::from_secs(20))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", logs(&fleets)));
    let all = ["dev-7", "dev-31", "dev-12", "dev-44", "dev-3", "dev-25"];
    check_alarms(&alarms, &fleets[0], &all).await;

    // Phase 4: b, holding its share again, stops gracefully: it writes each lease as free
    // (the history shows it), exits 0, and a serves every thing again.
    let b_holds = || leases_of(&fleets[1].log()) > 0;
    assert!(
        eventually(Duration::from_secs(40), b_holds).await,
        "b took no share back\n{}",
        logs(&fleets)
    );
    let status = fleets[1].terminate(Duration::from_secs(20));
    let stopped = Instant::now();
    assert!(
        status.is_some_and(|s| s.success()),
        "b's exit on SIGTERM: {status:?}\n{}",
        fleets[1].log()
    );
    let log = fleets[1].log();
    let handed: usize = log
        .lines()
        .rev()
        .find_map(|l| {
            l.split("leases handed back")
                .nth(1)
                .and(l.split("partitions=").nth(1))
        })
        .and_then(|n| n.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("b handed no lease back:\n{log}"));
    assert!(handed > 0, "{log}");
    round(&c, &got, &mut id, &[], Duration::from_secs(20))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", logs(&fleets)));
    println!(
        "cluster SIGTERM: {handed} leases handed back, every thing answered again {:.1} s after the stop",
        stopped.elapsed().as_secs_f64()
    );
    // At least b's: a may also have claimed back a lease it released itself in the kept
    // history; an expiry takeover leaves no free value.
    let freed = freed_by_handback(&nats).await;
    assert!(
        freed >= handed,
        "{freed} leases written as free then claimed by a, {handed} handed back"
    );

    // Phase 5: b again, its broker connection through a relay, cut (NATS still reachable)
    // while dev-9 and dev-40 are compromised: after a lease b steps aside and a judges every
    // thing; mended, b takes a share again.
    let relay = Relay::start(broker.port);
    let text = std::fs::read_to_string(&fleets[1].config).unwrap();
    let direct = format!("port = {}\n", broker.port);
    assert!(text.contains(&direct), "{text}");
    let via = format!("port = {}\n", relay.port);
    std::fs::write(&fleets[1].config, text.replace(&direct, &via)).unwrap();
    fleets[1].start_subscribed().await;
    let b_holds = || leases_of(&fleets[1].log()) > 0;
    assert!(
        eventually(Duration::from_secs(40), b_holds).await,
        "b took no share\n{}",
        logs(&fleets)
    );
    relay.cut();
    let cut = Instant::now();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    round(&c, &got, &mut id, &[9, 40], Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", logs(&fleets)));
    println!(
        "cluster broker cut off from one instance: every thing answered again {:.1} s after the cut",
        cut.elapsed().as_secs_f64()
    );
    assert!(
        fleets[1].log().contains("stepping aside"),
        "{}",
        fleets[1].log()
    );
    assert_eq!(
        leases_of(&fleets[1].log()),
        0,
        "b holds leases while cut off"
    );
    relay.mend();
    let back = || fleets[1].log().contains("taking a share again") && b_holds();
    assert!(
        eventually(Duration::from_secs(60), back).await,
        "b did not take a share again\n{}",
        fleets[1].log()
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    round(&c, &got, &mut id, &[], Duration::from_secs(20))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", logs(&fleets)));
    let all = [
        "dev-7", "dev-31", "dev-12", "dev-44", "dev-3", "dev-25", "dev-9", "dev-40",
    ];
    check_alarms(&alarms, &fleets[0], &all).await;
}

/// How many partitions `log`'s instance holds now: its `Claimed` changes less its losses.
fn leases_of(log: &str) -> usize {
    let run = log.rsplit("cluster mode").next().unwrap_or("");
    let count = |kind: &str| run.matches(&format!(": {kind}")).count();
    count("Claimed").saturating_sub(count("Released") + count("Lost") + count("Expired"))
}

/// The partitions whose lease a holds now, claimed right after a free value of the epoch
/// before (a hand-back, or a release; an expired lease is claimed over its owner's value).
async fn freed_by_handback(nats: &NatsCluster) -> usize {
    let kv = lease_bucket(nats).await;
    let mut freed = 0;
    for p in 0..64 {
        let values: Vec<(String, Option<u64>)> = lease_history(&kv, p)
            .await
            .iter()
            .map(|v| {
                (
                    v["owner"].as_str().unwrap_or("?").to_owned(),
                    v["epoch"].as_u64(),
                )
            })
            .collect();
        // The values since the last free one: all a's (its claim, then its renewals), one
        // epoch on.
        let Some(last_free) = values.iter().rposition(|(owner, _)| owner.is_empty()) else {
            continue;
        };
        let (_, e0) = &values[last_free];
        let since = &values[last_free + 1..];
        if !since.is_empty()
            && since
                .iter()
                .all(|(owner, e)| owner == "a" && e.zip(*e0).is_some_and(|(e, e0)| e == e0 + 1))
        {
            freed += 1;
        }
    }
    freed
}

/// Each of `devs` raised one violation, each notified as exactly one in-alarm and one clear
/// (the same alert again counts once), and the store lists them all, none active.
async fn check_alarms(alarms: &Alarms, fleet: &Fleet, devs: &[&str]) {
    let settled = || {
        let t = alarms.transitions();
        t.len() == devs.len() && t.values().all(|k| k.len() == 2)
    };
    let ok = eventually(Duration::from_secs(20), settled).await;
    let t = alarms.transitions();
    assert!(
        ok,
        "{} violations, each one in-alarm and one clear: {t:?}\n{}",
        devs.len(),
        fleet.log()
    );
    for kinds in t.values() {
        assert_eq!(kinds, &["in-alarm", "alarm-cleared"], "{t:#?}");
    }
    let things: Vec<String> = alarms
        .received()
        .iter()
        .map(|(_, v)| v["thingName"].as_str().unwrap_or("").to_string())
        .collect();
    for dev in devs {
        assert!(things.iter().any(|t| t == dev), "{dev}: {things:?}");
    }
    let v = fleet.violations(&[]);
    assert_eq!(v.len(), devs.len(), "{v:#?}");
    assert!(fleet.violations(&["--active"]).is_empty());
}
