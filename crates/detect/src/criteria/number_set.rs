//! The `numbers` value of an `in-set`/`not-in-set` behavior (detect-rules §3.2, §4.3), sorted
//! once at load so a membership test costs a binary search, not a scan of the list.

/// A sorted set of finite-or-infinite numbers; `-0.0` is stored as `0.0` (IEEE equality makes
/// them one value) and NaN, which equals nothing, is dropped.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NumberSet(Vec<f64>);

impl NumberSet {
    /// Membership by IEEE equality: `0.0` matches `-0.0`, NaN matches nothing.
    pub fn contains(&self, x: f64) -> bool {
        !x.is_nan()
            && self
                .0
                .binary_search_by(|y| probe(y.total_cmp(&norm(x))))
                .is_ok()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromIterator<f64> for NumberSet {
    fn from_iter<I: IntoIterator<Item = f64>>(xs: I) -> Self {
        let mut v: Vec<f64> = xs.into_iter().filter(|x| !x.is_nan()).map(norm).collect();
        v.sort_by(f64::total_cmp);
        v.dedup();
        NumberSet(v)
    }
}

fn norm(x: f64) -> f64 {
    if x == 0.0 { 0.0 } else { x }
}

#[cfg(test)]
thread_local! {
    /// Comparisons made by `contains` on this thread: the work a test bounds.
    pub static PROBES: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

fn probe(o: std::cmp::Ordering) -> std::cmp::Ordering {
    #[cfg(test)]
    PROBES.with(|p| p.set(p.get() + 1));
    o
}
