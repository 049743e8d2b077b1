//! Where cloud-side observations come from (issue #18): a `Source` reads what one broker
//! integration publishes and hands on `protocol::broker` events. Windows and judging are not its.
//!
//! One file per integration: `broker.rs` (the mosquitto plugin's batches on the fleet's own
//! MQTT connection). A NATS source (system-account advisories) is one more file that turns
//! advisories into the same events and `Delivery`s, with `instance`/`seq` of its own.

pub mod broker;

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

/// The source `[broker] source` names, when this build has one.
pub fn configured(source: BrokerSource) -> Option<Box<dyn Source>> {
    match source {
        BrokerSource::MosquittoPlugin => Some(Box::new(broker::Plugin)),
        BrokerSource::None | BrokerSource::Nats => None,
    }
}

/// Can `source` feed `metric`? The plugin sees everything; nats-server's advisories give no
/// message sizes and no publish denials (docs/fleet.md), and its source is not built yet.
pub fn feeds(source: BrokerSource, metric: CloudMetric) -> bool {
    let _ = metric;
    match source {
        BrokerSource::MosquittoPlugin => true,
        BrokerSource::None | BrokerSource::Nats => false,
    }
}
