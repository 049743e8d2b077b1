//! Offline checks of the TLS identity files: `check_identity` (check-config) and
//! `client_config` for every supported key flavour, with errors that name the file.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use detect_agent::publish::tls::AWS_MQTT_ALPN;
use detect_agent::publish::{ClientCert, MqttSettings, Severity, check_identity, client_config};
use detect_testkit::{Identity, Pki};

/// 2040-01-01, well inside the harness certificates' default validity (1975–4096).
fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(2_208_988_800)
}

fn settings(pki: &Pki, id: &Identity, port: u16) -> MqttSettings {
    MqttSettings {
        endpoint: "127.0.0.1".to_string(),
        port,
        ca_file: pki.ca.clone(),
        client_cert: Some(ClientCert {
            cert_file: id.cert.clone(),
            key_file: id.key.clone(),
        }),
        login: None,
        tls_server_name: None,
        client_id: id.name.clone(),
        thing_name: id.name.clone(),
        format_segment: "json".to_string(),
        keep_alive_secs: 30,
    }
}

fn messages(cert: &Path, key: &Path, ca: &Path, at: SystemTime) -> Vec<String> {
    check_identity(cert, key, ca, at)
        .iter()
        .map(|p| p.to_string())
        .collect()
}

#[test]
fn every_key_flavour_passes_and_builds_a_config() {
    let pki = Pki::generate();
    for id in [&pki.client_ec, &pki.client_sec1, &pki.client_rsa] {
        let found = check_identity(&id.cert, &id.key, &pki.ca, now());
        assert!(found.is_empty(), "{}: {found:?}", id.name);
        let config = client_config(&settings(&pki, id, 8883)).unwrap();
        assert!(config.alpn_protocols.is_empty());
    }
}

#[test]
fn port_443_asks_for_the_aws_alpn() {
    let pki = Pki::generate();
    let config = client_config(&settings(&pki, &pki.client_ec, 443)).unwrap();
    assert_eq!(config.alpn_protocols, vec![AWS_MQTT_ALPN.to_vec()]);
}

#[test]
fn mismatched_key_is_an_error_naming_both_files() {
    let pki = Pki::generate();
    let found = messages(&pki.client_ec.cert, &pki.client_rsa.key, &pki.ca, now());
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("does not match"), "{found:?}");
    assert!(found[0].contains("thing-ec.crt") && found[0].contains("thing-rsa.key"));

    let mut s = settings(&pki, &pki.client_ec, 8883);
    s.client_cert = Some(ClientCert {
        cert_file: pki.client_ec.cert.clone(),
        key_file: pki.client_sec1.key.clone(),
    });
    let err = client_config(&s).unwrap_err().to_string();
    assert!(err.contains("does not match"), "{err}");
}

#[test]
fn expired_and_not_yet_valid_certificates_are_errors() {
    let pki = Pki::generate();
    let id = &pki.client_expired; // 2020-01-01 .. 2021-01-01
    let found = check_identity(&id.cert, &id.key, &pki.ca, now());
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].severity, Severity::Error);
    assert!(
        found[0].message.contains("expired on 2021-01-01"),
        "{found:?}"
    );

    let early = UNIX_EPOCH + Duration::from_secs(1_500_000_000); // 2017
    let found = check_identity(&id.cert, &id.key, &pki.ca, early);
    assert!(
        found[0].message.contains("not valid before 2020-01-01"),
        "{found:?}"
    );
}

#[test]
fn expiry_within_30_days_is_a_warning() {
    let pki = Pki::generate();
    let id = &pki.client_expired;
    let soon = UNIX_EPOCH + Duration::from_secs(1_609_459_200 - 10 * 86_400); // 2020-12-22
    let found = check_identity(&id.cert, &id.key, &pki.ca, soon);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].severity, Severity::Warning);
    assert!(found[0].message.contains("in 10 days"), "{found:?}");

    let earlier = UNIX_EPOCH + Duration::from_secs(1_609_459_200 - 40 * 86_400);
    assert!(check_identity(&id.cert, &id.key, &pki.ca, earlier).is_empty());
}

#[test]
fn unreadable_and_empty_files_name_the_file() {
    let pki = Pki::generate();
    let id = &pki.client_ec;
    let absent = pki.missing("nope.pem");
    let found = messages(&absent, &id.key, &pki.ca, now());
    assert!(
        found.len() == 1 && found[0].contains("nope.pem") && found[0].contains("cannot read"),
        "{found:?}"
    );

    // A key file given as the certificate, and a certificate given as the key and CA.
    let found = messages(&id.key, &id.cert, &id.key, now());
    assert!(
        found.iter().any(|m| m.contains("no PEM certificate")),
        "{found:?}"
    );
    assert!(
        found.iter().any(|m| m.contains("no private key")),
        "{found:?}"
    );
    assert_eq!(found.len(), 3, "{found:?}");

    let garbage = pki.dir.path().join("garbage.pem");
    std::fs::write(
        &garbage,
        "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let found = messages(&garbage, &id.key, &pki.ca, now());
    assert!(
        found.len() == 1 && found[0].contains("garbage.pem"),
        "{found:?}"
    );
}

#[test]
fn a_bad_server_name_override_is_an_error() {
    let pki = Pki::generate();
    let mut s = settings(&pki, &pki.client_ec, 8883);
    s.tls_server_name = Some("not a name!".to_string());
    let err = client_config(&s).unwrap_err().to_string();
    assert!(err.contains("not a name!"), "{err}");
}
