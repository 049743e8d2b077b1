//! Owns the rate limit of log lines that others can cause at will (verdicts for no report in
//! flight, malformed verdicts): a few lines per window, the rest counted. Does not log itself.

use std::time::Duration;

use tokio::time::Instant;

/// Lines allowed per window; the rest of the window's events are only counted.
const BURST: u32 = 10;
/// The window; the count of suppressed events is due when it ends.
const WINDOW: Duration = Duration::from_secs(10);

#[derive(Debug, Default)]
pub struct LogLimit {
    /// Start of the current window; `None` before the first event.
    since: Option<Instant>,
    logged: u32,
    suppressed: u64,
}

impl LogLimit {
    /// True when the event at `now` may be logged; otherwise it is counted.
    pub fn allow(&mut self, now: Instant) -> bool {
        match self.since {
            Some(since) if now < since + WINDOW => {}
            // A new window; suppressed counts wait for `take_suppressed`.
            _ => {
                self.since = Some(now);
                self.logged = 0;
            }
        }
        if self.logged < BURST {
            self.logged += 1;
            true
        } else {
            self.suppressed = self.suppressed.saturating_add(1);
            false
        }
    }

    /// When the suppressed count should be logged (the end of its window), if any.
    pub fn due(&self) -> Option<Instant> {
        match self.since {
            Some(since) if self.suppressed > 0 => Some(since + WINDOW),
            _ => None,
        }
    }

    /// The events suppressed so far, once their window is over at `now`; resets the count.
    pub fn take_suppressed(&mut self, now: Instant) -> Option<u64> {
        let due = self.due()?;
        if now < due {
            return None;
        }
        let n = self.suppressed;
        self.suppressed = 0;
        Some(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_per_window_then_a_count_when_the_window_ends() {
        let t0 = Instant::now();
        let mut l = LogLimit::default();
        assert_eq!(l.due(), None);
        let allowed = (0..20_000).filter(|_| l.allow(t0)).count();
        assert_eq!(allowed, BURST as usize);
        assert_eq!(l.due(), Some(t0 + WINDOW));
        assert_eq!(l.take_suppressed(t0 + WINDOW / 2), None);
        assert_eq!(
            l.take_suppressed(t0 + WINDOW),
            Some(20_000 - u64::from(BURST))
        );
        assert_eq!(l.due(), None);
        // The next window logs again.
        assert!(l.allow(t0 + WINDOW));
        assert_eq!(l.take_suppressed(t0 + 3 * WINDOW), None);
    }
}
