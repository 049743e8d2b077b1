//! Owns reading a certificate's validity window (notBefore/notAfter) from its DER bytes.
//! Does not verify signatures or chains; that is rustls' job during the handshake.

// A small DER walk instead of an X.509 crate (binary size matters, see docs/footprint.md):
//   Certificate    ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signature }
//   TBSCertificate ::= SEQUENCE { [0] EXPLICIT version OPTIONAL, serialNumber INTEGER,
//                                 signature AlgorithmIdentifier, issuer Name,
//                                 validity SEQUENCE { notBefore Time, notAfter Time }, ... }
//   Time           ::= UTCTime (tag 0x17, YYMMDDHHMMSSZ) | GeneralizedTime (0x18, YYYYMMDDHHMMSSZ)
// (RFC 5280 §4.1; UTCTime years 50–99 mean 19xx, §4.1.2.5.1).

/// Seconds since the Unix epoch (may be negative for very old certificates).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Validity {
    pub not_before: i64,
    pub not_after: i64,
}

/// Why the validity could not be read; the caller adds the file name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed certificate: {0}")]
pub struct ValidityError(&'static str);

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const VERSION: u8 = 0xA0;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;

/// Reads notBefore/notAfter from a DER certificate.
pub fn validity(der: &[u8]) -> Result<Validity, ValidityError> {
    let (tag, cert, _) = element(der)?;
    expect(tag, SEQUENCE, "certificate is not a SEQUENCE")?;
    let (tag, tbs, _) = element(cert)?;
    expect(tag, SEQUENCE, "tbsCertificate is not a SEQUENCE")?;
    let (mut tag, _, mut rest) = element(tbs)?;
    if tag == VERSION {
        (tag, _, rest) = element(rest)?;
    }
    expect(tag, INTEGER, "serialNumber is not an INTEGER")?;
    let (tag, _, rest) = element(rest)?; // signature AlgorithmIdentifier
    expect(tag, SEQUENCE, "signature algorithm is not a SEQUENCE")?;
    let (tag, _, rest) = element(rest)?; // issuer Name
    expect(tag, SEQUENCE, "issuer is not a SEQUENCE")?;
    let (tag, window, _) = element(rest)?;
    expect(tag, SEQUENCE, "validity is not a SEQUENCE")?;
    let (tag, before, rest) = element(window)?;
    let not_before = time(tag, before)?;
    let (tag, after, _) = element(rest)?;
    let not_after = time(tag, after)?;
    Ok(Validity {
        not_before,
        not_after,
    })
}

fn expect(tag: u8, wanted: u8, what: &'static str) -> Result<(), ValidityError> {
    if tag == wanted {
        Ok(())
    } else {
        Err(ValidityError(what))
    }
}

/// Splits one DER element off `input`: (tag, contents, rest). Single-byte tags only,
/// which is all a certificate uses up to the validity field.
fn element(input: &[u8]) -> Result<(u8, &[u8], &[u8]), ValidityError> {
    let truncated = ValidityError("truncated DER");
    let (&tag, input) = input.split_first().ok_or(truncated.clone())?;
    let (&first, mut input) = input.split_first().ok_or(truncated.clone())?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let count = usize::from(first & 0x7F);
        if count == 0 || count > 4 {
            return Err(ValidityError("unsupported DER length"));
        }
        let (bytes, rest) = input.split_at_checked(count).ok_or(truncated.clone())?;
        input = rest;
        bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b))
    };
    let (contents, rest) = input.split_at_checked(len).ok_or(truncated)?;
    Ok((tag, contents, rest))
}

fn time(tag: u8, text: &[u8]) -> Result<i64, ValidityError> {
    let bad = ValidityError("validity time is not YYMMDDHHMMSSZ or YYYYMMDDHHMMSSZ");
    let (year, rest) = match (tag, text.len()) {
        (UTC_TIME, 13) => {
            let yy = digits(&text[..2]).ok_or(bad.clone())?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &text[2..])
        }
        (GENERALIZED_TIME, 15) => (digits(&text[..4]).ok_or(bad.clone())?, &text[4..]),
        _ => return Err(bad),
    };
    if rest[10] != b'Z' {
        return Err(bad);
    }
    let field = |i: usize| digits(&rest[i..i + 2]).ok_or(bad.clone());
    let (month, day, hour, minute, second) =
        (field(0)?, field(2)?, field(4)?, field(6)?, field(8)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return Err(bad);
    }
    Ok(protocol::civil::days_from_civil(year, month, day) * 86_400
        + hour * 3_600
        + minute * 60
        + second)
}

fn digits(text: &[u8]) -> Option<i64> {
    text.iter().try_fold(0i64, |acc, &b| {
        b.is_ascii_digit().then(|| acc * 10 + i64::from(b - b'0'))
    })
}

/// `YYYY-MM-DD HH:MM:SS UTC` for messages.
pub fn format_utc(epoch_secs: i64) -> String {
    let days = epoch_secs.div_euclid(86_400);
    let secs = epoch_secs.rem_euclid(86_400);
    let (year, month, day) = protocol::civil::civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        secs / 3_600,
        secs % 3_600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_dates() {
        assert_eq!(format_utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(format_utc(2_147_483_648), "2038-01-19 03:14:08 UTC");
        assert_eq!(format_utc(-1), "1969-12-31 23:59:59 UTC");
    }

    #[test]
    fn reads_rcgen_certificates() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["a.test".to_string()]).unwrap();
        params.not_before = rcgen::date_time_ymd(2020, 2, 29);
        params.not_after = rcgen::date_time_ymd(2051, 1, 2);
        let cert = params.self_signed(&key).unwrap();
        let v = validity(cert.der()).unwrap();
        assert_eq!(format_utc(v.not_before), "2020-02-29 00:00:00 UTC");
        assert_eq!(format_utc(v.not_after), "2051-01-02 00:00:00 UTC");
    }

    #[test]
    fn utc_and_generalized_times() {
        assert_eq!(time(UTC_TIME, b"700101000000Z"), Ok(0));
        assert_eq!(time(UTC_TIME, b"491231235959Z"), Ok(2_524_607_999));
        assert_eq!(
            time(GENERALIZED_TIME, b"20380119031408Z"),
            Ok(2_147_483_648)
        );
        assert!(time(UTC_TIME, b"700101000000+").is_err());
        assert!(time(UTC_TIME, b"701301000000Z").is_err());
        assert!(time(GENERALIZED_TIME, b"700101000000Z").is_err());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bad in [
            &b""[..],
            b"\x30",
            b"\x30\x85\0\0\0\0\0",
            b"\x30\x03\x30\x01",
            b"\x02\x00",
        ] {
            assert!(validity(bad).is_err(), "{bad:?}");
        }
    }
}
