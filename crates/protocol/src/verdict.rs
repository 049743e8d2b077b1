//! Owns the backend's answer on `/accepted` or `/rejected` (protocol doc §3), in JSON or
//! CBOR: parsed by the agent, composed by the fleet. Does not match verdicts to reports.

use serde::{Deserialize, Deserializer};

pub use crate::format::Encoding;

/// Which response topic a verdict came on; the topic decides (protocol doc §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Accepted,
    Rejected,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Accepted => "accepted",
            Status::Rejected => "rejected",
        }
    }
}

/// One parsed verdict. Every field but `status` is optional: `reportId` is absent from the
/// documented rejection example (protocol doc §3.2) and `ErrorCode` is an open set (§3.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub thing_name: Option<String>,
    pub report_id: Option<u64>,
    pub status: Status,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    /// Service time, epoch milliseconds (protocol doc §3.1).
    pub timestamp: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum VerdictError {
    #[error("verdict on the {topic} topic is not valid {encoding}: {reason}")]
    Decode {
        topic: &'static str,
        encoding: &'static str,
        reason: String,
    },
    #[error("verdict on the {topic} topic says status {status:?}")]
    StatusMismatch { topic: &'static str, status: String },
}

#[derive(Deserialize)]
struct Raw {
    #[serde(rename = "thingName")]
    thing_name: Option<String>,
    #[serde(rename = "reportId", default, deserialize_with = "whole_number")]
    report_id: Option<u64>,
    status: Option<String>,
    #[serde(rename = "statusDetails")]
    status_details: Option<RawDetails>,
    #[serde(default, deserialize_with = "whole_number")]
    timestamp: Option<u64>,
}

#[derive(Deserialize)]
struct RawDetails {
    #[serde(rename = "ErrorCode")]
    error_code: Option<String>,
    #[serde(rename = "ErrorMessage")]
    error_message: Option<String>,
}

/// Accepts a non-negative integer, or a float with no fraction (aws-c-iot sends report ids
/// as JSON doubles, protocol doc §1.3); anything else is an error.
fn whole_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    struct V;
    impl serde::de::Visitor<'_> for V {
        type Value = Option<u64>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a non-negative whole number")
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v))
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
            u64::try_from(v)
                .map(Some)
                .map_err(|_| E::custom(format!("negative number {v}")))
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
            // 2^64 as f64; `as` saturates, so check the range first.
            if v >= 0.0 && v.fract() == 0.0 && v < 18_446_744_073_709_551_616.0 {
                Ok(Some(v as u64))
            } else {
                Err(E::custom(format!("{v} is not a whole number")))
            }
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }
    d.deserialize_any(V)
}

/// Parses a verdict payload. `status` is the topic it arrived on; a payload `status` that
/// contradicts the topic is an error. Never panics on malformed input.
pub fn parse(payload: &[u8], encoding: Encoding, status: Status) -> Result<Verdict, VerdictError> {
    let decode_error = |reason: String| VerdictError::Decode {
        topic: status.as_str(),
        encoding: encoding.label(),
        reason,
    };
    let raw: Raw = match encoding {
        Encoding::Json => {
            serde_json::from_slice(payload).map_err(|e| decode_error(e.to_string()))?
        }
        Encoding::Cbor => {
            ciborium::from_reader(payload).map_err(|e| decode_error(e.to_string()))?
        }
    };
    if let Some(s) = &raw.status {
        let agrees = match status {
            Status::Accepted => s.eq_ignore_ascii_case("ACCEPTED"),
            Status::Rejected => s.eq_ignore_ascii_case("REJECTED"),
        };
        if !agrees {
            return Err(VerdictError::StatusMismatch {
                topic: status.as_str(),
                status: s.clone(),
            });
        }
    }
    let (error_code, error_message) = match raw.status_details {
        Some(d) => (d.error_code, d.error_message),
        None => (None, None),
    };
    Ok(Verdict {
        thing_name: raw.thing_name,
        report_id: raw.report_id,
        status,
        error_code,
        error_message,
        timestamp: raw.timestamp,
    })
}

/// The answer to one report (protocol doc §3.1, §3.2) as a JSON value: ACCEPTED, or REJECTED
/// with `rejection` = (ErrorCode, ErrorMessage). `timestamp` is epoch milliseconds.
pub fn compose(
    thing: &str,
    report_id: Option<u64>,
    rejection: Option<(&str, &str)>,
    timestamp: u64,
) -> serde_json::Value {
    let mut v = serde_json::json!({ "thingName": thing });
    if let Some(id) = report_id {
        v["reportId"] = id.into();
    }
    match rejection {
        None => v["status"] = "ACCEPTED".into(),
        Some((code, message)) => {
            v["status"] = "REJECTED".into();
            v["statusDetails"] = serde_json::json!({ "ErrorCode": code, "ErrorMessage": message });
        }
    }
    v["timestamp"] = timestamp.into();
    v
}

/// An answer's bytes in the report's encoding (§2.1: CBOR on /cbor, JSON on /json).
pub fn to_bytes(v: &serde_json::Value, encoding: Encoding) -> Vec<u8> {
    match encoding {
        Encoding::Json => serde_json::to_vec(v).unwrap_or_default(),
        Encoding::Cbor => {
            let mut out = Vec::new();
            // Writing a serde_json value into a Vec cannot fail.
            let _ = ciborium::into_writer(v, &mut out);
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // protocol doc §3.1, the workshop's real accepted response.
    const ACCEPTED: &str = r#"{"thingName":"DefenderWorkshopThing","reportId":1542697506,"status":"ACCEPTED","timestamp":1542697506269}"#;
    // protocol doc §3.2, the AWS doc's rejection example (no reportId).
    const REJECTED: &str = r#"{"thingName":"myThing","status":"REJECTED","statusDetails":{"ErrorCode":"InvalidPayload","ErrorMessage":"Malformed metrics report"},"timestamp":1635802047699}"#;

    fn to_cbor(json: &str) -> Vec<u8> {
        let value: ciborium::Value = serde_json::from_str(json).unwrap();
        let mut out = Vec::new();
        ciborium::into_writer(&value, &mut out).unwrap();
        out
    }

    #[test]
    fn parses_the_accepted_example() {
        let v = parse(ACCEPTED.as_bytes(), Encoding::Json, Status::Accepted).unwrap();
        assert_eq!(v.thing_name.as_deref(), Some("DefenderWorkshopThing"));
        assert_eq!(v.report_id, Some(1542697506));
        assert_eq!(v.status, Status::Accepted);
        assert_eq!(v.timestamp, Some(1542697506269));
        assert_eq!(v.error_code, None);
    }

    #[test]
    fn parses_the_rejection_example_without_report_id() {
        let v = parse(REJECTED.as_bytes(), Encoding::Json, Status::Rejected).unwrap();
        assert_eq!(v.report_id, None);
        assert_eq!(v.status, Status::Rejected);
        assert_eq!(v.error_code.as_deref(), Some("InvalidPayload"));
        assert_eq!(v.error_message.as_deref(), Some("Malformed metrics report"));
    }

    #[test]
    fn parses_cbor_with_the_same_field_names() {
        let v = parse(&to_cbor(REJECTED), Encoding::Cbor, Status::Rejected).unwrap();
        assert_eq!(v.error_code.as_deref(), Some("InvalidPayload"));
        let v = parse(&to_cbor(ACCEPTED), Encoding::Cbor, Status::Accepted).unwrap();
        assert_eq!(v.report_id, Some(1542697506));
    }

    #[test]
    fn unknown_error_codes_are_kept_verbatim() {
        let p = r#"{"reportId":7,"status":"REJECTED","statusDetails":{"ErrorCode":"Throttled"}}"#;
        let v = parse(p.as_bytes(), Encoding::Json, Status::Rejected).unwrap();
        assert_eq!(v.error_code.as_deref(), Some("Throttled"));
        assert_eq!(v.error_message, None);
        assert_eq!(v.report_id, Some(7));
    }

    #[test]
    fn whole_floats_are_report_ids() {
        let p = r#"{"reportId":1717171717000.0,"status":"ACCEPTED"}"#;
        let v = parse(p.as_bytes(), Encoding::Json, Status::Accepted).unwrap();
        assert_eq!(v.report_id, Some(1717171717000));
    }

    #[test]
    fn malformed_payloads_are_errors_not_panics() {
        for bad in [
            &b""[..],
            b"{",
            b"[1,2]",
            b"\xff\xfe",
            br#"{"reportId":-3}"#,
            br#"{"reportId":1.5}"#,
            br#"{"reportId":"12"}"#,
            br#"{"statusDetails":5}"#,
        ] {
            assert!(
                parse(bad, Encoding::Json, Status::Accepted).is_err(),
                "{bad:?}"
            );
            assert!(
                parse(bad, Encoding::Cbor, Status::Accepted).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn status_contradicting_the_topic_is_an_error() {
        let err = parse(ACCEPTED.as_bytes(), Encoding::Json, Status::Rejected).unwrap_err();
        assert!(err.to_string().contains("ACCEPTED"), "{err}");
    }

    #[test]
    fn composed_answers_parse_back() {
        for encoding in [Encoding::Json, Encoding::Cbor] {
            let ok = to_bytes(&compose("gw", Some(9), None, 5), encoding);
            let v = parse(&ok, encoding, Status::Accepted).unwrap();
            assert_eq!((v.report_id, v.timestamp), (Some(9), Some(5)));
            let no = compose("gw", None, Some(("Throttled", "slow down")), 6);
            let v = parse(&to_bytes(&no, encoding), encoding, Status::Rejected).unwrap();
            assert_eq!(v.error_code.as_deref(), Some("Throttled"));
            assert_eq!(v.error_message.as_deref(), Some("slow down"));
            assert_eq!(v.thing_name.as_deref(), Some("gw"));
        }
    }
}
