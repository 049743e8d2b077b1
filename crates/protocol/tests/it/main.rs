//! Issue #17 item 6: one device's message costs the decoder memory in proportion to its size,
//! refused structure next to nothing. Counts this thread's allocations (peak and in all).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

thread_local! {
    static LIVE: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
    static TOTAL: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let _ = LIVE.try_with(|live| {
            live.set(live.get() + l.size());
            PEAK.with(|p| p.set(p.get().max(live.get())));
            TOTAL.with(|t| t.set(t.get() + l.size()));
        });
        unsafe { System.alloc(l) }
    }

    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        let _ = LIVE.try_with(|live| live.set(live.get().saturating_sub(l.size())));
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static A: Counting = Counting;

/// Decodes `bytes`, returning (peak bytes above the start, bytes allocated in all, accepted).
fn cost(bytes: &[u8]) -> (usize, usize, bool) {
    let base = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(base));
    TOTAL.with(|t| t.set(0));
    let r = protocol::decode(bytes);
    let ok = r.is_ok();
    drop(r);
    (PEAK.with(Cell::get) - base, TOTAL.with(Cell::get), ok)
}

/// The bound every input must meet: a decoded list of empty strings costs a 24-byte `String`
/// per input byte in CBOR (the model's own cost); anything refused costs next to nothing.
/// Before the one-pass typed walk the issue's bomb took 241 bytes per byte, earlier 450.
const PEAK_PER_BYTE: usize = 24;
const TOTAL_PER_BYTE: usize = 48;
/// Error texts and the like, for any input.
const FIXED: usize = 4096;

fn check(name: &str, bytes: &[u8], accepted: bool) -> usize {
    let (peak, total, ok) = cost(bytes);
    let n = bytes.len();
    println!(
        "{name}: {n} bytes, peak {peak} ({:.1}x), allocated {total} ({:.1}x)",
        peak as f64 / n as f64,
        total as f64 / n as f64
    );
    assert_eq!(ok, accepted, "{name}: accepted");
    assert!(
        peak <= PEAK_PER_BYTE * n + FIXED,
        "{name}: peak {peak} bytes for {n}"
    );
    assert!(
        total <= TOTAL_PER_BYTE * n + FIXED,
        "{name}: {total} bytes allocated for {n}"
    );
    peak
}

/// A short-key header and `key` opening the rest, as CBOR.
fn cbor_report(key: &str) -> Vec<u8> {
    let mut b = vec![0xa2, 0x63];
    b.extend(b"hed");
    b.extend([0xa2, 0x63]);
    b.extend(b"rid");
    b.extend([0x01, 0x61, b'v', 0x63]);
    b.extend(b"1.0");
    b.push(0x60 + key.len() as u8);
    b.extend(key.as_bytes());
    b
}

#[test]
fn a_deeply_nested_cbor_bomb_costs_its_size() {
    // 130 766 bytes: an array of 261 maps each nested 250 deep (the issue's input).
    let mut b = vec![0xa1, 0x60, 0x99, 0x01, 0x05];
    for _ in 0..261 {
        for _ in 0..250 {
            b.extend([0xa1, 0x60]);
        }
        b.push(0xf6);
    }
    assert_eq!(b.len(), 130_766);
    // Refused at its first key, before any of the nesting is read.
    assert!(check("bomb", &b, false) <= FIXED);
}

#[test]
fn a_long_key_over_many_elements_is_linear() {
    // {"<64 KiB key>": [0, 0, ... 64 Ki zeros]}: every element's error path used to copy the key.
    let k = 64 * 1024;
    let mut b = vec![0xa1, 0x7a];
    b.extend((k as u32).to_be_bytes());
    b.extend(std::iter::repeat_n(b'k', k));
    b.push(0x9a);
    b.extend((k as u32).to_be_bytes());
    b.extend(std::iter::repeat_n(0u8, k));
    // The unknown key is named in the error, once.
    assert!(check("long key", &b, false) <= 2 * k + FIXED);
}

#[test]
fn a_wide_array_of_small_maps_is_linear() {
    // The densest shape: [{"": null}, ...] filling 128 KiB.
    let n = 128 * 1024 / 3;
    let mut b = vec![0xa1, 0x60, 0x9a];
    b.extend((n as u32).to_be_bytes());
    for _ in 0..n {
        b.extend([0xa1, 0x60, 0xf6]);
    }
    assert!(check("wide", &b, false) <= FIXED);
}

#[test]
fn json_bombs_are_refused_before_their_contents_are_read() {
    let n = 128 * 1024 / 3;
    let wide = [b"[".as_slice(), &b"{},".repeat(n), b"{}]"].concat();
    assert!(check("json wide", &wide, false) <= FIXED);
    let deep = [b"{\"header\":".repeat(n / 4), b"1".to_vec()].concat();
    assert!(check("json deep", &deep, false) <= FIXED);
}

#[test]
fn the_costliest_accepted_lists_stay_within_the_bound() {
    // CBOR: 128 Ki empty strings, one byte each (definite and indefinite length).
    let n = 128 * 1024 - 64;
    let mut def = cbor_report("cmet");
    def.extend([0xa1, 0x61, b'm', 0x81, 0xa1, 0x6b]);
    def.extend(b"string_list");
    let mut indef = def.clone();
    def.push(0x9a);
    def.extend((n as u32).to_be_bytes());
    def.extend(vec![0x60; n]);
    indef.push(0x9f);
    indef.extend(vec![0x60; n]);
    indef.push(0xff);
    check("cbor empty strings", &def, true);
    check("cbor empty strings, indefinite", &indef, true);
    // JSON: one string more than a power of two, and numbers, where a growing list peaks.
    let head = r#"{"hed":{"rid":1,"v":"1.0"},"cmet":{"m":[{"#;
    let strings = format!(
        r#"{head}"string_list":[""{}]}}]}}}}"#,
        r#","""#.repeat(1 << 15)
    );
    check("json empty strings", strings.as_bytes(), true);
    let numbers = format!(r#"{head}"number_list":[0{}]}}]}}}}"#, ",0".repeat(1 << 16));
    check("json zeros", numbers.as_bytes(), true);
    // Port entries, the densest structural list.
    let mut ports = cbor_report("met");
    ports.extend([0xa1, 0x62, b't', b'p', 0xa1, 0x63]);
    ports.extend(b"pts");
    ports.push(0x9f);
    ports.extend([0xa1, 0x62, b'p', b't', 0x01].repeat(26_000));
    ports.push(0xff);
    check("cbor ports", &ports, true);
}
