//! Judges one incoming report as AWS does (protocol doc §1–§4, §7): topic and thing name,
//! size, structure via the agent's decoder, report_id increasing per thing, throttling; and
//! builds the `accepted` / `rejected` answer of §3 in the report's encoding. No I/O, no store.

use detect_agent::report::decode;
use detect_agent::report::decode::Decoded;

/// IoT Core drops PUBLISH payloads above 128 KB (protocol doc §4, §7.1 item 16).
pub const MAX_REPORT_BYTES: usize = 128 * 1024;

/// The only error code AWS documents for a bad report (protocol doc §3.3).
pub const INVALID_PAYLOAD: &str = "InvalidPayload";
/// Reports of one thing closer than the minimum interval (protocol doc §3.3, §4).
pub const THROTTLED: &str = "Throttled";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Json,
    Cbor,
}

impl Encoding {
    pub fn segment(self) -> &'static str {
        match self {
            Encoding::Json => "json",
            Encoding::Cbor => "cbor",
        }
    }
}

/// A report topic `$aws/things/{thing}/defender/metrics/{json|cbor}` (protocol doc §2.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportTopic {
    pub thing: String,
    pub encoding: Encoding,
}

impl ReportTopic {
    /// `None` for any other topic (including the answer topics).
    pub fn parse(topic: &str) -> Option<ReportTopic> {
        let rest = topic.strip_prefix("$aws/things/")?;
        let (thing, format) = rest.rsplit_once("/defender/metrics/")?;
        let encoding = match format {
            "json" => Encoding::Json,
            "cbor" => Encoding::Cbor,
            _ => return None,
        };
        Some(ReportTopic {
            thing: thing.to_string(),
            encoding,
        })
    }

    pub fn answer_topic(&self, accepted: bool) -> String {
        let suffix = if accepted { "accepted" } else { "rejected" };
        format!(
            "$aws/things/{}/defender/metrics/{}/{suffix}",
            self.thing,
            self.encoding.segment()
        )
    }
}

/// Why a report was rejected: the `statusDetails` of §3.2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub code: &'static str,
    pub message: String,
}

fn invalid(message: impl Into<String>) -> Rejection {
    Rejection {
        code: INVALID_PAYLOAD,
        message: message.into(),
    }
}

/// Checks the parts that need no history: thing name, size, structure, encoding.
/// Returns the decoded report, or the rejection with the report id when it could be read.
pub fn structure(topic: &ReportTopic, payload: &[u8]) -> Result<Decoded, (Rejection, Option<u64>)> {
    if let Err(e) = detect_agent::identity::check(&topic.thing) {
        return Err((
            invalid(format!("Malformed metrics report: thing name: {e}")),
            None,
        ));
    }
    if payload.len() > MAX_REPORT_BYTES {
        return Err((
            invalid(format!(
                "Malformed metrics report: {} bytes, more than {MAX_REPORT_BYTES}",
                payload.len()
            )),
            None,
        ));
    }
    let decoded =
        decode(payload).map_err(|e| (invalid(format!("Malformed metrics report: {e}")), None))?;
    let cbor = decoded.format.is_cbor();
    if cbor != (topic.encoding == Encoding::Cbor) {
        let m = format!(
            "Malformed metrics report: a {} payload on the {} topic",
            if cbor { "CBOR" } else { "JSON" },
            topic.encoding.segment()
        );
        return Err((invalid(m), Some(decoded.report.header.report_id)));
    }
    Ok(decoded)
}

/// The checks against the thing's last accepted report: report_id must increase (protocol
/// doc §1.3, §4), and reports closer than `min_interval_ms` are `Throttled` (§4).
pub fn sequence(
    report_id: u64,
    now_ms: u64,
    last: Option<(u64, u64)>,
    min_interval_ms: u64,
) -> Result<(), Rejection> {
    let Some((last_id, last_ms)) = last else {
        return Ok(());
    };
    if report_id <= last_id {
        return Err(invalid(format!(
            "Malformed metrics report: report_id {report_id} is not greater than the last accepted {last_id}"
        )));
    }
    if now_ms < last_ms.saturating_add(min_interval_ms) {
        return Err(Rejection {
            code: THROTTLED,
            message: format!(
                "Report sent {} ms after the previous accepted one; the minimum interval is {} ms",
                now_ms.saturating_sub(last_ms),
                min_interval_ms
            ),
        });
    }
    Ok(())
}

/// The answer payload (protocol doc §3.1, §3.2) as a JSON value.
pub fn answer(
    thing: &str,
    report_id: Option<u64>,
    outcome: Result<(), &Rejection>,
    now_ms: u64,
) -> serde_json::Value {
    let mut v = serde_json::json!({ "thingName": thing });
    if let Some(id) = report_id {
        v["reportId"] = id.into();
    }
    match outcome {
        Ok(()) => v["status"] = "ACCEPTED".into(),
        Err(r) => {
            v["status"] = "REJECTED".into();
            v["statusDetails"] =
                serde_json::json!({ "ErrorCode": r.code, "ErrorMessage": r.message });
        }
    }
    v["timestamp"] = now_ms.into();
    v
}

/// The answer in the report's encoding (§2.1: CBOR on /cbor, JSON on /json).
pub fn encode_answer(v: &serde_json::Value, encoding: Encoding) -> Vec<u8> {
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

    #[test]
    fn report_topics_parse_and_answer_topics_do_not() {
        let t = ReportTopic::parse("$aws/things/gw-1/defender/metrics/cbor").unwrap();
        assert_eq!(t.thing, "gw-1");
        assert_eq!(t.encoding, Encoding::Cbor);
        assert_eq!(
            t.answer_topic(false),
            "$aws/things/gw-1/defender/metrics/cbor/rejected"
        );
        assert!(ReportTopic::parse("$aws/things/gw-1/defender/metrics/json/accepted").is_none());
        assert!(ReportTopic::parse("$aws/things/gw-1/defender/metrics/JSON").is_none());
    }

    #[test]
    fn ids_must_grow_and_reports_must_be_spaced() {
        assert!(sequence(5, 1000, None, 300_000).is_ok());
        assert_eq!(
            sequence(5, 999_999, Some((5, 0)), 1).unwrap_err().code,
            INVALID_PAYLOAD
        );
        assert_eq!(
            sequence(6, 1000, Some((5, 0)), 300_000).unwrap_err().code,
            THROTTLED
        );
        assert!(sequence(6, 300_000, Some((5, 0)), 300_000).is_ok());
    }

    #[test]
    fn mixed_keys_and_wrong_encodings_are_invalid_payloads() {
        let t = ReportTopic::parse("$aws/things/gw/defender/metrics/json").unwrap();
        let mixed = br#"{"hed":{"report_id":1,"version":"1.0"},"metrics":{}}"#;
        assert_eq!(structure(&t, mixed).unwrap_err().0.code, INVALID_PAYLOAD);
        let good = br#"{"header":{"report_id":7,"version":"1.0"},"metrics":{}}"#;
        assert!(structure(&t, good).is_ok());
        let c = ReportTopic::parse("$aws/things/gw/defender/metrics/cbor").unwrap();
        assert_eq!(structure(&c, good).unwrap_err().1, Some(7));
    }
}
