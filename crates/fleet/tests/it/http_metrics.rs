//! `/metrics` read by Debian's real `prometheus` (issue #21 item 1): while reports and an
//! alarm flow through mosquitto, Prometheus scrapes `detect-fleet run` every second and its
//! own query API answers the alarm and report counters; `promtool check metrics` passes.
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use detect_testkit::broker::Broker;
use detect_testkit::certs::Pki;
use detect_testkit::fleet::{Fleet, forbid_port, single};
use serde_json::json;

use crate::answers::{client, rejected, send};
use crate::http_client::{encode, request};

/// `prometheus` scraping `target` every second, storage in `dir`; killed on drop.
struct Prometheus {
    child: Child,
    addr: SocketAddr,
    log: std::path::PathBuf,
}

impl Prometheus {
    fn start(dir: &std::path::Path, target: SocketAddr) -> Prometheus {
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: detect-fleet\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let log = dir.join("prometheus.log");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("Debian's prometheus (scripts/setup installs it)");
        Prometheus { child, addr, log }
    }

    /// The value of an instant query's single sample, if it has exactly one.
    async fn value(&self, query: &str) -> Option<f64> {
        let path = format!("/api/v1/query?query={}", encode(query));
        // Not up yet: no answer.
        tokio::net::TcpStream::connect(self.addr).await.ok()?;
        let answer = request(self.addr, "GET", &path, &[], "").await.json();
        let result = answer["data"]["result"].as_array()?;
        match result.as_slice() {
            [one] => one["value"][1].as_str()?.parse().ok(),
            _ => None,
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn prometheus_scrapes_the_alarm_and_report_counters_while_reports_flow() {
    let (pki, broker, work, mut fleet) =
        single(&[forbid_port("no-ssh", 22)], &[("no-ssh", "all-things")]);
    fleet.start_subscribed().await;
    let target = fleet.http_addr().expect("HTTP listener address in the log");
    let prometheus = Prometheus::start(work.path(), target);
    let (c, got) = client(&pki, broker.port).await;

    let report = |id: u64, port: u16| {
        serde_json::to_vec(&json!({
            "header": {"report_id": id, "version": "1.0"},
            "metrics": {"listening_tcp_ports": {"ports": [{"port": port}]}}
        }))
        .unwrap()
    };
    let (topic, v) = send(&c, &got, "prom-1", "json", report(1, 22)).await;
    assert!(topic.ends_with("/accepted"), "{v}");
    let (topic, v) = send(&c, &got, "prom-2", "json", report(1, 443)).await;
    assert!(topic.ends_with("/accepted"), "{v}");
    let bad = send(&c, &got, "prom-3", "json", b"{not json".to_vec()).await;
    rejected(&bad, "InvalidPayload", "prom-3", "json");

    let raised = "detect_fleet_alarms_raised_total{security_profile=\"no-ssh\",behavior=\"no-forbidden-listener\"}";
    let accepted = "detect_fleet_reports_total{outcome=\"accepted\"}";
    let refused = "sum(detect_fleet_reports_total{outcome=\"rejected\"})";
    // Prometheus's own query API, polled until it has scraped all three (60 s at most).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut seen = (None, None, None);
    let mut scraped = false;
    while !scraped && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let p = &prometheus;
        seen = (
            p.value(raised).await,
            p.value(accepted).await,
            p.value(refused).await,
        );
        scraped = seen == (Some(1.0), Some(2.0), Some(1.0));
    }
    assert!(
        scraped,
        "Prometheus answered {seen:?}\n{}\n{}",
        std::fs::read_to_string(&prometheus.log).unwrap_or_default(),
        fleet.log()
    );
    // Not labelled by thing, ever.
    let body = request(target, "GET", "/metrics", &[], "").await.body;
    assert!(
        !body.contains("prom-") && !body.contains("thing="),
        "{body}"
    );
    let cleared = "detect_fleet_alarms_cleared_total{security_profile=\"no-ssh\"}";
    assert_eq!(prometheus.value(cleared).await, Some(0.0));

    let check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    check
        .stdin
        .as_ref()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = check.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{body}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The value of the sample `series` (the whole `name{labels}`) in a /metrics body.
fn sample(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn a_cluster_instance_on_the_nats_store_serves_its_counters_and_the_stores_gauges() {
    let pki = Pki::generate();
    let broker = Broker::start(&pki);
    let work = tempfile::tempdir().unwrap();
    let nats = detect_testkit::nats::Nats::start(work.path(), &[("fleet", "fleet password")]);
    let password = work.path().join("nats-password");
    std::fs::write(&password, "fleet password\n").unwrap();
    let mut fleet = Fleet::configure(
        &work.path().join("fleet"),
        &pki,
        &broker,
        &[forbid_port("no-ssh", 22)],
        &[("no-ssh", "all-things")],
        1,
    );
    let mut text = std::fs::read_to_string(&fleet.config).unwrap();
    text.push_str(&format!(
        "[store]\nkind = \"nats\"\nservers = [{:?}]\nuser = \"fleet\"\npassword_file = {:?}\nreplicas = 1\n[cluster]\nenabled = true\ninstance = \"one\"\n",
        nats.url(),
        password.display().to_string()
    ));
    std::fs::write(&fleet.config, text).unwrap();
    fleet.start_subscribed().await;
    let target = fleet.http_addr().expect("HTTP listener address in the log");
    let (c, got) = client(&pki, broker.port).await;

    // Until the instance holds its partitions a report gets no answer: publish again, with
    // a fresh id, every 2 s, for at most 40 s per thing.
    let things = ["cl-1", "cl-2", "cl-3"];
    let mut id = 1_000;
    for thing in things {
        let prefix = format!("$aws/things/{thing}/defender/metrics/");
        let answered = || {
            got.lock()
                .unwrap()
                .iter()
                .any(|(t, _)| t.starts_with(&prefix))
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
        while !answered() && tokio::time::Instant::now() < deadline {
            id += 1;
            let payload = json!({
                "header": {"report_id": id, "version": "1.0"},
                "metrics": {"listening_tcp_ports": {"ports": [{"port": 22}]}}
            });
            let topic = format!("{prefix}json");
            let bytes = serde_json::to_vec(&payload).unwrap();
            c.publish(topic, rumqttc::QoS::AtLeastOnce, false, bytes)
                .await
                .unwrap();
            let until = tokio::time::Instant::now() + Duration::from_secs(2);
            while !answered() && tokio::time::Instant::now() < until {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        assert!(answered(), "no answer for {thing}:\n{}", fleet.log());
    }

    // The counters at once; the gauges once the listener read them from NATS (every 15 s).
    let raised = "detect_fleet_alarms_raised_total{security_profile=\"no-ssh\",behavior=\"no-forbidden-listener\"}";
    let active = "detect_fleet_active_alarms{security_profile=\"no-ssh\",behavior=\"no-forbidden-listener\"}";
    let deadline = tokio::time::Instant::now() + Duration::from_secs(45);
    let mut body = String::new();
    while tokio::time::Instant::now() < deadline {
        body = request(target, "GET", "/metrics", &[], "").await.body;
        if sample(&body, active) == Some(3.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(sample(&body, raised), Some(3.0), "{body}");
    assert_eq!(sample(&body, active), Some(3.0), "{body}");
    assert!(
        sample(
            &body,
            "detect_fleet_reports_total{outcome=\"accepted\",error_code=\"\"}"
        )
        .is_some_and(|n| n >= 3.0),
        "{body}"
    );
    assert!(
        !body.contains("detect_fleet_store_size_bytes"),
        "no file size for NATS: {body}"
    );
}
