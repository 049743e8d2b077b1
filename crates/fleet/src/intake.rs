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
            .then(|| protocol::decode::report_id(payload))
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
        let id = protocol::decode::report_id(payload);
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

/// A report_id read as its send time may be this far ahead of our clock (device clock skew).
pub const SENT_AHEAD_MS: u64 = 60_000;
/// ... and at most this far behind it: the broker's backlog of an outage; older ids, and ids
/// that only look like times (a monotonic millisecond clock), are not read as times.
pub const SENT_BEHIND_MS: u64 = 2 * 24 * 3600 * 1000;

/// The epoch time a report_id stands for, in ms, with its unit (true: seconds): AWS suggests
/// epoch time (protocol doc §1.3), in seconds (AWS's Python and C agents) or milliseconds
/// (ours). Ten digits are seconds, thirteen milliseconds (2001–2286); anything else is no time.
pub fn id_time(report_id: u64) -> Option<(u64, bool)> {
    match report_id {
        1_000_000_000..10_000_000_000 => Some((report_id * 1000, true)),
        1_000_000_000_000..10_000_000_000_000 => Some((report_id, false)),
        _ => None,
    }
}

/// How far apart the two reports were SENT, by their report_ids, when both read as epoch
/// times in one unit and the new one is within [now − 2 days, now + 60 s] (issue #17 item 1).
fn sent_spacing(report_id: u64, last_id: u64, now_ms: u64) -> Option<u64> {
    let (sent, unit) = id_time(report_id)?;
    let (last, last_unit) = id_time(last_id)?;
    let plausible = sent <= now_ms.saturating_add(SENT_AHEAD_MS)
        && sent.saturating_add(SENT_BEHIND_MS) >= now_ms;
    (unit == last_unit && plausible).then(|| sent.saturating_sub(last))
}

/// The checks against the thing's last accepted report: report_id must increase (protocol
/// doc §1.3, §4), and reports closer than `min_interval_ms` are `Throttled` (§4). Closer
/// means both when received (`now_ms` against the last receive time) and when sent (the
/// report_ids read as epoch times, `sent_spacing`): a backlog the broker held while we were
/// away was received at once but sent at the device's interval, and is accepted in order.
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
    let received = now_ms.saturating_sub(last_ms);
    let spacing = received.max(sent_spacing(report_id, last_id, now_ms).unwrap_or(0));
    if spacing < min_interval_ms {
        return Err(Rejection {
            code: THROTTLED,
            message: format!(
                "Report sent {spacing} ms after the previous accepted one; the minimum interval is {min_interval_ms} ms"
            ),
        });
    }
    Ok(())
}

/// SHA-256 of a report's payload: a redelivery is these same bytes (issue #17). Stored with
/// each answer and compared on every report, so stable across builds (std's hashers are
/// not) and collision-resistant: a device must not be able to make a different report
/// pass for one already answered, which a 64-bit keyless hash would not rule out.
pub fn digest(payload: &[u8]) -> crate::store::Digest {
    let mut out = [0u8; 32];
    out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, payload).as_ref());
    out
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

    /// Issue #17 item 1: report_ids that are epoch times measure when reports were sent.
    #[test]
    fn a_backlog_sent_at_the_interval_is_not_throttled() {
        let now = 1_800_000_000_000; // 2027, ms
        let s = 1_799_999_990; // epoch seconds, 10 s ago
        // Received 1 ms apart, sent 7 s apart (seconds), or 7 s apart (ms ids).
        assert!(sequence(s + 7, now + 1, Some((s, now)), 5_000).is_ok());
        let m = s * 1000;
        assert!(sequence(m + 7_000, now + 1, Some((m, now)), 5_000).is_ok());
        // Sent 2 s apart: throttled; a unit change or a future id does not count as sent.
        let closer = sequence(s + 2, now + 1, Some((s, now)), 5_000).unwrap_err();
        assert_eq!(closer.code, THROTTLED);
        assert!(closer.message.contains("2000 ms"), "{}", closer.message);
        let mixed = sequence(m + 7_000, now + 1, Some((s, now)), 5_000);
        assert_eq!(mixed.unwrap_err().code, THROTTLED);
        let ahead = 1_800_000_000 + 120;
        let future = sequence(ahead, now + 1, Some((s, now)), 5_000);
        assert_eq!(future.unwrap_err().code, THROTTLED);
        // Older than the backlog window: not read as a time (monotonic clocks alias there).
        let old = 1_000_000_000;
        let stale = sequence(old + 7, now + 1, Some((old, now)), 5_000);
        assert_eq!(stale.unwrap_err().code, THROTTLED);
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

    #[test]
    fn a_major_version_other_than_1_is_an_invalid_payload() {
        let t = ReportTopic::parse("$aws/things/gw/defender/metrics/json").unwrap();
        let v2 = br#"{"header":{"report_id":7,"version":"2.0"},"metrics":{}}"#;
        let (r, _) = structure(&t, v2).unwrap_err();
        assert_eq!(r.code, INVALID_PAYLOAD);
        assert!(
            r.message
                .contains("header.version: \"2.0\" is not version 1.x"),
            "{}",
            r.message
        );
        let v1 = br#"{"header":{"report_id":7,"version":"1.1"},"metrics":{}}"#;
        assert!(structure(&t, v1).is_ok());
    }
}
