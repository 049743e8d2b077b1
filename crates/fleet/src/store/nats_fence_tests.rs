//! NATS only, cluster mode: a commit of a thing the fence refuses (this instance does not own
//! it now) fails with `Conflict` and writes nothing; the same commit passes once it owns it.

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
    assert_eq!(reader.load("t1").unwrap().version, 1);
    // Another thing in the same commit is refused as a whole.
    let both = [step("t1", 1, 2, &["p"]), step("t2", 0, 1, &["p"])];
    assert!(matches!(s.commit(&both), Err(StoreError::Conflict { .. })));
    assert_eq!(reader.load("t1").unwrap().version, 1, "t1 unchanged too");
}
