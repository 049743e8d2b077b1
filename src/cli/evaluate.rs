//! `detect-agent evaluate`: replays recorded reports through security profiles and prints the
//! alarm events, as `promtool test rules` does for alert rules. Reading files and printing;
//! decoding is `report::decode`, evaluation `detect::replay`.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use detect_agent::detect::{self, Event};
use detect_agent::report::Report;
use detect_agent::report::decode::{decode, decode_value};

/// Without `--thing`: the reports may come from any device, so no local name is guessed.
const DEFAULT_THING: &str = "unknown";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Security profile (AWS JSON); repeat for several profiles.
    #[arg(long = "profile", value_name = "FILE", required = true)]
    profiles: Vec<PathBuf>,
    /// Thing name put in the events [default: unknown].
    #[arg(long, value_name = "NAME")]
    thing: Option<String>,
    /// json (one event per line) or table.
    #[arg(long, value_name = "FORMAT", default_value = "json")]
    format: String,
    /// Report files (JSON or CBOR, long or short keys, or JSON lines), replayed in order; none
    /// or `-` reads JSON lines from stdin.
    #[arg(value_name = "REPORT")]
    reports: Vec<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let table = match args.format.as_str() {
        "json" => false,
        "table" => true,
        other => bail!("--format: unknown format {other:?}: valid values are json, table"),
    };
    let loaded = detect::profile::load_all(&args.profiles)?;
    for w in &loaded.warnings {
        eprintln!("detect-agent: warning: {w}");
    }
    let reports = read_reports(&args.reports)?;
    let thing = args.thing.unwrap_or_else(|| DEFAULT_THING.to_string());
    let mut out = std::io::stdout().lock();
    if table {
        writeln!(
            out,
            "{:<15} {:<24} {:<24} {:<18} {:<32} VALUE",
            "TIME (ms)", "PROFILE", "BEHAVIOR", "EVENT", "VIOLATION ID"
        )?;
    }
    for event in detect::replay(&thing, loaded.profiles, &reports) {
        if table {
            writeln!(out, "{}", table_row(&event))?;
        } else {
            writeln!(out, "{}", serde_json::to_string(&event)?)?;
        }
    }
    out.flush().context("writing to stdout")?;
    Ok(ExitCode::SUCCESS)
}

fn table_row(e: &Event) -> String {
    let value = match &e.metric_value {
        Some(v) => serde_json::to_string(v).unwrap_or_default(),
        None => "-".to_string(),
    };
    let suppressed = if e.suppressed() { " (suppressed)" } else { "" };
    format!(
        "{:<15} {:<24} {:<24} {:<18} {:<32} {value}{suppressed}",
        e.violation_event_time,
        e.security_profile_name,
        e.behavior_name(),
        e.violation_event_type.name(),
        e.violation_id
    )
}

/// Every report of every source, in order.
fn read_reports(paths: &[PathBuf]) -> anyhow::Result<Vec<Report>> {
    let stdin = [PathBuf::from("-")];
    let sources = if paths.is_empty() { &stdin[..] } else { paths };
    let mut out = Vec::new();
    for path in sources {
        let (name, bytes) = if path.as_os_str() == "-" {
            let mut buf = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buf)
                .context("reading reports from stdin")?;
            ("stdin".to_string(), buf)
        } else {
            let bytes = std::fs::read(path)
                .with_context(|| format!("reading report file {}", path.display()))?;
            (path.display().to_string(), bytes)
        };
        parse_source(&name, &bytes, &mut out)?;
    }
    Ok(out)
}

/// One CBOR report, or one or more JSON documents (a report file or JSON lines).
fn parse_source(name: &str, bytes: &[u8], out: &mut Vec<Report>) -> anyhow::Result<()> {
    if matches!(bytes.first(), Some(0xa0..=0xbf)) {
        let d = decode(bytes).with_context(|| format!("{name}: report 1"))?;
        out.push(d.report);
        return Ok(());
    }
    let stream = serde_json::Deserializer::from_slice(bytes).into_iter::<serde_json::Value>();
    let mut n = 0;
    for item in stream {
        n += 1;
        let value = item.map_err(|e| {
            anyhow::anyhow!("{name}: report {n} (line {}): not JSON: {e}", e.line())
        })?;
        let d = decode_value(&value).with_context(|| format!("{name}: report {n}"))?;
        out.push(d.report);
    }
    if n == 0 && name != "stdin" {
        bail!("{name}: no report in the file");
    }
    Ok(())
}
