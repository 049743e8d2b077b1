//! Issue #11 item 10: 20 000 rogue verdicts (for no report in flight, or malformed) on the
//! agent's verdict topic, published through a real mosquitto with `mosquitto_pub`, cost a
//! few log lines and a periodic count, not two lines each.
use std::process::{Command, Stdio};
use std::time::Duration;

use detect_testkit::agent::{Setup, config, spawn};
use detect_testkit::{Broker, Pki, eventually};

const ROGUE: usize = 20_000;

/// Log lines one verdict message can cause.
fn verdict_lines(log: &str) -> usize {
    log.lines()
        .filter(|l| {
            l.contains("report verdict")
                || l.contains("no longer in flight")
                || l.contains("malformed verdict")
        })
        .count()
}

/// The `suppressed=N` counts the agent logged.
fn suppressed(log: &str) -> u64 {
    log.lines()
        .filter(|l| l.contains("log lines suppressed"))
        .filter_map(|l| l.split("suppressed=").nth(1))
        .filter_map(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test]
async fn twenty_thousand_rogue_verdicts_cost_a_few_log_lines_and_a_count() {
    let pki = Pki::generate();
    let broker = Broker::start(&pki);
    let work = tempfile::tempdir().unwrap();
    // Long interval: no report of the agent's own is in flight during the flood.
    let cfg = config(&Setup::plain(
        work.path(),
        broker.port,
        &pki.ca,
        &pki.client_ec,
        "json",
        300,
    ));
    let agent = spawn(&cfg, &[]);
    let connected = eventually(Duration::from_secs(20), || {
        agent.log().contains("MQTT connected")
    })
    .await;
    assert!(connected, "{}", agent.log());
    // The SUBACK follows the CONNACK at once; leave it a moment.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let thing = &pki.client_ec.name;
    let lines: String = (0..ROGUE)
        .map(|i| {
            if i % 2 == 0 {
                format!(
                    "{{\"thingName\":\"{thing}\",\"reportId\":{},\"status\":\"ACCEPTED\",\"timestamp\":1}}\n",
                    i + 1
                )
            } else {
                "not a verdict\n".to_string()
            }
        })
        .collect();
    let flood = work.path().join("rogue.txt");
    std::fs::write(&flood, lines).unwrap();
    let topic = format!("$aws/things/{thing}/defender/metrics/json/accepted");
    let out = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &broker.port.to_string()])
        .args(["--cafile", pki.ca.to_str().unwrap()])
        .args(["--cert", pki.backend.cert.to_str().unwrap()])
        .args(["--key", pki.backend.key.to_str().unwrap()])
        .args(["-t", &topic, "-q", "0", "-l"])
        .stdin(std::fs::File::open(&flood).unwrap())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mosquitto_pub: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The count comes when its window (10 s) ends.
    let counted = eventually(Duration::from_secs(30), || suppressed(&agent.log()) > 1_000).await;
    let log = agent.log();
    let (status, _) = agent.stop().await;
    assert!(status.success());
    let n = suppressed(&log);
    assert!(
        counted,
        "no suppressed count over 1000 logged ({n}):\n{log}"
    );
    // Two lines per allowed rogue verdict, ten allowed per window: the flood takes one or two.
    let lines = verdict_lines(&log);
    assert!(
        lines <= 40,
        "{lines} verdict log lines for {ROGUE} rogue messages"
    );
    eprintln!("{ROGUE} rogue verdicts sent: {lines} log lines, {n} counted as suppressed");
}
