//! Owns the reconnect delay: exponential backoff with decorrelated jitter and a seeded RNG.
//! Does not sleep or know about connections; the caller asks for the next delay.

use std::time::Duration;

/// Tiny deterministic RNG (splitmix64); the seed comes from the caller so tests can fix it.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `low..=high` (milliseconds); `low` when the range is empty.
    fn between(&mut self, low: u64, high: u64) -> u64 {
        if high <= low {
            return low;
        }
        let span = high - low + 1;
        low + self.next_u64() % span
    }
}

/// Decorrelated jitter ("Exponential Backoff And Jitter", AWS architecture blog):
/// `next = min(cap, random(initial, previous * 3))`, never below `initial`.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial_ms: u64,
    cap_ms: u64,
    previous_ms: u64,
    rng: SplitMix64,
}

impl Backoff {
    /// Reasonable reconnect defaults: 1 s initial, 5 min cap.
    pub fn reconnect(seed: u64) -> Backoff {
        Backoff::new(Duration::from_secs(1), Duration::from_secs(300), seed)
    }

    /// `initial` is raised to at least 1 ms and `cap` to at least `initial`.
    pub fn new(initial: Duration, cap: Duration, seed: u64) -> Backoff {
        let initial_ms = u64::try_from(initial.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let cap_ms = u64::try_from(cap.as_millis())
            .unwrap_or(u64::MAX)
            .max(initial_ms);
        Backoff {
            initial_ms,
            cap_ms,
            previous_ms: initial_ms,
            rng: SplitMix64::new(seed),
        }
    }

    /// The delay before the next attempt; grows until `cap`.
    pub fn next_delay(&mut self) -> Duration {
        let high = self.previous_ms.saturating_mul(3).min(self.cap_ms);
        let next = self.rng.between(self.initial_ms, high);
        self.previous_ms = next;
        Duration::from_millis(next)
    }

    /// Call after a success: the next failure starts from `initial` again.
    pub fn reset(&mut self) {
        self.previous_ms = self.initial_ms;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_stay_between_initial_and_cap() {
        for seed in 0..50 {
            let mut b = Backoff::reconnect(seed);
            for _ in 0..200 {
                let d = b.next_delay();
                assert!(d >= Duration::from_secs(1), "{d:?}");
                assert!(d <= Duration::from_secs(300), "{d:?}");
            }
        }
    }

    #[test]
    fn first_delay_is_at_most_three_times_initial() {
        for seed in 0..50 {
            let d = Backoff::reconnect(seed).next_delay();
            assert!(d <= Duration::from_secs(3), "{d:?}");
        }
    }

    #[test]
    fn delays_grow_towards_the_cap() {
        let mut b = Backoff::reconnect(7);
        let late = (0..100).map(|_| b.next_delay()).skip(50).max().unwrap();
        assert!(late > Duration::from_secs(60), "{late:?}");
    }

    #[test]
    fn reset_starts_over() {
        let mut b = Backoff::reconnect(3);
        for _ in 0..100 {
            b.next_delay();
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_secs(3));
    }

    #[test]
    fn same_seed_same_sequence() {
        let mut a = Backoff::reconnect(42);
        let mut b = Backoff::reconnect(42);
        for _ in 0..20 {
            assert_eq!(a.next_delay(), b.next_delay());
        }
    }

    #[test]
    fn degenerate_settings_do_not_panic() {
        let mut b = Backoff::new(Duration::ZERO, Duration::ZERO, 0);
        assert_eq!(b.next_delay(), Duration::from_millis(1));
        let mut b = Backoff::new(Duration::MAX, Duration::MAX, 0);
        assert!(b.next_delay() > Duration::ZERO);
    }
}
