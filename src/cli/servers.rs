//! `shoal servers …`: the servers of a replicated group — list them with their role, term and
//! lag, add a server to the group, remove one. Any server takes a change (a follower hands it to
//! the leader); the CLI tries each `--server` given until one answers.

use clap::Subcommand;

use super::ClientArgs;
use super::output::{self, Output};
use crate::wire::admin::ServerRow;

#[derive(Debug, Subcommand)]
pub enum ServersCommand {
    /// List the group's servers: role, term, applied index and lag behind the leader.
    List,
    /// Add a server (its --id; it must run with --bootstrap-expect and --join this cluster) to
    /// the group: it catches up as a learner, then votes.
    Add { id: String },
    /// Remove a server (its --id or Raft id) from the group: it no longer votes nor receives
    /// the log. Stop it afterwards.
    Remove { id: String },
}

pub async fn servers(command: ServersCommand, args: &ClientArgs) -> anyhow::Result<()> {
    let client = args.client()?;
    let rows = match &command {
        ServersCommand::List => client.servers().await?,
        ServersCommand::Add { id } => client.add_server(id).await?,
        ServersCommand::Remove { id } => client.remove_server(id).await?,
    };
    match args.output {
        Output::Json => output::print_json(&rows),
        Output::Table => {
            match &command {
                ServersCommand::Add { id } => println!("server {id} added to the group"),
                ServersCommand::Remove { id } => println!("server {id} removed from the group"),
                ServersCommand::List => {}
            }
            print_servers(&rows);
            Ok(())
        }
    }
}

fn print_servers(rows: &[ServerRow]) {
    let dash = || "-".to_string();
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            vec![
                row.server_id.clone().unwrap_or_else(dash),
                row.role.clone().unwrap_or_else(dash),
                if row.voter { "voter" } else { "learner" }.to_string(),
                row.term.map(|t| t.to_string()).unwrap_or_else(dash),
                row.applied.map(|a| a.to_string()).unwrap_or_else(dash),
                row.lag.map(|l| l.to_string()).unwrap_or_else(dash),
                row.state.clone().unwrap_or_else(dash),
                row.api.clone(),
                row.raft_id.to_string(),
            ]
        })
        .collect();
    output::print_table(
        &[
            "ID", "ROLE", "VOTE", "TERM", "APPLIED", "LAG", "GOSSIP", "API", "RAFT ID",
        ],
        &table,
    );
}
