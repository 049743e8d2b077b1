//! `plugin_opt_cert_identity true` on a listener requiring client certificates without
//! `use_identity_as_username`: the certificate's CN becomes the user name the acl_file sees.

use detect_testkit::broker::Login;
use protocol::broker::{Access, Direction, Event};

use crate::witness::Witness;

#[tokio::test]
async fn with_cert_identity_a_certificate_client_is_seen_connecting_and_the_acl_applies_to_its_cn()
{
    let w = Witness::start_with(
        Login::PasswordAndCertificate,
        "plugin_opt_cert_identity true\n",
    )
    .await;
    let id = &w.pki.client_ec;
    assert_eq!(id.name, "thing-ec", "the ACL names this CN");
    let tls = |topic: &str| {
        std::process::Command::new("mosquitto_pub")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &w.broker.port.to_string(),
                "--insecure",
                "-q",
                "1",
            ])
            .args(["-i", "dut-1", "-t", topic, "-m", "1234"])
            .arg("--cafile")
            .arg(&w.pki.ca)
            .arg("--cert")
            .arg(&id.cert)
            .arg("--key")
            .arg(&id.key)
            .output()
            .unwrap()
    };
    // No user name, no password: only the plugin's CN login lets it in.
    let out = tls("dev/a");
    assert!(out.status.success(), "{out:?}\nlog:\n{}", w.broker.log());
    assert!(tls("other/x").status.success());
    let ev = w
        .wait_for("dut-1's traffic and denial", |ev| {
            ev.iter().any(|e| matches!(e, Event::Traffic { client_id, dir: Direction::Sent, msgs: 1, bytes: 4, .. } if client_id == "dut-1"))
                && ev.iter().any(|e| matches!(e, Event::Denied { client_id, access: Access::Publish, .. } if client_id == "dut-1"))
        })
        .await;
    let connects = ev.iter().filter(
        |e| matches!(e, Event::Connect { client_id, ok: true, .. } if client_id == "dut-1"),
    );
    assert_eq!(connects.count(), 2, "{ev:?}");
}
