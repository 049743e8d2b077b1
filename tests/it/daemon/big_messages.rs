//! Issue #11 item 3: a message above the 129 KiB rumqttc takes, retained on the agent's
//! verdict topic, is dropped by the bridge and never costs the connection; a connection that
//! does die right after it is made backs off like a failed attempt. Real binary, real
//! mosquitto with mutual TLS, strict backend.
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use detect_testkit::agent::{Agent, Setup, accepted_for, config, spawn};
use detect_testkit::{Backend, Broker, Pki, eventually};

/// How often mosquitto let the client `id` in.
fn connects(broker: &Broker, id: &str) -> usize {
    broker
        .log()
        .lines()
        .filter(|l| l.contains("New client connected") && l.contains(&format!(" as {id} ")))
        .count()
}

/// The agent as thing `client_rsa`, JSON, a report every second.
fn start_agent(pki: &Pki, broker: &Broker, dir: &Path) -> Agent {
    let setup = Setup::plain(dir, broker.port, &pki.ca, &pki.client_rsa, "json", 1);
    spawn(&config(&setup), &[])
}

#[tokio::test]
async fn a_retained_200_kib_message_on_the_verdict_topic_is_dropped_and_the_one_connection_kept() {
    let pki = Pki::generate();
    let broker = Broker::start(&pki);
    let backend = Backend::start(&pki, broker.port).await;
    let work = tempfile::tempdir().unwrap();
    let thing = pki.client_rsa.name.clone();
    let junk = work.path().join("junk");
    std::fs::write(&junk, vec![b'x'; 200 * 1024]).unwrap();
    let topic = format!("$aws/things/{thing}/defender/metrics/json/accepted");
    broker.retain(&pki, &topic, &junk);
    let agent = start_agent(&pki, &broker, work.path());
    // Reports flow and the agent hears their verdicts.
    let heard = eventually(Duration::from_secs(40), || {
        agent.log().matches("verdict=\"accepted\"").count() >= 4
    })
    .await;
    let log = agent.log();
    let (status, _) = agent.stop().await;
    assert!(status.success());
    assert!(heard, "no verdicts heard; log:\n{log}");
    assert!(accepted_for(&backend.received(), &thing).len() >= 4);
    let dropped: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("MQTT message above the size limit dropped"))
        .collect();
    assert_eq!(dropped.len(), 1, "{log}");
    // The remaining length: topic length, topic, packet id, payload.
    let size = 2 + topic.len() + 2 + 200 * 1024;
    assert!(
        dropped[0].contains(&topic) && dropped[0].contains(&format!("bytes={size} ")),
        "{}",
        dropped[0]
    );
    assert!(!log.contains("MQTT connection lost"), "{log}");
    assert!(!log.contains("MQTT connection failed"), "{log}");
    // The broker got its PUBACK (from the bridge, at QoS 1 as subscribed).
    let blog = broker.log();
    let mid = blog
        .lines()
        .find(|l| {
            l.contains(&format!("Sending PUBLISH to {thing} ")) && l.contains("(204800 bytes)")
        })
        .and_then(|l| l.split(", m").nth(1)?.split(',').next())
        .unwrap_or_else(|| panic!("no PUBLISH of the big message; broker log:\n{blog}"));
    assert!(
        blog.contains(&format!("Received PUBACK from {thing} (Mid: {mid},")),
        "no PUBACK for message {mid}; broker log:\n{blog}"
    );
    assert_eq!(
        connects(&broker, &thing),
        1,
        "the agent connected more than once; broker log:\n{}",
        broker.log()
    );
}

/// A client that takes the agent's client id every second kicks the agent off (MQTT 3.1.1
/// §3.1.4: the broker drops the older session) right after each connect. Such a connection
/// backs off like a failed attempt: the attempts count up, never a reconnect loop at the
/// initial delay (issue #11 item 3).
#[tokio::test]
async fn a_connection_that_dies_right_after_it_is_made_backs_off_like_a_failed_one() {
    let pki = Pki::generate();
    let broker = Broker::start(&pki);
    let work = tempfile::tempdir().unwrap();
    let thing = pki.client_rsa.name.clone();
    let agent = start_agent(&pki, &broker, work.path());
    let port = broker.port.to_string();
    let (ca, cert, key) = (
        pki.ca.clone(),
        pki.backend.cert.clone(),
        pki.backend.key.clone(),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let kicker = tokio::task::spawn_blocking({
        let (thing, stop) = (thing.clone(), stop.clone());
        move || {
            while !stop.load(Ordering::Relaxed) {
                // Connects as the agent, waits a second for nothing, disconnects.
                let _ = Command::new("mosquitto_sub")
                    .args(["-h", "127.0.0.1", "-p", &port, "-i", &thing])
                    .args(["-t", "kicker/none", "-W", "1"])
                    .arg("--cafile")
                    .arg(&ca)
                    .arg("--cert")
                    .arg(&cert)
                    .arg("--key")
                    .arg(&key)
                    .arg("--insecure")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
        }
    });
    let third = eventually(Duration::from_secs(40), || {
        agent.log().contains("attempt=3 ")
    })
    .await;
    let log = agent.log();
    let (status, _) = agent.stop().await;
    stop.store(true, Ordering::Relaxed);
    kicker.await.unwrap();
    assert!(status.success());
    assert!(
        third,
        "the attempts start over after each short connection; log:\n{log}"
    );
    assert!(log.contains("MQTT connection lost"), "{log}");
}
