use detect::metrics::{CloudMetric, CloudRef, Dimension};
use protocol::broker::{Access, Direction, Event};

use super::*;
use crate::config::DimensionConfig;

#[test]
fn mqtt_filters_match_levels_wildcards_and_keep_dollar_topics_apart() {
    assert!(filter_matches("a/+/c", "a/b/c"));
    assert!(!filter_matches("a/+/c", "a/b/d"));
    assert!(filter_matches("a/#", "a"));
    assert!(filter_matches("a/#", "a/b/c"));
    assert!(!filter_matches("a/b", "a/b/c"));
    assert!(!filter_matches("#", "$aws/things/x"));
    assert!(filter_matches(
        "$aws/things/+/defender/#",
        "$aws/things/x/defender/metrics/json"
    ));
}

fn cloud(metric: CloudMetric, dimension: Option<(&str, bool)>, largest: bool) -> MetricRef {
    MetricRef::Cloud(CloudRef {
        metric,
        window_secs: 2,
        dimension: dimension.map(|(n, not_in)| Dimension {
            name: n.into(),
            not_in,
        }),
        largest,
    })
}

fn witness() -> Witness {
    let mut w = Witness::starting(10_000, 1000);
    let traffic = |from_ms, topic: &str, dir, msgs, min, max| Event::Traffic {
        from_ms,
        to_ms: from_ms + 1,
        client_id: "gw".into(),
        topic: topic.into(),
        dir,
        msgs,
        bytes: msgs * max,
        min_bytes: min,
        max_bytes: max,
    };
    let events = [
        traffic(
            10_100,
            "$aws/things/gw/defender/metrics/json",
            Direction::Sent,
            1,
            900,
            900,
        ),
        traffic(11_100, "telemetry/gw", Direction::Sent, 5, 10, 40),
        traffic(11_200, "cmd/gw", Direction::Received, 3, 1, 1),
        Event::Denied {
            at_ms: 11_300,
            client_id: "gw".into(),
            access: Access::Publish,
            topic: Some("$aws/things/other/defender/metrics/json".into()),
        },
        Event::Denied {
            at_ms: 11_400,
            client_id: "gw".into(),
            access: Access::Connect,
            topic: None,
        },
        Event::Connect {
            at_ms: 10_000,
            client_id: "gw".into(),
            ip: "127.0.0.2".into(),
            ok: true,
        },
        Event::Disconnect {
            at_ms: 11_500,
            client_id: "gw".into(),
            ip: "127.0.0.2".into(),
            connected_ms: None,
        },
    ];
    for e in &events {
        assert!(w.add(e, 1000));
    }
    w
}

#[test]
fn a_closed_window_counts_each_metric_over_its_buckets_and_dimensions() {
    let w = witness();
    let dims = Dimensions::new(&[DimensionConfig {
        name: "own".into(),
        kind: "TOPIC_FILTER".into(),
        values: vec!["$aws/things/${iot:ClientId}/#".into()],
    }]);
    let at = |end_ms| Closed {
        thing: "gw",
        witness: &w,
        end_ms,
        dimensions: &dims,
    };
    let obs = at(12_000);
    let dp = |m: MetricRef| obs.datapoint(&m);
    use CloudMetric::*;
    assert_eq!(
        dp(cloud(MessagesSent, None, false)),
        Some(Datapoint::Count(6))
    );
    assert_eq!(
        dp(cloud(MessagesSent, Some(("own", false)), false)),
        Some(Datapoint::Count(1))
    );
    assert_eq!(
        dp(cloud(MessagesSent, Some(("own", true)), false)),
        Some(Datapoint::Count(5))
    );
    assert_eq!(
        dp(cloud(MessagesReceived, None, false)),
        Some(Datapoint::Count(3))
    );
    assert_eq!(
        dp(cloud(MessageByteSize, None, true)),
        Some(Datapoint::Count(900))
    );
    assert_eq!(
        dp(cloud(MessageByteSize, None, false)),
        Some(Datapoint::Count(10))
    );
    assert_eq!(
        dp(cloud(AuthorizationFailures, None, false)),
        Some(Datapoint::Count(2))
    );
    assert_eq!(
        dp(cloud(AuthorizationFailures, Some(("own", true)), false)),
        Some(Datapoint::Count(1)),
        "no topic: under no dimension"
    );
    assert_eq!(
        dp(cloud(ConnectionAttempts, None, false)),
        Some(Datapoint::Count(1))
    );
    assert_eq!(
        dp(cloud(Disconnects, None, false)),
        Some(Datapoint::Count(1))
    );
    let ip = "127.0.0.2".parse().unwrap();
    assert_eq!(
        dp(cloud(SourceIp, None, false)),
        Some(Datapoint::Addresses(vec![ip]))
    );
    assert_eq!(
        dp(cloud(MessagesSent, Some(("nope", false)), false)),
        None,
        "undefined dimension"
    );
    // The next window: nothing happened, disconnected since 11.5 s.
    let later = at(14_000);
    assert_eq!(
        later.datapoint(&cloud(MessagesSent, None, false)),
        Some(Datapoint::Count(0))
    );
    assert_eq!(later.datapoint(&cloud(SourceIp, None, false)), None);
    assert_eq!(later.datapoint(&cloud(MessageByteSize, None, true)), None);
    assert_eq!(
        later.datapoint(&cloud(DisconnectDuration, None, false)),
        Some(Datapoint::Count(2))
    );
    // Disconnected at 11.5 s: 0 whole seconds by 12 s.
    assert_eq!(
        obs.datapoint(&cloud(DisconnectDuration, None, false)),
        Some(Datapoint::Count(0))
    );
    // A 2 s window does not end at 13 s.
    assert_eq!(
        at(13_000).datapoint(&cloud(MessagesSent, None, false)),
        None
    );
}

#[test]
fn a_closed_window_is_kept_in_the_metric_history_and_read_back_per_metric() {
    let w = witness();
    let dims = Dimensions::new(&[]);
    let obs = Closed {
        thing: "gw",
        witness: &w,
        end_ms: 12_000,
        dimensions: &dims,
    };
    let p = crate::history::cloud(&obs, 1000).unwrap();
    assert_eq!((p.side, p.time_ms), (crate::store::Side::Cloud, 12_000));
    let value = |m: &str| crate::history::value(&p, "gw", m);
    use detect::MetricValue::Count;
    assert_eq!(value("aws:num-messages-sent"), Some(Count(5)));
    assert_eq!(value("aws:num-messages-received"), Some(Count(3)));
    assert_eq!(value("aws:num-disconnects"), Some(Count(1)));
    assert_eq!(value("aws:message-byte-size"), Some(Count(40)));
    assert_eq!(value("aws:all-bytes-in"), None);
}
