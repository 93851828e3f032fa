//! `shoal job …` and `shoal instance …`: the API's verbs on the command line.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use super::ClientArgs;
use super::output::{self, Output};
use crate::alert::ChainEdge;
use crate::client::{ApiClient, InstanceQuery};
use crate::model::{Instance, InstanceId, InstanceState, Job, Trigger, human_ms, rfc3339};
use crate::spec::{HttpSpec, JobSpec, RetrySpec, TargetSpec, TlsSpec};
use crate::wire::admin::{BackfillRequest, ChainLinks, InstanceView, NextFires};

#[derive(Debug, Subcommand)]
pub enum JobCommand {
    /// Create a job from flags or a TOML file.
    Add(Box<JobFlags>),
    /// Change a job: flags override its current definition (or --file replaces it).
    Update {
        /// Job name or id.
        job: String,
        #[command(flatten)]
        flags: Box<JobFlags>,
    },
    /// Create or update the job of a TOML file, by name (idempotent).
    Apply {
        #[arg(long, short)]
        file: PathBuf,
    },
    /// List jobs with their queues, by id (every job, fetched a page at a time).
    List {
        /// Only the first N jobs.
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Show one job's definition and state.
    Show { job: String },
    /// Delete a job (its unfinished instances are cancelled; history is kept).
    Delete { job: String },
    /// Stop firing a job on schedule.
    Pause { job: String },
    /// Fire a paused job on schedule again.
    Resume { job: String },
    /// Queue an instance now.
    Run { job: String },
    /// Say the schedule in words and list its next fires.
    Next {
        job: String,
        /// How many fires (at most 100).
        #[arg(long, default_value_t = 5)]
        count: usize,
    },
    /// Create the fires of a past range (marked as backfills), at most 1000 per call.
    Backfill {
        job: String,
        /// First time of the range (RFC 3339), included.
        #[arg(long)]
        from: String,
        /// End of the range (RFC 3339), excluded; not in the future.
        #[arg(long)]
        to: String,
        /// Create them without asking.
        #[arg(long, short)]
        yes: bool,
        /// Only count them.
        #[arg(long, conflicts_with = "yes")]
        dry_run: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum InstanceCommand {
    /// List instances, newest first.
    List {
        /// Only this job's (name or id).
        #[arg(long)]
        job: Option<String>,
        /// Only these states (comma-separated): queued, assigned, running, succeeded, failed,
        /// cancelled.
        #[arg(long)]
        state: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Show an instance with its attempts and, if it waits, why.
    Show { id: InstanceId },
    /// Cancel an unfinished instance.
    Cancel { id: InstanceId },
    /// Run a failed or cancelled instance's job again (as a new instance).
    Retry { id: InstanceId },
}

/// A job as flags. Any flag given overrides the --file (or, for update, the current definition).
#[derive(Debug, Args, Default)]
pub struct JobFlags {
    /// TOML job file (see the README's job file reference).
    #[arg(long, short)]
    file: Option<PathBuf>,
    #[arg(long)]
    name: Option<String>,
    /// Cron expression with seconds: "0 */5 * * * *" (5 fields are accepted and run at second 0).
    #[arg(long, group = "schedule")]
    cron: Option<String>,
    /// Fixed rate, e.g. 30s.
    #[arg(long, group = "schedule")]
    every: Option<String>,
    /// Fixed delay after each finish, e.g. 1m.
    #[arg(long, group = "schedule")]
    delay: Option<String>,
    /// One-shot at an RFC 3339 time, e.g. 2026-12-01T10:00:00Z.
    #[arg(long, group = "schedule")]
    at: Option<String>,
    /// Only run when asked.
    #[arg(long, group = "schedule")]
    on_demand: bool,
    /// IANA timezone of the cron expression (default UTC).
    #[arg(long)]
    timezone: Option<String>,
    /// No scheduled fire before this RFC 3339 time.
    #[arg(long)]
    start_at: Option<String>,
    /// No fire after this RFC 3339 time (the job then ends).
    #[arg(long)]
    end_at: Option<String>,
    /// Delay each scheduled fire by up to this much (fixed per fire), e.g. 30s.
    #[arg(long)]
    jitter: Option<String>,
    #[arg(long)]
    url: Option<String>,
    #[arg(long)]
    method: Option<String>,
    /// A request header, `Name: value`. Repeatable.
    #[arg(long = "header", value_name = "NAME:VALUE")]
    headers: Vec<String>,
    #[arg(long)]
    body: Option<String>,
    /// Request timeout, e.g. 10s.
    #[arg(long)]
    timeout: Option<String>,
    /// Accepted status code (repeatable; default any 2xx).
    #[arg(long = "expect-status")]
    expect_status: Vec<u16>,
    /// The response body must contain this text.
    #[arg(long)]
    expect_body: Option<String>,
    /// The response body must match this regular expression.
    #[arg(long, value_name = "REGEX")]
    expect_body_regex: Option<String>,
    /// Time to connect (TCP and TLS handshake), within --timeout, e.g. 2s.
    #[arg(long)]
    connect_timeout: Option<String>,
    /// Send the request through this HTTP proxy, e.g. http://127.0.0.1:3128.
    #[arg(long)]
    proxy: Option<String>,
    /// PEM file of the CA certificates to trust (instead of the system's); read here and sent
    /// with the job.
    #[arg(long, value_name = "PATH")]
    ca_file: Option<PathBuf>,
    /// PEM file of the client certificate for mTLS (needs --client-key).
    #[arg(long, value_name = "PATH")]
    client_cert: Option<PathBuf>,
    /// PEM file of the client certificate's private key (never shown back).
    #[arg(long, value_name = "PATH")]
    client_key: Option<PathBuf>,
    /// Skip TLS certificate verification (--insecure=false switches it back on).
    #[arg(
        long,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_name = "BOOL"
    )]
    insecure: Option<bool>,
    /// Extra attempts after a failure.
    #[arg(long)]
    retries: Option<u32>,
    /// Delay before the first retry (doubles each time), e.g. 2s.
    #[arg(long)]
    backoff: Option<String>,
    /// Only workers carrying this tag (repeatable: all must match).
    #[arg(long = "tag")]
    tags: Vec<String>,
    /// Only these worker ids (repeatable).
    #[arg(long = "worker")]
    workers: Vec<String>,
    /// least-loaded, round-robin, random or consistent-hash.
    #[arg(long)]
    strategy: Option<String>,
    #[arg(long)]
    max_concurrent: Option<u32>,
    /// How long an instance may wait for a worker before it fails, e.g. 10m.
    #[arg(long)]
    dispatch_timeout: Option<String>,
    /// fire-once, skip or fire-all.
    #[arg(long)]
    misfire: Option<String>,
    /// When the job already has max-concurrent instances: skip (default), buffer-one,
    /// buffer-all or cancel-running.
    #[arg(long)]
    overlap: Option<String>,
    /// Pause the job after this many failed instances in a row.
    #[arg(long, value_name = "N")]
    pause_after_failures: Option<u32>,
    /// Create the job paused.
    #[arg(long)]
    paused: bool,
}

impl JobFlags {
    /// Builds the spec: the file (or `base`) first, then every flag given on top.
    fn to_spec(&self, base: Option<JobSpec>) -> anyhow::Result<JobSpec> {
        let mut spec = match &self.file {
            Some(path) => read_spec(path)?,
            None => base.unwrap_or_default(),
        };
        if let Some(name) = &self.name {
            spec.name = name.clone();
        }
        let schedule_given = self.cron.is_some()
            || self.every.is_some()
            || self.delay.is_some()
            || self.at.is_some()
            || self.on_demand;
        if schedule_given {
            spec.cron = self.cron.clone();
            spec.every = self.every.clone();
            spec.delay = self.delay.clone();
            spec.at = self.at.clone();
            spec.on_demand = self.on_demand;
        }
        set(&mut spec.timezone, &self.timezone);
        set(&mut spec.start_at, &self.start_at);
        set(&mut spec.end_at, &self.end_at);
        set(&mut spec.jitter, &self.jitter);
        let http: &mut HttpSpec = &mut spec.http;
        if let Some(url) = &self.url {
            http.url = url.clone();
        }
        set(&mut http.method, &self.method);
        for header in &self.headers {
            let (name, value) = header.split_once(':').ok_or_else(|| {
                anyhow::anyhow!(
                    "--header {header:?}: expected NAME:VALUE, e.g. \"Authorization: Bearer x\""
                )
            })?;
            http.headers
                .insert(name.trim().to_string(), value.trim().to_string());
        }
        set(&mut http.body, &self.body);
        set(&mut http.timeout, &self.timeout);
        if !self.expect_status.is_empty() {
            http.expect_status = Some(self.expect_status.clone());
        }
        set(&mut http.expect_body, &self.expect_body);
        set(&mut http.expect_body_regex, &self.expect_body_regex);
        set(&mut http.connect_timeout, &self.connect_timeout);
        set(&mut http.proxy, &self.proxy);
        self.apply_tls_flags(http)?;
        if self.retries.is_some() || self.backoff.is_some() {
            let retry = spec.retry.get_or_insert_with(RetrySpec::default);
            if let Some(count) = self.retries {
                retry.count = count;
            }
            set(&mut retry.backoff, &self.backoff);
        }
        if !self.tags.is_empty() || !self.workers.is_empty() {
            let target = spec.target.get_or_insert_with(TargetSpec::default);
            if !self.tags.is_empty() {
                target.tags = self.tags.clone();
            }
            if !self.workers.is_empty() {
                target.workers = self.workers.clone();
            }
        }
        set(&mut spec.strategy, &self.strategy);
        if self.max_concurrent.is_some() {
            spec.max_concurrent = self.max_concurrent;
        }
        set(&mut spec.dispatch_timeout, &self.dispatch_timeout);
        set(&mut spec.misfire, &self.misfire);
        set(&mut spec.overlap, &self.overlap);
        if self.pause_after_failures.is_some() {
            spec.pause_after_failures = self.pause_after_failures;
        }
        if self.paused {
            spec.paused = true;
        }
        Ok(spec)
    }
}

impl JobFlags {
    /// The TLS flags on top of the spec: each file is read here (relative to the working
    /// directory) and replaces what the spec had for it.
    fn apply_tls_flags(&self, http: &mut HttpSpec) -> anyhow::Result<()> {
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
        let mut given = TlsSpec {
            ca_file: path(&self.ca_file),
            client_cert_file: path(&self.client_cert),
            client_key_file: path(&self.client_key),
            ..TlsSpec::default()
        };
        if given == TlsSpec::default() && self.insecure.is_none() {
            return Ok(());
        }
        given.read_files(Path::new("")).map_err(|error| {
            let flag = match error.field.as_str() {
                "http.tls.ca_file" => "--ca-file",
                "http.tls.client_cert_file" => "--client-cert",
                _ => "--client-key",
            };
            anyhow::anyhow!("{flag}: {}", error.reason)
        })?;
        let tls = http.tls.get_or_insert_with(TlsSpec::default);
        if given.ca_pem.is_some() {
            tls.ca_pem = given.ca_pem;
        }
        if given.client_cert_pem.is_some() {
            tls.client_cert_pem = given.client_cert_pem;
        }
        if given.client_key_pem.is_some() {
            tls.client_key_pem = given.client_key_pem;
        }
        if let Some(insecure) = self.insecure {
            tls.insecure = insecure;
        }
        Ok(())
    }
}

fn set(target: &mut Option<String>, value: &Option<String>) {
    if value.is_some() {
        *target = value.clone();
    }
}

/// Reads a job file, with the PEM files it names (relative to it).
fn read_spec(path: &Path) -> anyhow::Result<JobSpec> {
    JobSpec::from_toml_file(path).map_err(|error| match error.field.as_str() {
        "file" => anyhow::anyhow!("{}", error.reason),
        _ => anyhow::anyhow!("{}: {error}", path.display()),
    })
}

/// Validates a spec before sending it, so that a mistake is named even when the request itself
/// would be refused for its size (the server validates again; it never trusts the client).
fn checked(spec: JobSpec) -> anyhow::Result<JobSpec> {
    spec.validate()
        .map_err(|error| anyhow::anyhow!("{error}"))?;
    Ok(spec)
}

pub async fn job(command: JobCommand, args: &ClientArgs) -> anyhow::Result<()> {
    let client = args.client()?;
    match command {
        JobCommand::Add(flags) => {
            let job = client.create_job(&checked(flags.to_spec(None)?)?).await?;
            print_job_change(&job, "created", args.output)
        }
        JobCommand::Update { job, flags } => {
            let base = if flags.file.is_some() {
                None
            } else {
                Some(client.job(&job).await?.def.to_spec())
            };
            let updated = client
                .update_job(&job, &checked(flags.to_spec(base)?)?)
                .await?;
            print_job_change(&updated, "updated", args.output)
        }
        JobCommand::Apply { file } => {
            let job = client.apply_job(&checked(read_spec(&file)?)?).await?;
            print_job_change(&job, "applied", args.output)
        }
        JobCommand::List { limit } => list_jobs(&client, limit, args.output).await,
        JobCommand::Show { job } => {
            let detail = client.job_detail(&job).await?;
            match args.output {
                Output::Json => output::print_json(&detail),
                Output::Table => {
                    let job = &detail.job;
                    let next = client.next_fires(&job.id.to_string(), 5).await?;
                    // Comments, so that the output is still a job file.
                    println!("# job {} — next fire: {}", job.id, next_fire(job));
                    println!("# schedule: {}", next.description);
                    for line in fire_lines(&next) {
                        println!("#   {line}");
                    }
                    for line in chain_lines(&detail.upstream, &job.def.chain.downstream()) {
                        println!("# {line}");
                    }
                    if job.def.http.client.insecure() {
                        println!("{INSECURE_WARNING}");
                    }
                    print!("{}", toml::to_string_pretty(&job.def.to_spec())?);
                    Ok(())
                }
            }
        }
        JobCommand::Next { job, count } => {
            let next = client.next_fires(&job, count).await?;
            match args.output {
                Output::Json => output::print_json(&next),
                Output::Table => {
                    println!("{}: {}", next.job, next.description);
                    for line in fire_lines(&next) {
                        println!("  {line}");
                    }
                    Ok(())
                }
            }
        }
        JobCommand::Backfill {
            job,
            from,
            to,
            yes,
            dry_run,
        } => backfill(&client, &job, from, to, yes, dry_run, args.output).await,
        JobCommand::Delete { job } => {
            let job = client.delete_job(&job).await?;
            print_job_change(&job, "deleted", args.output)
        }
        JobCommand::Pause { job } => {
            let job = client.pause_job(&job).await?;
            print_job_change(&job, "paused", args.output)
        }
        JobCommand::Resume { job } => {
            let job = client.resume_job(&job).await?;
            print_job_change(&job, "resumed", args.output)
        }
        JobCommand::Run { job } => {
            let instance = client.run_job(&job).await?;
            print_instance_change(&instance, "queued", args.output)
        }
    }
}

pub async fn instance(command: InstanceCommand, args: &ClientArgs) -> anyhow::Result<()> {
    let client = args.client()?;
    match command {
        InstanceCommand::List { job, state, limit } => {
            let instances = client
                .instances(&InstanceQuery {
                    job,
                    state,
                    limit: Some(limit),
                })
                .await?;
            match args.output {
                Output::Json => output::print_json(&instances),
                Output::Table => {
                    let instances: Vec<&Instance> = instances.iter().map(|v| &v.instance).collect();
                    print_instance_table(&instances);
                    Ok(())
                }
            }
        }
        InstanceCommand::Show { id } => {
            let instance = client.instance(id).await?;
            match args.output {
                Output::Json => output::print_json(&instance),
                Output::Table => {
                    print_instance_detail(&instance);
                    Ok(())
                }
            }
        }
        InstanceCommand::Cancel { id } => {
            let instance = client.cancel_instance(id).await?;
            print_instance_change(&instance, "cancelled", args.output)
        }
        InstanceCommand::Retry { id } => {
            let instance = client.retry_instance(id).await?;
            print_instance_change(
                &instance,
                &format!("queued as a retry of {id}"),
                args.output,
            )
        }
    }
}

/// A job's place in chains, as lines: who queues it, and whom it queues ("upstream: extract
/// (on_success)", "downstream: report (on_complete)"); nothing for a job in no chain.
fn chain_lines(upstream: &[ChainEdge], downstream: &[ChainEdge]) -> Vec<String> {
    let list = |edges: &[ChainEdge]| {
        edges
            .iter()
            .map(|e| format!("{} ({})", e.job, e.on.field()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut lines = Vec::new();
    if !upstream.is_empty() {
        lines.push(format!(
            "upstream: {} — their end queues this job",
            list(upstream)
        ));
    }
    if !downstream.is_empty() {
        lines.push(format!(
            "downstream: {} — queued by this job's end",
            list(downstream)
        ));
    }
    lines
}

/// The next fires as lines ("2026-06-01T12:00:00.000Z, runs 12:00:07.312Z"), or why there are
/// none.
fn fire_lines(next: &NextFires) -> Vec<String> {
    if next.paused {
        return vec!["paused: no fires until `shoal job resume`".into()];
    }
    if let Some(end) = next.ended_at_ms {
        return vec![format!("ended at {}: no more fires", rfc3339(end))];
    }
    if next.fires.is_empty() {
        return vec!["no fires scheduled".into()];
    }
    next.fires
        .iter()
        .map(|fire| {
            if fire.run_at_ms == fire.scheduled_ms {
                rfc3339(fire.scheduled_ms)
            } else {
                format!(
                    "{}, runs {} (jitter {})",
                    rfc3339(fire.scheduled_ms),
                    rfc3339(fire.run_at_ms),
                    human_ms((fire.run_at_ms - fire.scheduled_ms) as u64)
                )
            }
        })
        .collect()
}

/// Counts the fires first (a dry run), says how many, asks unless `--yes`, then creates them.
async fn backfill(
    client: &ApiClient,
    job: &str,
    from: String,
    to: String,
    yes: bool,
    dry_run: bool,
    out: Output,
) -> anyhow::Result<()> {
    let mut request = BackfillRequest {
        from,
        to,
        dry_run: true,
    };
    let counted = client.backfill(job, &request).await?;
    let what = format!(
        "{} fire(s) of job {:?} from {} to {}",
        counted.count, counted.job, request.from, request.to
    );
    if dry_run || counted.count == 0 {
        return match out {
            Output::Json => output::print_json(&counted),
            Output::Table => {
                println!("{what} (nothing created)");
                Ok(())
            }
        };
    }
    if !yes {
        eprint!("create {what}? [y/N] ");
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            anyhow::bail!(
                "backfill not confirmed: nothing created (pass --yes to skip the question)"
            );
        }
    }
    request.dry_run = false;
    let created = client.backfill(job, &request).await?;
    match out {
        Output::Json => output::print_json(&created),
        Output::Table => {
            println!(
                "created {} backfill instance(s) of job {:?}",
                created.count, created.job
            );
            Ok(())
        }
    }
}

/// Shown above a job that skips certificate verification (a TOML comment, so `job show` output
/// stays a valid job file).
const INSECURE_WARNING: &str =
    "# WARNING: INSECURE — http.tls.insecure = true: TLS certificates are NOT verified";

fn print_job_change(job: &Job, what: &str, out: Output) -> anyhow::Result<()> {
    match out {
        Output::Json => output::print_json(job),
        Output::Table => {
            if job.def.http.client.insecure() {
                eprintln!("{}", INSECURE_WARNING.trim_start_matches("# "));
            }
            println!(
                "job {:?} {what} (id {}); {}; next fire: {}",
                job.def.name,
                job.id,
                job.def.schedule.describe(&job.def.timezone),
                next_fire(job)
            );
            Ok(())
        }
    }
}

fn print_instance_change(instance: &Instance, what: &str, out: Output) -> anyhow::Result<()> {
    match out {
        Output::Json => output::print_json(instance),
        Output::Table => {
            println!(
                "instance {} of job {:?} {what}",
                instance.id, instance.job_name
            );
            Ok(())
        }
    }
}

fn next_fire(job: &Job) -> String {
    match job.next_fire_ms {
        Some(ms) => rfc3339(ms),
        None if job.def.paused => match &job.health.paused_by {
            Some(why) => format!("- ({why})"),
            None => "- (paused)".into(),
        },
        None => match crate::schedule::ended_at(job, crate::model::now_ms()) {
            Some(end) => format!("- (ended at {})", rfc3339(end)),
            None => "-".into(),
        },
    }
}

async fn list_jobs(client: &ApiClient, limit: Option<usize>, out: Output) -> anyhow::Result<()> {
    if limit == Some(0) {
        anyhow::bail!("--limit must be at least 1 (or leave it out for every job)");
    }
    let jobs = client.jobs_up_to(limit).await?;
    if out == Output::Json {
        return output::print_json(&jobs);
    }
    let rows: Vec<Vec<String>> = jobs
        .iter()
        .map(|summary| {
            let job = &summary.job;
            vec![
                job.id.to_string(),
                job.def.name.clone(),
                job.def.schedule.describe(&job.def.timezone),
                next_fire(job),
                summary.queued.to_string(),
                summary.running.to_string(),
                summary
                    .last_result
                    .map_or("-".into(), |k| k.as_str().to_string()),
                if job.def.paused { "yes" } else { "no" }.into(),
            ]
        })
        .collect();
    output::print_table(
        &[
            "ID",
            "NAME",
            "SCHEDULE",
            "NEXT FIRE",
            "QUEUED",
            "RUNNING",
            "LAST",
            "PAUSED",
        ],
        &rows,
    );
    Ok(())
}

fn trigger_name(trigger: Trigger) -> &'static str {
    match trigger {
        Trigger::Schedule => "schedule",
        Trigger::Manual => "manual",
        Trigger::Backfill => "backfill",
        Trigger::Chain => "chain",
    }
}

/// The one-line reason of a state, if it has one.
pub fn state_reason(state: &InstanceState) -> Option<String> {
    match state {
        InstanceState::Queued { reason, .. } => reason.as_ref().map(ToString::to_string),
        InstanceState::Failed { reason } | InstanceState::Cancelled { reason } => {
            Some(reason.clone())
        }
        _ => None,
    }
}

/// "instance 12 of job load (succeeded)", or what is known of one the server forgot.
fn linked(chain: &ChainLinks, id: InstanceId) -> String {
    match chain.get(id) {
        Some(l) => format!("instance {id} of job {} ({})", l.job_name, l.state.as_str()),
        None => format!("instance {id} (no longer kept)"),
    }
}

fn print_instance_table(instances: &[&Instance]) {
    let rows: Vec<Vec<String>> = instances
        .iter()
        .map(|i| {
            vec![
                i.id.to_string(),
                i.job_name.clone(),
                i.state.kind().as_str().to_string(),
                trigger_name(i.trigger).to_string(),
                i.attempts.len().to_string(),
                i.state
                    .worker()
                    .or(i.current_attempt().map(|a| a.worker.as_str()))
                    .unwrap_or("-")
                    .to_string(),
                rfc3339(i.fire_at_ms),
                state_reason(&i.state).unwrap_or_default(),
            ]
        })
        .collect();
    output::print_table(
        &[
            "ID", "JOB", "STATE", "TRIGGER", "ATTEMPTS", "WORKER", "FIRE AT", "REASON",
        ],
        &rows,
    );
}

fn print_instance_detail(view: &InstanceView) {
    let i = &view.instance;
    println!(
        "instance {} of job {:?} (job id {})",
        i.id, i.job_name, i.job_id
    );
    println!("state:    {}", i.state.kind().as_str());
    println!("trigger:  {}", trigger_name(i.trigger));
    if let Some(reason) = state_reason(&i.state) {
        println!("reason:   {reason}");
    }
    if let InstanceState::Queued {
        not_before_ms: Some(at),
        ..
    } = &i.state
    {
        // Held back either for a retry's backoff or, never attempted, until its fire time (the
        // scheduler creates fires a little ahead).
        let label = if i.attempts.is_empty() {
            "due at:"
        } else {
            "retry at:"
        };
        println!("{label:<10}{}", rfc3339(*at));
    }
    if let Some(worker) = i.state.worker() {
        println!("worker:   {worker}");
    }
    if let Some(worker) = &i.pinned_worker {
        println!("broadcast copy for worker {worker}");
    }
    if let Some(parent) = i.parent {
        println!(
            "parent:   {} — its end queued this one",
            linked(&view.chain, parent)
        );
    }
    for (n, child) in i.children.iter().enumerate() {
        let label = if n == 0 { "children:" } else { "" };
        println!("{label:<10}{}", linked(&view.chain, *child));
    }
    println!("fire at:  {}", rfc3339(i.fire_at_ms));
    if let Some(run_at) = i.run_at_ms {
        println!(
            "runs at:  {} (jitter {})",
            rfc3339(run_at),
            human_ms((run_at - i.fire_at_ms).max(0) as u64)
        );
    }
    println!("created:  {}", rfc3339(i.created_ms));
    println!("updated:  {}", rfc3339(i.updated_ms));
    if i.attempts.is_empty() {
        println!("attempts: none yet");
    }
    for a in &i.attempts {
        println!(
            "attempt {} on {}: {}{}{}{}",
            a.number,
            a.worker,
            a.outcome
                .map_or("in progress".to_string(), |o| format!("{o:?}")
                    .to_lowercase()),
            a.http_status
                .map_or(String::new(), |s| format!(", HTTP {s}")),
            a.duration_ms
                .map_or(String::new(), |d| format!(", {}", human_ms(d))),
            a.error
                .as_deref()
                .map_or(String::new(), |e| format!(", {e}")),
        );
        if let Some(excerpt) = &a.excerpt {
            println!(
                "  response: {}",
                excerpt.chars().take(300).collect::<String>()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        flags: JobFlags,
    }

    fn spec(args: &[&str]) -> JobSpec {
        let mut all = vec!["shoal", "--name", "j", "--on-demand", "--url", "https://a/"];
        all.extend_from_slice(args);
        Flags::try_parse_from(all)
            .unwrap()
            .flags
            .to_spec(None)
            .unwrap()
    }

    #[test]
    fn insecure_is_a_switch_that_can_be_turned_off() {
        assert_eq!(spec(&[]).http.tls, None);
        assert!(spec(&["--insecure"]).http.tls.unwrap().insecure);
        assert!(!spec(&["--insecure=false"]).http.tls.unwrap().insecure);
        // It never swallows the next word as its value.
        let flags = Flags::try_parse_from(["shoal", "--insecure", "--proxy", "http://p:1"]);
        assert_eq!(flags.unwrap().flags.proxy.as_deref(), Some("http://p:1"));
    }

    #[test]
    fn pem_flags_are_read_and_a_missing_file_names_the_flag() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(
            &ca,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let spec = spec(&["--ca-file", &ca.display().to_string()]);
        let tls = spec.http.tls.unwrap();
        assert!(tls.ca_pem.unwrap().contains("BEGIN CERTIFICATE"));
        assert_eq!(tls.ca_file, None);
        let error = Flags::try_parse_from([
            "shoal",
            "--url",
            "https://a/",
            "--client-key",
            "/nonexistent/key.pem",
        ])
        .unwrap()
        .flags
        .to_spec(None)
        .unwrap_err();
        assert!(error.to_string().starts_with("--client-key:"), "{error}");
    }
}
