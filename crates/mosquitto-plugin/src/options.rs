//! The plugin's `plugin_opt_KEY VALUE` lines: flush_ms, verdict, cert_identity (and a test-only
//! panic trigger), read strictly — an unknown key or bad value stops mosquitto from starting.

/// What the plugin answers the broker's authentication and ACL questions it only observes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Let the next authority (password_file, acl_file, another plugin) decide. When there is
    /// none, mosquitto treats "everyone deferred" as a denial: every client is locked out.
    Defer,
    /// Allow: for a broker with no other authority (no password_file, acl_file or auth plugin).
    Allow,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub flush_ms: u64,
    pub verdict: Verdict,
    /// Log certificate clients in with their certificate's CN as user name (replaces the
    /// listener's `use_identity_as_username`, which hides their CONNECT from plugins).
    pub cert_identity: bool,
    /// Test only: a MESSAGE on this topic panics inside the callback, to prove it is caught.
    pub panic_topic: Option<String>,
}

pub const FLUSH_MS_MIN: u64 = 50;
pub const FLUSH_MS_MAX: u64 = 60_000;

impl Default for Options {
    fn default() -> Options {
        Options {
            flush_ms: 1000,
            verdict: Verdict::Defer,
            cert_identity: false,
            panic_topic: None,
        }
    }
}

impl Options {
    /// Reads the (key, value) pairs mosquitto passes; the error names the key and value.
    pub fn parse<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Options, String> {
        let mut o = Options::default();
        for (key, value) in pairs {
            let bad = |want: &str| format!("plugin_opt_{key} {value:?}: expected {want}");
            match key {
                "flush_ms" => {
                    o.flush_ms = value
                        .parse()
                        .ok()
                        .filter(|ms| (FLUSH_MS_MIN..=FLUSH_MS_MAX).contains(ms))
                        .ok_or_else(|| {
                            bad(&format!("milliseconds in {FLUSH_MS_MIN}..={FLUSH_MS_MAX}"))
                        })?;
                }
                "verdict" => {
                    o.verdict = match value {
                        "defer" => Verdict::Defer,
                        "allow" => Verdict::Allow,
                        _ => return Err(bad("defer or allow")),
                    };
                }
                "cert_identity" => {
                    o.cert_identity = match value {
                        "true" => true,
                        "false" => false,
                        _ => return Err(bad("true or false")),
                    };
                }
                "test_panic_topic" => o.panic_topic = Some(value.to_string()),
                _ => {
                    return Err(format!(
                        "unknown option plugin_opt_{key} (known: flush_ms, verdict, cert_identity)"
                    ));
                }
            }
        }
        Ok(o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_one_second_defer_and_no_cert_identity() {
        let o = Options::parse([]).unwrap();
        assert_eq!(o, Options::default());
        assert_eq!(
            (o.flush_ms, o.verdict, o.cert_identity),
            (1000, Verdict::Defer, false)
        );
    }

    #[test]
    fn every_option_is_read() {
        let o = Options::parse([
            ("flush_ms", "250"),
            ("verdict", "allow"),
            ("cert_identity", "true"),
        ])
        .unwrap();
        assert_eq!(
            (o.flush_ms, o.verdict, o.cert_identity),
            (250, Verdict::Allow, true)
        );
    }

    #[test]
    fn bad_values_and_unknown_keys_are_refused_naming_them() {
        let e = Options::parse([("flush_ms", "10")]).unwrap_err();
        assert!(e.contains("plugin_opt_flush_ms \"10\""), "{e}");
        let e = Options::parse([("verdict", "yes")]).unwrap_err();
        assert!(e.contains("defer or allow"), "{e}");
        let e = Options::parse([("verdit", "allow")]).unwrap_err();
        assert!(e.contains("unknown option plugin_opt_verdit"), "{e}");
    }
}
