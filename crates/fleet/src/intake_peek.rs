//! Reads only a report's `report_id` (long or short key, JSON or CBOR) from a payload the
//! decoder refused, so a `/rejected` answer carries `reportId` whenever the header was readable.

use serde::Deserialize;

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
/// an unsigned integer; `None` otherwise. Everything else is skipped without being kept.
pub fn report_id(payload: &[u8]) -> Option<u64> {
    let root: Root = if matches!(payload.first(), Some(0xa0..=0xbf)) {
        ciborium::from_reader(payload).ok()?
    } else {
        serde_json::from_slice(payload).ok()?
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
        let v = serde_json::json!({"hed": {"rid": 9, "v": "1.0"}, "metrics": {}});
        let mut cbor = Vec::new();
        ciborium::into_writer(&v, &mut cbor).unwrap();
        assert_eq!(report_id(&cbor), Some(9));
        assert_eq!(report_id(br#"{"header":{"report_id":-1}}"#), None);
        assert_eq!(report_id(br#"{"metrics":{}}"#), None);
        assert_eq!(report_id(b"not json"), None);
    }
}
