//! The AWS-shaped HTTP JSON API under `/api/v1/` (issue #21 item 2): a placeholder until the
//! `api` branch lands; it answers every call with AWS's ResourceNotFoundException.
//!
//! The HTTP layer (`crate::http`) calls `handle` from a blocking thread with its own store
//! handle, once per request, after the safety gate (`may_change`: the bearer token was valid).

use crate::config::Config;
use crate::store::Store;

/// One request, framework-agnostic.
#[allow(dead_code, reason = "read by the api branch")]
pub struct Request<'a> {
    pub method: &'a str,
    /// After `/api/v1`, e.g. `/active-violations`.
    pub path: &'a str,
    /// Decoded query parameters, in order.
    pub query: &'a [(String, String)],
    pub body: &'a [u8],
    /// A valid bearer token was presented (changes are allowed).
    pub may_change: bool,
}

pub struct Response {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    /// JSON.
    pub body: Vec<u8>,
}

/// What the API reads besides the store (built once by `run`).
pub struct Context {
    #[allow(dead_code, reason = "read by the api branch")]
    config: Config,
}

impl Context {
    pub fn new(config: &Config) -> anyhow::Result<Context> {
        Ok(Context {
            config: config.clone(),
        })
    }
}

/// An AWS-shaped error: `{"__type", "message"}` and the `x-amzn-ErrorType` header.
pub fn error(status: u16, kind: &'static str, message: &str) -> Response {
    let body = serde_json::json!({"__type": kind, "message": message});
    Response {
        status,
        headers: vec![("x-amzn-ErrorType", kind.to_string())],
        body: body.to_string().into_bytes(),
    }
}

pub fn handle(_store: &mut dyn Store, _ctx: &Context, req: &Request) -> Response {
    error(
        404,
        "ResourceNotFoundException",
        &format!("no API call at {} {}", req.method, req.path),
    )
}
