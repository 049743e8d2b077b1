//! `scripts/bench-store`: per-commit latency and commits/s of the NATS store against a local
//! single nats-server (JetStream, one replica). Prints figures; an ignored test, never timed.

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
    let mut s = Nats::open(&nats_options(&server)).unwrap();
    let (mut commits, mut reports) = (Vec::new(), Vec::new());
    let start = Instant::now();
    for round in 0..rounds {
        for t in 0..things {
            let thing = format!("thing-{t}");
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
    let total = start.elapsed().as_secs_f64();
    commits.sort();
    reports.sort();
    let n = commits.len();
    println!(
        "nats store, 1 nats-server (replicas 1), {things} things x {rounds} reports, one at a time:"
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
}
