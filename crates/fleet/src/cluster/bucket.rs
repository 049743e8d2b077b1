//! Opens a JetStream KV bucket, creating its stream when missing, in a way nats-server 2.9
//! answers: async-nats 0.52's `create_key_value` cannot parse 2.9's account info.
//!
//! The stream follows the KV convention (stream `KV_<name>`, subjects `$KV.<name>.>`, one
//! value per key per `history`, rollups allowed, deletes denied, direct gets), so async-nats's
//! `get_key_value` and any NATS KV client read and write it as a bucket. `first_after` settles
//! concurrent compare-and-sets that 2.9 accepted both of.

use anyhow::Context as _;
use async_nats::jetstream::{self, kv, stream};

/// Instances starting together may find the bucket's stream being created or electing its
/// leader ("temporarily unavailable"): `open` tries again this long.
const OPEN_FOR: std::time::Duration = std::time::Duration::from_secs(30);

/// The bucket `name` with `replicas` copies keeping `history` values per key (1..=64),
/// retried with a jittered backoff (250 ms to 2 s) for `OPEN_FOR`.
pub async fn open(
    js: &jetstream::Context,
    name: &str,
    replicas: usize,
    history: i64,
) -> anyhow::Result<kv::Store> {
    let deadline = tokio::time::Instant::now() + OPEN_FOR;
    let seed = u64::from(std::process::id());
    let mut backoff = link::backoff::Backoff::new(
        std::time::Duration::from_millis(250),
        std::time::Duration::from_secs(2),
        seed,
    );
    loop {
        match open_once(js, name, replicas, history).await {
            Ok(store) => return Ok(store),
            Err(e) if tokio::time::Instant::now() < deadline => {
                tracing::info!("cluster: {e:#}; trying again");
                tokio::time::sleep(backoff.next_delay()).await;
            }
            Err(e) => return Err(e),
        }
    }
}

async fn open_once(
    js: &jetstream::Context,
    name: &str,
    replicas: usize,
    history: i64,
) -> anyhow::Result<kv::Store> {
    if let Ok(store) = js.get_key_value(name).await {
        return Ok(store);
    }
    let config = stream::Config {
        name: format!("KV_{name}"),
        subjects: vec![format!("$KV.{name}.>")],
        max_messages_per_subject: history.clamp(1, 64),
        num_replicas: replicas.max(1),
        discard: stream::DiscardPolicy::New,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        ..Default::default()
    };
    // Two instances may create it at once: the loser finds it with the same config.
    if let Err(e) = js.get_or_create_stream(config).await {
        tracing::debug!("creating the stream of bucket {name}: {e}; opening it instead");
    }
    js.get_key_value(name)
        .await
        .with_context(|| format!("opening KV bucket {name:?} (stream KV_{name})"))
}

/// Whether our write `new` of `key`, made with compare-and-set on `expected`, is the first
/// write of the key after `expected`. nats-server 2.9 may accept two concurrent writes
/// expecting the same revision on a replicated stream (nats-server#4320): the first in the
/// stream's order wins, so each writer asks the stream leader (not a direct get, which a
/// lagging replica may answer) for the key's first message from `expected + 1`. The leader has
/// applied `new`, hence everything before it. An unanswered question counts as a loss.
pub async fn first_after(kv: &kv::Store, key: &str, expected: u64, new: u64) -> bool {
    let subject = format!("$KV.{}.{key}", kv.name);
    let first = kv
        .stream
        .get_first_raw_message_by_subject(&subject, expected + 1)
        .await;
    match first {
        Ok(m) if m.sequence == new => true,
        Ok(m) => {
            tracing::info!(
                "cluster: {key}: our write {new} expecting {expected} came after write {} \
                 (concurrent compare-and-sets): not ours",
                m.sequence
            );
            false
        }
        Err(e) => {
            tracing::warn!("cluster: {key}: confirming write {new}: {e}");
            false
        }
    }
}
