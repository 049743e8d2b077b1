//! The alarm state machine: the worked example of detect-rules §9 with its exact eight events,
//! defaults, traffic windows, restore and invalidation, staleness.

use super::*;
use crate::check::CheckOutcome;
use crate::event::MetricValue;
use crate::profile::parse;
use crate::state::EngineState;
use protocol::{Report, decode};
use serde_json::json;
use std::path::Path;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/fixtures/detect-worked-example"
);
const FIRST_ID: u128 = 0x5f0c1a2b3c4d4e5f8a9b0c1d2e3f4a51;

/// Ids 5f0c…4a51, …4a52, … in order of use.
fn counter() -> IdSource {
    let mut next = FIRST_ID;
    Box::new(move || {
        let id = next;
        next += 1;
        id
    })
}

fn profile_from(text: &str) -> Profile {
    parse(text, Path::new("/p/test.json")).unwrap().0
}

fn worked_profile() -> Profile {
    profile_from(&std::fs::read_to_string(format!("{FIXTURE}/profile.json")).unwrap())
}

fn worked_reports() -> Vec<Report> {
    (1..=6)
        .map(|i| {
            let bytes = std::fs::read(format!("{FIXTURE}/r{i}.json")).unwrap();
            decode(&bytes).unwrap().report
        })
        .collect()
}

/// (time, behavior, type, metricValue, id suffix) of the §9 table.
fn summary(events: &[Event]) -> Vec<(u64, String, &'static str, serde_json::Value, String)> {
    events
        .iter()
        .map(|e| {
            (
                e.violation_event_time,
                e.behavior_name().to_string(),
                e.violation_event_type.name(),
                serde_json::to_value(&e.metric_value).unwrap(),
                e.violation_id.clone(),
            )
        })
        .collect()
}

fn id(n: u128) -> String {
    violation_id(FIRST_ID + n - 1)
}

#[test]
fn the_worked_example_gives_exactly_the_eight_events_of_section_9() {
    let mut engine = Engine::new("gw-01", vec![worked_profile()], counter());
    let mut events = Vec::new();
    let mut per_report = Vec::new();
    for r in worked_reports() {
        let got = engine.evaluate(&r, r.header.report_id);
        per_report.push(got.len());
        events.extend(got);
    }
    let t = |k: u64| 1767225600000 + k * 300_000;
    let want = vec![
        (
            t(1),
            "no-telnet".into(),
            "in-alarm",
            json!({"ports": [22, 23]}),
            id(1),
        ),
        (
            t(1),
            "no-private-dest".into(),
            "in-alarm",
            json!({"cidrs": ["10.1.2.3", "203.0.113.7"]}),
            id(2),
        ),
        (
            t(1),
            "bytes-out".into(),
            "in-alarm",
            json!({"count": 1500000}),
            id(3),
        ),
        (
            t(3),
            "tcp-conns".into(),
            "in-alarm",
            json!({"count": 80}),
            id(4),
        ),
        (
            t(3),
            "no-private-dest".into(),
            "alarm-cleared",
            json!({"cidrs": ["203.0.113.7"]}),
            id(2),
        ),
        (
            t(3),
            "bytes-out".into(),
            "alarm-cleared",
            json!({"count": 300000}),
            id(3),
        ),
        (
            t(4),
            "no-telnet".into(),
            "alarm-cleared",
            json!({"ports": []}),
            id(1),
        ),
        (
            t(5),
            "tcp-conns".into(),
            "alarm-cleared",
            json!({"count": 30}),
            id(4),
        ),
    ];
    assert_eq!(summary(&events), want);
    assert_eq!(per_report, vec![0, 3, 0, 3, 1, 1], "R3 emits nothing");
    assert_eq!(engine.active_alarms(), 0);
    // Event 1 in full, plus our reportId.
    let first = serde_json::to_value(&events[0]).unwrap();
    assert_eq!(
        first,
        json!({"violationEventTime": 1767225900000u64, "thingName": "gw-01",
            "securityProfileName": "edge-baseline",
            "behavior": {"name": "no-telnet", "metric": "aws:listening-tcp-ports",
                "criteria": {"comparisonOperator": "not-in-port-set", "value": {"ports": [23, 2323]}}},
            "violationEventType": "in-alarm", "metricValue": {"ports": [22, 23]},
            "violationId": "5f0c1a2b3c4d4e5f8a9b0c1d2e3f4a51", "verificationState": "UNKNOWN",
            "reportId": 1767225900000u64})
    );
}

#[test]
fn a_violating_report_during_clearing_restarts_the_good_run() {
    // §9: had R5 reported 55 connections, event 8 would not happen at R6.
    let mut engine = Engine::new("gw-01", vec![worked_profile()], counter());
    let mut reports = worked_reports();
    reports[4].metrics.established.total = 55;
    let events: Vec<Event> = reports
        .iter()
        .flat_map(|r| engine.evaluate(r, r.header.report_id))
        .collect();
    assert!(
        !events.iter().any(|e| e.behavior_name() == "tcp-conns"
            && e.violation_event_type == EventType::AlarmCleared)
    );
    assert_eq!(engine.active_alarms(), 1);
}

fn one_behavior(metric: &str, criteria: serde_json::Value) -> Profile {
    profile_from(
        &json!({"securityProfileName": "p", "behaviors": [
            {"name": "b", "metric": metric, "criteria": criteria}]})
        .to_string(),
    )
}

fn report_with(tcp_total: u64, bytes_out: Option<u64>, id: u64) -> Report {
    let mut r = worked_reports().remove(0);
    r.header.report_id = id;
    r.metrics.established.total = tcp_total;
    r.metrics.network_stats = bytes_out.map(|b| NetworkStats {
        bytes_out: b,
        ..Default::default()
    });
    r
}

#[test]
fn defaults_are_one_datapoint_to_alarm_and_one_to_clear() {
    let p = one_behavior(
        "aws:num-established-tcp-connections",
        json!({"comparisonOperator": "less-than-equals", "value": {"count": 5}}),
    );
    let rule = p.behaviors[0].rule.as_ref().unwrap();
    assert_eq!((rule.to_alarm, rule.to_clear), (1, 1));
    let mut e = Engine::new("t", vec![p], counter());
    assert!(e.evaluate(&report_with(5, None, 1), 1).is_empty());
    let up = e.evaluate(&report_with(6, None, 2), 2);
    assert_eq!(up[0].violation_event_type, EventType::InAlarm);
    assert!(
        e.evaluate(&report_with(7, None, 3), 3).is_empty(),
        "one in-alarm per episode"
    );
    let down = e.evaluate(&report_with(0, None, 4), 4);
    assert_eq!(down[0].violation_event_type, EventType::AlarmCleared);
    assert_eq!(down[0].violation_id, up[0].violation_id);
    let again = e.evaluate(&report_with(9, None, 5), 5);
    assert_ne!(
        again[0].violation_id, up[0].violation_id,
        "a new episode, a new id"
    );
}

#[test]
fn traffic_with_a_duration_sums_the_trailing_window_and_missing_stats_are_no_datapoint() {
    let p = one_behavior(
        "aws:all-bytes-out",
        json!({"comparisonOperator": "less-than-equals", "value": {"count": 1000}, "durationSeconds": 900}),
    );
    let mut e = Engine::new("t", vec![p], counter());
    let min5 = 300_000;
    assert!(e.evaluate(&report_with(0, Some(400), 1), min5).is_empty());
    assert!(
        e.evaluate(&report_with(0, Some(400), 2), 2 * min5)
            .is_empty()
    );
    // No network_stats: no datapoint, the window is not evaluated.
    assert!(e.evaluate(&report_with(0, None, 3), 3 * min5).is_empty());
    // (t-900 s, t] at 4×5 min holds reports 2 and 4 (report 1 is at exactly t-900 s).
    assert!(
        e.evaluate(&report_with(0, Some(600), 4), 4 * min5)
            .is_empty()
    );
    let up = e.evaluate(&report_with(0, Some(1), 5), 5 * min5);
    assert!(up.is_empty(), "600+1 within the window: {up:?}");
    let up = e.evaluate(&report_with(0, Some(500), 6), 6 * min5);
    assert_eq!(up[0].metric_value, Some(MetricValue::Count(1101)));
}

#[test]
fn restore_keeps_unchanged_alarms_and_invalidates_changed_or_removed_ones() {
    let text = std::fs::read_to_string(format!("{FIXTURE}/profile.json")).unwrap();
    let mut engine = Engine::new("gw-01", vec![profile_from(&text)], counter());
    let reports = worked_reports();
    for r in &reports[..3] {
        engine.evaluate(r, r.header.report_id);
    }
    assert_eq!(engine.active_alarms(), 3); // no-telnet, no-private-dest, bytes-out
    let saved: EngineState =
        serde_json::from_str(&serde_json::to_string(&engine.snapshot()).unwrap()).unwrap();
    // Same profiles: nothing invalidated, runs and alarms continue (R4 then raises tcp-conns).
    let (mut same, events) = Engine::restore(
        "gw-01",
        vec![profile_from(&text)],
        counter(),
        saved.clone(),
        9,
    );
    assert!(events.is_empty());
    assert_eq!(same.active_alarms(), 3);
    let r4 = same.evaluate(&reports[3], reports[3].header.report_id);
    assert_eq!(r4.len(), 3);
    assert_eq!(r4[1].violation_id, id(2), "ids survive a restart");
    // Changed: no-telnet's ports change (invalidate), bytes-out only gets suppressAlerts and
    // a datapoint count (kept), no-private-dest is removed (invalidate).
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let b = v["behaviors"].as_array_mut().unwrap();
    b[0]["criteria"]["value"]["ports"] = json!([23]);
    b[3]["suppressAlerts"] = json!(true);
    b[3]["criteria"]["consecutiveDatapointsToClear"] = json!(2);
    b.remove(2);
    let (changed, events) = Engine::restore(
        "gw-01",
        vec![profile_from(&v.to_string())],
        counter(),
        saved.clone(),
        77,
    );
    let kinds: Vec<_> = events
        .iter()
        .map(|e| {
            (
                e.behavior_name().to_string(),
                e.violation_event_type,
                e.violation_id.clone(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("no-telnet".into(), EventType::AlarmInvalidated, id(1)),
            ("no-private-dest".into(), EventType::AlarmInvalidated, id(2)),
        ]
    );
    assert!(
        events
            .iter()
            .all(|e| e.metric_value.is_none() && e.violation_event_time == 77)
    );
    let wire = serde_json::to_value(&events[0]).unwrap();
    assert!(wire.get("metricValue").is_none() && wire.get("reportId").is_none());
    assert_eq!(changed.active_alarms(), 1);
    // A removed profile invalidates all its alarms; reload does the same in place.
    let (_, events) = Engine::restore("gw-01", vec![], counter(), saved, 5);
    assert_eq!(events.len(), 3);
    let mut live = same; // after R4: no-telnet and tcp-conns are active
    let events = live.reload(vec![], 6);
    assert_eq!(events.len(), 2);
    assert_eq!(live.active_alarms(), 0);
}

#[test]
fn two_silent_days_invalidate_active_alarms_before_the_next_datapoint() {
    let mut e = Engine::new("gw-01", vec![worked_profile()], counter());
    let reports = worked_reports();
    e.evaluate(&reports[1], 1_000);
    assert_eq!(e.active_alarms(), 3);
    let later = 1_000 + STALE_AFTER_MS + 1;
    let events = e.evaluate(&reports[0], later);
    let invalidated: Vec<_> = events
        .iter()
        .filter(|e| e.violation_event_type == EventType::AlarmInvalidated)
        .collect();
    assert_eq!(invalidated.len(), 3);
    assert!(
        invalidated
            .iter()
            .all(|ev| ev.violation_event_time == 1_000 + STALE_AFTER_MS)
    );
    assert_eq!(e.active_alarms(), 0);
}

#[test]
fn custom_metrics_are_evaluated_by_their_inferred_type() {
    use protocol::CustomValue;
    let p = profile_from(
        &json!({"securityProfileName": "p", "behaviors": [
            {"name": "battery", "metric": "battery_pct",
             "criteria": {"comparisonOperator": "greater-than", "value": {"number": 15}}},
            {"name": "mods", "metric": "fw_modules",
             "criteria": {"comparisonOperator": "in-set", "value": {"strings": ["net", "ota"]}}},
            {"name": "peers", "metric": "peers",
             "criteria": {"comparisonOperator": "in-cidr-set", "value": {"cidrs": ["198.51.100.0/24"]}}},
            {"name": "cores", "metric": "cpu",
             "criteria": {"comparisonOperator": "not-in-set", "value": {"numbers": [100]}}}]})
        .to_string(),
    );
    let mut r = worked_reports().remove(0);
    let c = &mut r.custom_metrics;
    c.insert("battery_pct".into(), CustomValue::Number(15.0));
    c.insert(
        "fw_modules".into(),
        CustomValue::StringList(vec!["net".into(), "ssh".into()]),
    );
    c.insert(
        "peers".into(),
        CustomValue::IpList(vec!["198.51.100.9".parse().unwrap()]),
    );
    // Reported with another type than the profile implies: no datapoint.
    c.insert("cpu".into(), CustomValue::Number(100.0));
    let checks = check(std::slice::from_ref(&p), &r);
    let outcome = |i: usize| &checks[i].outcome;
    assert!(
        matches!(outcome(0), CheckOutcome::Violating { offending, .. } if offending == &["15"])
    );
    assert!(
        matches!(outcome(1), CheckOutcome::Violating { offending, .. } if offending == &["ssh"])
    );
    assert!(matches!(outcome(2), CheckOutcome::Normal { .. }));
    assert!(matches!(outcome(3), CheckOutcome::NoDatapoint { .. }));
    let events = Engine::new("t", vec![p], counter()).evaluate(&r, 1);
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].metric_value, Some(MetricValue::Number(15.0)));
}

#[test]
fn seeded_ids_are_32_hex_deterministic_and_distinct() {
    let (mut a, mut b) = (seeded_ids(7), seeded_ids(7));
    let ids: Vec<String> = (0..100).map(|_| violation_id(a())).collect();
    assert_eq!(violation_id(b()), ids[0]);
    let distinct: std::collections::BTreeSet<&String> = ids.iter().collect();
    assert_eq!(distinct.len(), 100);
    assert!(
        ids.iter()
            .all(|i| i.len() == 32 && i.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')))
    );
}
