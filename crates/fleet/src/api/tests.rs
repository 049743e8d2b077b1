//! `handle` over a real SQLite file: each call, paging across pages, bad parameters, unknown
//! resources, changes without the token, a verification read back.

use detect::{Event, MetricValue};
use serde_json::{Value, json};

use super::*;
use crate::store::{Commit, Recorded, Registry, Sqlite, Store, ThingRecords};

pub(super) fn event(thing: &str, id: &str, kind: &str, time: u64, ml: bool) -> Recorded {
    let criteria = if ml {
        json!({"mlDetectionConfig": {"confidenceLevel": "HIGH"}})
    } else {
        json!({"comparisonOperator": "less-than", "value": {"count": 1}})
    };
    let behavior =
        json!({"name": "b", "metric": "aws:num-listening-tcp-ports", "criteria": criteria});
    let mut e: Event = serde_json::from_value(json!({
        "violationEventTime": time, "thingName": thing, "securityProfileName": "p",
        "behavior": behavior, "violationEventType": kind, "violationId": id,
        "verificationState": "UNKNOWN"
    }))
    .unwrap();
    if kind == "in-alarm" {
        e.metric_value = Some(MetricValue::Count(3));
    }
    Recorded {
        event: e,
        suppressed: false,
    }
}

/// A store with `n` things, each with one alarm opened at i seconds; every third one cleared.
pub(super) fn filled(n: u64) -> (tempfile::TempDir, Sqlite) {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Sqlite::open(&dir.path().join("fleet.db")).unwrap();
    for i in 1..=n {
        let thing = format!("t{i:03}");
        let id = format!("{i:032x}");
        let mut events = vec![event(&thing, &id, "in-alarm", i * 1000, i % 5 == 0)];
        if i % 3 == 0 {
            events.push(event(&thing, &id, "alarm-cleared", i * 1000 + 500, false));
        }
        let c = Commit {
            thing: thing.clone(),
            events,
            ..Commit::default()
        };
        s.commit(&[c]).unwrap();
    }
    s.register("t001", &["gateways".to_string()].into())
        .unwrap();
    s.sync().unwrap();
    (dir, s)
}

pub(super) fn call(
    s: &mut dyn Store,
    method: &str,
    path: &str,
    query: &[(&str, &str)],
) -> (u16, Value) {
    call_with(s, &Context::default(), method, path, query, b"", false)
}

pub(super) fn call_with(
    s: &mut dyn Store,
    ctx: &Context,
    method: &str,
    path: &str,
    query: &[(&str, &str)],
    body: &[u8],
    may_change: bool,
) -> (u16, Value) {
    let query: Vec<(String, String)> = query
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let r = handle(
        s,
        ctx,
        &Request {
            method,
            path,
            query: &query,
            body,
            may_change,
        },
    );
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    if r.status >= 400 {
        let t = r.headers.iter().find(|(h, _)| *h == "x-amzn-ErrorType");
        assert_eq!(t.map(|(_, v)| v.as_str()), v["__type"].as_str(), "{v}");
    }
    (r.status, v)
}

#[test]
fn active_violations_page_newest_first_across_pages() {
    let (_d, mut s) = filled(12);
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..10 {
        let mut q = vec![("maxResults", "3")];
        if let Some(t) = &token {
            q.push(("nextToken", t));
        }
        let (status, v) = call(&mut s, "GET", "/active-violations", &q);
        assert_eq!(status, 200, "{v}");
        let page = v["activeViolations"].as_array().unwrap();
        assert!(page.len() <= 3);
        seen.extend(
            page.iter()
                .map(|a| a["thingName"].as_str().unwrap().to_string()),
        );
        match v["nextToken"].as_str() {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
    }
    // 12 alarms, 4 cleared (3, 6, 9, 12): 8 active, newest first.
    let want: Vec<String> = [11, 10, 8, 7, 5, 4, 2, 1]
        .iter()
        .map(|i| format!("t{i:03}"))
        .collect();
    assert_eq!(seen, want);
    let (_, v) = call(
        &mut s,
        "GET",
        "/active-violations",
        &[("thingName", "t002")],
    );
    let a = &v["activeViolations"][0];
    assert_eq!(a["violationStartTime"], json!(2));
    assert_eq!(a["lastViolationValue"], json!({"count": 3}));
    assert_eq!(a["verificationState"], "UNKNOWN");
    assert_eq!(a["behavior"]["name"], "b");
    let (_, v) = call(
        &mut s,
        "GET",
        "/active-violations",
        &[("behaviorCriteriaType", "MACHINE_LEARNING")],
    );
    let ml: Vec<&str> = v["activeViolations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["thingName"].as_str().unwrap())
        .collect();
    assert_eq!(ml, ["t010", "t005"]);
    assert_eq!(
        v["activeViolations"][0]["violationEventAdditionalInfo"],
        json!({"confidenceLevel": "HIGH"})
    );
}

type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);

#[test]
fn bad_parameters_are_400_with_a_message_naming_them() {
    let (_d, mut s) = filled(2);
    let cases: [Case; 7] = [
        ("/active-violations", &[("maxResults", "0")], "maxResults"),
        ("/active-violations", &[("maxResults", "251")], "maxResults"),
        ("/active-violations", &[("thingName", "a b")], "thingName"),
        (
            "/active-violations",
            &[("verificationState", "MAYBE")],
            "verificationState",
        ),
        ("/active-violations", &[("nextToken", "zz")], "nextToken"),
        ("/active-violations", &[("thingname", "t001")], "thingname"),
        (
            "/things",
            &[("maxResults", "1"), ("maxResults", "2")],
            "maxResults",
        ),
    ];
    for (path, q, named) in cases {
        let (status, v) = call(&mut s, "GET", path, q);
        assert_eq!(status, 400, "{path} {q:?}: {v}");
        assert_eq!(v["__type"], "InvalidRequestException");
        assert!(v["message"].as_str().unwrap().contains(named), "{v}");
    }
    // A token of another call is refused too.
    let (_, v) = call(&mut s, "GET", "/things", &[("maxResults", "1")]);
    let t = v["nextToken"].as_str().unwrap().to_string();
    let (status, _) = call(&mut s, "GET", "/active-violations", &[("nextToken", &t)]);
    assert_eq!(status, 400);
    let (status, v) = call(&mut s, "GET", "/nothing-here", &[]);
    assert_eq!(
        (status, v["__type"].as_str()),
        (404, Some("ResourceNotFoundException"))
    );
    let (status, _) = call(&mut s, "DELETE", "/things", &[]);
    assert_eq!(status, 405);
}

#[test]
fn things_list_pages_and_describe_shows_alarms() {
    let (_d, mut s) = filled(5);
    let (_, v) = call(&mut s, "GET", "/things", &[("maxResults", "2")]);
    assert_eq!(v["things"][0]["thingName"], "t001");
    assert_eq!(v["things"][0]["registered"], true);
    assert_eq!(v["things"][0]["thingGroupNames"], json!(["gateways"]));
    let t = v["nextToken"].as_str().unwrap().to_string();
    let (_, v) = call(
        &mut s,
        "GET",
        "/things",
        &[("maxResults", "2"), ("nextToken", &t)],
    );
    let names: Vec<&str> = v["things"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["thingName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["t003", "t004"]);
    let (_, v) = call(&mut s, "GET", "/things", &[("thingGroupName", "gateways")]);
    assert_eq!(v["things"].as_array().unwrap().len(), 1);
    let (status, v) = call(&mut s, "GET", "/things/t002", &[]);
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v["activeViolations"][0]["violationId"],
        format!("{:032x}", 2)
    );
    let (status, v) = call(&mut s, "GET", "/things/t999", &[]);
    assert_eq!(
        (status, v["__type"].as_str()),
        (404, Some("ResourceNotFoundException"))
    );
}

#[test]
fn verification_needs_the_token_and_is_stored() {
    let (_d, mut s) = filled(2);
    let id = format!("{:032x}", 1);
    let path = format!("/violations/verification-state/{id}");
    let body = br#"{"verificationState": "FALSE_POSITIVE", "verificationStateDescription": "lab"}"#;
    let ctx = Context::default();
    let (status, v) = call_with(&mut s, &ctx, "POST", &path, &[], body, false);
    assert_eq!(
        (status, v["__type"].as_str()),
        (401, Some("UnauthorizedException"))
    );
    let (status, v) = call_with(
        &mut s,
        &ctx,
        "POST",
        &path,
        &[],
        b"{\"verificationState\": \"NOPE\"}",
        true,
    );
    assert_eq!(status, 400, "{v}");
    let (status, _) = call_with(&mut s, &ctx, "POST", &path, &[], b"not json", true);
    assert_eq!(status, 400);
    let unknown = "/violations/verification-state/ffff";
    let (status, _) = call_with(&mut s, &ctx, "POST", unknown, &[], body, true);
    assert_eq!(status, 404);
    let (status, v) = call_with(&mut s, &ctx, "POST", &path, &[], body, true);
    assert_eq!(status, 200, "{v}");
    let (_, v) = call(
        &mut s,
        "GET",
        "/active-violations",
        &[("verificationState", "FALSE_POSITIVE")],
    );
    assert_eq!(v["activeViolations"][0]["violationId"], id);
    assert_eq!(
        v["activeViolations"][0]["verificationStateDescription"],
        "lab"
    );
    // The CLI's list reads the same store through the same function.
    let q = violations::Query {
        verification: Some("FALSE_POSITIVE".into()),
        ..Default::default()
    };
    assert_eq!(violations::list(&mut s, &q).unwrap().len(), 1);
}

#[test]
fn violation_events_list_a_time_range_in_pages_with_verification() {
    let (_d, mut s) = filled(12);
    let id = format!("{:032x}", 3);
    let body = br#"{"verificationState": "TRUE_POSITIVE"}"#;
    let path = format!("/violations/verification-state/{id}");
    let (status, _) = call_with(&mut s, &Context::default(), "POST", &path, &[], body, true);
    assert_eq!(status, 200);
    // 12 in-alarm (at i s) + 4 alarm-cleared (at i s + 500 ms); the range [2 s, 9.6 s).
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut q = vec![("startTime", "2"), ("endTime", "9.6"), ("maxResults", "3")];
        if let Some(t) = &token {
            q.push(("nextToken", t));
        }
        let (status, v) = call(&mut s, "GET", "/violation-events", &q);
        assert_eq!(status, 200, "{v}");
        for e in v["violationEvents"].as_array().unwrap() {
            seen.push((
                e["thingName"].as_str().unwrap().to_string(),
                e["violationEventType"].as_str().unwrap().to_string(),
                e["verificationState"].as_str().unwrap().to_string(),
            ));
        }
        match v["nextToken"].as_str() {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
    }
    let things: Vec<&str> = seen.iter().map(|(t, _, _)| t.as_str()).collect();
    assert_eq!(
        things,
        [
            "t002", "t003", "t003", "t004", "t005", "t006", "t006", "t007", "t008", "t009", "t009"
        ]
    );
    assert_eq!(seen[2].1, "alarm-cleared");
    assert_eq!(seen[1].2, "TRUE_POSITIVE");
    let (_, v) = call(
        &mut s,
        "GET",
        "/violation-events",
        &[
            ("startTime", "0"),
            ("endTime", "100"),
            ("verificationState", "TRUE_POSITIVE"),
        ],
    );
    assert_eq!(v["violationEvents"].as_array().unwrap().len(), 2, "{v}");
    assert_eq!(v["violationEvents"][0]["violationEventTime"], json!(3));
    assert_eq!(v["violationEvents"][1]["violationEventTime"], json!(3.5));
    let (_, v) = call(
        &mut s,
        "GET",
        "/violation-events",
        &[
            ("startTime", "0"),
            ("endTime", "100"),
            ("thingName", "t005"),
        ],
    );
    assert_eq!(v["violationEvents"][0]["metricValue"], json!({"count": 3}));
    // behaviorName (a detect-fleet extension): every event is behavior "b"'s.
    let by = |s: &mut Sqlite, name: &str| {
        let q = [
            ("startTime", "0"),
            ("endTime", "100"),
            ("behaviorName", name),
        ];
        let (status, v) = call(s, "GET", "/violation-events", &q);
        assert_eq!(status, 200, "{v}");
        v["violationEvents"].as_array().map_or(0, Vec::len)
    };
    assert_eq!(by(&mut s, "b"), 16);
    assert_eq!(by(&mut s, "other"), 0);
    let (status, v) = call(&mut s, "GET", "/violation-events", &[("startTime", "0")]);
    assert_eq!(status, 400);
    assert!(v["message"].as_str().unwrap().contains("endTime"), "{v}");
}
