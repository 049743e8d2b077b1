//! The HTTP JSON API shaped like AWS's Detect API (issue #21 item 2, docs/spec/detect-api.md):
//! one call, [`handle`], routes a decoded request to its list or change and answers AWS JSON.
//!
//! Framework-agnostic on purpose: the HTTP layer (`crate::http`) decodes the query, checks the
//! bearer token and calls, from a blocking thread with its own store handle,
//!
//! ```text
//! pub fn handle(store: &mut dyn Store, ctx: &Context, req: &Request) -> Response
//! ```
//!
//! `Request::path` is what follows `/api/v1` (e.g. `/active-violations`); `may_change` says a
//! valid bearer token came with it (changes need one, §1.3). Errors are AWS's shape (§1.2):
//! `{"__type", "message"}` and the type in `x-amzn-ErrorType`; a store failure is a 500 whose
//! message names no file. The CLI's `violations`, `things list` and `models` read the same
//! list functions ([`violations::active`], [`things::list`], [`profiles::models`]).

mod error;
pub mod metrics;
mod page;
pub mod profiles;
pub mod things;
pub mod violations;

use detect::profile::Profile;

pub use error::ApiError;

use crate::config::{Attach, Config};
use crate::store::Store;

/// One request, decoded by the HTTP layer.
pub struct Request<'a> {
    pub method: &'a str,
    /// After `/api/v1`, e.g. `/active-violations`; percent-decoded per segment by the caller
    /// or not at all (names hold no reserved characters, §1.1).
    pub path: &'a str,
    /// Decoded query parameters, in order.
    pub query: &'a [(String, String)],
    pub body: &'a [u8],
    /// A valid `Authorization: Bearer` token was presented: changes are allowed.
    pub may_change: bool,
}

/// The answer: status, extra headers, a JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn json(status: u16, value: &serde_json::Value) -> Response {
        Response {
            status,
            headers: vec![("content-type", "application/json".into())],
            body: serde_json::to_vec(value).unwrap_or_default(),
        }
    }
}

/// What the calls read besides the store: the profiles and attachments `run` loaded, and
/// the clock.
#[derive(Debug, Clone, Default)]
pub struct Context {
    pub profiles: Vec<Profile>,
    pub attach: Vec<Attach>,
    /// Epoch ms to use as now (tests); `None`: the system clock.
    pub now_ms: Option<u64>,
}

impl Context {
    /// Loads `[fleet] profiles_dir` as `run` does (warnings logged) and builds the context.
    pub fn new(config: &Config) -> anyhow::Result<Context> {
        Ok(Context::with_profiles(
            config,
            crate::cli::profiles(config)?,
        ))
    }

    /// From a loaded config and its profiles.
    pub fn with_profiles(config: &Config, profiles: Vec<Profile>) -> Context {
        Context {
            profiles,
            attach: config.attach.clone(),
            now_ms: None,
        }
    }

    pub fn now_ms(&self) -> u64 {
        self.now_ms.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64)
        })
    }
}

/// Answers one request (docs/spec/detect-api.md §2 lists the routes).
pub fn handle(store: &mut dyn Store, ctx: &Context, req: &Request) -> Response {
    match route(store, ctx, req) {
        Ok(value) => Response::json(200, &value),
        Err(e) => e.response(),
    }
}

fn route(
    store: &mut dyn Store,
    ctx: &Context,
    req: &Request,
) -> Result<serde_json::Value, ApiError> {
    let segments: Vec<&str> = req
        .path
        .trim_start_matches('/')
        .trim_end_matches('/')
        .split('/')
        .collect();
    let q = page::Params::new(req.query)?;
    let get = |r: Result<serde_json::Value, ApiError>| match req.method {
        "GET" | "HEAD" => r,
        _ => Err(ApiError::method(req.method, req.path)),
    };
    match segments.as_slice() {
        ["active-violations"] => get(violations::list_active(store, &q)),
        ["violation-events"] => get(violations::list_events(store, &q)),
        ["metric-values"] => get(metrics::list(store, &q)),
        ["violations", "verification-state", id] => {
            if req.method != "POST" {
                return Err(ApiError::method(req.method, req.path));
            }
            violations::put_verification(store, id, req.body, req.may_change)
        }
        ["security-profiles"] => get(profiles::list(ctx, &q)),
        ["security-profiles", name] => get(profiles::describe(store, ctx, name)),
        ["security-profiles", name, "targets"] => get(profiles::targets(ctx, name, &q)),
        ["things"] => get(things::list_json(store, &q)),
        ["things", name] => get(things::describe(store, ctx, name)),
        _ => Err(ApiError::not_found(format!(
            "no API call at {:?} (docs/spec/detect-api.md §2)",
            req.path
        ))),
    }
}

/// An error answer in AWS's shape (what the HTTP layer answers before a call is routed).
pub fn error(status: u16, kind: &'static str, message: &str) -> Response {
    ApiError {
        status,
        kind,
        message: message.to_string(),
    }
    .response()
}

/// Epoch milliseconds as AWS's JSON date: epoch seconds, fractional (§1.4).
pub fn seconds(ms: u64) -> serde_json::Value {
    if ms.is_multiple_of(1000) {
        serde_json::Value::from(ms / 1000)
    } else {
        serde_json::Value::from(ms as f64 / 1000.0)
    }
}

#[cfg(test)]
mod bench;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_metrics;
