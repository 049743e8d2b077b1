//! The three-node nats-server harness itself: a replicas-3 KV bucket keeps taking writes
//! through `kill -9` of its stream leader and SIGSTOP of another node, and every value is
//! intact, read through the restarted node alone.

use std::time::Duration;

use async_nats::ServerAddr;
use async_nats::jetstream::{self, kv};
use detect_testkit::nats_cluster::{NatsCluster, USER};

/// Connects to the given node URLs (the client fails over between them).
pub async fn connect(urls: &[String]) -> async_nats::Client {
    let addrs: Vec<ServerAddr> = urls.iter().map(|u| u.parse().unwrap()).collect();
    async_nats::ConnectOptions::with_user_and_password(USER.0.into(), USER.1.into())
        .connection_timeout(Duration::from_secs(2))
        .request_timeout(Some(Duration::from_secs(2)))
        .ping_interval(Duration::from_secs(1))
        .connect(addrs)
        .await
        .unwrap()
}

/// Creates (or opens) the replicas-3 KV bucket `name` keeping `history` values per key.
/// async-nats 0.52's `create_key_value` first asks for the account's info and cannot parse
/// nats-server 2.9's answer (it lacks `reserved_memory`), so the bucket's stream is created
/// here as the KV convention spells it (stream `KV_<name>`, subjects `$KV.<name>.>`).
pub async fn kv_bucket(js: &jetstream::Context, name: &str, history: i64) -> kv::Store {
    let config = jetstream::stream::Config {
        name: format!("KV_{name}"),
        subjects: vec![format!("$KV.{name}.>")],
        max_messages_per_subject: history,
        num_replicas: 3,
        discard: jetstream::stream::DiscardPolicy::New,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        ..Default::default()
    };
    js.get_or_create_stream(config).await.unwrap();
    js.get_key_value(name).await.unwrap()
}

/// How long a write or read waits for the cluster after a node's kill or pause. A replicated
/// stream elects a new leader in seconds, but on 2 cores shared with builds (CI) it once took
/// over 15 s: generous, yet bounded.
const ELECTION: Duration = Duration::from_secs(60);

/// Puts `key` = `value`, retrying (within ELECTION) while the bucket has no leader.
async fn put_retrying(store: &kv::Store, key: &str, value: &str) {
    let deadline = tokio::time::Instant::now() + ELECTION;
    loop {
        match store.put(key, value.to_owned().into()).await {
            Ok(_) => return,
            Err(e) if tokio::time::Instant::now() < deadline => {
                tracing::debug!("put {key}: {e}; retrying");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => panic!("put {key} failed for {ELECTION:?}: {e}"),
        }
    }
}

/// The last value of `subject` from the stream leader, retrying (within ELECTION) while the
/// cluster answers "temporarily unavailable" (a node that was just resumed rejoining).
async fn last_retrying(store: &kv::Store, subject: &str) -> Vec<u8> {
    let deadline = tokio::time::Instant::now() + ELECTION;
    loop {
        match store.stream.get_last_raw_message_by_subject(subject).await {
            Ok(m) => return m.payload.to_vec(),
            Err(e) if tokio::time::Instant::now() < deadline => {
                tracing::debug!("get {subject}: {e}; retrying");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => panic!("get {subject} failed for {ELECTION:?}: {e}"),
        }
    }
}

#[tokio::test]
async fn a_replicated_bucket_survives_kill_9_of_its_leader_and_a_paused_node() {
    detect_testkit::init_logs();
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = NatsCluster::start(dir.path());
    let client = connect(&cluster.urls()).await;
    let js = jetstream::new(client);
    let store = kv_bucket(&js, "harness", 1).await;
    for i in 0..50 {
        put_retrying(&store, &format!("k{i}"), &format!("before {i}")).await;
    }
    let status = store.status().await.unwrap();
    let leader = status.info.cluster.and_then(|c| c.leader).unwrap();
    let victim: usize = leader.trim_start_matches('n').parse().unwrap();
    cluster.kill(victim);
    for i in 50..100 {
        put_retrying(&store, &format!("k{i}"), &format!("after {i}")).await;
    }
    cluster.restart(victim);
    // SIGSTOP of a follower: writes go on (a client connected there leaves it after two
    // missed pings); SIGCONT, it catches up.
    let status = store.status().await.unwrap();
    let leader = status.info.cluster.and_then(|c| c.leader).unwrap();
    let leader: usize = leader.trim_start_matches('n').parse().unwrap();
    let paused = (0..3).find(|&i| i != leader && i != victim).unwrap();
    cluster.pause(paused, true);
    for i in 100..110 {
        put_retrying(&store, &format!("k{i}"), &format!("paused {i}")).await;
    }
    cluster.pause(paused, false);
    // Read back through the restarted node alone: it serves the bucket again, every value.
    let alone = jetstream::new(connect(&[cluster.url(victim)]).await);
    let again = alone.get_key_value("harness").await.unwrap();
    for i in 0..110 {
        let want = match i {
            0..50 => "before",
            50..100 => "after",
            _ => "paused",
        };
        // From the stream leader: a direct get may be answered by a replica still catching up.
        let subject = format!("$KV.harness.k{i}");
        let got = last_retrying(&again, &subject).await;
        assert_eq!(got, format!("{want} {i}").as_bytes(), "k{i}");
    }
}
