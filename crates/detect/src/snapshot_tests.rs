//! Saving and restoring: an engine written as JSON and restored before every report and every
//! profile change gives the same events as one kept in memory (old states: compat_tests).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use protocol::model::{ConnectionList, Header, Metrics, Missing, PortList};
use protocol::{Connection, NetworkStats, Port, Report};
use serde_json::{Value, json};

use super::*;
use crate::engine::STALE_AFTER_MS;
use crate::ids::IdSource;
use crate::profile::parse;

/// Ids 1, 2, 3, … from a counter several engines share in turn.
fn shared_ids(next: &Arc<AtomicU64>) -> IdSource {
    let next = Arc::clone(next);
    Box::new(move || u128::from(next.fetch_add(1, Ordering::Relaxed)))
}

pub(super) fn profile(v: &Value) -> Profile {
    parse(&v.to_string(), Path::new("/p/t.json")).unwrap().0
}

/// The state as the previous version wrote it: every behavior, each with its object.
pub(super) fn full_snapshot(e: &Engine) -> EngineState {
    let mut s = e.snapshot();
    s.behaviors.clear();
    for (p, tracks) in e.profiles.iter().zip(&e.tracks) {
        for (b, track) in p.behaviors.iter().zip(tracks) {
            s.behaviors.push(BehaviorState {
                profile: p.name.clone(),
                behavior: b.name.clone(),
                fingerprint: b.fingerprint.clone(),
                json: Some(b.json.clone()),
                track: track.clone(),
            });
        }
    }
    s
}

/// Profile sets: 0 the first, 1 with edits (a value changed, a datapoint count changed, a
/// behavior removed, one added, an ML confidence changed), 2 without the ML profile.
fn profile_sets() -> Vec<Vec<Profile>> {
    let b = |name: &str, metric: &str, criteria: Value| json!({"name": name, "metric": metric, "criteria": criteria});
    let le = |n: u64| json!({"comparisonOperator": "less-than-equals", "value": {"count": n}});
    let window = |n: u64, d: u64, a: u64| {
        json!({"comparisonOperator": "less-than-equals", "value": {"count": n},
               "durationSeconds": d, "consecutiveDatapointsToAlarm": a, "consecutiveDatapointsToClear": 2})
    };
    let ml = |level: &str| {
        json!({"mlDetectionConfig": {"confidenceLevel": level},
               "consecutiveDatapointsToAlarm": 1, "consecutiveDatapointsToClear": 2})
    };
    let telnet =
        |ports: Value| json!({"comparisonOperator": "not-in-port-set", "value": {"ports": ports}});
    let conns = |clear: u64| {
        json!({"comparisonOperator": "less-than-equals", "value": {"count": 50},
               "consecutiveDatapointsToAlarm": 3, "consecutiveDatapointsToClear": clear})
    };
    let edge = |edited: bool| {
        let mut behaviors = vec![
            b(
                "no-telnet",
                "aws:listening-tcp-ports",
                telnet(if edited {
                    json!([23])
                } else {
                    json!([23, 2323])
                }),
            ),
            b(
                "tcp-conns",
                "aws:num-established-tcp-connections",
                conns(if edited { 3 } else { 2 }),
            ),
            b("bytes-out", "aws:all-bytes-out", window(1_000_000, 300, 1)),
            b("bytes-in", "aws:all-bytes-in", window(2_000_000, 900, 2)),
            b("few-ports", "aws:num-listening-tcp-ports", le(2)),
        ];
        if edited {
            behaviors.push(b(
                "packets-out",
                "aws:all-packets-out",
                window(2_000, 3600, 1),
            ));
        } else {
            behaviors.insert(2, b("no-private-dest", "aws:destination-ip-addresses",
                json!({"comparisonOperator": "not-in-cidr-set", "value": {"cidrs": ["10.0.0.0/8"]}})));
        }
        profile(&json!({"securityProfileName": "edge", "behaviors": behaviors}))
    };
    let learned = |level: &str| {
        profile(&json!({"securityProfileName": "ml", "behaviors": [
            b("conns-ml", "aws:num-established-tcp-connections", ml(level)),
            b("bytes-ml", "aws:all-bytes-out", ml("LOW")),
        ]}))
    };
    vec![
        vec![edge(false), learned("LOW")],
        vec![edge(true), learned("HIGH")],
        vec![edge(false)],
    ]
}

/// A report with pseudo-random ports, connections and traffic (xorshift from `seed`);
/// after the first two days, rare bursts of connections and bytes (for the ML behaviors).
fn report(id: u64, i: u64, seed: &mut u64) -> Report {
    let mut draw = |n: u64| {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        *seed % n
    };
    let mut r = Report {
        header: Header { report_id: id },
        metrics: Metrics {
            listening_tcp_ports: PortList::default(),
            listening_udp_ports: PortList::default(),
            established: ConnectionList::default(),
            network_stats: None,
            missing: Missing::default(),
        },
        custom_metrics: Default::default(),
    };
    let mut ports = vec![22, 443];
    if draw(5) == 0 {
        ports.push(23);
    }
    if draw(7) == 0 {
        ports.push(8080);
    }
    r.metrics.listening_tcp_ports.total = ports.len() as u64;
    r.metrics.listening_tcp_ports.ports = ports
        .into_iter()
        .map(|port| Port {
            port,
            interface: None,
        })
        .collect();
    // Bursts: rare after two days of learning, and for the ten reports before each profile
    // change and the silence, so ML alarms are active when those come.
    let before_change = [690..700, 840..850, 990..1_000]
        .iter()
        .any(|r| r.contains(&i));
    let burst = i > 620 && (draw(40) == 0 || before_change);
    let remote = if draw(6) == 0 {
        [8, 8, 8, 8]
    } else {
        [10, 0, 0, 7]
    };
    r.metrics.established.connections = vec![Connection {
        remote: (remote, 443).into(),
        local_port: 50000,
        local_interface: None,
    }];
    r.metrics.established.total = if burst { 2_000 } else { 10 + draw(50) };
    r.metrics.network_stats = (draw(10) != 0).then(|| NetworkStats {
        bytes_in: draw(1_000_000),
        bytes_out: if burst { 50_000_000 } else { draw(700_000) },
        packets_in: draw(500),
        packets_out: draw(1_500),
    });
    r
}

#[test]
fn an_engine_restored_before_every_step_gives_the_events_of_one_kept_in_memory() {
    let sets = profile_sets();
    let (ids_a, ids_b) = (Arc::new(AtomicU64::new(1)), Arc::new(AtomicU64::new(1)));
    let mut a = Engine::new("dev", sets[0].clone(), shared_ids(&ids_a));
    let mut saved = serde_json::to_string(&a.snapshot()).unwrap();
    let mut current = 0;
    let (mut t, mut seed) = (1_767_225_600_000u64, 0x9e37_79b9_7f4a_7c15u64);
    let mut seen = std::collections::BTreeMap::new();
    for i in 0..1_200u64 {
        // Profile changes (events at the change), and a silence of more than two days.
        let change = match i {
            700 => Some(1),
            850 => Some(2),
            950 => Some(0),
            _ => None,
        };
        t += if i == 1_000 {
            STALE_AFTER_MS + 60_000
        } else {
            60_000 + 1_000 * (seed % 480)
        };
        let profiles = &sets[change.unwrap_or(current)];
        let state: EngineState = serde_json::from_str(&saved).unwrap();
        let (mut b, restored) =
            Engine::restore("dev", profiles.clone(), shared_ids(&ids_b), state, t);
        let mut want = Vec::new();
        if let Some(c) = change {
            let (next, events) = Engine::restore(
                "dev",
                profiles.clone(),
                shared_ids(&ids_a),
                full_snapshot(&a),
                t,
            );
            (a, want, current) = (next, events, c);
        }
        assert_eq!(restored, want, "restore before report {i}");
        let r = report(t, i, &mut seed);
        let (got, want_report) = (b.evaluate(&r, t), a.evaluate(&r, t));
        assert_eq!(got, want_report, "report {i}");
        for e in want.iter().chain(&want_report) {
            let ml = e.violation_event_additional_info.is_some();
            *seen.entry((e.violation_event_type.name(), ml)).or_insert(0) += 1;
        }
        saved = serde_json::to_string(&b.snapshot()).unwrap();
        assert_eq!(
            saved,
            serde_json::to_string(&a.snapshot()).unwrap(),
            "state after report {i}"
        );
    }
    // The run went through every kind of transition, of ML behaviors too.
    for kind in ["in-alarm", "alarm-cleared", "alarm-invalidated"] {
        for ml in [false, true] {
            assert!(
                seen.get(&(kind, ml)).is_some_and(|n| *n > 0),
                "no {kind} (ml {ml}): {seen:?}"
            );
        }
    }
}
