//! One seasonal baseline bucket of the learned model (docs/ml.md): a robust exponentially
//! weighted centre and spread of log values (Q16), and its update step.

use super::fixed::ONE;

/// The least spread a score divides by (and clipping uses): a quarter of a doubling.
pub const SPREAD_FLOOR: i64 = ONE / 4;

/// A robust exponentially weighted centre `m` and mean absolute deviation `s` (Q16).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bucket {
    pub n: u16,
    pub m: i32,
    pub s: i32,
}

/// One robust EW step: the value clipped to 4 spreads of the centre (once 8 are seen, or the
/// bucket started from a `prior` centre and spread), a rate of 1/(n+1) but at least 1/`cap`,
/// divided by `damp`; a damped value does not widen the spread.
pub fn update(b: &mut Bucket, y: i64, cap: i64, damp: i64, prior: Option<(i64, i64)>) {
    if b.n == 0 {
        let (m, s) = prior.unwrap_or((y, 0));
        *b = Bucket {
            n: 0,
            m: m as i32,
            s: s as i32,
        };
        if prior.is_none() {
            b.n = 1;
            return;
        }
    }
    let (m, s) = (i64::from(b.m), i64::from(b.s));
    let lim = 4 * s.max(SPREAD_FLOOR);
    let clip = b.n >= 8 || prior.is_some();
    let y = if clip { y.clamp(m - lim, m + lim) } else { y };
    let den = (i64::from(b.n) + 1).min(cap) * damp;
    let m2 = m + (y - m) / den;
    // A damped (suspect) value moves the centre slowly and leaves the spread alone.
    let s2 = if damp > 1 {
        s
    } else {
        s + ((y - m2).abs() - s) / den
    };
    b.m = m2 as i32;
    b.s = s2 as i32;
    b.n = b.n.saturating_add(1);
}
