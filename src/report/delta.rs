//! Network-stats deltas (protocol doc §1.4 "delta metric", §7.1 items 3–4): the counter
//! baseline, how it follows reboots, resets and interface changes, and the saturating sum.
//! Does not read /proc or persist anything (the state module stores `Baseline` as JSON).

use std::collections::BTreeMap;

use crate::collect::Counters;
pub use protocol::NetworkStats;

/// Counters at the previous report, per interface, with the boot they belong to.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Baseline {
    pub boot_id: Option<String>,
    pub counters: BTreeMap<String, Counters>,
    /// Set when the last `rebase` restarted the whole baseline: `delta` then has nothing
    /// honest to report for that sample. Not persisted.
    #[serde(skip)]
    restarted: bool,
}

/// What `Baseline::rebase` changed, for logs and for deciding whether a delta is honest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rebase {
    /// The whole baseline restarted at the current counters (it was fresh, or the boot id
    /// changed): no delta exists for this sample.
    pub restarted: bool,
    /// Interfaces with a counter below its baseline (reset, wrap, re-created).
    pub reset: Vec<String>,
    /// Interfaces seen for the first time.
    pub added: Vec<String>,
    /// Interfaces gone from the current sample.
    pub removed: Vec<String>,
}

impl Rebase {
    /// True when the baseline differs from what it was before the rebase.
    pub fn changed(&self) -> bool {
        self.restarted
            || !self.reset.is_empty()
            || !self.added.is_empty()
            || !self.removed.is_empty()
    }
}

impl Baseline {
    /// A baseline taken from one sample.
    pub fn new(boot_id: Option<&str>, counters: &BTreeMap<String, Counters>) -> Self {
        Self {
            boot_id: boot_id.map(str::to_string),
            counters: counters.clone(),
            restarted: false,
        }
    }

    /// True when no counters are known yet: the next sample cannot yield a delta
    /// (sending since-boot totals causes false spikes, protocol doc §1.4, §7.1 item 3).
    pub fn is_fresh(&self) -> bool {
        self.counters.is_empty()
    }

    /// Makes the baseline comparable with `current`: a new boot id (or a fresh baseline)
    /// restarts everything; an interface whose counter went down restarts at its current value
    /// (§7.1 item 4: never a negative or ~2^64 delta); new interfaces start at their current
    /// value; interfaces gone from `current` are dropped.
    pub fn rebase(
        &mut self,
        boot_id: Option<&str>,
        current: &BTreeMap<String, Counters>,
    ) -> Rebase {
        let mut out = Rebase::default();
        // A fresh baseline with nothing to count (no counted interface) stays as it is: a
        // restart would change nothing, and would be logged and written every cycle.
        let nothing_new = self.is_fresh() && current.is_empty();
        if self.boot_id.as_deref() != boot_id || (self.is_fresh() && !nothing_new) {
            *self = Baseline::new(boot_id, current);
            self.restarted = true;
            out.restarted = true;
            return out;
        }
        self.restarted = false;
        if nothing_new {
            return out;
        }
        out.removed = self
            .counters
            .keys()
            .filter(|name| !current.contains_key(*name))
            .cloned()
            .collect();
        self.counters.retain(|name, _| current.contains_key(name));
        for (name, now) in current {
            match self.counters.get_mut(name) {
                None => {
                    self.counters.insert(name.clone(), *now);
                    out.added.push(name.clone());
                }
                Some(base) if went_down(base, now) => {
                    *base = *now;
                    out.reset.push(name.clone());
                }
                Some(_) => {}
            }
        }
        out
    }

    /// Sum over interfaces of `current − baseline`, saturating at 0 per counter; interfaces
    /// missing from the baseline count 0. `None` when the baseline is fresh or the last
    /// `rebase` restarted it (first sample, reboot): protocol doc §1.4, §10.
    pub fn delta(&self, current: &BTreeMap<String, Counters>) -> Option<NetworkStats> {
        if self.is_fresh() || self.restarted {
            return None;
        }
        let mut sum = NetworkStats::default();
        for (name, now) in current {
            let base = self.counters.get(name).copied().unwrap_or(*now);
            add_delta(&mut sum.bytes_in, now.bytes_in, base.bytes_in);
            add_delta(&mut sum.bytes_out, now.bytes_out, base.bytes_out);
            add_delta(&mut sum.packets_in, now.packets_in, base.packets_in);
            add_delta(&mut sum.packets_out, now.packets_out, base.packets_out);
        }
        Some(sum)
    }

    /// `rebase` then `delta`: the value to put in `network_stats` (protocol doc §1.4, §10).
    pub fn step(
        &mut self,
        boot_id: Option<&str>,
        current: &BTreeMap<String, Counters>,
    ) -> (Option<NetworkStats>, Rebase) {
        let rebase = self.rebase(boot_id, current);
        (self.delta(current), rebase)
    }
}

/// `sum += now − base`, never below zero and never wrapping.
fn add_delta(sum: &mut u64, now: u64, base: u64) {
    *sum = sum.saturating_add(now.saturating_sub(base));
}

fn went_down(base: &Counters, now: &Counters) -> bool {
    now.bytes_in < base.bytes_in
        || now.bytes_out < base.bytes_out
        || now.packets_in < base.packets_in
        || now.packets_out < base.packets_out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_counted_interface_leaves_the_baseline_unchanged_after_the_first_sample() {
        let mut b = Baseline::default();
        let none = BTreeMap::new();
        let (stats, r) = b.step(Some("boot-a"), &none);
        assert_eq!(stats, None);
        assert!(r.changed(), "the boot id is new: written once");
        for _ in 0..3 {
            let (stats, r) = b.step(Some("boot-a"), &none);
            assert_eq!(stats, None);
            assert!(!r.changed(), "{r:?}");
        }
        // An interface that appears later starts the baseline as before.
        let s1 = map(&[("eth0", c(100, 50, 10, 5))]);
        let (stats, r) = b.step(Some("boot-a"), &s1);
        assert_eq!(stats, None);
        assert!(r.restarted);
    }

    fn c(bi: u64, bo: u64, pi: u64, po: u64) -> Counters {
        Counters {
            bytes_in: bi,
            bytes_out: bo,
            packets_in: pi,
            packets_out: po,
        }
    }

    fn map(items: &[(&str, Counters)]) -> BTreeMap<String, Counters> {
        items.iter().map(|(n, c)| (n.to_string(), *c)).collect()
    }

    fn ns(bi: u64, bo: u64, pi: u64, po: u64) -> NetworkStats {
        NetworkStats {
            bytes_in: bi,
            bytes_out: bo,
            packets_in: pi,
            packets_out: po,
        }
    }

    #[test]
    fn fresh_baseline_gives_no_delta_then_real_deltas() {
        let mut b = Baseline::default();
        assert!(b.is_fresh());
        assert_eq!(b.delta(&map(&[("eth0", c(1, 1, 1, 1))])), None);
        let s1 = map(&[("eth0", c(100, 50, 10, 5))]);
        let (stats, r) = b.step(Some("boot-a"), &s1);
        assert_eq!(stats, None);
        assert!(r.restarted);
        assert!(!b.is_fresh());
        let s2 = map(&[("eth0", c(150, 70, 13, 9))]);
        let (stats, r) = b.step(Some("boot-a"), &s2);
        assert_eq!(stats, Some(ns(50, 20, 3, 4)));
        assert_eq!(r, Rebase::default());
        assert!(!r.changed(), "nothing to persist");
    }

    #[test]
    fn values_above_2_pow_32_are_kept() {
        let base = 29_358_693_495u64; // value from the doc example, > 2^32
        let mut b = Baseline::new(None, &map(&[("eth0", c(base, base, base, base))]));
        let now = map(&[("eth0", c(base + (1 << 33), base + 1, base, base + 7))]);
        let (stats, _) = b.step(None, &now);
        assert_eq!(stats, Some(ns(1 << 33, 1, 0, 7)));
    }

    #[test]
    fn reboot_restarts_everything_and_sends_nothing() {
        let mut b = Baseline::new(Some("boot-a"), &map(&[("eth0", c(1000, 1000, 10, 10))]));
        let now = map(&[("eth0", c(5, 5000, 1, 20))]);
        let (stats, r) = b.step(Some("boot-b"), &now);
        assert_eq!(stats, None);
        assert!(r.restarted);
        assert_eq!(b.boot_id.as_deref(), Some("boot-b"));
        assert_eq!(b.counters, now);
        // rebase + delta used separately give the same answer as step.
        let mut b2 = Baseline::new(Some("boot-a"), &map(&[("eth0", c(1000, 1000, 10, 10))]));
        b2.rebase(Some("boot-b"), &now);
        assert_eq!(b2.delta(&now), None);
        // The next sample of the new boot has a delta again.
        let later = map(&[("eth0", c(15, 5001, 2, 21))]);
        assert_eq!(b.step(Some("boot-b"), &later).0, Some(ns(10, 1, 1, 1)));
    }

    #[test]
    fn reset_or_wrap_restarts_only_that_interface() {
        let mut b = Baseline::new(
            Some("x"),
            &map(&[
                ("eth0", c(u64::MAX - 10, 100, 10, 10)),
                ("wlan0", c(100, 100, 10, 10)),
            ]),
        );
        // eth0 wrapped (bytes_in went down), wlan0 moved on normally.
        let now = map(&[("eth0", c(5, 200, 20, 20)), ("wlan0", c(130, 110, 12, 11))]);
        let (stats, r) = b.step(Some("x"), &now);
        assert_eq!(r.reset, ["eth0"]);
        assert!(!r.restarted);
        assert!(r.changed());
        assert_eq!(stats, Some(ns(30, 10, 2, 1)));
        assert_eq!(b.counters["eth0"], now["eth0"]);
        assert_eq!(b.counters["wlan0"], c(100, 100, 10, 10));
        // Without a new baseline (no accepted report), the next sample counts eth0 from its
        // restarted value and wlan0 still from its old one.
        let later = map(&[("eth0", c(10, 210, 21, 22)), ("wlan0", c(130, 110, 12, 11))]);
        let (stats, r) = b.step(Some("x"), &later);
        assert!(r.reset.is_empty());
        assert_eq!(stats, Some(ns(5 + 30, 10 + 10, 1 + 2, 2 + 1)));
    }

    #[test]
    fn new_and_removed_interfaces() {
        let mut b = Baseline::new(
            None,
            &map(&[("eth0", c(10, 10, 1, 1)), ("ppp0", c(10, 10, 1, 1))]),
        );
        let now = map(&[("eth0", c(20, 15, 2, 3)), ("wg0", c(9999, 9999, 99, 99))]);
        let (stats, r) = b.step(None, &now);
        assert_eq!(r.added, ["wg0"]);
        assert_eq!(r.removed, ["ppp0"]);
        // wg0 starts at its current value: its since-boot totals are not a delta.
        assert_eq!(stats, Some(ns(10, 5, 1, 2)));
        assert_eq!(b.counters.keys().collect::<Vec<_>>(), ["eth0", "wg0"]);
    }

    #[test]
    fn delta_never_underflows_without_rebase() {
        let b = Baseline::new(None, &map(&[("eth0", c(100, 100, 100, 100))]));
        let now = map(&[("eth0", c(0, 200, 0, 0)), ("new0", c(7, 7, 7, 7))]);
        assert_eq!(b.delta(&now), Some(ns(0, 100, 0, 0)));
    }

    #[test]
    fn sum_saturates() {
        let b = Baseline::new(None, &map(&[("a", c(0, 0, 0, 0)), ("b", c(0, 0, 0, 0))]));
        let now = map(&[("a", c(u64::MAX, 0, 0, 0)), ("b", c(u64::MAX, 0, 0, 0))]);
        assert_eq!(b.delta(&now).unwrap().bytes_in, u64::MAX);
    }

    #[test]
    fn serde_round_trip() {
        let b = Baseline::new(Some("id"), &map(&[("eth0", c(1 << 40, 2, 3, 4))]));
        let text = serde_json::to_string(&b).unwrap();
        assert_eq!(serde_json::from_str::<Baseline>(&text).unwrap(), b);
    }
}
