//! A model's status in words, as AWS's `GetBehaviorModelTrainingSummaries` names it
//! (`PENDING_BUILD` until one day of datapoints, then `ACTIVE`), with its thresholds.

use super::explain::tenths;
use super::model::Model;

impl Model {
    /// `PENDING_BUILD` or `ACTIVE` (detect-rules §5).
    pub fn status(&self) -> &'static str {
        if self.active() {
            "ACTIVE"
        } else {
            "PENDING_BUILD"
        }
    }

    /// E.g. `ACTIVE: 2 016 datapoints at 300 s; score thresholds point LOW 3.0 MEDIUM 4.5
    /// HIGH 6.0, hour LOW 4.1 MEDIUM 4.9 HIGH 6.0`, or `PENDING_BUILD: 100 of 288 datapoints
    /// (34 %) at 300 s`.
    pub fn describe(&self) -> String {
        let need = self.per_day();
        let head = format!("{}: {} ", self.status(), self.seen);
        if !self.active() {
            let pct = u64::from(self.seen) * 100 / need;
            return format!(
                "{head}of {need} datapoints ({pct} %) at {} s",
                self.interval_s
            );
        }
        let (p, w) = self.thresholds();
        let levels = |t: [i64; 3]| {
            format!(
                "LOW {} MEDIUM {} HIGH {}",
                tenths(t[0]),
                tenths(t[1]),
                tenths(t[2])
            )
        };
        format!(
            "{head}datapoints at {} s; score thresholds point {}, hour {}",
            self.interval_s,
            levels(p),
            levels(w)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learn::Unit;

    #[test]
    fn pending_until_one_day_then_active_with_thresholds() {
        let mut m = Model::default();
        for i in 0..100u64 {
            m.observe(1_767_225_600_000 + i * 300_000, 5_000 + i % 3, Unit::Bytes);
        }
        assert_eq!(
            m.describe(),
            "PENDING_BUILD: 100 of 288 datapoints (34 %) at 300 s"
        );
        for i in 100..288u64 {
            m.observe(1_767_225_600_000 + i * 300_000, 5_000 + i % 3, Unit::Bytes);
        }
        assert_eq!(m.status(), "ACTIVE");
        assert!(
            m.describe()
                .starts_with("ACTIVE: 288 datapoints at 300 s; score thresholds point LOW 3.0"),
            "{}",
            m.describe()
        );
    }
}
