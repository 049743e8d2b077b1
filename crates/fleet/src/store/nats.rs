//! The cluster store (issue #20 item 1): every trait kept in NATS JetStream (KV buckets and one
//! stream, names in [`names`], docs/fleet.md "Cluster store"); no local state but a small cache.
//!
//! The traits are synchronous and the service calls them inline, so the client lives on a
//! thread of its own with its own one-thread tokio runtime ([`Bridge`]): each trait method
//! spawns one future there and waits for its result on a channel, at most `timeout` (the
//! service blocks on SQLite the same way). Records and answers are in `nats_records.rs`, the
//! relay of a commit's effects in `nats_relay.rs`, the other traits in `nats_rest.rs`,
//! pruning in `nats_prune.rs`, key encoding and scans in `nats_kv.rs`.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, kv, stream};

use super::StoreError;
use super::nats_kv::Stored;

/// Every bucket and the stream, as created (replicas from `[store] replicas`).
pub mod names {
    /// Per-thing records (key: the thing name, encoded), compare-and-set by revision.
    pub const RECORDS: &str = "detect-fleet-records";
    /// Stored answers (key: `{thing}.{reportId}`).
    pub const ANSWERS: &str = "detect-fleet-answers";
    /// Registered things and their groups (key: thing).
    pub const REGISTRY: &str = "detect-fleet-registry";
    /// Each thing's last rejected report (key: thing).
    pub const REJECTIONS: &str = "detect-fleet-rejections";
    /// Violations with history (key: violationId).
    pub const VIOLATIONS: &str = "detect-fleet-violations";
    /// Population samples (key: `{profile}.{behavior}.{windowStartMs}.{thing}`).
    pub const SAMPLES: &str = "detect-fleet-samples";
    /// Outbox cursors per sink (`sink.mqtt`, `sink.webhook`) and broker-source cursors
    /// (`source.{name}`).
    pub const CURSORS: &str = "detect-fleet-cursors";
    /// The alert outbox: one message per event on `detect-fleet.outbox.{eventKey}`.
    pub const OUTBOX: &str = "DETECT_FLEET_OUTBOX";
    pub const OUTBOX_SUBJECT: &str = "detect-fleet.outbox";
}

/// How to reach the cluster (`[store] kind = "nats"`, secrets already read from their files).
#[derive(Debug, Clone)]
pub struct Options {
    pub servers: Vec<String>,
    pub auth: Auth,
    /// CA of the servers' certificates (PEM); TLS is required when set.
    pub ca_file: Option<PathBuf>,
    /// Client certificate and key (PEM) for TLS client authentication.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// JetStream replicas of every bucket and the stream (1 on a single server).
    pub replicas: usize,
    /// The longest any store call waits.
    pub timeout: Duration,
}

#[derive(Debug, Clone)]
pub enum Auth {
    None,
    UserPassword(String, String),
    CredsFile(PathBuf),
    Token(String),
}

/// The buckets and the stream: cheap clones, used from the bridge's runtime.
#[derive(Clone)]
pub(super) struct Js {
    pub records: kv::Store,
    pub answers: kv::Store,
    pub registry: kv::Store,
    pub rejections: kv::Store,
    pub violations: kv::Store,
    pub samples: kv::Store,
    pub cursors: kv::Store,
    pub outbox: stream::Stream,
    pub context: jetstream::Context,
    pub client: async_nats::Client,
}

/// One handle on the cluster; several handles (or processes) share its state.
pub struct Nats {
    pub(super) bridge: Arc<Bridge>,
    pub(super) js: Js,
    /// What this handle last loaded or committed per thing: (revision, value). Lets a commit
    /// skip re-reading the record; cleared when it holds `CACHE_LIMIT` things.
    pub(super) cache: HashMap<String, (u64, Stored)>,
    /// The record `answer` just read (thing, revision, value): the judge's `load` of the
    /// same thing right after takes it instead of asking again.
    pub(super) fresh: Option<(String, u64, Stored)>,
    /// Cluster mode: whether this instance may commit a thing now (it holds the partition's
    /// lease and trusts it), asked right before each commit (docs/fleet.md "Fencing"). Set,
    /// it also makes `cache` the truth for owned things: only their owner writes them.
    pub(super) fence: Option<Fence>,
    /// The latest write in flight per thing (`nats_pipeline.rs`), awaited by `sync`.
    pub(super) inflight: HashMap<String, super::nats_pipeline::Task>,
    /// A write that failed while a read awaited it, reported by the next `sync`.
    pub(super) failed: Option<StoreError>,
    /// When cached records of things owned elsewhere were last dropped.
    pub(super) purged: std::time::Instant,
    /// Records dropped from a full cache, counted for the log.
    pub(super) evicted: u64,
    /// The registry as last read, with its stream's last sequence then (`registered`).
    pub(super) registered: Option<(u64, Registered)>,
}

/// Registered things and their groups.
pub(super) type Registered = std::collections::BTreeMap<String, std::collections::BTreeSet<String>>;

/// `owns(thing)` of the cluster's ownership view.
pub type Fence = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// Records kept per handle (cluster mode: the owned things; tens of KiB each in memory with a
/// 10-behavior profile, docs/fleet.md "Cluster store"). One more evicts
/// another (counted), whose next load then reads the cluster.
pub(super) const CACHE_LIMIT: usize = 20_000;

/// A thread running a one-thread tokio runtime until the bridge is dropped.
pub(super) struct Bridge {
    handle: tokio::runtime::Handle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    pub timeout: Duration,
}

impl Bridge {
    fn start(timeout: Duration) -> Result<Bridge, StoreError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| backend("tokio runtime", e))?;
        let handle = rt.handle().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("nats-store".into())
            .spawn(move || {
                rt.block_on(async {
                    let _ = stopped.await;
                })
            })
            .map_err(|e| backend("nats-store thread", e))?;
        Ok(Bridge {
            handle,
            stop: Some(stop),
            thread: Some(thread),
            timeout,
        })
    }

    /// Runs `fut` on the bridge and waits for it, at most the timeout; `what` names the
    /// bucket/key in the error.
    pub fn run<T, F>(&self, what: &str, fut: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        self.run_within(what, self.timeout, fut)
    }

    /// Starts `fut` on the bridge without waiting for it (the writes in flight).
    pub fn spawn<T, F>(&self, fut: F) -> tokio::task::JoinHandle<T>
    where
        T: Send + 'static,
        F: Future<Output = T> + Send + 'static,
    {
        self.handle.spawn(fut)
    }

    /// `run` with its own bound (pruning reads whole buckets).
    pub fn run_within<T, F>(&self, what: &str, timeout: Duration, fut: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.handle.spawn(async move {
            let out = tokio::time::timeout(timeout, fut).await;
            let _ = tx.send(out);
        });
        match rx.recv_timeout(timeout + Duration::from_secs(1)) {
            Ok(Ok(result)) => result,
            Ok(Err(_)) | Err(_) => Err(backend(
                what,
                format!("no answer from NATS within {timeout:?}"),
            )),
        }
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A NATS error naming what was touched (`bucket detect-fleet-records key gw-1`).
pub(super) fn backend(
    what: &str,
    source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
) -> StoreError {
    StoreError::Backend {
        path: format!("nats {what}"),
        source: source.into(),
    }
}

impl Nats {
    /// Connects and creates (or opens) every bucket and the stream.
    pub fn open(opts: &Options) -> Result<Nats, StoreError> {
        let bridge = Bridge::start(opts.timeout)?;
        let o = opts.clone();
        let servers = opts.servers.join(", ");
        let js = bridge.run(&format!("servers {servers}"), connect(o))?;
        Ok(Nats {
            bridge: Arc::new(bridge),
            js,
            cache: HashMap::new(),
            fresh: None,
            fence: None,
            inflight: HashMap::new(),
            failed: None,
            purged: std::time::Instant::now(),
            evicted: 0,
            registered: None,
        })
    }

    /// The client the store talks through (cluster mode shares it for leases and forwards).
    pub fn client(&self) -> async_nats::Client {
        self.js.client.clone()
    }

    /// From now on a commit of a thing `fence` refuses fails with `Conflict`, writing nothing.
    pub fn set_fence(&mut self, fence: Fence) {
        self.fence = Some(fence);
    }
}

async fn connect(o: Options) -> Result<Js, StoreError> {
    let servers = o.servers.join(", ");
    let what = format!("servers {servers}");
    let mut opts = match &o.auth {
        Auth::None => async_nats::ConnectOptions::new(),
        Auth::UserPassword(u, p) => {
            async_nats::ConnectOptions::with_user_and_password(u.clone(), p.clone())
        }
        Auth::Token(t) => async_nats::ConnectOptions::with_token(t.clone()),
        Auth::CredsFile(path) => async_nats::ConnectOptions::with_credentials_file(path)
            .await
            .map_err(|e| backend(&format!("creds_file {}", path.display()), e))?,
    };
    if let Some(ca) = &o.ca_file {
        opts = opts.add_root_certificates(ca.clone()).require_tls(true);
    }
    if let Some((cert, key)) = &o.client_cert {
        opts = opts.add_client_certificate(cert.clone(), key.clone());
    }
    let addrs = o
        .servers
        .iter()
        .map(|s| {
            s.parse::<async_nats::ServerAddr>()
                .map_err(|e| backend(&format!("server {s:?}"), e))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let client = opts
        .name("detect-fleet-store")
        .connection_timeout(o.timeout)
        .request_timeout(Some(o.timeout))
        .connect(addrs.as_slice())
        .await
        .map_err(|e| backend(&what, e))?;
    let context = jetstream::new(client.clone());
    let bucket = |name: &'static str| {
        let context = context.clone();
        let replicas = o.replicas;
        async move {
            // The stream a KV bucket is (as async-nats's `create_key_value` makes it, which
            // first asks for the account info in a shape nats-server 2.9 does not answer),
            // but without direct gets: those are answered by any replica, which may not have
            // the last write yet; reads through the stream's leader see every write acked.
            let config = stream::Config {
                name: format!("KV_{name}"),
                subjects: vec![format!("$KV.{name}.>")],
                max_messages_per_subject: 1,
                num_replicas: replicas,
                storage: stream::StorageType::File,
                allow_rollup: true,
                deny_delete: true,
                allow_direct: false,
                discard: stream::DiscardPolicy::New,
                ..Default::default()
            };
            let what = format!("bucket {name}");
            context
                .get_or_create_stream(config)
                .await
                .map_err(|e| backend(&what, e))?;
            context
                .get_key_value(name)
                .await
                .map_err(|e| backend(&what, e))
        }
    };
    let outbox = context
        .get_or_create_stream(stream::Config {
            name: names::OUTBOX.to_string(),
            subjects: vec![format!("{}.*", names::OUTBOX_SUBJECT)],
            num_replicas: o.replicas,
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await
        .map_err(|e| backend(&format!("stream {}", names::OUTBOX), e))?;
    let js = Js {
        records: bucket(names::RECORDS).await?,
        answers: bucket(names::ANSWERS).await?,
        registry: bucket(names::REGISTRY).await?,
        rejections: bucket(names::REJECTIONS).await?,
        violations: bucket(names::VIOLATIONS).await?,
        samples: bucket(names::SAMPLES).await?,
        cursors: bucket(names::CURSORS).await?,
        outbox,
        context,
        client,
    };
    // The metric history's stream, made here with the others rather than on a first publish
    // (several writes in flight would each find it missing while it elects its leader).
    super::nats_history::stream(&js).await?;
    quick(js, o.timeout).await
}

/// How long one JetStream request of a store call waits for its answer. A request to a stream
/// that has no leader (its leader's nats-server was killed and the other replicas are still
/// electing one) is not answered at all: with the whole `timeout_secs` per request, one call
/// held the service up past a lease. Failing after this makes the reports wait, kept, and
/// tried again with a backoff (docs/fleet.md "What each failure does").
pub(super) const REQUEST_WAIT: Duration = Duration::from_secs(2);

/// The same buckets and stream through a context whose requests wait at most `REQUEST_WAIT`
/// (creating them above may take longer on a busy cluster, so they were made with `timeout`).
async fn quick(made: Js, timeout: Duration) -> Result<Js, StoreError> {
    let mut context = made.context.clone();
    context.set_timeout(REQUEST_WAIT.min(timeout));
    let kv = |name: &'static str| {
        let context = context.clone();
        async move {
            let what = format!("bucket {name}");
            context
                .get_key_value(name)
                .await
                .map_err(|e| backend(&what, e))
        }
    };
    let outbox = context
        .get_stream(names::OUTBOX)
        .await
        .map_err(|e| backend(&format!("stream {}", names::OUTBOX), e))?;
    Ok(Js {
        records: kv(names::RECORDS).await?,
        answers: kv(names::ANSWERS).await?,
        registry: kv(names::REGISTRY).await?,
        rejections: kv(names::REJECTIONS).await?,
        violations: kv(names::VIOLATIONS).await?,
        samples: kv(names::SAMPLES).await?,
        cursors: kv(names::CURSORS).await?,
        outbox,
        context,
        client: made.client,
    })
}
