//! `[http]` of the fleet config (issue #21 item 4): where the listener binds, its token file,
//! its TLS files and the reverse-proxy opt-out, with the safety rules check-config prints.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:9440";

/// `[http]`: the listener serving `/metrics`, `/api/v1/` and the console (docs/fleet.md).
#[derive(Debug, Clone, Deserialize)]
pub struct HttpConfig {
    /// `IP:PORT` (port 0: any free port, logged at start). Loopback unless the rules below
    /// are met.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// A file holding the bearer token (one line, at least 16 characters). Changes (POST)
    /// need it always; reads need it on a non-loopback listener.
    pub token_file: Option<PathBuf>,
    /// TLS on the listener itself (PEM certificate chain and key).
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    /// A non-loopback plain-HTTP listener behind a TLS-terminating reverse proxy (warned).
    #[serde(default)]
    pub behind_proxy: bool,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: default_listen(),
            token_file: None,
            tls_cert_file: None,
            tls_key_file: None,
            behind_proxy: false,
        }
    }
}

fn default_listen() -> String {
    DEFAULT_LISTEN.into()
}

impl HttpConfig {
    /// The parsed `listen` address (checked by `check`).
    pub fn addr(&self) -> Result<SocketAddr, String> {
        self.listen.parse().map_err(|_| {
            format!(
                "[http] listen {:?}: not an IP:PORT address (e.g. {DEFAULT_LISTEN})",
                self.listen
            )
        })
    }

    pub fn loopback(&self) -> bool {
        self.addr().is_ok_and(|a| a.ip().is_loopback())
    }

    pub fn tls(&self) -> bool {
        self.tls_cert_file.is_some()
    }

    /// The safety rules (web-common.md), in the words check-config prints.
    pub fn check(&self) -> Result<(), String> {
        let addr = self.addr()?;
        if self.tls_cert_file.is_some() != self.tls_key_file.is_some() {
            return Err("[http] tls_cert_file and tls_key_file go together".into());
        }
        if self.behind_proxy && self.tls() {
            return Err(
                "[http] behind_proxy = true is for a plain listener behind a TLS-terminating proxy: drop it or the tls_* files"
                    .into(),
            );
        }
        if addr.ip().is_loopback() {
            return Ok(());
        }
        if self.token_file.is_none() {
            return Err(format!(
                "[http] listen {addr} is not loopback: token_file is required (every request then needs Authorization: Bearer <token>)"
            ));
        }
        if !self.tls() && !self.behind_proxy {
            return Err(format!(
                "[http] listen {addr} is not loopback: give tls_cert_file/tls_key_file, or behind_proxy = true if a TLS-terminating reverse proxy is in front"
            ));
        }
        Ok(())
    }

    /// What check-config says about the listener (after `check` passed).
    pub fn describe(&self) -> Vec<String> {
        let scheme = if self.tls() { "https" } else { "http" };
        let mut out = vec![format!(
            "note: [http] listen {scheme}://{}: /metrics, /api/v1/, the console at /; {}",
            self.listen,
            if self.loopback() {
                "loopback: reads need no token, the Host header must name a loopback host"
            } else {
                "not loopback: every request needs the bearer token"
            }
        )];
        out.push(match &self.token_file {
            Some(p) => format!(
                "note: [http] token_file {}: changes (POST) need Authorization: Bearer <token>",
                p.display()
            ),
            None => {
                "note: [http] no token_file: changes (verification states) are refused over HTTP"
                    .into()
            }
        });
        if self.behind_proxy {
            out.push(
                "warning: [http] behind_proxy = true: plain HTTP on a non-loopback address; only safe behind a TLS-terminating reverse proxy"
                    .into(),
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(text: &str) -> HttpConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn loopback_needs_nothing_and_is_the_default() {
        let c = HttpConfig::default();
        assert_eq!(c.listen, "127.0.0.1:9440");
        assert!(c.check().is_ok() && c.loopback());
        assert!(http("listen = \"[::1]:0\"").check().is_ok());
    }

    #[test]
    fn elsewhere_needs_a_token_and_tls_or_the_proxy_opt_out() {
        let e = http("listen = \"0.0.0.0:9440\"").check().unwrap_err();
        assert!(e.contains("token_file is required"), "{e}");
        let e = http("listen = \"0.0.0.0:9440\"\ntoken_file = \"/t\"")
            .check()
            .unwrap_err();
        assert!(e.contains("tls_cert_file"), "{e}");
        let ok = "listen = \"0.0.0.0:9440\"\ntoken_file = \"/t\"\n";
        assert!(http(&format!("{ok}behind_proxy = true")).check().is_ok());
        let tls = format!("{ok}tls_cert_file = \"/c\"\ntls_key_file = \"/k\"");
        assert!(http(&tls).check().is_ok());
        let e = http(&format!("{ok}tls_cert_file = \"/c\""))
            .check()
            .unwrap_err();
        assert!(e.contains("go together"), "{e}");
        let e = http("listen = \"localhost:80\"").check().unwrap_err();
        assert!(e.contains("not an IP:PORT"), "{e}");
    }
}
