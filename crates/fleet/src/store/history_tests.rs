//! The metric history's conformance check (issue #21), for every backend that keeps it: points
//! ride in commits, are read back by thing, side and time range in order, and pruned.

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

mod sqlite {
    #[test]
    fn the_metric_history_keeps_points_by_thing_side_and_time() {
        let dir = tempfile::tempdir().unwrap();
        let s = super::Sqlite::open(&dir.path().join("fleet.db")).unwrap();
        super::the_metric_history_keeps_points_by_thing_side_and_time(s);
    }
}

mod memory {
    #[test]
    fn the_metric_history_keeps_points_by_thing_side_and_time() {
        super::the_metric_history_keeps_points_by_thing_side_and_time(super::Memory::new());
    }
}
