//! Figures for the learned model of ML behaviors (docs/ml.md §Figures): the median time per
//! datapoint per behavior, for the model alone and through the engine, and the state's size.
//!
//! `cargo run -p detect-engine --release --example bench_learned` (prints a few lines; timings
//! depend on the machine and its load).

use std::time::Instant;

use detect::learn::{Model, Unit, persist};
use detect::metrics::{Datapoint, MetricRef};
use detect::{Engine, Observation, seeded_ids};

const START: u64 = 1_767_225_600_000;
const STEP: u64 = 300_000;
/// 30 days at 300 s.
const POINTS: u64 = 30 * 288;
const ROUNDS: usize = 15;

fn value(i: u64) -> u64 {
    let hour = i / 12 % 24;
    let base = if (8..20).contains(&hour) {
        60_000
    } else {
        15_000
    };
    base * (80 + i * 37 % 41) / 100
}

/// A custom number metric with one value: what the engine asks of the report.
struct Obs(u64);

impl Observation for Obs {
    fn id(&self) -> u64 {
        self.0
    }
    fn datapoint(&self, _: &MetricRef) -> Option<Datapoint> {
        Some(Datapoint::Number(value(self.0) as f64))
    }
    fn traffic(&self) -> Option<protocol::NetworkStats> {
        None
    }
    fn missing(&self, _: &MetricRef) -> String {
        String::new()
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let mut model_us = Vec::new();
    let mut model = Model::default();
    for _ in 0..ROUNDS {
        model = Model::default();
        let t = Instant::now();
        for i in 0..POINTS {
            std::hint::black_box(model.observe(START + i * STEP, value(i), Unit::Bytes));
        }
        model_us.push(t.elapsed().as_secs_f64() * 1e6 / POINTS as f64);
    }
    let behaviors: Vec<String> = ["LOW", "MEDIUM", "HIGH", "MEDIUM", "LOW"]
        .iter()
        .enumerate()
        .map(|(i, l)| {
            format!(r#"{{"name": "b{i}", "metric": "m{i}", "criteria": {{"mlDetectionConfig": {{"confidenceLevel": "{l}"}}}}}}"#)
        })
        .collect();
    let text = format!(
        r#"{{"securityProfileName": "bench", "behaviors": [{}]}}"#,
        behaviors.join(",")
    );
    let (profile, _) = detect::profile::parse(&text, std::path::Path::new("bench.json"))
        .expect("the bench profile loads");
    let mut engine_us = Vec::new();
    let points = 8 * 288; // mostly past the one-day warm-up
    for _ in 0..ROUNDS {
        let mut e = Engine::new("bench", vec![profile.clone()], seeded_ids(1));
        let t = Instant::now();
        for i in 0..points {
            std::hint::black_box(e.evaluate(&Obs(i), START + i * STEP));
        }
        engine_us.push(t.elapsed().as_secs_f64() * 1e6 / points as f64 / 5.0);
    }
    let hex = persist::to_hex(&model);
    println!(
        "model alone:      {:.2} µs per datapoint (median of {ROUNDS} rounds of {POINTS})",
        median(model_us)
    );
    println!(
        "through engine:   {:.2} µs per datapoint per behavior (5 ML behaviors, {points} reports)",
        median(engine_us)
    );
    println!(
        "model in memory:  {} B (size_of::<Model>)",
        std::mem::size_of::<Model>()
    );
    println!(
        "model encoded:    {} B, {} B as hex in models.json",
        persist::ENCODED_LEN,
        hex.len()
    );
    println!("model status:     {}", model.describe());
}
