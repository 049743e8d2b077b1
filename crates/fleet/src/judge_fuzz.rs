//! A deterministic mutation fuzzer for the judge (issue #17 item 6): mutated reports in both
//! encodings, on a few things' topics, at times with random gaps, through the judge and the
//! in-memory store. Nothing may panic or fail, and every report gets one answer.
//!
//! Short in every test run; by hand: `FUZZ_JUDGE_ITERATIONS=100000 FUZZ_JUDGE_SEED=3 cargo
//! test --release -p detect-fleet --bin detect-fleet judge::fuzz -- --nocapture`.

use ::fuzz::{Mutator, Rng};
use detect::{STALE_AFTER_MS, profile, seeded_ids};

use super::*;
use crate::config::Attach;
use crate::store::{Memory, ThingRecords};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// Near-valid edits: few, small, from JSON's own characters half the time.
const MUTATOR: Mutator = Mutator {
    pool: b"0123456789-.,:[]{}\" null",
    ..Mutator::TEXT
};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn mutated_reports_are_each_answered_once_and_nothing_fails() {
    let iterations = env("FUZZ_JUDGE_ITERATIONS", 300);
    let mut rng = Rng::new(env("FUZZ_JUDGE_SEED", 1));
    let worked = format!("{ROOT}/tests/fixtures/detect-worked-example");
    let loaded = profile::load_all(&[
        format!("{ROOT}/config/profiles/baseline.json").into(),
        format!("{worked}/profile.json").into(),
    ])
    .expect("seed profiles");
    let attach: Vec<Attach> = loaded
        .profiles
        .iter()
        .map(|p| Attach {
            profile: p.name.clone(),
            target: "all-things".into(),
        })
        .collect();
    let mut judge = Judge::new(
        loaded.profiles,
        Attachments::new(&attach),
        1,
        None,
        seeded_ids(7),
    );
    let mut store = Memory::new();
    let seeds: Vec<serde_json::Value> = (1..=6)
        .map(|i| {
            let json = std::fs::read(format!("{worked}/r{i}.json")).expect("seed report");
            serde_json::from_slice(&json).expect("seed is JSON")
        })
        .collect();
    let things = ["gw-1", "gw-2", "a:b_c-3"];
    let (mut now, mut accepted) = (1_800_000_000_000u64, 0);
    for _ in 0..iterations {
        now += match rng.below(10) {
            0 => STALE_AFTER_MS + 1,
            1 => 0,
            _ => 1000 * (1 + rng.below(600) as u64),
        };
        // A fresh, increasing report_id most of the time, so most reports get evaluated.
        let mut v = seeds[rng.below(seeds.len())].clone();
        if rng.below(8) != 0 {
            v["header"]["report_id"] = now.into();
        }
        let mut enc = ["json", "cbor"][rng.below(2)];
        let mut seed = vec![];
        if enc == "json" {
            seed = serde_json::to_vec(&v).expect("JSON");
        } else {
            ciborium::into_writer(&v, &mut seed).expect("CBOR");
        }
        let payload = if rng.below(4) == 0 {
            seed
        } else {
            MUTATOR.mutate(&mut rng, &seed)
        };
        if rng.below(10) == 0 {
            enc = if enc == "json" { "cbor" } else { "json" };
        }
        let thing = things[rng.below(things.len())];
        let topic = ReportTopic::parse(&format!("$aws/things/{thing}/defender/metrics/{enc}"))
            .expect("topic");
        let h = judge
            .handle(&mut store, &topic, &payload, now)
            .expect("the memory store does not fail");
        store.sync().expect("sync");
        assert_eq!(h.answer_topic, topic.answer_topic(h.accepted));
        assert!(!h.answer.is_empty());
        assert!(
            h.accepted || h.events.is_empty(),
            "a rejected report evaluated"
        );
        accepted += usize::from(h.accepted);
        judge
            .sweep(&mut store, now)
            .expect("the memory store does not fail");
    }
    println!("judge fuzz: {iterations} reports, {accepted} accepted, none failed");
}
