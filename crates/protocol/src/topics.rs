//! Owns the Device Defender topic names (protocol doc §2.2): built for one thing and format,
//! and parsed back on the fleet side. Does not validate thing names (`identity`), no MQTT.

use crate::format::Encoding;

/// Every Defender topic starts with this, then the thing name.
const PREFIX: &str = "$aws/things/";
/// Between the thing name and the format segment.
const METRICS: &str = "/defender/metrics/";

/// The subscription filters that take every thing's reports, one per encoding (the fleet's).
pub const REPORT_FILTERS: [&str; 2] = [
    "$aws/things/+/defender/metrics/json",
    "$aws/things/+/defender/metrics/cbor",
];

/// `$aws/things/{thing}/defender/metrics/{segment}`: the report topic.
fn report_topic(thing: &str, segment: &str) -> String {
    format!("{PREFIX}{thing}{METRICS}{segment}")
}

/// The verdict topic under a report topic: `{report}/accepted` or `{report}/rejected`.
fn answer_topic(report: &str, accepted: bool) -> String {
    let suffix = if accepted { "accepted" } else { "rejected" };
    format!("{report}/{suffix}")
}

/// The three topics one agent uses: it publishes on `publish` and subscribes to exactly
/// `accepted` and `rejected` — never to the publish topic (protocol doc §2.2, §7.1 item 13).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    pub publish: String,
    pub accepted: String,
    pub rejected: String,
}

impl Topics {
    /// `format_segment` is written lowercase whatever the caller passes: topics are
    /// case-sensitive and the service uses `json` / `cbor` (protocol doc §2.2).
    pub fn new(thing_name: &str, format_segment: &str) -> Topics {
        let format = format_segment.to_ascii_lowercase();
        let publish = report_topic(thing_name, &format);
        Topics {
            accepted: answer_topic(&publish, true),
            rejected: answer_topic(&publish, false),
            publish,
        }
    }

    /// The two response topics, the only ones the agent subscribes to.
    pub fn subscriptions(&self) -> [&str; 2] {
        [&self.accepted, &self.rejected]
    }
}

/// A report topic `$aws/things/{thing}/defender/metrics/{json|cbor}` (protocol doc §2.2), as
/// the fleet receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportTopic {
    pub thing: String,
    pub encoding: Encoding,
}

impl ReportTopic {
    /// `None` for any other topic (including the answer topics). The segment is exact:
    /// topics are case-sensitive.
    pub fn parse(topic: &str) -> Option<ReportTopic> {
        let rest = topic.strip_prefix(PREFIX)?;
        let (thing, format) = rest.rsplit_once(METRICS)?;
        let encoding = match format {
            "json" => Encoding::Json,
            "cbor" => Encoding::Cbor,
            _ => return None,
        };
        Some(ReportTopic {
            thing: thing.to_string(),
            encoding,
        })
    }

    /// Where the verdict on this report goes.
    pub fn answer_topic(&self, accepted: bool) -> String {
        answer_topic(
            &report_topic(&self.thing, self.encoding.segment()),
            accepted,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_topics_follow_the_reserved_layout() {
        let t = Topics::new("gw-01", "json");
        assert_eq!(t.publish, "$aws/things/gw-01/defender/metrics/json");
        assert_eq!(
            t.accepted,
            "$aws/things/gw-01/defender/metrics/json/accepted"
        );
        assert_eq!(
            t.rejected,
            "$aws/things/gw-01/defender/metrics/json/rejected"
        );
    }

    #[test]
    fn format_segment_is_lowercased() {
        let t = Topics::new("gw", "CBOR");
        assert_eq!(t.publish, "$aws/things/gw/defender/metrics/cbor");
    }

    #[test]
    fn never_subscribes_to_the_publish_topic() {
        let t = Topics::new("gw", "cbor");
        assert!(!t.subscriptions().contains(&t.publish.as_str()));
        assert_eq!(t.subscriptions().len(), 2);
    }

    #[test]
    fn report_topics_parse_and_answer_topics_do_not() {
        let t = ReportTopic::parse("$aws/things/gw-1/defender/metrics/cbor").unwrap();
        assert_eq!(t.thing, "gw-1");
        assert_eq!(t.encoding, Encoding::Cbor);
        assert_eq!(
            t.answer_topic(false),
            "$aws/things/gw-1/defender/metrics/cbor/rejected"
        );
        assert!(ReportTopic::parse("$aws/things/gw-1/defender/metrics/json/accepted").is_none());
        assert!(ReportTopic::parse("$aws/things/gw-1/defender/metrics/JSON").is_none());
    }

    #[test]
    fn report_filters_are_the_report_topics_of_any_thing() {
        let built = [Encoding::Json, Encoding::Cbor].map(|e| report_topic("+", e.segment()));
        assert_eq!(REPORT_FILTERS.map(String::from), built);
    }

    #[test]
    fn built_topics_parse_back() {
        let t = Topics::new("gw-2", "json");
        let parsed = ReportTopic::parse(&t.publish).unwrap();
        assert_eq!(parsed.answer_topic(true), t.accepted);
        assert_eq!(parsed.answer_topic(false), t.rejected);
    }
}
