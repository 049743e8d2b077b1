//! The run loop: one report per slot (sample → baseline → report id → encode → publish →
//! verdict), signals (TERM/INT stop, HUP reload), systemd notify and watchdog. Never parses
//! /proc or MQTT itself: it wires collect, report, state and publish together.

pub mod notify;
pub mod schedule;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::collect::{self, CollectOptions, Sample};
use crate::config::{Config, Problem};
use crate::publish::{Backoff, ConnState, MqttSettings, Outcome, Publisher};
use crate::report::{self, Baseline, Format};
use crate::state::State;
use notify::Notifier;

/// How long a SIGTERM lets an in-flight publish run before we disconnect...
const STOP_GRACE: Duration = Duration::from_secs(4);
/// ...and how long the DISCONNECT may take: together within systemd's and users' 5 s.
const DISCONNECT_GRACE: Duration = Duration::from_secs(1);
/// A sample that takes longer than this is abandoned (the loop is then unhealthy).
const SAMPLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Consecutive failed cycles (sample or state write) after which the watchdog goes quiet.
const UNHEALTHY_AFTER: u32 = 3;

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("config: {0}")]
    Config(String),
    #[error("state: {0}")]
    State(#[from] crate::state::StateError),
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    #[error("MQTT: {0}")]
    Publish(#[from] crate::publish::PublishError),
}

/// Runs the agent until SIGTERM/SIGINT. `path` is re-read on SIGHUP.
pub fn run(path: PathBuf, config: Config) -> Result<(), DaemonError> {
    // One thread: the agent is idle almost all the time and RSS matters on a gateway.
    // Sampling runs on one blocking thread at most (bounded, and one malloc arena).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(1)
        .build()
        .map_err(DaemonError::Runtime)?;
    rt.block_on(run_async(path, config))
}

struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
}

enum Exit {
    Stop,
    Reload(Box<Config>),
}

async fn run_async(path: PathBuf, mut config: Config) -> Result<(), DaemonError> {
    let notifier = Notifier::from_env();
    let mut signals = Signals {
        term: signal(SignalKind::terminate()).map_err(DaemonError::Signals)?,
        int: signal(SignalKind::interrupt()).map_err(DaemonError::Signals)?,
        hup: signal(SignalKind::hangup()).map_err(DaemonError::Signals)?,
    };
    loop {
        let mut agent = Agent::start(&config)?;
        notifier.ready();
        let exit = agent.serve(&path, &mut signals, &notifier).await;
        match exit {
            Exit::Stop => {
                notifier.stopping();
                agent.publisher.shutdown(DISCONNECT_GRACE).await;
                tracing::info!("stopped");
                return Ok(());
            }
            Exit::Reload(new) => {
                notifier.reloading();
                agent.publisher.shutdown(DISCONNECT_GRACE).await;
                config = *new;
                tracing::info!("configuration reloaded");
            }
        }
    }
}

/// Everything one configuration generation needs.
struct Agent {
    thing: String,
    format: Format,
    interval: Duration,
    verdict_wait: Duration,
    collect: CollectOptions,
    state: State,
    baseline: Baseline,
    publisher: Publisher,
    failures: u32,
    last_verdict: String,
}

/// Checks a loaded config for what `run` needs; warnings are logged.
fn validate(config: &Config) -> Result<(), DaemonError> {
    let mut errors = Vec::new();
    for p in config.problems() {
        match p {
            Problem::Warning(w) => tracing::warn!("{w}"),
            Problem::Error(e) => errors.push(e),
        }
    }
    if config.thing_name.is_none() {
        errors.push("thing_name is required by run".to_string());
    }
    if config.mqtt.is_none() {
        errors.push("[mqtt] is required by run".to_string());
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(DaemonError::Config(errors.join("; ")))
    }
}

impl Agent {
    fn start(config: &Config) -> Result<Self, DaemonError> {
        validate(config)?;
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
        })
    }

    /// Waits for slots and signals until asked to stop or to switch to a new config.
    async fn serve(&mut self, path: &Path, sig: &mut Signals, notifier: &Notifier) -> Exit {
        let offset = schedule::offset_ms(&self.thing, self.interval);
        let mut conn = self.publisher.state();
        let mut conn_open = true;
        let watchdog = notifier.watchdog_interval();
        let mut ticker = tokio::time::interval(watchdog.unwrap_or(Duration::from_secs(3600)));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        notifier.status(&self.status(&conn.borrow()));
        loop {
            let wait = Duration::from_millis(
                schedule::next_slot_ms(now_ms(), self.interval, offset).saturating_sub(now_ms()),
            );
            let slot = tokio::time::sleep(wait);
            tokio::pin!(slot);
            loop {
                tokio::select! {
                    _ = &mut slot => break,
                    _ = ticker.tick(), if watchdog.is_some() => {
                        if self.failures < UNHEALTHY_AFTER {
                            notifier.watchdog();
                        }
                    }
                    changed = conn.changed(), if conn_open => {
                        // A closed channel would be ready forever: stop polling it.
                        conn_open = changed.is_ok();
                        if conn_open {
                            notifier.status(&self.status(&conn.borrow()));
                        }
                    }
                    _ = sig.term.recv() => return Exit::Stop,
                    _ = sig.int.recv() => return Exit::Stop,
                    _ = sig.hup.recv() => {
                        if let Some(new) = reload(path) {
                            return Exit::Reload(new);
                        }
                    }
                }
            }
            // One cycle; a stop signal lets it finish for at most STOP_GRACE.
            {
                let cycle = self.cycle();
                tokio::pin!(cycle);
                let stop = tokio::select! {
                    _ = &mut cycle => false,
                    _ = sig.term.recv() => true,
                    _ = sig.int.recv() => true,
                };
                if stop {
                    if tokio::time::timeout(STOP_GRACE, &mut cycle).await.is_err() {
                        tracing::warn!("in-flight report abandoned at shutdown");
                    }
                    return Exit::Stop;
                }
            }
            notifier.status(&self.status(&conn.borrow()));
        }
    }

    fn status(&self, conn: &ConnState) -> String {
        format!("{}; last verdict: {}", conn.describe(), self.last_verdict)
    }

    /// One report: sample, rebase the baseline, take an id, encode, publish, settle.
    async fn cycle(&mut self) {
        tracing::debug!("cycle: sampling");
        let sample = match self.sample().await {
            Ok(s) => s,
            Err(e) => {
                self.failures += 1;
                tracing::error!(error = %e, failures = self.failures, "sampling failed; no report this slot");
                return;
            }
        };
        let boot_id = sample.boot_id.as_deref();
        let (stats, rebase) = self.baseline.step(boot_id, &sample.counters);
        if rebase.restarted || !rebase.reset.is_empty() {
            tracing::info!(restarted = rebase.restarted, reset = ?rebase.reset, "counter baseline restarted");
        }
        // The rebase is persisted at once, so a restart never compares against stale counters.
        if let Err(e) = self.state.save_baseline(&self.baseline) {
            tracing::warn!(error = %e, "cannot persist the counter baseline");
        }
        let report_id = match self.state.next_report_id(now_ms()) {
            Ok(id) => id,
            Err(e) => {
                self.failures += 1;
                tracing::error!(error = %e, "cannot persist the report id; no report this slot");
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
        self.settle(report_id, bytes, &sample, outcome);
    }

    async fn sample(&self) -> Result<Sample, String> {
        let opts = self.collect.clone();
        let job = tokio::task::spawn_blocking(move || collect::sample(&opts));
        match tokio::time::timeout(SAMPLE_TIMEOUT, job).await {
            Err(_) => Err(format!("took longer than {SAMPLE_TIMEOUT:?}")),
            Ok(Err(e)) => Err(format!("sampling task failed: {e}")),
            Ok(Ok(Err(e))) => Err(e.to_string()),
            Ok(Ok(Ok(s))) => Ok(s),
        }
    }

    /// Advances the baseline only when the report was accepted (or, without a verdict,
    /// acknowledged by the broker): otherwise its traffic rolls into the next report.
    fn settle(&mut self, report_id: u64, bytes: usize, sample: &Sample, outcome: Outcome) {
        let advance = match &outcome {
            Outcome::Accepted => {
                self.last_verdict = format!("report {report_id} accepted");
                true
            }
            Outcome::Acked => {
                tracing::info!(
                    report_id,
                    bytes,
                    verdict = "none",
                    "report acknowledged by the broker, no verdict"
                );
                self.last_verdict = format!("report {report_id} acknowledged, no verdict");
                true
            }
            Outcome::Rejected { code, message } => {
                // Throttled: wait for the next slot, never retry at once (protocol doc §4, §10).
                self.last_verdict = format!("report {report_id} rejected: {code}");
                tracing::warn!(report_id, error_code = %code, error_message = message.as_deref().unwrap_or(""), "report rejected; its traffic rolls into the next report");
                false
            }
            Outcome::NotDelivered(reason) => {
                self.last_verdict = format!("report {report_id} not delivered");
                tracing::warn!(report_id, reason = %reason, "report not delivered; its traffic rolls into the next report");
                false
            }
        };
        if advance {
            self.baseline = Baseline::new(sample.boot_id.as_deref(), &sample.counters);
            if let Err(e) = self.state.save_baseline(&self.baseline) {
                tracing::warn!(error = %e, "cannot persist the counter baseline");
            }
        }
    }
}

/// Loads and checks the config again; an invalid one is refused and the old one stays.
fn reload(path: &Path) -> Option<Box<Config>> {
    tracing::info!(path = %path.display(), "SIGHUP: reloading the configuration");
    // Everything Agent::start can trip over is checked here, before the old agent stops.
    match Config::load(path).map_err(|e| e.to_string()).and_then(|c| {
        validate(&c).map_err(|e| e.to_string())?;
        State::open(&c.state.dir).map_err(|e| e.to_string())?;
        Ok(c)
    }) {
        Ok(c) => Some(Box::new(c)),
        Err(e) => {
            tracing::error!(error = %e, "new configuration refused; the old one stays in force");
            None
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Jitter seed: time and pid, so agents that boot together do not retry in step.
fn seed() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    nanos ^ (u64::from(std::process::id()) << 32)
}
