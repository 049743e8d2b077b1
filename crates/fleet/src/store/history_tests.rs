//! The conformance checks of the metric history and the event log (issue #21): points ride
//! in commits, are read back by thing, side and time range in order, and pruned; events are
//! listed by time with their violation's verification.

use std::collections::BTreeSet;

use super::conformance::event;
use super::*;

fn point(side: Side, time_ms: u64) -> HistoryPoint {
    HistoryPoint {
        side,
        time_ms,
        data: format!("{side:?}@{time_ms}").into_bytes(),
    }
}

pub fn the_metric_history_keeps_points_by_thing_side_and_time<S: Store>(mut s: S) {
    for t in 1..=5u64 {
        let c = Commit {
            thing: "t1".into(),
            expected: t - 1,
            history: vec![
                point(Side::Device, t * 1000),
                point(Side::Cloud, t * 1000 + 1),
            ],
            ..Commit::default()
        };
        s.commit(&[c]).unwrap();
    }
    let other = Commit {
        thing: "t2".into(),
        history: vec![point(Side::Device, 2000)],
        ..Commit::default()
    };
    s.commit(&[other]).unwrap();
    s.sync().unwrap();
    let times = |s: &mut S, thing: &str, side, from, to, limit| -> Vec<u64> {
        let got: Vec<HistoryPoint> = s.history(thing, side, from, to, limit).unwrap();
        for p in &got {
            assert_eq!(p, &point(side, p.time_ms));
        }
        got.iter().map(|p| p.time_ms).collect()
    };
    assert_eq!(
        times(&mut s, "t1", Side::Device, 0, u64::MAX, 100),
        [1000, 2000, 3000, 4000, 5000]
    );
    assert_eq!(
        times(&mut s, "t1", Side::Device, 2000, 4000, 100),
        [2000, 3000]
    );
    assert_eq!(
        times(&mut s, "t1", Side::Device, 2000, 5001, 2),
        [2000, 3000]
    );
    assert_eq!(times(&mut s, "t1", Side::Cloud, 0, 3000, 100), [1001, 2001]);
    assert_eq!(times(&mut s, "t2", Side::Device, 0, u64::MAX, 100), [2000]);
    assert!(times(&mut s, "t3", Side::Device, 0, u64::MAX, 100).is_empty());
    // A rejected commit keeps none of its points.
    let stale = Commit {
        thing: "t1".into(),
        expected: 0,
        history: vec![point(Side::Device, 9000)],
        ..Commit::default()
    };
    assert!(matches!(
        s.commit(&[stale]),
        Err(StoreError::Conflict { .. })
    ));
    assert_eq!(
        times(&mut s, "t1", Side::Device, 9000, 9001, 1),
        Vec::<u64>::new()
    );
    let pruned = s.prune_history(3000).unwrap();
    s.sync().unwrap();
    assert!(pruned == 5 || pruned == 0, "{pruned}"); // 0: a backend that expires by age
    if pruned == 5 {
        assert_eq!(
            times(&mut s, "t1", Side::Device, 0, u64::MAX, 100),
            [3000, 4000, 5000]
        );
        assert_eq!(
            times(&mut s, "t1", Side::Cloud, 0, u64::MAX, 100),
            [3001, 4001, 5001]
        );
        assert!(times(&mut s, "t2", Side::Device, 0, u64::MAX, 100).is_empty());
    }
}

pub fn the_event_log_lists_events_by_time_with_verification<S: Store>(mut s: S) {
    let events = vec![
        event("a", "in-alarm", 5000, false),
        event("b", "in-alarm", 1000, true),
        event("a", "alarm-cleared", 7000, false),
        event("c", "in-alarm", 3000, false),
    ];
    s.commit(&[Commit {
        thing: "t1".into(),
        events,
        ..Commit::default()
    }])
    .unwrap();
    s.sync().unwrap();
    assert!(s.verify("a", "FALSE_POSITIVE", Some("lab")).unwrap());
    let mut q = EventQuery {
        start_ms: 1000,
        end_ms: 7000,
        limit: 2,
        ..EventQuery::default()
    };
    let page = s.events(&q).unwrap();
    let ids: Vec<&str> = page.iter().map(|l| l.event.violation_id.as_str()).collect();
    assert_eq!(ids, ["b", "c"]);
    assert!(page[0].suppressed && !page[1].suppressed);
    let last = &page[1];
    q.after = Some((last.event.violation_event_time, last.position));
    let page = s.events(&q).unwrap();
    assert_eq!(page.len(), 1, "7000 is past the end");
    assert_eq!(page[0].event.violation_id, "a");
    assert_eq!(page[0].verification_state, "FALSE_POSITIVE");
    assert_eq!(
        page[0].verification_state_description.as_deref(),
        Some("lab")
    );
    let none = EventQuery {
        thing: Some("t2".into()),
        end_ms: u64::MAX,
        limit: 10,
        ..EventQuery::default()
    };
    assert!(s.events(&none).unwrap().is_empty());
    let t1 = EventQuery {
        thing: Some("t1".into()),
        end_ms: u64::MAX,
        limit: 3,
        ..EventQuery::default()
    };
    let times: Vec<u64> = (s.events(&t1).unwrap().iter())
        .map(|l| l.event.violation_event_time)
        .collect();
    assert_eq!(
        times,
        [1000, 3000, 5000],
        "one thing's events by time, a page of 3"
    );
    let profile = EventQuery {
        profile: Some("p".into()),
        end_ms: u64::MAX,
        limit: 10,
        ..EventQuery::default()
    };
    assert_eq!(s.events(&profile).unwrap().len(), 4);
}

pub fn violations_page_newest_first<S: Store>(mut s: S) {
    let mut events = vec![
        event("a", "in-alarm", 1000, false),
        event("b", "in-alarm", 3000, false),
        event("c", "in-alarm", 3000, false),
        event("d", "in-alarm", 2000, false),
        event("b", "alarm-cleared", 4000, false),
    ];
    events[3].event.thing_name = "t2".into();
    s.commit(&[Commit {
        thing: "t1".into(),
        events,
        ..Commit::default()
    }])
    .unwrap();
    s.sync().unwrap();
    let ids = |s: &mut S, f: &Filter, after: Option<(u64, &str)>, limit| -> Vec<String> {
        let page = s.violations_newest(f, after, limit).unwrap();
        page.into_iter().map(|v| v.violation_id).collect()
    };
    let all = Filter::default();
    assert_eq!(ids(&mut s, &all, None, 10), ["c", "b", "d", "a"]);
    assert_eq!(ids(&mut s, &all, None, 2), ["c", "b"]);
    assert_eq!(ids(&mut s, &all, Some((3000, "b")), 2), ["d", "a"]);
    let active = Filter {
        active_only: true,
        ..Filter::default()
    };
    assert_eq!(ids(&mut s, &active, None, 10), ["c", "d", "a"]);
    assert_eq!(ids(&mut s, &active, Some((3000, "c")), 1), ["d"]);
    let t2 = Filter {
        active_only: true,
        thing: Some("t2".into()),
        ..Filter::default()
    };
    assert_eq!(ids(&mut s, &t2, None, 10), ["d"]);
}

pub fn things_page_by_name<S: Store>(mut s: S) {
    s.register("a", &BTreeSet::new()).unwrap();
    s.register("c", &["g".to_string()].into()).unwrap();
    s.note_rejection("b", &LastRejection::new(5, "InvalidPayload", "x"))
        .unwrap();
    s.commit(&[Commit {
        thing: "d".into(),
        record: Record {
            last_report: Some((7, 7000)),
            ..Record::default()
        },
        ..Commit::default()
    }])
    .unwrap();
    s.sync().unwrap();
    let names = |s: &mut S, after: Option<&str>, limit| -> Vec<String> {
        let page = s.things_after(after, limit).unwrap();
        page.into_iter().map(|t| t.name).collect()
    };
    assert_eq!(names(&mut s, None, 2), ["a", "b"]);
    assert_eq!(names(&mut s, Some("b"), 2), ["c", "d"]);
    assert!(names(&mut s, Some("d"), 2).is_empty());
    let b = s.thing("b").unwrap().unwrap();
    assert_eq!(b.last_rejection.unwrap().code, "InvalidPayload");
    assert_eq!(s.thing("c").unwrap().unwrap().groups.len(), 1);
    assert_eq!(s.thing("d").unwrap().unwrap().last_report_ms, Some(7000));
    assert_eq!(s.thing("bb").unwrap(), None);
}

mod sqlite {
    fn open() -> (tempfile::TempDir, super::Sqlite) {
        let dir = tempfile::tempdir().unwrap();
        let s = super::Sqlite::open(&dir.path().join("fleet.db")).unwrap();
        (dir, s)
    }

    #[test]
    fn the_metric_history_keeps_points_by_thing_side_and_time() {
        let (_dir, s) = open();
        super::the_metric_history_keeps_points_by_thing_side_and_time(s);
    }

    #[test]
    fn the_event_log_lists_events_by_time_with_verification() {
        let (_dir, s) = open();
        super::the_event_log_lists_events_by_time_with_verification(s);
    }

    #[test]
    fn violations_page_newest_first() {
        let (_dir, s) = open();
        super::violations_page_newest_first(s);
    }

    #[test]
    fn things_page_by_name() {
        let (_dir, s) = open();
        super::things_page_by_name(s);
    }
}

mod memory {
    #[test]
    fn the_metric_history_keeps_points_by_thing_side_and_time() {
        super::the_metric_history_keeps_points_by_thing_side_and_time(super::Memory::new());
    }

    #[test]
    fn the_event_log_lists_events_by_time_with_verification() {
        super::the_event_log_lists_events_by_time_with_verification(super::Memory::new());
    }

    #[test]
    fn violations_page_newest_first() {
        super::violations_page_newest_first(super::Memory::new());
    }

    #[test]
    fn things_page_by_name() {
        super::things_page_by_name(super::Memory::new());
    }
}

mod nats {
    #[test]
    fn the_metric_history_keeps_points_by_thing_side_and_time() {
        let (_dir, server) = super::nats_server();
        let s = super::Nats::open(&super::nats_options(&server)).unwrap();
        super::the_metric_history_keeps_points_by_thing_side_and_time(s);
    }

    #[test]
    fn the_event_log_lists_events_by_time_with_verification() {
        let (_dir, server) = super::nats_server();
        let s = super::Nats::open(&super::nats_options(&server)).unwrap();
        super::the_event_log_lists_events_by_time_with_verification(s);
    }

    #[test]
    fn violations_page_newest_first() {
        let (_dir, server) = super::nats_server();
        let s = super::Nats::open(&super::nats_options(&server)).unwrap();
        super::violations_page_newest_first(s);
    }
}
