//! Issue #11 items 1–4: the sum of the network_stats of every report the backend accepted
//! equals, to the byte and the packet, the kernel's counters of a veth end in a network
//! namespace the test creates, across the faults that used to lose or double traffic.
//!
//! How the counts stay exact: the broker, the backend and the agent all run inside the
//! agent's namespace and speak MQTT over its own loopback, which the agent does not count
//! (`include_interfaces = ["dta"]`); the only traffic on the counted veth is what the test
//! sends from the peer namespace (IPv6 off, static neighbours: no ARP, no MLD). The kernel's
//! counters are read before the agent's first sample and compared once the agent has caught
//! up, then again a few intervals later (nothing counted twice afterwards). Root only: each
//! test says SKIPPED and passes when not root (CI runs as root).
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use detect_testkit::agent::{Agent, Setup, accepted_for, config, spawn_wrapped};
use detect_testkit::netns::{COUNT_VETH, NetPair, Stats, accepted_sum, minus};
use detect_testkit::{Backend, Broker, Pki, Received, eventually};

const INTERVAL: u64 = 1;

/// Everything one test runs, in the agent's namespace.
struct Rig {
    pki: Pki,
    broker: Broker,
    work: tempfile::TempDir,
    cfg: PathBuf,
    thing: String,
    /// The kernel's counters before the agent's first sample.
    before: Stats,
    /// What backends that are gone had recorded.
    gone: Vec<Vec<Received>>,
    /// Runs each agent (`spawn_wrapped`); empty = directly.
    wrapper: Vec<String>,
}

impl Rig {
    /// Broker, backend and agent up, the first report accepted (and with it the fact that
    /// this backend answers).
    async fn start(net: &NetPair) -> (Rig, Backend, Agent) {
        Rig::start_in(net, None, Vec::new()).await
    }

    /// Like `start`, with the state directory a symlink to `state` and each agent run
    /// through `wrapper`.
    async fn start_in(
        net: &NetPair,
        state: Option<&Path>,
        wrapper: Vec<String>,
    ) -> (Rig, Backend, Agent) {
        net.enter();
        let pki = Pki::generate();
        let broker = Broker::start(&pki);
        let backend = Backend::start(&pki, broker.port).await;
        let work = tempfile::tempdir().unwrap();
        let cfg = config(&Setup {
            dir: work.path(),
            port: broker.port,
            ca: &pki.ca,
            id: &pki.client_ec,
            format: "json",
            interval: INTERVAL,
            extra: COUNT_VETH,
        });
        let thing = pki.client_ec.name.clone();
        if let Some(target) = state {
            std::os::unix::fs::symlink(target, work.path().join("state")).unwrap();
        }
        let before = net.counters();
        let rig = Rig {
            pki,
            broker,
            work,
            cfg,
            thing,
            before,
            gone: Vec::new(),
            wrapper,
        };
        let agent = rig.spawn();
        rig.wait_accepted(&backend, 1, &agent).await;
        // The agent has heard a verdict, not only the backend a report.
        let heard = eventually(Duration::from_secs(10), || {
            agent.log().contains("verdict=\"accepted\"")
        })
        .await;
        assert!(heard, "no verdict heard; log:\n{}", agent.log());
        (rig, backend, agent)
    }

    async fn wait_accepted(&self, backend: &Backend, n: usize, agent: &Agent) {
        let ok = eventually(Duration::from_secs(40), || {
            accepted_for(&backend.received(), &self.thing).len() >= n
        })
        .await;
        assert!(ok, "fewer than {n} accepted reports; log:\n{}", agent.log());
    }

    fn spawn(&self) -> Agent {
        let wrapper: Vec<&str> = self.wrapper.iter().map(String::as_str).collect();
        spawn_wrapped(&self.cfg, &[], &wrapper)
    }

    /// The backend goes away (its records are kept).
    fn drop_backend(&mut self, backend: Backend) {
        self.gone.push(backend.received());
        drop(backend);
    }

    /// Reports the broker received from the agent so far (its log).
    fn publishes(&self) -> usize {
        let needle = format!("Received PUBLISH from {}", self.thing);
        self.broker.log().matches(&needle).count()
    }

    async fn wait_publishes(&self, n: usize, agent: &Agent) {
        let ok = eventually(Duration::from_secs(60), || self.publishes() >= n).await;
        assert!(
            ok,
            "the broker got fewer than {n} reports; log:\n{}",
            agent.log()
        );
    }

    /// Waits until the accepted reports add up to the kernel's counters, then checks that
    /// they still do a few intervals later.
    async fn assert_exact(&self, net: &NetPair, backend: &Backend, agent: &Agent) {
        let sums = || {
            let mut all = self.gone.clone();
            all.push(backend.received());
            (
                accepted_sum(&all, &self.thing),
                minus(net.counters(), self.before),
            )
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let (mut reported, mut kernel) = sums();
        while reported != kernel && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(250)).await;
            (reported, kernel) = sums();
        }
        assert_eq!(
            reported,
            kernel,
            "accepted network_stats [bytes_in, bytes_out, packets_in, packets_out] != the kernel's; log:\n{}",
            agent.log()
        );
        assert!(
            kernel[0] > 1_000_000,
            "the test traffic did not cross the veth: {kernel:?}"
        );
        tokio::time::sleep(Duration::from_secs(4 * INTERVAL)).await;
        let (reported, kernel) = sums();
        assert_eq!(
            reported,
            kernel,
            "counted again later; log:\n{}",
            agent.log()
        );
    }

    /// A last megabyte, the exact check, and a clean stop; the agent's log.
    async fn finish(&self, net: &NetPair, backend: &Backend, agent: Agent) -> String {
        net.send(1_000_000).await;
        self.assert_exact(net, backend, &agent).await;
        let log = agent.log();
        let (status, _) = agent.stop().await;
        assert!(status.success(), "exit {status:?}; log:\n{log}");
        log
    }

    fn state_dir(&self) -> PathBuf {
        self.work.path().join("state")
    }
}

#[tokio::test]
async fn a_restart_inside_a_broker_outage_loses_no_traffic_when_the_backend_comes_back_late() {
    let Some(net) = NetPair::create() else { return };
    let (mut rig, backend, agent) = Rig::start(&net).await;
    rig.drop_backend(backend);
    rig.broker.stop();
    net.send(2_500_000).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (status, _) = agent.stop().await;
    assert!(status.success());
    let agent = rig.spawn();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    net.send(1_500_000).await;
    let seen = rig.publishes();
    rig.broker.start_again();
    // The restarted agent publishes (the broker acks) before the backend is back.
    rig.wait_publishes(seen + 2, &agent).await;
    let backend = Backend::start(&rig.pki, rig.broker.port).await;
    rig.finish(&net, &backend, agent).await;
}

#[tokio::test]
async fn a_backend_down_for_five_intervals_loses_no_traffic() {
    let Some(net) = NetPair::create() else { return };
    let (mut rig, backend, agent) = Rig::start(&net).await;
    rig.drop_backend(backend);
    let seen = rig.publishes();
    net.send(2_500_000).await;
    // Five reports (five intervals and more) acknowledged by the broker, none answered.
    rig.wait_publishes(seen + 6, &agent).await;
    let backend = Backend::start(&rig.pki, rig.broker.port).await;
    rig.finish(&net, &backend, agent).await;
}

#[tokio::test]
async fn a_retained_20_kib_message_on_the_verdict_topic_neither_drops_the_connection_nor_multiplies_traffic()
 {
    a_message_on_the_verdict_topic_neither_drops_the_connection_nor_multiplies_traffic(20 * 1024)
        .await;
}

/// Above the 129 KiB rumqttc takes: the bridge drops it.
#[tokio::test]
async fn a_retained_200_kib_message_on_the_verdict_topic_neither_drops_the_connection_nor_multiplies_traffic()
 {
    a_message_on_the_verdict_topic_neither_drops_the_connection_nor_multiplies_traffic(200 * 1024)
        .await;
}

async fn a_message_on_the_verdict_topic_neither_drops_the_connection_nor_multiplies_traffic(
    bytes: usize,
) {
    let Some(net) = NetPair::create() else { return };
    let (rig, backend, agent) = Rig::start(&net).await;
    let junk = rig.work.path().join("junk");
    std::fs::write(&junk, vec![b'x'; bytes]).unwrap();
    let topic = format!("$aws/things/{}/defender/metrics/json/accepted", rig.thing);
    rig.broker.retain(&rig.pki, &topic, &junk);
    net.send(2_500_000).await;
    tokio::time::sleep(Duration::from_secs(3 * INTERVAL)).await;
    let log = rig.finish(&net, &backend, agent).await;
    assert!(!log.contains("MQTT connection lost"), "{log}");
}

#[tokio::test]
async fn a_state_dir_that_takes_no_writes_counts_every_byte_once_across_reloads() {
    let Some(net) = NetPair::create() else { return };
    let (rig, backend, agent) = Rig::start(&net).await;
    let (status, _) = agent.stop().await;
    assert!(status.success());
    // The same state directory, read-only for this agent (a bind mount in its own mount
    // namespace): nothing it writes reaches the disk.
    let dir = rig.state_dir();
    let script = format!(
        "mount --bind {d} {d} && mount -o remount,bind,ro {d} {d} && exec \"$0\" \"$@\"",
        d = dir.display()
    );
    let agent = spawn_wrapped(&rig.cfg, &[], &["unshare", "-m", "sh", "-c", &script]);
    let n = accepted_for(&backend.received(), &rig.thing).len();
    rig.wait_accepted(&backend, n + 1, &agent).await;
    net.send(2_500_000).await;
    tokio::time::sleep(Duration::from_secs(3 * INTERVAL)).await;
    agent.signal(libc::SIGHUP);
    tokio::time::sleep(Duration::from_secs(3 * INTERVAL)).await;
    net.send(1_500_000).await;
    tokio::time::sleep(Duration::from_secs(3 * INTERVAL)).await;
    agent.signal(libc::SIGHUP);
    let log = rig.finish(&net, &backend, agent).await;
    assert!(log.contains("cannot persist the counter baseline"), "{log}");
    assert_eq!(log.matches("configuration reloaded").count(), 2, "{log}");
}

/// A 256 KiB tmpfs in a mount namespace of its own, held by a `sleep`; agents run in it
/// through `nsenter`, so it outlives their restarts. Gone on Drop.
struct SmallDisk {
    holder: Child,
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount() -> SmallDisk {
        use std::io::BufRead;
        let dir = tempfile::tempdir().unwrap();
        let mut holder = Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c"])
            .arg("mount -t tmpfs -o size=256k tmpfs \"$0\" && echo mounted && exec sleep 600")
            .arg(dir.path())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        let stdout = holder.stdout.take().unwrap();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "mounted", "tmpfs not mounted");
        SmallDisk { holder, dir }
    }

    fn wrapper(&self) -> Vec<String> {
        let pid = self.holder.id().to_string();
        ["nsenter", "-t", &pid, "-m", "--"]
            .map(String::from)
            .to_vec()
    }

    /// Fills the tmpfs to the last block.
    fn fill(&self) {
        let mut cmd = Command::new(&self.wrapper()[0]);
        let out = cmd
            .args(&self.wrapper()[1..])
            .args(["sh", "-c", "cat /dev/zero > \"$0/fill\"; df -k \"$0\""])
            .arg(self.dir.path())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let avail: u64 = text
            .lines()
            .nth(1)
            .and_then(|l| l.split_whitespace().nth(3))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("df: {text}"));
        assert_eq!(avail, 0, "{text}");
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

#[tokio::test]
async fn a_full_state_disk_counts_every_byte_once_across_a_restart() {
    let Some(net) = NetPair::create() else { return };
    let disk = SmallDisk::mount();
    let (rig, backend, agent) = Rig::start_in(&net, Some(disk.dir.path()), disk.wrapper()).await;
    disk.fill();
    net.send(2_500_000).await;
    tokio::time::sleep(Duration::from_secs(3 * INTERVAL)).await;
    let first = agent.log();
    let (status, _) = agent.stop().await;
    assert!(status.success());
    let agent = rig.spawn();
    net.send(1_500_000).await;
    tokio::time::sleep(Duration::from_secs(3 * INTERVAL)).await;
    let log = rig.finish(&net, &backend, agent).await;
    // The report id needs a new file each time; the baseline is rewritten in place.
    assert!(first.contains("cannot persist the report id"), "{first}");
    assert!(
        !first.contains("cannot persist the counter baseline"),
        "{first}"
    );
    assert!(
        !log.contains("cannot persist the counter baseline"),
        "{log}"
    );
}
