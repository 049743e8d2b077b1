//! Unit tests of `metrics`: counting by profile and behavior, the histogram's cumulative
//! buckets, label escaping and the bound on series.

use std::time::Duration;

use detect::{Event, EventType};

use super::*;

fn event(profile: &str, behavior: &str, kind: EventType) -> Recorded {
    Recorded {
        event: Event {
            violation_event_time: 1,
            thing_name: "t-1".into(),
            security_profile_name: profile.into(),
            behavior: serde_json::json!({"name": behavior}),
            violation_event_type: kind,
            metric_value: None,
            violation_id: "0".repeat(32),
            verification_state: "UNKNOWN".into(),
            report_id: None,
            violation_event_additional_info: None,
            explanation: None,
        },
        suppressed: false,
    }
}

#[test]
fn transitions_are_counted_per_profile_and_behavior_never_per_thing() {
    let m = Metrics::new();
    m.declare([("p".to_string(), "quiet".to_string())], false);
    m.events(&[
        event("p", "b", EventType::InAlarm),
        event("p", "b", EventType::AlarmCleared),
        event("p", "b", EventType::InAlarm),
        event("p", "b", EventType::AlarmInvalidated),
    ]);
    let text = m.render();
    let has = |line: &str| text.lines().any(|l| l == line);
    assert!(
        has("detect_fleet_alarms_raised_total{security_profile=\"p\",behavior=\"b\"} 2"),
        "{text}"
    );
    assert!(has(
        "detect_fleet_alarms_cleared_total{security_profile=\"p\",behavior=\"b\"} 1"
    ));
    assert!(has(
        "detect_fleet_alarms_invalidated_total{security_profile=\"p\",behavior=\"b\"} 1"
    ));
    assert!(has(
        "detect_fleet_alarms_raised_total{security_profile=\"p\",behavior=\"quiet\"} 0"
    ));
    assert!(has("detect_fleet_alerts_sent_total{sink=\"mqtt\"} 0"));
    assert!(!text.contains("t-1"));
}

#[test]
fn the_latency_histogram_is_cumulative_and_outcomes_carry_the_error_code() {
    let m = Metrics::new();
    m.report(true, false, None, Duration::from_micros(300));
    m.report(true, true, None, Duration::from_millis(3));
    m.report(false, false, Some("Throttled"), Duration::from_secs(10));
    let text = m.render();
    let has = |line: &str| text.lines().any(|l| l == line);
    let name = "detect_fleet_report_handling_seconds";
    assert!(has(&format!("{name}_bucket{{le=\"0.0005\"}} 1")), "{text}");
    assert!(has(&format!("{name}_bucket{{le=\"0.005\"}} 2")));
    assert!(has(&format!("{name}_bucket{{le=\"2.5\"}} 2")));
    assert!(has(&format!("{name}_bucket{{le=\"+Inf\"}} 3")));
    assert!(has(&format!("{name}_count 3")));
    assert!(has(
        "detect_fleet_reports_total{outcome=\"rejected\",error_code=\"Throttled\"} 1"
    ));
    assert!(has(
        "detect_fleet_reports_total{outcome=\"replayed\",error_code=\"\"} 1"
    ));
}

#[test]
fn label_values_are_escaped_and_series_are_bounded() {
    let m = Metrics::new();
    m.events(&[event("a\"b\\c\nd", "x", EventType::InAlarm)]);
    assert!(m.render().contains("security_profile=\"a\\\"b\\\\c\\nd\""));
    let many: Vec<(String, String)> = (0..MAX_SERIES)
        .map(|i| ("p".into(), format!("b{i}")))
        .collect();
    m.declare(many, false);
    m.events(&[event("p", "new", EventType::InAlarm)]);
    let text = m.render();
    assert!(
        text.contains("{security_profile=\"p\",behavior=\"(other)\"} 1"),
        "{}",
        text.len()
    );
    assert!(!text.contains("behavior=\"new\""));
}
