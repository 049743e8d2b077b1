//! `detect-fleet replay` (issue #19 item 4): recorded reports in, the published events out,
//! the same bytes on every run; statistical thresholds as in `run`; and the same events as the
//! real service given the same reports over a real mosquitto.
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use detect_testkit::now_ms;

use detect_testkit::alarms::Alarms;
use detect_testkit::broker::Broker;
use detect_testkit::certs::Pki;
use detect_testkit::eventually;
use detect_testkit::fleet::{Fleet, forbid_port};
use serde_json::{Value, json};

use crate::answers::{client, send};

const T0: u64 = 1_800_000_000_000;
const STEP: u64 = 300_000;

fn report(id: u64, ports: &[u16]) -> Value {
    let list: Vec<Value> = ports.iter().map(|p| json!({"port": p})).collect();
    json!({
        "header": {"report_id": id, "version": "1.0"},
        "metrics": {"listening_tcp_ports": {"ports": list, "total": ports.len()}}
    })
}

/// At most two listening ports, two datapoints in a row to alarm, one to clear.
fn few_ports() -> Value {
    json!({"securityProfileName": "few-ports", "behaviors": [{
        "name": "port-count",
        "metric": "aws:num-listening-tcp-ports",
        "criteria": {"comparisonOperator": "less-than", "value": {"count": 3},
                     "consecutiveDatapointsToAlarm": 2, "consecutiveDatapointsToClear": 1}
    }]})
}

/// A config for replay only: `[broker]` must still be valid (a loopback login), it is not used.
fn offline(dir: &Path, profiles: &[Value], attach: &[(&str, &str)]) -> std::path::PathBuf {
    let pdir = dir.join("profiles");
    std::fs::create_dir_all(&pdir).unwrap();
    for (i, p) in profiles.iter().enumerate() {
        std::fs::write(pdir.join(format!("p{i}.json")), p.to_string()).unwrap();
    }
    let mut text = format!(
        "[broker]\nendpoint = \"127.0.0.1\"\nusername = \"u\"\npassword_file = \"/dev/null\"\n[fleet]\nprofiles_dir = \"{}\"\n",
        pdir.display()
    );
    for (p, t) in attach {
        text.push_str(&format!("[[attach]]\nprofile = {p:?}\ntarget = {t:?}\n"));
    }
    let path = dir.join("fleet.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn lines(items: &[(&str, Value)]) -> String {
    items
        .iter()
        .map(|(t, r)| json!({"thing": t, "report": r}).to_string() + "\n")
        .collect()
}

/// `detect-fleet replay --config CONFIG ARGS`: (success, stdout, stderr).
fn replay(config: &Path, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(detect_testkit::bin::fleet())
        .arg("replay")
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .unwrap();
    let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
    (out.status.success(), text(out.stdout), text(out.stderr))
}

fn events(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// (thing, event type, metric value, violation id renamed in order of appearance): what
/// must agree between two runs whose ids and clocks differ.
fn shape(events: &[Value]) -> Vec<(String, String, String, String)> {
    let mut ids = BTreeMap::new();
    events
        .iter()
        .map(|e| {
            let n = ids.len();
            let id = ids
                .entry(e["violationId"].to_string())
                .or_insert_with(|| format!("v{n}"));
            (
                e["thingName"].to_string(),
                e["violationEventType"].to_string(),
                e["metricValue"].to_string(),
                id.clone(),
            )
        })
        .collect()
}

#[test]
fn replay_prints_the_alarm_and_its_clearing_with_the_same_bytes_every_run() {
    let work = tempfile::tempdir().unwrap();
    let config = offline(work.path(), &[few_ports()], &[("few-ports", "all-things")]);
    let counts: [&[u16]; 6] = [
        &[22],
        &[22, 80, 443],
        &[22, 80, 443],
        &[22, 80, 443],
        &[22],
        &[22],
    ];
    let mut input = Vec::new();
    for (i, ports) in counts.iter().enumerate() {
        input.push(("cam-1", report(T0 + i as u64 * STEP, ports)));
        input.push(("cam-2", report(T0 + i as u64 * STEP + 7, &[22])));
    }
    let file = work.path().join("reports.jsonl");
    std::fs::write(&file, lines(&input)).unwrap();
    let arg = file.to_str().unwrap();
    let (ok, first, err) = replay(&config, &[arg]);
    assert!(ok, "{err}");
    let got = events(&first);
    assert_eq!(got.len(), 2, "{first}");
    assert_eq!(got[0]["violationEventType"], "in-alarm");
    assert_eq!(got[0]["thingName"], "cam-1");
    assert_eq!(got[0]["violationEventTime"], T0 + 2 * STEP);
    assert_eq!(got[0]["metricValue"], json!({"count": 3}));
    assert_eq!(got[1]["violationEventType"], "alarm-cleared");
    assert_eq!(got[1]["violationEventTime"], T0 + 4 * STEP);
    assert_eq!(got[0]["violationId"], got[1]["violationId"]);
    assert!(err.contains("replayed 12 reports"), "{err}");
    let (_, second, _) = replay(&config, &[arg]);
    assert_eq!(first, second, "the same input gives the same bytes");
    let (_, seeded, _) = replay(&config, &[arg, "--seed", "7"]);
    assert_ne!(events(&seeded)[0]["violationId"], got[0]["violationId"]);
    assert_eq!(shape(&events(&seeded)), shape(&got));
}

#[test]
fn a_bad_line_is_an_error_naming_file_and_line_unless_keep_going() {
    let work = tempfile::tempdir().unwrap();
    let config = offline(work.path(), &[few_ports()], &[("few-ports", "all-things")]);
    let file = work.path().join("bad.jsonl");
    let good = lines(&[("cam-1", report(T0, &[22]))]);
    let text = format!(
        "{good}{{\"thing\": \"cam-1\"}}\n{}",
        lines(&[("cam-1", json!({"header": {}}))])
    );
    std::fs::write(&file, text).unwrap();
    let arg = file.to_str().unwrap();
    let (ok, _, err) = replay(&config, &[arg]);
    assert!(!ok);
    assert!(
        err.contains("bad.jsonl:2:") && err.contains("report"),
        "{err}"
    );
    let (ok, _, err) = replay(&config, &[arg, "--keep-going"]);
    assert!(!ok, "skipped lines still fail the run");
    assert!(err.contains("bad.jsonl:3:"), "{err}");
    assert!(err.contains("2 bad lines skipped"), "{err}");
}

/// detect-rules §4.8: the p50 of the previous window across the profile's things; the one
/// thing far above the others alarms, in replay as in `run`.
#[test]
fn a_statistical_threshold_works_in_replay() {
    let work = tempfile::tempdir().unwrap();
    let profile = json!({"securityProfileName": "stat", "behaviors": [{
        "name": "ports-p50", "metric": "aws:num-listening-tcp-ports",
        "criteria": {"comparisonOperator": "less-than-equals",
                     "statisticalThreshold": {"statistic": "p50"}, "durationSeconds": 300}
    }]});
    let config = offline(work.path(), &[profile], &[("stat", "all-things")]);
    let mut input = Vec::new();
    for w in 0..3u64 {
        for d in 0..5u64 {
            let ports: &[u16] = if d == 3 && w == 2 {
                &[1, 2, 3, 4, 5]
            } else {
                &[22]
            };
            input.push((
                ["d0", "d1", "d2", "d3", "d4"][d as usize],
                report(T0 + w * STEP + d * 1000, ports),
            ));
        }
    }
    let file = work.path().join("stat.jsonl");
    std::fs::write(&file, lines(&input)).unwrap();
    let (ok, out, err) = replay(&config, &[file.to_str().unwrap()]);
    assert!(ok, "{err}");
    let got = events(&out);
    assert_eq!(got.len(), 1, "{out}");
    assert_eq!(got[0]["thingName"], "d3");
    assert_eq!(got[0]["violationEventType"], "in-alarm");
}

/// The same reports published to the real service over mosquitto and replayed from a file:
/// the same events (ids and receive times aside).
#[tokio::test]
async fn replay_and_run_publish_the_same_events_for_the_same_reports() {
    let pki = Pki::generate();
    let broker = Broker::start(&pki);
    let work = tempfile::tempdir().unwrap();
    let profiles = [few_ports(), forbid_port("no-8080", 8080)];
    let attach = [("few-ports", "all-things"), ("no-8080", "all-things")];
    let mut fleet = Fleet::configure(work.path(), &pki, &broker, &profiles, &attach, 1);
    fleet.start_subscribed().await;
    let alarms = Alarms::start(&pki, broker.port, "detect-fleet/alarms/+").await;
    let (c, got) = client(&pki, broker.port).await;
    // Ids are send times 2 s apart, ending now (within the sequence rule's window).
    let base = now_ms() - 30_000;
    let plan: [&[u16]; 7] = [
        &[22],
        &[22, 80, 8080],
        &[22, 80, 443],
        &[22],
        &[22, 8080],
        &[22],
        &[22],
    ];
    let mut input = Vec::new();
    for (i, ports) in plan.iter().enumerate() {
        for (k, thing) in ["gw-1", "gw-2"].into_iter().enumerate() {
            let ports = if k == 0 { *ports } else { &[22u16][..] };
            let r = report(base + i as u64 * 2000 + k as u64, ports);
            let (topic, v) = send(&c, &got, thing, "json", serde_json::to_vec(&r).unwrap()).await;
            assert!(topic.ends_with("/accepted"), "{v}");
            input.push((thing, r));
        }
    }
    let file = work.path().join("same.jsonl");
    std::fs::write(&file, lines(&input)).unwrap();
    let (ok, out, err) = replay(&fleet.config, &[file.to_str().unwrap()]);
    assert!(ok, "{err}");
    let replayed = events(&out);
    assert!(replayed.len() >= 4, "{out}");
    let enough = || alarms.received().len() >= replayed.len();
    assert!(
        eventually(Duration::from_secs(20), enough).await,
        "{}",
        fleet.log()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let published: Vec<Value> = alarms.received().into_iter().map(|(_, v)| v).collect();
    assert_eq!(shape(&published), shape(&replayed), "{published:?}\n{out}");
    let key = |e: &Value| (e["reportId"].clone(), e["securityProfileName"].clone());
    let keys = |v: &[Value]| v.iter().map(key).collect::<Vec<_>>();
    assert_eq!(keys(&published), keys(&replayed));
}

/// detect-rules §4.6 on the replay's clock: a thing in alarm that falls silent while another
/// keeps reporting has its alarm invalidated, stamped 2 days after its last report, before
/// the other's later events: the sweep runs on the reports' clock, not only when the silent
/// thing reports again (which raises a new alarm).
#[test]
fn a_thing_silent_for_two_days_has_its_alarm_invalidated_in_replay() {
    let work = tempfile::tempdir().unwrap();
    let profiles = [forbid_port("no-8080", 8080)];
    let config = offline(work.path(), &profiles, &[("no-8080", "all-things")]);
    let mut input = vec![("quiet", report(T0, &[22, 8080]))];
    // The other thing reports every 5 min for 3 days.
    for i in 1..=864u64 {
        let ports: &[u16] = if i == 640 { &[22, 8080] } else { &[22] };
        input.push(("chatty", report(T0 + i * STEP, ports)));
        if i == 720 {
            input.push(("quiet", report(T0 + i * STEP + 1, &[22, 8080])));
        }
    }
    let file = work.path().join("silent.jsonl");
    std::fs::write(&file, lines(&input)).unwrap();
    let (ok, out, err) = replay(&config, &[file.to_str().unwrap()]);
    assert!(ok, "{err}");
    let got = events(&out);
    let kinds: Vec<&str> = got
        .iter()
        .map(|e| e["violationEventType"].as_str().unwrap_or_default())
        .collect();
    let things: Vec<&str> = got
        .iter()
        .map(|e| e["thingName"].as_str().unwrap_or_default())
        .collect();
    let expected = [
        "in-alarm",
        "alarm-invalidated",
        "in-alarm",
        "alarm-cleared",
        "in-alarm",
    ];
    assert_eq!(kinds, expected, "{out}");
    assert_eq!(
        things,
        ["quiet", "quiet", "chatty", "chatty", "quiet"],
        "{out}"
    );
    assert_eq!(got[1]["violationEventTime"], T0 + 48 * 3600 * 1000);
    assert_eq!(got[4]["violationEventTime"], T0 + 720 * STEP + 1);
    assert_eq!(got[0]["violationId"], got[1]["violationId"]);
    assert_ne!(got[1]["violationId"], got[4]["violationId"]);
}
