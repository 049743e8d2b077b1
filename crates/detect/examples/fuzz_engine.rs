//! A deterministic mutation fuzzer for the Detect engine (issue #17 item 6): mutated profile
//! texts through the loader, mutated reports that still decode through an engine holding the
//! shipped and worked-example profiles, at times with random gaps. Nothing may panic.
//!
//! `cargo run -p detect-engine --release --example fuzz_engine -- [ITERATIONS] [SEED]`
//! (default 2000 iterations, seed 1; `scripts/test` runs a short round, run longer by hand).

use std::path::{Path, PathBuf};

use detect::profile::{load_all, parse};
use detect::{Engine, STALE_AFTER_MS, seeded_ids};
use fuzz::{Mutator, Rng};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

fn main() {
    let mut args = std::env::args().skip(1);
    let iterations: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(2000);
    let mut rng = Rng::new(args.next().and_then(|a| a.parse().ok()).unwrap_or(1));
    let mutate = |r: &mut Rng, b: &[u8]| Mutator::TEXT.mutate(r, b);
    let worked = PathBuf::from(format!("{ROOT}/tests/fixtures/detect-worked-example"));
    let paths = [
        PathBuf::from(format!("{ROOT}/config/profiles/baseline.json")),
        worked.join("profile.json"),
    ];
    let texts: Vec<String> = paths
        .iter()
        .map(|p| std::fs::read_to_string(p).expect("seed profile"))
        .collect();
    let loaded = load_all(&paths).expect("seed profiles load");
    let behaviors: usize = loaded.profiles.iter().map(|p| p.behaviors.len()).sum();
    let reports: Vec<Vec<u8>> = (1..=6)
        .map(|i| std::fs::read(worked.join(format!("r{i}.json"))).expect("seed report"))
        .collect();
    let mut engine = Engine::new("fuzz-thing", loaded.profiles, seeded_ids(7));
    let (mut time, mut evaluated, mut events, mut profiles_ok) = (1_700_000_000_000u64, 0, 0, 0);
    for _ in 0..iterations {
        if rng.below(8) == 0 {
            let t = &texts[rng.below(texts.len())];
            let text = String::from_utf8_lossy(&mutate(&mut rng, t.as_bytes())).into_owned();
            profiles_ok += usize::from(parse(&text, Path::new("/fuzz/p.json")).is_ok());
            continue;
        }
        let seed = &reports[rng.below(reports.len())];
        let bytes = if rng.below(4) == 0 {
            seed.clone()
        } else {
            mutate(&mut rng, seed)
        };
        let Ok(d) = protocol::decode(&bytes) else {
            continue;
        };
        time += match rng.below(10) {
            0 => STALE_AFTER_MS + 1,
            1 => 0,
            _ => 1000 * (1 + rng.below(600) as u64),
        };
        events += engine.evaluate(&d.report, time).len();
        let _ = engine.check(&d.report);
        evaluated += 1;
        assert!(
            engine.active_alarms() <= behaviors,
            "more alarms than behaviors"
        );
    }
    println!(
        "fuzz_engine: {iterations} inputs, {evaluated} reports evaluated, {events} events, \
         {profiles_ok} mutated profiles loaded, none panicked"
    );
}
