//! Logging set-up for the daemons: tracing to stdout, as text for people or JSON for collectors.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::Mutex;

use anyhow::Context;

use clap::ValueEnum;
use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Shoal at info; chitchat's and openraft's routine warnings (a vote that crossed another, a
/// peer not yet up during an election) stay out unless asked for; their errors still show.
const DEFAULT_FILTER: &str = "info,chitchat=warn,openraft=error";

/// Installs the global subscriber. The level comes from `SHOAL_LOG` (or `RUST_LOG`), `info` by
/// default. Safe to call more than once (later calls are ignored), which embedded nodes rely on.
pub fn init(format: LogFormat) {
    let filter = filter_from_env(DEFAULT_FILTER);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stdout().is_terminal())
        .with_writer(std::io::stdout);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// Warnings and errors only (unless `SHOAL_LOG` says otherwise), for commands whose own output on
/// stdout is the point, like `shoal demo --headless`. Dispatch warnings are left out because that
/// output already reports queued tasks with their reason.
pub fn init_quiet() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter_from_env("warn,shoal::server::dispatch=error"))
        .with_ansi(std::io::stdout().is_terminal())
        .with_writer(std::io::stdout)
        .try_init();
}

/// Logs to a file instead of stdout, for when the console owns the terminal.
pub fn init_to_file(path: &Path) -> anyhow::Result<()> {
    let file = std::fs::File::create(path)
        .with_context(|| format!("cannot create the log file {}", path.display()))?;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter_from_env(DEFAULT_FILTER))
        .with_ansi(false)
        .with_writer(Mutex::new(file))
        .try_init();
    Ok(())
}

fn filter_from_env(default: &str) -> EnvFilter {
    EnvFilter::try_from_env("SHOAL_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new(default))
}
