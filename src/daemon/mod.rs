//! The run loop: waits for each slot (schedule), handles signals (TERM/INT stop, HUP reload),
//! speaks systemd notify and the watchdog, and runs one report cycle per slot (`cycle`).
//! Never parses /proc or MQTT itself.

mod alarms;
mod broker;
mod cycle;
pub mod models;
pub mod notify;
pub mod random;
pub mod schedule;
mod settled;
mod trim;
mod verdicts;

#[cfg(test)]
mod alarm_tests;
#[cfg(test)]
mod fake_broker;
#[cfg(test)]
mod ml_replay_tests;
#[cfg(test)]
mod rig;
#[cfg(test)]
mod settle_tests;

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::config::{Config, Problem};
use crate::detect::Profile;
use crate::publish::ConnState;
use crate::state::State;
use crate::state::epoch_ms;
/// The wall clock (epoch ms) of report ids and model saves; the in-process tests' rig can
/// simulate it (`rig::wall_ms`), so a simulated day gives a day of report ids.
#[cfg(not(test))]
use crate::state::epoch_ms as wall_ms;
use cycle::Agent;
use notify::Notifier;
#[cfg(test)]
use rig::wall_ms;

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
    #[error("profiles: {0}")]
    Profiles(#[from] crate::detect::ProfileError),
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
    Reload(Box<Config>, Vec<Profile>),
}

async fn run_async(path: PathBuf, mut config: Config) -> Result<(), DaemonError> {
    let notifier = Notifier::from_env();
    let mut signals = Signals {
        term: signal(SignalKind::terminate()).map_err(DaemonError::Signals)?,
        int: signal(SignalKind::interrupt()).map_err(DaemonError::Signals)?,
        hup: signal(SignalKind::hangup()).map_err(DaemonError::Signals)?,
    };
    // Checked once per config generation (a reload is checked in `reload`).
    let mut profiles = validate(&config)?;
    // STATUS= keeps the last verdict across a reload; the settle state is carried too.
    let mut last_verdict = None;
    let mut carried = None;
    loop {
        let mut agent = Agent::start(&config, profiles, carried.take())?;
        if let Some(v) = last_verdict.take() {
            agent.last_verdict = v;
        }
        notifier.ready();
        let exit = agent.serve(&path, &mut signals, &notifier).await;
        agent.save_state();
        match exit {
            Exit::Stop => {
                notifier.stopping();
                agent.publisher.shutdown(DISCONNECT_GRACE).await;
                tracing::info!("stopped");
                return Ok(());
            }
            Exit::Reload(new, loaded) => {
                notifier.reloading();
                last_verdict = Some(std::mem::take(&mut agent.last_verdict));
                carried = Some(agent.carry());
                agent.publisher.shutdown(DISCONNECT_GRACE).await;
                config = *new;
                profiles = loaded;
                tracing::info!("configuration reloaded");
            }
        }
    }
}

/// Checks a loaded config for what `run` needs and loads its security profiles (every
/// problem of every profile on one line); warnings of both are logged.
fn validate(config: &Config) -> Result<Vec<Profile>, DaemonError> {
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
    if !errors.is_empty() {
        return Err(DaemonError::Config(errors.join("; ")));
    }
    let loaded = crate::detect::profile::load_all(&config.detect.profiles)?;
    for w in &loaded.warnings {
        tracing::warn!(warning = %w, "profile behavior not evaluated on the device");
    }
    Ok(loaded.profiles)
}

impl Agent {
    /// What runs beside a cycle or an alarm delivery: watchdog pings while the loop is
    /// healthy and the work within its bound, and the switch that kills custom commands.
    fn meanwhile<'a>(
        &self,
        ticker: &'a mut tokio::time::Interval,
        watchdog: bool,
        notifier: &'a Notifier,
    ) -> Meanwhile<'a> {
        Meanwhile {
            ticker,
            feed: watchdog && self.failures < UNHEALTHY_AFTER,
            bound: cycle_bound(self.sample_timeout, self.verdict_wait),
            notifier,
            stop_commands: std::sync::Arc::clone(&self.stop_commands),
        }
    }

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
        // Start-up code is paged out after the first cycle on each new connection (trim.rs).
        let mut trim_due = true;
        notifier.status(&with_refusal(
            self.status(&conn.borrow()),
            refused.as_deref(),
        ));
        loop {
            let now = epoch_ms();
            let wait = Duration::from_millis(
                schedule::next_slot_ms(now, self.interval, offset).saturating_sub(now),
            );
            let slot_at = tokio::time::Instant::now() + wait;
            let slot = tokio::time::sleep_until(slot_at);
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
                        // Alarm events that waited for the broker go out as soon as it is
                        // back, not at the next slot (which may be minutes away).
                        let ready = matches!(*conn.borrow(), ConnState::Ready { .. });
                        trim_due |= !ready;
                        if ready && self.alarms_queued() > 0 {
                            let meanwhile = self.meanwhile(&mut ticker, watchdog.is_some(), notifier);
                            if finish_unless_stopped(self.deliver_alarms(), sig, meanwhile, "alarm delivery").await {
                                return Exit::Stop;
                            }
                            notifier.status(&with_refusal(self.status(&conn.borrow()), refused.as_deref()));
                        }
                    }
                    _ = sig.term.recv() => return Exit::Stop,
                    _ = sig.int.recv() => return Exit::Stop,
                    _ = sig.hup.recv() => match reload(path) {
                        Ok((new, profiles)) => return Exit::Reload(new, profiles),
                        Err(e) => {
                            refused = Some(e);
                            notifier.status(&with_refusal(self.status(&conn.borrow()), refused.as_deref()));
                        }
                    },
                }
            }
            // One cycle; a stop signal lets it finish for at most STOP_GRACE. The watchdog
            // is fed while it runs (a custom metric command may take up to 60 s, a verdict
            // `verdict_timeout_secs`), but not past the cycle's bound.
            let meanwhile = self.meanwhile(&mut ticker, watchdog.is_some(), notifier);
            if finish_unless_stopped(
                self.cycle(slot_at + self.interval),
                sig,
                meanwhile,
                "in-flight report",
            )
            .await
            {
                return Exit::Stop;
            }
            if trim_due && matches!(*conn.borrow(), ConnState::Ready { .. }) {
                trim::give_back();
                trim_due = false;
            }
            notifier.status(&with_refusal(
                self.status(&conn.borrow()),
                refused.as_deref(),
            ));
        }
    }
}

/// What goes on while a cycle or an alarm delivery runs: the watchdog is fed (when `feed`),
/// and a stop kills the running custom metric commands at once.
struct Meanwhile<'a> {
    ticker: &'a mut tokio::time::Interval,
    feed: bool,
    /// Past this much running time the work is stuck: the watchdog goes quiet (logged once).
    bound: Duration,
    notifier: &'a Notifier,
    stop_commands: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// Runs `work` to its end; a stop signal meanwhile lets it finish for at most STOP_GRACE.
/// True when a stop was asked for.
async fn finish_unless_stopped(
    work: impl std::future::Future<Output = ()>,
    sig: &mut Signals,
    meanwhile: Meanwhile<'_>,
    what: &str,
) -> bool {
    tokio::pin!(work);
    let started = tokio::time::Instant::now();
    let mut stuck_logged = false;
    let stop = loop {
        tokio::select! {
            _ = &mut work => break false,
            _ = meanwhile.ticker.tick(), if meanwhile.feed => {
                let running = started.elapsed();
                if feeds_watchdog(true, running, meanwhile.bound) {
                    meanwhile.notifier.watchdog();
                } else if !stuck_logged {
                    stuck_logged = true;
                    tracing::error!(what, running_secs = running.as_secs(), bound_secs = meanwhile.bound.as_secs(), "stuck past its bound; watchdog pings stop");
                }
            }
            _ = sig.term.recv() => break true,
            _ = sig.int.recv() => break true,
        }
    };
    if stop {
        // A running custom metric command is killed now, not at its timeout.
        meanwhile
            .stop_commands
            .store(true, std::sync::atomic::Ordering::Relaxed);
        if tokio::time::timeout(STOP_GRACE, &mut work).await.is_err() {
            tracing::warn!(what, "abandoned at shutdown");
        }
    }
    stop
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

/// Loads and checks the config and its profiles again; an invalid one (or one invalid
/// profile) is refused and the old configuration stays.
fn reload(path: &Path) -> Result<(Box<Config>, Vec<Profile>), String> {
    tracing::info!(path = %path.display(), "SIGHUP: reloading the configuration");
    // Everything Agent::start can trip over is checked here, before the old agent stops.
    match Config::load(path).map_err(|e| e.to_string()).and_then(|c| {
        let profiles = validate(&c).map_err(|e| e.to_string())?;
        State::open(&c.state.dir).map_err(|e| e.to_string())?;
        Ok((c, profiles))
    }) {
        Ok((c, profiles)) => Ok((Box::new(c), profiles)),
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
