//! `custom_metrics` (protocol doc §1.5): names and value keys are never abbreviated, each
//! metric is an array of exactly one object with one value key (a `null` metric is absent).

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde_json::Value;

use super::{DecodeError, invalid, join, object};
use crate::keys::{IP_LIST, NUMBER, NUMBER_LIST, STRING_LIST, is_custom_metric_name};
use crate::model::CustomValue;

/// `custom_metrics`: `{name: [{value_key: value}]}` (protocol doc §1.5).
pub(super) fn custom(v: &Value, path: &str) -> Result<BTreeMap<String, CustomValue>, DecodeError> {
    let mut out = BTreeMap::new();
    for (name, value) in object(v, path)? {
        let p = join(path, name);
        if !is_custom_metric_name(name) {
            return Err(invalid(
                &p,
                "a custom metric name is 1-128 characters of [a-zA-Z0-9:_-], not starting with \"aws:\"",
            ));
        }
        // A metric is optional in every report: `null` reads as not reported.
        if value.is_null() {
            continue;
        }
        let one = match value.as_array().map(Vec::as_slice) {
            Some([one]) => one,
            _ => return Err(invalid(&p, "must be an array of exactly one object")),
        };
        let obj = object(one, &format!("{p}[0]"))?;
        let (key, inner) = match obj.iter().next() {
            Some(kv) if obj.len() == 1 => kv,
            _ => {
                return Err(invalid(
                    &format!("{p}[0]"),
                    "must hold exactly one of number, number_list, string_list, ip_list",
                ));
            }
        };
        let vp = format!("{p}[0].{key}");
        let numbers = |v: &Value| -> Result<Vec<f64>, DecodeError> {
            let list = v
                .as_array()
                .ok_or_else(|| invalid(&vp, "must be an array"))?;
            list.iter()
                .map(|x| {
                    x.as_f64()
                        .ok_or_else(|| invalid(&vp, &format!("{x} is not a number")))
                })
                .collect()
        };
        let strings = |v: &Value| -> Result<Vec<String>, DecodeError> {
            let list = v
                .as_array()
                .ok_or_else(|| invalid(&vp, "must be an array"))?;
            list.iter()
                .map(|x| {
                    x.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| invalid(&vp, &format!("{x} is not a string")))
                })
                .collect()
        };
        let cv = match key.as_str() {
            NUMBER => CustomValue::Number(
                inner
                    .as_f64()
                    .ok_or_else(|| invalid(&vp, &format!("{inner} is not a number")))?,
            ),
            NUMBER_LIST => CustomValue::NumberList(numbers(inner)?),
            STRING_LIST => CustomValue::StringList(strings(inner)?),
            IP_LIST => CustomValue::IpList(
                strings(inner)?
                    .iter()
                    .map(|s| {
                        s.parse::<IpAddr>()
                            .map_err(|_| invalid(&vp, &format!("{s:?} is not an IP address")))
                    })
                    .collect::<Result<_, _>>()?,
            ),
            other => {
                return Err(DecodeError::UnknownKey {
                    path: format!("{p}[0]"),
                    key: other.to_string(),
                });
            }
        };
        out.insert(name.clone(), cv);
    }
    Ok(out)
}
