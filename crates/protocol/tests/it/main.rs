//! Issue #17 item 6: one device's message costs the decoder memory and work in proportion to
//! its size. Counts this thread's allocations (bytes live at peak, bytes allocated in all).

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

/// Decodes `bytes`, returning (peak bytes above the start, bytes allocated in all).
fn cost(bytes: &[u8]) -> (usize, usize) {
    let base = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(base));
    TOTAL.with(|t| t.set(0));
    let r = protocol::decode(bytes);
    assert!(r.is_err());
    drop(r);
    (PEAK.with(Cell::get) - base, TOTAL.with(Cell::get))
}

/// The bound every input must meet: the worst ratio of a valid report's decoded model to
/// its bytes (maps of one short key) with room to spare; today's main took 450x and more.
const PEAK_PER_BYTE: usize = 300;
const TOTAL_PER_BYTE: usize = 600;

fn check(name: &str, bytes: &[u8]) {
    let (peak, total) = cost(bytes);
    let n = bytes.len();
    println!(
        "{name}: {n} bytes, peak {peak} ({}x), allocated {total} ({}x)",
        peak / n,
        total / n
    );
    assert!(
        peak <= PEAK_PER_BYTE * n,
        "{name}: peak {peak} bytes for {n}"
    );
    assert!(
        total <= TOTAL_PER_BYTE * n,
        "{name}: {total} bytes allocated for {n}"
    );
}

#[test]
fn a_deeply_nested_cbor_bomb_costs_its_size() {
    // 130 766 bytes: an array of 261 maps each nested 250 deep (the input).
    let mut b = vec![0xa1, 0x60, 0x99, 0x01, 0x05];
    for _ in 0..261 {
        for _ in 0..250 {
            b.extend([0xa1, 0x60]);
        }
        b.push(0xf6);
    }
    assert_eq!(b.len(), 130_766);
    check("bomb", &b);
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
    check("long key", &b);
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
    check("wide", &b);
}
