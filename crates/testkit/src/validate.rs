//! The strict backend's checks of a report (protocol doc §1, §10): the header, the key
//! names (all long or all short) and the custom metrics' shapes.

use serde_json::{Value, json};

pub(crate) fn report_id_of(v: &Value) -> Option<u64> {
    let header = v.get("header").or_else(|| v.get("hed"))?;
    header
        .get("report_id")
        .or_else(|| header.get("rid"))?
        .as_u64()
}

const LONG: &[&str] = &[
    "header",
    "report_id",
    "version",
    "metrics",
    "custom_metrics",
    "tcp_connections",
    "established_connections",
    "connections",
    "remote_addr",
    "local_port",
    "local_interface",
    "total",
    "listening_tcp_ports",
    "listening_udp_ports",
    "ports",
    "port",
    "interface",
    "network_stats",
    "bytes_in",
    "bytes_out",
    "packets_in",
    "packets_out",
];
const SHORT: &[&str] = &[
    "hed", "rid", "v", "met", "cmet", "tc", "ec", "cs", "rad", "lp", "li", "t", "tp", "up", "pts",
    "pt", "if", "ns", "bi", "bo", "pi", "po",
];

/// Strict checks (protocol doc §1, §10): header with a positive integer report_id and
/// version "1.0"; every structural key known and all long or all short. Returns the id.
pub(crate) fn validate(v: &Value) -> Result<u64, String> {
    let root = v.as_object().ok_or("report is not a map")?;
    let mut long = 0;
    let mut short = 0;
    count_keys(v, &mut long, &mut short)?;
    if long > 0 && short > 0 {
        return Err(format!("mixed key styles ({long} long, {short} short)"));
    }
    let header = root
        .get("header")
        .or_else(|| root.get("hed"))
        .ok_or("missing header")?;
    let id = header
        .get("report_id")
        .or_else(|| header.get("rid"))
        .ok_or("missing report_id")?;
    let id = id
        .as_u64()
        .filter(|id| *id > 0)
        .ok_or_else(|| format!("report_id {id} is not a positive integer"))?;
    let version = header.get("version").or_else(|| header.get("v"));
    if version != Some(&json!("1.0")) {
        return Err(format!("version {version:?} is not \"1.0\""));
    }
    if !root.contains_key("metrics")
        && !root.contains_key("met")
        && !root.contains_key("custom_metrics")
        && !root.contains_key("cmet")
    {
        return Err("neither metrics nor custom_metrics".to_string());
    }
    if let Some(custom) = root.get("custom_metrics").or_else(|| root.get("cmet")) {
        validate_custom(custom)?;
    }
    Ok(id)
}

/// Protocol doc §1.5: `{name: [ {value_key: value} ]}`, names 1–128 of [a-zA-Z0-9:_-] not
/// starting with "aws:", exactly one object in the array with exactly one value key, values
/// of the key's type (ip_list items IPv4/IPv6 addresses, numbers finite).
fn validate_custom(custom: &Value) -> Result<(), String> {
    let metrics = custom.as_object().ok_or("custom_metrics is not a map")?;
    for (name, value) in metrics {
        let name_ok = (1..=128).contains(&name.len())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '_' | '-'))
            && !name.starts_with("aws:");
        if !name_ok {
            return Err(format!("custom metric name {name:?} is invalid"));
        }
        let object = match value.as_array().map(Vec::as_slice) {
            Some([one]) => one.as_object(),
            _ => None,
        }
        .filter(|o| o.len() == 1)
        .ok_or_else(|| {
            format!("custom metric {name}: not a one-element array of one key: {value}")
        })?;
        let Some((key, v)) = object.iter().next() else {
            return Err(format!("custom metric {name}: empty object"));
        };
        let list = |check: &dyn Fn(&Value) -> bool| {
            v.as_array().is_some_and(|items| items.iter().all(check))
        };
        let ok = match key.as_str() {
            "number" => v.as_f64().is_some_and(f64::is_finite),
            "number_list" => list(&|i| i.as_f64().is_some_and(f64::is_finite)),
            "string_list" => list(&|i| i.is_string()),
            "ip_list" => list(&|i| {
                i.as_str()
                    .is_some_and(|s| s.parse::<std::net::IpAddr>().is_ok())
            }),
            other => return Err(format!("custom metric {name}: unknown value key {other:?}")),
        };
        if !ok {
            return Err(format!("custom metric {name}: {key} has a bad value: {v}"));
        }
    }
    Ok(())
}

/// Counts structural keys; custom metric names and their value keys are free-form.
fn count_keys(v: &Value, long: &mut usize, short: &mut usize) -> Result<(), String> {
    match v {
        Value::Object(map) => {
            for (key, child) in map {
                let in_long = LONG.contains(&key.as_str());
                let in_short = SHORT.contains(&key.as_str());
                if !in_long && !in_short {
                    return Err(format!("unknown key {key:?}"));
                }
                if in_long {
                    *long += 1;
                }
                if in_short {
                    *short += 1;
                }
                if key != "custom_metrics" && key != "cmet" {
                    count_keys(child, long, short)?;
                }
            }
            Ok(())
        }
        Value::Array(items) => items.iter().try_for_each(|i| count_keys(i, long, short)),
        Value::Null => Err("null value".to_string()),
        _ => Ok(()),
    }
}
