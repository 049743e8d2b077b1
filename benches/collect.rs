//! Collector speed: one full sample + report encode with N established loopback connections,
//! next to `ss -tan` in the same run; also sock_diag vs netstat2 vs /proc/net, and what the
//! custom metric built-ins and one `command` metric add to a sample. Prints tables.
//! Then detect: a 100-behavior profile with a 100 000-entry cidrsFile against a report of
//! 10 000 connections (`detect` as the only argument runs just that part, no sockets).
//! Run with scripts/bench-collect (no assertions: numbers only).

use std::io::{BufRead, BufReader, Read};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use detect_agent::collect::custom::{Builtin, CustomState, MetricSpec, Source};
use detect_agent::collect::{self, CollectOptions, sockets};
use detect_agent::report::{self, Format};

/// Raises RLIMIT_NOFILE to `want` (hard limit too when permitted, else soft up to hard).
fn raise_nofile(want: u64) {
    // SAFETY: getrlimit/setrlimit with structs we own; failure only means a lower limit.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        let up = libc::rlimit {
            rlim_cur: want as libc::rlim_t,
            rlim_max: (want as libc::rlim_t).max(lim.rlim_max),
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &up) != 0 {
            lim.rlim_cur = lim.rlim_max.min(want as libc::rlim_t);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// VmHWM of /proc/self/status: this program's own peak RSS. getrusage's ru_maxrss survives
/// execve, so under `cargo bench` it reports cargo's peak when that is higher.
fn hwm_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn peak_rss_kib() -> i64 {
    // SAFETY: getrusage fills a zeroed struct we own.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    ru.ru_maxrss
}

/// Child mode: accept N connections on 127.0.0.1, hold them until stdin closes. The server
/// ends live in this child so each process needs only ~N descriptors (2N total).
fn serve(n: usize) {
    raise_nofile(n as u64 + 64);
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind listener");
    println!("{}", l.local_addr().expect("listener address").port());
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        held.push(l.accept().expect("accept").0);
    }
    println!("ready");
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}

/// N established loopback connections (2N established sockets: clients here, servers in a
/// child process).
fn open(n: usize) -> (Child, Vec<TcpStream>) {
    let exe = std::env::current_exe().expect("own path");
    let mut child = Command::new(exe)
        .env("BENCH_COLLECT_SERVER", n.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn server child");
    let mut out = BufReader::new(child.stdout.take().expect("child stdout"));
    let mut line = String::new();
    out.read_line(&mut line).expect("child port");
    let port: u16 = line.trim().parse().expect("child port number");
    let to = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let clients = (0..n)
        .map(|_| TcpStream::connect_timeout(&to, Duration::from_secs(5)).expect("connect"))
        .collect();
    line.clear();
    out.read_line(&mut line).expect("child ready");
    (child, clients)
}

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

fn time(runs: usize, mut f: impl FnMut()) -> Duration {
    f(); // warm-up
    median(
        (0..runs)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed()
            })
            .collect(),
    )
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    if let Some(n) = std::env::var("BENCH_COLLECT_SERVER")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return serve(n);
    }
    // `cargo test --all-targets` runs bench targets without `--bench`: a debug-build timing
    // of 10 000 connections would be slow and meaningless there.
    if !std::env::args().any(|a| a == "--bench") {
        println!("collect bench: skipped outside `cargo bench` (run scripts/bench-collect)");
        return;
    }
    if std::env::args().any(|a| a == "detect") {
        let opts = CollectOptions::default();
        let sample = time(15, || {
            let s = collect::sample(&opts).expect("sample");
            let r = report::build(&s.sockets, None, 1);
            let _ = report::encode(&r, Format::Json);
        });
        return detect_figure(sample, "this host's sample+enc");
    }
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![1000, 10000]
    } else {
        sizes
    };
    let max = sizes.iter().copied().max().unwrap_or(0) as u64;
    raise_nofile(max + 1024);
    let have_ss = Command::new("ss").arg("-V").output().is_ok();
    let opts = CollectOptions::default();
    let procnet = CollectOptions {
        force_procnet: true,
        ..CollectOptions::default()
    };

    println!(
        "{:>6} {:>8} {:>14} {:>10} {:>7} {:>10} {:>12} {:>10} {:>13} {:>10} {:>10} {:>11} {:>10}",
        "N",
        "sockets",
        "sample+enc ms",
        "ss -tan ms",
        "ratio",
        "diag ms",
        "netstat2 ms",
        "+label ms",
        "build+enc ms",
        "procnet ms",
        "json B",
        "maxrss KiB",
        "VmHWM KiB"
    );
    let mut largest = (0, Duration::ZERO);
    for n in sizes {
        let (mut child, clients) = open(n);
        let runs = if n >= 5000 { 15 } else { 31 };
        let mut bytes = 0;
        let mut established = 0;
        let full = time(runs, || {
            let sample = collect::sample(&opts).expect("sample");
            established = sample.sockets.tcp_established.len();
            let r = report::build(&sample.sockets, None, 1);
            bytes = report::encode(&r, Format::Json).map_or(0, |e| e.bytes.len());
        });
        let ss = if have_ss {
            Some(time(runs, || {
                let _ = Command::new("ss")
                    .arg("-tan")
                    .stdout(Stdio::null())
                    .status();
            }))
        } else {
            None
        };
        let diag = time(runs, || {
            sockets::raw(&opts).expect("sock_diag");
        });
        // netstat2 without pid lookup (the reference): every state, TCP and UDP, v4
        // and v6, iterated to the end — what `diag ms` does with a kernel-side state filter.
        let ns2 = time(runs, || {
            use netstat2::{AddressFamilyFlags as Af, ProtocolFlags as Pf};
            let it =
                netstat2::iterate_sockets_info_without_pids(Af::IPV4 | Af::IPV6, Pf::TCP | Pf::UDP)
                    .expect("netstat2");
            assert!(it.filter_map(Result::ok).count() > 0);
        });
        let labelled = time(runs, || {
            sockets::read(&opts).expect("sockets");
        });
        let table = sockets::read(&opts).expect("sockets");
        let enc = time(runs, || {
            let r = report::build(&table, None, 1);
            let _ = report::encode(&r, Format::Json);
        });
        let pn = time(runs, || {
            sockets::raw(&procnet).expect("procnet");
        });
        if n >= largest.0 {
            largest = (n, full);
        }
        let (ss_ms, ratio) = match ss {
            Some(d) => (format!("{:.2}", ms(d)), format!("{:.2}", ms(full) / ms(d))),
            None => ("-".into(), "-".into()),
        };
        println!(
            "{:>6} {:>8} {:>14.2} {:>10} {:>7} {:>10.2} {:>12.2} {:>10.2} {:>13.2} {:>10.2} {:>10} {:>11} {:>10}",
            n,
            established,
            ms(full),
            ss_ms,
            ratio,
            ms(diag),
            ms(ns2),
            ms(labelled),
            ms(enc),
            ms(pn),
            bytes,
            peak_rss_kib(),
            hwm_kib().map_or("-".to_string(), |k| k.to_string())
        );
        drop(child.stdin.take());
        drop(clients);
        let _ = child.wait();
    }
    custom_cost(&opts);
    detect_figure(largest.1, &format!("sample+enc at N={}", largest.0));
    println!(
        "(medians; ratio = sample+encode / ss -tan; diag = our state-filtered sock_diag dump,\n netstat2 = netstat2 0.11 iterate_sockets_info_without_pids, all states; maxrss = getrusage ru_maxrss, which includes\n the parent (cargo) peak inherited across exec; VmHWM = this process only)"
    );
}

/// Detect cost: a 100-behavior profile (99 inline behaviors of every device-side kind, 530
/// value elements, plus one `not-in-cidr-set` behavior on a 100 000-entry cidrsFile) against a
/// report of 10 000 connections to distinct addresses none of which is blocklisted (every
/// address is looked up: the worst case). `sample` is the sample time it is compared with.
fn detect_figure(sample: Duration, sample_label: &str) {
    use detect_agent::detect::{Engine, profile, seeded_ids};
    use detect_agent::report::{Connection, NetworkStats};
    use serde_json::json;

    let dir = tempfile::tempdir().expect("temp dir");
    let mut list = String::with_capacity(2_000_000);
    for i in 0..100_000u32 {
        // 100 000 disjoint /24 blocks, every other /24 from 11.0.0.0 (up to 14.13.62.255).
        list.push_str(&format!("{}/24\n", Ipv4Addr::from(0x0b00_0000 + i * 512)));
    }
    std::fs::write(dir.path().join("block.txt"), list).expect("write cidrsFile");
    let mut behaviors = vec![
        json!({"name": "blocklist", "metric": "aws:destination-ip-addresses",
        "criteria": {"comparisonOperator": "not-in-cidr-set", "value": {"cidrsFile": "block.txt"}}}),
    ];
    for i in 0..99u32 {
        let name = format!("b{i}");
        behaviors.push(match i % 5 {
            0 => json!({"name": name, "metric": "aws:listening-tcp-ports",
                "criteria": {"comparisonOperator": "in-port-set", "value": {"ports": (0..10).map(|k| 1000 + i * 10 + k).collect::<Vec<_>>()}}}),
            1 => json!({"name": name, "metric": "aws:num-established-tcp-connections",
                "criteria": {"comparisonOperator": "less-than-equals", "value": {"count": 100_000},
                             "consecutiveDatapointsToAlarm": 3}}),
            2 => json!({"name": name, "metric": "aws:all-bytes-out",
                "criteria": {"comparisonOperator": "less-than-equals", "value": {"count": 1u64 << 40}, "durationSeconds": 3600}}),
            3 => json!({"name": name, "metric": "aws:destination-ip-addresses",
                "criteria": {"comparisonOperator": "in-cidr-set",
                             "value": {"cidrs": (0..10).map(|k| format!("{}.0.0.0/8", 100 + k)).collect::<Vec<_>>()}}}),
            _ => json!({"name": name, "metric": "aws:listening-udp-ports",
                "criteria": {"comparisonOperator": "not-in-port-set", "value": {"ports": [i + 1]}}}),
        });
    }
    let path = dir.path().join("bench.json");
    let text = json!({"securityProfileName": "bench", "behaviors": behaviors}).to_string();
    std::fs::write(&path, text).expect("write profile");
    let t = Instant::now();
    let loaded = profile::load(&path).expect("bench profile loads");
    let load = t.elapsed();

    // 10 000 connections to distinct addresses in 100.0.0.0/8–109.x (outside the blocklist).
    let empty = json!({"header": {"report_id": 1, "version": "1.0"},
        "metrics": {"listening_tcp_ports": {"ports": []}, "listening_udp_ports": {"ports": []},
                    "tcp_connections": {"established_connections": {"connections": []}}}});
    let mut report = report::decode::decode_value(&empty).expect("report").report;
    report.metrics.established.connections = (0..10_000u32)
        .map(|i| Connection {
            remote: SocketAddr::from((Ipv4Addr::from(0x6400_0000 + i * 1_677), 443)),
            local_port: 40_000 + (i % 20_000) as u16,
            local_interface: None,
        })
        .collect();
    report.metrics.established.total = 10_000;
    report.metrics.network_stats = Some(NetworkStats::default());
    let mut engine = Engine::new("bench", loaded.profiles, seeded_ids(1));
    let mut now = 0u64;
    let eval = time(31, || {
        now += 300_000;
        let events = engine.evaluate(&report, now);
        assert!(events.is_empty(), "the bench report is normal: {events:?}");
    });
    println!(
        "\ndetect: 100 behaviors + 100 000-entry cidrsFile vs 10 000 connections: evaluate {:.2} ms median ({:.1}% of {sample_label} {:.2} ms); profile load {:.0} ms",
        ms(eval),
        100.0 * ms(eval) / ms(sample).max(f64::MIN_POSITIVE),
        ms(sample),
        ms(load)
    );
}

/// What custom metrics add to one sample (no test connections open): every built-in, and
/// one `command` metric (/bin/echo 42). cpu_usage keeps its state, as in the daemon.
fn custom_cost(opts: &CollectOptions) {
    let spec = |name: &str, kind, source| MetricSpec {
        name: name.to_string(),
        kind,
        source,
    };
    let builtins: Vec<MetricSpec> = Builtin::ALL
        .into_iter()
        .map(|b| spec(b.name(), b.metric_type(), Source::Builtin(b)))
        .collect();
    let command = vec![spec(
        "echo",
        detect_agent::collect::custom::MetricType::Number,
        Source::Command {
            argv: vec!["/bin/echo".into(), "42".into()],
            timeout: Duration::from_secs(5),
        },
    )];
    let mut state = CustomState::default();
    let never = std::sync::atomic::AtomicBool::new(false);
    let mut run = |specs: &[MetricSpec]| {
        time(31, || {
            let (sample, _) = collect::sample_with_custom(opts, specs, &mut state, &never);
            sample.expect("sample");
        })
    };
    let plain = run(&[]);
    let with_builtins = run(&builtins);
    let with_command = run(&command);
    println!(
        "\n{:>14} {:>14} {:>14} {:>14} {:>14}",
        "sample ms", "+builtins ms", "(builtins)", "+command ms", "(1 command)"
    );
    println!(
        "{:>14.2} {:>14.2} {:>14} {:>14.2} {:>14}",
        ms(plain),
        ms(with_builtins.saturating_sub(plain)),
        Builtin::ALL.len(),
        ms(with_command.saturating_sub(plain)),
        "/bin/echo 42"
    );
}
