//! Captured /proc trees: the /proc/net fallback parser, IPv6-less hosts, malformed lines and
//! 64-bit counters.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use detect_agent::collect::{self, CollectOptions, Proto, Socket, SocketSource, netdev, procnet};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn pairs(list: &[Socket]) -> Vec<(SocketAddr, SocketAddr, u64)> {
    list.iter().map(|s| (s.local, s.remote, s.inode)).collect()
}

fn a(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn fallback_tree_parses_listeners_established_and_udp() {
    let mut t = procnet::read(&fixture("proc-fallback")).unwrap();
    t.sort();
    assert_eq!(t.source, SocketSource::ProcNet);
    let any4 = a("0.0.0.0:0");
    let any6 = a("[::]:0");
    assert_eq!(
        pairs(&t.tcp_listen),
        vec![
            (a("0.0.0.0:22"), any4, 21014),
            (a("127.0.0.1:631"), any4, 21015),
            (a("127.0.0.53:53"), any4, 21016),
            (a("192.0.2.2:8883"), any4, 21017),
            (a("[::]:8080"), any6, 21018),
            (a("[::1]:631"), any6, 21019),
        ]
    );
    // The TIME_WAIT row (st 06) is not established; the ::ffff-mapped row is unwrapped.
    assert_eq!(
        pairs(&t.tcp_established),
        vec![
            (a("127.0.0.1:22"), a("127.0.0.1:50022"), 21029),
            (a("127.0.0.1:8080"), a("127.0.0.1:50080"), 21033),
            (a("127.0.0.1:50022"), a("127.0.0.1:22"), 21026),
            (a("127.0.0.1:50080"), a("127.0.0.1:8080"), 21027),
            (a("[::1]:631"), a("[::1]:50631"), 21034),
            (a("[::1]:50631"), a("[::1]:631"), 21028),
        ]
    );
    // Connected UDP sockets (st 01: 127.0.0.1:40001 and [::1]:40002) are not listeners.
    assert_eq!(
        pairs(&t.udp_listen),
        vec![
            (a("0.0.0.0:68"), any4, 21020),
            (a("127.0.0.1:4500"), any6, 21023),
            (a("127.0.0.53:53"), any4, 21021),
            (a("[::]:5353"), any6, 21022),
        ]
    );
    assert!(t.tcp_listen.iter().all(|s| s.proto == Proto::Tcp));
    assert!(t.udp_listen.iter().all(|s| s.proto == Proto::Udp));
}

#[test]
fn sample_of_a_fixture_root_reads_files_only() {
    let opts = CollectOptions {
        root: fixture("proc-fallback"),
        ..CollectOptions::default()
    };
    let s = collect::sample(&opts).unwrap();
    assert_eq!(s.sockets.source, SocketSource::ProcNet);
    assert_eq!(s.sockets.tcp_listen.len(), 6);
    assert_eq!(
        s.boot_id.as_deref(),
        Some("8f5d3b1e-2c4a-4e6f-9a7b-1d2e3f405162")
    );
    // Default exclude is lo.
    assert_eq!(s.counters.keys().collect::<Vec<_>>(), vec!["eth0", "wlan0"]);
    let eth0 = s.counters["eth0"];
    assert_eq!(eth0.bytes_in, 29_358_693_495);
    assert_eq!(eth0.packets_in, 31_457_280);
    assert_eq!(eth0.bytes_out, 8_589_934_592);
    assert_eq!(eth0.packets_out, 6_291_456);
}

#[test]
fn ipv6_less_host_is_not_an_error() {
    let mut t = procnet::read(&fixture("proc-no-ipv6")).unwrap();
    t.sort();
    assert_eq!(
        pairs(&t.tcp_listen),
        vec![(a("0.0.0.0:22"), a("0.0.0.0:0"), 21014)]
    );
    assert_eq!(t.tcp_established.len(), 2);
    assert_eq!(t.udp_listen.len(), 2);
    let s = collect::sample(&CollectOptions {
        root: fixture("proc-no-ipv6"),
        ..CollectOptions::default()
    })
    .unwrap();
    assert_eq!(s.boot_id, None, "no boot_id file in this tree");
}

#[test]
fn missing_tcp_file_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let err = procnet::read(dir.path()).unwrap_err().to_string();
    assert!(err.contains("proc/net/tcp"), "{err}");
    let err = netdev::read(dir.path(), &[], &[]).unwrap_err().to_string();
    assert!(err.contains("proc/net/dev"), "{err}");
}

/// Collects formatted tracing output.
#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn with_logs<T>(f: impl FnOnce() -> T) -> (T, String) {
    let buf = Buf::default();
    let w = buf.clone();
    let sub = tracing_subscriber::fmt()
        .with_writer(move || w.clone())
        .with_ansi(false)
        .finish();
    let out = tracing::subscriber::with_default(sub, f);
    let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    (out, text)
}

#[test]
fn malformed_lines_are_skipped_with_a_warning() {
    let root = fixture("proc-malformed");
    let (mut t, logs) = with_logs(|| procnet::read(&root).unwrap());
    t.sort();
    assert_eq!(
        pairs(&t.tcp_listen),
        vec![
            (a("127.0.0.1:631"), a("0.0.0.0:0"), 21015),
            (a("127.0.0.53:53"), a("0.0.0.0:0"), 21016),
            (a("[::]:8080"), a("[::]:0"), 21018),
        ]
    );
    assert_eq!(
        pairs(&t.udp_listen),
        vec![(a("127.0.0.53:53"), a("0.0.0.0:0"), 21021)]
    );
    // tcp lines 3, 4, 5, 6; tcp6 line 3; udp line 3.
    for (file, line) in [
        ("tcp", 3),
        ("tcp", 4),
        ("tcp", 5),
        ("tcp", 6),
        ("tcp6", 3),
        ("udp", 3),
    ] {
        let needle = format!("proc/net/{file} line={line}");
        assert!(logs.contains(&needle), "no warning {needle:?} in:\n{logs}");
    }
    assert_eq!(logs.matches("WARN").count(), 6, "{logs}");

    let (c, logs) = with_logs(|| netdev::read(&root, &[], &[]).unwrap());
    assert_eq!(c.keys().collect::<Vec<_>>(), vec!["eth1", "lo"]);
    assert_eq!(c["eth1"].bytes_in, u64::MAX);
    assert_eq!(c["eth1"].packets_in, 1 << 32);
    assert_eq!(c["eth1"].bytes_out, (1 << 32) + 1);
    for line in [4, 5, 6] {
        let needle = format!("proc/net/dev line={line}");
        assert!(logs.contains(&needle), "no warning {needle:?} in:\n{logs}");
    }
}

#[test]
fn include_and_exclude_filters() {
    let root = fixture("proc-fallback");
    let all = netdev::read(&root, &[], &[]).unwrap();
    assert_eq!(all.len(), 3);
    let inc = netdev::read(
        &root,
        &["lo".into(), "eth0".into(), "nope".into()],
        &["lo".into()],
    )
    .unwrap();
    assert_eq!(inc.keys().collect::<Vec<_>>(), vec!["eth0"]);
    assert_eq!(inc["eth0"].bytes_in, 29_358_693_495);
}

#[test]
fn counter_reset_trees_read_as_u64() {
    let read = |t: &str| {
        let root = fixture(&format!("proc-counter-reset/{t}"));
        (
            netdev::read(&root, &[], &["lo".into()]).unwrap()["eth0"],
            collect::boot_id(&root),
        )
    };
    let (before, id_before) = read("before");
    let (after, id_after) = read("after");
    let (reboot, id_reboot) = read("reboot");
    assert_eq!(before.bytes_in, 5_368_709_120);
    assert_eq!(before.bytes_out, 4_294_967_395);
    assert!(after.bytes_in < before.bytes_in);
    assert_eq!(id_before, id_after);
    assert_ne!(id_before, id_reboot);
    assert!(reboot.packets_in < before.packets_in);
}

#[test]
fn if_inet6_fallback_labels_ipv6() {
    let ifs = collect::interfaces::Interfaces::from_if_inet6(&fixture("proc-fallback")).unwrap();
    assert_eq!(ifs.owner(&"::1".parse().unwrap()), Some("lo"));
    assert_eq!(ifs.owner(&"fd00::2".parse().unwrap()), Some("eth0"));
    assert_eq!(ifs.owner(&"::".parse().unwrap()), None);
}

/// Interface names are bytes, not UTF-8 (anyone with CAP_NET_ADMIN can create `x\xff`): an odd
/// name must neither fail /proc/net/dev nor merge with another interface's counters.
#[test]
fn non_utf8_interface_names_are_escaped_and_kept_apart() {
    let counters = netdev::read(&fixture("proc-odd-names"), &[], &[]).unwrap();
    let names: Vec<&str> = counters.keys().map(String::as_str).collect();
    assert_eq!(names, ["eth0", "x\\x5cxff", "x\\xfe", "x\\xff"]);
    assert_eq!(counters["x\\xff"].bytes_in, 1000);
    assert_eq!(counters["x\\xfe"].bytes_out, 20000);
    assert_eq!(counters["x\\x5cxff"].bytes_in, 5);
    // The escaped name is the one the include/exclude lists match.
    let only = netdev::read(&fixture("proc-odd-names"), &["x\\xff".into()], &[]).unwrap();
    assert_eq!(only.keys().collect::<Vec<_>>(), ["x\\xff"]);
}

/// The daemon's sample: unreadable counters cost the report its network_stats only; the
/// sockets (a backdoor listener) are still there. `dump` stays strict and names the file.
#[test]
fn unreadable_counters_leave_the_sockets_in_the_daemon_sample() {
    let dir = tempfile::tempdir().unwrap();
    let net = dir.path().join("proc/net");
    std::fs::create_dir_all(&net).unwrap();
    for f in ["tcp", "udp"] {
        std::fs::copy(
            fixture("proc-no-ipv6").join("proc/net").join(f),
            net.join(f),
        )
        .unwrap();
    }
    let opts = CollectOptions {
        root: dir.path().to_path_buf(),
        ..CollectOptions::default()
    };
    let (s, err) = collect::sample_lenient(&opts).unwrap();
    assert_eq!(s.sockets.tcp_listen.len(), 1);
    assert!(s.counters.is_empty());
    let err = err
        .expect("the missing /proc/net/dev is reported")
        .to_string();
    assert!(err.contains("proc/net/dev"), "{err}");
    let strict = collect::sample(&opts).unwrap_err().to_string();
    assert!(strict.contains("proc/net/dev"), "{strict}");
    // Without sockets there is no sample at all.
    std::fs::remove_file(net.join("tcp")).unwrap();
    assert!(collect::sample_lenient(&opts).is_err());
}
