//! States written by the previous version (every behavior with its object, the whole
//! fingerprint text, traffic as objects) restore, continue and invalidate as they did; what
//! this version writes holds only what restore needs.

use std::path::Path;

use protocol::Report;
use serde_json::{Value, json};

use super::tests::{full_snapshot, profile};
use super::*;
use crate::ids::{IdSource, seeded_ids};
use crate::profile::{fingerprint_of, parse};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/fixtures/detect-worked-example"
);

/// The worked example's profile text and reports R1–R6.
fn worked() -> (String, Vec<Report>) {
    let text = std::fs::read_to_string(format!("{FIXTURE}/profile.json")).unwrap();
    let reports = (1..=6)
        .map(|i| {
            let bytes = std::fs::read(format!("{FIXTURE}/r{i}.json")).unwrap();
            protocol::decode(&bytes).unwrap().report
        })
        .collect();
    (text, reports)
}

fn worked_profile(text: &str) -> Profile {
    parse(text, Path::new("/p/test.json")).unwrap().0
}

/// The ids of the engine that wrote the fixtures (`seeded_ids(1)`) after `used` alarms.
fn ids_after(used: usize) -> IdSource {
    let mut ids = seeded_ids(1);
    for _ in 0..used {
        ids();
    }
    ids
}

/// A fixture written by the previous version: the worked example's state after R3 or R5.
fn old_state(name: &str) -> EngineState {
    let text = std::fs::read_to_string(format!("{FIXTURE}/{name}")).unwrap();
    let old: EngineState = serde_json::from_str(&text).unwrap();
    assert_eq!(
        old.behaviors.len(),
        4,
        "every behavior, as the old version wrote"
    );
    assert!(
        old.behaviors
            .iter()
            .all(|b| b.json.is_some() && b.fingerprint.contains('|'))
    );
    old
}

#[test]
fn states_of_the_previous_version_continue_as_they_did() {
    let (text, reports) = worked();
    let mut a = Engine::new("gw-01", vec![worked_profile(&text)], seeded_ids(1));
    let mut events = Vec::new();
    let mut states = Vec::new();
    for r in &reports {
        events.push(a.evaluate(r, r.header.report_id));
        states.push(serde_json::to_string(&a.snapshot()).unwrap());
    }
    // (fixture, reports it had seen, alarms raised by then)
    for (name, done, used) in [
        ("state-after-r3-v1.json", 3, 3),
        ("state-after-r5-v1.json", 5, 4),
    ] {
        let old = old_state(name);
        let profile = worked_profile(&text);
        for (saved, loaded) in old.behaviors.iter().zip(&profile.behaviors) {
            assert_eq!(fingerprint_of(&saved.fingerprint), loaded.fingerprint);
        }
        let (mut b, restored) = Engine::restore("gw-01", vec![profile], ids_after(used), old, 9);
        assert!(restored.is_empty(), "{name}: {restored:?}");
        let resaved = serde_json::to_string(&b.snapshot()).unwrap();
        assert_eq!(resaved, states[done - 1], "{name}: written again, compact");
        for (k, r) in reports.iter().enumerate().skip(done) {
            let got = b.evaluate(r, r.header.report_id);
            assert_eq!(got, events[k], "{name}: R{}", k + 1);
        }
    }
    assert_eq!(
        events.iter().map(Vec::len).sum::<usize>(),
        8,
        "the eight events of §9"
    );
}

#[test]
fn a_state_of_the_previous_version_invalidates_changed_behaviors_as_it_did() {
    let (text, reports) = worked();
    let mut a = Engine::new("gw-01", vec![worked_profile(&text)], seeded_ids(1));
    for r in &reports[..3] {
        a.evaluate(r, r.header.report_id);
    }
    // no-telnet's ports change (invalidated), no-private-dest is removed (invalidated),
    // bytes-out only gets suppressAlerts and a datapoint count (kept).
    let mut v: Value = serde_json::from_str(&text).unwrap();
    let b = v["behaviors"].as_array_mut().unwrap();
    b[0]["criteria"]["value"]["ports"] = json!([23]);
    b[3]["suppressAlerts"] = json!(true);
    b[3]["criteria"]["consecutiveDatapointsToClear"] = json!(2);
    b.remove(2);
    let changed = || vec![profile(&v)];
    let old = old_state("state-after-r3-v1.json");
    let (mut from_old, got) = Engine::restore("gw-01", changed(), ids_after(3), old, 77);
    let (_, want) = Engine::restore("gw-01", changed(), ids_after(3), full_snapshot(&a), 77);
    assert_eq!(got, want);
    let names: Vec<_> = got.iter().map(|e| e.behavior_name()).collect();
    assert_eq!(names, ["no-telnet", "no-private-dest"]);
    assert!(
        got.iter()
            .all(|e| e.violation_event_type == EventType::AlarmInvalidated)
    );
    assert_eq!(
        got[0].behavior["criteria"]["value"]["ports"],
        json!([23, 2323])
    );
    // The compact state of the in-memory engine invalidates the same on reload.
    assert_eq!(a.reload(changed(), 77), want);
    let (r4, id) = (&reports[3], reports[3].header.report_id);
    assert_eq!(from_old.evaluate(r4, id), a.evaluate(r4, id));
}

#[test]
fn the_saved_state_holds_only_what_restore_needs() {
    let (text, reports) = worked();
    let mut a = Engine::new("gw-01", vec![worked_profile(&text)], seeded_ids(1));
    let keys = |v: &Value| -> Vec<String> { v.as_object().unwrap().keys().cloned().collect() };
    for r in &reports[..3] {
        a.evaluate(r, r.header.report_id);
    }
    // After R3: three alarms (with their behavior objects), tcp-conns' run of two.
    let v = serde_json::to_value(a.snapshot()).unwrap();
    let behaviors: Vec<_> = v["behaviors"]
        .as_array()
        .unwrap()
        .iter()
        .map(keys)
        .collect();
    let with_alarm = ["alarm", "behavior", "fingerprint", "json", "profile"];
    let run = ["bad_run", "behavior", "fingerprint", "profile"];
    assert_eq!(behaviors, [&with_alarm[..], &run, &with_alarm, &with_alarm]);
    assert_eq!(v["behaviors"][1]["bad_run"], 2);
    assert_eq!(v["behaviors"][0]["fingerprint"].as_str().unwrap().len(), 16);
    assert_eq!(
        v["traffic"][0],
        json!([1767225600000u64, [90000, 200000, 700, 1300]])
    );
    // After R6 every behavior is back in its fresh state: none is written.
    for r in &reports[3..] {
        a.evaluate(r, r.header.report_id);
    }
    let v = serde_json::to_value(a.snapshot()).unwrap();
    assert_eq!(keys(&v), ["last_report_ms", "traffic"]);
    assert_eq!(
        serde_json::from_value::<EngineState>(v).unwrap(),
        a.snapshot()
    );
}

#[test]
fn a_state_written_by_hand_with_less_restores_what_it_has() {
    let (text, _) = worked();
    let restore = |state: &str| {
        let state: EngineState = serde_json::from_str(state).unwrap();
        Engine::restore(
            "gw-01",
            vec![worked_profile(&text)],
            seeded_ids(1),
            state,
            5,
        )
    };
    let (fresh, events) = restore("{}");
    assert!(events.is_empty());
    assert_eq!(fresh.snapshot(), EngineState::default());
    // An alarm of a behavior that is gone, saved without its object: the event names it.
    let (_, events) = restore(
        r#"{"behaviors": [{"profile": "edge-baseline", "behavior": "gone", "fingerprint": "0",
            "alarm": {"violation_id": "ab", "start_ms": 1, "last_violation_ms": 2}}]}"#,
    );
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].behavior, json!({"name": "gone"}));
    assert_eq!(events[0].violation_id, "ab");
}
