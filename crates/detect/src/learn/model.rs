//! SeasonalTail, one behavior's model on one device (docs/ml.md): seasonal baselines of log values,
//! point and 1-hour scores against calibrated tails, effect floors, a value table; integers only.

use super::bucket::{Bucket, SPREAD_FLOOR, update};
use super::calibrate::{Confidence, Group, Histogram};
use super::explain::{Basis, Finding, FindingKind};
use super::fixed::{exp2m1, log2p1};

/// Datapoints in the window score: one hour at 300 s.
pub const WINDOW: usize = 12;
/// Entries of the value table of small counts.
pub const VALUES: usize = 16;
/// √(π/2) in Q16: mean absolute deviation to standard deviation.
const MAD_TO_SD: i64 = 82_137;
/// 1/√12 in Q16: a sum of 12 unit scores back to unit scale.
const INV_SQRT_WINDOW: i64 = 18_919;
/// A model judges with its group's thresholds after this part of its first day (1/8: 3 h
/// at 300 s), while its own baseline has settled a little.
pub const GROUP_WARMUP: (u64, u64) = (1, 8);
/// An alarming datapoint teaches a tenth as much (anti-poisoning).
const DAMPING: i64 = 10;

/// One datapoint of the window: its value, usual value and score (Q16).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Slot {
    pub y: i32,
    pub usual: i32,
    pub score: i32,
}

/// What a metric counts, which sets the absolute floor of an alarm and the value table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Bytes,
    Packets,
    Connections,
    Ports,
    Number,
}

impl Unit {
    /// A value must exceed its usual by more than this to alarm.
    pub fn floor(self) -> u64 {
        [1024, 10, 3, 1, 0][self as usize]
    }

    fn small_counts(self) -> bool {
        matches!(self, Unit::Connections | Unit::Ports)
    }
}

/// The model: fixed-size, no heap, no floating point (`size_of` ≤ 4 KiB, see the tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Model {
    pub week: [Bucket; 168],
    pub day: [Bucket; 24],
    pub all: Bucket,
    pub point: Histogram,
    pub window: Histogram,
    pub ring: [Slot; WINDOW],
    /// (value, count) of small counts; unused entries have count 0.
    pub values: [(u16, u16); VALUES],
    pub last_ms: u64,
    pub seen: u32,
    /// The report interval, learned from the gaps between datapoints.
    pub interval_s: u32,
    pub ring_len: u8,
    /// Alarming datapoints since one last entered the histograms and value table.
    pub damped: u8,
}

impl Default for Model {
    fn default() -> Self {
        Model {
            week: [Bucket::default(); 168],
            day: [Bucket::default(); 24],
            all: Bucket::default(),
            point: Histogram::default(),
            window: Histogram::default(),
            ring: [Slot::default(); WINDOW],
            values: [(0, 0); VALUES],
            last_ms: 0,
            seen: 0,
            interval_s: 300,
            ring_len: 0,
            damped: 0,
        }
    }
}

/// Hour of the week (Monday 00:00 UTC = 0) and hour of the day of an epoch-ms time.
pub fn hours(time_ms: u64) -> (usize, usize) {
    let days = time_ms / 86_400_000;
    let hour = (time_ms / 3_600_000 % 24) as usize;
    (((days + 3) % 7) as usize * 24 + hour, hour) // 1970-01-01 was a Thursday
}

impl Model {
    /// Datapoints a day at the learned interval (24 to 86 400).
    pub fn per_day(&self) -> u64 {
        (86_400 / u64::from(self.interval_s.max(1))).clamp(24, 86_400)
    }

    /// Alarms start after one day of datapoints.
    pub fn active(&self) -> bool {
        u64::from(self.seen) >= self.per_day()
    }

    /// Point and window thresholds per level (Q16).
    pub fn thresholds(&self) -> ([i64; 3], [i64; 3]) {
        let d = self.per_day();
        (self.point.thresholds(d), self.window.thresholds(d))
    }

    /// Judges the datapoint `x` at `time_ms`, then learns it. Returns the highest level it
    /// alarms at (none during warm-up) and why.
    pub fn observe(&mut self, time_ms: u64, x: u64, unit: Unit) -> Option<Finding> {
        self.observe_in(time_ms, x, unit, None)
    }

    /// `observe` with the thresholds of the model's group (`learn::group`, the fleet's): a
    /// model still in its first day judges with them once it has `GROUP_WARMUP` of its day.
    pub fn observe_in(
        &mut self,
        time_ms: u64,
        x: u64,
        unit: Unit,
        group: Option<&Group>,
    ) -> Option<Finding> {
        self.learn_interval(time_ms);
        let (w, h) = hours(time_ms);
        let y = log2p1(x);
        let (usual, spread, basis) = self.expected(w, h);
        let score = ((y - usual) << 16) / ((spread * MAD_TO_SD) >> 16).max(SPREAD_FLOOR);
        let score = score.clamp(-(1 << 30), 1 << 30);
        self.ring.copy_within(1.., 0);
        self.ring[WINDOW - 1] = Slot {
            y: y as i32,
            usual: usual as i32,
            score: score as i32,
        };
        self.ring_len = (self.ring_len + 1).min(WINDOW as u8);
        let window = (usize::from(self.ring_len) == WINDOW).then(|| {
            let sum: i64 = self.ring.iter().map(|s| i64::from(s.score)).sum();
            (sum * INV_SQRT_WINDOW) >> 16
        });
        let mut found = None;
        let mut suspect = false;
        // Against the peers (fleet only), from the first full hour, own model active or not.
        let peer = group.and_then(|g| g.peers.as_ref()?.judge(self, unit));
        let group = group.filter(|_| {
            !self.active()
                && u64::from(self.seen) * GROUP_WARMUP.1 >= self.per_day() * GROUP_WARMUP.0
        });
        if self.active() || group.is_some() {
            let days = (u64::from(self.seen) / self.per_day()) as u32;
            let ctx = (w as u8, basis, days);
            let (tp, tw) = match group {
                Some(g) => (g.point, g.window),
                None => self.thresholds(),
            };
            found = self.judge(x, usual, (score, tp), window.map(|ws| (ws, tw)), unit, ctx);
            // Anti-poisoning: what alarms, or scores above LOW without its effect floors,
            // teaches a tenth as much.
            suspect = score > tp[0] || window.is_some_and(|ws| ws > tw[0]);
            // The hour's window is for slow rises: a point that passed LOW counts in it as
            // LOW at most, so a short burst the point score judged does not keep the window
            // alarming for the hour after it.
            let last = &mut self.ring[WINDOW - 1];
            last.score = last.score.min(tp[0] as i32);
        }
        // A peer finding alone teaches as usual: the device back in line must bring its
        // baseline back down.
        self.learn(y, w, h, score, window, x, found.is_some(), suspect);
        match (found, peer) {
            (Some(f), Some(p)) if p.level > f.level => Some(p),
            (None, p) => p,
            (f, _) => f,
        }
    }

    fn learn_interval(&mut self, time_ms: u64) {
        if self.last_ms > 0 && time_ms > self.last_ms {
            let gap = ((time_ms - self.last_ms) / 1000).clamp(1, 86_400) as i64;
            let now = i64::from(self.interval_s);
            if self.seen < 2 {
                self.interval_s = gap as u32;
            } else if gap <= 3 * now {
                // An eighth of the way, at least one second: truncation alone would stop
                // short (after a 600 s gap, 307 s would stay 307 s at 300 s gaps).
                let step = match (gap - now) / 8 {
                    0 => (gap - now).signum(),
                    step => step,
                };
                self.interval_s = (now + step).max(1) as u32;
            }
        }
        self.last_ms = self.last_ms.max(time_ms);
    }

    /// The usual value and spread for hour-of-week `w` and hour-of-day `h` (Q16): the
    /// all-hours baseline, shrunk towards the hour of day, then towards the hour of week.
    fn expected(&self, w: usize, h: usize) -> (i64, i64, Basis) {
        let blend = |(m, s): (i64, i64), b: &Bucket, k: i64| {
            let n = i64::from(b.n);
            let wt = (n << 16) / (n + k);
            (
                m + (((i64::from(b.m) - m) * wt) >> 16),
                s + (((i64::from(b.s) - s) * wt) >> 16),
            )
        };
        let all = (i64::from(self.all.m), i64::from(self.all.s));
        let day = blend(all, &self.day[h], 12);
        // The level follows the hour of the week; the spread stops at the hour of the day:
        // an hour of the week gets 12 datapoints a week at 300 s, too few for a spread (its
        // noise made the scores' tail, and false alarms, grow once it was trusted).
        let (m, _) = blend(day, &self.week[w], 6);
        let s = day.1;
        let basis = match (self.week[w].n, self.day[h].n) {
            (6.., _) => Basis::HourOfWeek,
            (_, 12..) => Basis::HourOfDay,
            _ => Basis::AllHours,
        };
        (m, s, basis)
    }

    fn judge(
        &self,
        x: u64,
        usual: i64,
        (score, tp): (i64, [i64; 3]),
        window: Option<(i64, [i64; 3])>,
        unit: Unit,
        (hour_of_week, basis, days): (u8, Basis, u32),
    ) -> Option<Finding> {
        let usual_x = exp2m1(usual);
        let above = |v: u64, u: u64, (num, den): (u64, u64), floor: u64| {
            u128::from(v) * u128::from(den) > u128::from(u) * u128::from(num)
                && v.saturating_sub(u) > floor
        };
        let mut best: Option<Finding> = None;
        let mut offer = |f: Finding| {
            if best.as_ref().is_none_or(|b| f.level > b.level) {
                best = Some(f);
            }
        };
        let finding = |kind, level, value, usual, score, threshold| Finding {
            kind,
            level,
            value,
            usual,
            score,
            threshold,
            hour_of_week,
            basis,
            days,
            peers: 0,
        };
        for c in Confidence::ALL {
            let i = c as usize;
            if score > tp[i] && above(x, usual_x, c.point_ratio(), unit.floor()) {
                offer(finding(FindingKind::Point, c, x, usual_x, score, tp[i]));
            }
            if let Some((ws, tw)) = window.filter(|&(ws, tw)| ws > tw[i]) {
                let sum = |f: fn(&Slot) -> i32| {
                    let v = self.ring.iter().map(|s| exp2m1(i64::from(f(s))));
                    v.fold(0u64, u64::saturating_add)
                };
                let (vol, usual_vol) = (sum(|s| s.y), sum(|s| s.usual));
                if above(vol, usual_vol, c.window_ratio(), unit.floor()) {
                    offer(finding(FindingKind::Window, c, vol, usual_vol, ws, tw[i]));
                }
            }
        }
        if unit.small_counts() {
            let max = self.values.iter().filter(|v| v.1 >= 2).map(|v| v.0).max();
            if let Some(max) = max.map(u64::from)
                && x >= max + unit.floor()
            {
                offer(finding(FindingKind::New, Confidence::High, x, max, 0, 0));
            }
        }
        best
    }

    #[allow(clippy::too_many_arguments)]
    fn learn(
        &mut self,
        y: i64,
        w: usize,
        h: usize,
        score: i64,
        window: Option<i64>,
        x: u64,
        alarming: bool,
        suspect: bool,
    ) {
        let damp = if alarming || suspect { DAMPING } else { 1 };
        // Once active, an empty hour starts from what was expected of it, not from its first
        // value (which may be an attack's).
        let active = self.active();
        let all = (i64::from(self.all.m), i64::from(self.all.s));
        let (m, s, _) = self.expected(w, h);
        update(&mut self.week[w], y, 8, damp, active.then_some((m, s)));
        update(&mut self.day[h], y, 32, damp, active.then_some(all));
        update(&mut self.all, y, 512, damp, None);
        self.seen = self.seen.saturating_add(1);
        // The first half day's scores come from baselines still settling: not a tail to learn.
        if u64::from(self.seen) < self.per_day() / 2 {
            return;
        }
        // A score above LOW that alarms at no level enters the histograms: leaving out all
        // of them would cut the tail the thresholds are read from at LOW's threshold, and
        // MEDIUM's and HIGH's would sink to LOW's.
        if !alarming {
            self.point.add(score);
            if let Some(ws) = window {
                self.window.add(ws);
            }
        }
        if alarming || suspect {
            self.damped += 1;
            if i64::from(self.damped) < DAMPING {
                return;
            }
        }
        self.damped = 0;
        self.count_value(x);
    }

    fn count_value(&mut self, x: u64) {
        let v = u16::try_from(x).unwrap_or(u16::MAX);
        let i = match self.values.iter().position(|e| e.1 > 0 && e.0 == v) {
            Some(i) => i,
            None => {
                let least = self.values.iter().enumerate().min_by_key(|(_, e)| e.1);
                let i = least.map_or(0, |(i, _)| i);
                self.values[i] = (v, 0);
                i
            }
        };
        if self.values[i].1 == u16::MAX {
            self.values.iter_mut().for_each(|e| e.1 /= 2);
        }
        self.values[i].1 += 1;
    }
}
