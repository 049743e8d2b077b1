//! The CBOR reader's own rules: items it maps, items it refuses, error paths, and the work
//! it does counted in items visited (issue #17 item 6).

use serde::Deserialize;
use serde_json::{Value, json};

use super::cbor::{MAX_DEPTH, Reader};
use super::decode;

/// Reads any CBOR item as JSON, returning the items visited.
fn read(b: &[u8]) -> (Result<Value, String>, usize) {
    let mut r = Reader::new(b);
    let v = Value::deserialize(&mut r).map_err(|e| e.to_string());
    (v, r.nodes)
}

#[test]
fn items_map_to_json() {
    // {"a": [1, -2, 1.5 (f16), true, null], indefinite "b": indefinite ["x" "y" chunks]}
    let b = [
        0xbf, 0x61, b'a', 0x85, 0x01, 0x21, 0xf9, 0x3e, 0x00, 0xf5, 0xf6, 0x61, b'b', 0x9f, 0x7f,
        0x61, b'x', 0x61, b'y', 0xff, 0xff, 0xff,
    ];
    assert_eq!(
        read(&b).0.unwrap(),
        json!({"a": [1, -2, 1.5, true, null], "b": ["xy"]})
    );
    assert_eq!(
        read(&[0x3b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])
            .0
            .unwrap(),
        json!(i64::MIN)
    );
}

#[test]
fn refusals_name_the_path_or_say_not_cbor() {
    // Each inside a report's header: {"header": {"report_id": <item>}}.
    let at_id = |item: &[u8]| {
        let mut b = vec![0xa1, 0x66];
        b.extend(b"header");
        b.extend([0xa1, 0x69]);
        b.extend(b"report_id");
        b.extend(item);
        b
    };
    let cases: [(Vec<u8>, &str); 8] = [
        (at_id(&[0xc1, 0x00]), "header.report_id: CBOR tags"),
        (
            at_id(&[0x3b, 0x80, 0, 0, 0, 0, 0, 0, 0]),
            "header.report_id: integer out of range",
        ),
        (
            at_id(&[0xf9, 0x7c, 0x00]),
            "header.report_id: number is not finite",
        ),
        (
            at_id(&[0x9a, 0xff, 0xff, 0xff, 0xff]),
            "not a CBOR report: length",
        ),
        (at_id(&[]), "not a CBOR report: unexpected end"),
        (
            [&at_id(&[0x01])[..], &[0x69], b"report_id", &[0x01]].concat(),
            "header.report_id: key appears twice",
        ),
        (
            vec![0xa1, 0x01, 0x00],
            "report: map key is not a text string",
        ),
        (vec![0xa1, 0x66, b'h'], "not a CBOR report: unexpected end"),
    ];
    for (mut b, want) in cases {
        if want.contains("twice") {
            b[8] = 0xa2;
        }
        let got = decode(&b).unwrap_err().to_string();
        assert!(
            got.starts_with(want),
            "{b:02x?}\n  got:  {got}\n  want: {want}"
        );
    }
}

#[test]
fn nesting_is_capped_and_work_follows_the_input() {
    let nest = |d: usize| {
        let mut b = [0xa1, 0x60].repeat(d);
        b.push(0xf6);
        b
    };
    assert!(read(&nest(MAX_DEPTH)).0.is_ok());
    let err = read(&nest(MAX_DEPTH + 1)).0.unwrap_err();
    assert!(err.contains("nested deeper than 16"), "{err}");
    // The bomb: the report walk stops at its first key, a JSON tree at the first
    // too-deep map: the work is bounded by the input.
    let mut bomb = vec![0xa1, 0x60, 0x99, 0x01, 0x05];
    for _ in 0..261 {
        bomb.extend(nest(250));
    }
    let (v, nodes) = read(&bomb);
    assert!(v.is_err());
    assert!(nodes <= 2 * MAX_DEPTH + 4, "{nodes} items visited");
    let err = decode(&bomb).unwrap_err().to_string();
    assert_eq!(err, "report: unknown key \"\"");
    // A long key over 64 Ki elements: one visit per element, whatever the key's length.
    let mut b = vec![0xa1, 0x7a, 0, 1, 0, 0];
    b.extend([b'k'].repeat(1 << 16));
    b.extend([0x9a, 0, 1, 0, 0]);
    b.extend([0u8].repeat(1 << 16));
    let (v, nodes) = read(&b);
    assert!(v.is_ok());
    assert!(nodes <= b.len() / 2, "{nodes} items for {} bytes", b.len());
}
