//! Cloud-side metrics from nats-server (issue #18 item 3): Debian's nats-server with its MQTT
//! gateway, the real fleet with `[broker] source = "nats"` on its system account, and real
//! MQTT clients (mosquitto_pub) connecting, disconnecting, failing to log in and publishing.
//! Windows are shrunk with `duration_override_secs`; the clients act right after a window
//! starts, so each thing's events share one window.
use std::process::{Command, Stdio};
use std::time::Duration;

use detect_testkit::now_ms;

use detect_testkit::certs::Pki;
use detect_testkit::eventually;
use detect_testkit::fleet::Fleet;
use detect_testkit::nats::{Nats, SYS_USER};
use serde_json::{Value, json};

const WINDOW_SECS: u64 = 6;
const DEVICE_PASSWORD: &str = "device pw";

fn behavior(name: &str, metric: &str, op: &str, count: u64) -> Value {
    json!({"name": name, "metric": metric,
           "criteria": {"comparisonOperator": op, "value": {"count": count}, "durationSeconds": 300}})
}

/// A fleet on the NATS MQTT gateway (user `detect-fleet`) reading its system account (over
/// TLS checked against `ca` when given).
fn fleet(
    work: &std::path::Path,
    nats: &Nats,
    profile: &Value,
    ca: Option<&std::path::Path>,
) -> Fleet {
    let pki = Pki::generate();
    let name = profile["securityProfileName"].as_str().unwrap();
    let fleet = Fleet::configure_port(
        work,
        &pki,
        nats.mqtt_port,
        std::slice::from_ref(profile),
        &[(name, "all-things")],
        1,
    );
    fleet.set_fleet_key(&format!("duration_override_secs = {WINDOW_SECS}"));
    let write = |file: &str, text: &str| {
        let path = work.join(file);
        std::fs::write(&path, text).unwrap();
        path
    };
    let fleet_pw = write("fleet-password", "fleet pw\n");
    let sys_pw = write("sys-password", &format!("{}\n", SYS_USER.1));
    let text = std::fs::read_to_string(&fleet.config).unwrap();
    let mut out = String::new();
    for line in text.lines() {
        if ["ca_file", "cert_file", "key_file", "tls_server_name"]
            .iter()
            .any(|k| line.starts_with(k))
        {
            continue;
        }
        out.push_str(line);
        out.push('\n');
        if line.starts_with("client_id") {
            out.push_str(&format!(
                "username = \"detect-fleet\"\npassword_file = {:?}\nsource = \"nats\"\n",
                fleet_pw.display().to_string()
            ));
        }
    }
    out.push_str(&format!(
        "[nats]\nurl = {:?}\nuser = {:?}\npassword_file = {:?}\nconnz_interval_secs = 1\n",
        nats.url(),
        SYS_USER.0,
        sys_pw.display().to_string()
    ));
    if let Some(ca) = ca {
        out.push_str(&format!("ca_file = {:?}\n", ca.display().to_string()));
    }
    std::fs::write(&fleet.config, out).unwrap();
    fleet
}

/// `mosquitto_pub -l` to the MQTT gateway as `id` (user = id) on `telemetry/ID`: each line of
/// its stdin a QoS 1 message.
fn mosquitto_pub_lines(nats: &Nats, id: &str, password: &str) -> std::process::Child {
    Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &nats.mqtt_port.to_string()])
        .args(["-i", id, "-u", id, "-P", password, "-q", "1", "-l"])
        .args(["-t", &format!("telemetry/{id}")])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mosquitto_pub (apt-get install mosquitto-clients)")
}

/// One `mosquitto_pub` run: connect as `id` (user = id), publish `lines` messages, disconnect.
/// Returns whether it succeeded (a bad password fails).
fn publish(nats: &Nats, id: &str, password: &str, lines: usize) -> bool {
    let mut child = mosquitto_pub_lines(nats, id, password);
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write;
        let _ = stdin.write_all("reading\n".repeat(lines).as_bytes());
    }
    child.wait().unwrap().success()
}

/// A `mosquitto_pub -l` that publishes `lines` messages and stays connected until its stdin
/// (returned) is dropped: its messages are seen only through CONNZ while it stays.
fn publish_and_stay(
    nats: &Nats,
    id: &str,
    lines: usize,
) -> (std::process::Child, std::process::ChildStdin) {
    let mut child = mosquitto_pub_lines(nats, id, DEVICE_PASSWORD);
    let mut stdin = child.stdin.take().unwrap();
    use std::io::Write;
    stdin
        .write_all("reading\n".repeat(lines).as_bytes())
        .unwrap();
    stdin.flush().unwrap();
    (child, stdin)
}

#[tokio::test]
async fn connection_attempts_disconnects_refused_logins_and_messages_sent_seen_by_nats_server_each_raise_in_alarm_then_alarm_cleared()
 {
    let work = tempfile::tempdir().unwrap();
    let things = ["gw-conn", "gw-auth", "gw-flood", "gw-stay"];
    let mut users = vec![("detect-fleet", "fleet pw")];
    users.extend(things.iter().map(|t| (*t, DEVICE_PASSWORD)));
    let nats = Nats::start(work.path(), &users);
    let profile = json!({"securityProfileName": "nats-witness", "behaviors": [
        behavior("attempts", "aws:num-connection-attempts", "less-than", 4),
        behavior("disconnects", "aws:num-disconnects", "less-than", 4),
        behavior("auth", "aws:num-authorization-failures", "less-than", 2),
        behavior("sent", "aws:num-messages-sent", "less-than", 10),
        behavior("size", "aws:message-byte-size", "less-than", 1000),
    ]});
    let mut fleet = fleet(work.path(), &nats, &profile, None);

    let (ok, out, err) = fleet.cli(&["check-config"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("behavior size: not evaluated by detect-fleet: aws:message-byte-size is a cloud-side metric that [broker] source = \"nats\" does not feed"),
        "{out}"
    );
    assert!(
        out.contains("warning: behavior auth: nats-server reports refused logins only"),
        "{out}"
    );

    fleet.start_subscribed().await;
    let watching = eventually(Duration::from_secs(20), || {
        fleet.log().contains("nats: subscribed to the advisories")
    })
    .await;
    assert!(watching, "{}\n{}", fleet.log(), nats.log());
    // Act just after a window starts (a whole window of room for the clients).
    next_window().await;
    for _ in 0..5 {
        assert!(publish(&nats, "gw-conn", DEVICE_PASSWORD, 1));
    }
    for _ in 0..3 {
        assert!(!publish(&nats, "gw-auth", "wrong password", 1));
    }
    assert!(publish(&nats, "gw-flood", DEVICE_PASSWORD, 30));
    let (mut stay, stdin) = publish_and_stay(&nats, "gw-stay", 20);
    // gw-stay is still connected when its messages alarm: CONNZ counted them.
    let counted = eventually(Duration::from_secs(30), || {
        fleet.episodes("gw-stay").iter().any(|(b, _)| b == "sent")
    })
    .await;
    assert!(counted, "{}", fleet.log());
    assert!(
        stay.try_wait().unwrap().is_none(),
        "gw-stay stayed connected"
    );
    drop(stdin);
    stay.wait().unwrap();

    let want = [
        ("gw-conn", "attempts"),
        ("gw-conn", "disconnects"),
        ("gw-auth", "auth"),
        ("gw-flood", "sent"),
        ("gw-stay", "sent"),
    ];
    let cleared = |thing: &str, name: &str| {
        fleet
            .episodes(thing)
            .iter()
            .any(|(b, end)| b == name && end == "alarm-cleared")
    };
    let all = eventually(Duration::from_secs(60), || {
        want.iter().all(|(t, b)| cleared(t, b))
    })
    .await;
    let seen: Vec<_> = things.iter().map(|t| (t, fleet.episodes(t))).collect();
    assert!(all, "{seen:?}\n{}\n{}", fleet.log(), nats.log());
    // Nothing else alarmed: gw-auth's 3 refused logins are 3 attempts (< 4), gw-flood's one
    // connection 1, and gw-conn's 5 messages < 10.
    for (t, e) in &seen {
        let names: Vec<&str> = e.iter().map(|(b, _)| b.as_str()).collect();
        let expected: Vec<&str> = want
            .iter()
            .filter(|(x, _)| x == *t)
            .map(|(_, b)| *b)
            .collect();
        let mut names_sorted = names.clone();
        names_sorted.sort();
        let mut expected_sorted = expected.clone();
        expected_sorted.sort();
        assert_eq!(names_sorted, expected_sorted, "{t}: {e:?}");
    }
    let v = fleet.violations(&["--thing", "gw-flood"]);
    assert_eq!(v[0]["lastViolationValue"]["count"], json!(30), "{v:?}");
    let v = fleet.violations(&["--thing", "gw-auth"]);
    assert_eq!(v[0]["lastViolationValue"]["count"], json!(3), "{v:?}");
    let v = fleet.violations(&["--thing", "gw-stay"]);
    assert_eq!(v[0]["lastViolationValue"]["count"], json!(20), "{v:?}");
    let log = fleet.log();
    assert!(!log.contains("unreadable"), "{log}");
}

/// Waits until the start of the next window, plus a little.
async fn next_window() {
    let w = WINDOW_SECS * 1000;
    let next = (now_ms() / w + 1) * w;
    tokio::time::sleep(Duration::from_millis(next - now_ms() + 100)).await;
}

#[tokio::test]
async fn the_nats_source_over_tls_skips_a_malformed_advisory_reconnects_after_nats_server_restarts_and_counts_the_refused_logins_after_it()
 {
    let work = tempfile::tempdir().unwrap();
    let users = [("detect-fleet", "fleet pw"), ("gw-back", DEVICE_PASSWORD)];
    let pki = Pki::generate();
    let server = Some((pki.server.cert.as_path(), pki.server.key.as_path()));
    let mut nats = Nats::start_with(work.path(), &users, server);
    let profile = json!({"securityProfileName": "nats-restart", "behaviors": [
        behavior("auth", "aws:num-authorization-failures", "less-than", 2),
    ]});
    let mut fleet = fleet(work.path(), &nats, &profile, Some(&pki.ca));
    fleet.start_subscribed().await;
    let log_has = |fleet: &Fleet, what: &str| fleet.log().contains(what);
    let up = eventually(Duration::from_secs(20), || {
        log_has(&fleet, "nats: subscribed to the advisories")
    })
    .await;
    assert!(up, "{}", fleet.log());
    // A malformed advisory (published as the system user) is counted, logged and skipped.
    let sys =
        async_nats::ConnectOptions::with_user_and_password(SYS_USER.0.into(), SYS_USER.1.into())
            .add_root_certificates(pki.ca.clone())
            .require_tls(true)
            .connect(nats.url())
            .await
            .unwrap();
    sys.publish("$SYS.ACCOUNT.DEV.CONNECT", "{not json".into())
        .await
        .unwrap();
    sys.flush().await.unwrap();
    let skipped = eventually(Duration::from_secs(20), || {
        log_has(&fleet, "nats: advisory unreadable: skipped")
    })
    .await;
    assert!(skipped, "{}", fleet.log());
    assert!(fleet.log().contains("malformed=1"), "{}", fleet.log());
    nats.stop();
    let down = eventually(Duration::from_secs(20), || {
        log_has(&fleet, "nats: disconnected")
    })
    .await;
    assert!(down, "{}", fleet.log());
    nats.start_again();
    let back = eventually(Duration::from_secs(40), || {
        let log = fleet.log();
        let (lost, again) = (
            log.rfind("nats: disconnected"),
            log.rfind("nats: connected to the system account"),
        );
        again > lost
    })
    .await;
    assert!(back, "{}\n{}", fleet.log(), nats.log());

    next_window().await;
    for _ in 0..3 {
        assert!(!publish(&nats, "gw-back", "wrong password", 1));
    }
    let cleared = eventually(Duration::from_secs(60), || {
        fleet
            .episodes("gw-back")
            .iter()
            .any(|(b, end)| b == "auth" && end == "alarm-cleared")
    })
    .await;
    assert!(cleared, "{:?}\n{}", fleet.episodes("gw-back"), fleet.log());
    let v = fleet.violations(&["--thing", "gw-back"]);
    assert_eq!(v[0]["lastViolationValue"]["count"], json!(3), "{v:?}");
}
