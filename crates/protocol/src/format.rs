//! The wire encoding (JSON or CBOR, the topics' format segment) and the four report formats
//! (encoding × long/short keys) with their names in config and CLI. Encodes nothing itself.

use std::fmt;
use std::str::FromStr;

/// The payload encoding of reports and verdicts, named by the topics' format segment
/// (protocol doc §2.1, §2.2). The one such type: topics, verdicts and the fleet use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    Json,
    Cbor,
}

impl Encoding {
    /// `json` / `cbor`, any case; anything else is `None`.
    pub fn from_segment(segment: &str) -> Option<Encoding> {
        match segment.to_ascii_lowercase().as_str() {
            "json" => Some(Encoding::Json),
            "cbor" => Some(Encoding::Cbor),
            _ => None,
        }
    }

    /// The format segment of the Defender topics, always lowercase (protocol doc §2.2).
    pub fn segment(self) -> &'static str {
        match self {
            Encoding::Json => "json",
            Encoding::Cbor => "cbor",
        }
    }

    /// `JSON` / `CBOR`, for messages.
    pub fn label(self) -> &'static str {
        match self {
            Encoding::Json => "JSON",
            Encoding::Cbor => "CBOR",
        }
    }
}

/// Report format: protocol doc §2.1 (JSON or CBOR, long or short keys, never mixed).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// JSON with long keys: the default recommended by protocol doc §10.
    #[default]
    Json,
    JsonShort,
    Cbor,
    CborShort,
}

/// The names accepted by `FromStr` and serde, in the order shown in error messages.
pub const FORMAT_NAMES: [&str; 4] = ["json", "json-short", "cbor", "cbor-short"];

impl Format {
    pub const ALL: [Format; 4] = [
        Format::Json,
        Format::JsonShort,
        Format::Cbor,
        Format::CborShort,
    ];

    pub fn encoding(self) -> Encoding {
        match self {
            Format::Json | Format::JsonShort => Encoding::Json,
            Format::Cbor | Format::CborShort => Encoding::Cbor,
        }
    }

    pub fn is_cbor(self) -> bool {
        self.encoding() == Encoding::Cbor
    }

    pub fn short_keys(self) -> bool {
        matches!(self, Format::JsonShort | Format::CborShort)
    }

    /// Format segment of the Defender topics, always lowercase (protocol doc §2.2, §7.1 item 13).
    pub fn topic_segment(self) -> &'static str {
        self.encoding().segment()
    }

    pub fn name(self) -> &'static str {
        match self {
            Format::Json => FORMAT_NAMES[0],
            Format::JsonShort => FORMAT_NAMES[1],
            Format::Cbor => FORMAT_NAMES[2],
            Format::CborShort => FORMAT_NAMES[3],
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A format name that is none of `FORMAT_NAMES`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown report format {value:?}: valid values are json, json-short, cbor, cbor-short")]
pub struct UnknownFormat {
    pub value: String,
}

impl FromStr for Format {
    type Err = UnknownFormat;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Format::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| UnknownFormat {
                value: s.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_fromstr_display_and_serde() {
        for f in Format::ALL {
            assert_eq!(f.to_string().parse::<Format>().unwrap(), f);
            let json = format!("\"{f}\"");
            assert_eq!(serde_json::from_str::<Format>(&json).unwrap(), f);
        }
        assert_eq!(Format::ALL.map(Format::name), FORMAT_NAMES);
    }

    #[test]
    fn unknown_names_are_rejected_with_the_valid_list() {
        for bad in ["JSON", "cbor_short", "", "json-long"] {
            let err = bad.parse::<Format>().unwrap_err().to_string();
            assert!(err.contains(&format!("{bad:?}")), "{err}");
            assert!(err.contains("json, json-short, cbor, cbor-short"), "{err}");
            assert!(serde_json::from_str::<Format>(&format!("\"{bad}\"")).is_err());
        }
    }

    #[test]
    fn properties() {
        assert_eq!(Format::Json.topic_segment(), "json");
        assert_eq!(Format::JsonShort.topic_segment(), "json");
        assert_eq!(Format::Cbor.topic_segment(), "cbor");
        assert_eq!(Format::CborShort.topic_segment(), "cbor");
        assert!(Format::CborShort.is_cbor() && Format::CborShort.short_keys());
        assert!(!Format::Json.is_cbor() && !Format::Json.short_keys());
        assert_eq!(Format::default(), Format::Json);
        assert_eq!(Format::JsonShort.encoding(), Encoding::Json);
        assert_eq!(Format::CborShort.encoding(), Encoding::Cbor);
    }

    #[test]
    fn encoding_segments() {
        assert_eq!(Encoding::from_segment("json"), Some(Encoding::Json));
        assert_eq!(Encoding::from_segment("CBOR"), Some(Encoding::Cbor));
        assert_eq!(Encoding::from_segment("xml"), None);
        assert_eq!(Encoding::Cbor.segment(), "cbor");
    }
}
