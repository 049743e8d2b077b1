//! Command-line surface: `dump`, `run`, `check-config`, `evaluate`, and logging setup.
//! Thin wiring over the library; errors become one line on stderr and a non-zero exit.

mod check;
mod credential;
mod dump;
mod evaluate;
mod logging;
mod table;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use detect_agent::config::{self, Config};

#[derive(Debug, Parser)]
#[command(
    name = "detect-agent",
    // "0.1.0 (armv7-unknown-linux-gnueabihf, commit 1a2b3c4)": values from build.rs.
    version = concat!(
        env!("CARGO_PKG_VERSION"),
        " (",
        env!("DETECT_AGENT_TARGET"),
        ", commit ",
        env!("DETECT_AGENT_COMMIT"),
        ")"
    ),
    about = "Watches this device's network behaviour and reports it as AWS IoT Device Defender metrics"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print one sample: a table for people, or the exact report payload the daemon would publish.
    Dump(dump::Args),
    /// Run the agent: sample, report over MQTT/TLS, read verdicts, forever.
    Run {
        /// Config file (TOML).
        #[arg(long, value_name = "FILE", default_value = config::DEFAULT_PATH)]
        config: PathBuf,
    },
    /// Check a config file: keys, files, key/certificate match, certificate dates, thing name, interval.
    CheckConfig {
        /// Config file (TOML).
        #[arg(long, value_name = "FILE", default_value = config::DEFAULT_PATH)]
        config: PathBuf,
    },
    /// Replay recorded reports through security profiles and print the alarm events.
    Evaluate(evaluate::Args),
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help, --version: clap prints them to stdout.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            return ExitCode::from(2);
        }
        Err(e) => {
            // One line, like every other error: clap's first line without its usage block.
            let rendered = e.render().to_string();
            let mut lines = rendered.lines().filter(|l| !l.trim().is_empty());
            let first = lines.next().unwrap_or("bad arguments");
            let mut first = first.strip_prefix("error: ").unwrap_or(first).to_string();
            // "the following required arguments were not provided:" names them on the next line.
            if first.ends_with(':')
                && let Some(next) = lines.next()
            {
                first = format!("{first} {}", next.trim());
            }
            eprintln!("detect-agent: error: {first} (see --help)");
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Command::Dump(args) => dump::run(args),
        Command::Run { config } => run_daemon(&config),
        Command::CheckConfig { config } => check::run(&config),
        Command::Evaluate(args) => evaluate::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("detect-agent: error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

fn run_daemon(path: &std::path::Path) -> anyhow::Result<ExitCode> {
    let config = Config::load(path)?;
    logging::init(&config.log, false)?;
    detect_agent::daemon::run(path.to_path_buf(), config)?;
    Ok(ExitCode::SUCCESS)
}

/// The error and its causes on one line, leaving out a cause whose text the line already
/// carries (our error types name their source in their own message).
fn one_line(e: &anyhow::Error) -> String {
    let mut line = e.to_string();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
    }
    line
}
