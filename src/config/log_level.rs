//! Owns the `[log] level` / RUST_LOG syntax: a level, or `target=level` parts, comma-separated.
//! Matching follows tracing's `Targets`: the longest matching target prefix wins.

use tracing::Level;

const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

/// A parsed filter. `None` as a level means `off`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLevel {
    default: Option<Level>,
    /// (target prefix, level), longest prefix first.
    targets: Vec<(String, Option<Level>)>,
}

fn level(word: &str) -> Option<Option<Level>> {
    Some(match word.to_ascii_lowercase().as_str() {
        "off" => None,
        "error" => Some(Level::ERROR),
        "warn" => Some(Level::WARN),
        "info" => Some(Level::INFO),
        "debug" => Some(Level::DEBUG),
        "trace" => Some(Level::TRACE),
        _ => return None,
    })
}

impl LogLevel {
    /// Parses a level or a `target=level` list. A bare word that is not a level (a typo such
    /// as `loud`) is refused rather than read as a target name, and so is an empty target.
    pub fn parse(s: &str) -> Result<LogLevel, String> {
        let mut out = LogLevel {
            default: None,
            targets: Vec::new(),
        };
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (target, word) = match part.rsplit_once('=') {
                Some((t, l)) => (Some(t.trim()), l.trim()),
                None => (None, part),
            };
            let Some(lvl) = level(word) else {
                return Err(format!(
                    "{s:?}: {part:?} is not a level ({}) or target=level",
                    LEVELS.join(", ")
                ));
            };
            match target {
                None => out.default = lvl,
                Some("") => return Err(format!("{s:?}: {part:?} has an empty target")),
                Some(t) => out.targets.push((t.to_string(), lvl)),
            }
        }
        out.targets.sort_by_key(|(t, _)| std::cmp::Reverse(t.len()));
        Ok(out)
    }

    /// The level that applies to events of `target` (`None` = off).
    fn level_for(&self, target: &str) -> Option<Level> {
        self.targets
            .iter()
            .find(|(t, _)| target.starts_with(t.as_str()))
            .map_or(self.default, |(_, l)| *l)
    }

    pub fn enabled(&self, target: &str, event: &Level) -> bool {
        // tracing orders levels by verbosity: TRACE > DEBUG > INFO > WARN > ERROR.
        self.level_for(target).is_some_and(|max| *event <= max)
    }

    /// The most verbose level any target allows (`None` = nothing is logged).
    pub fn max(&self) -> Option<Level> {
        self.targets
            .iter()
            .map(|(_, l)| *l)
            .chain([self.default])
            .max()
            .flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_level_applies_to_every_target() {
        let f = LogLevel::parse("info").unwrap();
        assert!(f.enabled("detect_agent::daemon", &Level::INFO));
        assert!(f.enabled("rumqttc::state", &Level::WARN));
        assert!(!f.enabled("detect_agent", &Level::DEBUG));
        assert_eq!(f.max(), Some(Level::INFO));
    }

    #[test]
    fn the_longest_target_prefix_wins_and_unlisted_targets_are_off_without_a_default() {
        let f = LogLevel::parse("detect_agent=debug, detect_agent::publish=warn").unwrap();
        assert!(f.enabled("detect_agent::daemon", &Level::DEBUG));
        assert!(!f.enabled("detect_agent::publish::session", &Level::INFO));
        assert!(f.enabled("detect_agent::publish::session", &Level::WARN));
        assert!(!f.enabled("rumqttc", &Level::ERROR));
        let f = LogLevel::parse("warn,rumqttc=off").unwrap();
        assert!(!f.enabled("rumqttc::state", &Level::ERROR));
        assert!(f.enabled("detect_agent", &Level::WARN));
    }

    #[test]
    fn off_and_case_and_errors() {
        let f = LogLevel::parse("OFF").unwrap();
        assert!(!f.enabled("detect_agent", &Level::ERROR));
        assert_eq!(f.max(), None);
        assert!(
            LogLevel::parse("loud")
                .unwrap_err()
                .contains("\"loud\" is not a level")
        );
        assert!(LogLevel::parse("x=loud").is_err());
        assert!(LogLevel::parse("=info").is_err());
        assert_eq!(LogLevel::parse("").unwrap().max(), None);
    }
}
