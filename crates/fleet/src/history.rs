//! The metric history's points (issue #21, docs/spec/detect-api.md §6): what a commit keeps of
//! an accepted report or a closed broker window, and a metric's value read back from one.
//!
//! Device-side, the report itself is kept, re-encoded as CBOR with AWS's short keys (the
//! most compact encoding the protocol has), and a metric's datapoint is read back through
//! the engine's own `Observation` (detect-rules §3.1, §3.2): what the API shows is what the
//! rules saw. Cloud-side, a window's datapoints (one bucket long, no dimension) as JSON.

use std::collections::BTreeMap;

use detect::metrics::{CloudMetric, CloudRef, MetricRef};
use detect::{Datapoint, MetricValue, Observation};
use protocol::{CustomValue, Format, Report};

use crate::store::{HistoryPoint, Side};
use crate::window::Closed;

/// The point of an accepted report received at `now_ms`; `None` (logged) if it cannot be
/// re-encoded, which a decoded report always can.
pub fn device(report: &Report, now_ms: u64) -> Option<HistoryPoint> {
    match protocol::encode(report, Format::CborShort) {
        Ok(e) => Some(HistoryPoint {
            side: Side::Device,
            time_ms: now_ms,
            data: e.bytes,
        }),
        Err(e) => {
            tracing::warn!(
                report_id = report.header.report_id,
                "metric history: report not kept: {e}"
            );
            None
        }
    }
}

/// The point of the broker window `[end − bucket, end)`: every cloud-side metric with a
/// datapoint (`aws:message-byte-size` the largest message); `None` if none has one.
pub fn cloud(window: &Closed, bucket_ms: u64) -> Option<HistoryPoint> {
    let mut values = BTreeMap::new();
    for metric in CloudMetric::ALL {
        let r = MetricRef::Cloud(CloudRef {
            metric,
            window_secs: bucket_ms / 1000,
            dimension: None,
            largest: true,
        });
        if let Some(d) = window.datapoint(&r) {
            values.insert(metric.name(), MetricValue::from(&d));
        }
    }
    if values.is_empty() {
        return None;
    }
    Some(HistoryPoint {
        side: Side::Cloud,
        time_ms: window.end_ms,
        data: serde_json::to_vec(&values).ok()?,
    })
}

/// Which side keeps `metric`: `aws:` device-side and custom metrics on the device, the
/// cloud-side `aws:` metrics on the cloud; `None` for an unknown `aws:` name.
pub fn side_of(metric: &str) -> Option<Side> {
    if CloudMetric::from_name(metric).is_some() {
        Some(Side::Cloud)
    } else if detect::metrics::spec(metric).is_some() || !metric.starts_with("aws:") {
        Some(Side::Device)
    } else {
        None
    }
}

/// `metric`'s value in `point`, or `None` when the point has none (the report lacked the
/// section, the window had no datapoint) or does not decode (logged).
pub fn value(point: &HistoryPoint, thing: &str, metric: &str) -> Option<MetricValue> {
    match point.side {
        Side::Device => {
            let report = match protocol::decode(&point.data) {
                Ok(d) => d.report,
                Err(e) => {
                    tracing::warn!(
                        thing,
                        time_ms = point.time_ms,
                        "metric history: stored report unreadable: {e}"
                    );
                    return None;
                }
            };
            let d = match detect::metrics::spec(metric) {
                Some(spec) => report.datapoint(&MetricRef::Aws(spec))?,
                None => custom(report.custom_metrics.get(metric)?),
            };
            Some(MetricValue::from(&d))
        }
        Side::Cloud => {
            let mut values: BTreeMap<String, MetricValue> =
                match serde_json::from_slice(&point.data) {
                    Ok(v) => v,
                    Err(e) => {
                        tracing::warn!(
                            thing,
                            time_ms = point.time_ms,
                            "metric history: stored window unreadable: {e}"
                        );
                        return None;
                    }
                };
            values.remove(metric)
        }
    }
}

/// A custom metric's datapoint as reported, whatever its type (§3.2).
fn custom(v: &CustomValue) -> Datapoint {
    match v {
        CustomValue::Number(x) => Datapoint::Number(*x),
        CustomValue::NumberList(x) => Datapoint::Numbers(x.clone()),
        CustomValue::StringList(x) => Datapoint::Strings(x.clone()),
        CustomValue::IpList(x) => Datapoint::Addresses(x.clone()),
    }
}
