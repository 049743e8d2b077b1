//! When reports go out: fixed slots every `interval`, shifted by a per-thing offset derived
//! from a hash of the thing name, so a fleet that boots together spreads out.

use std::time::Duration;

use crate::detect::hash::fnv1a;

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

/// How long before the next slot a report's wait ends, so that settling it (a state write)
/// never pushes the cycle past that slot: a tenth of the interval, at most 500 ms.
pub fn slot_guard(interval: Duration) -> Duration {
    (interval / 10).min(Duration::from_millis(500))
}

/// The wait for one report's PUBACK and verdict: `verdict_timeout`, cut so that it ends
/// `slot_guard` before the next slot (`until_next_slot` from now). A verdict that comes
/// later still settles its report before the next one (the late-verdict path in `cycle`).
pub fn publish_wait(
    verdict_timeout: Duration,
    until_next_slot: Duration,
    interval: Duration,
) -> Duration {
    verdict_timeout.min(until_next_slot.saturating_sub(slot_guard(interval)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_verdict_wait_ends_before_the_next_slot() {
        let s = Duration::from_secs;
        let ms = Duration::from_millis;
        // The case: interval 2 s, timeout 10 s, slot just started.
        assert_eq!(publish_wait(s(10), s(2), s(2)), ms(1_800));
        // Sampling took a while: the wait shrinks with the time left.
        assert_eq!(publish_wait(s(10), ms(1_500), s(2)), ms(1_300));
        // Long intervals: the configured timeout, untouched.
        assert_eq!(publish_wait(s(10), s(300), s(300)), s(10));
        // The guard is capped at 500 ms...
        assert_eq!(publish_wait(s(60), s(60), s(60)), ms(59_500));
        // ...and a slot already missed gives no wait at all, never a negative one.
        assert_eq!(publish_wait(s(10), ms(50), s(2)), Duration::ZERO);
        for interval in [1, 2, 5, 300, 86_400] {
            let i = s(interval);
            assert!(publish_wait(s(60), i, i) < i, "{interval}");
        }
    }

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
