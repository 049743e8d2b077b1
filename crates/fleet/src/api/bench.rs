//! `scripts/bench-api` (issue #21): fills a SQLite store with THINGS things, ~EVENTS violation
//! events and 14 days of 300 s history for HISTORY_THINGS things, then prints `handle`'s
//! latency (median, p99 over CALLS calls) and the history's bytes per thing-day. Figures only.

use std::time::Instant;

use serde_json::Value;

use super::tests::{call, event};
use super::tests_metrics::report;
use crate::store::{Commit, HistoryPoint, Record, Sqlite, Store, ThingRecords};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const DAY_MS: u64 = 86_400_000;
const NOW_MS: u64 = 1_796_000_000_000;

/// Five alarms per thing over the last 14 days, all cleared but the last one of every tenth
/// thing: ten events per thing, a tenth of the things in alarm.
fn fill_violations(s: &mut Sqlite, things: u64, events: u64) -> u64 {
    let per_thing = (events / things.max(1)).max(2) / 2;
    let mut n = 0;
    let mut batch = Vec::new();
    for i in 0..things {
        let thing = format!("thing-{i:06}");
        let mut list = Vec::new();
        for k in 0..per_thing {
            let id = format!("{i:024x}{k:08x}");
            let spread = (i * 2_654_435_761 + k * 40_503_379) % (14 * DAY_MS - 600_000);
            let start = NOW_MS - 14 * DAY_MS + spread;
            list.push(event(&thing, &id, "in-alarm", start, k % 7 == 3));
            if !(k + 1 == per_thing && i % 10 == 0) {
                list.push(event(&thing, &id, "alarm-cleared", start + 300_000, false));
            }
        }
        n += list.len() as u64;
        batch.push(Commit {
            thing,
            events: list,
            ..Commit::default()
        });
        if batch.len() == 1000 {
            s.commit(&batch).unwrap();
            s.sync().unwrap();
            batch.clear();
        }
    }
    s.commit(&batch).unwrap();
    s.sync().unwrap();
    n
}

/// 14 days of reports every 300 s for `things` things; the mean bytes of one stored report.
fn fill_history(s: &mut Sqlite, things: u64) -> u64 {
    let points = 14 * DAY_MS / 300_000;
    let mut bytes = 0;
    for i in 0..things {
        let thing = format!("thing-{i:06}");
        let loaded = s.load(&thing).unwrap();
        let history: Vec<HistoryPoint> = (0..points)
            .map(|p| {
                let r = protocol::decode(&report(p + 1, i * 31 + p)).unwrap().report;
                let time = NOW_MS - 14 * DAY_MS + p * 300_000;
                crate::history::device(&r, time).unwrap()
            })
            .collect();
        bytes += history.iter().map(|p| p.data.len() as u64).sum::<u64>();
        let c = Commit {
            thing,
            expected: loaded.version,
            record: Record {
                last_report: Some((points, NOW_MS - 300_000)),
                ..loaded.record
            },
            history,
            ..Commit::default()
        };
        s.commit(&[c]).unwrap();
        s.sync().unwrap();
    }
    bytes / (things * points).max(1)
}

fn file_bytes(path: &std::path::Path) -> u64 {
    let c = rusqlite::Connection::open(path).unwrap();
    c.pragma_update(None, "wal_checkpoint", "TRUNCATE").unwrap();
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// Median and p99 in ms of `calls` runs of `f`.
fn timed(calls: u64, mut f: impl FnMut()) -> (f64, f64) {
    let mut ms: Vec<f64> = (0..calls.max(1))
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.99))
}

/// One call that must answer 200; the length of its list `key`.
fn check(store: &mut dyn Store, path: &str, q: &[(&str, &str)], key: &str) -> usize {
    let (status, v) = call(store, "GET", path, q);
    assert_eq!(status, 200, "{v}");
    v[key].as_array().map_or(0, Vec::len)
}

#[test]
#[ignore = "a benchmark: scripts/bench-api runs it"]
fn bench_api() {
    let (things, events) = (env("THINGS", 100_000), env("EVENTS", 1_000_000));
    let (history_things, calls) = (env("HISTORY_THINGS", 100), env("CALLS", 200));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fleet.db");
    let mut s = Sqlite::open(&path).unwrap();
    let t = Instant::now();
    let n = fill_violations(&mut s, things, events);
    let before = file_bytes(&path);
    println!(
        "filled {things} things, {n} violation events in {:.0} s ({} MB)",
        t.elapsed().as_secs_f64(),
        before / 1_000_000
    );
    let t = Instant::now();
    let mean = fill_history(&mut s, history_things);
    let after = file_bytes(&path);
    let thing_days = history_things * 14;
    println!(
        "history: {history_things} things x 14 days at 300 s in {:.0} s: {} bytes per thing-day on disk ({} per report stored, 288 reports a day; {mean} bytes of CBOR each)",
        t.elapsed().as_secs_f64(),
        (after - before) / thing_days.max(1),
        (after - before) / (thing_days * 288).max(1)
    );
    let store: &mut dyn Store = &mut s;
    let got = check(store, "/active-violations", &[], "activeViolations");
    let (p50, p99) = timed(calls, || {
        check(store, "/active-violations", &[], "activeViolations");
    });
    println!("active-violations (first page of {got}): median {p50:.2} ms, p99 {p99:.2} ms");
    let (p50, p99) = timed(calls, || {
        check(
            store,
            "/active-violations",
            &[("maxResults", "250")],
            "activeViolations",
        );
    });
    println!("active-violations maxResults=250: median {p50:.2} ms, p99 {p99:.2} ms");
    let thing = "thing-000001".to_string();
    let (start, end) = (
        ((NOW_MS - 14 * DAY_MS) / 1000).to_string(),
        (NOW_MS / 1000).to_string(),
    );
    let mut pages = 0;
    let mut points = 0;
    let (p50, p99) = timed(calls, || {
        let mut token: Option<String> = None;
        pages = 0;
        points = 0;
        loop {
            let mut q = vec![
                ("thingName", thing.as_str()),
                ("metricName", "aws:all-bytes-in"),
                ("startTime", start.as_str()),
                ("endTime", end.as_str()),
                ("maxResults", "250"),
            ];
            if let Some(t) = &token {
                q.push(("nextToken", t.as_str()));
            }
            let (status, v) = call(store, "GET", "/metric-values", &q);
            assert_eq!(status, 200, "{v}");
            pages += 1;
            points += v["metricDatumList"].as_array().map_or(0, Vec::len);
            match v["nextToken"].as_str() {
                Some(t) => token = Some(t.to_string()),
                None => break,
            }
        }
    });
    println!(
        "metric-values, one thing's 14 days of aws:all-bytes-in ({points} points, {pages} pages of 250): median {p50:.1} ms, p99 {p99:.1} ms"
    );
    let day = ((NOW_MS - DAY_MS) / 1000).to_string();
    let q = [("startTime", day.as_str()), ("endTime", end.as_str())];
    let got = check(store, "/violation-events", &q, "violationEvents");
    let (p50, p99) = timed(calls, || {
        check(store, "/violation-events", &q, "violationEvents");
    });
    println!("violation-events, last day, first page ({got}): median {p50:.2} ms, p99 {p99:.2} ms");
    let v: Value = call(store, "GET", "/things/thing-000001", &[]).1;
    assert!(v["lastMetrics"]["device"].is_object(), "{v}");
    let (p50, p99) = timed(calls, || {
        let (status, _) = call(store, "GET", "/things/thing-000001", &[]);
        assert_eq!(status, 200);
    });
    println!(
        "things/{{name}} (the thing page: alarms, last metrics): median {p50:.2} ms, p99 {p99:.2} ms"
    );
    let (p50, p99) = timed(calls, || {
        check(store, "/things", &[("maxResults", "250")], "things");
    });
    println!("things maxResults=250: median {p50:.2} ms, p99 {p99:.2} ms");
}
