//! The HTTP listener of `detect-fleet run` (issue #21): its own thread and runtime (the service
//! never waits on it), TLS, connection and request limits. Routing and handlers: `routes.rs`.

mod gate;
mod routes;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use crate::config::Config;
use crate::store::Store;
pub use gate::Gate;

/// Connections open at once; more wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 256;
/// Requests served at once; more are answered 503 (counted).
pub const MAX_REQUESTS: usize = 32;
/// Request bodies larger than this are refused (413).
pub const BODY_LIMIT: usize = 64 * 1024;
/// The request line and headers must arrive within this.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// A TLS handshake must finish within this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// One request (body read and answer) must finish within this, else 503.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// A connection is closed after this long whatever it does.
const CONNECTION_LIFETIME: Duration = Duration::from_secs(600);
/// Threads the store calls of requests run on (they share one store handle).
const BLOCKING_THREADS: usize = 4;

/// What the handlers share.
pub struct Shared {
    pub gate: Gate,
    /// The listener's own store handle (not the service's).
    pub store: Mutex<Box<dyn Store + Send>>,
    /// The gauges' store handle: their read of every thing never holds up a request.
    pub gauges: Mutex<Box<dyn Store + Send>>,
    pub api: crate::api::Context,
    pub requests: Semaphore,
    /// `[fleet] database` (store size) when the store is SQLite.
    pub database: Option<std::path::PathBuf>,
    pub min_interval_ms: u64,
    /// `[alerts] webhook_url` is set (its sink has a queue to count).
    pub webhook: bool,
}

/// Binds `[http] listen` and serves on a thread of its own until the process exits. Errors
/// (address in use, unreadable token or TLS files) stop `run` before it starts.
pub fn start(
    config: &Config,
    store: Box<dyn Store + Send>,
    gauges: Box<dyn Store + Send>,
) -> anyhow::Result<SocketAddr> {
    let http = &config.http;
    let addr = http.addr().map_err(anyhow::Error::msg)?;
    let token = match &http.token_file {
        Some(path) => Some(read_token(path)?),
        None => None,
    };
    let tls = match (&http.tls_cert_file, &http.tls_key_file) {
        (Some(cert), Some(key)) => Some(acceptor(cert, key)?),
        _ => None,
    };
    let listener = std::net::TcpListener::bind(addr)
        .with_context(|| format!("[http] listen {addr}: cannot bind"))?;
    listener
        .set_nonblocking(true)
        .context("[http] listener: non-blocking mode")?;
    let bound = listener.local_addr().context("[http] listener address")?;
    let sqlite = config.store.kind != crate::config_store::StoreKind::Nats;
    let shared = Arc::new(Shared {
        gate: Gate {
            loopback: addr.ip().is_loopback(),
            token,
        },
        store: Mutex::new(store),
        gauges: Mutex::new(gauges),
        api: crate::api::Context::new(config)?,
        requests: Semaphore::new(MAX_REQUESTS),
        database: sqlite.then(|| config.fleet.database.clone()),
        min_interval_ms: config.fleet.min_interval_secs.saturating_mul(1000),
        webhook: config.alerts.webhook_url.is_some(),
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(BLOCKING_THREADS)
        .build()
        .context("HTTP runtime")?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    std::thread::Builder::new()
        .name("detect-fleet-http".into())
        .spawn(move || {
            runtime.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::error!(error = %e, "HTTP listener not usable: nothing served");
                        return;
                    }
                };
                tokio::spawn(routes::refresh_gauges(shared.clone()));
                serve(listener, tls, routes::router(shared)).await
            })
        })
        .context("HTTP thread")?;
    if http.behind_proxy {
        tracing::warn!(listen = %bound, "[http] behind_proxy = true: plain HTTP on a non-loopback address; only safe behind a TLS-terminating reverse proxy");
    }
    tracing::info!(listen = %bound, "HTTP listening on {scheme}://{bound}");
    Ok(bound)
}

/// The token file's first line, at least 16 characters.
fn read_token(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("[http] token_file {}: cannot read", path.display()))?;
    let token = text.lines().next().unwrap_or("").trim().to_string();
    if token.len() < 16 || token.chars().any(|c| c.is_control() || c == ' ') {
        anyhow::bail!(
            "[http] token_file {}: the first line must be a token of at least 16 characters, no spaces",
            path.display()
        );
    }
    Ok(token)
}

fn acceptor(cert: &Path, key: &Path) -> anyhow::Result<TlsAcceptor> {
    let chain = link::tls::load_certs("[http] tls_cert_file", cert)?;
    let key_der = link::tls::load_key(key)?;
    let config = rustls::ServerConfig::builder_with_provider(link::tls::provider())
        .with_safe_default_protocol_versions()
        .context("[http] TLS versions")?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .with_context(|| {
            format!(
                "[http] tls_cert_file {} / tls_key_file {}: not a matching certificate and key",
                cert.display(),
                key.display()
            )
        })?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Accepts connections (at most `MAX_CONNECTIONS` at once) and serves each on a task.
async fn serve(listener: tokio::net::TcpListener, tls: Option<TlsAcceptor>, app: axum::Router) {
    let connections = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = connections.clone().acquire_owned().await else {
            return;
        };
        let (tcp, peer) = match listener.accept().await {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: wait rather than spin.
                tracing::warn!(error = %e, "HTTP accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let app = app.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _permit = permit;
            match tls {
                Some(tls) => match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(tcp)).await {
                    Ok(Ok(stream)) => connection(TokioIo::new(stream), app).await,
                    Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                },
                None => connection(TokioIo::new(tcp), app).await,
            }
        });
    }
}

async fn connection<I>(io: I, app: axum::Router)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    use tower_service::Service as _;
    let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        app.clone().call(req)
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(64 * 1024)
        .serve_connection(io, service);
    match tokio::time::timeout(CONNECTION_LIFETIME, conn).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::debug!(error = %e, "HTTP connection ended"),
        Err(_) => tracing::debug!("HTTP connection closed after its lifetime"),
    }
}
