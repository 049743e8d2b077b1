//! Times as Go's encoding/json writes them (RFC 3339, nanoseconds, a zone), read into epoch
//! milliseconds without a date crate: nats-server's advisories carry `start` and `stop`.

/// Epoch ms of an RFC 3339 time as Go writes it (`2026-12-06T14:54:39.123456789Z`, or with a
/// `+01:00` offset); `None` when it is not one.
pub fn rfc3339_ms(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> { s.get(r)?.parse().ok() };
    if b.len() < 20 || b.get(4) != Some(&b'-') || b.get(10) != Some(&b'T') {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut i = 19;
    let mut ms = 0i64;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        let frac = s.get(start..i)?;
        ms = format!("{:0<3}", frac.get(..3.min(frac.len()))?)
            .parse()
            .ok()?;
    }
    let offset_s = match b.get(i)? {
        b'Z' => 0,
        sign @ (b'+' | b'-') => {
            let o = num(i + 1..i + 3)? * 3600 + num(i + 4..i + 6)? * 60;
            if *sign == b'+' { o } else { -o }
        }
        _ => return None,
    };
    let days = protocol::civil::days_from_civil(y, mo, d);
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset_s;
    u64::try_from(secs * 1000 + ms).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_times_read_with_zone_and_fraction() {
        assert_eq!(rfc3339_ms("1970-01-01T00:00:01Z"), Some(1000));
        assert_eq!(rfc3339_ms("1970-01-01T01:00:01.5+01:00"), Some(1500));
        assert_eq!(
            rfc3339_ms("2026-12-06T15:00:00.123456789Z"),
            Some(1_796_569_200_123)
        );
        assert_eq!(rfc3339_ms("yesterday"), None);
        assert_eq!(rfc3339_ms("2026-12-06T15:00:00"), None);
    }
}
