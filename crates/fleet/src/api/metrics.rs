//! ListMetricValues (docs/spec/detect-api.md §6): a thing's datapoints of one metric over a
//! time range, oldest first, read from the metric history (`crate::history`).

use serde_json::{Map, Value, json};

use super::page::{self, Params};
use super::{ApiError, seconds};
use crate::history;
use crate::store::{MetricHistory, Side, Store, StoreError};

/// Rows read per store call while a page fills (rows without the metric are skipped).
const CHUNK: usize = 256;

/// `(time ms, value)` of `metric` for `thing` in `[from_ms, to_ms)`, oldest first, at most
/// `max`, and whether more may follow.
pub fn values(
    store: &mut dyn MetricHistory,
    thing: &str,
    metric: &str,
    side: Side,
    (from_ms, to_ms): (u64, u64),
    max: usize,
) -> Result<(Vec<(u64, Value)>, bool), StoreError> {
    let mut out = Vec::new();
    let mut from = from_ms;
    while from < to_ms {
        let rows = store.history(thing, side, from, to_ms, CHUNK)?;
        let full = rows.len() == CHUNK;
        for (i, p) in rows.iter().enumerate() {
            if out.len() == max {
                return Ok((out, true));
            }
            if let Some(v) = history::value(p, thing, metric) {
                out.push((p.time_ms, serde_json::to_value(v).unwrap_or(Value::Null)));
                if out.len() == max {
                    return Ok((out, i + 1 < rows.len() || full));
                }
            }
        }
        match rows.last() {
            Some(last) if full => from = last.time_ms + 1,
            _ => break,
        }
    }
    Ok((out, false))
}

/// `GET /metric-values` (§6.1).
pub fn list(store: &mut dyn Store, p: &Params) -> Result<Value, ApiError> {
    p.allow(&[
        "thingName",
        "metricName",
        "dimensionName",
        "dimensionValueOperator",
        "startTime",
        "endTime",
        "maxResults",
        "nextToken",
    ])?;
    let thing = p
        .name("thingName")?
        .ok_or_else(|| ApiError::invalid("thingName: required"))?;
    let metric = p
        .get("metricName")
        .ok_or_else(|| ApiError::invalid("metricName: required"))?;
    let side = history::side_of(metric)
        .filter(|_| protocol::identity::is_registry_name(metric))
        .ok_or_else(|| {
            ApiError::invalid(format!(
                "metricName: {metric:?} is neither an aws: metric of detect-rules §3 nor a custom metric name"
            ))
        })?;
    if p.get("dimensionName").is_some() || p.get("dimensionValueOperator").is_some() {
        return Err(ApiError::invalid(
            "dimensionName: the metric history keeps each metric without dimensions (§6.2)",
        ));
    }
    let start = p.required_time("startTime")?;
    let end = p.required_time("endTime")?;
    if end <= start {
        return Err(ApiError::invalid("endTime: must be after startTime"));
    }
    let max = p.max_results()?;
    let from = match p.token("metric-values")? {
        Some(k) => {
            let t: u64 = k
                .parse()
                .map_err(|_| ApiError::invalid("nextToken: not a token this call returned"))?;
            t + 1
        }
        None => start,
    };
    let (list, more) = values(store, thing, metric, side, (from.max(start), end), max)?;
    let data: Vec<Value> = list
        .iter()
        .map(|(t, v)| json!({"timestamp": seconds(*t), "value": v}))
        .collect();
    let mut out = json!({ "metricDatumList": data });
    if let (true, Some((t, _))) = (more, list.last()) {
        out["nextToken"] = page::token("metric-values", &t.to_string()).into();
    }
    Ok(out)
}

/// The last datapoints a thing's page shows (§5.2): every device-side metric of the report
/// received at `last_report_ms`, every cloud-side metric of the newest window of the last
/// day.
pub fn latest(
    store: &mut dyn Store,
    thing: &str,
    last_report_ms: Option<u64>,
    now_ms: u64,
) -> Result<Value, StoreError> {
    let mut device = Map::new();
    if let Some(t) = last_report_ms
        && let Some(p) = store.history(thing, Side::Device, t, t + 1, 1)?.pop()
    {
        let custom = protocol::decode(&p.data)
            .map(|d| d.report.custom_metrics.into_keys().collect::<Vec<_>>())
            .unwrap_or_default();
        let names = detect::metrics::TABLE
            .iter()
            .map(|s| s.name.to_string())
            .chain(custom);
        for name in names {
            if let Some(v) = history::value(&p, thing, &name) {
                device.insert(name, serde_json::to_value(v).unwrap_or(Value::Null));
            }
        }
    }
    let day = now_ms.saturating_sub(86_400_000);
    let windows = store.history(thing, Side::Cloud, day, now_ms + 1, usize::MAX)?;
    let cloud = windows.last().and_then(|p| {
        serde_json::from_slice::<Value>(&p.data)
            .ok()
            .map(|v| (p.time_ms, v))
    });
    let mut out = json!({ "device": device });
    if let Some(t) = last_report_ms {
        out["deviceTime"] = seconds(t);
    }
    if let Some((t, v)) = cloud {
        out["cloud"] = v;
        out["cloudTime"] = seconds(t);
    }
    Ok(out)
}
