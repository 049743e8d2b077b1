//! ML Detect end to end on the command line: `detect-agent evaluate` learns a device's bytes out
//! from its reports and alarms on a 40× jump at every level, with AWS's confidenceLevel and our
//! explanation, then clears; `dump --profile` shows each model's status from the state
//! directory and reports a damaged models file by name.

use std::path::Path;

use detect_testkit::run::run_cli;
use serde_json::{Value, json};

/// 2026-01-01 00:00 UTC, reports every 300 s.
const START: u64 = 1_767_225_600_000;
const STEP: u64 = 300_000;

fn ml_profile(dir: &Path) -> String {
    let b = |level: &str| {
        json!({"name": format!("out-{level}"), "metric": "aws:all-bytes-out",
            "criteria": {"mlDetectionConfig": {"confidenceLevel": level}, "consecutiveDatapointsToClear": 2}})
    };
    let profile = json!({"securityProfileName": "ml",
        "behaviors": [b("LOW"), b("MEDIUM"), b("HIGH")]});
    let path = dir.join("ml.json");
    std::fs::write(&path, profile.to_string()).unwrap();
    path.display().to_string()
}

/// Three days with a daily rhythm and a fixed pattern of ±20 %, then two hours at 40×, then
/// two normal hours, as JSON lines.
fn reports() -> String {
    let mut out = String::new();
    for i in 0..(3 * 288 + 48) {
        let hour = i / 12 % 24;
        let base = if (8..20).contains(&hour) {
            60_000
        } else {
            15_000
        };
        let mut out_bytes = base * (80 + (i * 37 % 41)) / 100;
        if (3 * 288..3 * 288 + 24).contains(&i) {
            out_bytes *= 40;
        }
        let r = json!({"header": {"report_id": START + i * STEP, "version": "1.0"},
            "metrics": {"network_stats": {"bytes_in": 1000, "bytes_out": out_bytes, "packets_in": 10, "packets_out": 10}}});
        out.push_str(&r.to_string());
        out.push('\n');
    }
    out
}

#[test]
fn evaluate_learns_and_a_40x_jump_alarms_at_every_level_with_confidence_and_explanation() {
    let dir = tempfile::tempdir().unwrap();
    let p = ml_profile(dir.path());
    let ran = run_cli(
        &["evaluate", "--profile", &p, "--thing", "dev"],
        reports().as_bytes(),
    );
    assert_eq!(ran.code, 0, "{:?}", ran.stderr);
    assert!(ran.stderr.is_empty(), "{:?}", ran.stderr);
    let events: Vec<Value> = ran
        .stdout
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let attack = START + 3 * 288 * STEP;
    for level in ["LOW", "MEDIUM", "HIGH"] {
        let name = format!("out-{level}");
        let of: Vec<&Value> = events
            .iter()
            .filter(|e| e["behavior"]["name"] == name)
            .collect();
        assert_eq!(of.len(), 2, "{level}: {:#?}", ran.stdout);
        let (raised, cleared) = (of[0], of[1]);
        assert_eq!(raised["violationEventType"], "in-alarm");
        assert_eq!(raised["violationEventTime"], attack);
        assert_eq!(
            raised["violationEventAdditionalInfo"],
            json!({"confidenceLevel": level})
        );
        let why = raised["explanation"].as_str().unwrap();
        assert!(
            why.starts_with("aws:all-bytes-out ")
                && why.contains("× this device's usual for Sun 00:00–01:00 UTC"),
            "{why}"
        );
        assert_eq!(cleared["violationEventType"], "alarm-cleared");
        assert_eq!(cleared["violationId"], raised["violationId"]);
        assert_eq!(
            cleared["violationEventAdditionalInfo"],
            json!({"confidenceLevel": level})
        );
        assert!(cleared.get("explanation").is_none());
    }
    assert_eq!(events.len(), 6);
}

#[test]
fn dump_shows_each_model_and_names_a_damaged_models_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = ml_profile(dir.path());
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    std::fs::write(state.join("models.json"), b"{not json").unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!("[state]\ndir = {:?}\n", state.display().to_string()),
    )
    .unwrap();
    let c = config.display().to_string();
    let ran = run_cli(&["dump", "--config", &c, "--profile", &p], b"");
    assert_eq!(ran.code, 0, "{:?}", ran.stderr);
    let table = ran.stdout.join("\n");
    assert!(table.contains("ML MODELS (saved in"), "{table}");
    for level in ["LOW", "MEDIUM", "HIGH"] {
        let row = ran
            .stdout
            .iter()
            .find(|l| l.contains(&format!("out-{level} ")) && l.contains("PENDING_BUILD"));
        assert!(
            row.is_some_and(|r| r.contains("PENDING_BUILD: 0 of 288 datapoints (0 %)")),
            "{table}"
        );
    }
    let stderr = ran.stderr.join("\n");
    assert!(
        stderr.contains("models.json") && stderr.contains("ML models file unreadable or damaged"),
        "{stderr}"
    );
    assert!(
        !state.join("report_id").exists(),
        "dump writes nothing in the state directory"
    );
}
