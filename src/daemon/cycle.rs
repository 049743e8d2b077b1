//! One report per slot: sample the host, rebase the counter baseline, take a report id,
//! detect (`alarms`), encode, publish, and settle the baseline on the verdict. No signals or
//! scheduling here.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use super::DaemonError;
use super::alarms::Alarms;
use super::broker::Session;
use super::random;
use super::settled::{self, Carried};
use super::verdicts::{Unsettled, Verdicts};
use crate::collect::custom::{self, CustomState, CustomValue, MetricSpec, Reading};
use crate::collect::{self, CollectError, CollectOptions, Sample};
use crate::config::Config;
use crate::detect::Profile;
use crate::publish::{Backoff, ClientCert, ConnState, Login, MqttSettings, Outcome, Status};
use crate::report::{self, Baseline, Format, NetworkStats, Report};
use crate::state::State;

/// A sample that takes longer than this plus the longest custom metric command timeout
/// (each ≤ 60 s, killed at its own deadline) is abandoned (the loop is then unhealthy).
pub(super) const SAMPLE_TIMEOUT: Duration = Duration::from_secs(30);

/// A sample and, when the interface counters could not be read, why.
struct Sampled {
    sample: Sample,
    counters_err: Option<CollectError>,
    /// The custom metrics read beside the sample (commands start first).
    readings: Vec<Reading>,
}

/// The full, uncut report, the baseline it settles to once its traffic is counted, and the
/// traffic since the previous sample (for detection).
struct Built {
    report: Report,
    settles_to: Option<Baseline>,
    since_sample: Option<NetworkStats>,
}

/// The encoded report as it goes on the wire.
struct Wire {
    report_id: u64,
    bytes: Vec<u8>,
}

/// How the publish of one report ended.
struct Published {
    report_id: u64,
    bytes: usize,
    outcome: Outcome,
}

/// Everything one configuration generation needs.
pub(super) struct Agent {
    pub(super) thing: String,
    pub(super) format: Format,
    pub(super) interval: Duration,
    pub(super) verdict_wait: Duration,
    pub(super) collect: CollectOptions,
    pub(super) state: State,
    pub(super) baseline: Baseline,
    /// The report whose sample's counters `baseline` holds (it settled), when known.
    sample_id: Option<u64>,
    pub(super) publisher: Session,
    pub(super) failures: u32,
    pub(super) last_verdict: String,
    verdicts: Verdicts,
    unsettled: Unsettled,
    alarms: Alarms,
    /// `[[custom_metrics]]`, read in the sample stage; `custom_state` carries `cpu_usage`'s
    /// previous /proc/stat reading from one cycle to the next.
    custom: Arc<[MetricSpec]>,
    custom_state: CustomState,
    pub(super) sample_timeout: Duration,
    /// Set when the agent stops: the sample kills its running commands at once.
    pub(super) stop_commands: Arc<AtomicBool>,
}

impl Agent {
    /// Starts on a config that `validate` has passed (and logged the warnings of), with the
    /// profiles it loaded.
    pub(super) fn start(
        config: &Config,
        profiles: Vec<Profile>,
        carried: Option<Carried>,
    ) -> Result<Self, DaemonError> {
        let (Some(thing), Some(mqtt), Some(client_id)) =
            (&config.thing_name, &config.mqtt, config.client_id())
        else {
            return Err(DaemonError::Config(
                "thing_name and [mqtt] are required".into(),
            ));
        };
        let custom: Arc<[MetricSpec]> = config
            .custom_metric_specs()
            .map_err(|errors| DaemonError::Config(errors.join("; ")))?
            .into();
        let longest_command = custom
            .iter()
            .filter_map(|m| match &m.source {
                custom::Source::Command { timeout, .. } => Some(*timeout),
                _ => None,
            })
            .max()
            .unwrap_or_default();
        let mut state = State::open(&config.state.dir)?;
        let settled::Resumed {
            baseline,
            unsettled,
            answering,
            sample_id,
        } = settled::resume(&mut state, carried);
        let format = config.report.format;
        let settings = MqttSettings {
            endpoint: mqtt.endpoint.clone(),
            port: mqtt.port,
            ca_file: mqtt.ca_file.clone(),
            client_cert: mqtt.client_cert().map(|(cert, key)| ClientCert {
                cert_file: cert.to_path_buf(),
                key_file: key.to_path_buf(),
            }),
            login: mqtt.login().map(|(username, password_file)| Login {
                username: username.to_string(),
                password_file: password_file.to_path_buf(),
            }),
            tls_server_name: mqtt.tls_server_name.clone(),
            client_id: client_id.to_string(),
            thing_name: thing.clone(),
            format_segment: format.topic_segment().to_string(),
            keep_alive_secs: mqtt.keep_alive_secs,
        };
        let publisher = Session::start(
            settings,
            Backoff::reconnect(random::seed()),
            &config.state.dir,
        )?;
        let topic = config
            .alarm_topic(thing)
            .map_err(|e| DaemonError::Config(format!("detect.alarm_topic: {e}")))?;
        let mut alarms = Alarms::start(thing, topic, profiles, &state, super::wall_ms());
        let interval = Duration::from_secs(config.report.interval_secs);
        alarms.previous_sample(&baseline, sample_id, interval);
        tracing::info!(
            thing = %thing,
            format = %format,
            interval_secs = config.report.interval_secs,
            topic = %publisher.topics().publish,
            backend = config.report.backend.as_str(),
            backend_answers = answering,
            "agent started"
        );
        Ok(Self {
            thing: thing.clone(),
            format,
            interval: Duration::from_secs(config.report.interval_secs),
            verdict_wait: Duration::from_secs(config.report.verdict_timeout_secs),
            collect: config.collect_options(),
            state,
            baseline,
            sample_id,
            publisher,
            failures: 0,
            last_verdict: "none yet".to_string(),
            verdicts: Verdicts::new(config.report.backend, answering),
            unsettled,
            alarms,
            custom,
            custom_state: CustomState::default(),
            sample_timeout: SAMPLE_TIMEOUT + longest_command,
            stop_commands: Arc::new(AtomicBool::new(false)),
        })
    }

    /// What a reload hands to the next agent: the in-memory truth, which the disk may lack.
    pub(super) fn carry(&mut self) -> Carried {
        Carried {
            baseline: std::mem::take(&mut self.baseline),
            unsettled: std::mem::take(&mut self.unsettled),
            answering: self.verdicts.answering(),
            last_id: self.state.last_report_id(),
            sample_id: self.sample_id,
        }
    }

    /// Alarm events waiting for the broker.
    pub(super) fn alarms_queued(&self) -> usize {
        self.alarms.queued()
    }

    /// Sends the queued alarm events now (bounded, see `Alarms::drain`).
    pub(super) async fn deliver_alarms(&mut self) {
        self.alarms.drain(&self.publisher).await;
    }

    /// Writes what must survive this agent (the alarm engine's state, and the baseline with
    /// the report whose sample it is), at stop and reload.
    pub(super) fn save_state(&mut self) {
        self.alarms.flush(&self.state);
        self.save_baseline();
    }

    pub(super) fn status(&self, conn: &ConnState) -> String {
        let mut line = format!(
            "{}; last verdict: {}; active alarms: {}",
            conn.describe(),
            self.last_verdict,
            self.alarms.active()
        );
        let queued = self.alarms.queued();
        if queued > 0 {
            line.push_str(&format!(" ({queued} alarm events queued)"));
        }
        line
    }

    /// One report, as stages that hand their value to the next (architecture.md, "One
    /// sample, start to finish"): sample → report → detect → publish → settle. A stage that
    /// fails logs why and ends the cycle; `failures` counts the cycles that made no report.
    /// The publish waits at most until shortly before `next_slot` (issue #12: a verdict wait
    /// never delays the next report).
    pub(super) async fn cycle(&mut self, next_slot: tokio::time::Instant) {
        self.take_late_verdicts();
        let Some(sampled) = self.sample().await else {
            return;
        };
        let Some(mut built) = self.report(sampled) else {
            return;
        };
        self.alarms
            .evaluate(&mut built.report, built.since_sample, &self.state);
        let Some(wire) = self.encode(&built) else {
            return;
        };
        let published = self.publish(wire, next_slot).await;
        self.settle(published, built.settles_to);
    }

    /// Stage 1: one sample of the host, bounded by `SAMPLE_TIMEOUT`.
    async fn sample(&mut self) -> Option<Sampled> {
        tracing::debug!("cycle: sampling");
        let opts = self.collect.clone();
        let specs = Arc::clone(&self.custom);
        let mut state = self.custom_state;
        let stop = Arc::clone(&self.stop_commands);
        let job = tokio::task::spawn_blocking(move || {
            let (sample, readings) = collect::sample_with_custom(&opts, &specs, &mut state, &stop);
            (sample, readings, state)
        });
        let limit = self.sample_timeout;
        let result: Result<Sampled, String> = match tokio::time::timeout(limit, job).await {
            Err(_) => Err(format!("took longer than {limit:?}")),
            Ok(Err(e)) => Err(format!("sampling task failed: {e}")),
            Ok(Ok((sample, readings, state))) => {
                self.custom_state = state;
                sample
                    .map(|(sample, counters_err)| Sampled {
                        sample,
                        counters_err,
                        readings,
                    })
                    .map_err(|e| e.to_string())
            }
        };
        result
            .inspect_err(|e| {
                self.failures += 1;
                tracing::error!(error = %e, failures = self.failures, "sampling failed; no report this slot");
            })
            .ok()
    }

    /// Stage 2: the full (uncut) report: traffic since the report baseline, a report id.
    fn report(&mut self, sampled: Sampled) -> Option<Built> {
        let Sampled {
            sample,
            counters_err,
            readings,
        } = sampled;
        let (stats, settles_to, since_sample) = match counters_err {
            Some(e) => {
                // The baseline is left alone: the traffic rolls into the next readable sample.
                tracing::error!(error = %e, "interface counters unreadable; this report has no network_stats");
                (None, None, None)
            }
            None => {
                let (stats, settles_to) = self.rebase(&sample);
                (stats, settles_to, Some(&sample))
            }
        };
        let report_id = match self.state.next_report_id(super::wall_ms()) {
            Ok(next) => {
                if let Some(e) = next.unsaved {
                    tracing::error!(report_id = next.id, error = %e, "cannot persist the report id; reporting anyway (ids still rise in memory; after a restart with the clock behind, one could repeat)");
                }
                next.id
            }
            Err(e) => {
                self.failures += 1;
                tracing::error!(error = %e, "no report id left; no report this slot");
                return None;
            }
        };
        let since_sample = since_sample.and_then(|s| self.alarms.traffic(s, report_id));
        let custom = custom_values(report_id, &readings);
        let report = report::build_with_custom(&sample.sockets, stats, custom, report_id);
        Some(Built {
            report,
            settles_to,
            since_sample,
        })
    }

    /// Rebases the report baseline on the sample's counters: the report's network_stats,
    /// and the baseline the report settles to once its traffic is counted.
    fn rebase(&mut self, sample: &Sample) -> (Option<NetworkStats>, Option<Baseline>) {
        let boot_id = sample.boot_id.as_deref();
        let (stats, rebase) = self.baseline.step(boot_id, &sample.counters);
        if rebase.restarted || !rebase.reset.is_empty() {
            tracing::info!(restarted = rebase.restarted, reset = ?rebase.reset, "counter baseline restarted");
        }
        if rebase.changed() {
            // Baselines remembered for late verdicts no longer compare with this one, and it
            // is no report's sample any more.
            self.unsettled.clear();
            self.sample_id = None;
        }
        // A rebase that changed the baseline is persisted at once, so a restart never
        // compares against stale counters. An unchanged one is already on disk: one
        // flash write fewer per cycle on a gateway.
        if rebase.changed() {
            self.save_baseline();
        }
        (stats, Some(Baseline::new(boot_id, &sample.counters)))
    }

    /// Stage 3: the wire bytes, cut to the payload limit.
    fn encode(&mut self, built: &Built) -> Option<Wire> {
        let report_id = built.report.header.report_id;
        match report::encode(&built.report, self.format) {
            Ok(e) => {
                self.failures = 0;
                Some(Wire {
                    report_id,
                    bytes: e.bytes,
                })
            }
            Err(e) => {
                self.failures += 1;
                tracing::error!(report_id, error = %e, "cannot encode the report");
                None
            }
        }
    }

    /// Stage 4: queued alarm events first (they never wait for a report's verdict), then the
    /// report, waiting (bounded) for its PUBACK and verdict.
    async fn publish(&mut self, wire: Wire, next_slot: tokio::time::Instant) -> Published {
        self.alarms.drain(&self.publisher).await;
        let Wire { report_id, bytes } = wire;
        let len = bytes.len();
        let until_next = next_slot.saturating_duration_since(tokio::time::Instant::now());
        let wait = super::schedule::publish_wait(self.verdict_wait, until_next, self.interval);
        tracing::debug!(
            report_id,
            bytes = len,
            wait_ms = wait.as_millis() as u64,
            "cycle: publishing"
        );
        let outcome = self.publisher.publish(report_id, bytes, wait).await;
        Published {
            report_id,
            bytes: len,
            outcome,
        }
    }

    /// Advances the baseline when `Verdicts::settles` says the report's traffic has been
    /// counted; otherwise it rolls into the next report.
    fn settle(&mut self, published: Published, to: Option<Baseline>) {
        let Published {
            report_id,
            bytes,
            outcome,
        } = published;
        if matches!(outcome, Outcome::Accepted | Outcome::Rejected { .. }) {
            self.heard();
        }
        let advance = self.verdicts.settles(&outcome);
        match &outcome {
            Outcome::Accepted => self.last_verdict = format!("report {report_id} accepted"),
            Outcome::Acked => {
                self.last_verdict = format!("report {report_id} acknowledged, no verdict");
                if advance {
                    tracing::info!(
                        report_id,
                        bytes,
                        verdict = "none",
                        "report acknowledged by the broker, no verdict"
                    );
                } else {
                    tracing::warn!(
                        report_id,
                        bytes,
                        verdict = "none",
                        "report acknowledged but no verdict came from the backend; its traffic rolls into the next report"
                    );
                }
            }
            Outcome::Rejected { code, message } => {
                // Throttled: wait for the next slot, never retry at once (protocol doc §4, §10).
                self.last_verdict = format!("report {report_id} rejected: {code}");
                tracing::warn!(report_id, error_code = %code, error_message = message.as_deref().unwrap_or(""), "report rejected; its traffic rolls into the next report");
            }
            Outcome::NotDelivered(reason) => {
                self.last_verdict = format!("report {report_id} not delivered");
                tracing::warn!(report_id, reason = %reason, "report not delivered; its traffic rolls into the next report");
            }
        }
        match to {
            Some(next) if advance => {
                self.unsettled.clear();
                self.advance_to(next, report_id);
            }
            // Not rejected: the backend may still accept it (`take_late_verdicts`).
            Some(next) if !matches!(outcome, Outcome::Rejected { .. }) => {
                self.unsettled.remember(report_id, next);
            }
            _ => {}
        }
    }

    /// Settles reports whose "accepted" came after their wait ended, before the next sample,
    /// so their traffic is not counted again.
    fn take_late_verdicts(&mut self) {
        for (report_id, status) in self.publisher.late_verdicts() {
            self.heard();
            let accepted = status == Status::Accepted;
            if let Some(next) = self.unsettled.late(report_id, accepted) {
                tracing::info!(
                    report_id,
                    "late verdict: report accepted after its wait; its traffic is settled"
                );
                self.last_verdict = format!("report {report_id} accepted (late)");
                self.advance_to(next, report_id);
            }
        }
    }

    /// A verdict came: with `backend = "auto"` the first one ever is kept on disk.
    fn heard(&mut self) {
        if self.verdicts.heard() {
            tracing::info!(
                "the backend answers with verdicts: from now on only an accepted report settles its traffic"
            );
            self.save_baseline();
        }
    }

    fn advance_to(&mut self, baseline: Baseline, report_id: u64) {
        // Kept in memory only when the counters did not move: written at stop (`save_state`).
        self.sample_id = Some(report_id);
        // Unchanged (no counted interface, or no traffic): nothing to write.
        if self.baseline.boot_id == baseline.boot_id && self.baseline.counters == baseline.counters
        {
            return;
        }
        self.baseline = baseline;
        self.save_baseline();
    }

    fn save_baseline(&self) {
        settled::save(
            &self.state,
            &self.baseline,
            self.verdicts.answering(),
            self.sample_id,
        );
    }
}

/// The values for the report; each metric that failed is left out with one warning.
fn custom_values(report_id: u64, readings: &[Reading]) -> BTreeMap<String, CustomValue> {
    for r in readings {
        if let Err(e) = &r.value {
            tracing::warn!(report_id, metric = %r.name, source = %r.source, error = %e, "custom metric left out of this report");
        }
    }
    custom::values(readings)
}
