//! Owns the Device Defender topic names for one thing and format (protocol doc §2.2).
//! Does not validate thing names (that is `identity`) and does not talk MQTT.

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
        let publish = format!("$aws/things/{thing_name}/defender/metrics/{format}");
        Topics {
            accepted: format!("{publish}/accepted"),
            rejected: format!("{publish}/rejected"),
            publish,
        }
    }

    /// The two response topics, the only ones the agent subscribes to.
    pub fn subscriptions(&self) -> [&str; 2] {
        [&self.accepted, &self.rejected]
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
}
