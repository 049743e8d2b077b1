//! scripts/bench-fleet: THINGS simulated thing names (default 10 000) multiplexed over one
//! MQTT connection publish reports for SECONDS (default 20) against a real mosquitto (mutual
//! TLS) and detect-fleet with a 10-behavior profile on all things, in two setups one after
//! the other: single-node SQLite at RATE reports/s (default 3 000), then cluster (three
//! nats-server, replicas 3, two detect-fleet instances) at CLUSTER_RATE (default 2 000);
//! MODE=sqlite or MODE=cluster runs one. Prints side by side: sustained answered reports/s,
//! verdict latency p50/p99 (publish to answer, both seen by this process), CPU µs per report
//! of each process, detect-fleet's RSS, the SQLite database per 1 000 things, and in cluster
//! mode the JetStream messages written per report, per stream. Numbers only; nothing is asserted.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use detect_testkit::backend::tls;
use detect_testkit::certs::Pki;
use detect_testkit::eventually;
use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS, Transport};
use serde_json::json;

#[path = "fleet/setup.rs"]
mod setup;

use detect_testkit::proc_stat::{cpu, rss_kib};
use setup::Setup;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Ten behaviors over every device-side metric family.
fn profile() -> serde_json::Value {
    let b = |name: &str, metric: &str, criteria: serde_json::Value| json!({"name": name, "metric": metric, "criteria": criteria});
    json!({
        "securityProfileName": "bench-10",
        "behaviors": [
            b("no-telnet", "aws:listening-tcp-ports", json!({"comparisonOperator": "not-in-port-set", "value": {"ports": [23, 2323]}})),
            b("udp-ports", "aws:listening-udp-ports", json!({"comparisonOperator": "not-in-port-set", "value": {"ports": [69]}})),
            b("tcp-count", "aws:num-listening-tcp-ports", json!({"comparisonOperator": "less-than-equals", "value": {"count": 20}})),
            b("udp-count", "aws:num-listening-udp-ports", json!({"comparisonOperator": "less-than-equals", "value": {"count": 20}})),
            b("conns", "aws:num-established-tcp-connections", json!({"comparisonOperator": "less-than-equals", "value": {"count": 50}})),
            b("dest", "aws:destination-ip-addresses", json!({"comparisonOperator": "in-cidr-set", "value": {"cidrs": ["10.0.0.0/8"]}})),
            b("bytes-in", "aws:all-bytes-in", json!({"comparisonOperator": "less-than-equals", "value": {"count": 10_000_000}, "durationSeconds": 300})),
            b("bytes-out", "aws:all-bytes-out", json!({"comparisonOperator": "less-than-equals", "value": {"count": 10_000_000}, "durationSeconds": 300})),
            b("packets-in", "aws:all-packets-in", json!({"comparisonOperator": "less-than-equals", "value": {"count": 100_000}, "durationSeconds": 300})),
            b("packets-out", "aws:all-packets-out", json!({"comparisonOperator": "less-than-equals", "value": {"count": 100_000}, "durationSeconds": 300})),
        ]
    })
}

fn report(id: u64, i: u64) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "header": {"report_id": id, "version": "1.0"},
        "metrics": {
            "listening_tcp_ports": {"ports": [{"port": 22, "interface": "eth0"}, {"port": 443}], "total": 2},
            "listening_udp_ports": {"ports": [{"port": 53}], "total": 1},
            "tcp_connections": {"established_connections": {"connections": [
                {"remote_addr": format!("10.0.{}.{}:443", i % 250, i % 200 + 1), "local_port": 50000, "local_interface": "eth0"}
            ], "total": 1}},
            "network_stats": {"bytes_in": 1000 + i % 97, "bytes_out": 2000, "packets_in": 10, "packets_out": 12}
        }
    }))
    .unwrap()
}

/// What one setup did.
struct Figures {
    offered: u64,
    offered_s: f64,
    answered: u64,
    wall_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// (process, CPU µs per answered report)
    cpu: Vec<(String, f64)>,
    /// (JetStream stream, messages written per answered report); cluster mode only.
    writes: Vec<(String, f64)>,
    rss_kib: (u64, u64),
    db_kib: u64,
    /// The first instance's /metrics after the load: size, time, the gauges' store read.
    metrics: String,
}

fn main() {
    let things = env("THINGS", 10_000);
    let seconds = env("SECONDS", 20);
    let mode = std::env::var("MODE").unwrap_or_default();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut runs = Vec::new();
    if mode != "cluster" {
        let rate = env("RATE", 3_000);
        runs.push((
            "sqlite, 1 instance",
            rt.block_on(run(things, rate, seconds, 0)),
        ));
    }
    if mode != "sqlite" {
        let rate = env("CLUSTER_RATE", 2_000);
        runs.push((
            "cluster, 2 instances",
            rt.block_on(run(things, rate, seconds, 2)),
        ));
    }
    print(things, &runs);
}

fn print(things: u64, runs: &[(&str, Figures)]) {
    let row = |name: &str, cell: &dyn Fn(&Figures) -> String| {
        let cells: Vec<String> = runs
            .iter()
            .map(|(_, f)| format!("{:>30}", cell(f)))
            .collect();
        println!("{name:<26}{}", cells.join(""));
    };
    let heads: Vec<String> = runs.iter().map(|(n, _)| format!("{n:>30}")).collect();
    println!("\nthings {things}, 10-behavior profile, reports over MQTT (mutual TLS)");
    println!("{:<26}{}", "", heads.join(""));
    row("offered reports/s", &|f| {
        format!(
            "{} in {:.1} s ({:.0}/s)",
            f.offered,
            f.offered_s,
            f.offered as f64 / f.offered_s
        )
    });
    row("answered, sustained/s", &|f| {
        format!("{} ({:.0}/s)", f.answered, f.answered as f64 / f.wall_s)
    });
    row("latency p50", &|f| format!("{:.1} ms", f.p50_ms));
    row("latency p99", &|f| format!("{:.1} ms", f.p99_ms));
    row("detect-fleet 0 RSS now/peak", &|f| {
        format!("{}/{} KiB", f.rss_kib.0, f.rss_kib.1)
    });
    row("/metrics B, ms, gauges ms", &|f| f.metrics.clone());
    row("SQLite db per 1 000 things", &|f| match f.db_kib {
        0 => "-".into(),
        kib => format!("{:.0} KiB", kib as f64 / (things as f64 / 1000.0)),
    });
    println!("CPU µs per answered report");
    let mut names: Vec<&str> = Vec::new();
    for (_, f) in runs {
        for (n, _) in &f.cpu {
            if !names.contains(&n.as_str()) {
                names.push(n);
            }
        }
    }
    for name in names {
        row(&format!("  {name}"), &|f| {
            let got = f.cpu.iter().find(|(n, _)| n == name);
            got.map_or("-".into(), |(_, us)| format!("{us:.0}"))
        });
    }
    row("  all but the bench", &|f| {
        let us: f64 = f
            .cpu
            .iter()
            .filter(|(n, _)| !n.starts_with("bench"))
            .map(|(_, us)| us)
            .sum();
        format!("{us:.0}")
    });
    let mut streams: Vec<&str> = Vec::new();
    for (_, f) in runs {
        for (n, per) in &f.writes {
            if *per > 0.0 && !streams.contains(&n.as_str()) {
                streams.push(n);
            }
        }
    }
    if streams.is_empty() {
        return;
    }
    println!("JetStream messages written per answered report (each on 3 replicas)");
    for name in streams {
        row(&format!("  {name}"), &|f| {
            let got = f.writes.iter().find(|(n, _)| n == name);
            got.map_or("-".into(), |(_, per)| format!("{per:.3}"))
        });
    }
    row("  all streams", &|f| {
        let per: f64 = f.writes.iter().map(|(_, per)| per).sum();
        format!("{per:.3}")
    });
}

async fn run(things: u64, rate: u64, seconds: u64, instances: usize) -> Figures {
    let pki = Pki::generate();
    let work = tempfile::tempdir().unwrap();
    if env("KEEP", 0) == 1 {
        println!("work directory kept: {}", work.path().display());
    }
    let setup = Setup::start(work.path(), &pki, &profile(), instances).await;
    let port = setup.broker.port;

    // Answers, matched to their publish time by (thing, report id).
    let sent: Arc<Mutex<HashMap<(String, u64), Instant>>> = Arc::default();
    let latencies: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let mut o = MqttOptions::new("bench-answers", "127.0.0.1", port);
    o.set_transport(Transport::tls_with_config(tls(&pki, &pki.client_sec1)))
        .set_keep_alive(Duration::from_secs(30));
    let (sub, mut sub_loop) = AsyncClient::new(o, 100);
    let (ready_tx, mut ready) = tokio::sync::watch::channel(false);
    let listener = {
        let (sent, latencies) = (sent.clone(), latencies.clone());
        tokio::spawn(async move {
            loop {
                match sub_loop.poll().await {
                    Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                        sub.try_subscribe("$aws/things/+/defender/metrics/json/+", QoS::AtMostOnce)
                            .unwrap();
                    }
                    Ok(Event::Incoming(Incoming::SubAck(_))) => {
                        let _ = ready_tx.send(true);
                    }
                    Ok(Event::Incoming(Incoming::Publish(p))) => {
                        let at = Instant::now();
                        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&p.payload) else {
                            continue;
                        };
                        let key = (
                            v["thingName"].as_str().unwrap_or("").to_string(),
                            v["reportId"].as_u64().unwrap_or(0),
                        );
                        if let Some(t0) = sent.lock().unwrap().remove(&key) {
                            latencies.lock().unwrap().push(at - t0);
                        }
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        })
    };
    tokio::time::timeout(Duration::from_secs(20), ready.wait_for(|r| *r))
        .await
        .unwrap()
        .unwrap();

    let mut o = MqttOptions::new("bench-devices", "127.0.0.1", port);
    o.set_transport(Transport::tls_with_config(tls(&pki, &pki.client_ec)))
        .set_keep_alive(Duration::from_secs(30))
        .set_inflight(1000);
    let (publisher, mut pub_loop) = AsyncClient::new(o, 10_000);
    let pumping = tokio::spawn(async move {
        loop {
            if pub_loop.poll().await.is_err() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    });

    // Warm-up, not measured: one report per thing, so each is known (cluster mode: cached
    // by its owner) before the measured reports, as in a fleet that has run for a while.
    if env("WARMUP", 1) == 1 {
        let start = Instant::now();
        offer(&publisher, &sent, things, rate, things, 100).await;
        let all = || latencies.lock().unwrap().len() as u64 >= things;
        eventually(Duration::from_secs(120), all).await;
        println!(
            "warm-up: {} of {things} things answered in {:.1} s",
            latencies.lock().unwrap().len(),
            start.elapsed().as_secs_f64()
        );
        sent.lock().unwrap().clear();
        latencies.lock().unwrap().clear();
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let processes = setup.processes();
    let stored_before = setup.stored().await;
    let cpu_before: Vec<Duration> = processes.iter().map(|(_, pid)| cpu(*pid)).collect();
    let total = rate * seconds;
    let start = Instant::now();
    offer(&publisher, &sent, things, rate, total, 1_000).await;
    let offered = start.elapsed();
    let answered = |l: &Arc<Mutex<Vec<Duration>>>| l.lock().unwrap().len() as u64;
    eventually(Duration::from_secs(60), || answered(&latencies) >= total).await;
    let wall = start.elapsed();
    let cpu_after: Vec<Duration> = processes.iter().map(|(_, pid)| cpu(*pid)).collect();
    let stored_after = setup.stored().await;
    let mut l = latencies.lock().unwrap().clone();
    l.sort();
    let pct = |p: f64| {
        let at = ((p / 100.0) * l.len() as f64).ceil() as usize;
        l.get(at.saturating_sub(1)).copied().unwrap_or_default()
    };
    let got = (l.len() as u64).max(1);
    let cpu = processes
        .iter()
        .zip(cpu_before.iter().zip(&cpu_after))
        .map(|((name, _), (b, a))| (name.clone(), (*a - *b).as_secs_f64() * 1e6 / got as f64))
        .collect();
    let writes = stored_after
        .iter()
        .map(|(name, after)| {
            let before = stored_before.iter().find(|(n, _)| n == name);
            let n = after - before.map_or(0, |(_, b)| *b).min(*after);
            (name.clone(), n as f64 / got as f64)
        })
        .collect();
    let fleet_pid = setup.fleets[0].pid().unwrap_or(0);
    let db: u64 = ["fleet.db", "fleet.db-wal", "fleet.db-shm"]
        .iter()
        .filter_map(|f| std::fs::metadata(work.path().join(f)).ok())
        .map(|m| m.len())
        .sum();
    if (l.len() as u64) < total {
        for f in &setup.fleets {
            let log = f.log();
            let tail: Vec<&str> = log.lines().rev().take(15).collect();
            println!(
                "detect-fleet log (last lines, newest first):\n{}",
                tail.join("\n")
            );
        }
    }
    listener.abort();
    pumping.abort();
    let metrics = match setup.fleets[0].http_addr() {
        Some(addr) => scrape_after_load(addr).await,
        None => "no listener".into(),
    };
    let rss = rss_kib(fleet_pid);
    drop(setup);
    if env("KEEP", 0) == 1 {
        std::mem::forget(work);
    }
    Figures {
        offered: total,
        offered_s: offered.as_secs_f64(),
        answered: l.len() as u64,
        wall_s: wall.as_secs_f64(),
        p50_ms: pct(50.0).as_secs_f64() * 1000.0,
        p99_ms: pct(99.0).as_secs_f64() * 1000.0,
        cpu,
        writes,
        rss_kib: rss,
        db_kib: db / 1024,
        metrics,
    }
}

/// /metrics once its gauges were read from the store after the load (every 15 s): "bytes,
/// ms to answer, ms the gauges' store read took".
async fn scrape_after_load(addr: std::net::SocketAddr) -> String {
    let loaded = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    for _ in 0..40 {
        let (took, body) = scrape(addr);
        let value = |name: &str| {
            body.lines()
                .find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok())
        };
        if value("detect_fleet_gauges_refreshed_timestamp_seconds ").is_some_and(|t| t > loaded) {
            let read = value("detect_fleet_gauges_read_seconds ").unwrap_or(f64::NAN);
            return format!(
                "{} B, {:.1} ms, {:.1} ms",
                body.len(),
                took.as_secs_f64() * 1000.0,
                read * 1000.0
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    "gauges not read in 20 s".into()
}

/// GET /metrics over a fresh connection: (time to the whole answer, body).
fn scrape(addr: std::net::SocketAddr) -> (Duration, String) {
    use std::io::{Read, Write};
    let start = Instant::now();
    let mut raw = String::new();
    if let Ok(mut s) = std::net::TcpStream::connect(addr) {
        let req = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        let _ = s.write_all(req.as_bytes());
        let _ = s.read_to_string(&mut raw);
    }
    let body = raw
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (start.elapsed(), body)
}

/// Publishes `total` reports at `rate` per second, thing after thing (ids from `first_id`,
/// one more each round through the things), noting each one's publish time.
async fn offer(
    publisher: &AsyncClient,
    sent: &Mutex<HashMap<(String, u64), Instant>>,
    things: u64,
    rate: u64,
    total: u64,
    first_id: u64,
) {
    let tick = Duration::from_millis(10);
    let per_tick = (rate / 100).max(1);
    let mut n = 0u64;
    let mut next = Instant::now();
    while n < total {
        for _ in 0..per_tick.min(total - n) {
            let i = n % things;
            let id = first_id + n / things;
            let thing = format!("bench-{i:06}");
            sent.lock()
                .unwrap()
                .insert((thing.clone(), id), Instant::now());
            publisher
                .publish(
                    format!("$aws/things/{thing}/defender/metrics/json"),
                    QoS::AtLeastOnce,
                    false,
                    report(id, i),
                )
                .await
                .unwrap();
            n += 1;
        }
        next += tick;
        tokio::time::sleep_until(next.into()).await;
    }
}
