//! Logging set-up for the daemons: tracing to stdout, as text for people or JSON for collectors.

use std::io::IsTerminal;

use clap::ValueEnum;
use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Installs the global subscriber. The level comes from `SHOAL_LOG` (or `RUST_LOG`), `info` by
/// default. Safe to call more than once (later calls are ignored), which embedded nodes rely on.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_env("SHOAL_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info,chitchat=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stdout().is_terminal())
        .with_writer(std::io::stdout);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
