//! The in-process tests' agent: a state directory, a /proc tree whose counters and listeners
//! the test sets, a config, the `FakeBroker` every agent of the rig (restarts, reloads) uses,
//! and optionally a wall clock that follows tokio's paused clock (`simulate_clock`).

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::time::Instant;

use super::cycle::Agent;
use super::fake_broker::FakeBroker;
use crate::config::Config;

/// A state directory, a /proc tree whose counters and listeners the test sets, a config.
pub(super) struct Rig {
    pub(super) dir: tempfile::TempDir,
    pub(super) broker: FakeBroker,
    config: Config,
    profile: Option<String>,
}

pub(super) const THING: &str = "gw-1";

thread_local! {
    /// A simulated wall clock: epoch ms at a tokio instant (a test's runtime is its thread's).
    static CLOCK: Cell<Option<(Instant, u64)>> = const { Cell::new(None) };
}

/// The daemon's wall clock under test: the simulated one once `simulate_clock` set it on this
/// thread, the real one otherwise.
pub(super) fn wall_ms() -> u64 {
    match CLOCK.get() {
        Some((at, ms)) => ms + at.elapsed().as_millis() as u64,
        None => crate::state::epoch_ms(),
    }
}

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

    /// From now on this thread's daemon clock reads `epoch_ms` plus the tokio time elapsed
    /// since (with a paused clock: exactly what the test advanced).
    pub(super) fn simulate_clock(&self, epoch_ms: u64) {
        CLOCK.set(Some((Instant::now(), epoch_ms)));
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
        self.traffic(bytes_in, 500);
    }

    /// eth0 has received `bytes_in` and sent `bytes_out` bytes since boot.
    pub(super) fn traffic(&self, bytes_in: u64, bytes_out: u64) {
        let text = format!(
            "Inter-|   Receive |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n  \
             eth0: {bytes_in} 10 0 0 0 0 0 0 {bytes_out} 5 0 0 0 0 0 0\n"
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
