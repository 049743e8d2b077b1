//! Integer fixed-point arithmetic for the learned model: log2 and exp2 in Q16 (16 fractional
//! bits), so a model is bit for bit the same on every platform. No floating point here.

/// 1.0 in Q16.
pub const ONE: i64 = 1 << 16;

/// `log2(1 + x)` in Q16, exact to the last bit of its 16 fractional bits (floor).
pub fn log2p1(x: u64) -> i64 {
    let v = x.saturating_add(1);
    let int = 63 - i64::from(v.leading_zeros());
    // The mantissa v / 2^int in [1, 2), as Q30.
    let mut m: u64 = if int >= 30 {
        v >> (int - 30)
    } else {
        v << (30 - int)
    };
    let mut frac = 0i64;
    for bit in (0..16).rev() {
        m = (m * m) >> 30; // in [1, 4) as Q30: fits, m < 2^31
        if m >= 2 << 30 {
            m >>= 1;
            frac |= 1 << bit;
        }
    }
    (int << 16) | frac
}

/// `2^q − 1` for `q` in Q16 (the inverse of `log2p1`), rounded down; 0 for `q ≤ 0`, saturating
/// at `u64::MAX`. The fraction uses the series of `e^(f·ln 2)` to its 9th term (error < 1e-7).
pub fn exp2m1(q: i64) -> u64 {
    if q <= 0 {
        return 0;
    }
    let int = q >> 16;
    if int >= 63 {
        return u64::MAX;
    }
    const LN2_Q30: i128 = 744_261_118;
    let x = ((i128::from(q & 0xffff) << 14) * LN2_Q30) >> 30; // f·ln 2 in Q30
    let mut sum: i128 = 1 << 30;
    for k in (1..=9).rev() {
        sum = (1 << 30) + ((sum * x) >> 30) / k;
    }
    // sum = 2^f in Q30, in [2^30, 2^31).
    let v = (sum << int) >> 30;
    u64::try_from(v).unwrap_or(u64::MAX).saturating_sub(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log2_and_exp2_invert_each_other_within_a_part_in_ten_thousand() {
        assert_eq!(log2p1(0), 0);
        assert_eq!(log2p1(1), ONE);
        assert_eq!(log2p1(1023), 10 * ONE);
        assert_eq!(log2p1(u64::MAX), 64 * ONE - 1); // 2^64 saturates to 2^64 − 1
        assert_eq!(log2p1(2) >> 6, (1.584_962_5 * 1024.0) as i64); // log2 3 = 1.58496…
        for x in [0u64, 1, 2, 7, 100, 999, 65_535, 1_900_000, 1 << 40] {
            let back = exp2m1(log2p1(x));
            let err = back.abs_diff(x);
            assert!(err <= x / 10_000 + 1, "{x} → {back}");
        }
        assert_eq!(exp2m1(-5), 0);
        assert_eq!(exp2m1(70 * ONE), u64::MAX);
    }
}
