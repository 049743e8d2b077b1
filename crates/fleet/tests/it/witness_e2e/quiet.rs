//! Certificate clients that connect and leave without publishing, with the plugin in the
//! shipped cert_identity form: each connect is counted, and published at its CONNECT.

use std::time::Duration;

use detect_testkit::certs::Pki;
use detect_testkit::eventually;
use protocol::broker::{BROKER_EVENTS_TOPIC, Batch, Event};

use super::{has, start};
use crate::authorization::client::{Client, connect};

/// How many accepted connects of `client_id` the plugin has published so far (`watch` is a
/// client subscribed to its topic).
fn connects(watch: &Client, client_id: &str) -> usize {
    let batches = watch
        .received()
        .into_iter()
        .map(|(_, b)| Batch::decode(b.as_bytes()));
    let events: Vec<Event> = batches
        .flat_map(|b| b.unwrap_or_else(|e| panic!("plugin batch: {e}")).events)
        .collect();
    let ok =
        |e: &&Event| matches!(e, Event::Connect { client_id: c, ok: true, .. } if c == client_id);
    events.iter().filter(ok).count()
}

#[tokio::test]
async fn a_certificate_client_that_connects_and_disconnects_without_publishing_is_counted_at_every_connect()
 {
    let pki = Pki::generate();
    let work = tempfile::tempdir().unwrap();
    let (broker, fleet) = start(&pki, work.path()).await;
    let port = broker.port;
    let watch = connect(
        &pki,
        &pki.issue_client("detect-fleet"),
        None,
        "watch",
        port,
        &[BROKER_EVENTS_TOPIC],
    )
    .await;
    // 8 connections in a row that neither publish nor subscribe: all 8 reach detect-fleet.
    let quiet = pki.issue_client("gw-quiet");
    for _ in 0..8 {
        let c = connect(&pki, &quiet, None, "gw-quiet", port, &[]).await;
        c.mqtt.disconnect().await.unwrap();
        drop(c);
    }
    let all = eventually(Duration::from_secs(20), || {
        connects(&watch, "gw-quiet") == 8
    })
    .await;
    assert!(all, "{} connects published", connects(&watch, "gw-quiet"));
    // less-than 4 attempts: 8 quick ones in one or two 5 s windows put 4 or more in one.
    let raised = eventually(Duration::from_secs(60), || {
        has(&fleet, "gw-quiet", "attempts", false)
    })
    .await;
    assert!(raised, "no attempts alarm\n{}", fleet.log());
    // And each is published at its CONNECT, not at its disconnect as with
    // use_identity_as_username (docs/mosquitto-plugin.md, "Certificate clients").
    let held = connect(&pki, &quiet, None, "gw-quiet", port, &[]).await;
    let seen = eventually(Duration::from_secs(20), || {
        connects(&watch, "gw-quiet") == 9
    })
    .await;
    assert!(
        seen,
        "the 9th connect unseen while connected\n{}",
        broker.log()
    );
    drop(held);
}
