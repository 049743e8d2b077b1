//! One report per slot: sample the host, rebase the counter baseline, take a report id,
//! encode, publish, and settle the baseline on the verdict. No signals or scheduling here.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::DaemonError;
use super::verdicts::{Unsettled, Verdicts};
use crate::collect::{self, CollectError, CollectOptions, Sample};
use crate::config::Config;
use crate::publish::{Backoff, ConnState, MqttSettings, Outcome, Publisher, Status};
use crate::report::{self, Baseline, Format};
use crate::state::{State, epoch_ms};

/// A sample that takes longer than this is abandoned (the loop is then unhealthy).
pub(super) const SAMPLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Everything one configuration generation needs.
pub(super) struct Agent {
    pub(super) thing: String,
    pub(super) format: Format,
    pub(super) interval: Duration,
    pub(super) verdict_wait: Duration,
    pub(super) collect: CollectOptions,
    pub(super) state: State,
    pub(super) baseline: Baseline,
    pub(super) publisher: Publisher,
    pub(super) failures: u32,
    pub(super) last_verdict: String,
    verdicts: Verdicts,
    unsettled: Unsettled,
}

impl Agent {
    /// Starts on a config that `validate` has passed (and logged the warnings of).
    pub(super) fn start(config: &Config) -> Result<Self, DaemonError> {
        let (Some(thing), Some(mqtt), Some(client_id)) =
            (&config.thing_name, &config.mqtt, config.client_id())
        else {
            return Err(DaemonError::Config(
                "thing_name and [mqtt] are required".into(),
            ));
        };
        let state = State::open(&config.state.dir)?;
        let baseline = match state.load_baseline::<Baseline>() {
            Ok(b) => b.unwrap_or_default(),
            Err(e) => {
                tracing::warn!(error = %e, "counter baseline unreadable; starting a fresh one");
                Baseline::default()
            }
        };
        let format = config.report.format;
        let settings = MqttSettings {
            endpoint: mqtt.endpoint.clone(),
            port: mqtt.port,
            ca_file: mqtt.ca_file.clone(),
            cert_file: mqtt.cert_file.clone(),
            key_file: mqtt.key_file.clone(),
            tls_server_name: mqtt.tls_server_name.clone(),
            client_id: client_id.to_string(),
            thing_name: thing.clone(),
            format_segment: format.topic_segment().to_string(),
            keep_alive_secs: mqtt.keep_alive_secs,
        };
        let publisher = Publisher::start(settings, Backoff::reconnect(seed()))?;
        tracing::info!(
            thing = %thing,
            format = %format,
            interval_secs = config.report.interval_secs,
            topic = %publisher.topics().publish,
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
            publisher,
            failures: 0,
            last_verdict: "none yet".to_string(),
            verdicts: Verdicts::default(),
            unsettled: Unsettled::default(),
        })
    }

    pub(super) fn status(&self, conn: &ConnState) -> String {
        format!("{}; last verdict: {}", conn.describe(), self.last_verdict)
    }

    /// One report: sample, rebase the baseline, take an id, encode, publish, settle.
    pub(super) async fn cycle(&mut self) {
        self.take_late_verdicts();
        tracing::debug!("cycle: sampling");
        let (sample, counters_err) = match self.sample().await {
            Ok(s) => s,
            Err(e) => {
                self.failures += 1;
                tracing::error!(error = %e, failures = self.failures, "sampling failed; no report this slot");
                return;
            }
        };
        // The baseline this report settles to, when its counters could be read.
        let (stats, settles_to) = match counters_err {
            Some(e) => {
                // The baseline is left alone: the traffic rolls into the next readable sample.
                tracing::error!(error = %e, "interface counters unreadable; this report has no network_stats");
                (None, None)
            }
            None => {
                let boot_id = sample.boot_id.as_deref();
                let (stats, rebase) = self.baseline.step(boot_id, &sample.counters);
                if rebase.restarted || !rebase.reset.is_empty() {
                    tracing::info!(restarted = rebase.restarted, reset = ?rebase.reset, "counter baseline restarted");
                }
                if rebase.changed() {
                    // Baselines remembered for late verdicts no longer compare with this one.
                    self.unsettled.clear();
                }
                // A rebase that changed the baseline is persisted at once, so a restart never
                // compares against stale counters. An unchanged one is already on disk: one
                // flash write fewer per cycle on a gateway.
                if rebase.changed()
                    && let Err(e) = self.state.save_baseline(&self.baseline)
                {
                    tracing::warn!(error = %e, "cannot persist the counter baseline");
                }
                (stats, Some(Baseline::new(boot_id, &sample.counters)))
            }
        };
        let report_id = match self.state.next_report_id(epoch_ms()) {
            Ok(next) => {
                if let Some(e) = next.unsaved {
                    tracing::error!(report_id = next.id, error = %e, "cannot persist the report id; reporting anyway (ids still rise in memory; after a restart with the clock behind, one could repeat)");
                }
                next.id
            }
            Err(e) => {
                self.failures += 1;
                tracing::error!(error = %e, "no report id left; no report this slot");
                return;
            }
        };
        let report = report::build(&sample.sockets, stats, report_id);
        let encoded = match report::encode(&report, self.format) {
            Ok(e) => e,
            Err(e) => {
                self.failures += 1;
                tracing::error!(report_id, error = %e, "cannot encode the report");
                return;
            }
        };
        self.failures = 0;
        let bytes = encoded.bytes.len();
        tracing::debug!(report_id, bytes, "cycle: publishing");
        let outcome = self
            .publisher
            .publish(report_id, encoded.bytes, self.verdict_wait)
            .await;
        self.settle(report_id, bytes, settles_to, outcome);
    }

    async fn sample(&self) -> Result<(Sample, Option<CollectError>), String> {
        let opts = self.collect.clone();
        let job = tokio::task::spawn_blocking(move || collect::sample_lenient(&opts));
        match tokio::time::timeout(SAMPLE_TIMEOUT, job).await {
            Err(_) => Err(format!("took longer than {SAMPLE_TIMEOUT:?}")),
            Ok(Err(e)) => Err(format!("sampling task failed: {e}")),
            Ok(Ok(Err(e))) => Err(e.to_string()),
            Ok(Ok(Ok(s))) => Ok(s),
        }
    }

    /// Advances the baseline when `Verdicts::settles` says the report's traffic has been
    /// counted; otherwise it rolls into the next report.
    fn settle(&mut self, report_id: u64, bytes: usize, to: Option<Baseline>, outcome: Outcome) {
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
                        "report acknowledged but the backend, which answered before, sent no verdict; its traffic rolls into the next report"
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
                self.advance_to(next);
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
            self.verdicts.heard();
            let accepted = status == Status::Accepted;
            if let Some(next) = self.unsettled.late(report_id, accepted) {
                tracing::info!(
                    report_id,
                    "late verdict: report accepted after its wait; its traffic is settled"
                );
                self.last_verdict = format!("report {report_id} accepted (late)");
                self.advance_to(next);
            }
        }
    }

    fn advance_to(&mut self, baseline: Baseline) {
        // Unchanged (no counted interface, or no traffic): nothing to write.
        if self.baseline.boot_id == baseline.boot_id && self.baseline.counters == baseline.counters
        {
            return;
        }
        self.baseline = baseline;
        if let Err(e) = self.state.save_baseline(&self.baseline) {
            tracing::warn!(error = %e, "cannot persist the counter baseline");
        }
    }
}

/// Jitter seed: time and pid, so agents that boot together do not retry in step.
fn seed() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    nanos ^ (u64::from(std::process::id()) << 32)
}
