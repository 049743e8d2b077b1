//! `[cluster] intake = "nats"` end to end (issue #20 item 2): three nats-server with JetStream
//! and MQTT listeners, two detect-fleet instances taking reports from one shared consumer,
//! devices on the nats-server MQTT gateway; alerts over mosquitto. Across a `kill -9` of one
//! instance and a `SIGSTOP` of the other for longer than a lease.
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use detect_testkit::alarms::Alarms;
use detect_testkit::broker::Broker;
use detect_testkit::certs::Pki;
use detect_testkit::eventually;
use detect_testkit::fleet::{Fleet, forbid_port, logs};
use detect_testkit::nats_cluster::{NatsCluster, USER, pause};
use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS};
use serde_json::Value;

use super::answers::Got;
use super::cluster_store::report;

const THINGS: usize = 45;
/// New things reporting at once, for a figure.
const BURST: usize = 1000;

/// One device connection per nats-server node; thing `i` publishes on node `i % 3` and its
/// answers are counted from that connection only.
struct Devices {
    clients: Vec<AsyncClient>,
    got: Vec<Got>,
}

/// A client of the MQTT listener on `port`, subscribed to every answer topic.
async fn connect(port: u16, name: String) -> (AsyncClient, Got) {
    let mut o = MqttOptions::new(name, "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(5))
        .set_credentials(USER.0, USER.1);
    let (c, mut el) = AsyncClient::new(o, 256);
    let got: Got = Arc::default();
    let (tx, mut rx) = tokio::sync::watch::channel(false);
    let (shared, sub) = (got.clone(), c.clone());
    tokio::spawn(async move {
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                    sub.try_subscribe("$aws/things/+/defender/metrics/+/+", QoS::AtLeastOnce)
                        .unwrap();
                }
                Ok(Event::Incoming(Incoming::SubAck(_))) => {
                    let _ = tx.send(true);
                }
                Ok(Event::Incoming(Incoming::Publish(p))) => {
                    let v: Value = serde_json::from_slice(&p.payload).unwrap_or(Value::Null);
                    shared.lock().unwrap().push((p.topic.clone(), v));
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    });
    let subscribed = tokio::time::timeout(Duration::from_secs(20), rx.wait_for(|s| *s)).await;
    assert!(
        matches!(subscribed, Ok(Ok(_))),
        "no SUBACK from port {port}"
    );
    (c, got)
}

impl Devices {
    async fn connect(nats: &NatsCluster) -> Devices {
        let (mut clients, mut got) = (Vec::new(), Vec::new());
        for node in 0..3 {
            let (c, g) = connect(nats.mqtt_port(node), format!("devices-n{node}")).await;
            clients.push(c);
            got.push(g);
        }
        Devices { clients, got }
    }

    /// Report `id` of every thing (`bad` ones listen on port 22).
    async fn publish(&self, id: u64, bad: &[usize]) {
        for i in 0..THINGS {
            let ports: &[u16] = if bad.contains(&i) { &[22] } else { &[] };
            let topic = format!("$aws/things/dev-{i}/defender/metrics/json");
            self.clients[i % 3]
                .publish(topic, QoS::AtLeastOnce, false, report(id, ports))
                .await
                .unwrap();
        }
    }

    /// Answers per (thing index, report id): (accepted, rejected).
    fn answers(&self) -> BTreeMap<(usize, u64), (usize, usize)> {
        let mut n: BTreeMap<(usize, u64), (usize, usize)> = BTreeMap::new();
        for i in 0..THINGS {
            let prefix = format!("$aws/things/dev-{i}/defender/metrics/json/");
            for (topic, v) in self.got[i % 3].lock().unwrap().iter() {
                let Some(kind) = topic.strip_prefix(&prefix) else {
                    continue;
                };
                let id = v["reportId"].as_u64().unwrap_or(0);
                let e = n.entry((i, id)).or_default();
                match kind {
                    "accepted" => e.0 += 1,
                    _ => e.1 += 1,
                }
            }
        }
        n
    }

    /// Burst things answered and answers to them, each counted on its own connection (every
    /// connection receives every answer).
    fn burst_answers(&self) -> (usize, usize) {
        let mut things = std::collections::BTreeSet::new();
        let mut answers = 0;
        for (k, got) in self.got.iter().enumerate() {
            for (topic, _) in got.lock().unwrap().iter() {
                let Some(rest) = topic.strip_prefix("$aws/things/burst-") else {
                    continue;
                };
                let i: usize = rest
                    .split('/')
                    .next()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
                if i % 3 == k {
                    things.insert(i);
                    answers += 1;
                }
            }
        }
        (things.len(), answers)
    }

    /// Waits (at most `limit`) until report `id` of every thing got an answer.
    async fn answered(&self, id: u64, limit: Duration) -> Result<(), String> {
        let all = || {
            let n = self.answers();
            (0..THINGS).all(|i| n.contains_key(&(i, id)))
        };
        if eventually(limit, all).await {
            return Ok(());
        }
        let n = self.answers();
        let missing: Vec<usize> = (0..THINGS).filter(|i| !n.contains_key(&(*i, id))).collect();
        Err(format!(
            "report {id}: no answer within {limit:?} for dev-{missing:?}"
        ))
    }
}

/// Panics with `r`'s error and the instances' logs.
fn check(r: Result<(), String>, fleets: &[Fleet]) {
    if let Err(e) = r {
        panic!("{e}\n{}", logs(fleets));
    }
}

/// The last `name=N` of the log's "nats intake counts" lines.
fn count(log: &str, name: &str) -> u64 {
    let line = log.lines().rfind(|l| l.contains("nats intake counts"));
    line.and_then(|l| {
        l.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{name}=")))
    })
    .and_then(|n| n.parse().ok())
    .unwrap_or(0)
}

#[tokio::test]
async fn two_instances_share_the_nats_intake_across_a_kill_9() {
    let pki = Pki::generate();
    let broker = Broker::start(&pki);
    let work = tempfile::tempdir().unwrap();
    let nats = NatsCluster::start_with_mqtt(work.path());
    let alarms = Alarms::start(&pki, broker.port, "detect-fleet/alarms/+").await;
    let profiles = [forbid_port("no-ssh", 22)];
    let attach = [("no-ssh", "all-things")];
    let mut fleets = nats.fleets(work.path(), &pki, &broker, &["a", "b"], &profiles, &attach);
    for f in &fleets {
        f.append_config("intake = \"nats\"\n");
    }
    let (ok, out, err) = fleets[0].cli(&["check-config"]);
    assert!(
        ok && out.contains("reports from NATS subjects"),
        "{out} {err}"
    );
    for f in &mut fleets {
        f.start();
        let taking = || f.log().contains("taking reports from NATS");
        assert!(
            eventually(Duration::from_secs(40), taking).await,
            "{}",
            f.log()
        );
    }
    let devices = Devices::connect(&nats).await;

    // Both instances up: every report answered once, accepted; dev-7 and dev-31 compromised.
    devices.publish(1, &[]).await;
    check(devices.answered(1, Duration::from_secs(40)).await, &fleets);
    for (id, bad) in [(2, &[7, 31][..]), (3, &[])] {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        devices.publish(id, bad).await;
        check(devices.answered(id, Duration::from_secs(15)).await, &fleets);
    }
    let once = devices.answers();
    assert!(once.values().all(|n| *n == (1, 0)), "{once:?}");
    let both =
        || alarms.of_type("in-alarm").len() >= 2 && alarms.of_type("alarm-cleared").len() >= 2;
    assert!(
        eventually(Duration::from_secs(15), both).await,
        "{:?}",
        alarms.received()
    );

    tokio::time::sleep(Duration::from_millis(1500)).await;
    devices.publish(4, &[12, 44]).await;
    check(devices.answered(4, Duration::from_secs(15)).await, &fleets);

    // A burst of first reports from BURST new things (a figure, not a speed target).
    let start = Instant::now();
    for i in 0..BURST {
        let topic = format!("$aws/things/burst-{i}/defender/metrics/json");
        devices.clients[i % 3]
            .publish(topic, QoS::AtLeastOnce, false, report(1, &[]))
            .await
            .unwrap();
    }
    let burst = || devices.burst_answers().0 == BURST;
    let all = eventually(Duration::from_secs(120), burst).await;
    assert!(all, "{:?} of {BURST} answered", devices.burst_answers());
    println!(
        "nats intake: {BURST} reports of new things answered in {:.2} s ({:.0} reports/s, two instances, debug build)",
        start.elapsed().as_secs_f64(),
        BURST as f64 / start.elapsed().as_secs_f64()
    );
    // Both instances took a share of the reports from the consumer and judged some (their
    // counts are logged every 5 s).
    let sent = (4 * THINGS + BURST) as u64;
    let shared = || {
        let taken: u64 = fleets.iter().map(|f| count(&f.log(), "taken")).sum();
        let each = |f: &Fleet| count(&f.log(), "taken") > 0 && count(&f.log(), "judged") > 0;
        taken >= sent && fleets.iter().all(each)
    };
    let ok = eventually(Duration::from_secs(15), shared).await;
    assert!(ok, "{}", logs(&fleets));
    let twice = devices.burst_answers().1 - BURST;
    println!("nats intake: {twice} burst reports answered twice (a forward timed out, sent again)");
    for (f, name) in fleets.iter().zip(["a", "b"]) {
        let log = f.log();
        let (taken, judged) = (count(&log, "taken"), count(&log, "judged"));
        let forwarded = count(&log, "forwarded");
        println!(
            "nats intake: instance {name} took {taken} reports, judged {judged} itself, forwarded {forwarded}"
        );
    }

    // kill -9 of a right after a round went out: every report answered, within 15 s.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    devices.publish(5, &[]).await;
    fleets[0].kill9();
    let killed = Instant::now();
    check(devices.answered(5, Duration::from_secs(15)).await, &fleets);
    let back = killed.elapsed();
    println!(
        "nats intake kill -9: every report answered {:.1} s after the kill",
        back.as_secs_f64()
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    devices.publish(6, &[]).await;
    check(devices.answered(6, Duration::from_secs(15)).await, &fleets);
    check_alarms(&alarms, &fleets[1], 4).await;

    // a back; b stopped (SIGSTOP) for 10 s, longer than a lease, across a round with dev-3
    // and dev-25 compromised: every report answered within 15 s, then b woken up.
    fleets[0].start();
    let again = || fleets[0].log().matches("taking reports from NATS").count() >= 2;
    assert!(
        eventually(Duration::from_secs(40), again).await,
        "{}",
        fleets[0].log()
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    devices.publish(7, &[]).await;
    check(devices.answered(7, Duration::from_secs(20)).await, &fleets);
    let b = fleets[1].pid().unwrap();
    pause(b, true);
    let stopped = Instant::now();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    devices.publish(8, &[3, 25]).await;
    let answered = devices.answered(8, Duration::from_millis(13_500)).await;
    let waited = stopped.elapsed();
    if waited < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_secs(10) - waited).await;
    }
    pause(b, false);
    check(answered, &fleets);
    println!(
        "nats intake SIGSTOP: every report answered {:.1} s after the stop",
        waited.as_secs_f64()
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    devices.publish(9, &[]).await;
    check(devices.answered(9, Duration::from_secs(20)).await, &fleets);
    check_alarms(&alarms, &fleets[0], 6).await;

    let answers = devices.answers();
    for id in 1..=9 {
        for i in 0..THINGS {
            let n = answers.get(&(i, id)).copied().unwrap_or_default();
            assert!(n.0 + n.1 >= 1, "dev-{i} report {id}: {n:?}");
        }
    }
    let again = answers.values().filter(|n| n.0 + n.1 > 1).count();
    println!("nats intake: {again} reports answered more than once (delivered again)");
}

/// `n` violations so far, each notified as one in-alarm and one clear (the same alert again
/// counts once), and the store lists them all.
async fn check_alarms(alarms: &Alarms, fleet: &Fleet, n: usize) {
    let settled = || {
        let t = alarms.transitions();
        t.len() == n && t.values().all(|k| k.len() == 2)
    };
    let ok = eventually(Duration::from_secs(20), settled).await;
    let t = alarms.transitions();
    assert!(ok, "{n} violations: {t:?}\n{}", fleet.log());
    for kinds in t.values() {
        assert_eq!(kinds, &["in-alarm", "alarm-cleared"], "{t:#?}");
    }
    let v = fleet.violations(&[]);
    assert_eq!(v.len(), n, "{v:#?}");
}
