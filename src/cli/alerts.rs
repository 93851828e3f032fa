//! `shoal channel …` and `shoal alert …`: alert channels and the alert outbox on the command line.
//! Channels are read from TOML files (secrets stay out of shell history and `ps`), and are shown
//! redacted as the server answers them.

use std::path::PathBuf;

use clap::Subcommand;

use super::ClientArgs;
use super::output::{self, Output};
use crate::alert::spec::ChannelSpec;
use crate::alert::{Alert, AlertStatus, ChannelDefinition};
use crate::model::rfc3339;

#[derive(Debug, Subcommand)]
pub enum ChannelCommand {
    /// Create or replace the channel of a TOML file (by name).
    Add {
        #[arg(long, short)]
        file: PathBuf,
    },
    /// List channels (secrets hidden).
    List,
    /// Show one channel (secrets hidden).
    Show { name: String },
    /// Delete a channel no job's alerts name.
    Delete { name: String },
}

#[derive(Debug, Subcommand)]
pub enum AlertCommand {
    /// List alerts, newest first, with their delivery status and the receiver's answer.
    List {
        /// Only these statuses (comma-separated): pending, sent, failed.
        #[arg(long)]
        status: Option<String>,
        /// Only this job's (name or id).
        #[arg(long)]
        job: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
}

pub async fn channel(command: ChannelCommand, args: &ClientArgs) -> anyhow::Result<()> {
    let client = args.client()?;
    match command {
        ChannelCommand::Add { file } => {
            let text = std::fs::read_to_string(&file)
                .map_err(|error| anyhow::anyhow!("--file {}: {error}", file.display()))?;
            let spec = ChannelSpec::from_toml(&text)
                .map_err(|error| anyhow::anyhow!("{}: {}", file.display(), error.reason))?;
            spec.validate()
                .map_err(|error| anyhow::anyhow!("{}: {error}", file.display()))?;
            let channel = client.put_channel(&spec).await?;
            match args.output {
                Output::Json => output::print_json(&channel),
                Output::Table => {
                    println!("channel {} saved: {}", channel.name, channel.describe());
                    Ok(())
                }
            }
        }
        ChannelCommand::List => {
            let channels = client.channels().await?;
            match args.output {
                Output::Json => output::print_json(&channels),
                Output::Table => {
                    let rows: Vec<Vec<String>> = channels
                        .iter()
                        .map(|c| {
                            vec![
                                c.name.clone(),
                                c.kind().to_string(),
                                if c.default { "yes" } else { "-" }.to_string(),
                                c.describe(),
                            ]
                        })
                        .collect();
                    output::print_table(&["NAME", "KIND", "DEFAULT", "SENDS"], &rows);
                    Ok(())
                }
            }
        }
        ChannelCommand::Show { name } => {
            let channel = client.channel(&name).await?;
            match args.output {
                Output::Json => output::print_json(&channel),
                Output::Table => {
                    print_channel(&channel)?;
                    Ok(())
                }
            }
        }
        ChannelCommand::Delete { name } => {
            let channel = client.delete_channel(&name).await?;
            match args.output {
                Output::Json => output::print_json(&channel),
                Output::Table => {
                    println!("channel {} deleted", channel.name);
                    Ok(())
                }
            }
        }
    }
}

fn print_channel(channel: &ChannelDefinition) -> anyhow::Result<()> {
    println!("# {} ({})", channel.describe(), channel.kind());
    // The redacted definition, as TOML.
    let value = serde_json::to_value(channel)?;
    println!("{}", toml::to_string(&value)?);
    Ok(())
}

pub async fn alert(command: AlertCommand, args: &ClientArgs) -> anyhow::Result<()> {
    let client = args.client()?;
    match command {
        AlertCommand::List { status, job, limit } => {
            let alerts = client
                .alerts(status.as_deref(), job.as_deref(), limit)
                .await?;
            match args.output {
                Output::Json => output::print_json(&alerts),
                Output::Table => {
                    print_alerts(&alerts);
                    Ok(())
                }
            }
        }
    }
}

fn print_alerts(alerts: &[Alert]) {
    let rows: Vec<Vec<String>> = alerts
        .iter()
        .map(|a| {
            let when = match a.status {
                AlertStatus::Pending { next_at_ms } => format!("next try {}", rfc3339(next_at_ms)),
                AlertStatus::Sent { at_ms } | AlertStatus::Failed { at_ms } => rfc3339(at_ms),
            };
            vec![
                a.id.to_string(),
                a.status.as_str().to_string(),
                a.event.as_str().to_string(),
                a.job_name.clone(),
                a.instance.to_string(),
                a.channel.clone(),
                a.tries.to_string(),
                when,
                a.answer.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    output::print_table(
        &[
            "ID", "STATUS", "EVENT", "JOB", "INSTANCE", "CHANNEL", "TRIES", "WHEN", "ANSWER",
        ],
        &rows,
    );
}
