//! The run loop: waits for each slot (schedule), handles signals (TERM/INT stop, HUP reload),
//! speaks systemd notify and the watchdog, and runs one report cycle per slot (`cycle`).
//! Never parses /proc or MQTT itself.

mod cycle;
pub mod notify;
pub mod schedule;
mod verdicts;

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::config::{Config, Problem};
use crate::state::State;
use crate::state::epoch_ms;
use cycle::Agent;
use notify::Notifier;

/// How long a SIGTERM lets an in-flight publish run before we disconnect...
const STOP_GRACE: Duration = Duration::from_secs(4);
/// ...and how long the DISCONNECT may take: together within systemd's and users' 5 s.
const DISCONNECT_GRACE: Duration = Duration::from_secs(1);
/// Consecutive failed cycles (sample or state write) after which the watchdog goes quiet.
const UNHEALTHY_AFTER: u32 = 3;
/// What a cycle may take beyond sampling and its publish wait (state writes, encoding,
/// late verdicts) before it counts as stuck and the watchdog goes quiet.
const CYCLE_SLACK: Duration = Duration::from_secs(30);

/// The longest a healthy cycle runs: a sample (bounded by its timeout), a publish (bounded
/// by the verdict wait) and `CYCLE_SLACK`.
fn cycle_bound(sample_timeout: Duration, verdict_wait: Duration) -> Duration {
    sample_timeout + verdict_wait + CYCLE_SLACK
}

/// WATCHDOG=1 is sent while the loop is healthy (fewer than `UNHEALTHY_AFTER` failed cycles
/// in a row) and the running cycle, if any, is within its bound.
fn feeds_watchdog(healthy: bool, cycle_running: Duration, bound: Duration) -> bool {
    healthy && cycle_running <= bound
}

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
    // Checked once per config generation (a reload is checked in `reload`).
    validate(&config)?;
    // STATUS= keeps the last verdict across a reload.
    let mut last_verdict = None;
    loop {
        let mut agent = Agent::start(&config)?;
        if let Some(v) = last_verdict.take() {
            agent.last_verdict = v;
        }
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
                last_verdict = Some(std::mem::take(&mut agent.last_verdict));
                agent.publisher.shutdown(DISCONNECT_GRACE).await;
                config = *new;
                tracing::info!("configuration reloaded");
            }
        }
    }
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
    /// Waits for slots and signals until asked to stop or to switch to a new config.
    async fn serve(&mut self, path: &Path, sig: &mut Signals, notifier: &Notifier) -> Exit {
        let offset = schedule::offset_ms(&self.thing, self.interval);
        let mut conn = self.publisher.state();
        let mut conn_open = true;
        let watchdog = notifier.watchdog_interval();
        let mut ticker = tokio::time::interval(watchdog.unwrap_or(Duration::from_secs(3600)));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Why the last SIGHUP was refused: shown in STATUS= until a reload is taken, since
        // `systemctl reload` itself reports success once the signal is sent.
        let mut refused: Option<String> = None;
        notifier.status(&with_refusal(
            self.status(&conn.borrow()),
            refused.as_deref(),
        ));
        loop {
            let now = epoch_ms();
            let wait = Duration::from_millis(
                schedule::next_slot_ms(now, self.interval, offset).saturating_sub(now),
            );
            let slot = tokio::time::sleep(wait);
            tokio::pin!(slot);
            loop {
                tokio::select! {
                    _ = &mut slot => break,
                    _ = ticker.tick(), if watchdog.is_some() => {
                        if feeds_watchdog(self.failures < UNHEALTHY_AFTER, Duration::ZERO, Duration::ZERO) {
                            notifier.watchdog();
                        }
                    }
                    changed = conn.changed(), if conn_open => {
                        // A closed channel would be ready forever: stop polling it.
                        conn_open = changed.is_ok();
                        if conn_open {
                            notifier.status(&with_refusal(self.status(&conn.borrow()), refused.as_deref()));
                        }
                    }
                    _ = sig.term.recv() => return Exit::Stop,
                    _ = sig.int.recv() => return Exit::Stop,
                    _ = sig.hup.recv() => match reload(path) {
                        Ok(new) => return Exit::Reload(new),
                        Err(e) => {
                            refused = Some(e);
                            notifier.status(&with_refusal(self.status(&conn.borrow()), refused.as_deref()));
                        }
                    },
                }
            }
            // One cycle; a stop signal lets it finish for at most STOP_GRACE. The watchdog
            // is fed while it runs (it may wait verdict_timeout_secs), but not past its bound.
            {
                let healthy = self.failures < UNHEALTHY_AFTER;
                let bound = cycle_bound(cycle::SAMPLE_TIMEOUT, self.verdict_wait);
                let started = tokio::time::Instant::now();
                let mut stuck_logged = false;
                let cycle = self.cycle();
                tokio::pin!(cycle);
                let stop = loop {
                    tokio::select! {
                        _ = &mut cycle => break false,
                        _ = ticker.tick(), if watchdog.is_some() => {
                            let running = started.elapsed();
                            if feeds_watchdog(healthy, running, bound) {
                                notifier.watchdog();
                            } else if !stuck_logged && healthy {
                                stuck_logged = true;
                                tracing::error!(running_secs = running.as_secs(), bound_secs = bound.as_secs(), "cycle stuck past its bound; watchdog pings stop");
                            }
                        }
                        _ = sig.term.recv() => break true,
                        _ = sig.int.recv() => break true,
                    }
                };
                if stop {
                    if tokio::time::timeout(STOP_GRACE, &mut cycle).await.is_err() {
                        tracing::warn!("in-flight report abandoned at shutdown");
                    }
                    return Exit::Stop;
                }
            }
            notifier.status(&with_refusal(
                self.status(&conn.borrow()),
                refused.as_deref(),
            ));
        }
    }
}

/// The agent's status, with the reason the last reload was refused (cut to one short line).
fn with_refusal(status: String, refused: Option<&str>) -> String {
    match refused {
        None => status,
        Some(e) => {
            // Multi-line errors (TOML's) become one line of single spaces.
            let e = e.split_whitespace().collect::<Vec<_>>().join(" ");
            let e: String = e.chars().take(160).collect();
            format!("{status}; reload refused, old config in force: {e}")
        }
    }
}

/// Loads and checks the config again; an invalid one is refused (the error) and the old one stays.
fn reload(path: &Path) -> Result<Box<Config>, String> {
    tracing::info!(path = %path.display(), "SIGHUP: reloading the configuration");
    // Everything Agent::start can trip over is checked here, before the old agent stops.
    match Config::load(path).map_err(|e| e.to_string()).and_then(|c| {
        validate(&c).map_err(|e| e.to_string())?;
        State::open(&c.state.dir).map_err(|e| e.to_string())?;
        Ok(c)
    }) {
        Ok(c) => Ok(Box::new(c)),
        Err(e) => {
            tracing::error!(error = %e, "new configuration refused; the old one stays in force");
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watchdog_is_fed_through_a_long_verdict_wait_but_not_past_the_bound() {
        let bound = cycle_bound(Duration::from_secs(30), Duration::from_secs(60));
        assert_eq!(bound, Duration::from_secs(120));
        // Healthy, waiting the full 60 s for a verdict: still fed.
        assert!(feeds_watchdog(true, Duration::from_secs(90), bound));
        assert!(feeds_watchdog(true, bound, bound));
        // A cycle past its bound is stuck: quiet, so systemd restarts the agent.
        assert!(!feeds_watchdog(true, bound + Duration::from_secs(1), bound));
        // Three failed cycles in a row: quiet even between cycles.
        assert!(!feeds_watchdog(false, Duration::ZERO, bound));
    }
}
