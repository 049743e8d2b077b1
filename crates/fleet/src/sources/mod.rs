//! Where cloud-side observations come from (issue #18): a `Source` reads what one broker
//! integration publishes and hands on `protocol::broker` events. Windows and judging are not its.
//!
//! One file per integration: `broker.rs` (the mosquitto plugin's batches on the fleet's own
//! MQTT connection), `nats.rs` (nats-server's system account over its own NATS connection,
//! `nats_events.rs` turning advisories and CONNZ into the same events, `instance`/`seq` its own).

pub mod broker;
mod go_time;
pub mod nats;
pub mod nats_events;

use detect::metrics::CloudMetric;
use protocol::broker::Event;

use crate::config::BrokerSource;

/// What one message of a broker integration carried.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// The integration (`[broker] source`): the key of its cursor in the store.
    pub source: &'static str,
    /// The writer's run, and its batch number in that run (no gaps).
    pub instance: String,
    pub seq: u64,
    /// Events the writer lost to its own bounds before this batch.
    pub dropped: u64,
    pub events: Vec<Event>,
}

/// One broker integration.
pub trait Source: Send {
    /// Its `[broker] source` name.
    fn name(&self) -> &'static str;
    /// The MQTT topic filters it reads on the fleet's connection.
    fn filters(&self) -> &'static [&'static str];
    /// The delivery in one message on `topic`: `None` when the topic is not this source's,
    /// `Err` (with why) when the message is unreadable.
    fn read(&self, topic: &str, payload: &[u8]) -> Option<Result<Delivery, String>>;
}

/// The source read on the fleet's MQTT connection that `[broker] source` names, if any (the
/// nats source has its own connection: `nats::spawn`).
pub fn configured(source: BrokerSource) -> Option<Box<dyn Source>> {
    match source {
        BrokerSource::MosquittoPlugin => Some(Box::new(broker::Plugin)),
        BrokerSource::None | BrokerSource::Nats => None,
    }
}

/// Can `source` feed `metric`? The plugin sees everything; nats-server gives message totals
/// only, so no message sizes (docs/brokers.md). Its authorization failures are refused
/// connects only (publish and subscribe violations are only logged): `nats_gaps` says so.
pub fn feeds(source: BrokerSource, metric: CloudMetric) -> bool {
    match source {
        BrokerSource::MosquittoPlugin => true,
        BrokerSource::Nats => metric != CloudMetric::MessageByteSize,
        BrokerSource::None => false,
    }
}

/// What a behavior fed by nats-server misses, in words (a warning, it is still evaluated):
/// topic dimensions match nothing (NATS counts per connection, not per topic) and
/// authorization failures are refused logins only.
pub fn nats_gaps(metric: CloudMetric, has_dimension: bool) -> Option<&'static str> {
    if has_dimension {
        return Some(
            "nats-server counts messages and denials per connection, not per topic: a TOPIC_FILTER dimension matches none of them (NOT_IN matches all)",
        );
    }
    (metric == CloudMetric::AuthorizationFailures).then_some(
        "nats-server reports refused logins only: its publish and subscribe violations are in its log, not counted",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nats_feeds_every_cloud_side_metric_but_message_size_and_says_what_it_misses() {
        for m in CloudMetric::ALL {
            let sized = m == CloudMetric::MessageByteSize;
            assert_eq!(feeds(BrokerSource::Nats, m), !sized, "{m:?}");
            assert!(feeds(BrokerSource::MosquittoPlugin, m));
            assert!(!feeds(BrokerSource::None, m));
        }
        assert!(nats_gaps(CloudMetric::MessagesSent, false).is_none());
        assert!(nats_gaps(CloudMetric::ConnectionAttempts, false).is_none());
        let auth = nats_gaps(CloudMetric::AuthorizationFailures, false).unwrap_or_default();
        assert!(auth.contains("refused logins only"), "{auth}");
        let dim = nats_gaps(CloudMetric::MessagesSent, true).unwrap_or_default();
        assert!(dim.contains("TOPIC_FILTER"), "{dim}");
    }
}
