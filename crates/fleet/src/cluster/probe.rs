//! `detect-fleet cluster-member` (hidden): takes part in the ownership of partitions only, and
//! prints its view as JSON lines on stdout; for the tests and for dry runs of a cluster.
//!
//! Lines: `{"t_ms":…,"owned":[[partition,epoch],…]}` every 200 ms, and
//! `{"t_ms":…,"change":"Claimed|Released|Lost|Expired","partition":…,"epoch":…}` per change,
//! and on SIGTERM `{"t_ms":…,"handed_back":N}` (null: not confirmed in time) before it exits.
//! Forwarded reports are answered with `{"judged_by":INSTANCE,"thing":…,"partition":…,
//! "epoch":…}`.
//! With `--ask THING` it only observes the leases, forwards one report per thing to its owner
//! and prints `{"thing":…,"answer":…}` (or `"error"`) per thing, then exits.

use std::time::Duration;

use anyhow::Context as _;
use async_nats::ServerAddr;
use bytes::Bytes;

use super::{Ownership, Settings, forward};

/// Connects to `servers` (failing over between them), with a user and password when given.
pub async fn connect(
    servers: &[String],
    login: Option<(&str, &str)>,
) -> anyhow::Result<async_nats::Client> {
    let addrs = servers
        .iter()
        .map(|s| {
            s.parse::<ServerAddr>()
                .with_context(|| format!("server {s:?}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let options = match login {
        Some((u, p)) => async_nats::ConnectOptions::with_user_and_password(u.into(), p.into()),
        None => async_nats::ConnectOptions::new(),
    };
    options
        .connection_timeout(Duration::from_secs(2))
        .request_timeout(Some(Duration::from_secs(2)))
        // A stopped (not dead) server is noticed after two missed pings, not two minutes.
        .ping_interval(Duration::from_secs(2))
        .connect(addrs)
        .await
        .with_context(|| format!("connecting to {}", servers.join(", ")))
}

fn now_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

/// Runs until killed or SIGTERM (which hands the leases back), or, asking, until each thing is answered or failed).
pub async fn run(
    servers: Vec<String>,
    login: Option<(String, String)>,
    mut settings: Settings,
    ask: Vec<String>,
) -> anyhow::Result<()> {
    let login = login.as_ref().map(|(u, p)| (u.as_str(), p.as_str()));
    let client = connect(&servers, login).await?;
    let bucket = settings.bucket.clone();
    if !ask.is_empty() {
        settings.observer = true;
        let ownership = super::spawn(client.clone(), settings).await?;
        for thing in ask {
            let report = forward::Report {
                thing: thing.clone(),
                topic: format!("$aws/things/{thing}/defender/metrics/json"),
                payload: Bytes::from_static(b"{}"),
            };
            // The bound on serving a killed instance's things again.
            let limit = Duration::from_secs(15);
            let line = match forward::forward(&client, &ownership, &bucket, report, limit).await {
                Ok(forward::Outcome::Answer(bytes)) => {
                    let answer: serde_json::Value = serde_json::from_slice(&bytes)
                        .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).into());
                    serde_json::json!({"thing": thing, "answer": answer})
                }
                Ok(forward::Outcome::Mine) => serde_json::json!({"thing": thing, "answer": "mine"}),
                Err(e) => serde_json::json!({"thing": thing, "error": format!("{e:#}")}),
            };
            println!("{line}");
        }
        return Ok(());
    }
    let ownership = super::spawn(client.clone(), settings).await?;
    let answering = ownership.clone();
    forward::serve(client, ownership.clone(), &bucket, move |report| {
        let ownership: Ownership = answering.clone();
        async move {
            let partition = ownership.partition(&report.thing);
            let answer = serde_json::json!({
                "judged_by": ownership.instance(),
                "thing": report.thing,
                "partition": partition,
                "epoch": ownership.epoch(partition),
            });
            Ok(Bytes::from(answer.to_string()))
        }
    })
    .await?;
    let mut changes = ownership.changes();
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("SIGTERM handler")?;
    loop {
        tokio::select! {
            _ = term.recv() => {
                let released = ownership.hand_back(Duration::from_secs(5)).await;
                println!("{}", serde_json::json!({"t_ms": now_ms(), "handed_back": released}));
                return Ok(());
            }
            _ = tick.tick() => {
                let owned: Vec<(u32, u64)> = ownership.owned().into_iter().collect();
                println!("{}", serde_json::json!({"t_ms": now_ms(), "owned": owned}));
            }
            change = changes.recv() => match change {
                Ok(c) => println!(
                    "{}",
                    serde_json::json!({
                        "t_ms": now_ms(),
                        "change": format!("{:?}", c.kind),
                        "partition": c.partition,
                        "epoch": c.epoch,
                    })
                ),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!("cluster-member: {n} changes not printed (lagging)");
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return Ok(()),
            }
        }
    }
}
