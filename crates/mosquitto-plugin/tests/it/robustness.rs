//! The broker survives what the plugin must not break: a panic inside a callback (built with the
//! `plugin` profile, which unwinds) and SIGHUP, after which the same instance goes on numbering.

use detect_testkit::broker::USERS;
use protocol::broker::Event;

use crate::witness::Witness;

const DEV: (&str, &str) = USERS[0];

#[tokio::test]
async fn a_panic_inside_a_callback_is_caught_and_mosquitto_keeps_serving() {
    let mut w = Witness::start("plugin_opt_test_panic_topic dev/panic\n").await;
    let out = w.client(
        "mosquitto_pub",
        DEV,
        &["-i", "gw-p", "-t", "dev/panic", "-m", "x", "-q", "1"],
    );
    assert!(out.status.success(), "{out:?}");
    assert!(
        w.broker.is_running(),
        "mosquitto died; log:\n{}",
        w.broker.log()
    );
    assert!(
        w.broker
            .log()
            .contains("a callback panicked; the panic was caught"),
        "{}",
        w.broker.log()
    );
    // Still observed and published after the panic.
    let out = w.client(
        "mosquitto_pub",
        DEV,
        &["-i", "gw-after", "-t", "dev/a", "-m", "x", "-q", "1"],
    );
    assert!(out.status.success(), "{out:?}");
    w.wait_for("gw-after's traffic", |ev| {
        ev.iter()
            .any(|e| matches!(e, Event::Traffic { client_id, .. } if client_id == "gw-after"))
    })
    .await;
}

#[tokio::test]
async fn sighup_keeps_the_plugin_publishing_with_the_same_instance_and_numbering() {
    let mut w = Witness::start("").await;
    assert!(w.broker.reload());
    w.wait_for("the reload in the log", |_| {
        w.broker.log().contains("Reloading config")
    })
    .await;
    let out = w.client(
        "mosquitto_pub",
        DEV,
        &["-i", "gw-hup", "-t", "dev/a", "-m", "after", "-q", "1"],
    );
    assert!(out.status.success(), "{out:?}");
    w.wait_for("gw-hup's traffic", |ev| {
        ev.iter().any(
            |e| matches!(e, Event::Traffic { client_id, msgs: 1, .. } if client_id == "gw-hup"),
        )
    })
    .await;
    assert!(w.broker.is_running());
    let batches = w.batches.lock().unwrap();
    assert!(batches.iter().all(|b| b.instance == batches[0].instance));
    assert!(
        batches.windows(2).all(|p| p[1].seq == p[0].seq + 1),
        "{:?}",
        batches.iter().map(|b| b.seq).collect::<Vec<_>>()
    );
}
