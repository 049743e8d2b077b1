//! One conformance suite for every backend: each check is a generic function over `Store`,
//! instantiated by `conformance!` for SQLite (a temporary file), the memory store and NATS
//! JetStream (a nats-server of its own per check, `detect_testkit::nats`).

use detect::{EngineState, Event, MetricValue};
use serde_json::json;

use super::*;

pub(super) fn event(id: &str, kind: &str, time: u64, suppressed: bool) -> Recorded {
    let behavior = json!({"name": "b", "metric": "aws:num-listening-tcp-ports",
        "criteria": {"comparisonOperator": "less-than", "value": {"count": 1}},
        "suppressAlerts": suppressed});
    let mut e: Event = serde_json::from_value(json!({
        "violationEventTime": time, "thingName": "t1", "securityProfileName": "p",
        "behavior": behavior, "violationEventType": kind, "violationId": id,
        "verificationState": "UNKNOWN"
    }))
    .unwrap();
    if kind == "in-alarm" {
        e.metric_value = Some(MetricValue::Count(3));
    }
    Recorded {
        event: e,
        suppressed,
    }
}

fn state(ms: u64) -> EngineState {
    EngineState {
        last_report_ms: Some(ms),
        ..EngineState::default()
    }
}

pub(super) fn answer(thing: &str, report_id: u64, time_ms: u64, accepted: bool) -> StoredReport {
    StoredReport {
        thing: thing.into(),
        report_id,
        time_ms,
        accepted,
        answer: json!({"reportId": report_id, "status": if accepted {"ACCEPTED"} else {"REJECTED"}}),
        digest: Some([time_ms as u8; 32]),
    }
}

pub(super) fn step(thing: &str, expected: Version, report_id: u64, profiles: &[&str]) -> Commit {
    Commit {
        thing: thing.into(),
        expected,
        record: Record {
            last_report: Some((report_id, report_id * 1000)),
            states: profiles
                .iter()
                .map(|p| (p.to_string(), state(report_id * 1000)))
                .collect(),
            witness: None,
        },
        answers: vec![answer(thing, report_id, report_id * 1000, true)],
        ..Commit::default()
    }
}

pub fn a_record_commits_whole_against_its_version<S: Store>(mut s: S) {
    assert_eq!(s.load("t1").unwrap(), Loaded::default());
    s.commit(&[step("t1", 0, 1, &["p", "q"])]).unwrap();
    let l = s.load("t1").unwrap();
    assert_eq!(l.version, 1);
    assert_eq!(l.record, step("t1", 0, 1, &["p", "q"]).record);
    assert_eq!(
        s.answer("t1", 1).unwrap(),
        Some(answer("t1", 1, 1000, true))
    );
    assert_eq!(s.answer("t1", 2).unwrap(), None);
    // Whole: a profile left out of the record has no state any more.
    s.commit(&[step("t1", 1, 2, &["q"])]).unwrap();
    let l = s.load("t1").unwrap();
    assert_eq!((l.version, l.record.states.len()), (2, 1));
    assert_eq!(l.record.last_report, Some((2, 2000)));
    let swept = s.with_state().unwrap();
    assert_eq!(swept, vec![("t1".to_string(), l)]);
    s.commit(&[step("t1", 2, 3, &["p", "r"])]).unwrap();
    let l = s.load("t1").unwrap();
    assert_eq!(l.record.states.keys().collect::<Vec<_>>(), ["p", "r"]);
    s.commit(&[step("t1", 3, 4, &[])]).unwrap();
    assert!(s.with_state().unwrap().is_empty());
    assert_eq!(s.load("t1").unwrap().version, 4);
}

pub fn a_stale_version_conflicts_and_writes_nothing<S: Store>(mut s: S) {
    s.commit(&[step("t1", 0, 1, &["p"])]).unwrap();
    let mut stale = step("t1", 0, 2, &["p"]);
    stale.events.push(event("v1", "in-alarm", 2000, false));
    let fresh = step("t2", 0, 1, &["p"]);
    let e = s.commit(&[fresh.clone(), stale]).unwrap_err();
    assert!(
        matches!(e, StoreError::Conflict { ref thing, expected: 0 } if thing == "t1"),
        "{e}"
    );
    // All or nothing: neither t2 nor t1's answer, events or violations were written.
    assert_eq!(s.load("t2").unwrap().version, 0);
    assert_eq!(s.answer("t1", 2).unwrap(), None);
    assert!(s.pending(Sink::Mqtt, 10).unwrap().is_empty());
    assert!(s.violations(&Filter::default()).unwrap().is_empty());
    // A version from the future conflicts too, also for a thing never committed.
    assert!(matches!(
        s.commit(&[step("t3", 4, 1, &[])]),
        Err(StoreError::Conflict { .. })
    ));
    s.commit(&[fresh]).unwrap();
    assert_eq!(s.load("t2").unwrap().version, 1);
}

/// Issue #17: the answer to an id is replaced while it is a rejection, never once accepted.
pub fn a_rejected_answer_gives_way_and_an_accepted_one_stays<S: Store>(mut s: S) {
    let mut c = step("t1", 0, 5, &[]);
    c.record = Record::default();
    c.answers = vec![answer("t1", 6, 1, false)];
    s.commit(&[c]).unwrap();
    assert_eq!(s.answer("t1", 6).unwrap(), Some(answer("t1", 6, 1, false)));
    let mut c = step("t1", 1, 6, &[]);
    c.answers = vec![answer("t1", 6, 2, true)];
    s.commit(&[c]).unwrap();
    assert_eq!(s.answer("t1", 6).unwrap(), Some(answer("t1", 6, 2, true)));
    let mut c = step("t1", 2, 6, &[]);
    c.answers = vec![answer("t1", 6, 3, false)];
    s.commit(&[c]).unwrap();
    s.sync().unwrap();
    assert_eq!(s.answer("t1", 6).unwrap(), Some(answer("t1", 6, 2, true)));
}

pub fn registering_keeps_the_record_and_its_version<S: Store>(mut s: S) {
    let groups: BTreeSet<String> = ["gw".to_string()].into();
    s.register("t1", &groups).unwrap();
    assert_eq!(s.load("t1").unwrap().version, 0);
    s.commit(&[step("t1", 0, 5, &[])]).unwrap();
    s.register("t1", &BTreeSet::new()).unwrap();
    assert_eq!(s.load("t1").unwrap().version, 1);
    let mut rejected = step("t2", 0, 9, &[]);
    rejected.record = Record::default();
    rejected.answers = vec![answer("t2", 9, 9000, false)];
    s.commit(&[rejected]).unwrap();
    let things = s.things().unwrap();
    let names: Vec<(&str, bool, Option<u64>)> = things
        .iter()
        .map(|t| (t.name.as_str(), t.registered, t.last_report_id))
        .collect();
    assert_eq!(names, [("t1", true, Some(5)), ("t2", false, None)]);
    assert!(things[0].groups.is_empty());
    assert_eq!(things[0].last_report_ms, Some(5000));
    assert_eq!(registry(&things).len(), 1);
}

pub fn events_reach_the_outbox_once_with_a_cursor_per_sink<S: Store>(mut s: S) {
    let mut c = step("t1", 0, 1, &["p"]);
    c.events = vec![
        event("v1", "in-alarm", 1000, false),
        event("v2", "in-alarm", 1000, true),
        event("v3", "in-alarm", 1000, false),
    ];
    s.commit(&[c]).unwrap();
    // Appending what is there already changes nothing.
    s.append(&[event("v1", "in-alarm", 1000, false)]).unwrap();
    s.append(&[event("v1", "alarm-cleared", 4000, false)])
        .unwrap();
    let mqtt = s.pending(Sink::Mqtt, 10).unwrap();
    let ids: Vec<(&str, &str)> = mqtt
        .iter()
        .map(|p| {
            (
                p.event.violation_id.as_str(),
                p.event.violation_event_type.name(),
            )
        })
        .collect();
    assert_eq!(
        ids,
        [
            ("v1", "in-alarm"),
            ("v3", "in-alarm"),
            ("v1", "alarm-cleared")
        ]
    );
    assert!(mqtt.windows(2).all(|w| w[0].position < w[1].position));
    assert_eq!(mqtt[0].payload, serde_json::to_vec(&mqtt[0].event).unwrap());
    assert_eq!(s.pending(Sink::Mqtt, 1).unwrap(), mqtt[..1]);
    s.ack(Sink::Mqtt, mqtt[1].position).unwrap();
    assert_eq!(s.pending(Sink::Mqtt, 10).unwrap(), mqtt[2..]);
    assert_eq!(s.pending(Sink::Webhook, 10).unwrap(), mqtt);
    s.ack(Sink::Webhook, mqtt[0].position).unwrap();
    assert_eq!(s.pending(Sink::Webhook, 10).unwrap(), mqtt[1..]);
}

pub fn commits_keep_the_violation_index<S: Store>(mut s: S) {
    let mut c = step("t1", 0, 1, &["p"]);
    c.events = vec![
        event("v1", "in-alarm", 1000, false),
        event("v2", "in-alarm", 1000, true),
    ];
    c.touched = vec![("v1".into(), 1000), ("v2".into(), 1000)];
    s.commit(&[c]).unwrap();
    // A later step touched v1 and v2, the one after ended v1.
    let mut later = step("t1", 1, 2, &["p"]);
    later.touched = vec![("v1".into(), 2000), ("v2".into(), 2000)];
    s.commit(&[later]).unwrap();
    let mut end = step("t1", 2, 3, &["p"]);
    end.events = vec![event("v1", "alarm-cleared", 3000, false)];
    end.touched = vec![("v2".into(), 3000)];
    s.commit(&[end]).unwrap();
    s.sync().unwrap();
    let all = s.violations(&Filter::default()).unwrap();
    let v1 = &all[0];
    assert_eq!(
        (v1.violation_id.as_str(), v1.last_violation_time),
        ("v1", 2000)
    );
    assert_eq!(v1.violation_end_time, Some(3000));
    assert_eq!(v1.end_event_type.as_deref(), Some("alarm-cleared"));
    assert_eq!(v1.last_violation_value, Some(json!({"count": 3})));
    assert!(!v1.suppressed && all[1].suppressed);
    assert_eq!(
        (all[1].last_violation_time, all[1].violation_end_time),
        (3000, None)
    );
    let active = Filter {
        active_only: true,
        ..Filter::default()
    };
    assert_eq!(s.violations(&active).unwrap(), all[1..]);
    let other = Filter {
        thing: Some("t2".into()),
        ..Filter::default()
    };
    assert!(s.violations(&other).unwrap().is_empty());
    assert!(s.verify("v1", "TRUE_POSITIVE", Some("seen")).unwrap());
    assert!(!s.verify("v9", "TRUE_POSITIVE", None).unwrap());
    let v1 = &s.violations(&Filter::default()).unwrap()[0];
    assert_eq!(v1.verification_state, "TRUE_POSITIVE");
    assert_eq!(v1.verification_state_description.as_deref(), Some("seen"));
}

pub fn samples_sum_or_replace_per_thing_and_window<S: Store>(mut s: S) {
    let sample = |thing: &str, window: u64, value: f64, sum: bool| Sample {
        profile: "p".into(),
        behavior: "b".into(),
        window_start_ms: window,
        thing: thing.into(),
        value,
        sum,
    };
    let mut a = step("a", 0, 1, &[]);
    a.samples = vec![sample("a", 0, 1.0, true), sample("a", 0, 2.0, true)];
    let mut b = step("b", 0, 1, &[]);
    b.samples = vec![sample("b", 0, 7.0, false), sample("b", 0, 5.0, false)];
    b.samples.push(sample("b", 300, 9.0, false));
    s.commit(&[a, b]).unwrap();
    let mut w = s.window("p", "b", 0).unwrap();
    w.sort_by(f64::total_cmp);
    assert_eq!(w, [3.0, 5.0]);
    assert_eq!(s.window("p", "b", 300).unwrap(), [9.0]);
    assert!(s.window("p", "other", 0).unwrap().is_empty());
}

pub fn prune_drops_old_history_and_answers_only<S: Store>(mut s: S) {
    let mut c = step("t1", 0, 1, &["p"]);
    c.events = vec![
        event("v1", "in-alarm", 1000, false),
        event("v1", "alarm-cleared", 1500, false),
        event("v2", "in-alarm", 1000, true),
    ];
    c.answers.push(answer("t1", 7, 9000, true));
    s.commit(&[c]).unwrap();
    let sent = s.pending(Sink::Mqtt, 10).unwrap();
    s.ack(Sink::Mqtt, sent[1].position).unwrap();
    s.ack(Sink::Webhook, sent[0].position).unwrap();
    // Kept: v2 (active), the unsent (webhook) cleared event, answer 7.
    // Dropped: v1 (ended), the sent in-alarm event, the suppressed event, answer 1.
    assert_eq!(s.prune(2000, 5000).unwrap(), 4);
    assert_eq!(s.pending(Sink::Webhook, 10).unwrap(), sent[1..]);
    assert_eq!(s.answer("t1", 1).unwrap(), None);
    assert!(s.answer("t1", 7).unwrap().is_some());
    let ids: Vec<String> = s
        .violations(&Filter::default())
        .unwrap()
        .into_iter()
        .map(|v| v.violation_id)
        .collect();
    assert_eq!(ids, ["v2"]);
    assert_eq!(s.load("t1").unwrap().record.states.len(), 1);
}

pub fn a_commit_is_read_back_at_once_and_by_every_handle_after_sync<S: Store>(
    mut s: S,
    mut other: S,
) {
    s.commit(&[step("t1", 0, 1, &["p"])]).unwrap();
    assert_eq!(s.load("t1").unwrap().version, 1);
    s.commit(&[step("t1", 1, 2, &["p"])]).unwrap();
    s.sync().unwrap();
    assert_eq!(other.load("t1").unwrap().version, 2);
    assert!(other.answer("t1", 2).unwrap().is_some());
    // The other handle commits next; this one's version 2 is stale now.
    other.commit(&[step("t1", 2, 3, &["p"])]).unwrap();
    other.sync().unwrap();
    // Refused at the commit, or (a backend whose writes go out at once) at the sync after.
    let e = s
        .commit(&[step("t1", 2, 4, &["p"])])
        .and_then(|()| s.sync())
        .unwrap_err();
    assert!(matches!(e, StoreError::Conflict { .. }), "{e}");
    // The failed commit left this handle usable: a fresh load commits.
    let v = s.load("t1").unwrap().version;
    s.commit(&[step("t1", v, 5, &["p"])]).unwrap();
    s.sync().unwrap();
    assert_eq!(other.load("t1").unwrap().version, 4);
}

pub fn a_thing_only_rejected_is_listed_with_its_last_rejection<S: Store>(mut s: S) {
    s.commit(&[step("t1", 0, 5, &[])]).unwrap();
    s.note_rejection("t0", &LastRejection::new(1000, "InvalidPayload", "first"))
        .unwrap();
    let last = LastRejection::new(2000, "InvalidPayload", &"k".repeat(400));
    s.note_rejection("t0", &last).unwrap();
    s.sync().unwrap();
    let things = s.things().unwrap();
    let names: Vec<&str> = things.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["t0", "t1"]);
    assert_eq!(things[0].last_report_id, None);
    assert_eq!(things[0].last_rejection, Some(last.clone()));
    assert_eq!(
        last.message.chars().count(),
        LastRejection::MAX_MESSAGE_CHARS
    );
    assert_eq!(things[1].last_rejection, None);
    s.prune(0, 3000).unwrap();
    assert_eq!(s.things().unwrap().len(), 1, "old rejections are pruned");
}

/// Issue #18: broker counters ride in the record (same version), survive a report's commit
/// and the sweep's, are listed for the window timer, and go with `None`; cursors persist.
pub fn broker_counters_are_part_of_the_record_and_cursors_persist<S: Store>(mut s: S) {
    use crate::witness::Witness;
    let mut w = Witness::starting(1_000, 1_000);
    let e = protocol::broker::Event::Connect {
        at_ms: 1_500,
        client_id: "t1".into(),
        ip: "127.0.0.2".into(),
        ok: true,
    };
    assert!(w.add(&e, 1_000));
    let mut c = step("t1", 0, 1, &["p"]);
    c.record.witness = Some(w.clone());
    s.commit(&[c]).unwrap();
    let l = s.load("t1").unwrap();
    assert_eq!(l.record.witness.as_ref(), Some(&w));
    assert_eq!(
        s.with_witness().unwrap(),
        vec![("t1".to_string(), l.clone())]
    );
    assert_eq!(
        s.with_state().unwrap()[0].1.record.witness.as_ref(),
        Some(&w)
    );
    s.commit(&[step("t1", 1, 2, &["p"])]).unwrap();
    assert!(
        s.with_witness().unwrap().is_empty(),
        "a record without it drops it"
    );
    assert_eq!(s.cursor("mosquitto-plugin").unwrap(), None);
    s.set_cursor("mosquitto-plugin", "a1", 7).unwrap();
    s.set_cursor("mosquitto-plugin", "a1", 8).unwrap();
    s.sync().unwrap();
    assert_eq!(
        s.cursor("mosquitto-plugin").unwrap(),
        Some(("a1".into(), 8))
    );
    assert_eq!(s.cursor("nats").unwrap(), None);
}

/// A one-node nats-server with JetStream in a temporary directory (killed on drop).
pub fn nats_server() -> (tempfile::TempDir, detect_testkit::nats::Nats) {
    let dir = tempfile::tempdir().unwrap();
    let server = detect_testkit::nats::Nats::start(dir.path(), &[("fleet", "fleet password")]);
    (dir, server)
}

pub fn nats_options(server: &detect_testkit::nats::Nats) -> NatsOptions {
    NatsOptions {
        servers: vec![server.url()],
        auth: NatsAuth::UserPassword("fleet".into(), "fleet password".into()),
        ca_file: None,
        client_cert: None,
        replicas: 1,
        timeout: std::time::Duration::from_secs(10),
    }
}

macro_rules! conformance {
    ($backend:ident, $open:expr, [$($check:ident),* $(,)?]) => {
        mod $backend {
            $(
                #[test]
                fn $check() {
                    let (_keep, store) = $open;
                    super::$check(store);
                }
            )*
        }
    };
}

macro_rules! every_backend {
    ($($check:ident),* $(,)?) => {
        conformance!(sqlite, {
            let dir = tempfile::tempdir().unwrap();
            let s = super::Sqlite::open(&dir.path().join("fleet.db")).unwrap();
            (dir, s)
        }, [$($check),*]);
        conformance!(memory, ((), super::Memory::new()), [$($check),*]);
        conformance!(nats, {
            let server = super::nats_server();
            let s = super::Nats::open(&super::nats_options(&server.1)).unwrap();
            (server, s)
        }, [$($check),*]);
        // Cluster mode: a fence (owning every thing) makes the handle trust its cache.
        conformance!(nats_owned, {
            let server = super::nats_server();
            let mut s = super::Nats::open(&super::nats_options(&server.1)).unwrap();
            s.set_fence(std::sync::Arc::new(|_: &str| true));
            (server, s)
        }, [$($check),*]);
    };
}

/// Checks that take two handles on one store.
mod two_handles {
    #[test]
    fn sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let open = || super::Sqlite::open(&dir.path().join("fleet.db")).unwrap();
        super::a_commit_is_read_back_at_once_and_by_every_handle_after_sync(open(), open());
    }

    #[test]
    fn nats() {
        let (dir, server) = super::nats_server();
        let open = || super::Nats::open(&super::nats_options(&server)).unwrap();
        super::a_commit_is_read_back_at_once_and_by_every_handle_after_sync(open(), open());
        drop(dir);
    }

    #[test]
    fn memory() {
        let m = super::Memory::new();
        super::a_commit_is_read_back_at_once_and_by_every_handle_after_sync(m.clone(), m);
    }
}

every_backend!(
    a_rejected_answer_gives_way_and_an_accepted_one_stays,
    a_record_commits_whole_against_its_version,
    a_stale_version_conflicts_and_writes_nothing,
    registering_keeps_the_record_and_its_version,
    events_reach_the_outbox_once_with_a_cursor_per_sink,
    commits_keep_the_violation_index,
    samples_sum_or_replace_per_thing_and_window,
    prune_drops_old_history_and_answers_only,
    a_thing_only_rejected_is_listed_with_its_last_rejection,
    broker_counters_are_part_of_the_record_and_cursors_persist,
);
