//! A closed window of one thing's broker counters as an observation (detect-rules §3.4): the
//! datapoint of each cloud-side metric over `[end − window, end)`, narrowed by `TOPIC_FILTER`
//! dimensions (`Dimensions`, from `[[dimension]]`). The engine judges it; this only counts.

use std::collections::BTreeMap;

use detect::metrics::{CloudMetric, CloudRef};
use detect::{Datapoint, MetricRef, Observation};

use crate::config::DimensionConfig;
use crate::witness::{Bucket, OTHER_TOPIC, Tally, Witness};

/// The `TOPIC_FILTER` dimensions by name: MQTT topic filters (`+`, `#`), in which
/// `${iot:ClientId}` stands for the thing's client id.
#[derive(Debug, Clone, Default)]
pub struct Dimensions(BTreeMap<String, Vec<String>>);

impl Dimensions {
    pub fn new(config: &[DimensionConfig]) -> Dimensions {
        Dimensions(
            config
                .iter()
                .map(|d| (d.name.clone(), d.values.clone()))
                .collect(),
        )
    }

    pub fn has(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    /// Does `topic` match one of the filters of `name` for `thing`? `None`: no such dimension.
    pub fn matches(&self, name: &str, thing: &str, topic: &str) -> Option<bool> {
        let filters = self.0.get(name)?;
        Some(filters.iter().any(|f| {
            let f = f.replace("${iot:ClientId}", thing);
            filter_matches(&f, topic)
        }))
    }
}

/// MQTT 3.1.1 §4.7: `+` matches one level, a trailing `#` this level and every one below
/// (the parent too); a wildcard first level never matches a topic starting with `$`.
pub fn filter_matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut t = topic.split('/');
    for f in filter.split('/') {
        match (f, t.next()) {
            ("#", _) => return true,
            ("+", Some(_)) => {}
            (f, Some(level)) if f == level => {}
            _ => return false,
        }
    }
    t.next().is_none()
}

/// The window of `thing` ending at `end_ms` (for every window length dividing it).
pub struct Closed<'a> {
    pub thing: &'a str,
    pub witness: &'a Witness,
    pub end_ms: u64,
    pub dimensions: &'a Dimensions,
}

impl Closed<'_> {
    fn buckets(&self, window_ms: u64) -> impl Iterator<Item = &Bucket> {
        let from = self.end_ms.saturating_sub(window_ms);
        self.witness
            .buckets
            .range(from..self.end_ms)
            .map(|(_, b)| b)
    }

    /// Does `topic` count for `c`? `None`: the dimension is not defined.
    fn counts(&self, c: &CloudRef, topic: &str) -> Option<bool> {
        let Some(d) = &c.dimension else {
            return Some(true);
        };
        if topic == OTHER_TOPIC {
            return Some(false); // no topic, or folded: no dimension can place it (§3.4)
        }
        let m = self.dimensions.matches(&d.name, self.thing, topic)?;
        Some(m != d.not_in)
    }

    fn tallies<'b>(
        &'b self,
        c: &'b CloudRef,
        window_ms: u64,
        sent: bool,
    ) -> Option<Vec<&'b Tally>> {
        let mut out = Vec::new();
        for b in self.buckets(window_ms) {
            let map = if sent { &b.sent } else { &b.received };
            for (topic, t) in map {
                if self.counts(c, topic)? {
                    out.push(t);
                }
            }
        }
        Some(out)
    }

    fn cloud(&self, c: &CloudRef) -> Option<Datapoint> {
        let window_ms = c.window_secs.checked_mul(1000).filter(|w| *w > 0)?;
        if !self.end_ms.is_multiple_of(window_ms) {
            return None; // not this window's end
        }
        let sum = |f: fn(&Bucket) -> u64| self.buckets(window_ms).map(f).sum::<u64>();
        Some(match c.metric {
            CloudMetric::MessagesSent | CloudMetric::MessagesReceived => {
                let sent = c.metric == CloudMetric::MessagesSent;
                let tallies = self.tallies(c, window_ms, sent)?;
                Datapoint::Count(tallies.iter().map(|t| t.msgs).sum())
            }
            CloudMetric::MessageByteSize => {
                let tallies = self.tallies(c, window_ms, true)?;
                let sizes = tallies.iter().filter(|t| t.msgs > 0);
                Datapoint::Count(if c.largest {
                    sizes.map(|t| t.max).max()?
                } else {
                    sizes.map(|t| t.min).min()?
                })
            }
            CloudMetric::AuthorizationFailures => {
                let mut n = 0;
                for b in self.buckets(window_ms) {
                    for (topic, count) in &b.denied {
                        if self.counts(c, topic)? {
                            n += count;
                        }
                    }
                }
                Datapoint::Count(n)
            }
            CloudMetric::SourceIp => {
                let mut ips: Vec<_> = self
                    .buckets(window_ms)
                    .flat_map(|b| &b.ips)
                    .copied()
                    .collect();
                ips.sort_unstable();
                ips.dedup();
                if ips.is_empty() {
                    return None; // no accepted connect in the window (§3.4)
                }
                Datapoint::Addresses(ips)
            }
            CloudMetric::ConnectionAttempts => Datapoint::Count(sum(|b| b.attempts)),
            CloudMetric::Disconnects => Datapoint::Count(sum(|b| b.disconnects)),
            CloudMetric::DisconnectDuration => match self.witness.state_at(self.end_ms) {
                Some((false, since)) => Datapoint::Count(self.end_ms.saturating_sub(since) / 1000),
                _ => Datapoint::Count(0),
            },
        })
    }
}

/// Only cloud-side metrics have a datapoint; its id (`reportId` of its events) is the window's
/// end in ms.
impl Observation for Closed<'_> {
    fn id(&self) -> u64 {
        self.end_ms
    }

    fn datapoint(&self, metric: &MetricRef) -> Option<Datapoint> {
        match metric {
            MetricRef::Cloud(c) => self.cloud(c),
            _ => None,
        }
    }

    fn traffic(&self) -> Option<protocol::NetworkStats> {
        None
    }

    fn missing(&self, metric: &MetricRef) -> String {
        match metric {
            MetricRef::Cloud(c) => match &c.dimension {
                Some(d) if !self.dimensions.has(&d.name) => {
                    format!("dimension {:?} is not defined in [[dimension]]", d.name)
                }
                _ => format!("no {} datapoint in this window", c.metric.name()),
            },
            _ => "a broker window has no device-side datapoint".into(),
        }
    }
}

#[cfg(test)]
#[path = "window_tests.rs"]
mod tests;
