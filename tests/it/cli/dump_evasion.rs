//! Issue #11 item 5 for real: 12 000 listeners opened by `nobody` on 127.0.0.1 must not push
//! a wildcard backdoor, a UDP listener or non-loopback connections out of `dump` (cut order in
//! crates/protocol/src/limits.rs). Runs in a network namespace the test creates; needs root.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};

use detect_agent::report::{self, Format, MAX_PAYLOAD_BYTES};

const BIN: &str = env!("CARGO_BIN_EXE_detect-agent");
const DECOYS: usize = 12_000;
/// Owned by the test, on a veth end inside its namespace: not loopback, traffic stays local.
const ADDR: Ipv4Addr = Ipv4Addr::new(10, 213, 0, 1);

/// A network namespace deleted on drop.
struct Netns(String);

impl Netns {
    fn create() -> Netns {
        let name = format!("da-evasion-{}", std::process::id());
        sh(&["ip", "netns", "add", &name]);
        let ns = Netns(name);
        let addr = format!("{ADDR}/32");
        for args in [
            &["ip", "link", "set", "lo", "up"][..],
            &[
                "ip", "link", "add", "ev-a", "type", "veth", "peer", "name", "ev-b",
            ],
            &["ip", "addr", "add", &addr, "dev", "ev-a"],
            &["ip", "link", "set", "ev-a", "up"],
            &["ip", "link", "set", "ev-b", "up"],
        ] {
            sh(&ns.exec(args));
        }
        ns
    }

    fn exec<'a>(&'a self, args: &[&'a str]) -> Vec<&'a str> {
        let mut all = vec!["ip", "netns", "exec", self.0.as_str()];
        all.extend_from_slice(args);
        all
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn sh(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs the fixture script; returns once it printed "ready" (its sockets then stay open
/// until the returned stdin is dropped and the child is killed).
fn hold(args: &[&str]) -> (Child, ChildStdin) {
    let mut child = Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdin = child.stdin.take().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready", "{args:?} did not open its sockets");
    (child, stdin)
}

#[test]
fn twelve_thousand_loopback_decoys_of_nobody_hide_no_backdoor_udp_listener_or_connection() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: needs root (network namespace, setpriv to nobody)");
        return;
    }
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/decoy_flood/sockets.py");
    let script = script.to_str().unwrap();
    let ns = Netns::create();
    let count = DECOYS.to_string();
    let decoys = ns.exec(&[
        "prlimit",
        "--nofile=13000:13000",
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "/usr/bin/python3",
        script,
        "decoys",
        &count,
    ]);
    let addr = ADDR.to_string();
    let real = ns.exec(&["/usr/bin/python3", script, "real", &addr]);
    let mut held = vec![hold(&decoys), hold(&real)];

    for format in Format::ALL {
        let name = format.to_string();
        let args = ns.exec(&[BIN, "dump", "--format", &name]);
        let out = Command::new(args[0])
            .args(&args[1..])
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let bytes = out.stdout.strip_suffix(b"\n").unwrap_or(&out.stdout);
        assert!(bytes.len() < MAX_PAYLOAD_BYTES, "{name}: {}", bytes.len());
        let r = report::decode(bytes).unwrap().report;
        let m = &r.metrics;
        assert!(
            m.listening_tcp_ports.total > DECOYS as u64,
            "{name}: the flood is there ({})",
            m.listening_tcp_ports.total
        );
        assert!(
            m.listening_tcp_ports.ports.len() < DECOYS,
            "{name}: the report was cut"
        );
        assert!(
            m.listening_tcp_ports
                .ports
                .iter()
                .any(|p| p.port == 31337 && p.interface.is_none()),
            "{name}: backdoor 0.0.0.0:31337 hidden"
        );
        assert!(
            m.listening_udp_ports.ports.iter().any(|p| p.port == 5353),
            "{name}: UDP listener hidden"
        );
        let remote: BTreeSet<(IpAddr, u16)> = m
            .established
            .connections
            .iter()
            .map(|c| (c.remote.ip(), c.remote.port()))
            .collect();
        let to_backdoor = m
            .established
            .connections
            .iter()
            .filter(|c| c.remote.ip() == IpAddr::V4(ADDR) && c.remote.port() == 31337)
            .count();
        assert_eq!(to_backdoor, 3, "{name}: connections to the backdoor");
        assert_eq!(
            m.established.connections.len(),
            6,
            "{name}: both ends of all three: {remote:?}"
        );
    }
    for (mut child, stdin) in held.drain(..) {
        drop(stdin);
        let _ = child.kill();
        let _ = child.wait();
    }
}
