//! Group calibration (docs/ml.md, issue #19 item 3): score thresholds from the peers' calibrated
//! tails, trimmed so a minority under attack cannot raise them; a new model judges with them.

use super::calibrate::{BIN_WIDTH, BINS, Confidence, Group, Histogram, LOW_EDGE, Peers};
use super::model::Model;

/// Active peers needed before a group calibrates anything.
pub const MIN_PEERS: usize = 3;

impl Group {
    /// From the active models among `peers` (at least `MIN_PEERS`): at each score `t`, the
    /// mean over the peers of the share of their scores above `t`, without the highest quarter
    /// of peers at that `t`; each level's threshold is the least `t` where that mean is within
    /// its budget (one per `budget_days` at the peers' median datapoints a day), floored and
    /// rising LOW ≤ MEDIUM ≤ HIGH.
    pub fn calibrate<'a>(peers: impl IntoIterator<Item = &'a Model>) -> Option<Group> {
        let active: Vec<&Model> = peers.into_iter().filter(|m| m.active()).collect();
        if active.len() < MIN_PEERS {
            return None;
        }
        let mut days: Vec<u64> = active.iter().map(|m| m.per_day()).collect();
        days.sort_unstable();
        let per_day = days[days.len() / 2];
        let point: Vec<&Histogram> = active.iter().map(|m| &m.point).collect();
        let window: Vec<&Histogram> = active.iter().map(|m| &m.window).collect();
        Some(Group {
            point: trimmed(&point, per_day),
            window: trimmed(&window, per_day),
            peers: Peers::calibrate(&active),
        })
    }
}

/// Share of a histogram's scores at or above bin `i`'s lower edge, in 1/2³².
fn share_above(h: &Histogram, i: usize) -> u64 {
    let above: u64 = h.bins[i..].iter().map(|&b| u64::from(b)).sum();
    (above << 32) / u64::from(h.total.max(1))
}

fn trimmed(hists: &[&Histogram], per_day: u64) -> [i64; 3] {
    let keep = hists.len() - hists.len() / 4;
    // The trimmed mean share above each bin edge; it falls as the edge rises.
    let curve: Vec<u64> = (0..BINS)
        .map(|i| {
            let mut shares: Vec<u64> = hists.iter().map(|h| share_above(h, i)).collect();
            shares.sort_unstable();
            shares[..keep].iter().sum::<u64>() / keep as u64
        })
        .collect();
    let mut out = [0i64; 3];
    let mut least = i64::MIN;
    for c in Confidence::ALL {
        let budget = (1u64 << 32) / (c.budget_days() * per_day.max(1));
        let i = curve.iter().position(|&e| e <= budget).unwrap_or(BINS);
        let t = LOW_EDGE + i as i64 * BIN_WIDTH;
        least = t.max(c.score_floor()).max(least);
        out[c as usize] = least;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learn::Unit;

    const T0: u64 = 1_767_225_600_000;
    const STEP: u64 = 300_000;

    /// A model after `days` of a steady device (small jitter), with a burst every `burst`th
    /// datapoint of `burst_x` when given.
    fn peer(days: u64, seed: u64, burst: Option<(u64, u64)>) -> Model {
        let mut m = Model::default();
        for i in 0..days * 288 {
            let x = match burst {
                Some((every, x)) if i % every == 0 => x,
                _ => 5_000 + (i * 7 + seed * 13) % 600,
            };
            m.observe(T0 + i * STEP, x, Unit::Bytes);
        }
        m
    }

    #[test]
    fn needs_three_active_peers() {
        assert_eq!(
            Group::calibrate([&peer(2, 1, None), &peer(2, 2, None)]),
            None
        );
        assert_eq!(
            Group::calibrate([&peer(2, 1, None), &peer(2, 2, None), &Model::default()]),
            None
        );
    }

    #[test]
    fn a_minority_with_heavy_tails_does_not_raise_the_thresholds() {
        let calm: Vec<Model> = (0..8).map(|s| peer(3, s, None)).collect();
        let base = Group::calibrate(&calm).unwrap();
        let mut mixed = calm.clone();
        mixed.push(peer(3, 9, Some((7, 400_000))));
        mixed.push(peer(3, 10, Some((5, 900_000))));
        let with = Group::calibrate(&mixed).unwrap();
        let thresholds = |g: &Group| (g.point, g.window);
        assert_eq!(
            thresholds(&with),
            thresholds(&base),
            "two of ten under attack change nothing"
        );
        // Where they are half the group, their tails do count (the trim keeps three of four).
        let half = [&calm[0], &mixed[8], &mixed[9], &calm[1]];
        let raised = Group::calibrate(half).unwrap();
        assert!(raised.point[0] > base.point[0], "{raised:?} vs {base:?}");
        for t in [base.point, base.window] {
            assert!(t[0] >= 3 << 16 && t[0] <= t[1] && t[1] <= t[2], "{t:?}");
        }
    }

    #[test]
    fn a_new_model_judges_with_its_groups_thresholds_on_day_one() {
        let calm: Vec<Model> = (0..8).map(|s| peer(3, s, None)).collect();
        let g = Group::calibrate(&calm).unwrap();
        let (mut alone, mut grouped) = (Model::default(), Model::default());
        let start = T0 + 10 * 288 * STEP;
        // Half a day of steady traffic: no alarm either way.
        for i in 0..144 {
            let x = 5_000 + (i * 7) % 600;
            let t = start + i * STEP;
            assert!(alone.observe(t, x, Unit::Bytes).is_none());
            let f = grouped.observe_in(t, x, Unit::Bytes, Some(&g));
            assert!(f.is_none(), "datapoint {i}: {f:?}");
        }
        // A 40× burst: the grouped model alarms at every level; the lone one is warming up.
        let t = start + 144 * STEP;
        assert!(!grouped.active());
        assert!(alone.observe(t, 200_000, Unit::Bytes).is_none());
        let f = grouped
            .observe_in(t, 200_000, Unit::Bytes, Some(&g))
            .unwrap();
        assert_eq!(f.level, Confidence::High);
        let why = f.explain("aws:all-bytes-out");
        assert!(
            why.contains("first day; score") && why.contains("> the group's HIGH"),
            "{why}"
        );
    }

    #[test]
    fn a_new_model_with_a_daily_rhythm_stays_quiet_through_its_first_day() {
        // Busier 08:00–18:00 UTC (1.8×, under LOW's 2× effect floor: a steeper rhythm may
        // alarm at LOW on day one, docs/ml.md), as its peers; the new one starts at midnight.
        let x = |i: u64, seed: u64| {
            let busy = (96..216).contains(&(i % 288));
            (5_000 + (i * 7 + seed * 13) % 600) * if busy { 9 } else { 5 } / 5
        };
        let peers: Vec<Model> = (0..8)
            .map(|seed| {
                let mut m = Model::default();
                for i in 0..3 * 288 {
                    m.observe(T0 + i * STEP, x(i, seed), Unit::Bytes);
                }
                m
            })
            .collect();
        let g = Group::calibrate(&peers).unwrap();
        let mut m = Model::default();
        let start = T0 + 7 * 288 * STEP;
        for i in 0..288 {
            let f = m.observe_in(start + i * STEP, x(i, 99), Unit::Bytes, Some(&g));
            assert!(f.is_none(), "datapoint {i}: {f:?}");
        }
    }
}
