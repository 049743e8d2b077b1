//! Two network namespaces the test creates, joined by a veth pair, for traffic tests that
//! compare the agent's network_stats with the kernel's counters. Root only; removed on Drop.
//!
//! The test thread enters the agent's namespace (`enter`), so the broker, the backend, the
//! agent and anything else it starts live there and speak MQTT over that namespace's own
//! loopback: only the traffic the test makes (`send`, from the peer namespace) crosses the
//! counted veth end. IPv6 is off and the neighbours are static, so nothing else does either.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde_json::Value;

use super::Received;

/// The agent's side of the veth pair (inside the agent's namespace).
pub const AGENT_IF: &str = "dta";
const PEER_IF: &str = "dtb";
/// Addresses exist only inside the two namespaces.
const AGENT_IP: &str = "10.200.0.1";
const PEER_IP: &str = "10.200.0.2";
const AGENT_MAC: &str = "02:00:0a:c8:00:01";
const PEER_MAC: &str = "02:00:0a:c8:00:02";

/// `[collect]` for a config: count only the agent's veth end.
pub const COUNT_VETH: &str = "[collect]\ninclude_interfaces = [\"dta\"]\nexclude_interfaces = []\n";

/// bytes_in, bytes_out, packets_in, packets_out.
pub type Stats = [u64; 4];

pub struct NetPair {
    pub agent_ns: String,
    pub peer_ns: String,
}

pub fn run(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Prepares a new namespace before any interface is added: IPv6 off (no autoconfiguration
/// or MLD packets), loopback up.
pub fn quiet(ns: &str) {
    run(&[
        "ip",
        "netns",
        "exec",
        ns,
        "sysctl",
        "-qw",
        "net.ipv6.conf.all.disable_ipv6=1",
        "net.ipv6.conf.default.disable_ipv6=1",
    ]);
    run(&["ip", "-n", ns, "link", "set", "lo", "up"]);
}

/// A permanent neighbour entry: packets to `ip` leave `dev` without an ARP exchange.
pub fn static_neighbour(ns: &str, dev: &str, ip: &str, mac: &str) {
    run(&[
        "ip",
        "-n",
        ns,
        "neigh",
        "add",
        ip,
        "lladdr",
        mac,
        "dev",
        dev,
        "nud",
        "permanent",
    ]);
}

/// Enters the network namespace `name` on the calling thread only (threads and processes it
/// starts afterwards are in it too).
pub fn setns(name: &str) {
    use std::os::fd::AsRawFd;
    let file = std::fs::File::open(format!("/var/run/netns/{name}")).unwrap();
    // SAFETY: setns(2) on an fd we own; it changes only the calling thread's namespace.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns {name}: {}", std::io::Error::last_os_error());
}

impl NetPair {
    /// Creates both namespaces and the veth pair; `None` (with a message saying why the test
    /// is skipped) when not root.
    pub fn create() -> Option<NetPair> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("SKIPPED: needs root (network namespaces, veth); CI runs as root");
            return None;
        }
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let base = format!("dtt{}-{n}", std::process::id());
        let pair = NetPair {
            agent_ns: format!("{base}-a"),
            peer_ns: format!("{base}-p"),
        };
        let (a, p) = (pair.agent_ns.as_str(), pair.peer_ns.as_str());
        run(&["ip", "netns", "add", a]);
        run(&["ip", "netns", "add", p]);
        for ns in [a, p] {
            quiet(ns);
        }
        run(&[
            "ip", "-n", a, "link", "add", AGENT_IF, "address", AGENT_MAC, "type", "veth", "peer",
            "name", PEER_IF, "address", PEER_MAC, "netns", p,
        ]);
        for (ns, dev, ip, peer_ip, peer_mac) in [
            (a, AGENT_IF, AGENT_IP, PEER_IP, PEER_MAC),
            (p, PEER_IF, PEER_IP, AGENT_IP, AGENT_MAC),
        ] {
            run(&[
                "ip",
                "-n",
                ns,
                "addr",
                "add",
                &format!("{ip}/30"),
                "dev",
                dev,
            ]);
            // No ARP: nothing crosses the veth but the test's own traffic.
            static_neighbour(ns, dev, peer_ip, peer_mac);
            run(&["ip", "-n", ns, "link", "set", dev, "up"]);
        }
        Some(pair)
    }

    /// Moves the calling thread (and every process it starts from now on) into the agent's
    /// namespace.
    pub fn enter(&self) {
        setns(&self.agent_ns);
    }

    /// The kernel's counters of the agent's veth end, from /sys/class/net/*/statistics as
    /// the namespace sees it (`ip netns exec` mounts its own sysfs).
    pub fn counters(&self) -> Stats {
        let files = ["rx_bytes", "tx_bytes", "rx_packets", "tx_packets"]
            .map(|f| format!("/sys/class/net/{AGENT_IF}/statistics/{f}"));
        let out = Command::new("ip")
            .args(["netns", "exec", &self.agent_ns, "cat"])
            .args(&files)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        let v: Vec<u64> = text
            .split_whitespace()
            .map(|n| n.parse().unwrap())
            .collect();
        [v[0], v[1], v[2], v[3]]
    }

    /// Sends `bytes` over TCP from the peer namespace to the agent's side of the veth and
    /// waits until both ends closed.
    pub async fn send(&self, bytes: usize) {
        use std::io::{Read, Write};
        let (agent_ns, peer_ns) = (self.agent_ns.clone(), self.peer_ns.clone());
        let (port_tx, port_rx) = std::sync::mpsc::channel();
        let receiver = std::thread::spawn(move || {
            setns(&agent_ns);
            let listener = std::net::TcpListener::bind((AGENT_IP, 0)).unwrap();
            port_tx.send(listener.local_addr().unwrap().port()).unwrap();
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = vec![0u8; 64 * 1024];
            let mut n = 0;
            loop {
                let r = s.read(&mut buf).unwrap();
                if r == 0 {
                    break n;
                }
                n += r;
            }
        });
        let sender = std::thread::spawn(move || {
            setns(&peer_ns);
            let port = port_rx.recv().unwrap();
            let mut c = std::net::TcpStream::connect((AGENT_IP, port)).unwrap();
            let chunk = vec![7u8; 64 * 1024];
            let mut sent = 0;
            while sent < bytes {
                let n = chunk.len().min(bytes - sent);
                c.write_all(&chunk[..n]).unwrap();
                sent += n;
            }
            c.shutdown(std::net::Shutdown::Write).unwrap();
            let mut rest = Vec::new();
            c.read_to_end(&mut rest).unwrap();
        });
        while !(receiver.is_finished() && sender.is_finished()) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        sender.join().unwrap();
        assert_eq!(receiver.join().unwrap(), bytes);
    }
}

impl Drop for NetPair {
    fn drop(&mut self) {
        for ns in [&self.agent_ns, &self.peer_ns] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// `after − before`, per counter.
pub fn minus(after: Stats, before: Stats) -> Stats {
    [0, 1, 2, 3].map(|i| after[i] - before[i])
}

/// The sum of the network_stats (long keys) of every report the backends accepted for
/// `thing`.
pub fn accepted_sum(backends: &[Vec<Received>], thing: &str) -> Stats {
    let mut sum = [0u64; 4];
    for r in backends.iter().flatten() {
        if r.thing != thing || r.rejected.is_some() {
            continue;
        }
        let Some(ns) = r
            .value
            .as_ref()
            .and_then(|v| v.pointer("/metrics/network_stats"))
        else {
            continue;
        };
        for (i, key) in ["bytes_in", "bytes_out", "packets_in", "packets_out"]
            .iter()
            .enumerate()
        {
            sum[i] += ns.get(*key).and_then(Value::as_u64).unwrap_or(0);
        }
    }
    sum
}
