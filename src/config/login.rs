//! The `[mqtt]` login keys: a client certificate (`cert_file` + `key_file`) and/or a user name
//! and password (`username` + `password_file`), each pair both-or-neither. Reads no files.

use std::path::Path;

use super::{Mqtt, Problem};

impl Mqtt {
    /// (cert_file, key_file) when both are set.
    pub fn client_cert(&self) -> Option<(&Path, &Path)> {
        Some((self.cert_file.as_deref()?, self.key_file.as_deref()?))
    }

    /// (username, password_file) when both are set.
    pub fn login(&self) -> Option<(&str, &Path)> {
        Some((self.username.as_deref()?, self.password_file.as_deref()?))
    }

    /// The login keys come in pairs, and at least one login is needed.
    pub(super) fn login_problems(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        let mut half = |set: &str, unset: &str, what: &str| {
            out.push(Problem::Error(format!(
                "mqtt.{set} is set but mqtt.{unset} is not: {what} needs both"
            )))
        };
        match (&self.cert_file, &self.key_file) {
            (Some(_), None) => half("cert_file", "key_file", "a client certificate"),
            (None, Some(_)) => half("key_file", "cert_file", "a client certificate"),
            _ => {}
        }
        let password_login =
            "a password login (the password is read from password_file, never from this file)";
        match (&self.username, &self.password_file) {
            (Some(_), None) => half("username", "password_file", password_login),
            (None, Some(_)) => half("password_file", "username", password_login),
            _ => {}
        }
        if self.username.as_deref() == Some("") {
            out.push(Problem::Error("mqtt.username: must not be empty".into()));
        }
        let no_cert = self.cert_file.is_none() && self.key_file.is_none();
        let no_password = self.username.is_none() && self.password_file.is_none();
        if no_cert && no_password {
            out.push(Problem::Error(
                "[mqtt]: no login: set cert_file and key_file (client certificate), or username and password_file, or both".into(),
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::{Config, Problem};

    fn parse(text: &str) -> Result<Config, crate::config::ConfigError> {
        Config::parse(text, Path::new("test.toml"))
    }

    fn mqtt_errors(keys: &str) -> Vec<String> {
        let c = parse(&format!(
            "[mqtt]\nendpoint = \"h\"\nca_file = \"ca\"\n{keys}"
        ))
        .unwrap();
        c.problems()
            .into_iter()
            .filter_map(|p| match p {
                Problem::Error(e) => Some(e),
                Problem::Warning(_) => None,
            })
            .collect()
    }

    #[test]
    fn logins_come_in_pairs_and_one_is_needed() {
        for ok in [
            "cert_file = \"c\"\nkey_file = \"k\"\n",
            "username = \"u\"\npassword_file = \"p\"\n",
            "cert_file = \"c\"\nkey_file = \"k\"\nusername = \"u\"\npassword_file = \"p\"\n",
        ] {
            assert_eq!(mqtt_errors(ok), Vec::<String>::new(), "{ok}");
        }
        for (keys, needles) in [
            ("cert_file = \"c\"\n", ["mqtt.cert_file", "mqtt.key_file"]),
            ("key_file = \"k\"\n", ["mqtt.key_file", "mqtt.cert_file"]),
            (
                "username = \"u\"\n",
                ["mqtt.username", "mqtt.password_file"],
            ),
            (
                "password_file = \"p\"\n",
                ["mqtt.password_file", "mqtt.username"],
            ),
            ("", ["no login", "password_file"]),
        ] {
            let errors = mqtt_errors(keys);
            assert_eq!(errors.len(), 1, "{keys}: {errors:?}");
            assert!(needles.iter().all(|n| errors[0].contains(n)), "{errors:?}");
        }
        let both_halves = mqtt_errors("cert_file = \"c\"\nusername = \"u\"\n");
        assert_eq!(both_halves.len(), 2, "{both_halves:?}");
        let c = parse(
            "[mqtt]\nendpoint = \"h\"\nca_file = \"ca\"\nusername = \"u\"\npassword_file = \"p\"\n",
        )
        .unwrap();
        let m = c.mqtt.as_ref().unwrap();
        assert_eq!(m.login(), Some(("u", Path::new("p"))));
        assert_eq!(m.client_cert(), None);
    }
}
