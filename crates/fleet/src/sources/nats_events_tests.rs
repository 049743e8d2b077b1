use super::*;

const CONNECT: &str = r#"{"type":"io.nats.server.advisory.v1.client_connect","id":"x",
  "timestamp":"2026-12-06T15:00:00.5Z","server":{"name":"n1","id":"NSRV","seq":3},
  "client":{"start":"2026-12-06T15:00:00.25Z","host":"127.0.0.2","id":7,"acc":"DEV",
  "user":"gw-a","client_id":"gw-a","client_type":"mqtt"}}"#;

fn disconnect(reason: &str, sent: u64) -> String {
    format!(
        r#"{{"server":{{"id":"NSRV"}},"client":{{"start":"2026-12-06T15:00:00.25Z",
        "stop":"2026-12-06T16:00:00.75+01:00","host":"127.0.0.2","id":7,"client_id":"gw-a"}},
        "sent":{{"msgs":{sent},"bytes":{}}},"received":{{"msgs":0,"bytes":0}},"reason":"{reason}"}}"#,
        sent * 40
    )
}

fn conn(cid: u64, id: &str, in_msgs: u64) -> ConnInfo {
    ConnInfo {
        cid,
        mqtt_client: id.into(),
        in_msgs,
        in_bytes: in_msgs * 40,
        out_msgs: 0,
        out_bytes: 0,
    }
}

#[test]
fn subjects_name_their_advisory() {
    assert_eq!(kind("$SYS.ACCOUNT.DEV.CONNECT"), Some(Kind::Connect));
    assert_eq!(kind("$SYS.ACCOUNT.DEV.DISCONNECT"), Some(Kind::Disconnect));
    assert_eq!(
        kind("$SYS.SERVER.NSRV.CLIENT.AUTH.ERR"),
        Some(Kind::AuthError)
    );
    assert_eq!(kind("$SYS.SERVER.NSRV.STATSZ"), None);
}

#[test]
fn a_connect_then_disconnect_gives_the_address_the_connected_time_and_the_messages_sent() {
    let mut t = Tracker::default();
    let e = t.advisory(Kind::Connect, CONNECT.as_bytes(), 1000).unwrap();
    assert_eq!(
        e,
        vec![Event::Connect {
            at_ms: 1000,
            client_id: "gw-a".into(),
            ip: "127.0.0.2".into(),
            ok: true
        }]
    );
    let e = t
        .advisory(
            Kind::Disconnect,
            disconnect("Client Closed", 3).as_bytes(),
            2000,
        )
        .unwrap();
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(
        matches!(
            &e[0],
            Event::Traffic {
                msgs: 3,
                bytes: 120,
                dir: Direction::Sent,
                min_bytes: 40,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(
        matches!(
            &e[1],
            Event::Disconnect {
                connected_ms: Some(500),
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(t.len(), 0);
}

#[test]
fn an_auth_error_is_a_refused_connect_and_a_connect_denial_and_its_disconnect_is_not_counted() {
    let mut t = Tracker::default();
    let e = t
        .advisory(
            Kind::AuthError,
            disconnect("Authentication Failure", 0).as_bytes(),
            5,
        )
        .unwrap();
    assert!(matches!(&e[0], Event::Connect { ok: false, .. }), "{e:?}");
    assert!(
        matches!(
            &e[1],
            Event::Denied {
                access: Access::Connect,
                topic: None,
                ..
            }
        ),
        "{e:?}"
    );
    let e = t
        .advisory(
            Kind::Disconnect,
            disconnect("Authentication Failure", 0).as_bytes(),
            5,
        )
        .unwrap();
    assert!(e.is_empty(), "{e:?}");
}

#[test]
fn connz_counts_growth_only_and_a_connection_first_seen_there_is_a_baseline() {
    let mut t = Tracker::default();
    t.advisory(Kind::Connect, CONNECT.as_bytes(), 1).unwrap();
    let e = t.connz("NSRV", &[conn(7, "gw-a", 5), conn(9, "gw-b", 50)], true, 10);
    assert_eq!(e.len(), 1, "gw-b's 50 are from before we watched: {e:?}");
    assert!(matches!(&e[0], Event::Traffic { msgs: 5, .. }), "{e:?}");
    let e = t.connz("NSRV", &[conn(7, "gw-a", 5), conn(9, "gw-b", 52)], true, 20);
    assert!(matches!(&e[..], [Event::Traffic { msgs: 2, .. }]), "{e:?}");
    let e = t.connz("NSRV", &[conn(9, "gw-b", 52)], true, 30);
    assert!(e.is_empty());
    assert_eq!(t.len(), 2, "gw-a's DISCONNECT may still come");
    let e = t
        .advisory(
            Kind::Disconnect,
            disconnect("Client Closed", 6).as_bytes(),
            35,
        )
        .unwrap();
    assert!(
        matches!(&e[0], Event::Traffic { msgs: 1, .. }),
        "its last message: {e:?}"
    );
    t.advisory(Kind::Connect, CONNECT.as_bytes(), 40).unwrap();
    t.connz("NSRV", &[conn(9, "gw-b", 52)], true, 50);
    t.connz("NSRV", &[conn(9, "gw-b", 52)], true, 60);
    assert_eq!(t.len(), 1, "absent from two complete polls: forgotten");
}

#[test]
fn malformed_advisories_say_why_and_nats_clients_are_ignored() {
    let mut t = Tracker::default();
    assert!(t.advisory(Kind::Connect, b"{", 1).is_err());
    assert!(t.advisory(Kind::Connect, b"[1]", 1).is_err());
    let nats = r#"{"server":{"id":"S"},"client":{"id":1,"host":"127.0.0.1","name":"x"}}"#;
    assert!(
        t.advisory(Kind::Connect, nats.as_bytes(), 1)
            .unwrap()
            .is_empty()
    );
}
