//! Runs mosquitto with config/mosquitto/ (detect.conf and detect.acl) as a user installs it:
//! only the file paths, the listener's port and the test logging lines differ.

use std::path::Path;

use super::broker::{Broker, SHIPPED_ACL, SHIPPED_CONF, mosquitto_passwd};
use super::certs::Pki;
use super::server::free_port;

/// The listener lines of detect.conf that the password variant replaces (docs/authorization.md).
const CERTIFICATE_LOGIN: &str = "require_certificate true\nuse_identity_as_username true\n";

/// Replaces `from` (which must be there: a changed shipped file fails loudly) with `to`.
fn swap(text: String, from: &str, to: &str) -> String {
    assert!(
        text.contains(from),
        "config/mosquitto/detect.conf has no {from:?}"
    );
    text.replace(from, to)
}

/// detect.conf with the test paths and `port`; its ACL written next to it.
fn shipped(pki: &Pki, port: u16) -> String {
    let dir = pki.dir.path();
    let acl = dir.join(format!("detect-{port}.acl"));
    std::fs::write(&acl, SHIPPED_ACL).unwrap();
    let path = |p: &Path| p.display().to_string();
    let mut text = SHIPPED_CONF.to_string();
    for (from, to) in [
        ("listener 8883\n", format!("listener {port} 127.0.0.1\n")),
        ("/etc/mosquitto/certs/ca.crt", path(&pki.ca)),
        ("/etc/mosquitto/certs/server.crt", path(&pki.server.cert)),
        ("/etc/mosquitto/certs/server.key", path(&pki.server.key)),
        ("/etc/mosquitto/detect.acl", path(&acl)),
    ] {
        text = swap(text, from, &to);
    }
    format!(
        "# crates/testkit/src/shipped.rs: config/mosquitto/detect.conf, test paths\n\
         user root\n\
         persistence false\n\
         log_dest stderr\n\
         log_type all\n\
         {text}"
    )
}

impl Broker {
    /// mosquitto with the shipped detect.conf and detect.acl: mutual TLS, the certificate CN
    /// as user name, each device scoped to its own topics.
    pub fn start_shipped(pki: &Pki) -> Broker {
        let port = free_port();
        Broker::run(pki, port, &shipped(pki, port))
    }

    /// `start_shipped` with `lines` added to the end of detect.conf (so to its listener), e.g.
    /// the `use_username_as_clientid true` of docs/authorization.md.
    pub fn start_shipped_with(pki: &Pki, lines: &str) -> Broker {
        let port = free_port();
        Broker::run(pki, port, &format!("{}{lines}", shipped(pki, port)))
    }

    /// `start_shipped_with` with detect-fleet's plugin enabled as detect.conf's closing block
    /// says: `use_identity_as_username` deleted, the `plugin` line (this build's library, see
    /// `bin::mosquitto_plugin`) and `plugin_opt_cert_identity true` uncommented.
    pub fn start_shipped_with_plugin(pki: &Pki, lines: &str) -> Broker {
        let port = free_port();
        let plugin = super::bin::mosquitto_plugin();
        let mut text = shipped(pki, port);
        for (from, to) in [
            ("use_identity_as_username true\n", String::new()),
            (
                "#plugin /usr/lib/detect-fleet/libdetect_fleet_mosq.so\n",
                format!("plugin {}\n", plugin.display()),
            ),
            (
                "#plugin_opt_cert_identity true\n",
                "plugin_opt_cert_identity true\n".to_string(),
            ),
        ] {
            text = swap(text, from, &to);
        }
        Broker::run(pki, port, &format!("{text}{lines}"))
    }

    /// The password variant of docs/authorization.md: the same files, with the listener's two
    /// certificate-login lines replaced by `require_certificate false` and a `password_file`
    /// holding `users` (user name = thing name).
    pub fn start_shipped_with_passwords(pki: &Pki, users: &[(&str, &str)]) -> Broker {
        let port = free_port();
        let passwords = pki.dir.path().join(format!("mosquitto-{port}.passwd"));
        for (i, (user, password)) in users.iter().enumerate() {
            mosquitto_passwd(&passwords, i == 0, user, password);
        }
        let login = format!(
            "require_certificate false\npassword_file {}\n",
            passwords.display()
        );
        let text = swap(shipped(pki, port), CERTIFICATE_LOGIN, &login);
        Broker::run(pki, port, &text)
    }
}
