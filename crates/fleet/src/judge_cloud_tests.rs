//! The judge's cloud-side half with the memory store and fixed times: statistical thresholds
//! across the fleet's windows, late events, catching up, forgetting silent things.

use std::path::Path;

use detect::{Profile, STALE_AFTER_MS, profile, seeded_ids};
use protocol::broker::{Access, Direction, Event};
use serde_json::json;

use super::cloud::{BUCKET_MS, CloudSetup, MAX_WINDOWS_PER_TICK};
use super::*;
use crate::config::Attach;
use crate::sources::Delivery;
use crate::store::{Memory, ThingRecords, ViolationIndex};
use crate::window::Dimensions;

/// A bucket boundary in 2027.
const T0: u64 = 1_800_000_000_000;

fn judge(doc: serde_json::Value) -> Judge {
    let p: Profile = profile::parse(&doc.to_string(), Path::new("t.json"))
        .unwrap()
        .0;
    let attach = [Attach {
        profile: p.name.clone(),
        target: "all-things".into(),
    }];
    let mut j = Judge::new(vec![p], Attachments::new(&attach), 1, None, seeded_ids(3));
    j.set_cloud(CloudSetup::new(Dimensions::default(), None, "detect-fleet"));
    j
}

fn sent(thing: &str, from_ms: u64, msgs: u64) -> Event {
    Event::Traffic {
        from_ms,
        to_ms: from_ms + 1,
        client_id: thing.into(),
        topic: "t".into(),
        dir: Direction::Sent,
        msgs,
        bytes: msgs,
        min_bytes: 1,
        max_bytes: 1,
    }
}

fn delivery(seq: u64, events: Vec<Event>) -> Delivery {
    Delivery {
        source: "mosquitto-plugin",
        instance: "i".into(),
        seq,
        dropped: 0,
        events,
    }
}

#[test]
fn a_statistical_threshold_on_a_cloud_metric_flags_the_one_thing_far_above_the_others() {
    let mut j = judge(json!({"securityProfileName": "flood", "behaviors": [
        {"name": "rate", "metric": "aws:num-messages-sent", "criteria": {
            "comparisonOperator": "less-than-equals", "statisticalThreshold": {"statistic": "p90"},
            "durationSeconds": 300}}]}));
    let mut s = Memory::new();
    let things: Vec<String> = (0..10).map(|i| format!("d{i}")).collect();
    let first = things.iter().map(|t| sent(t, T0 + 1, 10)).collect();
    j.witness(&mut s, &delivery(0, first), T0).unwrap();
    let second = things
        .iter()
        .map(|t| sent(t, T0 + BUCKET_MS + 1, if t == "d9" { 1000 } else { 10 }))
        .collect();
    j.witness(&mut s, &delivery(1, second), T0).unwrap();
    // The first window has no population before it: nothing is judged.
    let w = j.close_windows(&mut s, T0 + BUCKET_MS + 20_000).unwrap();
    assert!(w.events.is_empty());
    let w = j
        .close_windows(&mut s, T0 + 2 * BUCKET_MS + 20_000)
        .unwrap();
    let alarmed: Vec<&str> = w
        .events
        .iter()
        .map(|r| r.event.thing_name.as_str())
        .collect();
    assert_eq!(alarmed, ["d9"]);
    let e = &w.events[0].event;
    assert_eq!(e.violation_event_time, T0 + 2 * BUCKET_MS);
    assert_eq!(
        e.report_id,
        Some(T0 + 2 * BUCKET_MS),
        "a window's id is its end"
    );
    assert_eq!(s.violations(&Default::default()).unwrap().len(), 1);
}

#[test]
fn late_events_and_replayed_batches_count_nowhere_and_a_silent_thing_is_forgotten() {
    let mut j = judge(json!({"securityProfileName": "auth", "behaviors": [
        {"name": "auth", "metric": "aws:num-authorization-failures", "criteria": {
            "comparisonOperator": "less-than", "value": {"count": 2}, "durationSeconds": 300}}]}));
    let mut s = Memory::new();
    let deny = |at_ms| Event::Denied {
        at_ms,
        client_id: "gw".into(),
        access: Access::Subscribe,
        topic: Some("x".into()),
    };
    let own = Event::Denied {
        at_ms: T0,
        client_id: "detect-fleet".into(),
        access: Access::Publish,
        topic: None,
    };
    let alerts = Event::Connect {
        at_ms: T0,
        client_id: "detect-fleet-alerts".into(),
        ip: "127.0.0.1".into(),
        ok: true,
    };
    let out = j
        .witness(&mut s, &delivery(0, vec![deny(T0 + 1), own, alerts]), T0)
        .unwrap();
    assert_eq!(out.things, 1, "the fleet's own connections are no things");
    assert_eq!(s.load("detect-fleet").unwrap().version, 0);
    assert_eq!(s.load("detect-fleet-alerts").unwrap().version, 0);
    let again = j
        .witness(&mut s, &delivery(0, vec![deny(T0 + 2)]), T0)
        .unwrap();
    assert_eq!(again.things, 0, "a batch read before is skipped");
    assert!(
        j.close_windows(&mut s, T0 + BUCKET_MS + 20_000)
            .unwrap()
            .events
            .is_empty()
    );
    // Its window is judged: a denial stamped in it now is late.
    let late = j
        .witness(&mut s, &delivery(1, vec![deny(T0 + 3)]), T0)
        .unwrap();
    assert_eq!(late.late, 1);
    // Stamped four buckets ahead of our clock: refused.
    let ahead = j
        .witness(&mut s, &delivery(2, vec![deny(T0 + 4 * BUCKET_MS)]), T0)
        .unwrap();
    assert_eq!(ahead.late, 1);
    let gap = j.witness(&mut s, &delivery(5, vec![]), T0).unwrap();
    assert_eq!(gap.missed, 2);
    // Two days later: windows beyond a day of catching up are skipped; the thing, silent
    // for 48 h, is forgotten.
    let later = T0 + STALE_AFTER_MS + 2 * BUCKET_MS;
    j.close_windows(&mut s, later).unwrap();
    assert!(s.load("gw").unwrap().record.witness.is_none());
    const { assert!(MAX_WINDOWS_PER_TICK * BUCKET_MS < STALE_AFTER_MS) };
}

/// Issue #19 item 2: a cloud-side ML behavior learns each thing from its closed windows (one
/// datapoint per 300 s window) and alarms on a 40× burst after a day, then clears.
#[test]
fn a_cloud_side_ml_behavior_learns_a_thing_from_its_windows_and_alarms_on_a_40x_burst() {
    let mut j = judge(json!({"securityProfileName": "learned", "behaviors": [
        {"name": "msgs-ml", "metric": "aws:num-messages-sent",
         "criteria": {"mlDetectionConfig": {"confidenceLevel": "MEDIUM"}}}]}));
    let mut s = Memory::new();
    let mut seq = 0;
    let mut window = |j: &mut Judge, s: &mut Memory, k: u64, msgs: u64| {
        let start = T0 + k * BUCKET_MS;
        j.witness(
            s,
            &delivery(seq, vec![sent("gw", start + 1, msgs)]),
            start + 2,
        )
        .unwrap();
        seq += 1;
        j.close_windows(s, start + BUCKET_MS + 20_000)
            .unwrap()
            .events
    };
    let day = 288;
    for k in 0..day + 12 {
        let events = window(&mut j, &mut s, k, 20 + k % 3);
        assert!(events.is_empty(), "window {k}: {events:?}");
    }
    let profiles: Vec<Profile> = j.profiles.values().cloned().collect();
    let records = s.with_state().unwrap();
    let status = crate::models::summaries(
        &profiles,
        records.iter().map(|(t, l)| (t.as_str(), &l.record.states)),
        T0 + (day + 12) * BUCKET_MS,
    );
    assert_eq!(
        (
            status[0].model_status,
            status[0].things_active,
            status[0].things_total
        ),
        ("ACTIVE", 1, 1),
        "{status:?}"
    );
    let burst = window(&mut j, &mut s, day + 12, 800);
    assert_eq!(burst.len(), 1, "{burst:?}");
    let e = &burst[0].event;
    assert_eq!(e.violation_event_type, detect::EventType::InAlarm);
    assert_eq!(e.thing_name, "gw");
    let info = e.violation_event_additional_info.as_ref().unwrap();
    assert_eq!(info.confidence_level, "MEDIUM");
    assert!(
        e.explanation
            .as_deref()
            .unwrap_or("")
            .contains("aws:num-messages-sent"),
        "{e:?}"
    );
    // The hour's score holds the burst for up to an hour (12 windows): cleared by then.
    let calm: Vec<_> = (day + 13..day + 26)
        .flat_map(|k| window(&mut j, &mut s, k, 21))
        .collect();
    assert_eq!(calm.len(), 1, "{calm:?}");
    assert_eq!(
        calm[0].event.violation_event_type,
        detect::EventType::AlarmCleared
    );
}

/// Issue #19 item 3: the fleet calibrates an ML behavior's thresholds across its things, and a
/// newly enrolled thing judges with them from its first day: quiet while steady, in alarm on a
/// 40× burst hours after enrolling (alone, it would wait a whole day).
#[test]
fn a_newly_enrolled_device_alarms_sensibly_on_day_one() {
    let mut j = judge(json!({"securityProfileName": "learned", "behaviors": [
        {"name": "msgs-ml", "metric": "aws:num-messages-sent",
         "criteria": {"mlDetectionConfig": {"confidenceLevel": "MEDIUM"}}}]}));
    let mut s = Memory::new();
    let mut seq = 0;
    let mut window = |j: &mut Judge, s: &mut Memory, k: u64, sends: Vec<(&str, u64)>| {
        let start = T0 + k * BUCKET_MS;
        let events = sends.iter().map(|(t, n)| sent(t, start + 1, *n)).collect();
        j.witness(s, &delivery(seq, events), start + 2).unwrap();
        seq += 1;
        j.close_windows(s, start + BUCKET_MS + 20_000)
            .unwrap()
            .events
    };
    let peers = ["p0", "p1", "p2", "p3", "p4"];
    for k in 0..300 {
        let sends = peers
            .iter()
            .enumerate()
            .map(|(i, p)| (*p, 20 + (k + i as u64) % 4));
        let events = window(&mut j, &mut s, k, sends.collect());
        assert!(events.is_empty(), "window {k}: {events:?}");
    }
    // The sweep calibrates the group from the peers' stored models.
    j.sweep(&mut s, T0 + 300 * BUCKET_MS + 30_000).unwrap();
    assert_eq!(j.calibrate_groups(&[], T0), None, "not due again yet");
    // A thing enrolls: 40 steady windows (more than its 3 h warm-up), then a 40× burst.
    for k in 300..340 {
        let events = window(&mut j, &mut s, k, vec![("new", 20 + k % 4)]);
        assert!(events.is_empty(), "window {k}: {events:?}");
    }
    let burst = window(&mut j, &mut s, 340, vec![("new", 800)]);
    assert_eq!(burst.len(), 1, "{burst:?}");
    let e = &burst[0].event;
    assert_eq!(
        (e.thing_name.as_str(), e.violation_event_type),
        ("new", detect::EventType::InAlarm)
    );
    let info = e.violation_event_additional_info.as_ref().unwrap();
    assert_eq!(info.confidence_level, "MEDIUM");
}

/// Issue #18: windows closed at once after a gap are judged window by window across all
/// things (every thing's datapoint of a window is in the population before the next window is
/// judged), so catching up gives exactly what closing each window live gives.
#[test]
fn catching_up_after_a_gap_judges_statistical_windows_like_live_closing() {
    let doc = json!({"securityProfileName": "flood", "behaviors": [
        {"name": "rate", "metric": "aws:num-messages-sent", "criteria": {
            "comparisonOperator": "less-than-equals", "statisticalThreshold": {"statistic": "p50"},
            "durationSeconds": 300}}]});
    // "a" (judged first) is the outlier in windows 1 and 3.
    let sends = |k: u64| -> Vec<Event> {
        let start = T0 + k * BUCKET_MS;
        ["a", "b", "c"]
            .iter()
            .map(|t| sent(t, start + 1, if *t == "a" && k % 2 == 1 { 100 } else { 10 }))
            .collect()
    };
    let seen = |events: Vec<crate::store::Recorded>| -> Vec<(String, detect::EventType, u64)> {
        let mut v: Vec<_> = events
            .into_iter()
            .map(|r| {
                let e = r.event;
                (e.thing_name, e.violation_event_type, e.violation_event_time)
            })
            .collect();
        v.sort_by_key(|(t, _, at)| (*at, t.clone()));
        v
    };
    let windows = 5;
    let (mut live, mut s) = (judge(doc.clone()), Memory::new());
    let mut live_events = Vec::new();
    for k in 0..windows {
        let start = T0 + k * BUCKET_MS;
        live.witness(&mut s, &delivery(k, sends(k)), start + 2)
            .unwrap();
        let closed = live.close_windows(&mut s, start + BUCKET_MS + 20_000);
        live_events.extend(closed.unwrap().events);
        // A sweep in the grace after the next window's end, before it closes, keeps the
        // threshold the thing was last judged with: its alarm stays.
        let swept = live.sweep(&mut s, start + 2 * BUCKET_MS + 1).unwrap();
        assert!(swept.events.is_empty(), "window {k}: {:?}", swept.events);
    }
    let live_events = seen(live_events);
    assert_eq!(
        live_events
            .iter()
            .map(|(t, _, _)| t.as_str())
            .collect::<Vec<_>>(),
        ["a", "a", "a", "a"],
        "in alarm in windows 1 and 3, cleared in 2 and 4: {live_events:?}"
    );
    // The same batches, read after a restart at the end of the last window.
    let (mut caught, mut s) = (judge(doc), Memory::new());
    let back = T0 + windows * BUCKET_MS;
    for k in 0..windows {
        caught
            .witness(&mut s, &delivery(k, sends(k)), back)
            .unwrap();
    }
    let closed = caught.close_windows(&mut s, back + 20_000).unwrap();
    assert_eq!(seen(closed.events), live_events);
}

#[test]
fn a_restart_before_the_first_close_keeps_a_cloud_side_statistical_alarm() {
    let doc = json!({"securityProfileName": "flood", "behaviors": [
        {"name": "rate", "metric": "aws:num-messages-sent", "criteria": {
            "comparisonOperator": "less-than-equals", "statisticalThreshold": {"statistic": "p50"},
            "durationSeconds": 300}}]});
    let (mut before, mut s) = (judge(doc.clone()), Memory::new());
    let mut raised = Vec::new();
    for k in 0..2 {
        let start = T0 + k * BUCKET_MS;
        let events = ["a", "b", "c"]
            .iter()
            .map(|t| sent(t, start + 1, if *t == "a" && k == 1 { 100 } else { 10 }))
            .collect();
        before
            .witness(&mut s, &delivery(k, events), start + 2)
            .unwrap();
        raised.extend(
            before
                .close_windows(&mut s, start + BUCKET_MS + 20_000)
                .unwrap()
                .events,
        );
    }
    assert_eq!(raised.len(), 1, "a in alarm after window 1: {raised:?}");
    // A new fleet process on the same store, swept in the grace after window 2's end, before
    // any close: window 2 has no samples yet, window 1 is the one "a" was judged with.
    let mut after = judge(doc);
    let swept = after.sweep(&mut s, T0 + 3 * BUCKET_MS + 1).unwrap();
    assert!(
        swept.events.is_empty(),
        "the alarm must stay: {:?}",
        swept.events
    );
}
