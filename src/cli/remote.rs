//! Client commands sent over SSH (`ssh -p 2222 ops@host instance list --output json`): which of
//! the CLI's commands an SSH `exec` request may run, checked with the CLI's own parser.
//!
//! Only the client commands (`members`, `job …`, `instance …`) are accepted: daemons, the demo
//! and the console make no sense as a remote command. The server chooses the API, its trust and
//! the token, so `--server`, `--token`, `--ca` and `--pin-cert` are refused, and so is `--file`,
//! which would read a file on the server's machine. A read-only key may run only the commands that change nothing.
//!
//! This module decides only what may run; it never runs anything.

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches};

use super::alerts::{AlertCommand, ChannelCommand};
use super::jobs::{InstanceCommand, JobCommand};
use super::{Cli, Command};

/// A command line an SSH client asked to run, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteCommand {
    /// Run `shoal` with these arguments.
    Run {
        args: Vec<String>,
        /// Whether it only reads (a read-only key may run it).
        reads_only: bool,
    },
    /// The operator asked for help or the version: print this and succeed.
    Print(String),
}

/// Why a command line was refused, in words for the operator's terminal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal(pub String);

/// What the commands that only read are, for the refusal of a read-only key.
pub const READING_COMMANDS: &str = "members, servers list, job list, job show, job next, job backfill --dry-run, instance list, \
     instance show";

/// Splits `line` as a shell would and checks it with the CLI's parser.
pub fn parse(line: &str) -> Result<RemoteCommand, Refusal> {
    let args = shell_words::split(line)
        .map_err(|error| Refusal(format!("cannot split the command line: {error}")))?;
    let args: Vec<String> = match args.first().map(String::as_str) {
        // `ssh host shoal job list` reads naturally too.
        Some("shoal") => args[1..].to_vec(),
        _ => args,
    };
    if args.is_empty() {
        return Err(Refusal(
            "no command given: run e.g. `instance list --output json`, or log in without a \
             command (ssh -t) for the console"
                .into(),
        ));
    }
    let argv = std::iter::once("shoal".to_string()).chain(args.iter().cloned());
    let matches = match Cli::command().try_get_matches_from(argv) {
        Ok(matches) => matches,
        Err(error) => {
            return match error.kind() {
                clap::error::ErrorKind::DisplayHelp
                | clap::error::ErrorKind::DisplayVersion
                | clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                    Ok(RemoteCommand::Print(error.render().to_string()))
                }
                _ => Err(Refusal(error.render().to_string().trim_end().to_string())),
            };
        }
    };
    for (flag, name) in [
        ("server", "--server"),
        ("token", "--token"),
        ("ca", "--ca"),
        ("pin_cert", "--pin-cert"),
        ("file", "--file"),
    ] {
        if given(&matches, flag) {
            return Err(Refusal(format!(
                "{name} is not accepted over SSH: {}",
                match flag {
                    "file" => "it would read a file on the server's machine; give the job as flags",
                    _ => "the SSH console always talks to the server you logged in to",
                }
            )));
        }
    }
    let cli = Cli::from_arg_matches(&matches)
        .map_err(|error| Refusal(error.render().to_string().trim_end().to_string()))?;
    let reads_only = match cli.command {
        Command::Members(_) => true,
        Command::Servers { command, .. } => {
            matches!(command, super::servers::ServersCommand::List)
        }
        Command::Job { command, .. } => match command {
            JobCommand::List { .. } | JobCommand::Show { .. } | JobCommand::Next { .. } => true,
            JobCommand::Backfill { dry_run, .. } => dry_run,
            JobCommand::Add(_)
            | JobCommand::Update { .. }
            | JobCommand::Apply { .. }
            | JobCommand::Delete { .. }
            | JobCommand::Pause { .. }
            | JobCommand::Resume { .. }
            | JobCommand::Run { .. } => false,
        },
        Command::Channel { command, .. } => match command {
            ChannelCommand::List | ChannelCommand::Show { .. } => true,
            ChannelCommand::Add { .. } | ChannelCommand::Delete { .. } => false,
        },
        Command::Alert {
            command: AlertCommand::List { .. },
            ..
        } => true,
        Command::Instance { command, .. } => match command {
            InstanceCommand::List { .. } | InstanceCommand::Show { .. } => true,
            InstanceCommand::Cancel { .. } | InstanceCommand::Retry { .. } => false,
        },
        Command::Server(_)
        | Command::Worker(_)
        | Command::Up(_)
        | Command::Demo(_)
        | Command::Tui(_)
        | Command::Completions { .. }
        | Command::Config { .. } => {
            return Err(Refusal(format!(
                "`{}` is not a client command: over SSH run members, job … or instance …; for \
                 the console log in without a command (ssh -t)",
                args[0]
            )));
        }
    };
    Ok(RemoteCommand::Run { args, reads_only })
}

/// Whether `flag` was written on the command line. Global flags (`--server`, `--token`) are
/// propagated to the innermost subcommand, where `--file` is defined too, so that is where to
/// look (clap panics when asked about a flag a level does not define).
fn given(matches: &ArgMatches, flag: &str) -> bool {
    let mut leaf = matches;
    while let Some((_, sub)) = leaf.subcommand() {
        leaf = sub;
    }
    leaf.ids().any(|id| id.as_str() == flag)
        && leaf.value_source(flag) == Some(ValueSource::CommandLine)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(line: &str) -> (Vec<String>, bool) {
        match parse(line) {
            Ok(RemoteCommand::Run { args, reads_only }) => (args, reads_only),
            other => panic!("{line}: {other:?}"),
        }
    }

    fn refused(line: &str) -> String {
        match parse(line) {
            Err(Refusal(why)) => why,
            other => panic!("{line} should be refused: {other:?}"),
        }
    }

    #[test]
    fn reading_and_changing_commands_are_told_apart() {
        let (args, reads) = run("instance list --state failed --output json");
        assert_eq!(
            args,
            ["instance", "list", "--state", "failed", "--output", "json"]
        );
        assert!(reads);
        for line in [
            "members",
            "shoal job list",
            "job show 'nightly report'",
            "job next x --count 3",
            "instance show 4",
            "job backfill x --from 2026-01-01T00:00:00Z --to 2026-01-02T00:00:00Z --dry-run",
        ] {
            assert!(run(line).1, "{line} only reads");
        }
        for line in [
            "job run x",
            "job pause x",
            "job resume x",
            "job delete x",
            "instance retry 3",
            "instance cancel 3",
            "job add --name x --on-demand --url http://127.0.0.1:1/",
            "job backfill x --from 2026-01-01T00:00:00Z --to 2026-01-02T00:00:00Z --yes",
        ] {
            assert!(!run(line).1, "{line} changes the cluster");
        }
        assert_eq!(run("job show 'nightly report'").0[2], "nightly report");
    }

    #[test]
    fn daemons_local_files_and_other_servers_are_refused() {
        assert!(refused("server --data-dir /tmp/x").contains("not a client command"));
        assert!(refused("tui").contains("not a client command"));
        assert!(refused("job list --server http://10.0.0.9:7070").contains("--server"));
        assert!(refused("--token x job list").contains("--token"));
        assert!(refused("job list --ca /etc/shadow").contains("--ca"));
        assert!(refused("members --pin-cert /etc/shadow").contains("--pin-cert"));
        assert!(refused("job apply --file /etc/passwd").contains("--file"));
        assert!(refused("job add -f /etc/passwd").contains("--file"));
        assert!(refused("").contains("no command given"));
        assert!(refused("job frobnicate").contains("frobnicate"));
        assert!(refused("job show 'unclosed").contains("cannot split"));
    }

    #[test]
    fn help_is_printed() {
        match parse("job --help") {
            Ok(RemoteCommand::Print(text)) => assert!(text.contains("list"), "{text}"),
            other => panic!("{other:?}"),
        }
    }
}
