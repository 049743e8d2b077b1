//! The listener's routes: the gate and limits on every request, `/metrics`, `/api/v1/...` to
//! `crate::api::handle` (on a blocking thread, the listener's store handle), the rest to
//! `crate::console::asset`; and the gauges read from the store at a bounded interval.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};

use super::{BODY_LIMIT, REQUEST_TIMEOUT, Shared};
use crate::metrics::{self, Gauges};
use crate::store::{Filter, Sink, StoreError};

/// How often the gauges are read from the store.
const GAUGES_EVERY: Duration = Duration::from_secs(15);
/// Alerts waiting are counted up to this many per sink.
pub const WAITING_CAP: usize = 1000;

/// Whether the request carried the valid bearer token (set by `guard`).
#[derive(Clone, Copy)]
struct MayChange(bool);

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_text))
        .route("/api/v1", any(api))
        .route("/api/v1/{*rest}", any(api))
        .fallback(asset)
        .layer(middleware::from_fn_with_state(shared.clone(), guard))
        .with_state(shared)
}

/// An AWS-shaped error (`{"__type", "message"}`, header `x-amzn-ErrorType`).
pub fn aws_error(status: u16, kind: &'static str, message: &str) -> Response {
    to_response(crate::api::error(status, kind, message))
}

fn to_response(r: crate::api::Response) -> Response {
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut out = (status, r.body).into_response();
    let headers = out.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    for (name, value) in r.headers {
        if let (Ok(n), Ok(v)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            headers.insert(n, v);
        }
    }
    out
}

/// The gate, the concurrency bound and the request timeout, before any route; the same
/// protective headers on every answer.
async fn guard(State(s): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let mut out = gated(&s, req, next).await;
    let h = out.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    out
}

async fn gated(s: &Shared, mut req: Request, next: Next) -> Response {
    let admitted = {
        let text = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
        s.gate.admit(
            req.method().as_str(),
            text(header::HOST),
            text(header::AUTHORIZATION),
        )
    };
    match admitted {
        Ok(may_change) => {
            req.extensions_mut().insert(MayChange(may_change));
        }
        Err(r) => {
            metrics::global().refused(r.kind);
            let mut out = aws_error(r.status, r.kind, &r.message);
            if r.status == 401 {
                out.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            return out;
        }
    }
    let Ok(_permit) = s.requests.try_acquire() else {
        metrics::global().refused("busy");
        return aws_error(
            503,
            "ServiceUnavailableException",
            "too many requests at once; retry later",
        );
    };
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(req)).await {
        Ok(out) => out,
        Err(_) => {
            metrics::global().refused("timeout");
            aws_error(
                503,
                "ServiceUnavailableException",
                "the request took too long",
            )
        }
    }
}

async fn metrics_text() -> Response {
    let ct = "text/plain; version=0.0.4; charset=utf-8";
    ([(header::CONTENT_TYPE, ct)], metrics::global().render()).into_response()
}

async fn api(
    State(s): State<Arc<Shared>>,
    axum::Extension(MayChange(may_change)): axum::Extension<MayChange>,
    method: Method,
    uri: Uri,
    body: Body,
) -> Response {
    let path = uri.path().strip_prefix("/api/v1").unwrap_or("").to_string();
    let query = match Query::<Vec<(String, String)>>::try_from_uri(&uri) {
        Ok(Query(q)) => q,
        Err(e) => return aws_error(400, "InvalidRequestException", &format!("query: {e}")),
    };
    let Ok(body) = axum::body::to_bytes(body, BODY_LIMIT).await else {
        return aws_error(
            413,
            "InvalidRequestException",
            &format!("the body is larger than {BODY_LIMIT} bytes (or was cut off)"),
        );
    };
    let done = tokio::task::spawn_blocking(move || {
        let mut store = s.store.lock().unwrap_or_else(|e| e.into_inner());
        let req = crate::api::Request {
            method: method.as_str(),
            path: &path,
            query: &query,
            body: &body,
            may_change,
        };
        crate::api::handle(store.as_mut(), &s.api, &req)
    })
    .await;
    match done {
        Ok(r) => to_response(r),
        Err(e) => {
            tracing::error!(error = %e, "API call failed");
            aws_error(500, "InternalFailureException", "internal failure")
        }
    }
}

/// The console's assets (from the binary; no file is ever read for a request).
async fn asset(method: Method, uri: Uri) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return aws_error(405, "MethodNotAllowed", "the console is read with GET");
    }
    match crate::console::asset(uri.path()) {
        Some((content_type, bytes)) => (
            [
                (header::CONTENT_TYPE, content_type),
                // The pages load nothing but their own assets and talk only to /api/v1.
                (
                    header::CONTENT_SECURITY_POLICY,
                    crate::console::CONTENT_SECURITY_POLICY,
                ),
            ],
            bytes,
        )
            .into_response(),
        None => aws_error(404, "ResourceNotFoundException", "no such page"),
    }
}

/// Reads the gauges from the store every `GAUGES_EVERY` (a failure is logged, the last
/// values stay, with their timestamp).
pub async fn refresh_gauges(s: Arc<Shared>) {
    let mut every = tokio::time::interval(GAUGES_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let shared = s.clone();
        match tokio::task::spawn_blocking(move || read_gauges(&shared)).await {
            Ok(Ok(g)) => metrics::global().set_gauges(g),
            Ok(Err(e)) => tracing::warn!(error = %e, "metrics: gauges not read from the store"),
            Err(e) => tracing::warn!(error = %e, "metrics: gauge reader failed"),
        }
    }
}

fn read_gauges(s: &Shared) -> Result<Gauges, StoreError> {
    let started = std::time::Instant::now();
    let mut store = s.gauges.lock().unwrap_or_else(|e| e.into_inner());
    let now = crate::service::now_ms();
    let mut g = Gauges::default();
    for t in store.things()? {
        g.things_registered += u64::from(t.registered);
        let recent = t
            .last_report_ms
            .is_some_and(|ms| now.saturating_sub(ms) <= s.min_interval_ms.saturating_mul(2));
        g.things_reporting += u64::from(recent);
    }
    let active = Filter {
        active_only: true,
        thing: None,
        profile: None,
    };
    for v in store.violations(&active)? {
        let behavior = v.behavior["name"].as_str().unwrap_or("").to_string();
        *g.active
            .entry((v.security_profile_name, behavior))
            .or_default() += 1;
    }
    let mut sinks = vec![("mqtt", Sink::Mqtt)];
    if s.webhook {
        sinks.push(("webhook", Sink::Webhook));
    }
    for (name, sink) in sinks {
        let n = store.pending(sink, WAITING_CAP)?.len();
        g.alerts_waiting.insert(name, n as u64);
    }
    drop(store);
    g.store_bytes = s.database.as_ref().map(|db| {
        let size = |p: &std::path::Path| std::fs::metadata(p).map_or(0, |m| m.len());
        let mut wal = db.clone().into_os_string();
        wal.push("-wal");
        size(db) + size(std::path::Path::new(&wal))
    });
    g.refreshed_s = now as f64 / 1000.0;
    g.read_s = started.elapsed().as_secs_f64();
    Ok(g)
}
