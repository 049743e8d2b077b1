//! Judges one incoming report as AWS does (protocol doc §1–§4, §7): topic and thing name,
//! size, structure via the protocol decoder, report_id increasing per thing, throttling; and
//! builds the `accepted` / `rejected` answer of §3 in the report's encoding. No I/O, no store.

use protocol::verdict;
use protocol::{Decoded, MAX_PUBLISH_BYTES, decode};

pub use protocol::{Encoding, ReportTopic};

/// The only error code AWS documents for a bad report (protocol doc §3.3).
pub const INVALID_PAYLOAD: &str = "InvalidPayload";
/// Reports of one thing closer than the minimum interval (protocol doc §3.3, §4).
pub const THROTTLED: &str = "Throttled";

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
/// Returns the decoded report, or the rejection with the report id whenever the header was
/// readable (the embedded-C demo reads `reportId` from rejections, protocol doc §3.2).
pub fn structure(topic: &ReportTopic, payload: &[u8]) -> Result<Decoded, (Rejection, Option<u64>)> {
    if let Err(e) = protocol::identity::check(&topic.thing) {
        let id = (payload.len() <= MAX_PUBLISH_BYTES)
            .then(|| crate::intake_peek::report_id(payload))
            .flatten();
        return Err((
            invalid(format!("Malformed metrics report: thing name: {e}")),
            id,
        ));
    }
    // IoT Core drops PUBLISH payloads above 128 KiB (protocol doc §4, §7.1 item 16).
    if payload.len() > MAX_PUBLISH_BYTES {
        return Err((
            invalid(format!(
                "Malformed metrics report: {} bytes, more than {MAX_PUBLISH_BYTES}",
                payload.len()
            )),
            None,
        ));
    }
    let decoded = decode(payload).map_err(|e| {
        let id = crate::intake_peek::report_id(payload);
        (invalid(format!("Malformed metrics report: {e}")), id)
    })?;
    let encoding = decoded.format.encoding();
    if encoding != topic.encoding {
        let m = format!(
            "Malformed metrics report: a {} payload on the {} topic",
            encoding.label(),
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

/// The answer payload (protocol doc §3.1, §3.2) as a JSON value (`protocol::verdict`).
pub fn answer(
    thing: &str,
    report_id: Option<u64>,
    outcome: Result<(), &Rejection>,
    now_ms: u64,
) -> serde_json::Value {
    let rejection = outcome.err().map(|r| (r.code, r.message.as_str()));
    verdict::compose(thing, report_id, rejection, now_ms)
}

/// The answer in the report's encoding (§2.1: CBOR on /cbor, JSON on /json).
pub fn encode_answer(v: &serde_json::Value, encoding: Encoding) -> Vec<u8> {
    verdict::to_bytes(v, encoding)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let (rejection, id) = structure(&t, mixed).unwrap_err();
        assert_eq!(rejection.code, INVALID_PAYLOAD);
        assert_eq!(
            id,
            Some(1),
            "the header's id is readable, mixed keys or not"
        );
        let (rejection, id) =
            structure(&t, br#"{"hed":{"rid":4,"version":"1.0"},"met":{}}"#).unwrap_err();
        assert_eq!(
            id,
            Some(4),
            "header readable, so the answer carries reportId"
        );
        let m = &rejection.message;
        assert!(!m.contains('§') && !m.contains("protocol doc"), "{m}");
        let (rejection, _) =
            structure(&t, br#"{"header":{"report_id":2,"version":"1.0"}}"#).unwrap_err();
        assert!(!rejection.message.contains('§'), "{}", rejection.message);
        let good = br#"{"header":{"report_id":7,"version":"1.0"},"metrics":{}}"#;
        assert!(structure(&t, good).is_ok());
        let c = ReportTopic::parse("$aws/things/gw/defender/metrics/cbor").unwrap();
        assert_eq!(structure(&c, good).unwrap_err().1, Some(7));
    }
}
