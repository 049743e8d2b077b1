//! What the engine judges: an observation of one thing at one time that yields a datapoint
//! per metric. A device report is one kind (`from_report.rs`). Judges nothing itself.

use super::metrics::{Datapoint, MetricRef};
use protocol::NetworkStats;

/// One observation of a thing: the datapoints of its metrics at one time.
pub trait Observation {
    /// The id the events it causes carry as `reportId`.
    fn id(&self) -> u64;

    /// The datapoint of `metric`, or `None` when this observation has none (§4.6). Traffic
    /// metrics give this observation's own delta; the window sums of §4.4 are the engine's.
    fn datapoint(&self, metric: &MetricRef) -> Option<Datapoint>;

    /// The traffic since the previous observation, which the engine remembers for
    /// `durationSeconds` sums (§4.4); `None` gives the traffic metrics no datapoint.
    fn traffic(&self) -> Option<NetworkStats>;

    /// Why `datapoint(metric)` is `None`, in words (`dump --profile`).
    fn missing(&self, metric: &MetricRef) -> String;
}
