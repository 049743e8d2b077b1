//! The process's Prometheus metrics (issue #21 item 1): counters fed by the service (reports,
//! alarm transitions, alert deliveries, HTTP refusals), gauges refreshed from the store, and
//! their rendering in the Prometheus text format. Names are a contract: docs/fleet.md lists them.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

use detect::EventType;

use crate::store::Recorded;

/// Report handling latency buckets, seconds (judge + commit of one report; the batch's sync
/// is not in it).
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// At most this many (profile, behavior) series per metric; more are summed under
/// `behavior="(other)"` and counted (profiles bound them; this guards the exporter).
pub const MAX_SERIES: usize = 10_000;

type Pair = (String, String);

/// Alarm transitions (AWS's Violations, ViolationsCleared, ViolationsInvalidated; detect-rules
/// §8).
#[derive(Default, Clone, Copy)]
struct Transitions {
    raised: u64,
    cleared: u64,
    invalidated: u64,
}

/// What the store said at the last refresh (`http::gauges`).
#[derive(Default, Clone)]
pub struct Gauges {
    pub active: BTreeMap<Pair, u64>,
    pub things_registered: u64,
    pub things_reporting: u64,
    /// Events not yet delivered, per sink (counted up to `http::WAITING_CAP`).
    pub alerts_waiting: BTreeMap<&'static str, u64>,
    /// The store's size on disk (SQLite: database + WAL); `None` when not known (NATS).
    pub store_bytes: Option<u64>,
    /// When the refresh ended, epoch seconds.
    pub refreshed_s: f64,
    /// How long the refresh took, seconds.
    pub read_s: f64,
}

pub(crate) struct Inner {
    alarms: BTreeMap<Pair, Transitions>,
    /// (outcome, error code or "") → reports.
    reports: BTreeMap<(&'static str, &'static str), u64>,
    latency: [u64; BUCKETS.len()],
    latency_count: u64,
    latency_sum: f64,
    alert_failures: BTreeMap<&'static str, u64>,
    alerts_sent: BTreeMap<&'static str, u64>,
    http_refused: BTreeMap<&'static str, u64>,
    gauges: Option<Gauges>,
}

pub struct Metrics {
    inner: Mutex<Inner>,
}

static METRICS: Metrics = Metrics::new();

/// The process's metrics.
pub fn global() -> &'static Metrics {
    &METRICS
}

impl Metrics {
    const fn new() -> Metrics {
        Metrics {
            inner: Mutex::new(Inner {
                alarms: BTreeMap::new(),
                reports: BTreeMap::new(),
                latency: [0; BUCKETS.len()],
                latency_count: 0,
                latency_sum: 0.0,
                alert_failures: BTreeMap::new(),
                alerts_sent: BTreeMap::new(),
                http_refused: BTreeMap::new(),
                gauges: None,
            }),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        // A panic elsewhere while counting leaves counts, not broken invariants.
        let mut guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut guard)
    }

    /// Every behavior of the loaded profiles and every alert sink at 0, so that a first alarm
    /// (or failure) is an increase.
    pub fn declare(&self, pairs: impl IntoIterator<Item = (String, String)>, webhook: bool) {
        self.with(|m| {
            let sinks: &[&'static str] = if webhook {
                &["mqtt", "webhook"]
            } else {
                &["mqtt"]
            };
            for sink in sinks {
                m.alerts_sent.entry(sink).or_default();
                m.alert_failures.entry(sink).or_default();
            }
            for p in pairs {
                if m.alarms.len() < MAX_SERIES {
                    m.alarms.entry(p).or_default();
                }
            }
            for outcome in ["accepted", "replayed"] {
                m.reports.entry((outcome, "")).or_default();
            }
        })
    }

    /// One judged report: its outcome (`rejected` with the answer's error code), the time
    /// it took, and the alarm transitions it caused.
    pub fn report(
        &self,
        accepted: bool,
        replayed: bool,
        code: Option<&'static str>,
        took: Duration,
    ) {
        let key = match (accepted, replayed, code) {
            (true, true, _) => ("replayed", ""),
            (true, false, _) => ("accepted", ""),
            (false, _, c) => ("rejected", c.unwrap_or("UNKNOWN")),
        };
        let secs = took.as_secs_f64();
        self.with(|m| {
            *m.reports.entry(key).or_default() += 1;
            m.latency_count += 1;
            m.latency_sum += secs;
            if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
                m.latency[i] += 1;
            }
        })
    }

    /// Alarm transitions (from reports, windows or the sweep).
    pub fn events(&self, events: &[Recorded]) {
        if events.is_empty() {
            return;
        }
        self.with(|m| {
            for r in events {
                let e = &r.event;
                let behavior = e.behavior["name"].as_str().unwrap_or("").to_string();
                let key = (e.security_profile_name.clone(), behavior);
                let key = if m.alarms.contains_key(&key) || m.alarms.len() < MAX_SERIES {
                    key
                } else {
                    (key.0, "(other)".to_string())
                };
                let t = m.alarms.entry(key).or_default();
                match e.violation_event_type {
                    EventType::InAlarm => t.raised += 1,
                    EventType::AlarmCleared => t.cleared += 1,
                    EventType::AlarmInvalidated => t.invalidated += 1,
                }
            }
        })
    }

    /// An alert sink (`mqtt`, `webhook`) delivered `n` events, or failed one attempt.
    pub fn alert(&self, sink: &'static str, delivered: Result<u64, ()>) {
        self.with(|m| match delivered {
            Ok(n) => *m.alerts_sent.entry(sink).or_default() += n,
            Err(()) => *m.alert_failures.entry(sink).or_default() += 1,
        })
    }

    /// A request the HTTP layer refused before serving it (`reason`: the gate's error type,
    /// `busy`, `timeout`).
    pub fn refused(&self, reason: &'static str) {
        self.with(|m| *m.http_refused.entry(reason).or_default() += 1)
    }

    pub fn set_gauges(&self, g: Gauges) {
        self.with(|m| m.gauges = Some(g))
    }

    /// The text exposition format, version 0.0.4.
    pub fn render(&self) -> String {
        self.with(|m| crate::metrics_text::render(m))
    }
}

/// Read by `metrics_text` (the rendering).
pub(crate) struct View<'a> {
    pub alarms: Vec<(&'a Pair, [u64; 3])>,
    pub reports: &'a BTreeMap<(&'static str, &'static str), u64>,
    pub latency: (&'a [u64], u64, f64),
    pub alert_failures: &'a BTreeMap<&'static str, u64>,
    pub alerts_sent: &'a BTreeMap<&'static str, u64>,
    pub http_refused: &'a BTreeMap<&'static str, u64>,
    pub gauges: Option<&'a Gauges>,
}

impl Inner {
    pub(crate) fn view(&self) -> View<'_> {
        View {
            alarms: self
                .alarms
                .iter()
                .map(|(k, t)| (k, [t.raised, t.cleared, t.invalidated]))
                .collect(),
            reports: &self.reports,
            latency: (&self.latency, self.latency_count, self.latency_sum),
            alert_failures: &self.alert_failures,
            alerts_sent: &self.alerts_sent,
            http_refused: &self.http_refused,
            gauges: self.gauges.as_ref(),
        }
    }
}

pub(crate) fn buckets() -> &'static [f64] {
    &BUCKETS
}

/// A label value escaped for the text format (backslash, quote, newline).
pub(crate) fn escape(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// `name{labels} value\n` with the labels escaped.
pub(crate) fn sample(
    out: &mut String,
    name: &str,
    labels: &[(&str, &str)],
    value: impl std::fmt::Display,
) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(k);
            out.push_str("=\"");
            escape(out, v);
            out.push('"');
        }
        out.push('}');
    }
    let _ = writeln!(out, " {value}");
}

#[cfg(test)]
#[path = "metrics_tests.rs"]
mod tests;
