//! `/metrics` read by Debian's real `prometheus` (issue #21 item 1): while reports and an
//! alarm flow through mosquitto, Prometheus scrapes `detect-fleet run` every second and its
//! own query API answers the alarm and report counters; `promtool check metrics` passes.
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use detect_testkit::broker::Broker;
use detect_testkit::certs::Pki;
use detect_testkit::fleet::{Fleet, forbid_port};
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
    let pki = Pki::generate();
    let broker = Broker::start(&pki);
    let work = tempfile::tempdir().unwrap();
    let mut fleet = Fleet::configure(
        work.path(),
        &pki,
        &broker,
        &[forbid_port("no-ssh", 22)],
        &[("no-ssh", "all-things")],
        1,
    );
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
