//! The `shoal` command line. Each subcommand parses its flags into a typed config and hands it to
//! a daemon (`server`, `worker`) or to the API client (everything else). Errors go to stderr with
//! a non-zero exit.

mod alerts;
mod config;
mod jobs;
mod output;
pub mod remote;
mod servers;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::client::{ApiClient, DEFAULT_SERVER};
use crate::node::{DEFAULT_CLUSTER, GossipSettings};
use crate::server::ServerConfig;
use crate::telemetry::{self, LogFormat};
use crate::worker::WorkerConfig;
pub use output::Output;

#[derive(Debug, Parser)]
#[command(
    name = "shoal",
    version,
    about = "A distributed job scheduler: durable schedules, HTTP tasks on live workers.",
    long_about = "Shoal keeps job schedules durably on a server, fires them on time and hands each \
HTTP task to a live worker it finds by gossip. A task no worker can take stays queued with the \
reason and the command that fixes it.",
    after_long_help = AFTER_HELP,
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server: stores jobs, fires them on time, assigns tasks to live workers.
    Server(Box<ServerArgs>),
    /// Run a worker: joins the cluster by gossip and executes the HTTP tasks it is assigned.
    Worker(Box<WorkerArgs>),
    /// Run a server with embedded workers in one process, for a single machine.
    Up(Box<UpArgs>),
    /// Try Shoal: a server, two workers, a local HTTP target and sample jobs, in the console.
    Demo(DemoArgs),
    /// List the cluster's members as the server sees them.
    Members(MembersArgs),
    /// The servers of a replicated group: list them (role, term, lag), add one, remove one.
    Servers {
        #[command(subcommand)]
        command: servers::ServersCommand,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Create, change and run jobs.
    Job {
        #[command(subcommand)]
        command: jobs::JobCommand,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Inspect, cancel and retry job instances.
    Instance {
        #[command(subcommand)]
        command: jobs::InstanceCommand,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Define where alerts go: webhooks, Slack, e-mail.
    Channel {
        #[command(subcommand)]
        command: alerts::ChannelCommand,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// See alerts raised and their delivery.
    Alert {
        #[command(subcommand)]
        command: alerts::AlertCommand,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Open the ops console: workers, jobs, queues and failures, live, with run/pause/retry/cancel.
    Tui(TuiArgs),
    /// Print a shell completion script (bash, zsh or fish).
    ///
    /// bash: `shoal completions bash > /etc/bash_completion.d/shoal`; zsh: save it as `_shoal`
    /// in a directory of $fpath; fish: `shoal completions fish >
    /// ~/.config/fish/completions/shoal.fish`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// The daemons' config file: show the settings in effect and where each came from.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Print a daemon's effective settings as a config file would hold them, each with its
    /// source: flag, env NAME, file PATH or default.
    Print {
        /// Which daemon's settings.
        #[arg(value_enum, default_value = "server")]
        daemon: Daemon,
        /// The config file (default: SHOAL_CONFIG, else ./shoal.toml if it exists).
        #[arg(long, env = "SHOAL_CONFIG", value_name = "FILE")]
        config: Option<PathBuf>,
        /// The daemon's flags, after `--`, to see how they combine with the file.
        #[arg(last = true, value_name = "FLAGS")]
        flags: Vec<std::ffi::OsString>,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Daemon {
    Server,
    Worker,
    Up,
}

/// The man-page part of `shoal --help`.
const AFTER_HELP: &str = "\
Getting started:
  shoal demo                                   a whole cluster with sample jobs, in the console
  shoal up --data-dir /var/lib/shoal           a server with embedded workers, for one machine
  shoal server --data-dir /var/lib/shoal       the server daemon
  shoal worker --join SERVER:7946 --tag eu     a worker daemon (joins by gossip)
  shoal job add --name hello --every 30s --url http://127.0.0.1:8080/ok
  shoal tui                                    the ops console

Configuration (daemons): flags, then SHOAL_* environment variables, then the config file
(--config FILE, SHOAL_CONFIG, or ./shoal.toml: sections [server], [worker], [up], keys are the
flags' names in snake_case), then defaults. `shoal config print server` shows every setting
and where it came from.

Environment:
  SHOAL_SERVER    the server URL clients use (default http://127.0.0.1:7070)
  SHOAL_TOKEN     the token clients send; on a server, one token for every scope
  SHOAL_CA        the CA bundle (PEM) clients and workers trust for the server's HTTPS
  SHOAL_TLS_CERT, SHOAL_TLS_KEY
                  the server's HTTPS certificate chain and key (PEM)
  SHOAL_TOKEN_READ, SHOAL_TOKEN_OPERATOR, SHOAL_TOKEN_ADMIN, SHOAL_TOKEN_WORKER
                  a server's scoped tokens (comma-separated for two at once while rotating)
  SHOAL_CONFIG    the daemons' config file
  SHOAL_LOG       log filter of the daemons, e.g. info,shoal=debug
  NO_COLOR        no colours in the console

Files:
  /etc/shoal/shoal.toml                        config file of the example systemd units
  DATA_DIR/shoal.redb                          the server's database (one server per file)

Exit status: 0 on success, 1 on any error (the message on stderr names the field and the fix).

Each command has its own help: shoal help COMMAND (e.g. shoal help server).
Shell completions: shoal completions bash|zsh|fish.";

/// Flags every daemon shares.
#[derive(Debug, Args)]
struct DaemonArgs {
    /// Config file of daemon settings (TOML; see `shoal config print`). Flags and environment
    /// variables override it. Default: ./shoal.toml if it exists.
    #[arg(long, env = "SHOAL_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Cluster name; nodes of another cluster are never members.
    #[arg(long, env = "SHOAL_CLUSTER", default_value = DEFAULT_CLUSTER)]
    cluster: String,
    /// Address other nodes use to gossip with this one, when --gossip binds 0.0.0.0.
    #[arg(long, value_name = "HOST:PORT")]
    advertise: Option<String>,
    /// Gossip round interval; failure detection takes a few of these (e.g. 200ms → ~1-2 s).
    #[arg(long, default_value = "200ms", value_parser = parse_duration, value_name = "DURATION")]
    gossip_interval: Duration,
    /// Failure detector threshold: lower declares silent nodes dead sooner, with more false alarms.
    #[arg(long, default_value_t = 8.0, value_name = "PHI")]
    phi_threshold: f64,
    /// The cluster token. On a server: one token for every scope of the API and the worker RPC
    /// (see --token-read/-operator/-admin/-worker for scoped ones). On a worker: the token it
    /// proves in the handshake (the server's --token or one of its --token-worker).
    #[arg(long, env = "SHOAL_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Log format on stdout.
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
}

#[derive(Debug, Args)]
struct ServerArgs {
    /// Directory of the server's database (created if missing).
    #[arg(long, env = "SHOAL_DATA_DIR", default_value = "shoal-data")]
    data_dir: PathBuf,
    /// Address of the HTTP API (and the worker RPC).
    #[arg(
        long,
        env = "SHOAL_API",
        default_value = "127.0.0.1:7070",
        value_name = "HOST:PORT"
    )]
    api: String,
    /// UDP address for gossip; workers --join it.
    #[arg(
        long,
        env = "SHOAL_GOSSIP",
        default_value = "127.0.0.1:7946",
        value_name = "HOST:PORT"
    )]
    gossip: String,
    /// Node id (stable across restarts; unique among the servers of a group).
    #[arg(long, default_value = "server")]
    id: String,
    /// Gossip address of another server (or any node) of the cluster, for servers forming a
    /// group. Repeatable.
    #[arg(
        long = "join",
        env = "SHOAL_SERVER_JOIN",
        value_name = "HOST:PORT",
        value_delimiter = ','
    )]
    server_join: Vec<String>,
    /// Run as one server of a replicated group (Raft) of N servers, 3 or 5 for high
    /// availability: the group forms once N servers with this flag see each other in gossip.
    /// Without it the server runs alone.
    #[arg(long, env = "SHOAL_BOOTSTRAP_EXPECT", value_name = "N")]
    bootstrap_expect: Option<usize>,
    /// In a group, snapshot the store every N log entries and compact the log behind it.
    #[arg(long, default_value_t = crate::server::DEFAULT_SNAPSHOT_EVERY, value_name = "N", hide = true)]
    raft_snapshot_every: u64,
    /// Delete finished instances whose last change is older than this, and alerts sent or given
    /// up longer ago (`forever` keeps them).
    #[arg(
        long,
        env = "SHOAL_RETAIN_AGE",
        default_value = "7d",
        value_name = "DURATION"
    )]
    retain_age: String,
    /// Keep at most this many of each job's newest instances (0 = no limit). Unfinished
    /// instances are never deleted.
    #[arg(
        long,
        env = "SHOAL_RETAIN_PER_JOB",
        default_value_t = 1000,
        value_name = "N"
    )]
    retain_per_job: u64,
    /// How often the retention sweeper looks for history to delete.
    #[arg(long, default_value = "1m", value_parser = parse_duration, value_name = "DURATION")]
    retain_sweep_every: Duration,
    /// Append every applied command to FILE, for replaying this run (diagnostics and tests).
    #[arg(long, value_name = "FILE", hide = true)]
    record_commands: Option<PathBuf>,
    /// Most API connections open at once (lowered to what the open-file limit allows).
    #[arg(long, default_value_t = 4096, value_name = "N")]
    max_connections: usize,
    /// Most API connections that have not sent a request yet; past it the oldest is closed.
    #[arg(long, default_value_t = 256, value_name = "N")]
    max_pending_connections: usize,
    /// A client must send its request head within this (with TLS, finish its handshake within
    /// it first), and an idle keep-alive connection is closed after it.
    #[arg(long, default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
    header_timeout: Duration,
    /// Most admin API (/api/v1) requests in flight; the worker RPC and /healthz are not counted.
    #[arg(long, default_value_t = 64, value_name = "N")]
    max_admin_requests: usize,
    /// Jobs whose attempts /metrics counts under their own name (comma-separated or
    /// repeated); every other job is counted as `_other`, so the series stay bounded.
    #[arg(long, value_name = "JOB,…", value_delimiter = ',')]
    metrics_job_labels: Vec<String>,
    /// A token that may only read: the console, list, show, members, /metrics. Repeatable (or
    /// comma-separated), so that an old and a new token are valid at once while rotating.
    #[arg(
        long,
        env = "SHOAL_TOKEN_READ",
        hide_env_values = true,
        value_delimiter = ',',
        value_name = "TOKEN"
    )]
    token_read: Vec<String>,
    /// A token that may read and act on work: run, pause, resume, retry, cancel, backfill.
    /// Repeatable.
    #[arg(
        long,
        env = "SHOAL_TOKEN_OPERATOR",
        hide_env_values = true,
        value_delimiter = ',',
        value_name = "TOKEN"
    )]
    token_operator: Vec<String>,
    /// A token that may also create, update, apply and delete jobs. Repeatable.
    #[arg(
        long,
        env = "SHOAL_TOKEN_ADMIN",
        hide_env_values = true,
        value_delimiter = ',',
        value_name = "TOKEN"
    )]
    token_admin: Vec<String>,
    /// A token workers hold for the worker RPC (it keys their handshake) and nothing else.
    /// Repeatable. Workers pass it as their --token.
    #[arg(
        long,
        env = "SHOAL_TOKEN_WORKER",
        hide_env_values = true,
        value_delimiter = ',',
        value_name = "TOKEN"
    )]
    token_worker: Vec<String>,
    /// Serve the API and the worker RPC over HTTPS with this certificate chain (PEM, leaf
    /// first). Needs --tls-key.
    #[arg(long, env = "SHOAL_TLS_CERT", value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM: PKCS#8, RSA or EC).
    #[arg(long, env = "SHOAL_TLS_KEY", value_name = "FILE")]
    tls_key: Option<PathBuf>,
    /// For a group of servers over TLS: trust only the CA certificates of FILE (PEM) for the
    /// other servers' certificates. Without it a server trusts its own certificate alone (enough
    /// when every server of the group shares it).
    #[arg(long = "ca", env = "SHOAL_SERVER_CA", value_name = "FILE")]
    peer_ca: Option<PathBuf>,
    #[command(flatten)]
    ssh: SshArgs,
    #[command(flatten)]
    daemon: DaemonArgs,
}

/// The console over SSH.
#[derive(Debug, Args)]
struct SshArgs {
    /// Serve the console over SSH on this address (e.g. 0.0.0.0:2222): `ssh -p 2222 ops@host`.
    #[arg(long, env = "SHOAL_SSH", value_name = "HOST:PORT")]
    ssh: Option<String>,
    /// Public keys (authorized_keys format) that may log in over SSH with full access.
    #[arg(long, env = "SHOAL_SSH_AUTHORIZED_KEYS", value_name = "FILE")]
    ssh_authorized_keys: Option<PathBuf>,
    /// Public keys that may log in over SSH to look only: every action is refused.
    #[arg(long, env = "SHOAL_SSH_READONLY_KEYS", value_name = "FILE")]
    ssh_readonly_keys: Option<PathBuf>,
    /// Most SSH sessions at once; further connections are closed.
    #[arg(long, default_value_t = crate::server::ssh::SshConfig::DEFAULT_MAX_SESSIONS, value_name = "N")]
    ssh_max_sessions: usize,
    /// Close an SSH session after this long without input from its operator.
    #[arg(long, default_value = "15m", value_parser = parse_duration, value_name = "DURATION")]
    ssh_idle_timeout: Duration,
}

impl SshArgs {
    fn config(self) -> anyhow::Result<Option<crate::server::ssh::SshConfig>> {
        let Some(listen) = self.ssh else {
            if self.ssh_authorized_keys.is_some() || self.ssh_readonly_keys.is_some() {
                anyhow::bail!(
                    "--ssh-authorized-keys and --ssh-readonly-keys need --ssh HOST:PORT, the \
                     address to serve the console on (e.g. --ssh 0.0.0.0:2222)"
                );
            }
            return Ok(None);
        };
        Ok(Some(crate::server::ssh::SshConfig {
            listen: crate::net::parse_addr("--ssh", &listen)?,
            keys: crate::server::ssh::KeyFiles {
                authorized: self.ssh_authorized_keys,
                readonly: self.ssh_readonly_keys,
            },
            max_sessions: self.ssh_max_sessions,
            idle_timeout: self.ssh_idle_timeout,
        }))
    }
}

#[derive(Debug, Args)]
struct WorkerArgs {
    /// Gossip address of any node already in the cluster (usually the server). Repeatable.
    #[arg(
        long,
        env = "SHOAL_JOIN",
        default_value = "127.0.0.1:7946",
        value_name = "HOST:PORT",
        value_delimiter = ','
    )]
    join: Vec<String>,
    /// UDP address for this worker's gossip; port 0 (the default) picks a free port.
    #[arg(long, default_value = "127.0.0.1:0", value_name = "HOST:PORT")]
    gossip: String,
    /// Node id (stable across restarts); defaults to HOSTNAME-GOSSIPPORT.
    #[arg(long)]
    id: Option<String>,
    /// A tag jobs can target (e.g. billing, gpu, zone:eu). Repeatable.
    #[arg(long = "tag", value_name = "TAG")]
    tags: Vec<String>,
    /// How many tasks this worker runs at once.
    #[arg(long, default_value_t = 8)]
    capacity: u32,
    /// On SIGTERM, how long running tasks may take to finish before the worker leaves.
    #[arg(long, default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
    drain_timeout: Duration,
    /// Trust only the CA certificates of FILE (PEM) for servers' HTTPS certificates, and talk to
    /// servers over HTTPS only: one that gossip announces with plain http is refused.
    #[arg(long, env = "SHOAL_CA", value_name = "FILE")]
    ca: Option<PathBuf>,
    #[command(flatten)]
    daemon: DaemonArgs,
}

#[derive(Debug, Args)]
struct UpArgs {
    /// How many workers to run inside the server's process.
    #[arg(long, default_value_t = 2, value_name = "N")]
    workers: u32,
    /// How many tasks each embedded worker runs at once.
    #[arg(long, default_value_t = 8)]
    worker_capacity: u32,
    /// A tag every embedded worker carries. Repeatable.
    #[arg(long = "worker-tag", value_name = "TAG")]
    worker_tags: Vec<String>,
    /// On SIGTERM, how long running tasks may take to finish before the workers leave.
    #[arg(long, default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
    drain_timeout: Duration,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Debug, Args)]
struct DemoArgs {
    /// No console: print progress lines (for SSH sessions and CI).
    #[arg(long)]
    headless: bool,
    /// With --headless: stop after this long instead of at Ctrl-C.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION", requires = "headless")]
    duration: Option<Duration>,
    /// Address of the demo's API; default 127.0.0.1:7070 if free, else any free port.
    #[arg(long, value_name = "HOST:PORT")]
    api: Option<String>,
}

/// How a client command reaches the server.
#[derive(Debug, Args)]
pub struct ClientArgs {
    /// The server's API URL; for a group of servers, several, comma-separated (each is tried in
    /// turn until one answers).
    #[arg(long, env = "SHOAL_SERVER", default_value = DEFAULT_SERVER, global = true)]
    server: String,
    /// Cluster token, if the server requires one.
    #[arg(long, env = "SHOAL_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    /// Trust only the CA certificates of FILE (PEM) for the server's HTTPS certificate, instead
    /// of the system's; the server must then be an https:// URL.
    #[arg(long, env = "SHOAL_CA", value_name = "FILE", global = true)]
    ca: Option<PathBuf>,
    /// Trust exactly the first certificate of FILE, whatever names it carries: set by the SSH
    /// console for the client commands it runs against its own server.
    #[arg(
        long,
        env = "SHOAL_PIN_CERT",
        value_name = "FILE",
        global = true,
        hide = true
    )]
    pin_cert: Option<PathBuf>,
    /// `table` for people, `json` for scripts.
    #[arg(long, short, value_enum, default_value = "table", global = true)]
    output: Output,
}

impl ClientArgs {
    fn client(&self) -> anyhow::Result<ApiClient> {
        let tls = match (&self.ca, &self.pin_cert) {
            (Some(ca), _) => crate::tls::ClientTls::ca_file("--ca", ca)?,
            (None, Some(cert)) => crate::tls::ClientTls::pinned_file("SHOAL_PIN_CERT", cert)?,
            (None, None) => crate::tls::ClientTls::system(),
        };
        ApiClient::new(&self.server, self.token.clone(), &tls)
    }
}

#[derive(Debug, Args)]
struct MembersArgs {
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Debug, Args)]
struct TuiArgs {
    /// How often to fetch fresh data from the server.
    #[arg(long, default_value = "1s", value_parser = parse_duration, value_name = "DURATION")]
    refresh: Duration,
    /// Look only: refuse every action (run, pause, resume, retry, cancel).
    #[arg(long)]
    readonly: bool,
    #[command(flatten)]
    client: ClientArgs,
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let command = Cli::command();
    let merged = match config::merge(&command, std::env::args_os().collect()) {
        Ok(merged) => merged,
        Err(config::MergeError::Clap(error)) => error.exit(),
        Err(config::MergeError::Other(error)) => {
            eprintln!("error: {error:#}");
            return ExitCode::FAILURE;
        }
    };
    let cli = match Cli::from_arg_matches(&merged.matches) {
        Ok(cli) => cli,
        Err(error) => error.exit(),
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Server(args) => {
            telemetry::init(args.daemon.log_format);
            crate::node::raise_open_file_limit();
            crate::server::run(server_config(*args)?).await
        }
        Command::Worker(args) => {
            telemetry::init(args.daemon.log_format);
            crate::node::raise_open_file_limit();
            crate::worker::run(worker_config(*args)?).await
        }
        Command::Up(args) => {
            telemetry::init(args.server.daemon.log_format);
            crate::node::raise_open_file_limit();
            up(*args).await
        }
        Command::Demo(args) => {
            crate::node::raise_open_file_limit();
            crate::local::demo::run(demo_config(args)?).await
        }
        Command::Members(args) => members(&args.client).await,
        Command::Servers { command, client } => servers::servers(command, &client).await,
        Command::Job { command, client } => jobs::job(command, &client).await,
        Command::Instance { command, client } => jobs::instance(command, &client).await,
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "shoal", &mut std::io::stdout());
            Ok(())
        }
        Command::Config {
            command:
                ConfigCommand::Print {
                    daemon,
                    config,
                    flags,
                },
        } => {
            let daemon = match daemon {
                Daemon::Server => "server",
                Daemon::Worker => "worker",
                Daemon::Up => "up",
            };
            config::print(&Cli::command(), daemon, config.as_deref(), flags)
        }
        Command::Channel { command, client } => alerts::channel(command, &client).await,
        Command::Alert { command, client } => alerts::alert(command, &client).await,
        Command::Tui(args) => {
            let options = shoal_tui::Options {
                refresh: args.refresh,
                readonly: args.readonly,
                color: shoal_tui::Options::color_from_env(),
            };
            crate::client::console::run(args.client.client()?, options).await
        }
    }
}

fn gossip_settings(
    daemon: &DaemonArgs,
    listen: &str,
    seeds: Vec<String>,
) -> anyhow::Result<GossipSettings> {
    let mut settings = GossipSettings::new(
        daemon.cluster.clone(),
        crate::net::parse_addr("--gossip", listen)?,
    );
    settings.advertise = daemon
        .advertise
        .as_deref()
        .map(|a| crate::net::parse_addr("--advertise", a))
        .transpose()?;
    settings.seeds = seeds;
    settings.interval = daemon.gossip_interval;
    if daemon.phi_threshold.is_nan() || daemon.phi_threshold <= 0.0 {
        anyhow::bail!("--phi-threshold must be a positive number (8 is a good default)");
    }
    settings.phi_threshold = daemon.phi_threshold;
    Ok(settings)
}

fn server_config(args: ServerArgs) -> anyhow::Result<ServerConfig> {
    let seeds = args
        .server_join
        .iter()
        .map(|s| crate::net::check_seed(s))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let group = match args.bootstrap_expect {
        None => None,
        Some(0) => anyhow::bail!(
            "--bootstrap-expect must be at least 1 (the number of servers in the group: 3 or 5 \
             for high availability)"
        ),
        Some(n) if n > 9 => anyhow::bail!(
            "--bootstrap-expect {n}: a group of more than 9 servers commits slower and survives \
             no more than it needs to; use 3 or 5"
        ),
        Some(n) => {
            if n % 2 == 0 {
                tracing::warn!(
                    "--bootstrap-expect {n}: an even group survives no more failures than one \
                     server fewer ({} of {n} may fail); 3 or 5 is the usual choice",
                    (n - 1) / 2
                );
            }
            if args.raft_snapshot_every < 8 {
                anyhow::bail!("--raft-snapshot-every must be at least 8 log entries");
            }
            Some(crate::server::GroupSettings {
                bootstrap_expect: n,
                snapshot_every: args.raft_snapshot_every,
            })
        }
    };
    Ok(ServerConfig {
        id: args.id,
        data_dir: args.data_dir,
        api_addr: crate::net::parse_addr("--api", &args.api)?,
        gossip: gossip_settings(&args.daemon, &args.gossip, seeds)?,
        group,
        tokens: crate::server::api::TokenSettings {
            all: args.daemon.token,
            read: args.token_read,
            operator: args.token_operator,
            admin: args.token_admin,
            worker: args.token_worker,
        },
        retention: crate::server::store::Retention {
            max_age_ms: match args.retain_age.trim() {
                "forever" => None,
                text => Some(
                    crate::spec::positive_duration("--retain-age", text, u64::MAX)
                        .map_err(|error| anyhow::anyhow!("{error} (or write forever)"))?,
                ),
            },
            per_job: (args.retain_per_job > 0).then_some(args.retain_per_job),
        },
        retention_interval: args.retain_sweep_every,
        record_commands: args.record_commands,
        limits: crate::server::serve::ConnectionLimits {
            max_connections: args.max_connections,
            max_pending: args.max_pending_connections,
            header_timeout: args.header_timeout,
            max_admin_requests: args.max_admin_requests,
        },
        ssh: args.ssh.config()?,
        metrics_job_labels: args.metrics_job_labels,
        tls: crate::tls::TlsFiles::from_flags(args.tls_cert, args.tls_key)?,
        peer_ca: args.peer_ca,
    })
}

fn worker_config(args: WorkerArgs) -> anyhow::Result<WorkerConfig> {
    let seeds = args
        .join
        .iter()
        .map(|s| crate::net::check_seed(s))
        .collect::<anyhow::Result<Vec<_>>>()?;
    for tag in &args.tags {
        shoal_gossip::validate_tag(tag).map_err(|reason| anyhow::anyhow!("--tag: {reason}"))?;
    }
    let mut gossip = gossip_settings(&args.daemon, &args.gossip, seeds)?;
    gossip.listen = crate::net::pick_free_udp_port(gossip.listen)?;
    let id = args
        .id
        .unwrap_or_else(|| format!("{}-{}", crate::net::hostname(), gossip.listen.port()));
    Ok(WorkerConfig {
        id,
        gossip,
        tags: args.tags,
        capacity: args.capacity,
        token: args.daemon.token,
        drain_timeout: args.drain_timeout,
        tls: match &args.ca {
            Some(ca) => crate::tls::ClientTls::ca_file("--ca", ca)?,
            None => crate::tls::ClientTls::system(),
        },
    })
}

async fn up(args: UpArgs) -> anyhow::Result<()> {
    if args.workers == 0 {
        anyhow::bail!("--workers must be at least 1; for a server alone use `shoal server`");
    }
    if args.worker_capacity == 0 {
        anyhow::bail!("--worker-capacity must be at least 1 (tasks each worker runs at once)");
    }
    for tag in &args.worker_tags {
        shoal_gossip::validate_tag(tag)
            .map_err(|reason| anyhow::anyhow!("--worker-tag: {reason}"))?;
    }
    let config = server_config(args.server)?;
    let workers = crate::local::uniform_workers(
        &config.id,
        args.workers,
        &args.worker_tags,
        args.worker_capacity,
    );
    let cluster = crate::local::LocalCluster::start(config, &workers, args.drain_timeout).await?;
    crate::shutdown::signal().await;
    cluster.stop().await
}

fn demo_config(args: DemoArgs) -> anyhow::Result<crate::local::demo::DemoConfig> {
    let api = args
        .api
        .as_deref()
        .map(|a| crate::net::parse_addr("--api", a))
        .transpose()?;
    if let Some(addr) = api
        && !addr.ip().is_loopback()
    {
        anyhow::bail!("--api {addr}: the demo serves only on loopback; use e.g. 127.0.0.1:7071");
    }
    Ok(crate::local::demo::DemoConfig {
        api,
        headless: args.headless,
        duration: args.duration,
        console: shoal_tui::Options {
            refresh: Duration::from_secs(1),
            readonly: false,
            color: shoal_tui::Options::color_from_env(),
        },
    })
}

async fn members(args: &ClientArgs) -> anyhow::Result<()> {
    let members = args.client()?.members().await?;
    match args.output {
        Output::Json => output::print_json(&members),
        Output::Table => {
            let rows: Vec<Vec<String>> = members
                .iter()
                .map(|m| {
                    vec![
                        m.id.clone(),
                        match m.group {
                            Some(group) => format!("server ({} t{})", group.role, group.term),
                            None => m.role.to_string(),
                        },
                        m.state.to_string(),
                        m.addr.clone(),
                        if m.tags.is_empty() {
                            "-".into()
                        } else {
                            m.tags.join(",")
                        },
                        format!("{}/{}", m.running, m.capacity),
                        output::ago(m.last_seen_ms),
                        m.lag
                            .map(|lag| lag.to_string())
                            .unwrap_or_else(|| "-".into()),
                        m.version.clone(),
                    ]
                })
                .collect();
            output::print_table(
                &[
                    "ID",
                    "ROLE",
                    "STATE",
                    "ADDR",
                    "TAGS",
                    "RUNNING",
                    "LAST SEEN",
                    "LAG",
                    "VERSION",
                ],
                &rows,
            );
            Ok(())
        }
    }
}

/// Durations as people write them: `250ms`, `30s`, `5m`, `1h 30m`.
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    humantime::parse_duration(value).map_err(|error| {
        format!("{value:?} is not a duration ({error}); write e.g. 500ms, 30s, 5m")
    })
}
