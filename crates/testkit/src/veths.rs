//! A network namespace of the test's own with one veth pair per simulated device, so that
//! agents on one host each count different traffic (`[collect] include_interfaces`). Root
//! only; removed on Drop.
//!
//! Device `i` counts `df{i}` (10.210.i.1/24). Its peer `df{i}p` stays in the same namespace
//! without an address: what the test sends to 10.210.i.2 leaves through `df{i}` (counted as
//! bytes out) and is dropped by the peer. IPv6 is off and the neighbour is static, so no other
//! packet crosses the pair.

use std::net::UdpSocket;
use std::sync::atomic::{AtomicU32, Ordering};

use super::netns::{quiet, run, setns, static_neighbour};

pub struct Veths {
    ns: String,
    pub count: usize,
}

impl Veths {
    /// `None` (with a message saying why the test is skipped) when not root.
    pub fn create(count: usize) -> Option<Veths> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("SKIPPED: needs root (network namespace, veth); CI runs as root");
            return None;
        }
        assert!(count < 250);
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let ns = format!(
            "dfv{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        run(&["ip", "netns", "add", &ns]);
        let veths = Veths { ns, count };
        let ns = veths.ns.as_str();
        quiet(ns);
        for i in 0..count {
            let (dev, peer) = (Veths::interface(i), format!("df{i}p"));
            let peer_mac = format!("02:00:0a:d2:{i:02x}:02");
            run(&[
                "ip", "-n", ns, "link", "add", &dev, "type", "veth", "peer", "name", &peer,
                "address", &peer_mac,
            ]);
            run(&[
                "ip",
                "-n",
                ns,
                "addr",
                "add",
                &format!("10.210.{i}.1/24"),
                "dev",
                &dev,
            ]);
            static_neighbour(ns, &dev, &format!("10.210.{i}.2"), &peer_mac);
            run(&["ip", "-n", ns, "link", "set", &dev, "up"]);
            run(&["ip", "-n", ns, "link", "set", &peer, "up"]);
        }
        Some(veths)
    }

    /// Device `i`'s interface, as the agent's `include_interfaces` names it.
    pub fn interface(i: usize) -> String {
        format!("df{i}")
    }

    /// Moves the calling thread (and every thread and process it starts from now on) into
    /// the namespace.
    pub fn enter(&self) {
        setns(&self.ns);
    }
}

/// Sends `bytes` (in datagrams of at most 1 000 bytes) out of device `i`'s interface; call it
/// from a thread inside the namespace.
pub fn send(socket: &UdpSocket, i: usize, bytes: usize) {
    let chunk = [0x5au8; 1000];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(chunk.len());
        socket
            .send_to(&chunk[..n], (format!("10.210.{i}.2").as_str(), 9))
            .unwrap();
        left -= n;
    }
}

impl Drop for Veths {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.ns])
            .status();
    }
}
