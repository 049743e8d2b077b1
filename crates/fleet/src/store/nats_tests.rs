//! NATS only: a commit whose relay was cut short (a crash after the record's compare-and-set)
//! is relayed by the next handle that reads the thing, once; a zombie's stale commit writes
//! nothing; a relay mark by another handle is not a conflict; TLS with the configured CA; the
//! registry as read again only when it changed sees another handle's registrations.

use super::conformance::{answer, event, nats_options, nats_server, step};
use super::nats_kv::{Stored, enc, to_bytes};
use super::nats_records::next;
use super::*;

/// Writes `c`'s record as a commit would, and stops there (the relay never runs).
fn commit_without_relay(s: &Nats, c: &Commit) {
    let (js, key, value) = (
        s.js.clone(),
        enc(&c.thing),
        to_bytes(&next(&Stored::default(), c)),
    );
    s.bridge
        .run("test", async move {
            js.records
                .create(&key, value)
                .await
                .map_err(|e| nats::backend("test", e))
        })
        .unwrap();
}

#[test]
fn a_commit_cut_short_is_relayed_once_by_the_next_read() {
    let (_dir, server) = nats_server();
    let mut crashed = Nats::open(&nats_options(&server)).unwrap();
    let mut c = step("t1", 0, 1, &["p"]);
    c.events = vec![event("v1", "in-alarm", 1000, false)];
    c.touched = vec![("v1".into(), 1000)];
    c.samples = vec![Sample {
        profile: "p".into(),
        behavior: "b".into(),
        window_start_ms: 0,
        thing: "t1".into(),
        value: 4.0,
        sum: true,
    }];
    commit_without_relay(&crashed, &c);
    let mut other = Nats::open(&nats_options(&server)).unwrap();
    // Nothing is out until the thing is read again: its answer (a redelivery) relays it.
    assert!(other.pending(Sink::Mqtt, 10).unwrap().is_empty());
    assert!(other.violations(&Filter::default()).unwrap().is_empty());
    assert_eq!(
        other.answer("t1", 1).unwrap(),
        Some(answer("t1", 1, 1000, true))
    );
    assert_eq!(other.load("t1").unwrap().version, 1);
    assert_eq!(other.pending(Sink::Mqtt, 10).unwrap().len(), 1);
    assert_eq!(other.violations(&Filter::default()).unwrap().len(), 1);
    assert_eq!(other.window("p", "b", 0).unwrap(), [4.0]);
    // Loaded again and committed on: the relay is not repeated, the sum goes on.
    crashed.load("t1").unwrap();
    let mut c2 = step("t1", 1, 2, &["p"]);
    c2.samples = c.samples.clone();
    other.commit(&[c2]).unwrap();
    assert_eq!(other.pending(Sink::Mqtt, 10).unwrap().len(), 1);
    assert_eq!(other.window("p", "b", 0).unwrap(), [8.0]);
    // `crashed` still holds version 1: its commit conflicts and appends nothing.
    let mut stale = step("t1", 1, 3, &["p"]);
    stale.events = vec![event("v9", "in-alarm", 3000, false)];
    // Refused by the compare-and-set, which `sync` awaits.
    let e = crashed
        .commit(&[stale])
        .and_then(|()| crashed.sync())
        .unwrap_err();
    assert!(matches!(e, StoreError::Conflict { .. }), "{e}");
    assert_eq!(crashed.pending(Sink::Mqtt, 10).unwrap().len(), 1);
    assert_eq!(crashed.answer("t1", 3).unwrap(), None);
}

#[test]
fn a_relay_mark_by_another_handle_is_not_a_conflict() {
    let (_dir, server) = nats_server();
    let mut a = Nats::open(&nats_options(&server)).unwrap();
    let mut b = Nats::open(&nats_options(&server)).unwrap();
    commit_without_relay(&a, &step("t1", 0, 1, &["p"]));
    // `a` holds the record unmarked; `b`'s load relays it and marks it (a new revision).
    assert!(a.cache.is_empty());
    let js = a.js.clone();
    let (rev, stored) = a
        .bridge
        .run("test", async move { nats_records::fetch(&js, "t1").await })
        .unwrap()
        .unwrap();
    a.cache.insert("t1".into(), (rev, stored));
    assert_eq!(b.load("t1").unwrap().version, 1);
    a.commit(&[step("t1", 1, 2, &["p"])]).unwrap();
    a.sync().unwrap();
    assert_eq!(b.load("t1").unwrap().version, 2);
}

/// `[store] ca_file`: TLS to the servers, checked against that CA; a CA that did not sign
/// the server's certificate is refused, with an error naming the servers.
#[test]
fn the_store_reaches_tls_servers_with_the_configured_ca_only() {
    let dir = tempfile::tempdir().unwrap();
    let pki = detect_testkit::certs::Pki::generate();
    let cert = Some((pki.server.cert.as_path(), pki.server.key.as_path()));
    let users = [("fleet", "fleet password")];
    let server = detect_testkit::nats::Nats::start_with(dir.path(), &users, cert);
    let mut opts = nats_options(&server);
    assert!(opts.servers[0].starts_with("tls://"));
    opts.ca_file = Some(pki.ca.clone());
    let mut s = Nats::open(&opts).unwrap();
    s.commit(&[step("t1", 0, 1, &["p"])]).unwrap();
    assert_eq!(s.load("t1").unwrap().version, 1);
    opts.ca_file = Some(pki.other_ca.clone());
    opts.timeout = std::time::Duration::from_secs(2);
    let e = Nats::open(&opts).err().expect("a foreign CA is refused");
    assert!(e.to_string().contains(&server.url()), "{e}");
}

#[test]
fn registered_follows_another_handles_registrations() {
    let (_dir, server) = nats_server();
    let mut reader = Nats::open(&nats_options(&server)).unwrap();
    let mut writer = Nats::open(&nats_options(&server)).unwrap();
    assert!(reader.registered().unwrap().is_empty());
    let groups =
        |names: &[&str]| -> BTreeSet<String> { names.iter().map(|g| g.to_string()).collect() };
    writer.register("gw.1", &groups(&["a"])).unwrap();
    let want: BTreeMap<String, BTreeSet<String>> = [("gw.1".to_string(), groups(&["a"]))].into();
    assert_eq!(reader.registered().unwrap(), want);
    // Unchanged: the kept copy (no scan), still the same.
    assert_eq!(reader.registered().unwrap(), want);
    writer.register("gw.1", &groups(&["b", "c"])).unwrap();
    writer.register("gw-2", &groups(&[])).unwrap();
    let want: BTreeMap<String, BTreeSet<String>> = [
        ("gw.1".to_string(), groups(&["b", "c"])),
        ("gw-2".to_string(), groups(&[])),
    ]
    .into();
    assert_eq!(reader.registered().unwrap(), want);
    assert_eq!(super::registry(&reader.things().unwrap()), want);
}
