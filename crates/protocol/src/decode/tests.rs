//! Tests of decode/mod.rs: round trips through `encode` in all four formats, the protocol's own
//! example, absent sections, and errors that name the key path.

use super::*;
use crate::encode;
use crate::model::{Connection, CustomValue, Header, NetworkStats, Port};

pub(super) fn sample() -> Report {
    let conn = |remote: &str, lp: u16, li: Option<&str>| Connection {
        remote: remote.parse().unwrap(),
        local_port: lp,
        local_interface: li.map(str::to_string),
    };
    let mut custom = BTreeMap::new();
    custom.insert("battery_pct".to_string(), CustomValue::Number(87.5));
    custom.insert(
        "cpu".to_string(),
        CustomValue::NumberList(vec![12.0, -4.25, 7.0]),
    );
    custom.insert(
        "mods".to_string(),
        CustomValue::StringList(vec!["net".into(), "ota".into()]),
    );
    custom.insert(
        "peers".to_string(),
        CustomValue::IpList(vec![
            "198.51.100.2".parse().unwrap(),
            "2001:db8::9".parse().unwrap(),
        ]),
    );
    Report {
        header: Header {
            report_id: 1717171717000,
        },
        metrics: Metrics {
            listening_tcp_ports: PortList {
                ports: vec![
                    Port {
                        port: 22,
                        interface: Some("eth0".into()),
                    },
                    Port {
                        port: 8883,
                        interface: None,
                    },
                ],
                total: 2,
            },
            listening_udp_ports: PortList {
                ports: vec![],
                total: 0,
            },
            established: ConnectionList {
                connections: vec![
                    conn("203.0.113.7:443", 51544, Some("eth0")),
                    conn("[2001:db8::5]:8883", 40022, None),
                ],
                total: 7,
            },
            network_stats: Some(NetworkStats {
                bytes_in: 29358693495,
                bytes_out: 20480,
                packets_in: 300,
                packets_out: 250,
            }),
            missing: Missing::default(),
        },
        custom_metrics: custom,
    }
}

#[test]
fn every_format_round_trips_through_encode() {
    let mut no_stats = sample();
    no_stats.metrics.network_stats = None;
    no_stats.custom_metrics.clear();
    let mut gaps = sample();
    gaps.metrics.missing = Missing {
        listening_tcp_ports: true,
        listening_udp_ports: false,
        tcp_connections: true,
    };
    gaps.metrics.listening_tcp_ports = PortList::default();
    gaps.metrics.established = ConnectionList::default();
    for report in [sample(), no_stats, gaps] {
        for format in Format::ALL {
            let bytes = encode(&report, format).unwrap().bytes;
            let d = decode(&bytes).unwrap_or_else(|e| panic!("{format}: {e}"));
            assert_eq!(d.format, format);
            assert_eq!(d.report, report, "{format}");
        }
    }
}

#[test]
fn the_protocol_example_decodes_with_fallback_totals_and_absent_sections() {
    let v = serde_json::json!({
        "hed": {"rid": 5, "v": "1.0"},
        "met": {"tp": {"pts": [{"pt": 23}, {"pt": 22, "if": "eth0"}, {"pt": 22}]},
                "tc": {"ec": {"cs": [{"rad": "[::ffff:10.1.2.3]:445"}]}}},
        "cmet": {"x": [{"number": 1}]}
    });
    let d = decode_value(&v).unwrap();
    assert_eq!(d.format, Format::JsonShort);
    let m = &d.report.metrics;
    assert_eq!(
        m.listening_tcp_ports.total, 2,
        "distinct ports when total is absent"
    );
    assert_eq!(m.listening_tcp_ports.ports[0].port, 22);
    assert_eq!(m.established.total, 1);
    assert_eq!(m.established.connections[0].remote_addr(), "10.1.2.3:445");
    assert_eq!(m.established.connections[0].local_port, 0);
    assert!(m.missing.listening_udp_ports && !m.missing.listening_tcp_ports);
    assert!(!m.missing.tcp_connections);
    assert_eq!(m.network_stats, None);
}

#[test]
fn errors_name_the_key_path() {
    let cases = [
        (
            r#"{"header":{"report_id":1,"version":"1.0"},"met":{}}"#,
            "\"met\" is a short key but this report uses long keys",
        ),
        (
            r#"{"header":{"report_id":1,"version":"1.0"},"metrics":{"listening_tcp_ports":{"ports":[{"port":22,"iface":"x"}]}}}"#,
            "metrics.listening_tcp_ports.ports[0]: unknown key \"iface\"",
        ),
        (
            r#"{"header":{"report_id":1,"version":"1.0"},"metrics":{},"extra":1}"#,
            "report: unknown key \"extra\"",
        ),
        (
            r#"{"header":{"version":"1.0"},"metrics":{}}"#,
            "header.report_id is required",
        ),
        (
            r#"{"header":{"report_id":0,"version":"1.0"},"metrics":{}}"#,
            "header.report_id: 0 is not a positive integer",
        ),
        (
            r#"{"header":{"report_id":1,"version":"1.0"}}"#,
            "neither metrics nor custom_metrics",
        ),
        (
            r#"{"header":{"report_id":1,"version":"1.0"},"metrics":{"network_stats":{"bytes_in":1,"bytes_out":1,"packets_in":1}}}"#,
            "metrics.network_stats.packets_out is required",
        ),
        (
            r#"{"header":{"report_id":1,"version":"1.0"},"metrics":{"tcp_connections":{"established_connections":{"connections":[{"remote_addr":"10.0.0.1"}]}}}}"#,
            "connections[0].remote_addr: \"10.0.0.1\" is not ip:port",
        ),
        (
            r#"{"header":{"report_id":1,"version":"1.0"},"custom_metrics":{"m":{"number":1}}}"#,
            "custom_metrics.m: must be an array of exactly one object",
        ),
        (
            r#"{"header":{"report_id":1,"version":"1.0"},"custom_metrics":{"m":[{"ip_list":["nope"]}]}}"#,
            "custom_metrics.m[0].ip_list: \"nope\" is not an IP address",
        ),
        (
            r#"{"header":{"report_id":1,"version":"1.0"},"metrics":{"listening_udp_ports":{"ports":[{"port":0}]}}}"#,
            "ports[0].port: 0 is not a port 1-65535",
        ),
        ("[1]", "report: an array is not an object"),
        ("{", "not a JSON report"),
    ];
    for (text, want) in cases {
        let err = decode(text.as_bytes()).unwrap_err().to_string();
        assert!(err.contains(want), "{text}\n  got:  {err}\n  want: {want}");
    }
    let cbor_junk = decode(&[0xa1, 0x00]).unwrap_err().to_string();
    assert!(cbor_junk.starts_with("not a CBOR report"), "{cbor_junk}");
}

#[test]
fn only_major_version_1_is_understood() {
    let report = |h: Value| serde_json::json!({"header": h, "metrics": {}});
    for v in ["1.0", "1.1", "1.10"] {
        let r = report(serde_json::json!({"report_id": 1, "version": v}));
        assert!(decode_value(&r).is_ok(), "{v}");
        let short = serde_json::json!({"hed": {"rid": 1, "v": v}, "met": {}});
        assert!(decode_value(&short).is_ok(), "{v}");
    }
    for (v, path) in [
        ("2.0", "header.version"),
        ("0.9", "hed.v"),
        ("+1.0", "hed.v"),
    ] {
        let r = if path.starts_with("hed") {
            serde_json::json!({"hed": {"rid": 1, "v": v}, "met": {}})
        } else {
            report(serde_json::json!({"report_id": 1, "version": v}))
        };
        let mut cbor = Vec::new();
        ciborium::into_writer(&r, &mut cbor).unwrap();
        for bytes in [serde_json::to_vec(&r).unwrap(), cbor] {
            let err = decode(&bytes).unwrap_err().to_string();
            let want = format!("{path}: {v:?} is not version 1.x, the only one understood");
            assert_eq!(err, want);
        }
    }
}

#[test]
fn a_report_id_a_signed_64_bit_store_cannot_hold_is_refused() {
    use crate::model::MAX_DECODED_REPORT_ID;
    let report = |id: Value| serde_json::json!({"hed": {"rid": id, "v": "1.0"}, "met": {}});
    let as_cbor = |v: &Value| {
        let mut out = Vec::new();
        ciborium::into_writer(v, &mut out).unwrap();
        out
    };
    // The largest one is kept exactly, in JSON and CBOR.
    let top = report(MAX_DECODED_REPORT_ID.into());
    for bytes in [serde_json::to_vec(&top).unwrap(), as_cbor(&top)] {
        assert_eq!(
            decode(&bytes).unwrap().report.header.report_id,
            MAX_DECODED_REPORT_ID
        );
    }
    let above = "is above 9223372036854775807, the largest report_id accepted";
    for id in [
        Value::from(MAX_DECODED_REPORT_ID + 1),
        Value::from(u64::MAX),
    ] {
        let r = report(id.clone());
        for bytes in [serde_json::to_vec(&r).unwrap(), as_cbor(&r)] {
            let err = decode(&bytes).unwrap_err().to_string();
            assert_eq!(err, format!("hed.rid: {id} {above}"));
        }
    }
    // 2^63 written as a double (aws-c-iot writes its ids as doubles).
    let err =
        decode(br#"{"header":{"report_id":9.223372036854775808e18,"version":"1.0"},"metrics":{}}"#)
            .unwrap_err()
            .to_string();
    assert_eq!(
        err,
        format!("header.report_id: 9223372036854775808 {above}")
    );
}
