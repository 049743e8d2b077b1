//! Every operator on every metric type, through profile loading, extraction and the engine:
//! each `aws:` device-side metric of `metrics::TABLE` and each custom metric type, with each
//! operator it allows, on a normal, a violating and (for lists) an empty datapoint.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::engine::{Engine, seeded_ids};
use super::event::EventType;
use super::metrics::{CustomKind, Kind, Source, TABLE};
use super::operators::Operator;
use super::profile::parse;
use protocol::decode::decode_value;
use protocol::{CustomValue, Report};

/// A report whose only datapoint for `source` is `v` (ports, addresses or a count).
fn device_report(source: Source, v: &Value) -> Report {
    let ports = |v: &Value| {
        let list: Vec<Value> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|p| json!({"port": p}))
            .collect();
        json!({"ports": list})
    };
    let mut metrics = json!({});
    match source {
        Source::TcpPorts => metrics["listening_tcp_ports"] = ports(v),
        Source::UdpPorts => metrics["listening_udp_ports"] = ports(v),
        Source::TcpPortCount => metrics["listening_tcp_ports"] = json!({"ports": [], "total": v}),
        Source::UdpPortCount => metrics["listening_udp_ports"] = json!({"ports": [], "total": v}),
        Source::EstablishedCount => {
            metrics["tcp_connections"] =
                json!({"established_connections": {"connections": [], "total": v}})
        }
        Source::DestinationIps => {
            let conns: Vec<Value> = v
                .as_array()
                .unwrap()
                .iter()
                .map(|a| {
                    let ip: std::net::IpAddr = a.as_str().unwrap().parse().unwrap();
                    json!({"remote_addr": std::net::SocketAddr::new(ip, 443).to_string()})
                })
                .collect();
            metrics["tcp_connections"] = json!({"established_connections": {"connections": conns}})
        }
        traffic => {
            let mut ns = json!({"bytes_in": 0, "bytes_out": 0, "packets_in": 0, "packets_out": 0});
            let key = match traffic {
                Source::BytesIn => "bytes_in",
                Source::BytesOut => "bytes_out",
                Source::PacketsIn => "packets_in",
                _ => "packets_out",
            };
            ns[key] = v.clone();
            metrics["network_stats"] = ns;
        }
    }
    let r = json!({"header": {"report_id": 1, "version": "1.0"}, "metrics": metrics});
    decode_value(&r).unwrap().report
}

fn custom_report(kind: CustomKind, v: &Value) -> Report {
    let mut r = device_report(Source::EstablishedCount, &json!(0));
    let f = |v: &Value| v.as_array().unwrap().clone();
    let value = match kind {
        CustomKind::Number => CustomValue::Number(v.as_f64().unwrap()),
        CustomKind::NumberList => {
            CustomValue::NumberList(f(v).iter().map(|x| x.as_f64().unwrap()).collect())
        }
        CustomKind::StringList => CustomValue::StringList(
            f(v).iter()
                .map(|x| x.as_str().unwrap().to_string())
                .collect(),
        ),
        CustomKind::IpAddressList => CustomValue::IpList(
            f(v).iter()
                .map(|x| x.as_str().unwrap().parse().unwrap())
                .collect(),
        ),
    };
    r.custom_metrics = BTreeMap::from([("m".to_string(), value)]);
    r
}

/// (reference value, [(datapoint, violates)]) for an operator on values of `field`.
fn cases(op: Operator, field: &str) -> (Value, Vec<(Value, bool)>) {
    if op.is_numeric() {
        let normal = |v: i64| match op {
            Operator::LessThan => v < 10,
            Operator::LessThanEquals => v <= 10,
            Operator::GreaterThan => v > 10,
            _ => v >= 10,
        };
        let reference = json!({field: 10});
        return (
            reference,
            [5, 10, 15].map(|v| (json!(v), !normal(v))).to_vec(),
        );
    }
    // Set operators: S = two elements; "in" = a subset of S, "mixed" = one in and one out,
    // "out" = outside S only, and the empty list (always normal, §4.3).
    let (set, inside, mixed, outside): (Value, Value, Value, Value) = match field {
        "ports" => (json!([22, 23]), json!([23]), json!([23, 80]), json!([80])),
        "cidrs" => (
            json!(["10.0.0.0/8", "2001:db8::/32"]),
            json!(["10.1.2.3"]),
            json!(["10.1.2.3", "203.0.113.7"]),
            json!(["203.0.113.7", "2001:db9::1"]),
        ),
        "numbers" => (json!([1.5, 2]), json!([2]), json!([2, 3]), json!([3])),
        _ => (
            json!(["a", "b"]),
            json!(["a"]),
            json!(["a", "c"]),
            json!(["c"]),
        ),
    };
    let inside_op = matches!(
        op,
        Operator::InPortSet | Operator::InCidrSet | Operator::InSet
    );
    let rows = vec![
        (inside, !inside_op),
        (mixed, true),
        (outside, inside_op),
        (json!([]), false),
    ];
    (json!({field: set}), rows)
}

fn run(metric: &str, op: Operator, reference: Value, report: &Report) -> bool {
    let profile = json!({"securityProfileName": "p", "behaviors": [{"name": "b", "metric": metric,
        "criteria": {"comparisonOperator": op.name(), "value": reference}}]});
    let (p, warnings) = parse(&profile.to_string(), std::path::Path::new("/p.json")).unwrap();
    assert!(warnings.is_empty());
    let events = Engine::new("t", vec![p], seeded_ids(1)).evaluate(report, 1);
    assert!(events.len() <= 1);
    events
        .first()
        .is_some_and(|e| e.violation_event_type == EventType::InAlarm)
}

#[test]
fn every_operator_on_every_device_side_metric() {
    let mut checked = 0;
    for spec in &TABLE {
        for op in spec.kind.operators() {
            let (reference, rows) = cases(*op, spec.kind.value_field());
            for (v, violates) in rows {
                if matches!(spec.kind, Kind::Count | Kind::Traffic) {
                    assert!(v.is_u64());
                }
                let got = run(
                    spec.name,
                    *op,
                    reference.clone(),
                    &device_report(spec.source, &v),
                );
                assert_eq!(
                    got,
                    violates,
                    "{} {} {reference} on {v}",
                    spec.name,
                    op.name()
                );
                checked += 1;
            }
        }
    }
    // 7 numeric metrics × 4 operators × 3 values, 3 set metrics × 2 operators × 4 lists.
    assert_eq!(checked, 7 * 4 * 3 + 3 * 2 * 4);
}

#[test]
fn every_operator_on_every_custom_metric_type() {
    let kinds = [
        CustomKind::Number,
        CustomKind::NumberList,
        CustomKind::StringList,
        CustomKind::IpAddressList,
    ];
    let mut checked = 0;
    for kind in kinds {
        for op in kind.operators() {
            let (reference, rows) = cases(*op, kind.value_field());
            for (v, violates) in rows {
                let got = run("m", *op, reference.clone(), &custom_report(kind, &v));
                assert_eq!(
                    got,
                    violates,
                    "{} {} {reference} on {v}",
                    kind.name(),
                    op.name()
                );
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 4 * 3 + 3 * 2 * 4);
}
