//! SQLite only: a database written before record versions (issue #16) or payload digests
//! (issue #17) opens, keeps its data and takes new commits; a commit not synced does not survive.

use rusqlite::Connection;

use super::Sqlite;
use crate::store::{Commit, Registry, ThingRecords};

#[test]
fn a_database_from_before_digests_keeps_its_answers_without_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fleet.db");
    {
        let old = Connection::open(&path).unwrap();
        old.execute_batch(
            "CREATE TABLE reports (thing TEXT NOT NULL, report_id INTEGER NOT NULL,
               time_ms INTEGER NOT NULL, accepted INTEGER NOT NULL, answer TEXT NOT NULL,
               PRIMARY KEY (thing, report_id)) WITHOUT ROWID;
             INSERT INTO reports VALUES ('gw-1', 41, 41000, 1, '{\"status\":\"ACCEPTED\"}');",
        )
        .unwrap();
    }
    let mut s = Sqlite::open(&path).unwrap();
    let old = s.answer("gw-1", 41).unwrap().unwrap();
    assert_eq!((old.accepted, old.digest), (true, None));
    let mut stored = old.clone();
    (stored.report_id, stored.digest) = (42, Some([7; 32]));
    let commit = Commit {
        thing: "gw-1".into(),
        answers: vec![stored.clone()],
        ..Commit::default()
    };
    s.commit(&[commit]).unwrap();
    s.sync().unwrap();
    drop(s);
    let mut s = Sqlite::open(&path).unwrap();
    assert_eq!(s.answer("gw-1", 42).unwrap(), Some(stored));
}

#[test]
fn a_database_from_before_versions_opens_with_version_zero() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fleet.db");
    {
        let old = Connection::open(&path).unwrap();
        old.execute_batch(
            "CREATE TABLE things (name TEXT PRIMARY KEY, registered INTEGER NOT NULL DEFAULT 0,
               groups TEXT NOT NULL DEFAULT '[]', last_report_id INTEGER, last_report_ms INTEGER);
             INSERT INTO things VALUES ('gw-1', 1, '[\"gw\"]', 41, 41000);",
        )
        .unwrap();
    }
    let mut s = Sqlite::open(&path).unwrap();
    let loaded = s.load("gw-1").unwrap();
    assert_eq!(
        (loaded.version, loaded.record.last_report),
        (0, Some((41, 41000)))
    );
    let mut record = loaded.record;
    record.last_report = Some((42, 42000));
    let commit = Commit {
        thing: "gw-1".into(),
        expected: 0,
        record,
        ..Commit::default()
    };
    s.commit(&[commit]).unwrap();
    s.sync().unwrap();
    drop(s);
    let mut s = Sqlite::open(&path).unwrap();
    assert_eq!(s.load("gw-1").unwrap().version, 1);
    let things = s.things().unwrap();
    assert_eq!(
        (things[0].registered, things[0].last_report_id),
        (true, Some(42))
    );
}

#[test]
fn a_commit_not_synced_is_gone_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fleet.db");
    let mut s = Sqlite::open(&path).unwrap();
    let commit = Commit {
        thing: "gw-1".into(),
        ..Commit::default()
    };
    s.commit(&[commit]).unwrap();
    drop(s); // the process ends before `sync`: its reports were never acknowledged
    let mut s = Sqlite::open(&path).unwrap();
    assert_eq!(s.load("gw-1").unwrap().version, 0);
    assert!(s.things().unwrap().is_empty());
}
