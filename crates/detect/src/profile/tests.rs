//! Loader tests: the §2.7 and §9 profiles load; every §2 rule rejects with one line naming
//! file, behavior and field; warnings for what the device does not evaluate; cidrsFile.

use std::path::{Path, PathBuf};

use super::*;
use crate::criteria::{Criterion, Reference};
use crate::metrics::{CloudMetric, Dimension, MetricRef};

fn parse_text(text: &str) -> Result<(Profile, Vec<Warning>), ProfileError> {
    parse(text, Path::new("/p/edge.json"))
}

#[test]
fn the_worked_example_profile_loads() {
    let (p, w) = parse_text(include_str!(
        "../../../../tests/fixtures/detect-worked-example/profile.json"
    ))
    .unwrap();
    assert_eq!(p.name, "edge-baseline");
    assert_eq!(p.behaviors.len(), 4);
    assert!(w.is_empty(), "{w:?}");
    assert!(p.behaviors.iter().all(|b| b.evaluated_rule().is_some()));
}

/// The problems of a profile holding `behaviors`, one line each.
fn problems(behaviors: serde_json::Value) -> Vec<String> {
    let text = serde_json::json!({"securityProfileName": "p", "behaviors": behaviors}).to_string();
    match parse_text(&text) {
        Ok(_) => vec![],
        Err(e) => e.problems.iter().map(ToString::to_string).collect(),
    }
}

fn criteria(metric: &str, c: serde_json::Value) -> serde_json::Value {
    serde_json::json!([{"name": "b1", "metric": metric, "criteria": c}])
}

#[test]
fn each_rule_of_section_2_is_one_line_naming_file_behavior_and_field() {
    use serde_json::json;
    let cases = [
        (
            criteria(
                "aws:num-listening-tcp-ports",
                json!({"comparisonOperator": "in-port-set", "value": {"count": 1}}),
            ),
            "behavior b1: criteria.comparisonOperator: in-port-set does not apply to aws:num-listening-tcp-ports",
        ),
        (
            criteria(
                "aws:listening-tcp-ports",
                json!({"comparisonOperator": "in-port-set", "value": {"count": 1}}),
            ),
            "behavior b1: criteria.value.count: aws:listening-tcp-ports takes value.ports",
        ),
        (
            criteria(
                "aws:listening-tcp-ports",
                json!({"comparisonOperator": "in-port-set", "value": {"ports": [70000]}}),
            ),
            "criteria.value.ports[0]: 70000 is not a port 0-65535",
        ),
        (
            criteria(
                "aws:all-bytes-out",
                json!({"comparisonOperator": "less-than", "value": {"count": 1}, "consecutiveDatapointsToAlarm": 11}),
            ),
            "behavior b1: criteria.consecutiveDatapointsToAlarm: 11 is outside 1-10",
        ),
        (
            criteria(
                "aws:all-bytes-out",
                json!({"comparisonOperator": "less-than", "value": {"count": 1}, "consecutiveDatapointsToClear": 0}),
            ),
            "criteria.consecutiveDatapointsToClear: 0 is outside 1-10",
        ),
        (
            criteria(
                "aws:all-bytes-out",
                json!({"comparisonOperator": "less-than", "value": {"count": 1}, "durationSeconds": 60}),
            ),
            "criteria.durationSeconds: 60 is not one of 300, 600, 900, 1800, 3600",
        ),
        (
            criteria(
                "aws:listening-udp-ports",
                json!({"comparisonOperator": "in-port-set", "value": {"ports": [53]}, "durationSeconds": 300}),
            ),
            "criteria.durationSeconds: not allowed for the list metric aws:listening-udp-ports",
        ),
        (
            criteria(
                "aws:destination-ip-addresses",
                json!({"comparisonOperator": "in-cidr-set", "value": {"cidrs": ["10.0.0.0/8", "zz"]}}),
            ),
            "criteria.value.cidrs[1]: \"zz\" must be 2-43 characters of [a-fA-F0-9:./]",
        ),
        (
            criteria(
                "aws:destination-ip-addresses",
                json!({"comparisonOperator": "in-cidr-set", "value": {"cidrs": ["10.0.0.0/33"]}}),
            ),
            "criteria.value.cidrs[0]: \"10.0.0.0/33\" has a prefix length outside 0-32",
        ),
        (
            criteria(
                "aws:all-bytes-out",
                json!({"comparisonOperator": "less-than", "value": {"count": -1}}),
            ),
            "criteria.value.count: -1 must be an integer >= 0",
        ),
        (
            criteria(
                "aws:all-bytes-out",
                json!({"comparisonOperator": "less-than", "value": {"count": 1, "number": 2}}),
            ),
            "criteria.value: must hold exactly one field",
        ),
        (
            criteria(
                "aws:all-bytes-out",
                json!({"comparisonOperator": "below", "value": {"count": 1}}),
            ),
            "criteria.comparisonOperator: \"below\" is not one of less-than",
        ),
        (
            criteria(
                "aws:all-bytes-out",
                json!({"comparisonOperator": "less-than"}),
            ),
            "criteria.value: is required with a static comparisonOperator",
        ),
        (
            criteria(
                "aws:all-bytes-out",
                json!({"comparisonOperator": "less-than", "value": {"count": 1}, "window": 3}),
            ),
            "behavior b1: criteria.window: unknown key",
        ),
        (
            criteria(
                "aws:all-bytes-out",
                json!({"comparisonOperator": "less-than", "statisticalThreshold": {"statistic": "p99"}}),
            ),
            "criteria.durationSeconds: is required with statisticalThreshold",
        ),
        (
            criteria(
                "aws:all-bytes-out",
                json!({"comparisonOperator": "less-than", "durationSeconds": 300, "statisticalThreshold": {"statistic": "p95"}}),
            ),
            "criteria.statisticalThreshold.statistic: must be one of p0, p0.1",
        ),
        (
            criteria(
                "aws:all-bytes-out",
                json!({"comparisonOperator": "less-than", "value": {"count": 1}, "durationSeconds": 300, "statisticalThreshold": {"statistic": "p99"}}),
            ),
            "criteria.value: not allowed with statisticalThreshold",
        ),
        (
            criteria(
                "aws:listening-tcp-ports",
                json!({"comparisonOperator": "in-port-set", "durationSeconds": 300, "statisticalThreshold": {"statistic": "p99"}}),
            ),
            "criteria.comparisonOperator: in-port-set cannot compare with a percentile",
        ),
        (
            criteria(
                "aws:all-bytes-out",
                json!({"mlDetectionConfig": {"confidenceLevel": "LOW"}, "durationSeconds": 300}),
            ),
            "criteria.durationSeconds: not allowed with mlDetectionConfig",
        ),
        (
            criteria("aws:all-bytes-out", json!({"mlDetectionConfig": {}})),
            "criteria.mlDetectionConfig.confidenceLevel: is required: LOW, MEDIUM or HIGH",
        ),
        (
            criteria(
                "aws:listening-tcp-ports",
                json!({"mlDetectionConfig": {"confidenceLevel": "HIGH"}}),
            ),
            "criteria.mlDetectionConfig: ML Detect does not support aws:listening-tcp-ports",
        ),
        (
            criteria(
                "aws:all-bytez-out",
                json!({"comparisonOperator": "less-than", "value": {"count": 1}}),
            ),
            "behavior b1: metric: \"aws:all-bytez-out\" is not an AWS IoT Device Defender metric",
        ),
        (
            criteria(
                "battery pct",
                json!({"comparisonOperator": "less-than", "value": {"number": 1}}),
            ),
            "metric: custom metric name \"battery pct\" must be 1-128",
        ),
        (
            criteria(
                "battery",
                json!({"comparisonOperator": "less-than", "value": {"count": 1}}),
            ),
            "criteria.value.count: a custom metric takes number, numbers, strings or cidrs",
        ),
        (
            criteria(
                "mods",
                json!({"comparisonOperator": "in-port-set", "value": {"strings": ["a"]}}),
            ),
            "criteria.comparisonOperator: in-port-set does not apply to mods (takes in-set, not-in-set)",
        ),
        (
            criteria(
                "battery",
                json!({"comparisonOperator": "less-than", "value": {"number": 1}, "durationSeconds": 300}),
            ),
            "",
        ), // a custom number takes a duration
        (
            criteria(
                "mods",
                json!({"comparisonOperator": "in-set", "value": {"strings": ["a"]}, "durationSeconds": 300}),
            ),
            "criteria.durationSeconds: not allowed for the list metric mods",
        ),
        (
            json!([{"name": "b1", "metric": "aws:all-bytes-out", "metricDimension": {"dimensionName": "d"},
                 "criteria": {"comparisonOperator": "less-than", "value": {"count": 1}}}]),
            "behavior b1: metricDimension: only the topic-scoped cloud-side metrics take a dimension",
        ),
        (
            json!([{"name": "bad name!", "metric": "aws:all-bytes-out"}]),
            "behavior behaviors[0]: name: \"bad name!\" must be 1-128 characters of [a-zA-Z0-9:_-]",
        ),
        (json!([{"name": "b1"}]), "behavior b1: metric: is required"),
        (
            json!([{"name": "b1", "metric": "aws:all-bytes-out", "suppressAlerts": "yes"}]),
            "behavior b1: suppressAlerts: must be true or false",
        ),
        (
            json!([{"name": "b1", "metric": "aws:all-bytes-out"}, {"name": "b1", "metric": "aws:all-bytes-in"}]),
            "behavior b1: name: is used by another behavior of this profile",
        ),
    ];
    for (behaviors, want) in cases {
        let got = problems(behaviors.clone());
        if want.is_empty() {
            assert!(got.is_empty(), "{behaviors}: {got:?}");
            continue;
        }
        assert_eq!(got.len(), 1, "{behaviors}: {got:?}");
        assert!(got[0].starts_with("/p/edge.json: "), "{}", got[0]);
        assert!(
            got[0].contains(want),
            "{behaviors}\n  got:  {}\n  want: {want}",
            got[0]
        );
        assert!(!got[0].contains('\n'));
    }
}

#[test]
fn all_problems_are_reported_together_on_one_line() {
    let text = r#"{"securityProfileName": "bad name", "colour": 1,
        "behaviors": [{"name": "a", "metric": "aws:all-bytes-out", "criteria": {"comparisonOperator": "less-than", "value": {"count": 1}, "durationSeconds": 7}},
                      {"name": "b", "metric": "aws:listening-tcp-ports", "criteria": {"comparisonOperator": "less-than", "value": {"ports": [1]}}}]}"#;
    let e = parse_text(text).unwrap_err();
    let lines: Vec<String> = e.problems.iter().map(ToString::to_string).collect();
    assert_eq!(lines.len(), 4, "{lines:#?}");
    assert!(lines[0].contains("colour: unknown key"));
    assert!(lines[1].contains("securityProfileName: \"bad name\""));
    assert!(lines[2].contains("behavior a: criteria.durationSeconds"));
    assert!(lines[3].contains("behavior b: criteria.comparisonOperator"));
    assert!(!e.to_string().contains('\n'));
}

#[test]
fn limits_of_100_behaviors_and_1000_value_elements() {
    let many: Vec<_> = (0..101)
        .map(|i| serde_json::json!({"name": format!("b{i}"), "metric": "aws:all-bytes-out"}))
        .collect();
    let got = problems(serde_json::Value::Array(many));
    assert!(
        got.iter()
            .any(|p| p.contains("behaviors: 101 behaviors; at most 100")),
        "{got:?}"
    );
    let ports: Vec<u16> = (1..=600).collect();
    let b = serde_json::json!([
        {"name": "t", "metric": "aws:listening-tcp-ports", "criteria": {"comparisonOperator": "in-port-set", "value": {"ports": ports}}},
        {"name": "u", "metric": "aws:listening-udp-ports", "criteria": {"comparisonOperator": "in-port-set", "value": {"ports": ports}}}]);
    let got = problems(b);
    assert_eq!(got.len(), 1);
    assert!(
        got[0].contains("1200 value elements; at most 1000 per profile"),
        "{got:?}"
    );
}

#[test]
fn describe_output_keys_are_ignored_and_not_evaluated_behaviors_warn() {
    let text = r#"{"securityProfileName": "p", "securityProfileArn": "arn:aws:iot:x", "version": 3,
        "creationDate": 1.7e9, "lastModifiedDate": 1.7e9, "alertTargets": {}, "tags": [],
        "behaviors": [
          {"name": "msgs", "metric": "aws:num-messages-sent", "criteria": {"comparisonOperator": "less-than", "value": {"count": 10}}},
          {"name": "p99", "metric": "aws:all-bytes-out", "criteria": {"comparisonOperator": "less-than-equals", "statisticalThreshold": {"statistic": "p99"}, "durationSeconds": 900}},
          {"name": "ml", "metric": "aws:all-packets-in", "criteria": {"mlDetectionConfig": {"confidenceLevel": "HIGH"}}},
          {"name": "retain", "metric": "aws:listening-tcp-ports"},
          {"name": "ok", "metric": "aws:all-bytes-in", "criteria": {"comparisonOperator": "less-than", "value": {"count": 10}}}],
        "additionalMetricsToRetainV2": [{"metric": "aws:destination-ip-addresses"}]}"#;
    let (p, w) = parse_text(text).unwrap();
    let evaluated: Vec<&str> = p
        .behaviors
        .iter()
        .filter(|b| b.evaluated_rule().is_some())
        .map(|b| b.name.as_str())
        .collect();
    // The cloud-side rule is kept for the fleet (a report never has its datapoint).
    assert_eq!(evaluated, vec!["msgs", "ml", "ok"]);
    let cloud = p.behaviors[0].rule.as_ref().map(|r| &r.metric);
    assert!(
        matches!(cloud, Some(MetricRef::Cloud(c)) if c.window_secs == 300 && c.dimension.is_none()),
        "{cloud:?}"
    );
    let w: Vec<String> = w.iter().map(ToString::to_string).collect();
    assert_eq!(w.len(), 3, "{w:#?}");
    assert!(w[0].contains("behavior msgs: criteria: not evaluated on the device: aws:num-messages-sent is a cloud-side metric"));
    assert!(
        w[1].contains("behavior p99: criteria: not evaluated on the device: statisticalThreshold")
    );
    assert!(w[2].contains("behavior retain: criteria: not evaluated on the device: no criteria"));
}

#[test]
fn cidrs_file_is_read_relative_to_the_profile_and_scales_to_100_000_entries() {
    let dir = tempfile::tempdir().unwrap();
    let mut list = String::from("# blocklist\n\n");
    for i in 0..100_000u32 {
        let a = 0x0b00_0000 + i * 256;
        list.push_str(&format!(
            "{}/24  # entry {i}\n",
            std::net::Ipv4Addr::from(a)
        ));
    }
    list.push_str("2001:db8::/32\n198.51.100.7\n");
    std::fs::write(dir.path().join("block.txt"), list).unwrap();
    let profile = dir.path().join("p.json");
    std::fs::write(
        &profile,
        r#"{"securityProfileName": "p", "behaviors": [{"name": "bl", "metric": "aws:destination-ip-addresses",
            "criteria": {"comparisonOperator": "not-in-cidr-set", "value": {"cidrsFile": "block.txt"}}}]}"#,
    )
    .unwrap();
    let loaded = load(&profile).unwrap();
    let rule = loaded.profiles[0].behaviors[0].rule.as_ref().unwrap();
    let Criterion::Static(c) = &rule.criterion else {
        panic!("{:?}", rule.criterion)
    };
    let Reference::Cidrs(set) = &c.reference else {
        panic!("{:?}", c.reference)
    };
    assert_eq!(set.len(), 100_002);
    assert!(set.contains("11.1.134.9".parse().unwrap()));
    assert!(set.contains("198.51.100.7".parse().unwrap()));
    assert!(!set.contains("198.51.100.8".parse().unwrap()));
    assert!(set.contains("2001:db8::1".parse().unwrap()));
    // Bad lines are named with file and line number.
    std::fs::write(dir.path().join("block.txt"), "10.0.0.0/8\nnot-an-ip # x\n").unwrap();
    let err = load(&profile).unwrap_err().to_string();
    assert!(
        err.contains("behavior bl: criteria.value.cidrsFile: ")
            && err.contains("block.txt:2: \"not-an-ip\""),
        "{err}"
    );
    std::fs::remove_file(dir.path().join("block.txt")).unwrap();
    let err = load(&profile).unwrap_err().to_string();
    assert!(
        err.contains("cannot read ") && err.contains("block.txt"),
        "{err}"
    );
}

#[test]
fn duplicate_profile_names_across_files_and_unreadable_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.json");
    let b = dir.path().join("b.json");
    std::fs::write(&a, r#"{"securityProfileName": "same"}"#).unwrap();
    std::fs::write(&b, r#"{"securityProfileName": "same"}"#).unwrap();
    let err = load_all(&[a.clone(), b, dir.path().join("gone.json")]).unwrap_err();
    assert_eq!(err.problems.len(), 2, "{err}");
    assert!(
        err.problems[0]
            .to_string()
            .contains("b.json: securityProfileName: \"same\" is also the name of the profile in")
    );
    assert!(
        err.problems[1]
            .to_string()
            .contains("gone.json: file: cannot read")
    );
    let six: Vec<PathBuf> = (0..6)
        .map(|i| {
            let p = dir.path().join(format!("p{i}.json"));
            std::fs::write(&p, format!(r#"{{"securityProfileName": "p{i}"}}"#)).unwrap();
            p
        })
        .collect();
    let loaded = load_all(&six).unwrap();
    assert_eq!(loaded.profiles.len(), 6);
    assert_eq!(loaded.warnings.len(), 1);
    assert!(
        loaded.warnings[0]
            .to_string()
            .contains("p5.json: securityProfileName: 6 profiles apply")
    );
    std::fs::write(&a, "{\"securityProfileName\": ").unwrap();
    let err = load(&a).unwrap_err().to_string();
    assert!(err.contains("a.json: file: not JSON (line 1"), "{err}");
}

#[test]
fn fingerprints_ignore_datapoint_counts_and_suppression_but_not_values() {
    let fp = |extra: &str| {
        let text = format!(
            r#"{{"securityProfileName": "p", "behaviors": [{{"name": "b", "metric": "aws:all-bytes-out"{extra},
                "criteria": {{"comparisonOperator": "less-than", "value": {{"count": 5}}, "consecutiveDatapointsToAlarm": 2}}}}]}}"#
        );
        parse_text(&text).unwrap().0.behaviors[0]
            .fingerprint
            .clone()
    };
    assert_eq!(fp(""), fp(r#", "suppressAlerts": true"#));
    let other = parse_text(
        r#"{"securityProfileName": "p", "behaviors": [{"name": "b", "metric": "aws:all-bytes-out",
        "criteria": {"comparisonOperator": "less-than", "value": {"count": 6}}}]}"#,
    )
    .unwrap()
    .0;
    assert_ne!(fp(""), other.behaviors[0].fingerprint);
}

#[test]
fn cloud_side_rules_carry_their_window_dimension_and_message_size_end() {
    let text = r#"{"securityProfileName": "p", "behaviors": [
        {"name": "big", "metric": "aws:message-byte-size", "metricDimension": {"dimensionName": "telemetry", "operator": "NOT_IN"},
         "criteria": {"comparisonOperator": "less-than", "value": {"count": 1000}, "durationSeconds": 600}},
        {"name": "small", "metric": "aws:message-byte-size", "criteria": {"comparisonOperator": "greater-than", "value": {"count": 2}}},
        {"name": "ip", "metric": "aws:source-ip-address", "criteria": {"comparisonOperator": "in-cidr-set", "value": {"cidrs": ["10.0.0.0/8"]}}},
        {"name": "p90", "metric": "aws:num-disconnects", "criteria": {"comparisonOperator": "less-than-equals", "statisticalThreshold": {"statistic": "p90"}, "durationSeconds": 900}}]}"#;
    let (p, w) = parse_text(text).unwrap();
    let cloud = |i: usize| match p.behaviors[i].rule.as_ref().map(|r| &r.metric) {
        Some(MetricRef::Cloud(c)) => c.clone(),
        other => panic!("{other:?}"),
    };
    let big = cloud(0);
    assert_eq!(
        (big.metric, big.window_secs, big.largest),
        (CloudMetric::MessageByteSize, 600, true)
    );
    assert_eq!(
        big.dimension,
        Some(Dimension {
            name: "telemetry".into(),
            not_in: true
        })
    );
    assert!(!cloud(1).largest, "greater-than alarms on small messages");
    assert_eq!(cloud(2).metric, CloudMetric::SourceIp);
    assert_eq!(cloud(3).window_secs, 900);
    assert_eq!(w.len(), 4, "each warns on the device: {w:?}");
}
