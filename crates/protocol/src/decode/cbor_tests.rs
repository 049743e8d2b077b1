//! The CBOR reader's own rules: items it maps, items it refuses, error paths, and the work
//! it does counted in items visited (issue #17 item 6).

use serde_json::json;

use super::cbor::{MAX_DEPTH, from_cbor};

fn read(b: &[u8]) -> Result<serde_json::Value, String> {
    from_cbor(b, &mut 0).map_err(|e| e.to_string())
}

#[test]
fn items_map_to_json() {
    // {"a": [1, -2, 1.5 (f16), true, null], indefinite "b": indefinite ["x" "y" chunks]}
    let b = [
        0xbf, 0x61, b'a', 0x85, 0x01, 0x21, 0xf9, 0x3e, 0x00, 0xf5, 0xf6, 0x61, b'b', 0x9f, 0x7f,
        0x61, b'x', 0x61, b'y', 0xff, 0xff, 0xff,
    ];
    assert_eq!(
        read(&b).unwrap(),
        json!({"a": [1, -2, 1.5, true, null], "b": ["xy"]})
    );
    assert_eq!(
        read(&[0x3b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).unwrap(),
        json!(i64::MIN)
    );
}

#[test]
fn refusals_name_the_path_or_say_not_cbor() {
    let cases: [(&[u8], &str); 7] = [
        (
            &[0xa1, 0x61, b'k', 0x82, 0x00, 0xc1, 0x00],
            "report.k[1]: CBOR tags",
        ),
        (
            &[0xa1, 0x61, b'k', 0x3b, 0x80, 0, 0, 0, 0, 0, 0, 0],
            "report.k: integer out of range",
        ),
        (
            &[0xa2, 0x61, b'k', 0x00, 0x61, b'k', 0x00],
            "report.k: key appears twice",
        ),
        (&[0xa1, 0x01, 0x00], "report: map key is not a text string"),
        (
            &[0xa1, 0x61, b'k', 0xf9, 0x7c, 0x00],
            "report.k: number is not finite",
        ),
        (
            &[0xa1, 0x61, b'k', 0x9a, 0xff, 0xff, 0xff, 0xff],
            "not a CBOR report: length",
        ),
        (&[0xa1, 0x61, b'k'], "not a CBOR report: unexpected end"),
    ];
    for (b, want) in cases {
        let got = read(b).unwrap_err();
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
    assert!(read(&nest(MAX_DEPTH)).is_ok());
    let err = read(&nest(MAX_DEPTH + 1)).unwrap_err();
    assert!(err.contains("nested deeper than 16"), "{err}");
    // The bomb stops at the first too-deep map: the work is bounded by the input.
    let mut bomb = vec![0xa1, 0x60, 0x99, 0x01, 0x05];
    for _ in 0..261 {
        bomb.extend(nest(250));
    }
    let mut nodes = 0;
    assert!(from_cbor(&bomb, &mut nodes).is_err());
    assert!(nodes <= 2 * MAX_DEPTH + 4, "{nodes} items visited");
    // A long key over 64 Ki elements: one visit per element, whatever the key's length.
    let mut b = vec![0xa1, 0x7a, 0, 1, 0, 0];
    b.extend([b'k'].repeat(1 << 16));
    b.extend([0x9a, 0, 1, 0, 0]);
    b.extend([0u8].repeat(1 << 16));
    let mut nodes = 0;
    assert!(from_cbor(&b, &mut nodes).is_ok());
    assert!(nodes <= b.len() / 2, "{nodes} items for {} bytes", b.len());
}
