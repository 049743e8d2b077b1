//! Tests of `null` in a report (protocol doc §1.2–§1.5): an optional key set to `null` decodes
//! as if absent, in JSON and CBOR, long and short keys; a required one is refused by name.

use serde_json::{Value, json};

use super::tests::sample;
use super::*;
use crate::encode;
use crate::keys::TABLE;

fn cbor(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(v, &mut out).unwrap();
    out
}

fn outcome(bytes: &[u8]) -> Result<Report, String> {
    decode(bytes).map(|d| d.report).map_err(|e| e.to_string())
}

/// Paths (as key lists) of every object key in `v`, depth first.
fn paths(v: &Value, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                prefix.push(k.clone());
                out.push(prefix.clone());
                paths(x, prefix, out);
                prefix.pop();
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                prefix.push(i.to_string());
                paths(x, prefix, out);
                prefix.pop();
            }
        }
        _ => {}
    }
}

/// Optional: a structural key the model may leave out, or a custom metric (its name).
fn optional(path: &[String]) -> bool {
    let key = path.last().unwrap();
    let parent = path.len().checked_sub(2).map(|i| path[i].as_str());
    if matches!(parent, Some("custom_metrics" | "cmet")) {
        return true;
    }
    TABLE
        .iter()
        .find(|(_, l, s)| l == key || s == key)
        .is_some_and(|(k, _, _)| k.optional())
}

fn edit(v: &Value, path: &[String], null: bool) -> Value {
    let mut v = v.clone();
    let mut at = &mut v;
    for seg in &path[..path.len() - 1] {
        at = match at {
            Value::Object(m) => m.get_mut(seg).unwrap(),
            Value::Array(a) => &mut a[seg.parse::<usize>().unwrap()],
            _ => unreachable!(),
        };
    }
    let m = at.as_object_mut().unwrap();
    let last = path.last().unwrap();
    if null {
        m.insert(last.clone(), Value::Null);
    } else {
        m.remove(last);
    }
    v
}

#[test]
fn every_optional_key_set_to_null_reads_as_absent_in_all_four_formats() {
    let mut checked = 0;
    for format in [Format::Json, Format::JsonShort] {
        let text = encode(&sample(), format).unwrap().bytes;
        let full: Value = serde_json::from_slice(&text).unwrap();
        let mut all = Vec::new();
        paths(&full, &mut Vec::new(), &mut all);
        for path in all.iter().filter(|p| optional(p)) {
            let (with_null, without) = (edit(&full, path, true), edit(&full, path, false));
            let json_null = serde_json::to_vec(&with_null).unwrap();
            let want = outcome(&serde_json::to_vec(&without).unwrap());
            assert!(want.is_ok(), "{path:?}: {want:?}");
            assert_eq!(outcome(&json_null), want, "{format} {path:?}");
            let cbor_null = cbor(&with_null);
            assert!(cbor_null.contains(&0xf6), "CBOR null is 0xf6");
            assert_eq!(outcome(&cbor_null), want, "{format} as CBOR {path:?}");
            checked += 1;
        }
    }
    // Per spelling: metrics, custom_metrics, 4 sections, ec, 2 port lists' ports and total,
    // 2 interfaces, connections, total, 2 × (local_port, local_interface), 4 custom metrics.
    assert!(checked >= 2 * 20, "{checked}");
}

#[test]
fn the_python_agents_dual_stack_report_decodes_with_its_other_connections() {
    // AWS's Python agent on a dual-stack server (`::`, V6ONLY=0): an IPv4 client's local
    // address is not an interface address, so the agent writes `"local_interface": null`.
    let conns = |[ra, lp, li]: [&str; 3]| {
        json!([
            {ra: "192.0.2.10:50000", lp: 8080, li: null},
            {ra: "203.0.113.9:443", lp: 41000, li: "eth0"}
        ])
    };
    let long = json!({
        "header": {"report_id": 1796551004, "version": "1.0"},
        "metrics": {
            "listening_tcp_ports": {"ports": [{"port": 8080, "interface": null}], "total": 1},
            "tcp_connections": {"established_connections": {
                "connections": conns(["remote_addr", "local_port", "local_interface"]), "total": 2}}
        }
    });
    let short = json!({
        "hed": {"rid": 1796551004, "v": "1.0"},
        "met": {"tp": {"pts": [{"pt": 8080, "if": null}], "t": 1},
                "tc": {"ec": {"cs": conns(["rad", "lp", "li"]), "t": 2}}}
    });
    for v in [long, short] {
        for bytes in [serde_json::to_vec(&v).unwrap(), cbor(&v)] {
            let r = decode(&bytes).unwrap().report;
            let c = &r.metrics.established.connections;
            assert_eq!(c.len(), 2);
            assert_eq!(c[0].remote_addr(), "192.0.2.10:50000");
            assert_eq!(c[0].local_interface, None);
            assert_eq!(c[1].local_interface.as_deref(), Some("eth0"));
            assert_eq!(r.metrics.listening_tcp_ports.ports[0].interface, None);
        }
    }
}

#[test]
fn null_in_a_required_key_is_refused_by_name() {
    let base = |header: Value, conn: Value, port: Value, stats: Value| {
        json!({"header": header, "metrics": {
            "tcp_connections": {"established_connections": {"connections": [conn]}},
            "listening_tcp_ports": {"ports": [port]},
            "network_stats": stats}})
    };
    let h = json!({"report_id": 1, "version": "1.0"});
    let c = json!({"remote_addr": "192.0.2.1:1"});
    let p = json!({"port": 22});
    let s = json!({"bytes_in": 1, "bytes_out": 1, "packets_in": 1, "packets_out": 1});
    let with = |v: &Value, k: &str| {
        let mut v = v.clone();
        v[k] = Value::Null;
        v
    };
    let cases = [
        (
            base(Value::Null, c.clone(), p.clone(), s.clone()),
            "header: null is not an object",
        ),
        (
            base(with(&h, "report_id"), c.clone(), p.clone(), s.clone()),
            "header.report_id: null is not a positive integer",
        ),
        (
            base(with(&h, "version"), c.clone(), p.clone(), s.clone()),
            "header.version: null is not a string",
        ),
        (
            base(h.clone(), with(&c, "remote_addr"), p.clone(), s.clone()),
            "connections[0].remote_addr: null is not a string",
        ),
        (
            base(h.clone(), c.clone(), with(&p, "port"), s.clone()),
            "ports[0].port: null is not a port 1-65535",
        ),
        (
            base(h.clone(), c.clone(), p.clone(), with(&s, "packets_in")),
            "metrics.network_stats.packets_in: null is not an integer >= 0",
        ),
    ];
    for (v, want) in cases {
        for bytes in [serde_json::to_vec(&v).unwrap(), cbor(&v)] {
            let err = outcome(&bytes).unwrap_err();
            assert!(err.contains(want), "got {err}\nwant {want}");
        }
    }
    let both_null = json!({"header": h, "metrics": null, "custom_metrics": null});
    let err = outcome(&serde_json::to_vec(&both_null).unwrap()).unwrap_err();
    assert!(err.contains("neither metrics nor custom_metrics"), "{err}");
}
