//! The judge with a real SQLite store and fixed times: statistical thresholds over ten
//! devices, staleness and attachment changes in the sweep.

use std::path::Path;

use detect::{Profile, STALE_AFTER_MS, profile, seeded_ids};
use serde_json::json;

use super::*;
use crate::config::Attach;
use crate::store::{Sink, Sqlite, Store};

/// A window boundary of 300 s, in 2027.
const T0: u64 = 1_800_000_000_000; // a multiple of 300 000

fn profile_of(doc: serde_json::Value) -> Profile {
    profile::parse(&doc.to_string(), Path::new("test.json"))
        .unwrap()
        .0
}

fn judge(profiles: Vec<Profile>, target: &str) -> Judge {
    let attach: Vec<Attach> = profiles
        .iter()
        .map(|p| Attach {
            profile: p.name.clone(),
            target: target.into(),
        })
        .collect();
    Judge::new(profiles, Attachments::new(&attach), 1, None, seeded_ids(7))
}

fn report(id: u64, bytes_out: u64) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "header": {"report_id": id, "version": "1.0"},
        "metrics": {
            "listening_tcp_ports": {"ports": [{"port": 22}]},
            "network_stats": {"bytes_in": 1, "bytes_out": bytes_out, "packets_in": 1, "packets_out": 1}
        }
    }))
    .unwrap()
}

fn topic(thing: &str) -> ReportTopic {
    ReportTopic::parse(&format!("$aws/things/{thing}/defender/metrics/json")).unwrap()
}

impl Judge {
    /// One report, synced on its own.
    fn handle_one(
        &mut self,
        store: &mut dyn Store,
        topic: &ReportTopic,
        payload: &[u8],
        now_ms: u64,
    ) -> Result<Handled, StoreError> {
        let handled = self.handle(store, topic, payload, now_ms)?;
        store.sync()?;
        Ok(handled)
    }
}

/// Stored (thing, profile) engine states.
fn states(s: &mut dyn Store) -> usize {
    let records = s.with_state().unwrap();
    records.iter().map(|(_, l)| l.record.states.len()).sum()
}

fn store() -> (tempfile::TempDir, Sqlite) {
    let dir = tempfile::tempdir().unwrap();
    let s = Sqlite::open(&dir.path().join("fleet.db")).unwrap();
    (dir, s)
}

/// Each test runs against every backend (the judge needs nothing of SQLite).
macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[test]
                fn $name() {
                    let (_dir, s) = super::store();
                    super::$name(s);
                }
            )*
        }
        mod memory {
            $(
                #[test]
                fn $name() {
                    super::$name(crate::store::Memory::new());
                }
            )*
        }
        mod nats {
            $(
                #[test]
                fn $name() {
                    let (_dir, server) = crate::store::nats_server();
                    let opts = crate::store::nats_options(&server);
                    super::$name(crate::store::Nats::open(&opts).unwrap());
                }
            )*
        }
    };
}

on_every_backend!(
    only_the_same_bytes_are_a_redelivery,
    a_p90_threshold_flags_the_one_device_of_ten_far_above_the_others,
    the_sweep_invalidates_alarms_of_silent_things_and_of_things_no_longer_watched,
);

fn a_p90_threshold_flags_the_one_device_of_ten_far_above_the_others<S: Store>(mut s: S) {
    let p = profile_of(json!({
        "securityProfileName": "fleet-traffic",
        "behaviors": [{
            "name": "bytes-out-p90",
            "metric": "aws:all-bytes-out",
            "criteria": {
                "comparisonOperator": "less-than-equals",
                "statisticalThreshold": {"statistic": "p90"},
                "durationSeconds": 300
            }
        }]
    }));
    let mut j = judge(vec![p], "all-things");
    let bytes = |i: u64| if i == 7 { 5_000_000 } else { 1_000 + i * 10 };
    let mut events = Vec::new();
    // Window 1: the population; nothing can be judged yet (no previous window).
    for i in 0..10 {
        let h = j
            .handle_one(
                &mut s,
                &topic(&format!("dev-{i}")),
                &report(1, bytes(i)),
                T0 + 10_000 + i,
            )
            .unwrap();
        assert!(h.accepted);
        events.extend(h.events);
    }
    assert!(events.is_empty(), "{events:?}");
    // Window 2: the same traffic, judged against window 1's p90 (1 080, the 9th of 10).
    for i in 0..10 {
        let h = j
            .handle_one(
                &mut s,
                &topic(&format!("dev-{i}")),
                &report(2, bytes(i)),
                T0 + 310_000 + i,
            )
            .unwrap();
        assert!(h.accepted);
        events.extend(h.events);
    }
    assert_eq!(events.len(), 1, "{events:?}");
    let e = &events[0].event;
    assert_eq!(e.thing_name, "dev-7");
    assert_eq!(e.violation_event_type.name(), "in-alarm");
    assert_eq!(
        e.behavior["criteria"]["statisticalThreshold"]["statistic"], "p90",
        "the behavior as configured"
    );
    // Until marked sent, every read of the outbox gives the same bytes, the event as recorded:
    // a resend after a crash before the PUBACK is byte-identical.
    let first = s.pending(Sink::Mqtt, 10).unwrap();
    let again = s.pending(Sink::Mqtt, 10).unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].payload, again[0].payload);
    assert_eq!(first[0].payload, serde_json::to_vec(e).unwrap());
    // The next window's threshold includes the outlier's rank again: it stays in alarm, no
    // second event, and the others stay normal.
    let mut later = Vec::new();
    for i in 0..10 {
        let h = j
            .handle_one(
                &mut s,
                &topic(&format!("dev-{i}")),
                &report(3, bytes(i)),
                T0 + 610_000 + i,
            )
            .unwrap();
        later.extend(h.events);
    }
    assert!(later.is_empty(), "{later:?}");
    // When dev-7 calms down (its last 300 s hold only the calm report), its alarm clears.
    let h = j
        .handle_one(&mut s, &topic("dev-7"), &report(4, 1_000), T0 + 920_000)
        .unwrap();
    assert_eq!(h.events.len(), 1);
    assert_eq!(
        h.events[0].event.violation_event_type.name(),
        "alarm-cleared"
    );
}

/// Issue #17 item 2: a different report under an accepted id is judged by the sequence
/// rule (and evaluated if it passes), the same bytes get the stored answer, and a report
/// answered `Throttled` sent again later is judged again, not answered from the store.
fn only_the_same_bytes_are_a_redelivery<S: Store>(mut s: S) {
    let mut j = judge(vec![no_ssh()], "all");
    let t = topic("gw-1");
    let first = report(100, 1);
    let h = j.handle_one(&mut s, &t, &first, T0).unwrap();
    assert!(h.accepted && !h.replayed);
    // Another report under id 100: not a redelivery; 100 is not above the last accepted 100.
    let other = report(100, 2);
    let h = j.handle_one(&mut s, &t, &other, T0 + 300).unwrap();
    assert!(!h.accepted && !h.replayed);
    assert!(String::from_utf8_lossy(&h.answer).contains("is not greater than"));
    // The first report's bytes again: the stored ACCEPTED.
    let h = j.handle_one(&mut s, &t, &first, T0 + 400).unwrap();
    assert!(h.accepted && h.replayed);
    // Throttled (min interval 1 s), then the same bytes 1.4 s later: judged again and evaluated.
    let next = report(101, 3);
    let h = j.handle_one(&mut s, &t, &next, T0 + 600).unwrap();
    assert!(!h.accepted && String::from_utf8_lossy(&h.answer).contains("Throttled"));
    let h = j.handle_one(&mut s, &t, &next, T0 + 2_000).unwrap();
    assert!(h.accepted && !h.replayed);
    let last = s.load("gw-1").unwrap().record.last_report;
    assert_eq!(last, Some((101, T0 + 2_000)), "evaluated when judged again");
    let h = j.handle_one(&mut s, &t, &next, T0 + 2_500).unwrap();
    assert!(h.accepted && h.replayed);
}

fn no_ssh() -> Profile {
    profile_of(json!({
        "securityProfileName": "no-ssh",
        "behaviors": [{
            "name": "no-22",
            "metric": "aws:listening-tcp-ports",
            "criteria": {"comparisonOperator": "not-in-port-set", "value": {"ports": [22]}}
        }]
    }))
}

fn the_sweep_invalidates_alarms_of_silent_things_and_of_things_no_longer_watched<S: Store>(
    mut s: S,
) {
    let mut j = judge(vec![no_ssh()], "group:gw");
    s.register("a", &["gw".to_string()].into()).unwrap();
    s.register("b", &["gw".to_string()].into()).unwrap();
    j.set_registry(crate::store::registry(&s.things().unwrap()));
    let a = j
        .handle_one(&mut s, &topic("a"), &report(1, 1), T0)
        .unwrap();
    let b = j
        .handle_one(&mut s, &topic("b"), &report(1, 1), T0 + 1)
        .unwrap();
    assert_eq!(a.events.len() + b.events.len(), 2);
    assert!(j.sweep(&mut s, T0 + 1000).unwrap().events.is_empty());

    // b leaves the group: its alarm is invalidated and its state dropped.
    s.register("b", &Default::default()).unwrap();
    j.set_registry(crate::store::registry(&s.things().unwrap()));
    let w = j.sweep(&mut s, T0 + 2000).unwrap();
    assert_eq!(w.events.len(), 1);
    assert_eq!(w.events[0].event.thing_name, "b");
    assert_eq!(
        w.events[0].event.violation_event_type.name(),
        "alarm-invalidated"
    );
    assert_eq!(states(&mut s), 1);

    // a goes silent for more than 2 days.
    let w = j.sweep(&mut s, T0 + STALE_AFTER_MS).unwrap();
    assert!(w.events.is_empty());
    let w = j.sweep(&mut s, T0 + STALE_AFTER_MS + 1).unwrap();
    assert_eq!(w.events.len(), 1);
    assert_eq!(w.events[0].event.thing_name, "a");
    assert_eq!(
        w.events[0].event.violation_event_type.name(),
        "alarm-invalidated"
    );
    assert!(
        j.sweep(&mut s, T0 + STALE_AFTER_MS + 2)
            .unwrap()
            .events
            .is_empty()
    );
    let v = s.violations(&Default::default()).unwrap();
    assert!(
        v.iter()
            .all(|v| v.end_event_type.as_deref() == Some("alarm-invalidated"))
    );

    // The profile detached from every target (a config change) ends nothing more: no alarm left.
    let mut j2 = judge(Vec::new(), "all-things");
    assert!(
        j2.sweep(&mut s, T0 + STALE_AFTER_MS + 3)
            .unwrap()
            .events
            .is_empty()
    );
}

#[test]
fn deciding_a_report_needs_no_store() {
    let j = judge(vec![no_ssh()], "all-things");
    let decoded = intake::structure(&topic("a"), &report(5, 1)).unwrap();
    let d = j.decide("a", Record::default(), &decoded.report, T0, vec![no_ssh()]);
    assert_eq!(d.record.last_report, Some((5, T0)));
    assert_eq!(d.record.states.keys().collect::<Vec<_>>(), ["no-ssh"]);
    assert_eq!(d.events.len(), 1);
    let e = &d.events[0].event;
    assert_eq!(e.violation_event_type.name(), "in-alarm");
    assert_eq!(d.touched, [(e.violation_id.clone(), T0)]);
    // The same report against the record it produced: still in alarm, nothing new.
    let again = j.decide(
        "a",
        d.record.clone(),
        &decoded.report,
        T0 + 1,
        vec![no_ssh()],
    );
    assert!(again.events.is_empty());
    assert_eq!(again.touched, [(e.violation_id.clone(), T0 + 1)]);
}
