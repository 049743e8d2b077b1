//! When reports go out: fixed slots every `interval`, shifted by a per-thing offset derived
//! from a hash of the thing name, so a fleet that boots together spreads out.

use std::time::Duration;

/// FNV-1a 64: stable across Rust versions and platforms (std's hasher is not).
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The thing's offset within the interval, in milliseconds.
pub fn offset_ms(thing: &str, interval: Duration) -> u64 {
    let interval_ms = (interval.as_millis() as u64).max(1);
    fnv1a(thing.as_bytes()) % interval_ms
}

/// The first slot strictly after `now_ms` (epoch ms): `k * interval + offset`.
pub fn next_slot_ms(now_ms: u64, interval: Duration, offset_ms: u64) -> u64 {
    let interval_ms = (interval.as_millis() as u64).max(1);
    if now_ms < offset_ms {
        return offset_ms;
    }
    let k = (now_ms - offset_ms) / interval_ms + 1;
    k.saturating_mul(interval_ms).saturating_add(offset_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_is_deterministic_and_spreads() {
        let i = Duration::from_secs(300);
        assert_eq!(offset_ms("gw-1", i), offset_ms("gw-1", i));
        let offsets: std::collections::BTreeSet<u64> = (0..50)
            .map(|n| offset_ms(&format!("gw-{n}"), i) / 1000)
            .collect();
        assert!(offsets.len() > 30, "offsets cluster: {offsets:?}");
        assert!(offsets.iter().all(|&o| o < 300));
    }

    #[test]
    fn next_slot_is_after_now_and_on_the_grid() {
        let i = Duration::from_secs(300);
        for now in [0u64, 1, 299_999, 300_000, 1_700_000_123_456] {
            let next = next_slot_ms(now, i, 42_000);
            assert!(next > now);
            assert!(next - now <= 300_000);
            assert_eq!((next - 42_000) % 300_000, 0);
        }
    }
}
