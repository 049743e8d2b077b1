//! `detect-agent run` end to end: the real binary against a real mosquitto with mutual TLS
//! and the strict test backend — all four formats accepted, ids rising across restarts,
//! outage recovery with no byte lost, verdict handling, TLS failures, signals, systemd notify.

mod common;

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::{Backend, Broker, Identity, Mode, Pki, Received, eventually};

const BIN: &str = env!("CARGO_BIN_EXE_detect-agent");

struct Agent {
    child: Child,
    log: PathBuf,
}

/// A failed assertion must not leave the agent running.
impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Agent {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, sig) }, 0);
    }

    /// SIGTERM, then the exit status, which must come within 5 s.
    async fn stop(mut self) -> (ExitStatus, Duration) {
        let t0 = Instant::now();
        self.signal(libc::SIGTERM);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status, t0.elapsed());
            }
            if t0.elapsed() > Duration::from_secs(10) {
                let _ = self.child.kill();
                panic!("agent ignored SIGTERM for 10 s; log:\n{}", self.log());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

struct Setup<'a> {
    dir: &'a Path,
    port: u16,
    ca: &'a Path,
    id: &'a Identity,
    format: &'a str,
    interval: u64,
    extra: &'a str,
}

fn config(s: &Setup) -> PathBuf {
    let path = s.dir.join(format!("config-{}.toml", s.format));
    let text = format!(
        r#"thing_name = "{thing}"
[mqtt]
endpoint = "127.0.0.1"
port = {port}
ca_file = "{ca}"
cert_file = "{cert}"
key_file = "{key}"
tls_server_name = "localhost"
[report]
interval_secs = {interval}
format = "{format}"
verdict_timeout_secs = 3
[state]
dir = "{state}"
{extra}
"#,
        thing = s.id.name,
        port = s.port,
        ca = s.ca.display(),
        cert = s.id.cert.display(),
        key = s.id.key.display(),
        interval = s.interval,
        format = s.format,
        state = s.dir.join("state").display(),
        extra = s.extra,
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn spawn(config: &Path, env: &[(&str, &str)]) -> Agent {
    let log = config.with_extension(format!("log-{}", rand_suffix()));
    let file = std::fs::File::create(&log).unwrap();
    let mut cmd = Command::new(BIN);
    cmd.arg("run")
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "info")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(file);
    for (k, v) in env {
        cmd.env(k, v);
    }
    Agent {
        child: cmd.spawn().unwrap(),
        log,
    }
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

fn accepted_for<'a>(got: &'a [Received], thing: &str) -> Vec<&'a Received> {
    got.iter()
        .filter(|r| r.thing == thing && r.rejected.is_none())
        .collect()
}

#[tokio::test]
async fn every_format_is_accepted_and_ids_rise_across_restarts() {
    let pki = Pki::generate();
    let broker = Broker::start(&pki);
    let backend = Backend::start(&pki, broker.port).await;
    let work = tempfile::tempdir().unwrap();
    let mut last_id = 0u64;
    for (round, format) in ["json", "json-short", "cbor", "cbor-short", "json"]
        .into_iter()
        .enumerate()
    {
        let cfg = config(&Setup {
            dir: work.path(),
            port: broker.port,
            ca: &pki.ca,
            id: &pki.client_ec,
            format,
            interval: 2, // the issue's acceptance setting
            extra: "",
        });
        let agent = spawn(&cfg, &[]);
        let before = accepted_for(&backend.received(), &pki.client_ec.name).len();
        let ok = eventually(Duration::from_secs(30), || {
            accepted_for(&backend.received(), &pki.client_ec.name).len() >= before + 2
        })
        .await;
        let log = agent.log();
        let (status, took) = agent.stop().await;
        assert!(
            ok,
            "round {round} ({format}): no two accepted reports; {log}"
        );
        assert!(status.success(), "round {round}: exit {status:?}");
        assert!(took < Duration::from_secs(5), "SIGTERM took {took:?}");

        let got = backend.received();
        let mine: Vec<&Received> = got
            .iter()
            .filter(|r| r.thing == pki.client_ec.name)
            .skip(before)
            .collect();
        let segment = if format.starts_with("cbor") {
            "cbor"
        } else {
            "json"
        };
        for r in &mine {
            assert_eq!(r.rejected, None, "round {round}: rejected {r:?}");
            assert_eq!(r.format, segment);
            let id = r.report_id.expect("report id");
            assert!(
                id > last_id,
                "report id {id} not above {last_id} (round {round})"
            );
            last_id = id;
            let v = r.value.as_ref().expect("decoded report");
            let (hed, met) = if format.ends_with("short") {
                ("hed", "met")
            } else {
                ("header", "metrics")
            };
            assert!(v.get(hed).is_some() && v.get(met).is_some(), "{v}");
        }
    }
    // A clock far behind the last id cannot lower it: the id file is the floor.
    let stored: u64 = std::fs::read_to_string(work.path().join("state/report_id"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(stored, last_id);
}

/// (report id, bytes_in) of `thing`'s accepted reports that carry network_stats.
fn bytes_in_of_accepted(got: &[Received], thing: &str, short: bool) -> Vec<(u64, u64)> {
    let (path, key) = if short {
        ("/met/ns", "bi")
    } else {
        ("/metrics/network_stats", "bytes_in")
    };
    accepted_for(got, thing)
        .iter()
        .filter_map(|r| {
            let ns = r.value.as_ref()?.pointer(path)?;
            Some((r.report_id?, ns.get(key)?.as_u64()?))
        })
        .collect()
}

/// The highest report id the backend has received so far.
fn last_report_id(backend: &Backend) -> u64 {
    backend
        .received()
        .iter()
        .filter_map(|r| r.report_id)
        .max()
        .unwrap()
}

/// Waits up to `limit` for an accepted report of `thing` with network_stats and an id above
/// `after`; the first such (report id, bytes_in).
async fn first_stats_after(
    backend: &Backend,
    thing: &str,
    short: bool,
    after: u64,
    limit: Duration,
) -> Option<(u64, u64)> {
    let find = || {
        bytes_in_of_accepted(&backend.received(), thing, short)
            .into_iter()
            .find(|(id, _)| *id > after)
    };
    eventually(limit, || find().is_some()).await;
    find()
}

/// Sends `bytes` through a loopback TCP connection (counted on `lo`).
async fn loopback_traffic(bytes: usize) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let reader = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 64 * 1024];
        let mut n = 0;
        while n < bytes {
            let r = s.read(&mut buf).await.unwrap();
            if r == 0 {
                break;
            }
            n += r;
        }
        n
    });
    let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
    let chunk = vec![7u8; 64 * 1024];
    let mut sent = 0;
    while sent < bytes {
        c.write_all(&chunk).await.unwrap();
        sent += chunk.len();
    }
    drop(c);
    assert!(reader.await.unwrap() >= bytes);
}

#[tokio::test]
async fn outages_rejections_and_missed_verdicts_roll_traffic_into_the_next_accepted_report() {
    const OUTAGE_BYTES: usize = 8 * 1024 * 1024;
    const REJECTED_BYTES: usize = 4 * 1024 * 1024;
    const SILENT_BYTES: usize = 5 * 1024 * 1024;
    let pki = Pki::generate();
    let mut broker = Broker::start(&pki);
    let backend = Backend::start(&pki, broker.port).await;
    let work = tempfile::tempdir().unwrap();
    let cfg = config(&Setup {
        dir: work.path(),
        port: broker.port,
        ca: &pki.ca,
        id: &pki.client_rsa,
        format: "json",
        interval: 1,
        // Loopback counts here: the test's traffic runs over lo.
        extra: "[collect]\ninclude_interfaces = [\"lo\"]\nexclude_interfaces = []\n",
    });
    let mut agent = spawn(&cfg, &[]);
    let thing = pki.client_rsa.name.clone();
    let with_stats = |got: &[Received]| bytes_in_of_accepted(got, &thing, false);
    assert!(
        eventually(Duration::from_secs(30), || !with_stats(&backend.received())
            .is_empty())
        .await,
        "no accepted report with network_stats; log:\n{}",
        agent.log()
    );

    // Outage: the broker is down while traffic flows; reports are not delivered.
    broker.stop();
    let subs = backend.subscriptions();
    loopback_traffic(OUTAGE_BYTES).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        agent.alive(),
        "agent died during the outage; log:\n{}",
        agent.log()
    );
    let last_before = last_report_id(&backend);
    broker.start_again();
    backend.wait_subscribed(subs).await;
    let after = first_stats_after(
        &backend,
        &thing,
        false,
        last_before,
        Duration::from_secs(60),
    )
    .await
    .unwrap_or_else(|| {
        panic!(
            "no accepted report after the broker came back; log:\n{}",
            agent.log()
        )
    });
    assert!(
        after.1 >= OUTAGE_BYTES as u64,
        "first accepted report after the outage has bytes_in {} < {OUTAGE_BYTES}; log:\n{}",
        after.1,
        agent.log()
    );

    // Rejections (Throttled): the agent carries on; the traffic shows up once accepted.
    backend.set_mode(Mode::Reject {
        code: "Throttled".into(),
        message: "too fast".into(),
        with_report_id: false,
    });
    let n = backend.received().len();
    assert!(eventually(Duration::from_secs(20), || backend.received().len() > n).await);
    loopback_traffic(REJECTED_BYTES).await;
    let n = backend.received().len();
    assert!(
        eventually(Duration::from_secs(20), || backend.received().len()
            >= n + 2)
        .await
    );
    let last_rejected = last_report_id(&backend);
    backend.set_mode(Mode::Validate);
    let first_ok = first_stats_after(
        &backend,
        &thing,
        false,
        last_rejected,
        Duration::from_secs(20),
    )
    .await
    .expect("no accepted report after the rejections stopped");
    assert!(
        first_ok.1 >= REJECTED_BYTES as u64,
        "accepted report after rejections has bytes_in {} < {REJECTED_BYTES}",
        first_ok.1
    );

    // The backend misses a report (as when it reconnects after a broker restart later than
    // the agent): the broker acks it but no verdict comes, so its traffic is not settled.
    backend.set_mode(Mode::Silent);
    loopback_traffic(SILENT_BYTES).await;
    let n = backend.received().len();
    assert!(eventually(Duration::from_secs(20), || backend.received().len() > n).await);
    let last_silent = last_report_id(&backend);
    backend.set_mode(Mode::Validate);
    let after_silence = first_stats_after(
        &backend,
        &thing,
        false,
        last_silent,
        Duration::from_secs(20),
    )
    .await
    .expect("no accepted report after the backend answered again");
    let log = agent.log();
    assert!(
        after_silence.1 >= SILENT_BYTES as u64,
        "accepted report after a verdict-less ack has bytes_in {} < {SILENT_BYTES}; log:\n{log}",
        after_silence.1
    );
    assert!(log.contains("Throttled"), "rejection not logged:\n{log}");
    let (status, _) = agent.stop().await;
    assert!(status.success());
}

#[tokio::test]
async fn tls_failures_back_off_without_crashing() {
    let pki = Pki::generate();
    let broker = Broker::start(&pki);
    let work = tempfile::tempdir().unwrap();
    let cases: [(&str, PathBuf, Identity, &str); 3] = [
        (
            "wrong-ca",
            pki.other_ca.clone(),
            pki.client_ec.clone(),
            "certificate",
        ),
        (
            "missing-cert",
            pki.ca.clone(),
            Identity {
                name: "thing-missing".into(),
                cert: pki.missing("client.pem"),
                key: pki.client_ec.key.clone(),
            },
            "client.pem",
        ),
        (
            "expired",
            pki.ca.clone(),
            pki.client_expired.clone(),
            "MQTT connection failed",
        ),
    ];
    for (name, ca, id, needle) in cases {
        let dir = work.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let cfg = config(&Setup {
            dir: &dir,
            port: broker.port,
            ca: &ca,
            id: &id,
            format: "cbor",
            interval: 1,
            extra: "",
        });
        let mut agent = spawn(&cfg, &[]);
        let seen = eventually(Duration::from_secs(15), || {
            let log = agent.log();
            log.matches("MQTT connection failed").count() >= 2 && log.contains(needle)
        })
        .await;
        assert!(agent.alive(), "{name}: agent died; log:\n{}", agent.log());
        assert!(
            seen,
            "{name}: no clear, repeated error; log:\n{}",
            agent.log()
        );
        let log = agent.log();
        assert!(!log.contains("panicked"), "{name}: {log}");
        let (status, took) = agent.stop().await;
        assert!(status.success(), "{name}: exit {status:?}");
        assert!(
            took < Duration::from_secs(5),
            "{name}: SIGTERM took {took:?}"
        );
    }
}

#[tokio::test]
async fn systemd_notify_reload_and_stop() {
    let pki = Pki::generate();
    let broker = Broker::start(&pki);
    let backend = Backend::start(&pki, broker.port).await;
    let work = tempfile::tempdir().unwrap();
    let sock_path = work.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    // Drain the socket all the time, as systemd does.
    let inbox = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (inbox, done) = (inbox.clone(), done.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(n) = sock.recv(&mut buf) {
                    let m = String::from_utf8_lossy(&buf[..n]).into_owned();
                    inbox.lock().unwrap().push(m);
                }
            }
        })
    };
    let cfg = config(&Setup {
        dir: work.path(),
        port: broker.port,
        ca: &pki.ca,
        id: &pki.client_sec1,
        format: "json",
        interval: 1,
        extra: "",
    });
    let mut agent = spawn(
        &cfg,
        &[
            ("NOTIFY_SOCKET", sock_path.to_str().unwrap()),
            ("WATCHDOG_USEC", "1000000"),
        ],
    );
    let mut messages: Vec<String> = Vec::new();
    let drain = |messages: &mut Vec<String>| {
        *messages = inbox.lock().unwrap().clone();
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        drain(&mut messages);
        let ready = messages.iter().any(|m| m == "READY=1");
        let watchdog = messages.iter().filter(|m| *m == "WATCHDOG=1").count();
        let accepted_status = messages
            .iter()
            .any(|m| m.starts_with("STATUS=connected") && m.contains("accepted"));
        if ready && watchdog >= 2 && accepted_status {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(messages.iter().any(|m| m == "READY=1"), "{messages:?}");
    assert!(
        messages.iter().filter(|m| *m == "WATCHDOG=1").count() >= 2,
        "{messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("STATUS=connected") && m.contains("accepted")),
        "{messages:?}"
    );

    // An invalid config on SIGHUP is refused; the agent keeps reporting with the old one.
    let good = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, format!("{good}\nbogus_key = 1\n")).unwrap();
    agent.signal(libc::SIGHUP);
    assert!(
        eventually(Duration::from_secs(10), || agent
            .log()
            .contains("old one stays"))
        .await,
        "{}",
        agent.log()
    );
    let n = backend.received().len();
    assert!(
        eventually(Duration::from_secs(15), || backend.received().len()
            >= n + 2)
        .await
    );
    assert!(agent.alive());

    // A valid new config is taken: cbor from now on.
    std::fs::write(&cfg, good.replace("format = \"json\"", "format = \"cbor\"")).unwrap();
    agent.signal(libc::SIGHUP);
    assert!(
        eventually(Duration::from_secs(20), || {
            backend.received().iter().any(|r| {
                r.thing == pki.client_sec1.name && r.format == "cbor" && r.rejected.is_none()
            })
        })
        .await,
        "reload to cbor not taken; log:\n{}",
        agent.log()
    );
    // The interval warning once per config generation: at start and at the valid reload.
    let log = agent.log();
    assert_eq!(log.matches("throttles").count(), 2, "{log}");
    let (status, took) = agent.stop().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    reader.join().unwrap();
    drain(&mut messages);
    assert!(status.success(), "exit {status:?}");
    assert!(took < Duration::from_secs(5));
    assert!(messages.iter().any(|m| m == "STOPPING=1"), "{messages:?}");
}

#[tokio::test]
async fn traffic_while_the_agent_is_stopped_is_in_the_first_report_after_restart() {
    const STOPPED_BYTES: usize = 6 * 1024 * 1024;
    let pki = Pki::generate();
    let broker = Broker::start(&pki);
    let backend = Backend::start(&pki, broker.port).await;
    let work = tempfile::tempdir().unwrap();
    let cfg = config(&Setup {
        dir: work.path(),
        port: broker.port,
        ca: &pki.ca,
        id: &pki.client_ec,
        format: "cbor-short",
        interval: 1,
        extra: "[collect]\ninclude_interfaces = [\"lo\"]\nexclude_interfaces = []\n",
    });
    let thing = pki.client_ec.name.clone();
    let with_stats = |got: &[Received]| bytes_in_of_accepted(got, &thing, true);
    let agent = spawn(&cfg, &[]);
    assert!(
        eventually(Duration::from_secs(30), || !with_stats(&backend.received())
            .is_empty())
        .await,
        "no accepted report with network_stats; log:\n{}",
        agent.log()
    );
    let (status, _) = agent.stop().await;
    assert!(status.success());
    let last_before = last_report_id(&backend);

    loopback_traffic(STOPPED_BYTES).await;

    let agent = spawn(&cfg, &[]);
    assert!(
        first_stats_after(&backend, &thing, true, last_before, Duration::from_secs(30))
            .await
            .is_some(),
        "no accepted report after the restart; log:\n{}",
        agent.log()
    );
    // The very first accepted report after the restart carries the delta (the baseline was
    // on disk), not only a later one.
    let got = backend.received();
    let first_id = accepted_for(&got, &thing)
        .iter()
        .filter_map(|r| r.report_id)
        .filter(|id| *id > last_before)
        .min()
        .unwrap();
    let first = with_stats(&got)
        .into_iter()
        .find(|(id, _)| *id == first_id)
        .expect("first report after the restart has no network_stats");
    assert!(
        first.1 >= STOPPED_BYTES as u64,
        "first report after the restart has bytes_in {} < {STOPPED_BYTES}",
        first.1
    );
    let (status, _) = agent.stop().await;
    assert!(status.success());
}

#[tokio::test]
async fn sigterm_during_a_publish_waiting_for_its_verdict_exits_within_5_s() {
    let pki = Pki::generate();
    let broker = Broker::start(&pki);
    let backend = Backend::start(&pki, broker.port).await;
    backend.set_mode(Mode::Silent);
    let work = tempfile::tempdir().unwrap();
    let cfg = config(&Setup {
        dir: work.path(),
        port: broker.port,
        ca: &pki.ca,
        id: &pki.client_rsa,
        format: "json",
        interval: 1,
        extra: "",
    });
    // A verdict that never comes would hold the cycle for 30 s.
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        text.replace("verdict_timeout_secs = 3", "verdict_timeout_secs = 30"),
    )
    .unwrap();
    let agent = spawn(&cfg, &[]);
    assert!(
        eventually(Duration::from_secs(20), || !backend.received().is_empty()).await,
        "no report reached the broker; log:\n{}",
        agent.log()
    );
    let (status, took) = agent.stop().await;
    assert!(status.success(), "exit {status:?}");
    assert!(took < Duration::from_secs(5), "SIGTERM took {took:?}");
}

/// A state directory that takes no writes (a full or read-only disk) costs persistence, not
/// the reports: they are still published with rising ids, and the failure is logged.
#[tokio::test]
async fn reports_go_on_when_the_state_dir_takes_no_writes() {
    let pki = Pki::generate();
    let broker = Broker::start(&pki);
    let backend = Backend::start(&pki, broker.port).await;
    let work = tempfile::tempdir().unwrap();
    let state = work.path().join("state");
    // A directory where each atomic write puts its temp file: every write fails, even as root.
    for blocker in [".report_id.tmp", ".baseline.json.tmp"] {
        std::fs::create_dir_all(state.join(blocker)).unwrap();
    }
    let cfg = config(&Setup {
        dir: work.path(),
        port: broker.port,
        ca: &pki.ca,
        id: &pki.client_ec,
        format: "json-short",
        interval: 1,
        extra: "",
    });
    let agent = spawn(&cfg, &[]);
    let thing = pki.client_ec.name.clone();
    let ok = eventually(Duration::from_secs(30), || {
        accepted_for(&backend.received(), &thing).len() >= 2
    })
    .await;
    let log = agent.log();
    let (status, _) = agent.stop().await;
    assert!(ok, "no two accepted reports; log:\n{log}");
    assert!(status.success());
    assert!(log.contains("cannot persist the report id"), "{log}");
    let got = backend.received();
    let ids: Vec<u64> = accepted_for(&got, &thing)
        .iter()
        .filter_map(|r| r.report_id)
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    assert!(!state.join("report_id").exists());
}

/// A verdict that comes after the agent stopped waiting for it (but before the next report)
/// still settles that report: its traffic is not counted again in the next one.
#[tokio::test]
async fn a_late_acceptance_settles_its_report_before_the_next_one() {
    // Far above what the other tests of this file send over lo at the same time (< 24 MiB).
    const LATE_BYTES: usize = 64 * 1024 * 1024;
    let pki = Pki::generate();
    let broker = Broker::start(&pki);
    let backend = Backend::start(&pki, broker.port).await;
    let work = tempfile::tempdir().unwrap();
    let cfg = config(&Setup {
        dir: work.path(),
        port: broker.port,
        ca: &pki.ca,
        id: &pki.client_sec1,
        format: "cbor",
        interval: 8,
        extra: "[collect]\ninclude_interfaces = [\"lo\"]\nexclude_interfaces = []\n",
    });
    // Timeline per slot: publish at 0, the wait ends at 2 s, the late verdict comes at 4 s,
    // the next slot is at 8 s.
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        text.replace("verdict_timeout_secs = 3", "verdict_timeout_secs = 2"),
    )
    .unwrap();
    let agent = spawn(&cfg, &[]);
    let thing = pki.client_sec1.name.clone();
    let with_stats = |got: &[Received]| bytes_in_of_accepted(got, &thing, false);
    assert!(
        eventually(Duration::from_secs(40), || !with_stats(&backend.received())
            .is_empty())
        .await,
        "no accepted report with network_stats; log:\n{}",
        agent.log()
    );
    backend.set_mode(Mode::Late(Duration::from_secs(4)));
    let before = last_report_id(&backend);
    loopback_traffic(LATE_BYTES).await;
    let late = first_stats_after(&backend, &thing, false, before, Duration::from_secs(20))
        .await
        .expect("no report after the traffic");
    backend.set_mode(Mode::Validate);
    let next = first_stats_after(&backend, &thing, false, late.0, Duration::from_secs(30))
        .await
        .expect("no report after the late one");
    let log = agent.log();
    let (status, _) = agent.stop().await;
    assert!(status.success());
    assert!(
        late.1 >= LATE_BYTES as u64,
        "late-accepted report has bytes_in {} < {LATE_BYTES}; log:\n{log}",
        late.1
    );
    assert!(
        next.1 < LATE_BYTES as u64,
        "the report after a late acceptance counted its traffic again ({} bytes); log:\n{log}",
        next.1
    );
    assert!(log.contains("late verdict"), "{log}");
}
