//! End-to-end tests of `detect-agent dump`: sockets opened by the test itself must appear
//! exactly as expected in all four encodings (decoded independently), in `ss`, and in the table.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use detect_testkit::sockets::{Fixture, port};

// ---------------------------------------------------------------------------------------
// Running the binary
// ---------------------------------------------------------------------------------------

const BIN: &str = env!("CARGO_BIN_EXE_detect-agent");
fn agent(args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args).env_remove("RUST_LOG").stdin(Stdio::null());
    cmd
}

/// Runs `cmd` to completion (killed after a time limit), capturing both streams.
fn run(cmd: Command) -> Output {
    detect_testkit::run::output(cmd, None)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `dump --format F --output FILE` (plus `extra`), returning the file's bytes.
fn dump_to_file(format: &str, extra: &[&str]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(format!("report.{format}"));
    let mut args = vec![
        "dump",
        "--format",
        format,
        "--output",
        file.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out = run(agent(&args));
    assert!(
        out.status.success(),
        "dump {args:?}: {:?}\nstderr: {}",
        out.status,
        text(&out.stderr)
    );
    assert!(
        out.stdout.is_empty(),
        "stdout with --output: {}",
        text(&out.stdout)
    );
    std::fs::read(&file).unwrap()
}

// ---------------------------------------------------------------------------------------
// The test's own sockets
// ---------------------------------------------------------------------------------------

/// What the report must hold for the fixture's sockets (a trait: `Fixture` is the testkit's).
trait Want {
    fn want_tcp(&self) -> BTreeSet<PortEntry>;
    fn want_udp(&self) -> BTreeSet<PortEntry>;
    fn want_conns(&self) -> Vec<ConnEntry>;
}

impl Want for Fixture {
    /// The listening TCP entries the report must hold for the fixture's ports.
    fn want_tcp(&self) -> BTreeSet<PortEntry> {
        let lo = || Some("lo".to_string());
        BTreeSet::from([
            (port(&self.lo4), lo()),
            (port(&self.lo6), lo()),
            (port(&self.any4), None),
            (port(&self.dual), None),
            (port(&self.shared.0), lo()),
        ])
    }

    /// The listening UDP entries: the connected socket is not a listener.
    fn want_udp(&self) -> BTreeSet<PortEntry> {
        [&self.udp4, &self.udp6]
            .into_iter()
            .map(|u| (u.local_addr().unwrap().port(), Some("lo".to_string())))
            .collect()
    }

    /// Both ends of every connection, as (remote_addr, local_port, local_interface).
    fn want_conns(&self) -> Vec<ConnEntry> {
        let mut want = Vec::new();
        for (c, s) in &self.conns {
            for end in [c, s] {
                want.push((
                    remote_addr(end.peer_addr().unwrap()),
                    end.local_addr().unwrap().port(),
                    Some("lo".to_string()),
                ));
            }
        }
        want.sort();
        want
    }
}

/// `a.b.c.d:p` (IPv4-mapped unwrapped) or `[v6]:p`: protocol doc §1.4, §10.
fn remote_addr(a: SocketAddr) -> String {
    match a {
        SocketAddr::V4(a) => a.to_string(),
        SocketAddr::V6(a) => match a.ip().to_ipv4_mapped() {
            Some(ip) => format!("{ip}:{}", a.port()),
            None => format!("[{}]:{}", a.ip(), a.port()),
        },
    }
}

fn port_of_addr(s: &str) -> u16 {
    s.rsplit_once(':').unwrap().1.parse().unwrap()
}

// ---------------------------------------------------------------------------------------
// Independent decoding and the protocol doc §1.1 key table
// ---------------------------------------------------------------------------------------

/// A decoded report value: only what the protocol allows (no null, bool, float, bytes).
#[derive(Debug, Clone)]
enum V {
    Map(Vec<(String, V)>),
    Arr(Vec<V>),
    UInt(u64),
    Text(String),
}

fn from_json(v: &serde_json::Value, path: &str) -> V {
    use serde_json::Value as J;
    match v {
        J::Null => panic!("{path}: null (protocol doc §10: never emit null)"),
        J::Bool(b) => panic!("{path}: boolean {b}"),
        J::Number(n) => V::UInt(
            n.as_u64()
                .unwrap_or_else(|| panic!("{path}: {n} is not a non-negative integer")),
        ),
        J::String(s) => V::Text(s.clone()),
        J::Array(a) => V::Arr(
            a.iter()
                .enumerate()
                .map(|(i, x)| from_json(x, &format!("{path}[{i}]")))
                .collect(),
        ),
        J::Object(m) => V::Map(
            m.iter()
                .map(|(k, x)| (k.clone(), from_json(x, &format!("{path}.{k}"))))
                .collect(),
        ),
    }
}

fn from_cbor(v: &ciborium::Value, path: &str) -> V {
    use ciborium::Value as C;
    match v {
        C::Integer(i) => {
            let n = i128::from(*i);
            V::UInt(
                u64::try_from(n)
                    .unwrap_or_else(|_| panic!("{path}: {n} is not a non-negative integer")),
            )
        }
        C::Text(s) => V::Text(s.clone()),
        C::Array(a) => V::Arr(
            a.iter()
                .enumerate()
                .map(|(i, x)| from_cbor(x, &format!("{path}[{i}]")))
                .collect(),
        ),
        C::Map(m) => V::Map(
            m.iter()
                .map(|(k, x)| {
                    let C::Text(k) = k else {
                        panic!("{path}: CBOR map key {k:?} is not text (protocol doc §10)")
                    };
                    (k.clone(), from_cbor(x, &format!("{path}.{k}")))
                })
                .collect(),
        ),
        other => panic!("{path}: CBOR value {other:?} has no place in a report"),
    }
}

/// Protocol doc §1.1, rows 1–22: (long, short, parents). Parent names are positions in the
/// tree: "root", a parent key's long name, or "connection" / "port" for list entries.
const KEY_TABLE: [(&str, &str, &[&str]); 22] = [
    ("header", "hed", &["root"]),
    ("report_id", "rid", &["header"]),
    ("version", "v", &["header"]),
    ("metrics", "met", &["root"]),
    ("custom_metrics", "cmet", &["root"]),
    ("tcp_connections", "tc", &["metrics"]),
    ("established_connections", "ec", &["tcp_connections"]),
    ("connections", "cs", &["established_connections"]),
    ("remote_addr", "rad", &["connection"]),
    ("local_port", "lp", &["connection"]),
    ("local_interface", "li", &["connection"]),
    (
        "total",
        "t",
        &[
            "established_connections",
            "listening_tcp_ports",
            "listening_udp_ports",
        ],
    ),
    ("listening_tcp_ports", "tp", &["metrics"]),
    ("listening_udp_ports", "up", &["metrics"]),
    (
        "ports",
        "pts",
        &["listening_tcp_ports", "listening_udp_ports"],
    ),
    ("port", "pt", &["port"]),
    ("interface", "if", &["port"]),
    ("network_stats", "ns", &["metrics"]),
    ("bytes_in", "bi", &["network_stats"]),
    ("bytes_out", "bo", &["network_stats"]),
    ("packets_in", "pi", &["network_stats"]),
    ("packets_out", "po", &["network_stats"]),
];

/// Checks every key at every level against `KEY_TABLE` in one spelling, and the JSON type
/// column; returns the same tree with long keys so that assertions read the same for all.
fn check_keys(v: &V, pos: &str, short: bool, path: &str) -> V {
    let V::Map(entries) = v else {
        panic!("{path}: expected an object at position {pos}, got {v:?}")
    };
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for (k, child) in entries {
        let row = KEY_TABLE
            .iter()
            .find(|(l, s, parents)| (if short { *s } else { *l }) == k && parents.contains(&pos));
        let Some((long, _, _)) = row else {
            let other = KEY_TABLE
                .iter()
                .any(|(l, s, _)| (if short { *l } else { *s }) == k);
            panic!(
                "{path}: key {k:?} is not a {} key allowed under {pos} in protocol doc §1.1{}",
                if short { "short" } else { "long" },
                if other { " (mixed spellings)" } else { "" }
            );
        };
        assert!(seen.insert(*long), "{path}: duplicate key {k:?}");
        let here = format!("{path}.{k}");
        let child = match *long {
            "header"
            | "metrics"
            | "tcp_connections"
            | "established_connections"
            | "listening_tcp_ports"
            | "listening_udp_ports"
            | "network_stats" => check_keys(child, long, short, &here),
            "custom_metrics" => panic!("{here}: dump reports carry no custom metrics"),
            "connections" | "ports" => {
                let V::Arr(items) = child else {
                    panic!("{here}: expected an array, got {child:?}")
                };
                let entry = if *long == "ports" {
                    "port"
                } else {
                    "connection"
                };
                V::Arr(
                    items
                        .iter()
                        .enumerate()
                        .map(|(i, x)| check_keys(x, entry, short, &format!("{here}[{i}]")))
                        .collect(),
                )
            }
            "version" | "remote_addr" | "local_interface" | "interface" => {
                assert!(
                    matches!(child, V::Text(t) if !t.is_empty()),
                    "{here}: {child:?}"
                );
                child.clone()
            }
            _ => {
                assert!(matches!(child, V::UInt(_)), "{here}: {child:?}");
                child.clone()
            }
        };
        out.push((long.to_string(), child));
    }
    V::Map(out)
}

type PortEntry = (u16, Option<String>);
type ConnEntry = (String, u16, Option<String>);

/// The report in plain Rust terms, after the key and type checks.
#[derive(Debug)]
struct Decoded {
    report_id: u64,
    version: String,
    tcp: Vec<PortEntry>,
    tcp_total: u64,
    udp: Vec<PortEntry>,
    udp_total: u64,
    conns: Vec<ConnEntry>,
    conns_total: u64,
    network_stats: Option<BTreeMap<String, u64>>,
}

fn get<'a>(v: &'a V, key: &str) -> Option<&'a V> {
    match v {
        V::Map(m) => m.iter().find(|(k, _)| k == key).map(|(_, x)| x),
        _ => None,
    }
}

fn uint(v: Option<&V>, what: &str) -> u64 {
    match v {
        Some(V::UInt(n)) => *n,
        other => panic!("{what}: expected an integer, got {other:?}"),
    }
}

fn txt(v: Option<&V>) -> Option<String> {
    match v {
        Some(V::Text(t)) => Some(t.clone()),
        None => None,
        other => panic!("expected text, got {other:?}"),
    }
}

fn items<'a>(v: Option<&'a V>, what: &str) -> &'a [V] {
    match v {
        Some(V::Arr(a)) => a,
        other => panic!("{what}: expected an array, got {other:?}"),
    }
}

fn ports(list: &V, what: &str) -> (Vec<PortEntry>, u64) {
    let entries = items(get(list, "ports"), what)
        .iter()
        .map(|p| {
            let n = uint(get(p, "port"), "port");
            assert!(
                (1..=65535).contains(&n),
                "{what}: port {n} (protocol doc §4)"
            );
            (n as u16, txt(get(p, "interface")))
        })
        .collect();
    (entries, uint(get(list, "total"), "total"))
}

/// Decodes one payload in `format` with serde_json / ciborium and checks it structurally.
fn decode(bytes: &[u8], format: &str) -> Decoded {
    let short = format.ends_with("-short");
    let raw = if format.starts_with("cbor") {
        let mut rest = bytes;
        let v: ciborium::Value = ciborium::from_reader(&mut rest).unwrap();
        assert!(
            rest.is_empty(),
            "{} trailing bytes after the CBOR item",
            rest.len()
        );
        from_cbor(&v, format)
    } else {
        let v: serde_json::Value = serde_json::from_slice(bytes).unwrap();
        from_json(&v, format)
    };
    let root = check_keys(&raw, "root", short, format);
    let header = get(&root, "header").expect("header");
    let metrics = get(&root, "metrics").expect("metrics");
    let (tcp, tcp_total) = ports(get(metrics, "listening_tcp_ports").expect("tp"), "tcp");
    let (udp, udp_total) = ports(get(metrics, "listening_udp_ports").expect("up"), "udp");
    let ec = get(metrics, "tcp_connections")
        .and_then(|t| get(t, "established_connections"))
        .expect("tcp_connections.established_connections");
    let conns = items(get(ec, "connections"), "connections")
        .iter()
        .map(|c| {
            let addr = txt(get(c, "remote_addr")).expect("remote_addr is required (§1.4)");
            let lp = uint(get(c, "local_port"), "local_port");
            (
                addr,
                u16::try_from(lp).unwrap(),
                txt(get(c, "local_interface")),
            )
        })
        .collect();
    let network_stats = get(metrics, "network_stats").map(|ns| match ns {
        V::Map(m) => m
            .iter()
            .map(|(k, v)| (k.clone(), uint(Some(v), k)))
            .collect(),
        _ => unreachable!("checked by check_keys"),
    });
    Decoded {
        report_id: uint(get(header, "report_id"), "report_id"),
        version: txt(get(header, "version")).expect("version"),
        tcp,
        tcp_total,
        udp,
        udp_total,
        conns,
        conns_total: uint(get(ec, "total"), "total"),
        network_stats,
    }
}

// ---------------------------------------------------------------------------------------
// Assertions on the fixture's part of a report
// ---------------------------------------------------------------------------------------

fn mine_ports(list: &[PortEntry], ports: &BTreeSet<u16>) -> BTreeSet<PortEntry> {
    list.iter()
        .filter(|(p, _)| ports.contains(p))
        .cloned()
        .collect()
}

/// Connections with both ends on fixture ports (other processes may share a port number).
fn mine_conns(list: &[ConnEntry], ports: &BTreeSet<u16>) -> Vec<ConnEntry> {
    let mut v: Vec<ConnEntry> = list
        .iter()
        .filter(|(addr, lp, _)| ports.contains(lp) && ports.contains(&port_of_addr(addr)))
        .cloned()
        .collect();
    v.sort();
    v
}

fn check_fixture(f: &Fixture, d: &Decoded, format: &str) {
    assert_eq!(d.version, "1.0", "{format}");
    assert!(d.report_id > 0, "{format}: report_id {}", d.report_id);

    let tcp_ports = f.tcp_listener_ports();
    assert_eq!(
        mine_ports(&d.tcp, &tcp_ports),
        f.want_tcp(),
        "{format}: listening TCP"
    );
    // One entry per (port, interface): 127.0.0.1:P and [::1]:P give a single (P, "lo").
    let shared = port(&f.shared.0);
    let n = d.tcp.iter().filter(|(p, _)| *p == shared).count();
    assert_eq!(n, 1, "{format}: shared port {shared} in {:?}", d.tcp);
    let unique: BTreeSet<&PortEntry> = d.tcp.iter().collect();
    assert_eq!(unique.len(), d.tcp.len(), "{format}: duplicate TCP entries");

    let udp_ports = f.udp_ports();
    assert_eq!(
        mine_ports(&d.udp, &udp_ports),
        f.want_udp(),
        "{format}: listening UDP"
    );
    let connected = f.udp_connected.local_addr().unwrap().port();
    assert!(
        !d.udp.iter().any(|(p, _)| *p == connected),
        "{format}: connected UDP port {connected} listed as a listener: {:?}",
        d.udp
    );

    let conns = mine_conns(&d.conns, &f.conn_ports());
    assert_eq!(conns, f.want_conns(), "{format}: established connections");
    assert!(conns.iter().any(|(a, _, _)| a.starts_with("127.0.0.1:")));
    assert!(conns.iter().any(|(a, _, _)| a.starts_with("[::1]:")));

    assert!(d.tcp_total >= d.tcp.len() as u64, "{format}: tcp total");
    assert!(d.udp_total >= d.udp.len() as u64, "{format}: udp total");
    assert!(
        d.conns_total >= d.conns.len() as u64,
        "{format}: connections total"
    );
    assert!(
        d.tcp_total >= 5 && d.udp_total >= 2 && d.conns_total >= 12,
        "{format}: {d:?}"
    );
}

const FORMATS: [&str; 4] = ["json", "json-short", "cbor", "cbor-short"];

#[test]
fn all_four_encodings_show_the_test_sockets_with_protocol_keys() {
    let f = Fixture::open();
    for format in FORMATS {
        let bytes = dump_to_file(format, &[]);
        let d = decode(&bytes, format);
        check_fixture(&f, &d, format);
        assert!(
            d.network_stats.is_none(),
            "{format}: network_stats without --delta"
        );
        if format.starts_with("json") {
            assert_eq!(bytes.first(), Some(&b'{'), "{format}: not a JSON object");
        } else {
            // Definite-length map (major type 5, not the 0xbf indefinite form): §10.
            assert_eq!(bytes[0] >> 5, 5, "{format}: first byte {:#x}", bytes[0]);
            assert_ne!(bytes[0], 0xbf, "{format}: indefinite-length map");
        }
    }
}

#[test]
fn procnet_fallback_gives_the_same_test_sockets() {
    let f = Fixture::open();
    let a = decode(&dump_to_file("json", &[]), "json");
    let b = decode(&dump_to_file("json", &["--procnet"]), "json");
    check_fixture(&f, &b, "json --procnet");
    let (tp, up, cp) = (f.tcp_listener_ports(), f.udp_ports(), f.conn_ports());
    assert_eq!(mine_ports(&a.tcp, &tp), mine_ports(&b.tcp, &tp));
    assert_eq!(mine_ports(&a.udp, &up), mine_ports(&b.udp, &up));
    assert_eq!(mine_conns(&a.conns, &cp), mine_conns(&b.conns, &cp));
}

#[test]
fn delta_adds_network_stats_with_four_counters() {
    for format in ["json", "cbor-short"] {
        let d = decode(&dump_to_file(format, &["--delta", "1"]), format);
        let ns = d
            .network_stats
            .unwrap_or_else(|| panic!("{format}: no network_stats with --delta 1"));
        // Non-negative is guaranteed by the decoder (V::UInt); all four must be there.
        let keys: Vec<&str> = ns.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            ["bytes_in", "bytes_out", "packets_in", "packets_out"],
            "{format}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Cross-check with ss(8)
// ---------------------------------------------------------------------------------------

/// `ss -H ARGS`: (local, peer) columns starting at `local_col`; None when ss is missing.
fn ss(args: &[&str], local_col: usize) -> Option<Vec<(SocketAddr, SocketAddr)>> {
    let out = Command::new("ss").arg("-H").args(args).output().ok()?;
    assert!(out.status.success(), "ss {args:?}: {}", text(&out.stderr));
    let rows = text(&out.stdout)
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some((ss_addr(f.get(local_col)?)?, ss_addr(f.get(local_col + 1)?)?))
        })
        .collect();
    Some(rows)
}

/// `127.0.0.1:80`, `[::1]:80`, `[::ffff:127.0.0.1]:80`, `*:80`, `0.0.0.0:*`, `[::1]%lo:80`.
fn ss_addr(s: &str) -> Option<SocketAddr> {
    let (host, port) = s.rsplit_once(':')?;
    let port: u16 = if port == "*" { 0 } else { port.parse().ok()? };
    let host = host.split('%').next()?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let ip: std::net::IpAddr = if host == "*" {
        std::net::Ipv6Addr::UNSPECIFIED.into()
    } else {
        host.parse().ok()?
    };
    Some(SocketAddr::new(ip, port))
}

/// What the report should say for a bind address: loopback → "lo", wildcard → no key.
fn ss_listen(rows: &[(SocketAddr, SocketAddr)], ports: &BTreeSet<u16>) -> BTreeSet<PortEntry> {
    rows.iter()
        .filter(|(l, _)| ports.contains(&l.port()))
        .map(|(l, _)| {
            let ip = match l.ip() {
                std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(l.ip(), Into::into),
                ip => ip,
            };
            let iface = if ip.is_unspecified() {
                None
            } else {
                assert!(ip.is_loopback(), "test socket on {ip}");
                Some("lo".to_string())
            };
            (l.port(), iface)
        })
        .collect()
}

#[test]
fn json_dump_agrees_with_ss() {
    let f = Fixture::open();
    let d = decode(&dump_to_file("json", &[]), "json");
    let Some(tcp) = ss(&["-tln"], 3) else {
        eprintln!("note: ss is not on PATH; skipping the ss comparison");
        return;
    };
    let tp = f.tcp_listener_ports();
    assert_eq!(
        mine_ports(&d.tcp, &tp),
        ss_listen(&tcp, &tp),
        "dump vs ss -tln"
    );
    // `ss -uln` lists UNCONN rows: bound, unconnected UDP sockets only.
    let udp = ss(&["-uln"], 3).unwrap();
    let up = f.udp_ports();
    assert_eq!(
        mine_ports(&d.udp, &up),
        ss_listen(&udp, &up),
        "dump vs ss -uln"
    );
    // With a state filter ss drops the State column: local is column 2.
    let est = ss(&["-tn", "state", "established"], 2).unwrap();
    let cp = f.conn_ports();
    let theirs: Vec<(String, u16)> = {
        let mut v: Vec<(String, u16)> = est
            .iter()
            .filter(|(l, r)| cp.contains(&l.port()) && cp.contains(&r.port()))
            .map(|(l, r)| (remote_addr(*r), l.port()))
            .collect();
        v.sort();
        v
    };
    let ours: Vec<(String, u16)> = mine_conns(&d.conns, &cp)
        .into_iter()
        .map(|(a, p, _)| (a, p))
        .collect();
    assert_eq!(ours, theirs, "dump vs ss -tn state established");
}

// ---------------------------------------------------------------------------------------
// The table
// ---------------------------------------------------------------------------------------

/// A loopback listener on a port src/cli/table.rs flags as risky, with the flag text.
fn risky_listener() -> Option<(TcpListener, &'static str)> {
    [
        (8081, "http"),
        (2323, "telnet"),
        (8080, "http"),
        (23, "telnet"),
        (80, "http"),
    ]
    .into_iter()
    .find_map(|(p, flag)| TcpListener::bind(("127.0.0.1", p)).ok().map(|l| (l, flag)))
}

#[test]
fn table_shows_test_listeners_with_process_and_risk_flag() {
    let f = Fixture::open();
    let (risky, flag) = risky_listener().expect("8081, 2323, 8080, 23 and 80 are all taken");
    let out = run(agent(&["dump", "--format", "table"]));
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let table = text(&out.stdout);
    let me = format!(
        "{}/{}",
        std::process::id(),
        std::fs::read_to_string("/proc/self/comm")
            .unwrap()
            .trim_end()
    );
    // Listener rows: PORT ADDRESS INTERFACE PROCESS [RISK]
    let row = |p: u16, addr: &str| -> String {
        table
            .lines()
            .find(|l| {
                let c: Vec<&str> = l.split_whitespace().collect();
                c.first() == Some(&p.to_string().as_str()) && c.get(1) == Some(&addr)
            })
            .unwrap_or_else(|| panic!("no row for {addr} port {p} in\n{table}"))
            .to_string()
    };
    let r = row(port(&risky), "127.0.0.1");
    let cols: Vec<&str> = r.split_whitespace().collect();
    assert_eq!(cols.get(2), Some(&"lo"), "{r}");
    assert_eq!(cols.get(3), Some(&me.as_str()), "{r}");
    assert!(r.contains(&format!("!! {flag}")), "no risk flag: {r}");

    for (l, addr, iface) in [
        (&f.lo4, "127.0.0.1", "lo"),
        (&f.lo6, "::1", "lo"),
        (&f.any4, "0.0.0.0", "*"),
        (&f.dual, "::", "*"),
    ] {
        let r = row(port(l), addr);
        let cols: Vec<&str> = r.split_whitespace().collect();
        assert_eq!(cols.get(2), Some(&iface), "{r}");
        assert_eq!(cols.get(3), Some(&me.as_str()), "{r}");
        assert!(!r.contains("!!"), "unexpected flag: {r}");
    }
    let udp = f.udp4.local_addr().unwrap().port();
    let r = row(udp, "127.0.0.1");
    assert!(r.contains(" lo ") && r.contains(&me), "{r}");
    assert!(table.contains("ESTABLISHED TCP"), "{table}");
    assert!(table.contains("(no network_stats delta"), "{table}");
}

// ---------------------------------------------------------------------------------------
// No config, bad flags
// ---------------------------------------------------------------------------------------

/// `dump` from a directory with no config and HOME pointing there too.
fn agent_without_config(args: &[&str], dir: &Path) -> Command {
    let mut cmd = agent(args);
    cmd.current_dir(dir)
        .env("HOME", dir)
        .env_remove("XDG_CONFIG_HOME");
    cmd
}

#[test]
fn dump_needs_no_config() {
    if Path::new("/etc/detect-agent/config.toml").exists() {
        eprintln!("note: /etc/detect-agent/config.toml exists; dump reads it in this test");
    }
    let dir = tempfile::tempdir().unwrap();
    // stdout is a pipe and no --format is given: the default is the JSON payload.
    let out = run(agent_without_config(&["dump"], dir.path()));
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let d = decode(&out.stdout, "json");
    assert!(d.report_id > 0);
    assert!(out.stderr.is_empty(), "stderr: {}", text(&out.stderr));
    let out = run(agent_without_config(
        &["dump", "--format", "table"],
        dir.path(),
    ));
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert!(text(&out.stdout).contains("LISTENING TCP"));
}

/// Non-zero exit, nothing on stdout, exactly one error line on stderr containing `names`.
fn assert_fails_clearly(args: &[&str], names: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let out = run(agent_without_config(args, dir.path()));
    let err = text(&out.stderr);
    assert!(!out.status.success(), "{args:?} succeeded");
    assert!(
        out.stdout.is_empty(),
        "{args:?} stdout: {}",
        text(&out.stdout)
    );
    assert!(!err.contains("panicked"), "{args:?}: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{args:?}: want one error line, got\n{err}");
    assert!(
        lines[0].starts_with("detect-agent: error: "),
        "{args:?}: {err}"
    );
    for n in names {
        assert!(
            lines[0].contains(n),
            "{args:?}: {n:?} not named in {:?}",
            lines[0]
        );
    }
}

#[test]
fn bad_flags_and_missing_config_fail_with_one_clear_line() {
    assert_fails_clearly(
        &["dump", "--format", "xml"],
        &["--format", "\"xml\"", "json"],
    );
    assert_fails_clearly(&["dump", "--delta", "0"], &["--delta", "0"]);
    assert_fails_clearly(&["dump", "--bogus"], &["--bogus"]);
    assert_fails_clearly(
        &["dump", "--config", "/nonexistent"],
        &["/nonexistent", "No such file"],
    );
    assert_fails_clearly(
        &[
            "dump",
            "--format",
            "json",
            "--output",
            "/nonexistent-dir/report.json",
        ],
        &["/nonexistent-dir/report.json"],
    );
}

#[test]
fn missing_config_error_does_not_repeat_itself() {
    let out = run(agent(&["dump", "--config", "/nonexistent"]));
    let err = text(&out.stderr);
    assert_eq!(err.matches("No such file").count(), 1, "{err}");
}

// ---------------------------------------------------------------------------------------
// The decoder and key checker reject what they should (so the tests above can fail)
// ---------------------------------------------------------------------------------------

fn check_json(v: serde_json::Value, short: bool) {
    check_keys(&from_json(&v, "t"), "root", short, "t");
}

#[test]
fn checker_accepts_a_minimal_report() {
    check_json(
        serde_json::json!({"hed": {"rid": 1, "v": "1.0"}, "met": {"tp": {"pts": [{"pt": 1}], "t": 1}}}),
        true,
    );
}

#[test]
#[should_panic(expected = "mixed spellings")]
fn checker_rejects_mixed_keys() {
    check_json(
        serde_json::json!({"hed": {"report_id": 1, "v": "1.0"}}),
        true,
    );
}

#[test]
#[should_panic(expected = "not a long key allowed under port")]
fn checker_rejects_a_key_in_the_wrong_place() {
    check_json(
        serde_json::json!({"metrics": {"listening_tcp_ports": {"ports": [{"port": 1, "total": 1}]}}}),
        false,
    );
}

#[test]
#[should_panic(expected = "null")]
fn decoder_rejects_null() {
    check_json(
        serde_json::json!({"metrics": {"listening_tcp_ports": {"ports": [{"port": 1, "interface": null}]}}}),
        false,
    );
}

#[test]
#[should_panic(expected = "is not text")]
fn decoder_rejects_integer_cbor_keys() {
    let v = ciborium::Value::Map(vec![(
        ciborium::Value::Integer(1.into()),
        ciborium::Value::Integer(2.into()),
    )]);
    from_cbor(&v, "t");
}
