//! The in-process tests' MQTT session (`broker::Session` under cfg(test)): scripted replies,
//! a connection state the test sets, a record of what went out; and the `Rig` around an agent.
//! No socket, no broker process: the waits are tokio's, so a paused clock runs them at once.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::watch;
use tokio::time::{Instant, sleep, timeout};

use super::cycle::Agent;
use crate::config::Config;
use crate::publish::{
    Backoff, ConnState, MqttSettings, NotSent, Outcome, PublishError, Status, Topics,
};

/// What the backend does with the next report.
#[derive(Debug, Clone, Copy)]
pub(super) enum Reply {
    Accept,
    Reject(&'static str),
    /// PUBACK, then no verdict within the wait.
    Silent,
    /// PUBACK, no verdict within the wait, an "accepted" just after it.
    AcceptLate,
    /// The same with a "rejected".
    RejectLate,
}

/// One report as it reached the broker.
#[derive(Debug, Clone)]
pub(super) struct Received {
    pub(super) report: Value,
    /// The wait the agent gave it, and how long it took.
    pub(super) wait: Duration,
    pub(super) took: Duration,
}

impl Received {
    pub(super) fn bytes_in(&self) -> Option<u64> {
        self.report["metrics"]["network_stats"]["bytes_in"].as_u64()
    }
}

#[derive(Default)]
struct Inner {
    replies: VecDeque<Reply>,
    reports: Vec<Received>,
    alarms: Vec<Value>,
    late: Vec<(u64, Status)>,
}

#[derive(Clone)]
pub(super) struct FakeBroker {
    inner: Arc<Mutex<Inner>>,
    state: Arc<watch::Sender<ConnState>>,
    topics: Topics,
}

impl FakeBroker {
    pub(super) fn new(thing: &str) -> FakeBroker {
        let (state, _) = watch::channel(ConnState::Ready { verdicts: true });
        FakeBroker {
            inner: Arc::default(),
            state: Arc::new(state),
            topics: Topics::new(thing, "json"),
        }
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The broker goes away (`false`) or comes back (`true`).
    pub(super) fn up(&self, up: bool) {
        self.state.send_replace(if up {
            ConnState::Ready { verdicts: true }
        } else {
            ConnState::Connecting { attempt: 1 }
        });
    }

    /// The replies to the next reports, in order (then `Accept`).
    pub(super) fn script(&self, replies: &[Reply]) {
        self.inner().replies.extend(replies);
    }

    pub(super) fn reports(&self) -> Vec<Received> {
        self.inner().reports.clone()
    }

    /// The alarm events the broker acknowledged, in order.
    pub(super) fn alarms(&self) -> Vec<Value> {
        self.inner().alarms.clone()
    }

    /// Waits at most `wait` for a ready connection.
    async fn connected(&self, wait: Duration) -> bool {
        let mut state = self.state.subscribe();
        let ready = state.wait_for(|s| matches!(s, ConnState::Ready { .. }));
        matches!(timeout(wait, ready).await, Ok(Ok(_)))
    }
}

/// The methods of `Publisher` the daemon calls, with their signatures.
impl FakeBroker {
    /// A fresh broker, up, every report accepted (`Rig::agent` swaps in the rig's own).
    pub(crate) fn start(
        settings: MqttSettings,
        _backoff: Backoff,
        _state_dir: &Path,
    ) -> Result<FakeBroker, PublishError> {
        let mut fake = FakeBroker::new(&settings.thing_name);
        fake.topics = Topics::new(&settings.thing_name, &settings.format_segment);
        Ok(fake)
    }

    pub(crate) fn state(&self) -> watch::Receiver<ConnState> {
        self.state.subscribe()
    }

    pub(crate) fn topics(&self) -> &Topics {
        &self.topics
    }

    pub(crate) fn late_verdicts(&self) -> Vec<(u64, Status)> {
        std::mem::take(&mut self.inner().late)
    }

    pub(crate) async fn shutdown(self, _within: Duration) {}

    pub(crate) async fn publish(
        &self,
        report_id: u64,
        payload: Vec<u8>,
        wait: Duration,
    ) -> Outcome {
        let start = Instant::now();
        if !self.connected(wait).await {
            return Outcome::NotDelivered("not connected".into());
        }
        let reply = self.inner().replies.pop_front().unwrap_or(Reply::Accept);
        let outcome = match reply {
            Reply::Accept => Outcome::Accepted,
            Reply::Reject(code) => Outcome::Rejected {
                code: code.into(),
                message: None,
            },
            Reply::Silent | Reply::AcceptLate | Reply::RejectLate => {
                sleep(wait.saturating_sub(start.elapsed())).await;
                Outcome::Acked
            }
        };
        let mut inner = self.inner();
        match reply {
            Reply::AcceptLate => inner.late.push((report_id, Status::Accepted)),
            Reply::RejectLate => inner.late.push((report_id, Status::Rejected)),
            _ => {}
        }
        inner.reports.push(Received {
            report: serde_json::from_slice(&payload).unwrap_or_default(),
            wait,
            took: start.elapsed(),
        });
        outcome
    }

    pub(crate) async fn send(
        &self,
        _topic: &str,
        payload: Vec<u8>,
        wait: Duration,
    ) -> Result<(), NotSent> {
        if !self.connected(wait).await {
            return Err(NotSent("not connected".into()));
        }
        let event = serde_json::from_slice(&payload).unwrap_or_default();
        self.inner().alarms.push(event);
        Ok(())
    }
}

/// A state directory, a /proc tree whose counters and listeners the test sets, a config.
pub(super) struct Rig {
    pub(super) dir: tempfile::TempDir,
    pub(super) broker: FakeBroker,
    config: Config,
    profile: Option<String>,
}

pub(super) const THING: &str = "gw-1";

impl Rig {
    /// `report` is the body of the config's `[report]` table (format json is set).
    pub(super) fn new(report: &str) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/proc-fallback");
        copy_tree(&fixture, &dir.path().join("root"));
        let text = format!(
            "thing_name = \"{THING}\"\n[mqtt]\nendpoint = \"localhost\"\nca_file = \"/ca.pem\"\n\
             cert_file = \"/c.pem\"\nkey_file = \"/k.pem\"\n[report]\nformat = \"json\"\n{report}\n\
             [state]\ndir = \"{}\"\n",
            dir.path().join("state").display()
        );
        let config = Config::parse(&text, Path::new("agent.toml")).unwrap();
        let rig = Rig {
            dir,
            broker: FakeBroker::new(THING),
            config,
            profile: None,
        };
        rig.counters(0);
        rig
    }

    /// With a security profile (JSON text).
    pub(super) fn with_profile(mut self, profile: &str) -> Rig {
        self.profile = Some(profile.to_string());
        self
    }

    /// A new agent on the rig's state directory (a start, or a restart).
    pub(super) fn agent(&self) -> Agent {
        self.start(None)
    }

    /// What a SIGHUP does: the old agent hands its in-memory state to the next.
    pub(super) fn reload(&self, mut old: Agent) -> Agent {
        old.save_state();
        self.start(Some(old.carry()))
    }

    fn start(&self, carried: Option<super::settled::Carried>) -> Agent {
        let profiles = self
            .profile
            .iter()
            .map(|t| {
                crate::detect::profile::parse(t, Path::new("p.json"))
                    .unwrap()
                    .0
            })
            .collect();
        let mut agent = Agent::start(&self.config, profiles, carried).unwrap();
        agent.publisher = self.broker.clone();
        agent.collect.root = self.root();
        agent
    }

    /// A file of the state directory ("" when missing).
    pub(super) fn state_file(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join("state").join(name)).unwrap_or_default()
    }

    pub(super) fn interval(&self) -> Duration {
        Duration::from_secs(self.config.report.interval_secs)
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    /// eth0 has received `bytes_in` bytes since boot (nothing else moves).
    pub(super) fn counters(&self, bytes_in: u64) {
        let text = format!(
            "Inter-|   Receive |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n  \
             eth0: {bytes_in} 10 0 0 0 0 0 0 500 5 0 0 0 0 0 0\n"
        );
        std::fs::write(self.root().join("proc/net/dev"), text).unwrap();
    }

    /// Whether something listens on TCP port 23.
    pub(super) fn telnet(&self, listening: bool) {
        let path = self.root().join("proc/net/tcp");
        let text = std::fs::read_to_string(&path).unwrap();
        let mut lines: Vec<&str> = text.lines().filter(|l| !l.contains(":0017 ")).collect();
        let row = "  99: 00000000:0017 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 29999 1 0000000000000000 100 0 0 10 0";
        if listening {
            lines.push(row);
        }
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    }
}

/// One cycle, its next slot one interval away (as `serve` runs it at a slot).
pub(super) async fn cycle(agent: &mut Agent, interval: Duration) {
    agent.cycle(Instant::now() + interval).await;
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}
