//! Where violation ids come from (detect-rules §6.2: 128 random bits as 32 lowercase hex, one
//! per alarm episode): a source passed in by the caller, and a seeded one. No I/O.

/// Source of violation ids: 128 random bits per alarm episode (§6.2). The daemon passes a
/// random source; tests pass a counter.
pub type IdSource = Box<dyn FnMut() -> u128 + Send>;

/// A deterministic id source (splitmix64, two draws per id) for a seed: `evaluate` uses a
/// fixed seed so its output can be diffed; the daemon seeds it from the kernel's randomness.
pub fn seeded_ids(seed: u64) -> IdSource {
    let mut state = seed;
    let mut next = move || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    Box::new(move || (u128::from(next()) << 64) | u128::from(next()))
}
