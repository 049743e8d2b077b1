//! Thing name / MQTT client ID rules (protocol doc §4, §7.1 item 14): hard limits as errors,
//! registry-style names and characters some brokers cannot carry as warnings. Knows nothing
//! about MQTT connections or topics' use.

use std::fmt;

/// Longest thing name / client ID in bytes of UTF-8 (protocol doc §4).
pub const MAX_NAME_BYTES: usize = 128;

/// A name AWS IoT would reject, or that cannot appear in an MQTT topic name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("name is empty: a thing name / client ID needs 1 to 128 bytes of UTF-8")]
    Empty,
    #[error("name {value} is {len} bytes of UTF-8: at most {MAX_NAME_BYTES} are allowed")]
    TooLong { value: String, len: usize },
    #[error(
        "name {value} contains the control character {ch:?} at byte {at}: a thing name / client ID cannot contain control characters"
    )]
    ControlChar { value: String, ch: char, at: usize },
    #[error(
        "name {value} contains {ch:?} at byte {at}: '+', '#' and '/' cannot appear in a thing name used in the topic $aws/things/<name>/defender/... (MQTT wildcards / topic level separator)"
    )]
    TopicChar { value: String, ch: char, at: usize },
}

/// The name is accepted but is not a registry-style name: fine for unregistered devices
/// (protocol doc §2.2), but CreateThing would refuse it (§4: `[a-zA-Z0-9:_-]+`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityWarning {
    /// The name, escaped for display.
    pub value: String,
    /// The characters outside `[a-zA-Z0-9:_-]`, in order of first appearance.
    pub chars: Vec<char>,
}

/// Characters outside `[a-zA-Z0-9:_-]` that MQTT brokers other than AWS IoT cannot carry in
/// the thing's topics, and what happens (issue #12, seen with NATS 2.9 and RabbitMQ 3.10).
/// The "Thing name" item of docs/metrics.md says the same.
pub const BROKER_BREAKERS: &[(char, &str)] = &[
    (
        '.',
        "NATS (refused in a topic: the verdict subscription fails and the connection closes on \
         every publish, nothing is ever delivered) and RabbitMQ (a level separator there: reports \
         match no `+` subscriber)",
    ),
    (
        ' ',
        "NATS (refused in a topic: the verdict subscription fails and the connection closes on \
         every publish, nothing is ever delivered)",
    ),
    ('*', "RabbitMQ (it becomes the wildcard `+`)"),
];

impl IdentityWarning {
    /// (character, brokers it breaks) for each of `chars` in [`BROKER_BREAKERS`].
    pub fn broken_brokers(&self) -> impl Iterator<Item = (char, &'static str)> + '_ {
        self.chars.iter().filter_map(|c| {
            BROKER_BREAKERS
                .iter()
                .find(|(b, _)| b == c)
                .map(|(b, what)| (*b, *what))
        })
    }
}

impl fmt::Display for IdentityWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "name {} contains {:?}, outside [a-zA-Z0-9:_-]: AWS IoT cannot register such a thing \
             (allowed only for unregistered devices)",
            self.value, self.chars
        )?;
        for (ch, brokers) in self.broken_brokers() {
            write!(f, "; {ch:?} breaks {brokers}")?;
        }
        Ok(())
    }
}

/// Checks a thing name or MQTT client ID. `Ok(Some(_))` carries a warning for the caller
/// to log; `Err` names the broken rule and the (escaped) value.
pub fn check(name: &str) -> Result<Option<IdentityWarning>, IdentityError> {
    if name.is_empty() {
        return Err(IdentityError::Empty);
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(IdentityError::TooLong {
            value: escaped(name),
            len: name.len(),
        });
    }
    let mut unusual = Vec::new();
    for (at, ch) in name.char_indices() {
        if ch.is_control() {
            return Err(IdentityError::ControlChar {
                value: escaped(name),
                ch,
                at,
            });
        }
        if matches!(ch, '+' | '#' | '/') {
            return Err(IdentityError::TopicChar {
                value: escaped(name),
                ch,
                at,
            });
        }
        if !is_registry_char(ch) && !unusual.contains(&ch) {
            unusual.push(ch);
        }
    }
    if unusual.is_empty() {
        Ok(None)
    } else {
        Ok(Some(IdentityWarning {
            value: escaped(name),
            chars: unusual,
        }))
    }
}

/// Quoted, with control and non-printing characters escaped, so a message never carries them.
/// A character of AWS's name pattern `[a-zA-Z0-9:_-]` (thing, profile, behavior, custom
/// metric names: protocol doc §1.5, §4; detect-rules §2.5).
pub fn is_registry_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, ':' | '_' | '-')
}

/// A name of 1–128 characters of `[a-zA-Z0-9:_-]`.
pub fn is_registry_name(s: &str) -> bool {
    (1..=128).contains(&s.len()) && s.chars().all(is_registry_char)
}

/// A custom metric name: a registry name that does not start with `aws:` (protocol doc §1.5).
pub fn is_custom_metric_name(s: &str) -> bool {
    is_registry_name(s) && !s.starts_with("aws:")
}

fn escaped(name: &str) -> String {
    format!("{name:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_names_pass_silently() {
        for ok in ["a", "my-thing_01:gw", &"x".repeat(128)] {
            assert_eq!(check(ok), Ok(None), "{ok}");
        }
    }

    #[test]
    fn length_is_counted_in_bytes() {
        assert_eq!(check(""), Err(IdentityError::Empty));
        let err = check(&"x".repeat(129)).unwrap_err();
        assert!(matches!(err, IdentityError::TooLong { len: 129, .. }));
        // 64 two-byte characters = 128 bytes: allowed (with a warning); 65 are not.
        let w = check(&"é".repeat(64)).unwrap().unwrap();
        assert_eq!(w.chars, ['é']);
        let err = check(&"é".repeat(65)).unwrap_err();
        assert!(matches!(err, IdentityError::TooLong { len: 130, .. }));
        assert!(err.to_string().contains("130 bytes"), "{err}");
    }

    #[test]
    fn control_characters_are_errors_with_escaped_value() {
        for (name, ch, at) in [
            ("bad\nname", '\n', 3),
            ("\0x", '\0', 0),
            ("del\u{7f}", '\u{7f}', 3),
            ("c1\u{85}", '\u{85}', 2),
        ] {
            let err = check(name).unwrap_err();
            assert_eq!(
                err,
                IdentityError::ControlChar {
                    value: format!("{name:?}"),
                    ch,
                    at
                }
            );
            let msg = err.to_string();
            assert!(!msg.chars().any(char::is_control), "{msg:?}");
            assert!(msg.contains("control character"), "{msg}");
        }
    }

    #[test]
    fn topic_characters_are_errors() {
        for (name, ch) in [("a/b", '/'), ("a+", '+'), ("#", '#')] {
            let err = check(name).unwrap_err();
            assert!(
                matches!(err, IdentityError::TopicChar { ch: c, .. } if c == ch),
                "{err}"
            );
        }
    }

    #[test]
    fn other_characters_warn() {
        let w = check("gw.01 east.x").unwrap().unwrap();
        assert_eq!(w.chars, ['.', ' ']);
        let msg = w.to_string();
        assert!(
            msg.contains("\"gw.01 east.x\"") && msg.contains("[a-zA-Z0-9:_-]"),
            "{msg}"
        );
    }

    #[test]
    fn the_warning_names_the_brokers_each_character_breaks() {
        let msg = check("gw.01 east*").unwrap().unwrap().to_string();
        assert!(
            msg.contains("'.' breaks NATS") && msg.contains("RabbitMQ (a level separator"),
            "{msg}"
        );
        assert!(msg.contains("' ' breaks NATS (refused in a topic"), "{msg}");
        assert!(
            msg.contains("'*' breaks RabbitMQ (it becomes the wildcard `+`)"),
            "{msg}"
        );
        // A character no broker minds gets only the registry note.
        let msg = check("gw@home").unwrap().unwrap().to_string();
        assert!(!msg.contains("breaks"), "{msg}");
        // Every listed character is one that warns (not an error, not silently fine).
        for (ch, _) in BROKER_BREAKERS {
            let w = check(&format!("a{ch}b")).unwrap().unwrap();
            assert_eq!(w.broken_brokers().count(), 1, "{ch:?}");
        }
    }
}
