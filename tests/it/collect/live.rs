//! Live sockets opened by the test itself, read back through sock_diag and through the
//! /proc/net fallback, and cross-checked with `ss` when it is installed. Loopback only.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::process::Command;

use detect_agent::collect::{self, CollectOptions, Socket, SocketSource, SocketTable};
use detect_testkit::sockets::{Fixture, port};

fn inode(fd: &impl AsRawFd) -> u64 {
    std::fs::metadata(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .unwrap()
        .ino()
}

/// The part of a table that touches the fixture's ports (other tests run in parallel).
fn mine(t: &SocketTable, ports: &BTreeSet<u16>) -> [Vec<Socket>; 3] {
    let keep = |l: &Vec<Socket>| {
        l.iter()
            .filter(|s| ports.contains(&s.local.port()) || ports.contains(&s.remote.port()))
            .cloned()
            .collect::<Vec<_>>()
    };
    [
        keep(&t.tcp_listen),
        keep(&t.udp_listen),
        keep(&t.tcp_established),
    ]
}

fn sample(force_procnet: bool) -> SocketTable {
    let opts = CollectOptions {
        force_procnet,
        ..CollectOptions::default()
    };
    let mut t = collect::sample(&opts).unwrap().sockets;
    t.sort();
    t
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn check(f: &Fixture, t: &SocketTable) {
    let ports = f.ports();
    let [listen, udp, est] = mine(t, &ports);
    let find = |l: &TcpListener| {
        let local = l.local_addr().unwrap();
        let local = if local.ip().is_unspecified() && local.is_ipv6() {
            SocketAddr::new(IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED), local.port())
        } else {
            local
        };
        let hits: Vec<&Socket> = listen.iter().filter(|s| s.local == local).collect();
        assert_eq!(hits.len(), 1, "listener {local} in {listen:#?}");
        assert_eq!(hits[0].inode, inode(l), "inode of {local}");
        assert_eq!(hits[0].remote.port(), 0);
        hits[0].interface.clone()
    };
    assert_eq!(find(&f.lo4).as_deref(), Some("lo"));
    assert_eq!(find(&f.lo6).as_deref(), Some("lo"));
    assert_eq!(find(&f.any4), None);
    assert_eq!(find(&f.dual), None);
    assert_eq!(find(&f.shared.0).as_deref(), Some("lo"));
    assert_eq!(find(&f.shared.1).as_deref(), Some("lo"));
    assert_eq!(listen.len(), 6, "{listen:#?}");

    let udp_locals: Vec<SocketAddr> = udp.iter().map(|s| s.local).collect();
    assert!(
        udp_locals.contains(&f.udp4.local_addr().unwrap()),
        "{udp:#?}"
    );
    assert!(
        udp_locals.contains(&f.udp6.local_addr().unwrap()),
        "{udp:#?}"
    );
    assert!(
        !udp_locals.contains(&f.udp_connected.local_addr().unwrap()),
        "connected UDP socket listed as a listener: {udp:#?}"
    );
    assert_eq!(udp.len(), 2);
    assert!(udp.iter().all(|s| s.interface.as_deref() == Some("lo")));

    // Both ends of each connection, with ::ffff: unwrapped on the dual-stack server side.
    let mut want = BTreeSet::new();
    for (c, s) in &f.conns {
        want.insert((c.local_addr().unwrap(), c.peer_addr().unwrap(), inode(c)));
        let local = collect_unmap(s.local_addr().unwrap());
        let peer = collect_unmap(s.peer_addr().unwrap());
        want.insert((local, peer, inode(s)));
    }
    assert!(
        want.iter()
            .any(|(l, _, _)| *l == addr(&format!("127.0.0.1:{}", port(&f.dual))))
    );
    let got: BTreeSet<_> = est.iter().map(|s| (s.local, s.remote, s.inode)).collect();
    assert_eq!(got, want);
    assert!(est.iter().all(|s| s.interface.as_deref() == Some("lo")));
}

fn collect_unmap(a: SocketAddr) -> SocketAddr {
    match a {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(v4.into(), v6.port()),
            None => a,
        },
        v4 => v4,
    }
}

#[test]
fn sock_diag_sees_the_test_sockets() {
    let f = Fixture::open();
    let t = sample(false);
    assert_eq!(t.source, SocketSource::SockDiag);
    check(&f, &t);
}

#[test]
fn procnet_fallback_sees_the_test_sockets() {
    let f = Fixture::open();
    let t = sample(true);
    assert_eq!(t.source, SocketSource::ProcNet);
    check(&f, &t);
}

#[test]
fn both_sources_agree_on_the_test_ports() {
    let f = Fixture::open();
    let ports = f.ports();
    let a = mine(&sample(false), &ports);
    let b = mine(&sample(true), &ports);
    assert_eq!(a, b);
}

/// Parses `ss -H` output: (local, peer) from the given column indexes.
fn ss(args: &[&str], local_col: usize) -> Option<BTreeSet<(String, String)>> {
    let out = Command::new("ss").arg("-H").args(args).output().ok()?;
    assert!(out.status.success(), "ss {args:?} failed");
    let text = String::from_utf8(out.stdout).unwrap();
    Some(
        text.lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                Some((norm(f.get(local_col)?), norm(f.get(local_col + 1)?)))
            })
            .collect(),
    )
}

/// `[::ffff:127.0.0.1]:80` → `127.0.0.1:80`, `*:80` → `[::]:80`, drops `%dev` scopes.
fn norm(s: &str) -> String {
    let Some((host, port)) = s.rsplit_once(':') else {
        return s.to_string();
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let host = host.split('%').next().unwrap_or(host);
    let host = if host == "*" { "::" } else { host };
    match host.parse::<IpAddr>() {
        Ok(ip) => match port.parse::<u16>() {
            Ok(p) => collect_unmap(SocketAddr::new(ip, p)).to_string(),
            Err(_) => format!("{ip}:{port}"),
        },
        Err(_) => s.to_string(),
    }
}

#[test]
fn matches_ss_when_installed() {
    let f = Fixture::open();
    let ports = f.ports();
    let t = sample(false);
    let [listen, udp, est] = mine(&t, &ports);
    let Some(ss_tcp) = ss(&["-tln"], 3) else {
        eprintln!("ss not on PATH; skipping the ss comparison");
        return;
    };
    let ours =
        |l: &[Socket]| -> BTreeSet<String> { l.iter().map(|s| s.local.to_string()).collect() };
    let theirs = |set: BTreeSet<(String, String)>| -> BTreeSet<String> {
        set.into_iter()
            .map(|(l, _)| l)
            .filter(|l| {
                l.rsplit_once(':')
                    .and_then(|(_, p)| p.parse().ok())
                    .is_some_and(|p| ports.contains(&p))
            })
            .collect()
    };
    assert_eq!(ours(&listen), theirs(ss_tcp));
    // `ss -uln` lists UNCONN rows only: bound, unconnected UDP sockets.
    assert_eq!(ours(&udp), theirs(ss(&["-uln"], 3).unwrap()));
    let ss_est = ss(&["-tn", "state", "established"], 2).unwrap();
    let ours_est: BTreeSet<(String, String)> = est
        .iter()
        .map(|s| (s.local.to_string(), s.remote.to_string()))
        .collect();
    let theirs_est: BTreeSet<(String, String)> = ss_est
        .into_iter()
        .filter(|(l, _)| {
            l.rsplit_once(':')
                .and_then(|(_, p)| p.parse().ok())
                .is_some_and(|p| ports.contains(&p))
        })
        .collect();
    assert_eq!(ours_est, theirs_est);
}
