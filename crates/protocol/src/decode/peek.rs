//! Reads only a report's `report_id` (long or short key, JSON or CBOR) from a payload the
//! decoder refused, so a `/rejected` answer carries `reportId` whenever the header was readable.
//!
//! Everything but the header is skipped without being kept: text is borrowed from the input
//! (only CBOR text in chunks is joined), nesting is capped (CBOR 16, JSON 128), so a refused
//! payload's second read costs no memory to speak of (issue #17 item 6).

use serde::Deserialize;

use super::cbor::Reader;

#[derive(Deserialize)]
struct Root {
    #[serde(alias = "hed")]
    header: Option<Header>,
}

#[derive(Deserialize)]
struct Header {
    #[serde(alias = "rid")]
    report_id: Option<u64>,
}

/// The header's `report_id` when the payload is a JSON or CBOR map whose header holds one as
/// an unsigned integer; `None` otherwise.
pub fn report_id(payload: &[u8]) -> Option<u64> {
    let root = if matches!(payload.first(), Some(0xa0..=0xbf)) {
        Root::deserialize(&mut Reader::new(payload)).ok()?
    } else {
        serde_json::from_slice::<Root>(payload).ok()?
    };
    root.header?.report_id
}

#[cfg(test)]
mod tests {
    use super::report_id;

    #[test]
    fn the_id_is_read_from_long_and_short_headers_in_json_and_cbor() {
        let long = br#"{"header":{"report_id":7,"version":"9"},"metrics":{"x":null}}"#;
        assert_eq!(report_id(long), Some(7));
        let short = br#"{"hed":{"rid":8},"met":{"tp":1}}"#;
        assert_eq!(report_id(short), Some(8));
        let v =
            serde_json::json!({"hed": {"rid": 9, "v": "1.0"}, "metrics": {"a": [1, {"b": null}]}});
        let mut cbor = Vec::new();
        ciborium::into_writer(&v, &mut cbor).unwrap();
        assert_eq!(report_id(&cbor), Some(9));
        let null_header = serde_json::json!({"header": null, "metrics": {}});
        let mut cbor = Vec::new();
        ciborium::into_writer(&null_header, &mut cbor).unwrap();
        assert_eq!(report_id(&cbor), None);
        assert_eq!(report_id(br#"{"header":{"report_id":-1}}"#), None);
        assert_eq!(report_id(br#"{"metrics":{}}"#), None);
        assert_eq!(report_id(b"not json"), None);
    }
}
