//! What Debian's mosquitto with the plugin tells a subscriber of `$detect/broker/events`: each
//! event kind from real clients, exact traffic sums, numbering, its topic closed to clients.

use std::io::Write;
use std::process::{Command, Stdio};

use detect_testkit::broker::USERS;
use protocol::broker::{Access, Direction, Event};

use crate::witness::Witness;

const DEV: (&str, &str) = USERS[0];
const BACKEND: (&str, &str) = USERS[1];

fn connects<'a>(ev: &'a [Event], id: &str) -> Vec<&'a Event> {
    ev.iter()
        .filter(|e| matches!(e, Event::Connect { client_id, .. } if client_id == id))
        .collect()
}

#[tokio::test]
async fn a_client_bound_to_127_0_0_2_connects_from_there_and_disconnects_with_its_connected_time() {
    let w = Witness::start("").await;
    let out = w.client(
        "mosquitto_sub",
        DEV,
        &["-A", "127.0.0.2", "-i", "gw-a", "-t", "dev/a/#", "-W", "1"],
    );
    assert!(out.status.code().is_some(), "{out:?}");
    let ev = w
        .wait_for("gw-a's disconnect", |ev| {
            ev.iter()
                .any(|e| matches!(e, Event::Disconnect { client_id, .. } if client_id == "gw-a"))
        })
        .await;
    let connect = connects(&ev, "gw-a");
    assert!(
        matches!(connect[..], [Event::Connect { ip, ok: true, .. }] if ip == "127.0.0.2"),
        "{connect:?}"
    );
    let Some(Event::Disconnect {
        ip,
        connected_ms: Some(ms),
        ..
    }) = ev
        .iter()
        .find(|e| matches!(e, Event::Disconnect { client_id, .. } if client_id == "gw-a"))
    else {
        panic!("no disconnect with a connected time: {ev:?}");
    };
    assert_eq!(ip, "127.0.0.2");
    // mosquitto_sub -W 1 stays connected one second.
    assert!((900..10_000).contains(ms), "connected_ms {ms}");
}

#[tokio::test]
async fn a_wrong_password_is_a_refused_connect_and_a_connect_denial_and_the_password_is_nowhere() {
    let w = Witness::start("").await;
    let out = w.client(
        "mosquitto_pub",
        (DEV.0, "not-the-password-x9"),
        &["-i", "gw-bad", "-t", "dev/a", "-m", "x"],
    );
    assert!(!out.status.success(), "{out:?}");
    let ev = w
        .wait_for("the refusal", |ev| {
            ev.iter().any(|e| {
                matches!(
                    e,
                    Event::Denied {
                        access: Access::Connect,
                        ..
                    }
                )
            })
        })
        .await;
    assert!(
        matches!(
            connects(&ev, "gw-bad")[..],
            [Event::Connect { ok: false, .. }]
        ),
        "{ev:?}"
    );
    assert!(ev.contains(&Event::Denied {
        at_ms: at(&ev, "gw-bad"),
        client_id: "gw-bad".into(),
        access: Access::Connect,
        topic: None
    }));
    assert!(
        !ev.iter()
            .any(|e| matches!(e, Event::Disconnect { client_id, .. } if client_id == "gw-bad")),
        "{ev:?}"
    );
    let batches = format!("{:?}", w.batches.lock().unwrap());
    assert!(
        !batches.contains("not-the-password-x9") && !w.broker.log().contains("not-the-password-x9")
    );
}

fn at(ev: &[Event], id: &str) -> u64 {
    match connects(ev, id).first() {
        Some(Event::Connect { at_ms, .. }) => *at_ms,
        _ => 0,
    }
}

#[tokio::test]
async fn n_published_messages_are_counted_exactly_with_their_sizes_and_deliveries_as_received() {
    let w = Witness::start("").await;
    let port = w.port.to_string();
    let mut sub = Command::new("mosquitto_sub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-u",
            DEV.0,
            "-P",
            DEV.1,
            "-i",
            "gw-sub",
            "-t",
            "dev/a",
            "-q",
            "1",
            "-C",
            "5",
        ])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    w.wait_for("the subscriber's connect", |ev| {
        !connects(ev, "gw-sub").is_empty()
    })
    .await;
    // Five lines of 1, 10, 100, 1000 and 3 bytes, one message each.
    let sizes = [1usize, 10, 100, 1000, 3];
    let mut publisher = Command::new("mosquitto_pub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-u",
            DEV.0,
            "-P",
            DEV.1,
            "-i",
            "gw-pub",
            "-t",
            "dev/a",
            "-q",
            "1",
            "-l",
        ])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = publisher.stdin.take().unwrap();
    for n in sizes {
        writeln!(stdin, "{}", "x".repeat(n)).unwrap();
    }
    drop(stdin);
    assert!(publisher.wait().unwrap().success());
    assert!(
        sub.wait().unwrap().success(),
        "the subscriber got its 5 messages"
    );
    let total: u64 = sizes.iter().map(|n| *n as u64).sum();
    let sums = |ev: &[Event], id: &str, want: Direction| {
        ev.iter()
            .fold((0, 0, u64::MAX, 0), |(m, b, lo, hi), e| match e {
                Event::Traffic {
                    client_id,
                    topic,
                    dir,
                    msgs,
                    bytes,
                    min_bytes,
                    max_bytes,
                    ..
                } if client_id == id && topic == "dev/a" && *dir == want => {
                    (m + msgs, b + bytes, lo.min(*min_bytes), hi.max(*max_bytes))
                }
                _ => (m, b, lo, hi),
            })
    };
    let ev = w
        .wait_for("5 sent and 5 received", |ev| {
            sums(ev, "gw-pub", Direction::Sent).0 == 5
                && sums(ev, "gw-sub", Direction::Received).0 == 5
        })
        .await;
    assert_eq!(sums(&ev, "gw-pub", Direction::Sent), (5, total, 1, 1000));
    assert_eq!(
        sums(&ev, "gw-sub", Direction::Received),
        (5, total, 1, 1000)
    );
    assert_eq!(sums(&ev, "gw-pub", Direction::Received).0, 0);
    assert!(
        !ev.iter().any(|e| matches!(e, Event::Denied { .. })),
        "{ev:?}"
    );
    assert!(
        !ev.iter()
            .any(|e| matches!(e, Event::Traffic { client_id, .. } if client_id == "fleet-watch")),
        "the plugin's own batches are not counted: {ev:?}"
    );
}

#[tokio::test]
async fn a_publish_the_acl_file_denies_is_a_denied_publish_of_that_client() {
    let w = Witness::start("").await;
    let out = w.client(
        "mosquitto_pub",
        DEV,
        &["-i", "gw-den", "-t", "other/x", "-m", "x", "-q", "1"],
    );
    assert!(out.status.success(), "{out:?}");
    let ev = w.wait_for_denial("gw-den").await;
    let denied: Vec<_> = ev
        .iter()
        .filter(|e| matches!(e, Event::Denied { .. }))
        .collect();
    assert!(
        matches!(denied[..], [Event::Denied { access: Access::Publish, topic: Some(t), .. }] if t == "other/x"),
        "{denied:?}"
    );
    assert!(
        !ev.iter()
            .any(|e| matches!(e, Event::Traffic { topic, .. } if topic == "other/x")),
        "{ev:?}"
    );
}

#[tokio::test]
async fn no_client_can_publish_on_the_plugins_topic_even_when_the_acl_allows_it() {
    let w = Witness::start("").await;
    let forged =
        r#"{"v":1,"source":"mosquitto","instance":"forged","seq":0,"sent_ms":0,"events":[]}"#;
    let out = w.client(
        "mosquitto_pub",
        BACKEND,
        &[
            "-i",
            "forger",
            "-t",
            "$detect/broker/events",
            "-m",
            forged,
            "-q",
            "1",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let ev = w.wait_for_denial("forger").await;
    assert!(ev.iter().any(|e| matches!(e, Event::Denied { access: Access::Publish, topic: Some(t), .. } if t == "$detect/broker/events")));
    assert!(
        w.batches
            .lock()
            .unwrap()
            .iter()
            .all(|b| b.instance != "forged")
    );
}

#[tokio::test]
async fn batches_are_numbered_from_zero_without_gaps_by_one_instance() {
    // A 2 s period: the watcher is subscribed well before batch 0 leaves.
    let w = Witness::start("plugin_opt_flush_ms 2000\n").await;
    w.wait_for("three batches", |_| w.batches.lock().unwrap().len() >= 3)
        .await;
    let batches = w.batches.lock().unwrap();
    let seqs: Vec<u64> = batches.iter().map(|b| b.seq).collect();
    assert_eq!(seqs, (0..seqs.len() as u64).collect::<Vec<_>>());
    assert!(
        batches.iter().all(|b| b.instance == batches[0].instance
            && b.source == "mosquitto"
            && b.dropped == 0)
    );
    assert!(batches.windows(2).all(|p| p[0].sent_ms <= p[1].sent_ms));
}
