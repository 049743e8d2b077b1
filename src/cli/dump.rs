//! `detect-agent dump`: one sample, as a table for people or as the exact payload bytes the
//! daemon would publish. Needs no config file; `--config` reads the same file as `run`.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use detect_agent::collect::custom::{self, CustomState, MetricSpec, Reading};
use detect_agent::collect::{self, Sample};
use detect_agent::config::{self, Config};
use detect_agent::detect;
use detect_agent::report::{self, Baseline, Format, NetworkStats};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Config file (TOML); without it, /etc/detect-agent/config.toml is read when it exists,
    /// else built-in defaults are used.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// table, json, json-short, cbor or cbor-short [default: table on a terminal, else json]
    #[arg(long, value_name = "FORMAT")]
    format: Option<String>,
    /// Write the output to FILE instead of stdout.
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Take two samples SECONDS apart so that network_stats deltas are shown.
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=3600))]
    delta: Option<u64>,
    /// Read sockets from /proc/net even when netlink sock_diag works.
    #[arg(long)]
    procnet: bool,
    /// Security profile (AWS JSON) to judge this one sample against; repeatable. Adds a
    /// DETECT section to the table (implies --format table).
    #[arg(long = "profile", value_name = "FILE")]
    profiles: Vec<PathBuf>,
}

enum Output {
    Table,
    Payload(Format),
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let output = match args.format.as_deref() {
        Some("table") => Output::Table,
        Some(f) if !args.profiles.is_empty() => {
            anyhow::bail!(
                "--profile adds a section to the table: it needs --format table, not {f:?}"
            )
        }
        None if !args.profiles.is_empty() => Output::Table,
        Some(f) => Output::Payload(
            f.parse::<Format>()
                .map_err(|e| anyhow::anyhow!("--format: {e} (or \"table\")"))?,
        ),
        None if args.output.is_none() && std::io::stdout().is_terminal() => Output::Table,
        None => Output::Payload(Format::Json),
    };
    let config = load_config(args.config.as_deref())?;
    super::logging::init(&config.log, true)?;
    let profiles = if args.profiles.is_empty() {
        Vec::new()
    } else {
        let loaded = detect::profile::load_all(&args.profiles)?;
        for w in &loaded.warnings {
            eprintln!("detect-agent: warning: {w}");
        }
        loaded.profiles
    };
    let thing = match &config.thing_name {
        Some(t) => t.clone(),
        None => hostname(),
    };
    match detect_agent::identity::check(&thing) {
        Err(e) => anyhow::bail!("thing name {thing:?}: {e}"),
        Ok(Some(warning)) => tracing::warn!("thing name: {warning}"),
        Ok(None) => {}
    }
    let mut opts = config.collect_options();
    opts.force_procnet |= args.procnet;
    let specs = config
        .custom_metric_specs()
        .map_err(|errors| anyhow::anyhow!("config: {}", errors.join("; ")))?;

    let (sample, stats, readings) = take_sample(&opts, &specs, args.delta)?;
    let report_id = detect_agent::state::epoch_ms().max(1);
    let bytes = match output {
        Output::Table => {
            let owners = collect::processes::owners(&opts.root);
            let mut text = super::table::render(&super::table::View {
                thing: &thing,
                report_id,
                sample: &sample,
                owners: &owners,
                stats: stats.as_ref(),
                delta_secs: args.delta,
                custom: &readings,
            });
            if !profiles.is_empty() {
                // The full sample, before any size cut, as the daemon evaluates it (custom
                // metrics included, so custom behaviors are judged too).
                let custom = custom::values(&readings);
                let report = report::build_with_custom(&sample.sockets, stats, custom, report_id);
                let checks = detect::check(&profiles, &report);
                text.push_str(&super::table::detect_section(&checks));
                text.push_str(&models_section(&thing, &profiles, &config.state.dir));
            }
            text.into_bytes()
        }
        Output::Payload(format) => {
            for r in &readings {
                if let Err(e) = &r.value {
                    tracing::warn!(metric = %r.name, error = %e, "custom metric left out of the report");
                }
            }
            let custom = custom::values(&readings);
            let report = report::build_with_custom(&sample.sockets, stats, custom, report_id);
            let mut bytes = report::encode(&report, format)
                .with_context(|| format!("encoding the report as {format}"))?
                .bytes;
            // A shell prompt must not follow JSON on the same line; pipes and files get the
            // exact payload bytes.
            if !format.is_cbor() && args.output.is_none() && std::io::stdout().is_terminal() {
                bytes.push(b'\n');
            }
            bytes
        }
    };
    write_out(args.output.as_deref(), &bytes)?;
    Ok(ExitCode::SUCCESS)
}

/// The ML behaviors' models as the daemon last saved them in the state directory (hourly and
/// at stop); a damaged file or model is logged naming the file and shown as new.
fn models_section(thing: &str, profiles: &[detect::Profile], dir: &Path) -> String {
    let state = detect::EngineState {
        models: detect_agent::daemon::models::load(dir),
        ..Default::default()
    };
    let ids = detect::seeded_ids(0);
    let (engine, _) = detect::Engine::restore(thing, profiles.to_vec(), ids, state, 0);
    super::table::models_section(&engine.models(), dir)
}

fn load_config(path: Option<&Path>) -> anyhow::Result<Config> {
    match path {
        Some(p) => Ok(Config::load(p)?),
        None => {
            let default = Path::new(config::DEFAULT_PATH);
            if default.exists() {
                Ok(Config::load(default)?)
            } else {
                Ok(Config::default())
            }
        }
    }
}

/// One sample, or two `delta` seconds apart with the network_stats delta between them (and
/// `cpu_usage` over the same interval; a single sample measures it over 250 ms).
fn take_sample(
    opts: &collect::CollectOptions,
    specs: &[MetricSpec],
    delta: Option<u64>,
) -> anyhow::Result<(Sample, Option<NetworkStats>, Vec<Reading>)> {
    let mut state = CustomState::default();
    let (first, readings) = sample_once(opts, specs, &mut state, "sampling the host")?;
    let Some(secs) = delta else {
        return Ok((first, None, readings));
    };
    let mut baseline = Baseline::new(first.boot_id.as_deref(), &first.counters);
    std::thread::sleep(Duration::from_secs(secs));
    let (second, readings) =
        sample_once(opts, specs, &mut state, "sampling the host (second sample)")?;
    let (stats, _) = baseline.step(second.boot_id.as_deref(), &second.counters);
    Ok((second, stats, readings))
}

/// One strict sample (unreadable counters fail it) with the custom metrics read beside it.
fn sample_once(
    opts: &collect::CollectOptions,
    specs: &[MetricSpec],
    state: &mut CustomState,
    what: &'static str,
) -> anyhow::Result<(Sample, Vec<Reading>)> {
    let never = std::sync::atomic::AtomicBool::new(false);
    let (sample, readings) = collect::sample_with_custom(opts, specs, state, &never);
    match sample.context(what)? {
        (sample, None) => Ok((sample, readings)),
        (_, Some(e)) => Err(anyhow::Error::new(e).context(what)),
    }
}

fn write_out(path: Option<&Path>, bytes: &[u8]) -> anyhow::Result<()> {
    match path {
        Some(p) => std::fs::write(p, bytes).with_context(|| format!("writing {}", p.display())),
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(bytes)
                .and_then(|_| out.flush())
                .context("writing to stdout")
        }
    }
}

/// The kernel's hostname; "localhost" if it cannot be read.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}
