//! The callback sequences mosquitto 2.0.11 was seen to make (broker-witness §3.2), replayed on
//! the tracker: accepted and refused connects, denials, deliveries, wills, resumed sessions.

use super::*;

fn ip() -> String {
    "127.0.0.2".into()
}

fn events(t: &mut Tracker) -> Vec<Event> {
    t.drain(0, 1000).0
}

#[test]
fn basic_auth_then_tick_is_an_accepted_connect_at_the_auth_time() {
    let mut t = Tracker::default();
    t.basic_auth(1, Some("gw-a"), ip(), 10);
    assert!(events(&mut t).is_empty(), "no verdict before the tick");
    t.tick();
    assert_eq!(
        events(&mut t),
        vec![Event::Connect {
            at_ms: 10,
            client_id: "gw-a".into(),
            ip: "127.0.0.2".into(),
            ok: true
        }]
    );
    t.disconnect(1, Some("gw-a"), ip, 2010);
    assert_eq!(
        events(&mut t),
        vec![Event::Disconnect {
            at_ms: 2010,
            client_id: "gw-a".into(),
            ip: "127.0.0.2".into(),
            connected_ms: Some(2000)
        }]
    );
    assert_eq!(t.clients(), 0);
}

#[test]
fn basic_auth_then_disconnect_without_id_is_a_refused_connect_and_a_denial() {
    let mut t = Tracker::default();
    t.basic_auth(1, Some("gw-bad"), ip(), 10);
    t.disconnect(1, None, ip, 11);
    t.tick();
    assert_eq!(
        events(&mut t),
        vec![
            Event::Connect {
                at_ms: 10,
                client_id: "gw-bad".into(),
                ip: "127.0.0.2".into(),
                ok: false
            },
            Event::Denied {
                at_ms: 10,
                client_id: "gw-bad".into(),
                access: Access::Connect,
                topic: None
            },
        ]
    );
}

#[test]
fn a_socket_closed_before_connect_gives_its_address_only() {
    let mut t = Tracker::default();
    t.disconnect(7, None, ip, 5);
    assert_eq!(
        events(&mut t),
        vec![Event::ClosedBeforeConnect {
            at_ms: 5,
            ip: "127.0.0.2".into()
        }]
    );
}

#[test]
fn a_write_check_without_its_message_is_a_denied_publish() {
    let mut t = Tracker::default();
    t.basic_auth(1, Some("a"), ip(), 0);
    t.tick();
    let _ = events(&mut t);
    assert_eq!(
        t.acl(1, "a", ip, true, false, "ok/1", 3, 20),
        Answer::Verdict
    );
    t.message(1, "a", ip, "ok/1", 3, 20);
    t.acl(1, "a", ip, true, false, "other/x", 4, 30);
    t.tick();
    let ev = events(&mut t);
    assert_eq!(
        ev[0],
        Event::Denied {
            at_ms: 30,
            client_id: "a".into(),
            access: Access::Publish,
            topic: Some("other/x".into())
        }
    );
    assert!(
        matches!(&ev[1], Event::Traffic { topic, msgs: 1, bytes: 3, dir: Direction::Sent, .. } if topic == "ok/1"),
        "{ev:?}"
    );
    assert_eq!(ev.len(), 2);
}

#[test]
fn writes_under_detect_are_refused_and_counted_as_denials() {
    let mut t = Tracker::default();
    assert_eq!(
        t.acl(1, "a", ip, true, false, "$detect/broker/events", 3, 5),
        Answer::Deny
    );
    assert_eq!(
        t.acl(1, "a", ip, false, true, "$detect/broker/events", 3, 5),
        Answer::Verdict
    );
    assert_eq!(
        events(&mut t),
        vec![Event::Denied {
            at_ms: 5,
            client_id: "a".into(),
            access: Access::Publish,
            topic: Some("$detect/broker/events".into())
        }]
    );
}

#[test]
fn reads_count_as_received_except_the_plugins_own_and_a_resumed_sessions_rechecks() {
    let mut t = Tracker::default();
    t.basic_auth(1, Some("sub"), ip(), 0);
    t.acl(1, "sub", ip, false, true, "queued/1", 9, 0); // connection_check_acl on resume
    t.tick();
    t.acl(1, "sub", ip, false, true, "t/1", 4, 10);
    t.acl(1, "sub", ip, false, true, "t/1", 6, 11);
    t.acl(1, "sub", ip, false, true, "$detect/broker/events", 600, 12);
    t.acl(99, "offline", ip, false, true, "t/1", 4, 13);
    let ev = events(&mut t);
    let traffic: Vec<_> = ev
        .iter()
        .filter(|e| matches!(e, Event::Traffic { .. }))
        .collect();
    assert_eq!(traffic.len(), 2, "{ev:?}");
    assert!(ev.iter().any(|e| matches!(e, Event::Traffic { client_id, msgs: 2, bytes: 10, min_bytes: 4, max_bytes: 6, dir: Direction::Received, .. } if client_id == "sub")), "{ev:?}");
    assert!(
        ev.iter().any(
            |e| matches!(e, Event::Traffic { client_id, msgs: 1, .. } if client_id == "offline")
        ),
        "{ev:?}"
    );
}

#[test]
fn a_takeover_does_not_make_the_resumed_queues_rechecks_count() {
    let mut t = Tracker::default();
    t.basic_auth(1, Some("a"), ip(), 0);
    t.tick();
    t.basic_auth(2, Some("a"), ip(), 10); // the same id again
    t.disconnect(1, Some("a"), ip, 10); // the old connection closed
    t.acl(2, "a", ip, false, true, "queued/1", 5, 10); // its in-flight message re-checked
    t.tick();
    let ev = events(&mut t);
    assert!(
        !ev.iter().any(|e| matches!(e, Event::Traffic { .. })),
        "{ev:?}"
    );
}

#[test]
fn the_wills_write_check_after_a_disconnect_is_neither_a_connect_nor_a_denial() {
    let mut t = Tracker::default();
    t.basic_auth(1, Some("a"), ip(), 0);
    t.tick();
    t.disconnect(1, Some("a"), ip, 100);
    t.acl(1, "a", ip, true, false, "will/a", 1, 100);
    t.tick();
    let ev = events(&mut t);
    assert_eq!(ev.len(), 2, "{ev:?}");
    assert!(matches!(ev[1], Event::Disconnect { .. }));
}

#[test]
fn a_certificate_client_without_basic_auth_is_connected_at_its_first_act() {
    let mut t = Tracker::default();
    t.acl(1, "dut-1", ip, false, false, "dut/#", 0, 50); // SUBSCRIBE
    t.disconnect(1, Some("dut-1"), ip, 80);
    let ev = events(&mut t);
    assert_eq!(
        ev[0],
        Event::Connect {
            at_ms: 50,
            client_id: "dut-1".into(),
            ip: "127.0.0.2".into(),
            ok: true
        }
    );
    assert!(
        matches!(
            ev[1],
            Event::Disconnect {
                connected_ms: Some(30),
                ..
            }
        ),
        "{ev:?}"
    );
}

#[test]
fn clients_beyond_the_cap_are_dropped_and_counted_and_memory_stays_bounded() {
    let mut t = Tracker::default();
    for p in 1..=MAX_CLIENTS + 10 {
        t.basic_auth(p, Some("c"), ip(), 0);
        if p % MAX_EVENTS == 0 {
            t.tick();
            let _ = t.drain(0, 1);
        }
    }
    assert_eq!(t.clients(), MAX_CLIENTS);
    t.tick();
    let (_, dropped) = t.drain(0, 1);
    assert_eq!(dropped, 10);
    for p in 1..=MAX_CLIENTS {
        t.disconnect(p, Some("c"), ip, 1);
        if p % MAX_EVENTS == 0 {
            let _ = t.drain(0, 1);
        }
    }
    let _ = t.drain(0, 1);
    assert_eq!(t.clients(), 0);
    assert!(
        t.clients.capacity() <= 1024 + 64,
        "the table shrinks back: {}",
        t.clients.capacity()
    );
}

#[test]
fn many_events_make_the_tracker_ask_for_an_early_flush() {
    let mut t = Tracker::default();
    let mut n = 0;
    while !t.is_full() {
        t.disconnect(n + 1, None, ip, 0);
        n += 1;
        assert!(n <= MAX_EVENTS, "never full");
    }
    assert!(n > 100, "full after {n} events");
    assert_eq!(t.drain(0, 1).0.len(), n);
    assert!(!t.is_full());
}
