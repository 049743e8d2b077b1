//! ListMetricValues and the thing page's last metrics over a real SQLite file: the history a
//! commit keeps, read back per metric, paged, bad parameters refused.

use serde_json::{Value, json};

use super::tests::call;
use crate::store::{Commit, Sqlite, ThingRecords};

/// A realistic report (as scripts/bench-api writes): ports, one connection, traffic, a custom
/// metric.
pub fn report(id: u64, i: u64) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "header": {"report_id": id, "version": "1.0"},
        "metrics": {
            "listening_tcp_ports": {"ports": [{"port": 22, "interface": "eth0"}, {"port": 443}], "total": 2},
            "listening_udp_ports": {"ports": [{"port": 53}], "total": 1},
            "tcp_connections": {"established_connections": {"connections": [
                {"remote_addr": format!("10.0.{}.{}:443", i % 250, i % 200 + 1), "local_port": 50000, "local_interface": "eth0"}
            ], "total": 1}},
            "network_stats": {"bytes_in": 1000 + i, "bytes_out": 2000, "packets_in": 10, "packets_out": 12}
        },
        "custom_metrics": {"cpu_temp": [{"number": 40.5}]}
    }))
    .unwrap()
}

fn filled(reports: u64) -> (tempfile::TempDir, Sqlite) {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Sqlite::open(&dir.path().join("fleet.db")).unwrap();
    for i in 0..reports {
        let r = protocol::decode(&report(i + 1, i)).unwrap().report;
        let time = 1_000_000_000_000 + i * 300_000;
        let c = Commit {
            thing: "gw".into(),
            expected: i,
            history: crate::history::device(&r, time).into_iter().collect(),
            record: crate::store::Record {
                last_report: Some((i + 1, time)),
                ..Default::default()
            },
            ..Commit::default()
        };
        s.commit(&[c]).unwrap();
    }
    s.sync().unwrap();
    (dir, s)
}

fn q<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut v = vec![
        ("thingName", "gw"),
        ("startTime", "1000000000"),
        ("endTime", "1000100000"),
    ];
    v.extend_from_slice(extra);
    v
}

#[test]
fn metric_values_page_through_the_history_of_one_metric() {
    let (_d, mut s) = filled(10);
    let mut seen: Vec<Value> = Vec::new();
    let mut token = None::<String>;
    loop {
        let mut extra = vec![("metricName", "aws:all-bytes-in"), ("maxResults", "4")];
        if let Some(t) = &token {
            extra.push(("nextToken", t.as_str()));
        }
        let (status, v) = call(&mut s, "GET", "/metric-values", &q(&extra));
        assert_eq!(status, 200, "{v}");
        seen.extend(v["metricDatumList"].as_array().unwrap().iter().cloned());
        match v["nextToken"].as_str() {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 10);
    assert_eq!(
        seen[0],
        json!({"timestamp": 1_000_000_000, "value": {"count": 1000}})
    );
    assert_eq!(seen[9]["value"], json!({"count": 1009}));
    assert_eq!(seen[9]["timestamp"], json!(1_000_002_700));
    let (_, v) = call(
        &mut s,
        "GET",
        "/metric-values",
        &q(&[("metricName", "aws:listening-tcp-ports")]),
    );
    assert_eq!(
        v["metricDatumList"][0]["value"],
        json!({"ports": [22, 443]})
    );
    let (_, v) = call(
        &mut s,
        "GET",
        "/metric-values",
        &q(&[("metricName", "cpu_temp")]),
    );
    assert_eq!(v["metricDatumList"][3]["value"], json!({"number": 40.5}));
    let (_, v) = call(
        &mut s,
        "GET",
        "/metric-values",
        &q(&[("metricName", "aws:num-disconnects")]),
    );
    assert_eq!(v["metricDatumList"], json!([]));
    let (status, v) = call(&mut s, "GET", "/things/gw", &[]);
    assert_eq!(status, 200, "{v}");
    let last = &v["lastMetrics"]["device"];
    assert_eq!(last["aws:listening-udp-ports"], json!({"ports": [53]}));
    assert_eq!(
        last["aws:destination-ip-addresses"],
        json!({"cidrs": ["10.0.9.10"]})
    );
    assert_eq!(last["cpu_temp"], json!({"number": 40.5}));
}

#[test]
fn metric_values_refuse_bad_parameters() {
    let (_d, mut s) = filled(1);
    let cases: [(Vec<(&str, &str)>, &str); 5] = [
        (
            vec![
                ("thingName", "gw"),
                ("metricName", "aws:all-bytes-in"),
                ("startTime", "1"),
            ],
            "endTime",
        ),
        (q(&[]), "metricName"),
        (q(&[("metricName", "aws:no-such-metric")]), "metricName"),
        (
            q(&[("metricName", "aws:all-bytes-in"), ("dimensionName", "d")]),
            "dimensionName",
        ),
        (
            vec![
                ("thingName", "gw"),
                ("metricName", "aws:all-bytes-in"),
                ("startTime", "5"),
                ("endTime", "yesterday"),
            ],
            "endTime",
        ),
    ];
    for (query, named) in cases {
        let (status, v) = call(&mut s, "GET", "/metric-values", &query);
        assert_eq!(status, 400, "{query:?}: {v}");
        assert!(v["message"].as_str().unwrap().contains(named), "{v}");
    }
}
