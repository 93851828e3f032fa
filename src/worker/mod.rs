//! The worker daemon: joins the cluster, finds the server through gossip and makes it prove that
//! it holds the cluster token (`link`) before sending it anything else, long-polls it for
//! assignments within its free capacity, runs each HTTP task, and reports results in batches,
//! retrying until the server acknowledges them. On shutdown it stops taking work, lets running
//! tasks finish (bounded by the drain timeout), reports, then leaves.

mod clients;
pub mod executor;
mod link;
mod rpc;
mod taken;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use shoal_gossip::{Membership, MembershipView, NodeInfo, Role};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;

use crate::model::now_ms;
use crate::node::GossipSettings;
use crate::shutdown::{self, Shutdown, ShutdownTrigger};
use crate::tls::ClientTls;
use crate::wire::{Assignment, TaskEvent, TaskResult};
use link::ServerLink;
use rpc::{RpcError, ServerRpc};

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub id: String,
    pub gossip: GossipSettings,
    pub tags: Vec<String>,
    pub capacity: u32,
    pub token: Option<String>,
    /// On shutdown, how long running tasks may take to finish before the worker leaves anyway.
    pub drain_timeout: Duration,
    /// Whom the worker trusts for a server's HTTPS (`--ca`); with a CA, HTTPS only.
    pub tls: ClientTls,
}

/// How long one poll waits for work before asking again.
const POLL_WAIT: Duration = Duration::from_secs(10);
/// A task still running after this long is reported as started before it finishes.
const STARTED_REPORT_DELAY: Duration = Duration::from_millis(100);
/// How long a full worker waits, once a slot frees, for more to free before it polls.
const GATHER_FREED_SLOTS: Duration = Duration::from_millis(1);

pub struct RunningWorker {
    id: String,
    membership: Arc<Membership>,
    trigger: ShutdownTrigger,
    poller: JoinHandle<()>,
    reporter: JoinHandle<()>,
    watcher: JoinHandle<()>,
    slots: Arc<Semaphore>,
    capacity: u32,
    drain_timeout: Duration,
    events: mpsc::UnboundedSender<TaskEvent>,
}

/// What the poll loop and task runners share.
struct Context {
    id: String,
    membership: Arc<Membership>,
    rpc: ServerRpc,
    link: ServerLink,
    http: clients::HttpClients,
    slots: Arc<Semaphore>,
    running: AtomicU32,
    taken: taken::Taken,
    /// The newest term of the server group seen in an assignment: an assignment of an older
    /// term comes from a deposed leader and is refused (0 while servers form no group).
    newest_term: std::sync::atomic::AtomicU64,
}

impl RunningWorker {
    pub async fn start(config: WorkerConfig) -> anyhow::Result<RunningWorker> {
        if config.capacity == 0 {
            anyhow::bail!(
                "--capacity must be at least 1 (how many tasks this worker runs at once)"
            );
        }
        let info = NodeInfo {
            id: config.id.clone(),
            role: Role::Worker,
            api_addr: String::new(),
            tags: config.tags.clone(),
            capacity: config.capacity,
            running: 0,
            version: crate::VERSION.to_string(),
        };
        let membership = Arc::new(config.gossip.join(info).await?);
        tracing::info!(
            id = %config.id,
            gossip = %membership.gossip_addr(),
            seeds = ?config.gossip.seeds,
            tags = ?config.tags,
            capacity = config.capacity,
            "worker started"
        );
        let (trigger, shutdown) = shutdown::channel();
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let slots = Arc::new(Semaphore::new(config.capacity as usize));
        let rpc = ServerRpc::new(&config.tls)?;
        let context = Arc::new(Context {
            id: config.id.clone(),
            membership: membership.clone(),
            link: ServerLink::new(
                rpc.clone(),
                &config.id,
                &config.gossip.cluster,
                config.token.clone(),
                config.tls.https_only(),
            ),
            rpc,
            http: clients::HttpClients::new()?,
            slots: slots.clone(),
            running: AtomicU32::new(0),
            taken: taken::Taken::default(),
            newest_term: std::sync::atomic::AtomicU64::new(0),
        });
        let poller = tokio::spawn(poll_loop(
            context.clone(),
            events_tx.clone(),
            shutdown.clone(),
        ));
        let reporter = tokio::spawn(report_loop(context.clone(), events_rx));
        let watcher = tokio::spawn(report_server_reachability(
            membership.clone(),
            config.gossip.seeds.clone(),
            shutdown,
        ));
        Ok(RunningWorker {
            id: config.id,
            membership,
            trigger,
            poller,
            reporter,
            watcher,
            slots,
            capacity: config.capacity,
            drain_timeout: config.drain_timeout,
            events: events_tx,
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn gossip_addr(&self) -> std::net::SocketAddr {
        self.membership.gossip_addr()
    }

    /// Stops taking work, lets running tasks finish (up to the drain timeout), reports, leaves.
    pub async fn stop(self) {
        self.trigger.trigger();
        let _ = self.poller.await;
        let _ = self.watcher.await;
        let busy = self.capacity as usize - self.slots.available_permits();
        if busy > 0 {
            tracing::info!(running = busy, timeout = ?self.drain_timeout, "draining running tasks");
        }
        let drained =
            tokio::time::timeout(self.drain_timeout, self.slots.acquire_many(self.capacity)).await;
        if drained.is_err() {
            tracing::warn!(
                "drain timeout reached with tasks still running; the server will re-queue them"
            );
        }
        // The reporter ends once every sender is gone and its queue is flushed (bounded).
        drop(self.events);
        if tokio::time::timeout(Duration::from_secs(10), self.reporter)
            .await
            .is_err()
        {
            tracing::warn!("could not deliver every report before leaving");
        }
        self.membership.leave().await;
        tracing::info!(id = %self.id, "worker stopped");
    }
}

/// Runs a worker until SIGINT/SIGTERM.
pub async fn run(config: WorkerConfig) -> anyhow::Result<()> {
    let worker = RunningWorker::start(config).await?;
    shutdown::signal().await;
    worker.stop().await;
    Ok(())
}

/// The first live member announcing itself as a server: only a candidate, until it proves itself
/// to the link.
fn announced_server(view: &MembershipView) -> Option<String> {
    view.live_server().map(|m| m.info.id.clone())
}

/// Asks the server for work whenever there is a free slot.
async fn poll_loop(
    context: Arc<Context>,
    events: mpsc::UnboundedSender<TaskEvent>,
    mut shutdown: Shutdown,
) {
    let mut backoff = Duration::from_millis(200);
    let mut members = context.membership.watch();
    loop {
        if shutdown.is_triggered() {
            return;
        }
        let view = members.borrow_and_update().clone();
        let Some(server) = context.link.connect(&view).await else {
            tokio::select! {
                _ = shutdown.wait() => return,
                _ = members.changed() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            continue;
        };
        if context.slots.available_permits() == 0 {
            tokio::select! {
                _ = shutdown.wait() => return,
                permit = context.slots.acquire() => drop(permit),
            }
            // Tasks handed out together tend to end together: ask for the slots of the whole
            // wave in one poll, instead of one poll (and one server commit) for the first slot
            // and another for the rest.
            tokio::time::sleep(GATHER_FREED_SLOTS).await;
            continue;
        }
        let free = context.slots.available_permits() as u32;
        let poll = context.rpc.poll(
            &server.url,
            server.session.as_deref(),
            &context.id,
            free,
            POLL_WAIT,
        );
        tokio::pin!(poll);
        let polled = loop {
            tokio::select! {
                _ = shutdown.wait() => return,
                polled = &mut poll => break Some(polled),
                // A new leader of the server group: give up this poll (its late answer, from a
                // deposed leader, must not run) and poll the new one.
                changed = members.changed() => {
                    if changed.is_err() || context.link.should_leave(&members.borrow(), &server) {
                        break None;
                    }
                }
            }
        };
        let Some(polled) = polled else {
            continue;
        };
        match polled {
            Ok(assignments) => {
                backoff = Duration::from_millis(200);
                for assignment in assignments {
                    if fenced_by_term(&context, &assignment) {
                        continue;
                    }
                    start_task(&context, &events, assignment);
                }
            }
            Err(RpcError::NotLeader(message)) => {
                tracing::info!(server = %server.server_id, api = %server.api, %message,
                    "server no longer leads its group; looking for the leader");
                context.link.forget(&server).await;
                tokio::select! {
                    _ = shutdown.wait() => return,
                    _ = members.changed() => {}
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                }
            }
            Err(RpcError::SessionRefused) => {
                tracing::info!(server = %server.server_id, api = %server.api,
                    "the server no longer knows our session (it restarted?); handshaking again");
                context.link.forget(&server).await;
            }
            Err(error) => {
                tracing::warn!(%error, server = %server.server_id, api = %server.api,
                    retry_in = ?backoff, "poll failed");
                tokio::select! {
                    _ = shutdown.wait() => return,
                    _ = tokio::time::sleep(backoff) => {}
                    // Gossip names another leader of the server group (the one polled died): go
                    // to it now rather than after the backoff.
                    changed = members.changed() => {
                        if changed.is_ok() && context.link.should_leave(&members.borrow(), &server) {
                            context.link.forget(&server).await;
                            continue;
                        }
                    }
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Whether `assignment` comes from a term older than one already seen (a deposed leader's: the
/// new leader may have handed the same instance to another worker). Records a newer term.
fn fenced_by_term(context: &Context, assignment: &Assignment) -> bool {
    let newest = context
        .newest_term
        .fetch_max(assignment.term, Ordering::SeqCst);
    if assignment.term < newest {
        tracing::warn!(
            instance = assignment.instance,
            attempt = assignment.attempt,
            term = assignment.term,
            newest_term = newest,
            "refused an assignment of an older term (from a deposed leader); the current leader \
             hands the instance out again"
        );
        return true;
    }
    false
}

/// Runs one assignment in its own task. It holds a sender of the report queue, so the reporter
/// outlives every running task.
fn start_task(
    context: &Arc<Context>,
    events: &mpsc::UnboundedSender<TaskEvent>,
    assignment: Assignment,
) {
    let Ok(permit) = context.slots.clone().try_acquire_owned() else {
        // The server never sends more than the free slots we asked for; if it does, the lease
        // runs out and the task is re-queued elsewhere.
        tracing::warn!(
            instance = assignment.instance,
            "assignment beyond capacity ignored"
        );
        return;
    };
    if !context
        .taken
        .first_time(assignment.instance, assignment.attempt)
    {
        tracing::info!(
            instance = assignment.instance,
            attempt = assignment.attempt,
            "assignment already taken (handed out again after a server restart); not run twice"
        );
        return;
    }
    let context = context.clone();
    let events = events.clone();
    tokio::spawn(async move {
        let running = context.running.fetch_add(1, Ordering::SeqCst) + 1;
        context.membership.set_running(running).await;
        let started_ms = now_ms();
        let tag = format!("{}-{}", assignment.instance, assignment.attempt);
        let execution = executor::execute(&context.http, &assignment.task, &tag);
        tokio::pin!(execution);
        // A task that ends quickly is reported once, as finished (which carries its start);
        // only a longer one is reported as started first. That halves the server's durable
        // writes for short tasks, and "running" still shows for anything an operator can see.
        let execution = tokio::select! {
            done = &mut execution => done,
            _ = tokio::time::sleep(STARTED_REPORT_DELAY) => {
                let _ = events.send(TaskEvent::Started {
                    instance: assignment.instance,
                    attempt: assignment.attempt,
                    at_ms: started_ms,
                });
                execution.await
            }
        };
        tracing::debug!(instance = assignment.instance, attempt = assignment.attempt,
            job = %assignment.job, succeeded = execution.succeeded, status = ?execution.http_status,
            error = ?execution.error, "task finished");
        let _ = events.send(TaskEvent::Finished(TaskResult {
            instance: assignment.instance,
            attempt: assignment.attempt,
            started_ms: execution.started_ms,
            ended_ms: execution.ended_ms,
            succeeded: execution.succeeded,
            http_status: execution.http_status,
            error: execution.error,
            excerpt: execution.excerpt,
        }));
        let running = context.running.fetch_sub(1, Ordering::SeqCst) - 1;
        context.membership.set_running(running).await;
        drop(permit);
    });
}

/// Most events sent in one report.
const REPORT_BATCH: usize = 1024;

/// Sends events in batches; a batch is retried until the server acknowledges it (the server
/// applies each event at most once: a repeated one is refused by its fence).
async fn report_loop(context: Arc<Context>, mut events: mpsc::UnboundedReceiver<TaskEvent>) {
    let mut batch = Vec::new();
    while let Some(first) = events.recv().await {
        batch.push(first);
        while batch.len() < REPORT_BATCH {
            match events.try_recv() {
                Ok(event) => batch.push(event),
                Err(_) => break,
            }
        }
        let mut backoff = Duration::from_millis(100);
        loop {
            let server = context.link.connect(&context.membership.view()).await;
            let sent = match &server {
                Some(server) => {
                    context
                        .rpc
                        .report(&server.url, server.session.as_deref(), &context.id, &batch)
                        .await
                }
                None => Err(anyhow::anyhow!("no authenticated live server").into()),
            };
            match sent {
                Ok(ack) => {
                    for refusal in ack.refused {
                        tracing::warn!(instance = refusal.instance, attempt = refusal.attempt,
                            reason = %refusal.reason, "server refused a result");
                    }
                    break;
                }
                Err(error) => {
                    if let (RpcError::SessionRefused | RpcError::NotLeader(_), Some(server)) =
                        (&error, &server)
                    {
                        context.link.forget(server).await;
                    }
                    tracing::warn!(%error, events = batch.len(), retry_in = ?backoff,
                        "report not delivered yet");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        batch.clear();
    }
}

/// Logs when the server becomes reachable or is lost, and — while it is not — says so at a
/// growing interval rather than silently waiting or spinning.
async fn report_server_reachability(
    membership: Arc<Membership>,
    seeds: Vec<String>,
    mut shutdown: Shutdown,
) {
    let mut watch = membership.watch();
    let mut server: Option<String> = None;
    let mut quiet_for = Duration::from_secs(3);
    loop {
        let current = announced_server(&watch.borrow_and_update());
        match (&server, &current) {
            (None, Some(id)) => tracing::info!(server = %id,
                "joined cluster: a server is announced in gossip"),
            (Some(_), None) => tracing::warn!("server lost: no live server in the cluster"),
            _ => {}
        }
        if server.is_some() != current.is_some() {
            quiet_for = Duration::from_secs(3);
        }
        server = current;
        tokio::select! {
            _ = shutdown.wait() => return,
            changed = watch.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep(quiet_for), if server.is_none() => {
                tracing::warn!(
                    seeds = ?seeds,
                    "no server reachable yet; still trying. Is `shoal server` running, and is \
                     --join its gossip address (the server logs it at start-up)?"
                );
                quiet_for = (quiet_for * 2).min(Duration::from_secs(60));
            }
        }
    }
}
