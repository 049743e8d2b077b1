//! scripts/bench-fleet's two setups and what it reads of their processes: single-node
//! SQLite (one mosquitto, one detect-fleet) or cluster (one mosquitto, three nats-server
//! with replicas 3, two detect-fleet), and CPU time per process from /proc/PID/stat.

use std::path::Path;
use std::time::Duration;

use detect_testkit::broker::Broker;
use detect_testkit::certs::Pki;
use detect_testkit::eventually;
use detect_testkit::fleet::Fleet;
use detect_testkit::nats_cluster::{NatsCluster, USER};

/// Everything one run started; dropped at its end (processes killed).
pub struct Setup {
    pub broker: Broker,
    pub fleets: Vec<Fleet>,
    pub nats: Option<NatsCluster>,
}

/// mosquitto as the bench wants it: room for a burst in the service's persistent session,
/// and no log line per message (the test harness logs everything; production does not).
pub fn broker(pki: &Pki) -> Broker {
    let mut broker = Broker::start(pki);
    broker.stop();
    let conf = std::fs::read_to_string(broker.conf()).unwrap();
    let mut conf = conf.replace("log_type all\n", "log_type error\n");
    conf.push_str("max_queued_messages 0\nmax_inflight_messages 100\n");
    std::fs::write(broker.conf(), conf).unwrap();
    broker.start_again();
    broker
}

impl Setup {
    /// Starts the broker and `instances` detect-fleet (0: one on SQLite; else that many
    /// over a three-node nats-server cluster), each subscribed; cluster instances each own
    /// partitions and have had time to share them out.
    pub async fn start(
        work: &Path,
        pki: &Pki,
        profile: &serde_json::Value,
        instances: usize,
    ) -> Setup {
        let broker = broker(pki);
        let attach = [("bench-10", "all-things")];
        let profiles = std::slice::from_ref(profile);
        if instances == 0 {
            let mut fleet = Fleet::configure(work, pki, &broker, profiles, &attach, 1);
            fleet.start_subscribed().await;
            let fleets = vec![fleet];
            return Setup {
                broker,
                fleets,
                nats: None,
            };
        }
        let nats = NatsCluster::start(work);
        let password = work.join("nats-password");
        std::fs::write(&password, USER.1).unwrap();
        let mut fleets = Vec::new();
        for i in 0..instances {
            let dir = work.join(format!("fleet-{i}"));
            let f = Fleet::configure(&dir, pki, &broker, profiles, &attach, 1);
            f.append_config(&nats.fleet_tables(&password, &format!("i{i}")));
            fleets.push(f);
        }
        for f in &mut fleets {
            f.start_subscribed().await;
        }
        let claimed = || fleets.iter().all(|f| f.log().contains(": Claimed"));
        assert!(
            eventually(Duration::from_secs(30), claimed).await,
            "not every instance claimed partitions"
        );
        // Joining instances release extras within a hello period (2 s) or two.
        tokio::time::sleep(Duration::from_secs(5)).await;
        Setup {
            broker,
            fleets,
            nats: Some(nats),
        }
    }

    /// Cluster mode: (stream, messages stored so far) of every JetStream stream, its last
    /// sequence: each KV put and outbox append is one message, written on every replica.
    pub async fn stored(&self) -> Vec<(String, u64)> {
        let Some(nats) = &self.nats else {
            return Vec::new();
        };
        let opts = async_nats::ConnectOptions::with_user_and_password(USER.0.into(), USER.1.into());
        let Ok(client) = opts.connect(nats.url(0)).await else {
            return Vec::new();
        };
        let js = async_nats::jetstream::new(client);
        let mut out = Vec::new();
        let mut streams = js.streams();
        while let Some(Ok(info)) = futures_util::StreamExt::next(&mut streams).await {
            out.push((info.config.name.clone(), info.state.last_sequence));
        }
        out
    }

    /// (name, pid) of every process serving the reports.
    pub fn processes(&self) -> Vec<(String, u32)> {
        let mut out = vec![("mosquitto".to_string(), self.broker.pid().unwrap_or(0))];
        for (i, f) in self.fleets.iter().enumerate() {
            out.push((format!("detect-fleet {i}"), f.pid().unwrap_or(0)));
        }
        if let Some(nats) = &self.nats {
            for i in 0..3 {
                out.push((format!("nats-server {i}"), nats.pid(i).unwrap_or(0)));
            }
        }
        out.push(("bench (devices)".to_string(), std::process::id()));
        out
    }
}
