//! CBOR items to the JSON data model, so one decoder reads both encodings (protocol doc §2.1):
//! text keys only, integers, finite floats; tags and byte strings are not part of a report.

use serde_json::{Map, Number, Value};

use super::{DecodeError, invalid};

/// CBOR to the JSON data model: text keys only, integers, finite floats, no tags or bytes.
pub(super) fn from_cbor(v: &ciborium::Value, path: &str) -> Result<Value, DecodeError> {
    use ciborium::Value as C;
    Ok(match v {
        C::Integer(i) => {
            let i = i128::from(*i);
            if let Ok(u) = u64::try_from(i) {
                Value::Number(u.into())
            } else if let Ok(s) = i64::try_from(i) {
                Value::Number(s.into())
            } else {
                return Err(invalid(path, "integer out of range"));
            }
        }
        C::Float(f) => Value::Number(
            Number::from_f64(*f).ok_or_else(|| invalid(path, "number is not finite"))?,
        ),
        C::Text(s) => Value::String(s.clone()),
        C::Bool(b) => Value::Bool(*b),
        C::Null => Value::Null,
        C::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, x)| from_cbor(x, &format!("{path}[{i}]")))
                .collect::<Result<_, _>>()?,
        ),
        C::Map(entries) => {
            let mut m = Map::new();
            for (k, x) in entries {
                let C::Text(k) = k else {
                    return Err(invalid(path, "map key is not a text string"));
                };
                let p = format!("{path}.{k}");
                if m.insert(k.clone(), from_cbor(x, &p)?).is_some() {
                    return Err(invalid(&p, "key appears twice"));
                }
            }
            Value::Object(m)
        }
        C::Tag(..) | C::Bytes(_) => {
            return Err(invalid(
                path,
                "CBOR tags and byte strings are not part of a report",
            ));
        }
        _ => return Err(invalid(path, "unsupported CBOR item")),
    })
}
