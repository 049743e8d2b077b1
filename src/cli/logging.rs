//! Logging setup: tracing to stderr (journald adds the time), text or JSON, level from the
//! config or RUST_LOG (RUST_LOG wins). No regex-based filter: Targets keeps the binary small.

use std::io::IsTerminal;

use detect_agent::config::{LogFormat, parse_log_level};

pub fn init(log: &detect_agent::config::Log, quiet: bool) -> anyhow::Result<()> {
    let level = match std::env::var("RUST_LOG") {
        Ok(v) if !v.trim().is_empty() => v,
        _ if quiet => "warn".to_string(),
        _ => log.level.clone(),
    };
    let filter = parse_log_level(&level).map_err(|e| anyhow::anyhow!("log level: {e}"))?;
    use tracing_subscriber::prelude::*;
    let registry = tracing_subscriber::registry().with(filter);
    let result = match log.format {
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_ansi(std::io::stderr().is_terminal())
                    .without_time()
                    .with_target(false),
            )
            .try_init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(std::io::stderr)
                    .without_time(),
            )
            .try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("cannot set up logging: {e}"))
}
