//! Peer comparison (issue #19 item 3) via `detect-fleet replay`: a thing 40× its peers from
//! enrolment alarms on day one and after its own model is active; `run` calibrates at start.
use std::path::Path;

use detect_testkit::broker::Broker;
use detect_testkit::certs::Pki;
use detect_testkit::fleet::Fleet;
use serde_json::{Value, json};

/// 2027-01-15 00:00 UTC; reports every 300 s.
const T0: u64 = 1_800_000_000_000 - 1_800_000_000_000 % 86_400_000;
const STEP: u64 = 300_000;
const DAY: u64 = 288;
/// The two newcomers enroll after two days of the peers; `bad` is 40× until `BACK`.
const ENROLL: u64 = 2 * DAY;
const BACK: u64 = ENROLL + 2 * DAY + 72;
const END: u64 = BACK + 72;

/// Per-device scales of bytes out: log-normal around 30 000 with σ 0.5.
const SCALES: [u64; 10] = [
    30_000, 18_200, 49_500, 24_000, 37_500, 21_000, 43_000, 27_000, 33_000, 60_000,
];

fn profile() -> Value {
    json!({"securityProfileName": "learned", "behaviors": [
        {"name": "bytes-out-ml", "metric": "aws:all-bytes-out",
         "criteria": {"mlDetectionConfig": {"confidenceLevel": "MEDIUM"},
                      "consecutiveDatapointsToAlarm": 2, "consecutiveDatapointsToClear": 3}}]})
}

/// Datapoint `i` of a device of `scale`: twice as busy 08:00–20:00 UTC, ±20 % jitter.
fn bytes(i: u64, scale: u64, seed: u64) -> u64 {
    let busy = (96..240).contains(&(i % DAY));
    scale * if busy { 2 } else { 1 } * (80 + (i * 37 + seed * 11) % 41) / 100
}

fn line(thing: &str, i: u64, bytes_out: u64) -> String {
    let report = json!({"header": {"report_id": T0 + i * STEP, "version": "1.0"},
        "metrics": {"network_stats": {"bytes_in": 1000, "bytes_out": bytes_out,
                                      "packets_in": 10, "packets_out": 10}}});
    json!({"thing": thing, "report": report}).to_string() + "\n"
}

fn input() -> String {
    let mut out = String::new();
    for i in 0..END {
        for (k, &scale) in SCALES.iter().enumerate() {
            out.push_str(&line(&format!("peer-{k}"), i, bytes(i, scale, k as u64)));
        }
        if i >= ENROLL {
            let bad = if i < BACK { 1_200_000 } else { 30_000 };
            out.push_str(&line("bad", i, bytes(i, bad, 20)));
            out.push_str(&line("warm", i, bytes(i, 90_000, 21)));
        }
    }
    out
}

fn config(dir: &Path) -> std::path::PathBuf {
    let pdir = dir.join("profiles");
    std::fs::create_dir_all(&pdir).unwrap();
    std::fs::write(pdir.join("learned.json"), profile().to_string()).unwrap();
    let text = format!(
        "[broker]\nendpoint = \"127.0.0.1\"\nusername = \"u\"\npassword_file = \"/dev/null\"\n\
         [fleet]\nprofiles_dir = \"{}\"\n[[attach]]\nprofile = \"learned\"\ntarget = \"all-things\"\n",
        pdir.display()
    );
    let path = dir.join("fleet.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_thing_40x_its_peers_from_enrolment_alarms_on_day_one_and_after_its_model_is_active() {
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("reports.jsonl");
    std::fs::write(&file, input()).unwrap();
    let out = std::process::Command::new(detect_testkit::bin::fleet())
        .arg("replay")
        .arg("--config")
        .arg(config(work.path()))
        .arg(&file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<(&str, &str, u64)> = events
        .iter()
        .map(|e| {
            let t = (e["violationEventTime"].as_u64().unwrap_or(0) - T0) / STEP;
            let kind = e["violationEventType"].as_str().unwrap_or("");
            (e["thingName"].as_str().unwrap_or(""), kind, t)
        })
        .collect();
    // Only `bad`: in alarm at its 13th datapoint (the first full hour is its 12th, and two
    // in a row are needed), kept through two days (its own model is active after one),
    // cleared within its first hour back in line (three in a row needed).
    assert_eq!(kinds.len(), 2, "{stdout}");
    let ((thing, kind, at), (_, clear, back)) = (kinds[0], kinds[1]);
    assert_eq!((thing, kind), ("bad", "in-alarm"), "{stdout}");
    assert_eq!(at, ENROLL + 12, "{stdout}");
    assert_eq!((kinds[1].0, clear), ("bad", "alarm-cleared"), "{stdout}");
    assert!((BACK + 2..BACK + 12).contains(&back), "{stdout}");
    let e = &events[0];
    assert_eq!(
        e["violationEventAdditionalInfo"]["confidenceLevel"],
        "MEDIUM"
    );
    let why = e["explanation"].as_str().unwrap_or_default();
    assert!(
        why.starts_with("aws:all-bytes-out usual ")
            && why.contains("× the usual of its 10 peers")
            && why.contains("peer comparison"),
        "{why}"
    );
}

/// `run` calibrates the ML groups from the store before its loop judges a report, at every
/// start (the effect, with active models, is `judge::groups::tests` in the crate: models need
/// days of report times, which `run` takes from its own clock).
#[tokio::test]
async fn run_calibrates_the_ml_groups_at_every_start() {
    let pki = Pki::generate();
    let broker = Broker::start(&pki);
    let work = tempfile::tempdir().unwrap();
    let attach = [("learned", "all-things")];
    let mut fleet = Fleet::configure(work.path(), &pki, &broker, &[profile()], &attach, 1);
    for run in 1..=2 {
        fleet.start_subscribed().await;
        let log = fleet.log();
        let starts = log
            .matches("ML groups calibrated at start-up behaviors=0")
            .count();
        assert_eq!(starts, run, "{log}");
        fleet.kill9();
    }
}
