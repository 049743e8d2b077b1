//! The command line: `run`, `replay`, `check-config`, `violations`, `verify`, `models`,
//! `things add|list`, each with `--config FILE` (issue #9 item 7, #19). Wiring and output only.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};
use detect::profile;

use crate::config::{self, Config};
use crate::config_store::StoreKind;
use crate::judge::Judge;
use crate::judge::cloud::CloudSetup;
use crate::service::Service;
use crate::store::{Nats, Outbox, Sqlite, Store};
use crate::targets::Attachments;
use crate::window::Dimensions;

#[derive(Parser)]
#[command(
    name = "detect-fleet",
    version,
    about = "A self-hosted Device Defender Detect backend"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Receive reports, answer them, evaluate profiles, alert.
    Run {
        #[arg(long, default_value = config::DEFAULT_PATH)]
        config: PathBuf,
    },
    /// Evaluate recorded reports (JSON lines {"thing": NAME, "report": {…}}, in time order) as
    /// `run` would, in memory; print the published events as JSON lines.
    Replay {
        #[arg(long, default_value = config::DEFAULT_PATH)]
        config: PathBuf,
        /// Violation ids are drawn from this seed: the same input gives the same output.
        #[arg(long, default_value_t = crate::replay::DEFAULT_SEED)]
        seed: u64,
        /// Report a bad line on stderr and go on (the exit status is still a failure).
        #[arg(long)]
        keep_going: bool,
        #[arg(value_name = "FILE", required = true)]
        files: Vec<PathBuf>,
    },
    /// Check the config file and the profiles; print every problem.
    CheckConfig {
        #[arg(long, default_value = config::DEFAULT_PATH)]
        config: PathBuf,
    },
    /// List violations (all kept history, or only the active ones).
    Violations {
        #[arg(long, default_value = config::DEFAULT_PATH)]
        config: PathBuf,
        #[arg(long)]
        active: bool,
        #[arg(long)]
        thing: Option<String>,
        #[arg(long)]
        profile: Option<String>,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Set a violation's verification state (detect-rules §6.4).
    Verify {
        #[arg(long, default_value = config::DEFAULT_PATH)]
        config: PathBuf,
        violation_id: String,
        #[arg(long, value_enum)]
        state: Verification,
        #[arg(long)]
        description: Option<String>,
    },
    /// The status of every ML behavior's models (like GetBehaviorModelTrainingSummaries).
    Models {
        #[arg(long, default_value = config::DEFAULT_PATH)]
        config: PathBuf,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// The thing registry.
    Things {
        #[command(subcommand)]
        command: ThingsCommand,
    },
    /// Take part in cluster ownership only and print the view as JSON lines (tests, dry runs).
    #[command(hide = true)]
    ClusterMember {
        /// A NATS server URL (repeat for each node).
        #[arg(long = "server", required = true)]
        servers: Vec<String>,
        #[arg(long)]
        user: Option<String>,
        #[arg(long, requires = "user")]
        password: Option<String>,
        #[arg(long)]
        instance: String,
        #[arg(long, default_value_t = crate::cluster::DEFAULT_PARTITIONS)]
        partitions: u32,
        #[arg(long, default_value = crate::cluster::DEFAULT_BUCKET)]
        bucket: String,
        #[arg(long, default_value_t = 6000)]
        lease_ms: u64,
        /// Observe only: forward a report of THING to its owner, print the answer, exit.
        #[arg(long)]
        ask: Vec<String>,
    },
}

#[derive(Subcommand)]
enum ThingsCommand {
    /// Register a thing (again), with its groups (repeat --group).
    Add {
        #[arg(long, default_value = config::DEFAULT_PATH)]
        config: PathBuf,
        name: String,
        #[arg(long = "group")]
        groups: Vec<String>,
    },
    /// List registered and reporting things.
    List {
        #[arg(long, default_value = config::DEFAULT_PATH)]
        config: PathBuf,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Table,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
#[value(rename_all = "SCREAMING_SNAKE_CASE")]
enum Verification {
    TruePositive,
    BenignPositive,
    FalsePositive,
    Unknown,
}

impl Verification {
    fn name(self) -> &'static str {
        match self {
            Verification::TruePositive => "TRUE_POSITIVE",
            Verification::BenignPositive => "BENIGN_POSITIVE",
            Verification::FalsePositive => "FALSE_POSITIVE",
            Verification::Unknown => "UNKNOWN",
        }
    }
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // replay: a line per event on stdout; the service's info log would drown stderr.
    let quiet = matches!(cli.command, Command::Replay { .. });
    logging(if quiet {
        tracing::Level::WARN
    } else {
        tracing::Level::INFO
    });
    match dispatch(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("detect-fleet: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn logging(default: tracing::Level) {
    let level = std::env::var("RUST_LOG")
        .ok()
        .and_then(|l| l.parse::<tracing::Level>().ok())
        .unwrap_or(default);
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_max_level(level)
        .init();
}

fn load(path: &Path) -> anyhow::Result<Config> {
    Ok(Config::load(path)?)
}

/// The store `[store] kind` names: SQLite (`[fleet] database`) or the NATS cluster store.
fn open(config: &Config) -> anyhow::Result<Box<dyn Store + Send>> {
    if config.store.kind == StoreKind::Nats {
        let opts = config.store.nats_options()?;
        return Ok(Box::new(Nats::open(&opts)?));
    }
    let db = &config.fleet.database;
    if let Some(dir) = db.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("database directory {}", dir.display()))?;
    }
    Ok(Box::new(Sqlite::open(db)?))
}

enum RunStore {
    One(Box<dyn Store + Send>),
    Cluster(Box<Nats>),
}

/// `run`'s store, and in cluster mode the side runtime of the cluster tasks; each instance's
/// MQTT client ids get its instance name (`{client_id}-{instance}`).
fn open_run(config: &mut Config) -> anyhow::Result<(RunStore, Option<tokio::runtime::Runtime>)> {
    if !config.cluster.enabled {
        return Ok((RunStore::One(open(config)?), None));
    }
    let instance = config.cluster.instance_name();
    config.broker.client_id = format!("{}-{instance}", config.broker.client_id);
    let nats = Nats::open(&config.store.nats_options()?)?;
    let side = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("detect-fleet-cluster")
        .enable_all()
        .build()
        .context("cluster runtime")?;
    Ok((RunStore::Cluster(Box::new(nats)), Some(side)))
}

/// The profiles of `[fleet] profiles_dir` (*.json, sorted) through the agent's loader; every
/// attached profile must be among them. Warnings (cloud-side metrics, ...) are logged once.
pub(crate) fn profiles(config: &Config) -> anyhow::Result<Vec<profile::Profile>> {
    let dir = &config.fleet.profiles_dir;
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("[fleet] profiles_dir {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    let loaded = profile::load_all(&paths).map_err(|e| anyhow::anyhow!("profiles: {e}"))?;
    for w in &loaded.warnings {
        // The agent's "not evaluated on the device" is said in the fleet's terms below.
        let device_only = w.message.starts_with("not evaluated on the device");
        if !w.message.contains("AWS attaches at most") && !device_only {
            tracing::warn!(profile = %w.path.display(), behavior = ?w.behavior, field = %w.field, "{}", w.message);
        }
    }
    let feeds = crate::coverage::Feeds::new(config);
    for p in &loaded.profiles {
        for b in &p.behaviors {
            if let Some(why) = crate::coverage::not_evaluated(b, &feeds) {
                tracing::warn!(profile = %p.name, behavior = %b.name, "not evaluated by detect-fleet: {why}");
            }
            if let Some(gap) = crate::coverage::partly(b, &feeds) {
                tracing::warn!(profile = %p.name, behavior = %b.name, "{gap}");
            }
        }
    }
    let names: BTreeSet<&str> = loaded.profiles.iter().map(|p| p.name.as_str()).collect();
    for a in &config.attach {
        if !names.contains(a.profile.as_str()) {
            bail!(
                "[[attach]] profile {:?}: no such securityProfileName in {} (found: {})",
                a.profile,
                dir.display(),
                names.iter().copied().collect::<Vec<_>>().join(", ")
            );
        }
    }
    Ok(loaded.profiles)
}

fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::ClusterMember {
            servers,
            user,
            password,
            instance,
            partitions,
            bucket,
            lease_ms,
            ask,
        } => {
            let mut settings = crate::cluster::Settings::new(&instance);
            settings.partitions = partitions;
            settings.bucket = bucket;
            settings.ttl = std::time::Duration::from_millis(lease_ms);
            let login = user.map(|u| (u, password.unwrap_or_default()));
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("tokio runtime")?;
            runtime.block_on(crate::cluster::probe::run(servers, login, settings, ask))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Run { config } => {
            let mut config = load(&config)?;
            let profiles = profiles(&config)?;
            let (store, side) = open_run(&mut config)?;
            let alert_store = open(&config)?;
            let webhook_store = match &config.alerts.webhook_url {
                Some(_) => Some(open(&config)? as Box<dyn Outbox + Send>),
                None => None,
            };
            // The listener's own store handles (requests, gauges): they never wait on the
            // service's, nor requests on the gauges' periodic read of every thing.
            crate::http::start(&config, open(&config)?, open(&config)?)?;
            let behaviors = profiles
                .iter()
                .flat_map(|p| p.behaviors.iter().map(|b| (p.name.clone(), b.name.clone())));
            let webhook = config.alerts.webhook_url.is_some();
            crate::metrics::global().declare(behaviors, webhook);
            let attachments = Attachments::new(&config.attach);
            if let Some(secs) = config.fleet.duration_override_secs {
                tracing::warn!(
                    duration_override_secs = secs,
                    "every durationSeconds is evaluated as this many seconds (tests and demos only)"
                );
            }
            let mut judge = Judge::new(
                profiles,
                attachments,
                config.fleet.min_interval_secs,
                config.fleet.duration_override_secs,
                link::random::ids(detect::engine::seeded_ids),
            );
            if config.broker.source != crate::config::BrokerSource::None {
                judge.set_cloud(CloudSetup::new(
                    Dimensions::new(&config.dimension),
                    config.fleet.duration_override_secs,
                    &config.broker.client_id,
                ));
            }
            let (store, cluster) = match (store, side.as_ref()) {
                (RunStore::Cluster(mut nats), Some(side)) => {
                    let settings = config.cluster.settings(config.store.replicas);
                    let link = crate::service::cluster::Link::start(
                        side,
                        nats.client(),
                        settings,
                        config.cluster.shared_subscription,
                    )?;
                    let owns = link.ownership.clone();
                    nats.set_fence(std::sync::Arc::new(move |t: &str| owns.owns(t)));
                    let owns = link.ownership.clone();
                    let instance = config.cluster.instance_name();
                    judge.set_scope(&instance, Box::new(move |t: &str| owns.owns(t)));
                    (nats as Box<dyn Store + Send>, Some(link))
                }
                (RunStore::Cluster(nats), None) => (nats as Box<dyn Store + Send>, None),
                (RunStore::One(store), _) => (store, None),
            };
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("tokio runtime")?;
            runtime.block_on(Service::run(
                config,
                judge,
                store,
                alert_store,
                webhook_store,
                cluster,
            ))?;
            // Outside the service's runtime: a runtime must not be dropped inside another.
            drop(side);
            Ok(ExitCode::SUCCESS)
        }
        Command::Replay {
            config,
            seed,
            keep_going,
            files,
        } => {
            let config = load(&config)?;
            let profiles = profiles(&config)?;
            let judge = Judge::new(
                profiles,
                Attachments::new(&config.attach),
                config.fleet.min_interval_secs,
                config.fleet.duration_override_secs,
                detect::seeded_ids(seed),
            );
            let mut replay = crate::replay::Replay::new(judge, config.fleet.history_days);
            replay.files(&files, keep_going, &mut std::io::stdout().lock())?;
            eprintln!(
                "detect-fleet: {}",
                crate::replay::describe(&replay.summary, &files)
            );
            Ok(if replay.summary.bad_lines > 0 {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::CheckConfig { config: path } => {
            let config = load(&path)?;
            let profiles = profiles(&config)?;
            if config.store.kind == StoreKind::Nats {
                // The cluster must answer, and its buckets exist (made now if not).
                open(&config)
                    .with_context(|| format!("{}: [store] kind = \"nats\"", path.display()))?;
            }
            println!(
                "{}: ok ({} profiles, {} attachments)",
                path.display(),
                profiles.len(),
                config.attach.len()
            );
            let feeds = crate::coverage::Feeds::new(&config);
            for line in profiles
                .iter()
                .flat_map(|p| crate::coverage::describe(p, &feeds))
            {
                println!("{line}");
            }
            println!(
                "note: [broker] source = {:?} feeds the cloud-side metrics{}",
                config.broker.source.name(),
                match config.broker.source {
                    crate::config::BrokerSource::None => " of no behavior",
                    crate::config::BrokerSource::Nats =>
                        " from nats-server's system account ([nats]): advisories and CONNZ, no message sizes",
                    crate::config::BrokerSource::MosquittoPlugin =>
                        " from the plugin's batches on $detect/broker/events",
                }
            );
            if config.store.kind == StoreKind::Nats {
                println!(
                    "note: [store] kind = \"nats\": state in NATS JetStream at {} (reachable, buckets ready)",
                    config.store.servers.join(", ")
                );
            }
            if config.cluster.enabled {
                let c = &config.cluster;
                println!(
                    "note: [cluster] enabled: instance {:?}, {} partitions, {} s lease, {}",
                    c.instance_name(),
                    c.partitions,
                    c.lease_secs,
                    if c.intake == crate::config_cluster::Intake::Nats {
                        "reports from NATS subjects (JetStream stream detect-fleet-reports, one consumer shared by every instance), answers as NATS messages, alerts over [broker]"
                    } else if c.shared_subscription {
                        "one shared subscription, reports forwarded to their owner"
                    } else {
                        "every instance receives every report and judges its own things"
                    }
                );
            }
            for line in config.http.describe() {
                println!("{line}");
            }
            if let Some(secs) = config.fleet.duration_override_secs {
                println!(
                    "note: [fleet] duration_override_secs = {secs}: every durationSeconds is evaluated as {secs} s (tests and demos only)"
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Violations {
            config,
            active,
            thing,
            profile,
            format,
        } => {
            let mut store = open(&load(&config)?)?;
            let query = crate::api::violations::Query {
                active_only: active,
                thing,
                profile,
                ..Default::default()
            };
            let list = crate::api::violations::list(store.as_mut(), &query)?;
            match format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&list)?),
                Format::Table => print!("{}", crate::cli_table::violations(&list)),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify {
            config,
            violation_id,
            state,
            description,
        } => {
            crate::api::violations::check_verification(state.name(), description.as_deref())
                .map_err(|e| anyhow::anyhow!("{e} (detect-rules §6.4)"))?;
            let mut store = open(&load(&config)?)?;
            if !store.verify(&violation_id, state.name(), description.as_deref())? {
                bail!("violation {violation_id:?}: not found");
            }
            println!("{violation_id}: {}", state.name());
            Ok(ExitCode::SUCCESS)
        }
        Command::Models { config, format } => {
            let config = load(&config)?;
            let profiles = profiles(&config)?;
            let now_ms = crate::api::Context::default().now_ms();
            let list = crate::api::profiles::models(open(&config)?.as_mut(), &profiles, now_ms)?;
            match format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&list)?),
                Format::Table => print!("{}", crate::cli_table::models(&list)),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Things { command } => match command {
            ThingsCommand::Add {
                config,
                name,
                groups,
            } => {
                if !protocol::identity::is_registry_name(&name) {
                    bail!("thing name {name:?}: 1–128 characters of [a-zA-Z0-9:_-] (CreateThing)");
                }
                if let Some(g) = groups
                    .iter()
                    .find(|g| !protocol::identity::is_registry_name(g))
                {
                    bail!("--group {g:?}: 1–128 characters of [a-zA-Z0-9:_-]");
                }
                let mut store = open(&load(&config)?)?;
                store.register(&name, &groups.into_iter().collect())?;
                println!("{name}: registered");
                Ok(ExitCode::SUCCESS)
            }
            ThingsCommand::List { config } => {
                let mut store = open(&load(&config)?)?;
                let list = crate::api::things::list(store.as_mut())?;
                print!("{}", crate::cli_table::things(&list));
                Ok(ExitCode::SUCCESS)
            }
        },
    }
}
