//! The calibrated tail (docs/ml.md): a histogram of a score's own history and the threshold
//! per confidence level read from it, as a false-alarm budget. Integer arithmetic only.

use super::fixed::{ONE, log2p1};

/// Bins of 0.25 from −8 to +24.
pub const BINS: usize = 128;
pub const LOW_EDGE: i64 = -8 * ONE;
pub const BIN_WIDTH: i64 = ONE / 4;

/// A confidence level: a false-alarm budget per device and behavior (docs/ml.md §Confidence).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Confidence {
    Low,
    Medium,
    High,
}

impl Confidence {
    pub const ALL: [Confidence; 3] = [Confidence::Low, Confidence::Medium, Confidence::High];

    pub fn from_name(s: &str) -> Option<Confidence> {
        Confidence::ALL.into_iter().find(|c| c.name() == s)
    }

    /// As AWS writes it (`mlDetectionConfig.confidenceLevel`).
    pub fn name(self) -> &'static str {
        ["LOW", "MEDIUM", "HIGH"][self as usize]
    }

    /// At most one false alarm per this many days.
    pub fn budget_days(self) -> u64 {
        [7, 30, 91][self as usize]
    }

    /// The least score that may alarm (Q16): 3.0, 4.5, 6.0.
    pub fn score_floor(self) -> i64 {
        [3 * ONE, 9 * ONE / 2, 6 * ONE][self as usize]
    }

    /// The least ratio of a value to its usual (numerator, denominator): 2×, 3×, 5×.
    pub fn point_ratio(self) -> (u64, u64) {
        [(2, 1), (3, 1), (5, 1)][self as usize]
    }

    /// The least ratio of an hour's volume to its usual: 1.5×, 2×, 3×.
    pub fn window_ratio(self) -> (u64, u64) {
        [(3, 2), (2, 1), (3, 1)][self as usize]
    }
}

/// A group's point and 1-hour window score thresholds per level (Q16), as
/// `Model::thresholds`; calibrated across peers by `learn::group`; and the peers' spread of
/// their own baselines (`learn::peers`): at least 8 of them, no small minority standing out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Group {
    pub point: [i64; 3],
    pub window: [i64; 3],
    pub peers: Option<Peers>,
}

/// The peers' spread of their own baselines for one behavior: a device alarms at a level when
/// both its all-hours baseline and its last hour lie above that level's `limit` (`learn::peers`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peers {
    /// Active models compared.
    pub count: u32,
    /// The median of their all-hours centres (log2(1 + x), Q16).
    pub centre: i64,
    /// The robust spread of those centres: 1.4826 × their median absolute deviation, at
    /// least a quarter of a doubling (Q16).
    pub spread: i64,
    /// Per level, the centre plus 3, 4, 5 spreads and at least 8×, 12×, 20× (Q16).
    pub limit: [i64; 3],
}

/// Counts of scores in 0.25-wide bins; all halve when one would overflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Histogram {
    pub bins: [u16; BINS],
    pub total: u32,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            bins: [0; BINS],
            total: 0,
        }
    }
}

impl Histogram {
    pub fn add(&mut self, score: i64) {
        let i = ((score - LOW_EDGE) / BIN_WIDTH).clamp(0, BINS as i64 - 1) as usize;
        if self.bins[i] == u16::MAX {
            for b in &mut self.bins {
                *b /= 2;
            }
            self.total = self.bins.iter().map(|&b| u32::from(b)).sum();
        }
        self.bins[i] += 1;
        self.total += 1;
    }

    /// The least bin edge `t` with at most `total / per` scores at or above it (Q16).
    fn edge_with_tail(&self, per: u64) -> i64 {
        let mut above = 0u64;
        for i in (0..BINS).rev() {
            above += u64::from(self.bins[i]);
            if above * per > u64::from(self.total) {
                return LOW_EDGE + (i as i64 + 1) * BIN_WIDTH;
            }
        }
        LOW_EDGE
    }

    /// The score threshold of each level for `per_day` datapoints a day: the empirical quantile
    /// at α = 1 / (budget days × per_day) once 5 scores lie above it, else an exponential tail
    /// through the deepest two of the 10 %, 1 %, 0.1 % quantiles that 5 scores support; floored
    /// (`score_floor`) and rising LOW ≤ MEDIUM ≤ HIGH.
    pub fn thresholds(&self, per_day: u64) -> [i64; 3] {
        let total = u64::from(self.total);
        let mut deep = 100;
        while deep < 10_000 && total >= 5 * deep * 10 {
            deep *= 10;
        }
        let (q1, q2) = (self.edge_with_tail(deep / 10), self.edge_with_tail(deep));
        let mut out = [0i64; 3];
        let mut least = i64::MIN;
        for c in Confidence::ALL {
            let per = c.budget_days() * per_day.max(1); // 1 / α
            let t = if total >= 5 * per {
                self.edge_with_tail(per)
            } else {
                // log10(per / deep) = log2(per / deep) × log10 2, in Q16.
                let decades = ((log2p1(per - 1) - log2p1(deep - 1)).max(0) * 19_728) >> 16;
                q2 + (((q2 - q1).max(0) * decades) >> 16)
            };
            least = t.max(c.score_floor()).max(least);
            out[c as usize] = least;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_rise_with_confidence_and_respect_the_floors() {
        let mut h = Histogram::default();
        // Scores spread evenly over −2..+2: tails are short, the floors decide.
        for i in 0..2000i64 {
            h.add((i % 17 - 8) * ONE / 4);
        }
        let t = h.thresholds(288);
        assert_eq!(t, [3 * ONE, 9 * ONE / 2, 6 * ONE]);
        // A heavy tail raises them above the floors.
        for i in 0..200i64 {
            h.add((i % 40) * ONE / 4);
        }
        let t = h.thresholds(288);
        assert!(t[0] > 3 * ONE && t[0] <= t[1] && t[1] <= t[2], "{t:?}");
    }

    #[test]
    fn counts_halve_instead_of_overflowing() {
        let mut h = Histogram::default();
        for _ in 0..70_000 {
            h.add(0);
        }
        assert!(h.total < 70_000 && h.bins[32] == h.total as u16);
    }
}
