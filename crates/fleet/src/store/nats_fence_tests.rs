//! NATS only, cluster mode: a commit of a thing the fence refuses (this instance does not own
//! it now) fails with `Conflict` and writes nothing; the same commit passes once it owns it;
//! a write another handle got in first fails the `sync`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::conformance::{nats_options, nats_server, step};
use super::*;

#[test]
fn a_fenced_commit_writes_nothing() {
    let (_dir, server) = nats_server();
    let mut s = Nats::open(&nats_options(&server)).unwrap();
    let owned = Arc::new(AtomicBool::new(false));
    let fence = owned.clone();
    s.set_fence(Arc::new(move |thing: &str| {
        thing == "t1" && fence.load(Ordering::SeqCst)
    }));
    let c = step("t1", 0, 1, &["p"]);
    match s.commit(std::slice::from_ref(&c)) {
        Err(StoreError::Conflict { thing, expected }) => {
            assert_eq!((thing.as_str(), expected), ("t1", 0))
        }
        other => panic!("not owned: a conflict expected, got {other:?}"),
    }
    let mut reader = Nats::open(&nats_options(&server)).unwrap();
    assert_eq!(reader.load("t1").unwrap().version, 0, "nothing written");
    assert_eq!(reader.answer("t1", 1).unwrap(), None);
    owned.store(true, Ordering::SeqCst);
    s.commit(std::slice::from_ref(&c)).unwrap();
    s.sync().unwrap();
    assert_eq!(reader.load("t1").unwrap().version, 1);
    // Another thing in the same commit is refused as a whole.
    let both = [step("t1", 1, 2, &["p"]), step("t2", 0, 1, &["p"])];
    assert!(matches!(s.commit(&both), Err(StoreError::Conflict { .. })));
    assert_eq!(reader.load("t1").unwrap().version, 1, "t1 unchanged too");
}

/// Cluster mode trusts its cache of owned things, so a write by another handle (a former
/// owner's, or nats-server 2.9 accepting two) is found by the compare-and-set at `sync`:
/// a `Conflict` naming the thing, nothing written, and the next load reads the cluster.
#[test]
fn a_conflict_found_at_sync_writes_nothing_and_is_forgotten() {
    let (_dir, server) = nats_server();
    let open = || {
        let mut s = Nats::open(&nats_options(&server)).unwrap();
        s.set_fence(Arc::new(|_: &str| true));
        s
    };
    let (mut a, mut b) = (open(), open());
    a.commit(&[step("t1", 0, 1, &["p"])]).unwrap();
    a.sync().unwrap();
    assert_eq!(b.load("t1").unwrap().version, 1);
    b.commit(&[step("t1", 1, 2, &["p"])]).unwrap();
    b.sync().unwrap();
    // `a` still holds version 1 as the truth: the commit goes out, the server refuses it.
    assert_eq!(a.load("t1").unwrap().version, 1);
    a.commit(&[step("t1", 1, 3, &["p"]), step("t2", 0, 1, &["p"])])
        .unwrap();
    match a.sync() {
        Err(StoreError::Conflict { thing, expected }) => {
            assert_eq!((thing.as_str(), expected), ("t1", 1))
        }
        other => panic!("a conflict expected at sync, got {other:?}"),
    }
    let mut reader = Nats::open(&nats_options(&server)).unwrap();
    let l = reader.load("t1").unwrap();
    assert_eq!((l.version, l.record.last_report), (2, Some((2, 2000))));
    assert_eq!(
        reader.answer("t1", 3).unwrap(),
        None,
        "t1's answer not written"
    );
    // t2 was another thing's complete commit: written.
    assert_eq!(reader.load("t2").unwrap().version, 1);
    // `a` forgot t1: it loads version 2 and commits on it.
    assert_eq!(a.load("t1").unwrap().version, 2);
    a.commit(&[step("t1", 2, 3, &["p"])]).unwrap();
    a.sync().unwrap();
    assert_eq!(reader.load("t1").unwrap().version, 3);
}
