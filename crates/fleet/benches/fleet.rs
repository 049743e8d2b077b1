//! scripts/bench-fleet: THINGS simulated thing names (default 10 000) multiplexed over one
//! MQTT connection publish reports at RATE per second (default 3 000) for SECONDS (default
//! 20) against a real mosquitto (mutual TLS) and `detect-fleet run` with a 10-behavior
//! profile on all things. Prints sustained answered reports/s, verdict latency p50/p99 (publish
//! to answer, both seen by this process), detect-fleet's RSS, the database size per 1 000
//! things, and /metrics (its size and time, and how long the gauges' store read took).
//! Numbers only; nothing is asserted.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use detect_testkit::backend::tls;
use detect_testkit::broker::Broker;
use detect_testkit::certs::Pki;
use detect_testkit::eventually;
use detect_testkit::fleet::Fleet;
use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS, Transport};
use serde_json::json;

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

fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn main() {
    let things = env("THINGS", 10_000);
    let rate = env("RATE", 3_000);
    let seconds = env("SECONDS", 20);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run(things, rate, seconds));
}

async fn run(things: u64, rate: u64, seconds: u64) {
    let pki = Pki::generate();
    let mut broker = Broker::start(&pki);
    // Room for a burst in the service's persistent session, and no log line per message
    // (the test harness logs everything; a production broker does not).
    broker.stop();
    let conf = std::fs::read_to_string(broker.conf()).unwrap();
    let mut conf = conf.replace("log_type all\n", "log_type error\n");
    conf.push_str("max_queued_messages 0\nmax_inflight_messages 100\n");
    std::fs::write(broker.conf(), conf).unwrap();
    broker.start_again();
    let work = tempfile::tempdir().unwrap();
    let mut fleet = Fleet::configure(
        work.path(),
        &pki,
        &broker,
        &[profile()],
        &[("bench-10", "all-things")],
        1,
    );
    fleet.start_subscribed().await;

    // Answers, matched to their publish time by (thing, report id).
    let sent: Arc<Mutex<HashMap<(String, u64), Instant>>> = Arc::default();
    let latencies: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let mut o = MqttOptions::new("bench-answers", "127.0.0.1", broker.port);
    o.set_transport(Transport::tls_with_config(tls(&pki, &pki.client_sec1)))
        .set_keep_alive(Duration::from_secs(30));
    let (sub, mut sub_loop) = AsyncClient::new(o, 100);
    let (ready_tx, mut ready) = tokio::sync::watch::channel(false);
    {
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
        });
    }
    tokio::time::timeout(Duration::from_secs(20), ready.wait_for(|r| *r))
        .await
        .unwrap()
        .unwrap();

    let mut o = MqttOptions::new("bench-devices", "127.0.0.1", broker.port);
    o.set_transport(Transport::tls_with_config(tls(&pki, &pki.client_ec)))
        .set_keep_alive(Duration::from_secs(30))
        .set_inflight(1000);
    let (publisher, mut pub_loop) = AsyncClient::new(o, 10_000);
    tokio::spawn(async move {
        loop {
            if pub_loop.poll().await.is_err() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    });

    let total = rate * seconds;
    let start = Instant::now();
    let tick = Duration::from_millis(10);
    let per_tick = (rate / 100).max(1);
    let mut n = 0u64;
    let mut next = start;
    while n < total {
        for _ in 0..per_tick.min(total - n) {
            let i = n % things;
            let id = 1_000 + n / things;
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
    let offered = start.elapsed();
    let answered = |l: &Arc<Mutex<Vec<Duration>>>| l.lock().unwrap().len() as u64;
    eventually(Duration::from_secs(60), || answered(&latencies) >= total).await;
    let wall = start.elapsed();
    let mut l = latencies.lock().unwrap().clone();
    l.sort();
    let pct = |p: f64| {
        l.get(((p / 100.0) * l.len() as f64).ceil() as usize - 1)
            .copied()
            .unwrap_or_default()
    };
    let (rss, hwm) = rss_kib(fleet.pid().unwrap_or(0));
    let db: u64 = ["fleet.db", "fleet.db-wal", "fleet.db-shm"]
        .iter()
        .filter_map(|f| std::fs::metadata(work.path().join(f)).ok())
        .map(|m| m.len())
        .sum();
    if (l.len() as u64) < total {
        let log = fleet.log();
        let tail: Vec<&str> = log.lines().rev().take(15).collect();
        println!(
            "detect-fleet log (last lines, newest first):\n{}",
            tail.join("\n")
        );
    }
    println!("things            {things}");
    println!(
        "offered           {total} reports in {:.1} s ({:.0}/s)",
        offered.as_secs_f64(),
        total as f64 / offered.as_secs_f64()
    );
    println!(
        "answered          {} reports in {:.1} s ({:.0}/s sustained)",
        l.len(),
        wall.as_secs_f64(),
        l.len() as f64 / wall.as_secs_f64()
    );
    println!(
        "latency p50       {:.1} ms",
        pct(50.0).as_secs_f64() * 1000.0
    );
    println!(
        "latency p99       {:.1} ms",
        pct(99.0).as_secs_f64() * 1000.0
    );
    println!("detect-fleet RSS  {} KiB now, {} KiB peak", rss, hwm);
    println!(
        "database          {} KiB ({:.0} KiB per 1 000 things)",
        db / 1024,
        db as f64 / 1024.0 / (things as f64 / 1000.0)
    );
    // /metrics once the gauges were read from the store after the load (every 15 s).
    let Some(addr) = fleet.http_addr() else {
        return println!("/metrics          no HTTP listener in the log");
    };
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
            println!(
                "/metrics          {} bytes in {:.1} ms; gauges read from the store in {:.1} ms",
                body.len(),
                took.as_secs_f64() * 1000.0,
                value("detect_fleet_gauges_read_seconds ").unwrap_or(f64::NAN) * 1000.0
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    println!("/metrics          gauges not refreshed within 20 s");
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
