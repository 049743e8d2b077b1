//! The cost of one group calibration of one ML behavior over 100 000 stored models (docs/ml.md
//! §Group calibration): every model decoded (before) against the fleet's bounded sample (after).
//!
//! `cargo run -p detect-engine --release --example group_cost` (timings depend on the machine
//! and its load; the "before" half holds 100 000 models, about 400 MB, at once).

use std::time::Instant;

use detect::learn::{Group, Model, Unit, persist};

const THINGS: usize = 100_000;
/// As detect-fleet's `judge_groups::SAMPLE` and `DECODE_LIMIT`.
const SAMPLE: usize = 2_000;
const DECODE_LIMIT: usize = 2 * SAMPLE;
const DISTINCT: u64 = 64;

fn main() {
    // 64 distinct stored models of two days at 300 s (hex, as the fleet's records hold them);
    // thing `i` holds model `i % 64`.
    let hexes: Vec<String> = (0..DISTINCT)
        .map(|k| {
            let mut m = Model::default();
            let scale = 10_000 + k * 700;
            for i in 0..576u64 {
                let x = scale + scale * ((i * 37 + k * 11) % 41) / 100;
                m.observe(1_767_225_600_000 + i * 300_000, x, Unit::Bytes);
            }
            persist::to_hex(&m)
        })
        .collect();
    let names: Vec<String> = (0..THINGS).map(|i| format!("thing-{i:06}")).collect();

    let t = Instant::now();
    let all: Vec<Model> = (0..THINGS)
        .filter_map(|i| persist::from_hex(&hexes[i % DISTINCT as usize]).ok())
        .collect();
    let decode = t.elapsed();
    let t = Instant::now();
    let before = Group::calibrate(&all);
    let calibrate = t.elapsed();
    println!(
        "before: {THINGS} models decoded in {:.0} ms, calibrated in {:.0} ms ({} MB of models at once)",
        decode.as_secs_f64() * 1e3,
        calibrate.as_secs_f64() * 1e3,
        (THINGS * std::mem::size_of::<Model>()) >> 20
    );
    drop(all);

    let t = Instant::now();
    let mut order: Vec<(u64, usize)> = names.iter().enumerate().map(|(i, n)| (fnv(n), i)).collect();
    order.sort_unstable();
    let mut sample = Vec::new();
    for &(_, i) in order.iter().take(DECODE_LIMIT) {
        if let Ok(m) = persist::from_hex(&hexes[i % DISTINCT as usize])
            && m.active()
        {
            sample.push(m);
            if sample.len() == SAMPLE {
                break;
            }
        }
    }
    let chosen = t.elapsed();
    let t = Instant::now();
    let after = Group::calibrate(&sample);
    let calibrate = t.elapsed();
    println!(
        "after:  {THINGS} names hashed and sorted, {} models decoded in {:.0} ms, calibrated in {:.0} ms ({} MB of models at once)",
        sample.len(),
        chosen.as_secs_f64() * 1e3,
        calibrate.as_secs_f64() * 1e3,
        (sample.len() * std::mem::size_of::<Model>()) >> 20
    );
    let (b, a) = (before.map(|g| g.point), after.map(|g| g.point));
    println!("point thresholds (Q16) from all: {b:?}; from the sample: {a:?}");
}

/// As detect-fleet's `judge_groups::name_hash`.
fn fnv(name: &str) -> u64 {
    detect::hash::fnv1a(name.as_bytes())
}
