//! `detect-fleet replay` (issue #19 item 4): recorded reports through the same `Judge` as `run`,
//! on the in-memory store, on the reports' own clock; prints the events the alert sinks get.
//!
//! Input: JSON lines `{"thing": NAME, "report": {…}}` (optional `"groups": [..]` registers the
//! thing with those groups, as `things add` does), in time order. A report's time is its
//! report_id read as epoch time (milliseconds; ten digits are seconds, as `run`'s sequence
//! rule reads them). The periodic work of `run` runs on that clock: pruning every hour, the
//! sweep at the 60 s ticks where it has work. Output: each published event's JSON (the bytes
//! the MQTT and webhook sinks send), one per line; suppressed events are not published.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::Path;

use anyhow::{Context, bail};
use serde::Deserialize;

use crate::intake::{self, Encoding, ReportTopic};
use crate::judge::Judge;
use crate::store::{Memory, MetricHistory, Outbox, Registry, Sink, Store, registry};
use detect::STALE_AFTER_MS;

/// Violation ids are drawn from this seed unless `--seed` says otherwise (the same seed as
/// `detect-agent evaluate`'s): the same input gives the same bytes.
pub const DEFAULT_SEED: u64 = 0x6465_7465_6374;
/// As `run`: the sweep and the pruning, on the reports' clock.
const SWEEP_EVERY_MS: u64 = 60_000;
const PRUNE_EVERY_MS: u64 = 3_600_000;

/// One input line.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    thing: String,
    report: Box<serde_json::value::RawValue>,
    #[serde(default)]
    groups: Option<Vec<String>>,
}

/// What a replay did (printed on stderr at the end).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub reports: u64,
    /// Reports `run` would have refused (sequence, throttling): noted on stderr, not fatal.
    pub rejected: u64,
    /// Lines skipped with `--keep-going`.
    pub bad_lines: u64,
    pub events: u64,
}

pub struct Replay {
    judge: Judge,
    store: Memory,
    history_ms: u64,
    /// The latest report time seen: the replay's clock.
    clock_ms: u64,
    next_sweep_ms: Option<u64>,
    next_prune_ms: Option<u64>,
    /// Each thing's last report time: the sweep has work only when one crosses
    /// `STALE_AFTER_MS` of silence, or when a registration changed who watches whom.
    last_seen: HashMap<String, u64>,
    registry_changed: bool,
    pub summary: Summary,
}

impl Replay {
    pub fn new(judge: Judge, history_days: u64) -> Replay {
        Replay {
            judge,
            store: Memory::new(),
            history_ms: history_days.saturating_mul(86_400_000),
            clock_ms: 0,
            next_sweep_ms: None,
            next_prune_ms: None,
            last_seen: HashMap::new(),
            registry_changed: false,
            summary: Summary::default(),
        }
    }

    /// Replays every line of `files` in order; `keep_going`: a bad line is reported on stderr
    /// and skipped instead of ending the replay.
    pub fn files(
        &mut self,
        files: &[std::path::PathBuf],
        keep_going: bool,
        out: &mut dyn Write,
    ) -> anyhow::Result<()> {
        for path in files {
            let file = std::fs::File::open(path)
                .with_context(|| format!("reading replay file {}", path.display()))?;
            let reader = std::io::BufReader::with_capacity(1 << 16, file);
            for (n, line) in reader.lines().enumerate() {
                let at = format!("{}:{}", path.display(), n + 1);
                let line = line.with_context(|| format!("{at}: reading"))?;
                if line.trim().is_empty() {
                    continue;
                }
                match self.line(&line, &at, out) {
                    Ok(()) => {}
                    Err(e) if keep_going && e.downcast_ref::<BadLine>().is_some() => {
                        eprintln!("detect-fleet: {e:#} (skipped)");
                        self.summary.bad_lines += 1;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        self.tick(u64::MAX, out)?;
        out.flush().context("writing to stdout")?;
        Ok(())
    }

    fn line(&mut self, text: &str, at: &str, out: &mut dyn Write) -> anyhow::Result<()> {
        let line: Line = serde_json::from_str(text).map_err(|e| {
            BadLine(format!(
                "{at}: expected {{\"thing\": NAME, \"report\": {{…}}}}: {e}"
            ))
        })?;
        let topic = ReportTopic {
            thing: line.thing,
            encoding: Encoding::Json,
        };
        let payload = line.report.get().as_bytes();
        // The header alone, for the clock; the judge decodes the whole report.
        let Some(report_id) = protocol::decode::report_id(payload) else {
            bail!(BadLine(format!(
                "{at}: thing {:?}: no readable header.report_id",
                topic.thing
            )));
        };
        if let Some(groups) = line.groups {
            if let Some(g) = groups
                .iter()
                .find(|g| !protocol::identity::is_registry_name(g))
            {
                bail!(BadLine(format!(
                    "{at}: group {g:?}: 1–128 characters of [a-zA-Z0-9:_-]"
                )));
            }
            self.store
                .register(&topic.thing, &groups.into_iter().collect())?;
            self.judge.set_registry(registry(&self.store.things()?));
            self.registry_changed = true;
        }
        let now_ms = intake::id_time(report_id).map_or(report_id, |(ms, _)| ms);
        self.tick(now_ms, out)?;
        let handled = self
            .judge
            .handle(&mut self.store, &topic, payload, now_ms)?;
        if handled.accepted {
            self.last_seen.insert(topic.thing.clone(), now_ms);
        }
        if !handled.accepted
            && let Err((r, _)) = intake::structure(&topic, payload)
        {
            bail!(BadLine(format!(
                "{at}: thing {:?}: {}",
                topic.thing, r.message
            )));
        }
        self.summary.reports += 1;
        if !handled.accepted {
            self.summary.rejected += 1;
            let answer: serde_json::Value =
                serde_json::from_slice(&handled.answer).unwrap_or_default();
            eprintln!(
                "detect-fleet: {at}: thing {:?} report {report_id} rejected: {}",
                topic.thing, answer["statusDetails"]
            );
        }
        self.publish(out)
    }

    /// Moves the clock to `now_ms` (never back), running the sweep and pruning `run` would
    /// have run in between; `u64::MAX` ends the replay (a last sweep at the clock).
    fn tick(&mut self, now_ms: u64, out: &mut dyn Write) -> anyhow::Result<()> {
        if now_ms == u64::MAX {
            if self.next_sweep_ms.is_some() {
                self.judge.sweep(&mut self.store, self.clock_ms)?;
            }
            return self.publish(out);
        }
        self.clock_ms = self.clock_ms.max(now_ms);
        let now = self.clock_ms;
        let sweep = *self.next_sweep_ms.get_or_insert(now + SWEEP_EVERY_MS);
        if now >= sweep {
            // `run`'s sweep changes a record only for a thing silent for more than
            // STALE_AFTER_MS (detect-rules §6.1) or a watch that changed; at other ticks it
            // would find nothing to do, and loading every record then costs more than the
            // whole evaluation. Expiry events carry last report + STALE_AFTER_MS as their
            // time, whenever the sweep runs.
            let previous = sweep - SWEEP_EVERY_MS;
            let crossed = self.last_seen.values().any(|t| {
                let stale = t.saturating_add(STALE_AFTER_MS);
                stale >= previous && stale < now
            });
            if crossed || std::mem::take(&mut self.registry_changed) {
                self.judge.sweep(&mut self.store, now)?;
                self.publish(out)?;
            }
            self.next_sweep_ms = Some(now + SWEEP_EVERY_MS);
        }
        // `run` calibrates the ML groups hourly with its sweep, which runs here only when it
        // has work: calibrate on the same schedule.
        self.judge.calibrate_from(&mut self.store, now)?;
        let prune = *self.next_prune_ms.get_or_insert(now + PRUNE_EVERY_MS);
        if now >= prune {
            let kept = crate::service::REPORTS_KEPT_MS;
            self.store.prune(
                now.saturating_sub(self.history_ms),
                now.saturating_sub(kept),
            )?;
            // Replay reads no metric history: none is kept.
            self.store.prune_history(now)?;
            self.next_prune_ms = Some(now + PRUNE_EVERY_MS);
        }
        Ok(())
    }

    /// Prints the outbox's new events (what the sinks would send) and marks them sent.
    fn publish(&mut self, out: &mut dyn Write) -> anyhow::Result<()> {
        let pending = self.store.pending(Sink::Mqtt, usize::MAX)?;
        let Some(last) = pending.last().map(|p| p.position) else {
            return Ok(());
        };
        for p in &pending {
            out.write_all(&p.payload).context("writing to stdout")?;
            out.write_all(b"\n").context("writing to stdout")?;
        }
        self.summary.events += pending.len() as u64;
        self.store.ack(Sink::Mqtt, last)?;
        self.store.ack(Sink::Webhook, last)?;
        Ok(())
    }
}

/// A line that is not a replayable report (`--keep-going` skips these).
#[derive(Debug)]
pub struct BadLine(String);

impl std::fmt::Display for BadLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadLine {}

/// The replay's summary line.
pub fn describe(s: &Summary, files: &[std::path::PathBuf]) -> String {
    let names: Vec<String> = files.iter().map(|p| display(p)).collect();
    format!(
        "replayed {} reports from {} ({} rejected, {} bad lines skipped): {} events",
        s.reports,
        names.join(", "),
        s.rejected,
        s.bad_lines,
        s.events
    )
}

fn display(p: &Path) -> String {
    p.display().to_string()
}
