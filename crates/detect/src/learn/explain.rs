//! Why a learned model alarmed, in one line of words (the event's `explanation`, docs/ml.md):
//! the value, its ratio to this device's usual for the hour, the basis, score and threshold.

use super::calibrate::Confidence;

/// Which baseline the usual value mostly came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Basis {
    HourOfWeek,
    HourOfDay,
    AllHours,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FindingKind {
    /// One datapoint far above its usual.
    Point,
    /// The last hour's datapoints together far above their usual.
    Window,
    /// A count above every value the device has had (ports, connections).
    New,
    /// This device's baseline and last hour far above its group's (`learn::peers`).
    Peer,
}

/// An alarm of the model: the highest level it reaches and what it saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub kind: FindingKind,
    pub level: Confidence,
    /// The datapoint (Point, New) or the window's sum (Window).
    pub value: u64,
    /// Its usual value; for New, the highest value seen before.
    pub usual: u64,
    /// Score and the level's threshold, Q16 (0 for New).
    pub score: i64,
    pub threshold: i64,
    pub hour_of_week: u8,
    pub basis: Basis,
    /// Whole days of datapoints learned.
    pub days: u32,
    /// Peers compared (Peer; 0 for the others).
    pub peers: u32,
}

const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

impl Finding {
    /// E.g. `aws:all-bytes-out 1 900 000 is 38× this device's usual for Tue 14:00–15:00 UTC
    /// (usual ≈ 50 000; basis: hour of week, 21 days; score 9.1 > HIGH 6.0)`.
    pub fn explain(&self, metric: &str) -> String {
        let hour = usize::from(self.hour_of_week);
        let slot = format!(
            "{} {:02}:00–{:02}:00 UTC",
            DAYS[hour / 24 % 7],
            hour % 24,
            hour % 24 + 1
        );
        let basis = match self.basis {
            Basis::HourOfWeek => "hour of week",
            Basis::HourOfDay => "hour of day",
            Basis::AllHours => "all hours",
        };
        let (v, u) = (group(self.value), group(self.usual));
        // A model alarms on its own thresholds from its first full day on; before, only on
        // its group's (`learn::group`, detect-fleet).
        let (days, whose) = match self.days {
            0 => ("first day".to_string(), "the group's "),
            d => (format!("{d} days"), ""),
        };
        let tail = format!(
            "basis: {basis}, {days}; score {} > {whose}{} {}",
            tenths(self.score),
            self.level.name(),
            tenths(self.threshold)
        );
        let r = ratio(self.value, self.usual);
        match self.kind {
            FindingKind::Point => {
                format!("{metric} {v} is {r} this device's usual for {slot} (usual ≈ {u}; {tail})")
            }
            FindingKind::Window => format!(
                "{metric} {v} over the last hour is {r} this device's usual for it, to {slot} (usual ≈ {u}; {tail})"
            ),
            FindingKind::New => format!(
                "{metric} {v} is above every value of this device in {} days (highest {u})",
                self.days
            ),
            FindingKind::Peer => format!(
                "{metric} usual {v} is {r} the usual of its {} peers (≈ {u}; peer comparison of \
                 this device's baseline and last hour, {days}; {} peer spreads > {} {})",
                self.peers,
                tenths(self.score),
                self.level.name(),
                tenths(self.threshold)
            ),
        }
    }
}

/// Q16 with one decimal.
pub(super) fn tenths(q: i64) -> String {
    let t = (q * 10 + (1 << 15)) >> 16;
    format!(
        "{}{}.{}",
        if t < 0 { "-" } else { "" },
        t.abs() / 10,
        t.abs() % 10
    )
}

/// `38×`, `3.2×`.
fn ratio(v: u64, u: u64) -> String {
    let t = u128::from(v) * 10 / u128::from(u.max(1));
    if t >= 100 {
        format!("{}×", t / 10)
    } else {
        format!("{}.{}×", t / 10, t % 10)
    }
}

/// `1 900 000`.
fn group(v: u64) -> String {
    let digits = v.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_with_value_ratio_slot_and_score() {
        let f = Finding {
            kind: FindingKind::Point,
            level: Confidence::High,
            value: 1_900_000,
            usual: 50_000,
            score: 9 * 65536 + 6554,
            threshold: 6 * 65536,
            hour_of_week: 24 + 14,
            basis: Basis::HourOfWeek,
            days: 21,
            peers: 0,
        };
        assert_eq!(
            f.explain("aws:all-bytes-out"),
            "aws:all-bytes-out 1 900 000 is 38× this device's usual for Tue 14:00–15:00 UTC \
             (usual ≈ 50 000; basis: hour of week, 21 days; score 9.1 > HIGH 6.0)"
        );
        assert_eq!(ratio(32, 10), "3.2×");
        assert_eq!(group(999), "999");
        assert_eq!(tenths(-65536), "-1.0");
    }
}
