//! The learned criterion (detect-rules §5, docs/ml.md): `mlDetectionConfig` with a confidence
//! level, judged against the device's own model, which the engine keeps (`learn/`).

use crate::learn::{Confidence, Group, Unit};
use crate::metrics::{CloudMetric, Datapoint, Kind, MetricRef, Source};

/// `mlDetectionConfig: {"confidenceLevel": …}` on a number metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Learned {
    pub level: Confidence,
    pub unit: Unit,
    /// The thresholds of the model's group, handed in by the fleet (`learn::group`): a model
    /// in its first day judges with them.
    pub group: Option<Group>,
}

impl Learned {
    /// For a metric ML Detect supports; the unit decides the absolute floors.
    pub fn new(level: Confidence, metric: &MetricRef) -> Learned {
        let unit = match metric {
            MetricRef::Aws(spec) => match (spec.kind, spec.source) {
                (Kind::Traffic, Source::BytesIn | Source::BytesOut) => Unit::Bytes,
                (Kind::Traffic, _) => Unit::Packets,
                (_, Source::EstablishedCount) => Unit::Connections,
                _ => Unit::Ports,
            },
            // Cloud-side (detect-rules §5): a message size in bytes, message counts like
            // packets, connection attempts, disconnects and failures as small counts.
            MetricRef::Cloud(c) => match c.metric {
                CloudMetric::MessageByteSize => Unit::Bytes,
                CloudMetric::MessagesSent | CloudMetric::MessagesReceived => Unit::Packets,
                _ => Unit::Connections,
            },
            MetricRef::Custom { .. } => Unit::Number,
        };
        Learned {
            level,
            unit,
            group: None,
        }
    }

    /// The value the model learns: a count as it is; a number's integer part, negative ones
    /// as 0 (the model watches for rises).
    pub fn value(dp: &Datapoint) -> Option<u64> {
        match dp {
            Datapoint::Count(n) => Some(*n),
            Datapoint::Number(x) if x.is_finite() => Some(x.max(0.0) as u64),
            _ => None,
        }
    }
}
