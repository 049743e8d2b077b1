//! `detect-agent run` with `[[custom_metrics]]` against a real mosquitto (mutual TLS) and the
//! strict test backend: custom metrics of all four types accepted in json and cbor-short,
//! failing ones left out with a warning while the report still goes out.
use std::time::{Duration, Instant};

use crate::custom::{all_dead, file, hung_with_pids, script, table};
use detect_testkit::agent::{Setup, accepted_for, config, spawn};
use detect_testkit::{Backend, Broker, Pki, eventually};

/// `[[custom_metrics]]`: every type and source, one failing and one hung command.
fn custom_tables(dir: &std::path::Path) -> String {
    [
        table("cpu_usage", "number", "builtin = \"cpu_usage\""),
        table("processes", "number", "builtin = \"process_count\""),
        table("temps", "number-list", &file(dir, "temps", "41.5\n42\n")),
        table(
            "fw_modules",
            "string-list",
            &script(dir, "modules.sh", "echo net\necho ota\n"),
        ),
        table(
            "peers",
            "ip-address-list",
            &file(dir, "peers", "[\"198.51.100.2\", \"2001:db8::9\"]\n"),
        ),
        table(
            "broken",
            "number",
            &script(dir, "failing.sh", "echo 'no sensor' >&2\nexit 4\n"),
        ),
        table(
            "hung",
            "number",
            &(script(dir, "hung.sh", "sleep 1000 &\nwait\n") + "\ntimeout_secs = 1"),
        ),
    ]
    .concat()
}

/// The agent's config for the client_ec identity against `port`.
fn agent_config(
    dir: &std::path::Path,
    pki: &Pki,
    port: u16,
    format: &str,
    interval: u64,
    extra: &str,
) -> std::path::PathBuf {
    config(&Setup {
        dir,
        port,
        ca: &pki.ca,
        id: &pki.client_ec,
        format,
        interval,
        extra,
    })
}

#[tokio::test]
async fn reports_with_custom_metrics_of_all_four_types_are_accepted_in_json_and_cbor_short() {
    let pki = Pki::generate();
    let broker = Broker::start(&pki);
    let backend = Backend::start(&pki, broker.port).await;
    let work = tempfile::tempdir().unwrap();
    let extra = custom_tables(work.path());
    let thing = &pki.client_ec.name;
    for format in ["json", "cbor-short"] {
        let cfg = agent_config(work.path(), &pki, broker.port, format, 2, &extra);
        let agent = spawn(&cfg, &[]);
        let before = accepted_for(&backend.received(), thing).len();
        let ok = eventually(Duration::from_secs(40), || {
            accepted_for(&backend.received(), thing).len() >= before + 2
        })
        .await;
        let log = agent.log();
        let (status, _) = agent.stop().await;
        assert!(ok, "{format}: no two accepted reports; log:\n{log}");
        assert!(status.success(), "{format}: exit {status:?}");
        let got = backend.received();
        let accepted = accepted_for(&got, thing);
        for r in &accepted[before..] {
            assert_eq!(r.rejected, None, "{format}: {r:?}");
            let v = r.value.as_ref().unwrap();
            let key = if format == "json" {
                "custom_metrics"
            } else {
                "cmet"
            };
            let c = v[key]
                .as_object()
                .unwrap_or_else(|| panic!("{format}: no {key}: {v}"));
            let names: Vec<&str> = c.keys().map(String::as_str).collect();
            assert_eq!(
                names,
                ["cpu_usage", "fw_modules", "peers", "processes", "temps"],
                "{format}"
            );
            let cpu = c["cpu_usage"][0]["number"].as_f64().unwrap();
            assert!((0.0..=100.0).contains(&cpu), "{cpu}");
            assert!(c["processes"][0]["number"].as_f64().unwrap() >= 1.0);
            assert_eq!(
                c["temps"][0]["number_list"],
                serde_json::json!([41.5, 42.0])
            );
            assert_eq!(
                c["fw_modules"][0]["string_list"],
                serde_json::json!(["net", "ota"])
            );
            assert_eq!(
                c["peers"][0]["ip_list"],
                serde_json::json!(["198.51.100.2", "2001:db8::9"])
            );
        }
        // One warning per failed metric and report, naming the metric and why.
        for (metric, why) in [
            ("broken", "exited with status 4"),
            ("hung", "timeout of 1s"),
        ] {
            assert!(
                log.lines().any(|l| l.contains("custom metric left out")
                    && l.contains(&format!("metric={metric}"))
                    && l.contains(why)),
                "{format}: no warning for {metric}; log:\n{log}"
            );
        }
    }
}

#[tokio::test]
async fn a_sighup_reload_picks_up_changed_custom_metrics_and_refuses_a_bad_one() {
    let pki = Pki::generate();
    let broker = Broker::start(&pki);
    let backend = Backend::start(&pki, broker.port).await;
    let work = tempfile::tempdir().unwrap();
    let thing = &pki.client_ec.name;
    let value = file(work.path(), "value", "1\n");
    let metric = |name: &str, kind: &str| table(name, kind, &value);
    let setup = |extra: &str| agent_config(work.path(), &pki, broker.port, "json", 2, extra);
    let first = metric("first", "number");
    let cfg = setup(&first);
    let agent = spawn(&cfg, &[]);
    let names_in_last = || {
        let got = backend.received();
        let last = accepted_for(&got, thing)
            .last()
            .and_then(|r| r.value.clone());
        last.and_then(|v| {
            Some(
                v["custom_metrics"]
                    .as_object()?
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>(),
            )
        })
    };
    let seen = |want: &'static [&'static str]| move || names_in_last().is_some_and(|n| n == want);
    assert!(
        eventually(Duration::from_secs(30), seen(&["first"])).await,
        "log:\n{}",
        agent.log()
    );
    // A bad table (type does not match the built-in) is refused; the old config stays.
    let bad = first.clone() + &table("x", "number", "builtin = \"kernel_modules\"");
    setup(&bad);
    agent.signal(libc::SIGHUP);
    assert!(
        eventually(Duration::from_secs(10), || agent
            .log()
            .contains("new configuration refused"))
        .await,
        "log:\n{}",
        agent.log()
    );
    let log = agent.log();
    let refused = log
        .lines()
        .find(|l| l.contains("new configuration refused"))
        .unwrap_or_default();
    assert!(
        refused.contains("custom_metrics[1]") && refused.contains("type:"),
        "{refused}"
    );
    // A good change is picked up.
    let second = format!("{first}{}", metric("second", "number-list"));
    setup(&second);
    agent.signal(libc::SIGHUP);
    assert!(
        eventually(Duration::from_secs(30), seen(&["first", "second"])).await,
        "log:\n{}",
        agent.log()
    );
    let (status, _) = agent.stop().await;
    assert!(status.success());
}

#[tokio::test]
async fn the_watchdog_is_fed_while_a_slow_command_runs() {
    let pki = Pki::generate();
    let broker = Broker::start(&pki);
    let backend = Backend::start(&pki, broker.port).await;
    let work = tempfile::tempdir().unwrap();
    let sock_path = work.path().join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    // When each WATCHDOG=1 arrived, drained all the time as systemd does.
    let pings = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Instant>::new()));
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (pings, done) = (pings.clone(), done.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(n) = sock.recv(&mut buf)
                    && &buf[..n] == b"WATCHDOG=1"
                {
                    pings.lock().unwrap().push(Instant::now());
                }
            }
        })
    };
    // Every cycle takes 3 s (the command's timeout): six watchdog periods of 0.5 s.
    let slow = table(
        "slow",
        "number",
        &(script(work.path(), "slow.sh", "sleep 1000\n") + "\ntimeout_secs = 3"),
    );
    let cfg = agent_config(work.path(), &pki, broker.port, "json", 4, &slow);
    let agent = spawn(
        &cfg,
        &[
            ("NOTIFY_SOCKET", sock_path.to_str().unwrap()),
            ("WATCHDOG_USEC", "1000000"),
        ],
    );
    let thing = &pki.client_ec.name;
    let ok = eventually(Duration::from_secs(30), || {
        accepted_for(&backend.received(), thing).len() >= 2
    })
    .await;
    let log = agent.log();
    let (status, _) = agent.stop().await;
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    reader.join().unwrap();
    assert!(ok, "no two accepted reports; log:\n{log}");
    assert!(status.success());
    assert!(log.contains("timeout of 3s"), "{log}");
    let pings = pings.lock().unwrap().clone();
    let gap = pings
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default();
    assert!(pings.len() >= 10, "{} pings", pings.len());
    // Fed at half of WATCHDOG_USEC all along, also during the 3 s cycles.
    assert!(gap < Duration::from_millis(1500), "longest gap {gap:?}");
}

#[tokio::test]
async fn sigterm_during_a_hung_command_kills_it_and_exits_within_5_s() {
    let pki = Pki::generate();
    let broker = Broker::start(&pki);
    let _backend = Backend::start(&pki, broker.port).await;
    let work = tempfile::tempdir().unwrap();
    let pids = work.path().join("pids");
    let body = hung_with_pids(&pids);
    let hung = table(
        "hung",
        "number",
        &(script(work.path(), "hung.sh", &body) + "\ntimeout_secs = 60"),
    );
    let cfg = agent_config(work.path(), &pki, broker.port, "json", 2, &hung);
    let agent = spawn(&cfg, &[]);
    assert!(
        eventually(Duration::from_secs(20), || pids.exists()).await,
        "the command never started; log:\n{}",
        agent.log()
    );
    let log = agent.log();
    let (status, took) = agent.stop().await;
    assert!(status.success(), "{status:?}; log:\n{log}");
    assert!(took < Duration::from_secs(5), "SIGTERM took {took:?}");
    all_dead(&pids).unwrap();
}
