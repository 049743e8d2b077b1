//! Turns a command's stdout or a file's text into a custom metric value (protocol doc §1.5):
//! one decimal number, or a list as one item per line or one JSON array. No I/O here.

use std::net::IpAddr;

use super::{CustomValue, MetricType};

/// AWS keeps up to 15 digits of precision for `number` and `number-list` (protocol doc §1.5).
pub const MAX_SIGNIFICANT_DIGITS: usize = 15;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("output is empty, expected {0}")]
    Empty(&'static str),
    #[error(
        "{0:?} is not a decimal number (digits, an optional sign and point; no exponent, NaN or inf)"
    )]
    NotNumber(String),
    #[error("{0:?} has more than {MAX_SIGNIFICANT_DIGITS} significant digits")]
    TooPrecise(String),
    #[error("expected one number, got {0} lines")]
    ManyLines(usize),
    #[error("not a JSON array of the metric's type: {0}")]
    Json(String),
    #[error("{0:?} is not an IPv4 or IPv6 address")]
    NotIp(String),
}

/// Parses `text` as a value of type `kind`.
pub fn value(kind: MetricType, text: &str) -> Result<CustomValue, ParseError> {
    Ok(match kind {
        MetricType::Number => CustomValue::Number(single_number(text)?),
        MetricType::NumberList => CustomValue::NumberList(
            items::<f64>(text, number)?
                .into_iter()
                .map(json_number)
                .collect::<Result<_, _>>()?,
        ),
        MetricType::StringList => CustomValue::StringList(
            items::<String>(text, |l| Ok(l.to_string()))?
                .iter()
                .map(|s| clean(s))
                .collect(),
        ),
        MetricType::IpAddressList => CustomValue::IpList(
            items::<String>(text, |l| Ok(l.to_string()))?
                .iter()
                .map(|s| ip(s))
                .collect::<Result<_, _>>()?,
        ),
    })
}

/// The one number in `text`: surrounding blank lines and spaces are allowed.
fn single_number(text: &str) -> Result<f64, ParseError> {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    match lines[..] {
        [] => Err(ParseError::Empty("a number")),
        [one] => number(one),
        _ => Err(ParseError::ManyLines(lines.len())),
    }
}

/// A decimal number: optional sign, digits, optional fraction (`12`, `-0.5`, `+3.`, `.25`).
/// Significant digits are counted without leading zeros and without trailing zeros of the
/// fraction (`0.0012300` has 3).
pub fn number(s: &str) -> Result<f64, ParseError> {
    let bad = || ParseError::NotNumber(s.to_string());
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    let all_digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    if int.len() + frac.len() == 0 || !all_digits(int) || !all_digits(frac) {
        return Err(bad());
    }
    let digits = format!("{int}{}", frac.trim_end_matches('0'));
    if digits.trim_start_matches('0').len() > MAX_SIGNIFICANT_DIGITS {
        return Err(ParseError::TooPrecise(s.to_string()));
    }
    s.parse::<f64>().map_err(|_| bad())
}

/// A list's items: one JSON array of `T` when the text starts with `[`, else one per line
/// (trimmed, blank lines ignored) through `from_line`.
fn items<T: serde::de::DeserializeOwned>(
    text: &str,
    from_line: impl Fn(&str) -> Result<T, ParseError>,
) -> Result<Vec<T>, ParseError> {
    let trimmed = text.trim();
    if trimmed.starts_with('[') {
        return serde_json::from_str(trimmed).map_err(|e| ParseError::Json(e.to_string()));
    }
    trimmed
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(from_line)
        .collect()
}

/// A JSON number checked like a line: its shortest decimal form (never an exponent) must
/// keep to the 15 significant digits.
fn json_number(v: f64) -> Result<f64, ParseError> {
    number(&v.to_string())
}

fn ip(s: &str) -> Result<IpAddr, ParseError> {
    s.trim()
        .parse()
        .map_err(|_| ParseError::NotIp(s.to_string()))
}

/// A string-list item with every character Device Defender drops (anything but letters,
/// digits and `:` `_` `-` `/` `.`, protocol doc §1.5) replaced by `_`, so the item still
/// arrives and is seen instead of being silently discarded by AWS. Digits are kept: §1.5
/// does not name them, and module names, versions and paths need them.
pub fn clean(item: &str) -> String {
    item.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, ':' | '_' | '-' | '/' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_integer_fraction_and_sign() {
        assert_eq!(number("42").unwrap(), 42.0);
        assert_eq!(number("-0.5").unwrap(), -0.5);
        assert_eq!(number("+3.").unwrap(), 3.0);
        assert_eq!(number(".25").unwrap(), 0.25);
        assert_eq!(number("123456789012345").unwrap(), 123_456_789_012_345.0);
        assert_eq!(number("0.00123000000000000000").unwrap(), 0.00123);
        assert_eq!(
            value(MetricType::Number, "\n  87.5 \n\n").unwrap(),
            CustomValue::Number(87.5)
        );
    }

    #[test]
    fn numbers_refused() {
        for bad in [
            "", ".", "-", "1e5", "NaN", "inf", "-inf", "0x10", "1,5", "1 2", "++1",
        ] {
            assert!(
                matches!(number(bad), Err(ParseError::NotNumber(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            number("1234567890123456"),
            Err(ParseError::TooPrecise(_))
        ));
        assert!(matches!(
            number("1.234567890123456"),
            Err(ParseError::TooPrecise(_))
        ));
        assert_eq!(
            value(MetricType::Number, "1\n2\n"),
            Err(ParseError::ManyLines(2))
        );
        assert_eq!(
            value(MetricType::Number, " \n"),
            Err(ParseError::Empty("a number"))
        );
    }

    #[test]
    fn number_lists_from_lines_or_json() {
        let want = CustomValue::NumberList(vec![12.0, -40.5, 7.0]);
        assert_eq!(
            value(MetricType::NumberList, "12\n\n -40.5\n7\n").unwrap(),
            want
        );
        assert_eq!(
            value(MetricType::NumberList, " [12, -40.5, 7]\n").unwrap(),
            want
        );
        assert_eq!(
            value(MetricType::NumberList, "").unwrap(),
            CustomValue::NumberList(vec![])
        );
        assert!(matches!(
            value(MetricType::NumberList, "[1, \"2\"]"),
            Err(ParseError::Json(_))
        ));
        assert!(matches!(
            value(MetricType::NumberList, "[1, 2"),
            Err(ParseError::Json(_))
        ));
        assert!(matches!(
            value(MetricType::NumberList, "[1e300]"),
            Err(ParseError::TooPrecise(_))
        ));
        assert_eq!(
            value(MetricType::NumberList, "[1e-3, 2.5e2]").unwrap(),
            CustomValue::NumberList(vec![0.001, 250.0])
        );
        assert!(matches!(
            value(MetricType::NumberList, "[0.12345678901234567]"),
            Err(ParseError::TooPrecise(_))
        ));
        assert!(matches!(
            value(MetricType::NumberList, "1\nx\n"),
            Err(ParseError::NotNumber(_))
        ));
    }

    #[test]
    fn string_lists_replace_what_aws_drops() {
        assert_eq!(
            value(MetricType::StringList, "net\nota-2.1\n\n/usr/bin/x\n").unwrap(),
            CustomValue::StringList(vec!["net".into(), "ota-2.1".into(), "/usr/bin/x".into()])
        );
        assert_eq!(
            value(MetricType::StringList, r#"["a b", "ü", "ok:1"]"#).unwrap(),
            CustomValue::StringList(vec!["a_b".into(), "_".into(), "ok:1".into()])
        );
        assert!(matches!(
            value(MetricType::StringList, "[1]"),
            Err(ParseError::Json(_))
        ));
    }

    #[test]
    fn ip_lists_take_v4_and_v6_only() {
        assert_eq!(
            value(MetricType::IpAddressList, "198.51.100.2\n2001:db8::9\n").unwrap(),
            CustomValue::IpList(vec![
                "198.51.100.2".parse().unwrap(),
                "2001:db8::9".parse().unwrap()
            ])
        );
        assert_eq!(
            value(MetricType::IpAddressList, r#"["10.0.0.1"]"#).unwrap(),
            CustomValue::IpList(vec!["10.0.0.1".parse().unwrap()])
        );
        assert_eq!(
            value(MetricType::IpAddressList, "10.0.0.1\n10.0.0.0/8\n"),
            Err(ParseError::NotIp("10.0.0.0/8".into()))
        );
        assert!(value(MetricType::IpAddressList, "host.example\n").is_err());
    }
}
