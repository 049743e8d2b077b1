//! The HTTP listener's safety rules against a real `detect-fleet run` (issue #21 item 4):
//! a non-loopback listener without token and TLS is refused, the token and the Host header
//! are checked, changes need the token, and TLS works with a certificate of the test PKI.
use std::time::Duration;

use detect_testkit::broker::Broker;
use detect_testkit::certs::Pki;
use detect_testkit::eventually;
use detect_testkit::fleet::{Fleet, forbid_port};

use crate::http_client::{request, request_tls};

const TOKEN: &str = "s3cret-token-for-tests-0123";
const VERIFY: &str = "/api/v1/violations/verification-state/0123456789abcdef0123456789abcdef";

/// A fleet config whose `[http]` table is `http` (the listener's lines).
fn configure(work: &std::path::Path, pki: &Pki, broker: &Broker, http: &str) -> Fleet {
    let fleet = Fleet::configure(
        work,
        pki,
        broker,
        &[forbid_port("no-ssh", 22)],
        &[("no-ssh", "all-things")],
        1,
    );
    let text = std::fs::read_to_string(&fleet.config).unwrap();
    let text = text.replace(
        "[http]\nlisten = \"127.0.0.1:0\"\n",
        &format!("[http]\n{http}\n"),
    );
    std::fs::write(&fleet.config, text).unwrap();
    std::fs::write(work.join("token"), format!("{TOKEN}\n")).unwrap();
    fleet
}

async fn listening(fleet: &mut Fleet) -> std::net::SocketAddr {
    fleet.start();
    let up = eventually(Duration::from_secs(20), || fleet.http_addr().is_some()).await;
    assert!(up, "no HTTP listener:\n{}", fleet.log());
    fleet.http_addr().unwrap()
}

#[tokio::test]
async fn a_non_loopback_listener_without_token_and_tls_is_refused_by_check_config_and_run() {
    let pki = Pki::generate();
    let broker = Broker::start(&pki);
    let work = tempfile::tempdir().unwrap();
    let token = work.path().join("token");
    for (http, why) in [
        ("listen = \"0.0.0.0:0\"", "token_file is required"),
        (
            &format!("listen = \"0.0.0.0:0\"\ntoken_file = {token:?}"),
            "give tls_cert_file/tls_key_file, or behind_proxy = true",
        ),
    ] {
        let fleet = configure(work.path(), &pki, &broker, http);
        for command in ["check-config", "run"] {
            let (ok, _, err) = fleet.cli(&[command]);
            assert!(!ok && err.contains(why), "{command} with {http}: {err}");
        }
    }
    let proxied = format!("listen = \"0.0.0.0:0\"\ntoken_file = {token:?}\nbehind_proxy = true");
    let fleet = configure(work.path(), &pki, &broker, &proxied);
    let (ok, out, err) = fleet.cli(&["check-config"]);
    assert!(ok, "{err}");
    assert!(out.contains("warning: [http] behind_proxy = true"), "{out}");
}

#[tokio::test]
async fn the_token_and_the_host_header_are_checked_and_changes_need_the_token() {
    let pki = Pki::generate();
    let broker = Broker::start(&pki);
    let work = tempfile::tempdir().unwrap();
    let token = work.path().join("token");
    let http = format!("listen = \"127.0.0.1:0\"\ntoken_file = {token:?}");
    let mut fleet = configure(work.path(), &pki, &broker, &http);
    let addr = listening(&mut fleet).await;
    let bearer = format!("Authorization: Bearer {TOKEN}");

    // Loopback reads need no token; a wrong one is refused all the same.
    assert_eq!(request(addr, "GET", "/metrics", &[], "").await.status, 200);
    let wrong = request(addr, "GET", "/metrics", &["Authorization: Bearer nope"], "").await;
    assert_eq!(wrong.status, 401, "{}", wrong.body);
    assert_eq!(wrong.json()["__type"], "UnauthorizedException");
    assert!(
        wrong
            .head
            .contains("x-amzn-errortype: unauthorizedexception"),
        "{}",
        wrong.head
    );
    // DNS rebinding: a page of another origin reaching 127.0.0.1 carries its own Host.
    let rebound = request(
        addr,
        "GET",
        "/metrics",
        &["Host: attacker.example:9440"],
        "",
    )
    .await;
    assert_eq!(rebound.status, 403, "{}", rebound.body);
    let localhost = request(addr, "GET", "/metrics", &["Host: localhost:9440"], "").await;
    assert_eq!(localhost.status, 200);

    // Changes: never without the token, even on loopback.
    let body = r#"{"verificationState":"FALSE_POSITIVE"}"#;
    let missing = request(addr, "POST", VERIFY, &[], body).await;
    assert_eq!(missing.status, 401, "{}", missing.body);
    assert!(
        missing.json()["message"]
            .as_str()
            .unwrap_or("")
            .contains("Bearer")
    );
    let wrong = request(addr, "POST", VERIFY, &["Authorization: Bearer nope"], body).await;
    assert_eq!(wrong.status, 401, "{}", wrong.body);
    let cookie = request(
        addr,
        "POST",
        VERIFY,
        &[&format!("Cookie: token={TOKEN}")],
        body,
    )
    .await;
    assert_eq!(cookie.status, 401, "a cookie is no token: {}", cookie.body);
    let with = request(addr, "POST", VERIFY, &[&bearer], body).await;
    assert!(
        ![401, 403].contains(&with.status),
        "the token lets the change through the gate: {} {}",
        with.status,
        with.body
    );
    // Bodies are bounded.
    let big = "x".repeat(100 * 1024);
    let too_big = request(addr, "POST", VERIFY, &[&bearer], &big).await;
    assert_eq!(too_big.status, 413, "{}", too_big.body);
}

#[tokio::test]
async fn without_a_token_file_changes_are_refused_and_tls_serves_with_a_pki_certificate() {
    let pki = Pki::generate();
    let broker = Broker::start(&pki);
    let work = tempfile::tempdir().unwrap();
    let http = format!(
        "listen = \"127.0.0.1:0\"\ntls_cert_file = {:?}\ntls_key_file = {:?}",
        pki.server.cert, pki.server.key
    );
    let mut fleet = configure(work.path(), &pki, &broker, &http);
    let addr = listening(&mut fleet).await;
    assert!(
        fleet.log().contains("HTTP listening on https://"),
        "{}",
        fleet.log()
    );
    let host = format!("Host: localhost:{}", addr.port());
    let metrics = request_tls(addr, &pki.ca, "GET", "/metrics", &[&host]).await;
    assert_eq!(metrics.status, 200, "{}", metrics.body);
    assert!(
        metrics
            .body
            .contains("# TYPE detect_fleet_alarms_raised_total counter")
    );
    let change = request_tls(addr, &pki.ca, "POST", VERIFY, &[&host]).await;
    assert_eq!(change.status, 403, "{}", change.body);
    assert!(
        change.body.contains("token_file is not set"),
        "{}",
        change.body
    );
    // Plain HTTP on the TLS port gets no answer.
    let plain = request(addr, "GET", "/metrics", &[], "").await;
    assert_ne!(plain.status, 200);
}
