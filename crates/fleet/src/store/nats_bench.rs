//! `scripts/bench-store`: per-commit latency and commits/s of the NATS store against a local
//! single nats-server (JetStream, one replica), its CPU and the messages written per report.
//! Prints figures; an ignored test, never timed.

use std::time::{Duration, Instant};

use super::conformance::{nats_options, nats_server, step};
use super::*;

fn quantile(sorted: &[Duration], q: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted.get(i).map_or(0.0, |d| d.as_secs_f64() * 1e3)
}

/// One report's store work as the judge does it: answer lookup, load, commit.
#[test]
#[ignore = "prints figures: scripts/bench-store"]
fn nats_store_commit_figures() {
    let things: u64 = std::env::var("THINGS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let rounds: u64 = std::env::var("ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let (_dir, server) = nats_server();
    let mut opts = nats_options(&server);
    // NATS_SERVERS=nats://..,nats://.. REPLICAS=3: a cluster started by hand instead (no login).
    if let Ok(servers) = std::env::var("NATS_SERVERS") {
        opts.servers = servers.split(',').map(str::to_string).collect();
        opts.auth = NatsAuth::None;
        opts.replicas = std::env::var("REPLICAS")
            .ok()
            .and_then(|r| r.parse().ok())
            .unwrap_or(3);
    }
    let mut s = Nats::open(&opts).unwrap();
    // Fresh thing names per run: a cluster started by hand keeps the runs before.
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let (mut commits, mut reports) = (Vec::new(), Vec::new());
    let (stored_before, server) = (stored(&s), server_pid());
    let cpu_before = server.map(detect_testkit::proc_stat::cpu);
    let start = Instant::now();
    for round in 0..rounds {
        for t in 0..things {
            let thing = format!("thing-{run}-{t}");
            let began = Instant::now();
            assert_eq!(s.answer(&thing, round + 1).unwrap(), None);
            let version = s.load(&thing).unwrap().version;
            let at = Instant::now();
            s.commit(&[step(&thing, version, round + 1, &["p"])])
                .unwrap();
            commits.push(at.elapsed());
            reports.push(began.elapsed());
        }
    }
    s.sync().unwrap();
    let total = start.elapsed().as_secs_f64();
    let cpu_after = server.map(detect_testkit::proc_stat::cpu);
    commits.sort();
    reports.sort();
    let n = commits.len();
    println!(
        "nats store, {} (replicas {}), {things} things x {rounds} reports, one at a time:",
        opts.servers.join(","),
        opts.replicas
    );
    println!(
        "  commit: p50 {:.2} ms, p99 {:.2} ms; report (answer + load + commit): p50 {:.2} ms, p99 {:.2} ms",
        quantile(&commits, 0.5),
        quantile(&commits, 0.99),
        quantile(&reports, 0.5),
        quantile(&reports, 0.99)
    );
    println!(
        "  {:.0} reports/s through one handle ({n} in {total:.1} s)",
        n as f64 / total
    );
    if let (Some(b), Some(a)) = (cpu_before, cpu_after) {
        let us = a.saturating_sub(b).as_secs_f64() * 1e6 / n as f64;
        println!("  nats-server CPU: {us:.0} µs per report");
    }
    println!("  JetStream messages written per report:");
    let mut all = 0.0;
    for (name, after) in stored(&s) {
        let before = stored_before.iter().find(|(b, _)| *b == name);
        let per = (after - before.map_or(0, |(_, b)| *b).min(after)) as f64 / n as f64;
        if per > 0.0 {
            println!("    {name:<28} {per:.3}");
        }
        all += per;
    }
    println!("    {:<28} {all:.3}", "all streams");
}

/// (stream, last sequence) of every JetStream stream: the messages written so far.
fn stored(s: &Nats) -> Vec<(String, u64)> {
    let context = s.js.context.clone();
    let got = s.bridge.run("stream infos", async move {
        let mut out = Vec::new();
        let mut streams = context.streams();
        while let Some(info) = futures_util::StreamExt::next(&mut streams).await {
            let info = info.map_err(|e| nats::backend("stream infos", e))?;
            out.push((info.config.name.clone(), info.state.last_sequence));
        }
        Ok(out)
    });
    got.unwrap()
}

/// The nats-server this test started (a child of this process), if any.
fn server_pid() -> Option<u32> {
    let me = std::process::id().to_string();
    let dirs = std::fs::read_dir("/proc").ok()?;
    dirs.flatten().find_map(|d| {
        let stat = std::fs::read_to_string(d.path().join("stat")).ok()?;
        let (comm, rest) = stat.split_once(") ")?;
        let parent = rest.split_whitespace().nth(1)?;
        let ours = comm.ends_with("(nats-server") && parent == me;
        ours.then(|| d.file_name().to_str()?.parse().ok()).flatten()
    })
}
