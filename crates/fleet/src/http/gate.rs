//! The HTTP safety gate (issue #21 item 4, docs/fleet.md "HTTP, metrics and console"): who may
//! read and who may change, from the method, the Host header and the bearer token. Pure.

/// A refused request: the HTTP status, AWS's error type and a message naming the rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub kind: &'static str,
    pub message: String,
}

fn refuse(status: u16, kind: &'static str, message: impl Into<String>) -> Refusal {
    Refusal {
        status,
        kind,
        message: message.into(),
    }
}

/// The rules of one listener.
#[derive(Clone)]
pub struct Gate {
    /// The listener is on a loopback address: reads need no token, Host is checked.
    pub loopback: bool,
    /// `[http] token_file`'s token; `None`: no change is accepted over HTTP.
    pub token: Option<String>,
}

impl Gate {
    /// Whether the request may go on, and whether it carried the valid token (`may_change`).
    /// `host`: the Host header; `authorization`: the Authorization header.
    pub fn admit(
        &self,
        method: &str,
        host: Option<&str>,
        authorization: Option<&str>,
    ) -> Result<bool, Refusal> {
        let change = match method {
            "GET" | "HEAD" => false,
            "POST" | "PUT" | "PATCH" | "DELETE" => true,
            other => {
                return Err(refuse(
                    405,
                    "MethodNotAllowed",
                    format!("method {other} is not served (GET, HEAD, POST only)"),
                ));
            }
        };
        if self.loopback && !host.is_some_and(loopback_host) {
            return Err(refuse(
                403,
                "AccessDeniedException",
                "the Host header must name a loopback host (localhost, 127.0.0.1, [::1]) on a loopback listener",
            ));
        }
        let presented = match authorization {
            None => None,
            Some(h) => match h.strip_prefix("Bearer ") {
                Some(t) => Some(t.trim()),
                None => {
                    return Err(refuse(
                        401,
                        "UnauthorizedException",
                        "the Authorization header must be \"Bearer <token>\"",
                    ));
                }
            },
        };
        let valid = match (presented, &self.token) {
            (None, _) => false,
            (Some(_), None) => {
                return Err(refuse(
                    401,
                    "UnauthorizedException",
                    "a token was presented but [http] token_file is not set: no token is valid",
                ));
            }
            (Some(p), Some(t)) if same(p.as_bytes(), t.as_bytes()) => true,
            (Some(_), Some(_)) => {
                return Err(refuse(401, "UnauthorizedException", "wrong bearer token"));
            }
        };
        if change && self.token.is_none() {
            return Err(refuse(
                403,
                "AccessDeniedException",
                "changes are refused: [http] token_file is not set",
            ));
        }
        if !valid && (change || !self.loopback) {
            return Err(refuse(
                401,
                "UnauthorizedException",
                if change {
                    "changes need Authorization: Bearer <token>"
                } else {
                    "this listener is not on loopback: every request needs Authorization: Bearer <token>"
                },
            ));
        }
        Ok(valid)
    }
}

/// A Host header naming this machine's loopback: `localhost`, `127.x.x.x` or `[::1]`, with
/// or without a port.
fn loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Compares in time independent of where the first difference is.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "0123456789abcdef0123";

    fn gate(loopback: bool, token: bool) -> Gate {
        Gate {
            loopback,
            token: token.then(|| TOKEN.to_string()),
        }
    }

    fn status(r: Result<bool, Refusal>) -> u16 {
        r.map_or_else(|e| e.status, |_| 200)
    }

    #[test]
    fn loopback_reads_need_no_token_but_a_loopback_host() {
        let g = gate(true, false);
        assert_eq!(g.admit("GET", Some("127.0.0.1:9440"), None), Ok(false));
        assert_eq!(g.admit("GET", Some("localhost"), None), Ok(false));
        assert_eq!(g.admit("GET", Some("[::1]:9440"), None), Ok(false));
        assert_eq!(status(g.admit("GET", Some("evil.example:9440"), None)), 403);
        assert_eq!(
            status(g.admit("GET", Some("127.0.0.1.evil.example"), None)),
            403
        );
        assert_eq!(status(g.admit("GET", None, None)), 403);
    }

    #[test]
    fn changes_always_need_the_token() {
        let bearer = format!("Bearer {TOKEN}");
        let h = Some("localhost:9440");
        assert_eq!(status(gate(true, false).admit("POST", h, None)), 403);
        let g = gate(true, true);
        assert_eq!(status(g.admit("POST", h, None)), 401);
        assert_eq!(status(g.admit("POST", h, Some("Bearer nope"))), 401);
        assert_eq!(status(g.admit("POST", h, Some(TOKEN))), 401);
        assert_eq!(g.admit("POST", h, Some(&bearer)), Ok(true));
        assert_eq!(status(g.admit("OPTIONS", h, Some(&bearer))), 405);
    }

    #[test]
    fn elsewhere_every_request_needs_the_token_and_any_host_goes() {
        let g = gate(false, true);
        let bearer = format!("Bearer {TOKEN}");
        assert_eq!(status(g.admit("GET", Some("fleet.example"), None)), 401);
        assert_eq!(
            status(g.admit("GET", Some("fleet.example"), Some("Bearer x"))),
            401
        );
        assert_eq!(
            g.admit("GET", Some("fleet.example"), Some(&bearer)),
            Ok(true)
        );
    }
}
