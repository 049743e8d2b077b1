//! The learned model through the engine: a 40× jump alarms at every level and clears, a steady
//! month stays quiet, state is deterministic (golden checksum), restores, and survives damage.

use super::model::hours;
use super::persist::{crc32, from_hex, to_bytes};
use super::*;
use crate::engine::Engine;
use crate::event::{Event, EventType};
use crate::metrics::{Datapoint, MetricRef, Source};
use crate::observation::Observation;
use crate::profile::parse;
use protocol::NetworkStats;
use std::path::Path;

/// 2026-01-01 00:00 UTC (a Thursday), and the report interval.
const START: u64 = 1_767_225_600_000;
const STEP: u64 = 300_000;
const DAY: u64 = 288;

struct Obs {
    id: u64,
    bytes_out: u64,
    ports: u64,
}

impl Observation for Obs {
    fn id(&self) -> u64 {
        self.id
    }
    fn datapoint(&self, metric: &MetricRef) -> Option<Datapoint> {
        match metric {
            MetricRef::Aws(s) if s.source == Source::BytesOut => {
                Some(Datapoint::Count(self.bytes_out))
            }
            MetricRef::Aws(s) if s.source == Source::TcpPortCount => {
                Some(Datapoint::Count(self.ports))
            }
            _ => None,
        }
    }
    fn traffic(&self) -> Option<NetworkStats> {
        None
    }
    fn missing(&self, _: &MetricRef) -> String {
        String::new()
    }
}

fn profile(metric: &str) -> crate::profile::Profile {
    let b = |level: &str| {
        format!(
            r#"{{"name": "{level}", "metric": "{metric}", "criteria": {{"mlDetectionConfig": {{"confidenceLevel": "{level}"}}, "consecutiveDatapointsToAlarm": 1, "consecutiveDatapointsToClear": 2}}}}"#
        )
    };
    let text = format!(
        r#"{{"securityProfileName": "ml", "behaviors": [{}, {}, {}]}}"#,
        b("LOW"),
        b("MEDIUM"),
        b("HIGH")
    );
    parse(&text, Path::new("/p/ml.json")).unwrap().0
}

fn engine(metric: &str) -> Engine {
    Engine::new("dev", vec![profile(metric)], crate::ids::seeded_ids(7))
}

/// A steady device: bytes out with a daily rhythm (busy 08–20 UTC), quieter weekends and
/// ±30 % noise, from a fixed seed.
fn steady(i: u64, seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    let (w, h) = hours(START + i * STEP);
    let base: u64 = if (8..20).contains(&h) { 60_000 } else { 15_000 };
    let base = if w >= 5 * 24 { base * 6 / 10 } else { base };
    let noise = 70 + *seed % 61; // 70–130 %
    base * noise / 100
}

fn run(
    e: &mut Engine,
    from: u64,
    to: u64,
    seed: &mut u64,
    f: impl Fn(u64, u64) -> u64,
) -> Vec<Event> {
    let mut events = Vec::new();
    for i in from..to {
        let t = START + i * STEP;
        let o = Obs {
            id: t,
            bytes_out: f(i, steady(i, seed)),
            ports: 5,
        };
        events.extend(e.evaluate(&o, t));
    }
    events
}

fn kinds(events: &[Event]) -> Vec<(String, EventType)> {
    let v = events
        .iter()
        .map(|e| (e.behavior_name().to_string(), e.violation_event_type));
    v.collect()
}

#[test]
fn a_model_fits_in_4_kib() {
    assert!(
        std::mem::size_of::<Model>() <= 4096,
        "{}",
        std::mem::size_of::<Model>()
    );
    const { assert!(persist::ENCODED_LEN <= 4096) };
}

#[test]
fn a_steady_month_gives_no_alarm() {
    let mut e = engine("aws:all-bytes-out");
    let events = run(&mut e, 0, 30 * DAY, &mut 42, |_, x| x);
    assert_eq!(kinds(&events), vec![], "{events:#?}");
    let m = &e.models()[0].model;
    assert!(m.active() && m.seen == 30 * DAY as u32 && m.interval_s == 300);
}

#[test]
fn a_40x_jump_alarms_at_every_level_with_an_explanation_and_clears() {
    let mut e = engine("aws:all-bytes-out");
    let seed = &mut 42;
    assert!(run(&mut e, 0, 3 * DAY, seed, |_, x| x).is_empty());
    let attack = 3 * DAY..3 * DAY + 24; // two hours
    let events = run(&mut e, 3 * DAY, 3 * DAY + 48, seed, |i, x| {
        if attack.contains(&i) { x * 40 } else { x }
    });
    let k = kinds(&events);
    for level in ["LOW", "MEDIUM", "HIGH"] {
        let (raised, cleared) = (
            k.iter()
                .position(|(b, t)| b == level && *t == EventType::InAlarm),
            k.iter()
                .position(|(b, t)| b == level && *t == EventType::AlarmCleared),
        );
        assert!(raised.is_some() && cleared > raised, "{level}: {k:?}");
        let e = &events[raised.unwrap()];
        assert_eq!(
            e.violation_event_time,
            START + 3 * DAY * STEP,
            "alarms on the first datapoint"
        );
        let info = e.violation_event_additional_info.as_ref().unwrap();
        assert_eq!(info.confidence_level, level);
        let why = e.explanation.as_deref().unwrap();
        assert!(
            why.starts_with("aws:all-bytes-out ")
                && why.contains("× this device's usual for Sun 00:00–01:00 UTC"),
            "{why}"
        );
    }
    assert_eq!(e.active_alarms(), 0);
}

#[test]
fn a_sustained_attack_is_not_learned_as_normal_within_a_day() {
    let mut e = engine("aws:all-bytes-out");
    let seed = &mut 7;
    run(&mut e, 0, 3 * DAY, seed, |_, x| x);
    let events = run(&mut e, 3 * DAY, 4 * DAY, seed, |_, x| x * 40);
    assert_eq!(
        events.len(),
        3,
        "one in-alarm per level, no clear: {:?}",
        kinds(&events)
    );
    assert_eq!(e.active_alarms(), 3);
}

#[test]
fn a_new_listening_port_alarms() {
    let mut e = engine("aws:num-listening-tcp-ports");
    let seed = &mut 1;
    for i in 0..2 * DAY + 1 {
        let t = START + i * STEP;
        let ports = if i == 2 * DAY { 6 } else { 5 };
        let events = e.evaluate(
            &Obs {
                id: t,
                bytes_out: 0,
                ports,
            },
            t,
        );
        let _ = steady(i, seed);
        assert_eq!(events.len(), if i == 2 * DAY { 3 } else { 0 }, "{i}");
        if let Some(ev) = events.first() {
            let why = ev.explanation.as_deref().unwrap();
            assert!(
                why.contains("6 is above every value of this device in 2 days (highest 5)"),
                "{why}"
            );
        }
    }
}

/// The model after 10 days of the steady device, as bytes: the same on every platform. A
/// change of the model or its encoding changes this checksum on purpose (bump it with care:
/// saved models of the old version no longer load).
const GOLDEN_CRC: u32 = 2_526_110_606;

#[test]
fn state_is_deterministic_and_matches_the_golden_checksum() {
    let bytes = |seed: u64| {
        let mut e = engine("aws:all-bytes-out");
        run(&mut e, 0, 10 * DAY, &mut { seed }, |i, x| {
            if i % 997 == 0 { x * 30 } else { x }
        });
        to_bytes(&e.models()[2].model)
    };
    let a = bytes(42);
    assert_eq!(a, bytes(42));
    assert_ne!(a, bytes(43));
    let body = &a[..a.len() - 4]; // (the CRC of bytes ending in their own CRC is a constant)
    assert_eq!(
        crc32(body),
        GOLDEN_CRC,
        "golden checksum of the model bytes"
    );
}

#[test]
fn restore_continues_the_model_and_damage_restarts_it() {
    let mut a = engine("aws:all-bytes-out");
    run(&mut a, 0, 2 * DAY, &mut 5, |_, x| x);
    let saved = a.snapshot();
    let json = serde_json::to_string(&saved).unwrap();
    let state: crate::state::EngineState = serde_json::from_str(&json).unwrap();
    assert_eq!(state.models.len(), 3);
    let (mut b, _) = Engine::restore(
        "dev",
        vec![profile("aws:all-bytes-out")],
        crate::ids::seeded_ids(7),
        state.clone(),
        0,
    );
    assert_eq!(a.models(), b.models());
    // Continuing either gives the same model and events.
    let ea = run(&mut a, 2 * DAY, 3 * DAY, &mut 9, |i, x| {
        if i % 100 == 0 { x * 50 } else { x }
    });
    let eb = run(&mut b, 2 * DAY, 3 * DAY, &mut 9, |i, x| {
        if i % 100 == 0 { x * 50 } else { x }
    });
    assert_eq!(kinds(&ea), kinds(&eb));
    assert_eq!(a.models(), b.models());
    // One damaged model learns again; the others are kept.
    let mut damaged = state;
    let mut hex = damaged.models[1].model.to_hex();
    let flipped = if hex.as_bytes()[10] == b'0' { "1" } else { "0" };
    hex.replace_range(10..11, flipped);
    damaged.models[1].model = hex.into();
    assert!(from_hex(&damaged.models[1].model).is_err());
    let (c, _) = Engine::restore(
        "dev",
        vec![profile("aws:all-bytes-out")],
        crate::ids::seeded_ids(7),
        damaged,
        0,
    );
    let m = c.models();
    assert_eq!(
        (m[0].model.seen, m[1].model.seen, m[2].model.seen),
        (2 * DAY as u32, 0, 2 * DAY as u32)
    );
}

#[test]
fn a_changed_confidence_level_invalidates_the_alarm_and_keeps_the_model() {
    let mut e = engine("aws:all-bytes-out");
    let seed = &mut 3;
    run(&mut e, 0, 2 * DAY, seed, |_, x| x);
    run(&mut e, 2 * DAY, 2 * DAY + 1, seed, |_, x| x * 40);
    assert_eq!(e.active_alarms(), 3);
    let text = serde_json::to_string(&profile("aws:all-bytes-out").behaviors[0].json).unwrap();
    let low_to_high = text.replace("\"LOW\"", "\"HIGH\"");
    let mut p = profile("aws:all-bytes-out");
    p.behaviors[0] = {
        let doc = format!(r#"{{"securityProfileName": "ml", "behaviors": [{low_to_high}]}}"#);
        parse(&doc, Path::new("/p/ml.json"))
            .unwrap()
            .0
            .behaviors
            .remove(0)
    };
    let seen = e.models()[0].model.seen;
    let events = e.reload(vec![p], START + 2 * DAY * STEP + 1);
    assert_eq!(
        kinds(&events),
        vec![("LOW".to_string(), EventType::AlarmInvalidated)]
    );
    assert_eq!(
        events[0]
            .violation_event_additional_info
            .as_ref()
            .unwrap()
            .confidence_level,
        "LOW",
        "the behavior as it was"
    );
    assert_eq!(e.models()[0].model.seen, seen, "what was learned is kept");
    assert_eq!(e.active_alarms(), 2);
}

#[test]
fn custom_numbers_learn_and_cloud_side_metrics_learn_from_the_fleets_windows() {
    let text = r#"{"securityProfileName": "ml", "behaviors": [
        {"name": "temp", "metric": "cpu-temp", "criteria": {"mlDetectionConfig": {"confidenceLevel": "LOW"}}},
        {"name": "msgs", "metric": "aws:num-messages-sent", "criteria": {"mlDetectionConfig": {"confidenceLevel": "LOW"}}},
        {"name": "fails", "metric": "aws:num-authorization-failures", "criteria": {"mlDetectionConfig": {"confidenceLevel": "LOW"}}},
        {"name": "size", "metric": "aws:message-byte-size", "criteria": {"mlDetectionConfig": {"confidenceLevel": "LOW"}}}]}"#;
    let (p, warnings) = parse(text, Path::new("/p/ml.json")).unwrap();
    assert!(p.behaviors[0].evaluated_rule().is_some());
    // Cloud-side: a rule over the fleet's windows, each with its unit; not on the device.
    let units: Vec<Unit> = p.behaviors[1..]
        .iter()
        .map(
            |b| match b.evaluated_rule().map(|r| (&r.metric, &r.criterion)) {
                Some((crate::MetricRef::Cloud(c), crate::criteria::Criterion::Learned(l))) => {
                    assert_eq!(c.window_secs, 300);
                    l.unit
                }
                other => panic!("{}: {other:?}", b.name),
            },
        )
        .collect();
    assert_eq!(units, [Unit::Packets, Unit::Connections, Unit::Bytes]);
    assert_eq!(warnings.len(), 3);
    assert!(
        warnings[0].to_string().contains("measured by the broker"),
        "{}",
        warnings[0]
    );
    // The device never gets a datapoint for them: no model is kept for them there.
    let e = crate::Engine::new("d", vec![p.clone()], crate::seeded_ids(1));
    assert_eq!(e.models().len(), 1, "only the custom metric's");
    let rule = p.behaviors[0].evaluated_rule().unwrap();
    assert!(
        matches!(rule.criterion, crate::criteria::Criterion::Learned(l) if l.unit == Unit::Number)
    );
    assert_eq!(
        crate::criteria::Learned::value(&Datapoint::Number(-3.5)),
        Some(0)
    );
    assert_eq!(
        crate::criteria::Learned::value(&Datapoint::Number(41.9)),
        Some(41)
    );
}

#[test]
fn the_learned_interval_comes_back_exactly_after_a_long_gap() {
    let mut m = Model::default();
    let mut t = 1_767_225_600_000;
    for i in 0..200u64 {
        // One 600 s gap (a missed report) among 300 s ones.
        t += if i == 50 { 600_000 } else { 300_000 };
        m.observe(t, 1_000, Unit::Bytes);
    }
    assert_eq!(m.interval_s, 300);
    assert_eq!(m.per_day(), 288);
}
