//! The console on the real terminal against an in-memory cluster, to try the
//! key map without running Shoal. Every fifth refresh fails, to show the
//! "server unreachable" state; pass `--readonly` or set `NO_COLOR` to see
//! those modes.
//!
//! Run: `cargo run -p shoal-tui --example demo`

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use shoal_tui::{
    Action, AttemptRow, DataSource, InstanceRow, InstanceStatus, JobRow, MemberState, Options,
    Snapshot, Stats, Unplaceable, UnplaceableTotals, WorkerRow,
};

struct Demo {
    refreshes: u32,
    next_id: u64,
    snapshot: Snapshot,
}

impl DataSource for Demo {
    fn refresh(&mut self) -> Result<Snapshot, String> {
        self.refreshes += 1;
        if self.refreshes.is_multiple_of(5) {
            return Err("connect to 127.0.0.1:8080: connection refused".into());
        }
        self.snapshot.fetched_at_ms = now();
        Ok(self.snapshot.clone())
    }

    fn perform(&mut self, action: &Action) -> Result<String, String> {
        match action {
            Action::RunJob { job_id, name } => {
                self.next_id += 1;
                self.snapshot.instances.insert(
                    0,
                    InstanceRow {
                        id: self.next_id,
                        job_id: *job_id,
                        job: name.clone(),
                        created_ms: now(),
                        updated_ms: now(),
                        reason: Some("waiting for a free slot".into()),
                        ..InstanceRow::default()
                    },
                );
                Ok(format!("queued instance {}", self.next_id))
            }
            Action::SetPaused { job_id, paused, .. } => {
                let job = self.snapshot.jobs.iter_mut().find(|j| j.id == *job_id);
                match job {
                    Some(job) => {
                        job.paused = *paused;
                        Ok(if *paused { "paused" } else { "resumed" }.into())
                    }
                    None => Err(format!("job {job_id} not found")),
                }
            }
            Action::RetryInstance { id } => Ok(format!("instance {id} queued again")),
            Action::CancelInstance { id } => Err(format!("instance {id}: already finished")),
        }
    }
}

fn main() -> std::io::Result<()> {
    let options = Options {
        refresh: Duration::from_secs(2),
        readonly: std::env::args().any(|a| a == "--readonly"),
        color: Options::color_from_env(),
    };
    let mut source = Demo {
        refreshes: 0,
        next_id: 1_000,
        snapshot: cluster(),
    };
    shoal_tui::run(&mut source, options)
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn cluster() -> Snapshot {
    let now = now();
    let workers = (0..40)
        .map(|i| WorkerRow {
            id: format!("worker-{i:02}"),
            role: if i == 0 { "server" } else { "worker" }.into(),
            state: if i % 13 == 5 {
                MemberState::Dead
            } else {
                MemberState::Live
            },
            addr: format!("10.0.0.{}:7946", i + 1),
            tags: vec![["eu", "us", "gpu"][i % 3].into()],
            running: (i % 4) as u32,
            capacity: 4,
            last_seen_ms: now - (i as i64 % 7) * 1_000,
            version: "0.4.0".into(),
        })
        .collect();
    let jobs = ["nightly-report", "billing-sync", "cleanup", "index-rebuild"]
        .iter()
        .enumerate()
        .map(|(i, name)| JobRow {
            id: i as u64 + 1,
            name: (*name).into(),
            schedule: ["cron 0 0 2 * * * (UTC)", "every 30s", "every 1h", "every 5m"][i].into(),
            next_fire_ms: Some(now + 30_000 * (i as i64 + 1)),
            queued: if *name == "billing-sync" { 7 } else { 0 },
            running: 1,
            last_result: Some(InstanceStatus::ALL[(i * 2) % 6]),
            paused: *name == "cleanup",
            definition: format!(
                "name = \"{name}\"\nschedule = \"every 30s\"\n\n[http]\nurl = \"https://{name}.internal/run\"\nmethod = \"POST\"\ntimeout = \"30s\""
            ),
            insecure_tls: *name == "index-rebuild",
            upstream: Vec::new(),
            downstream: Vec::new(),
        })
        .collect();
    let instances = (0..500u64)
        .map(|n| {
            let status = InstanceStatus::ALL[(n % 6) as usize];
            let failed = status == InstanceStatus::Failed;
            InstanceRow {
                id: 1_000 - n,
                job_id: n % 4 + 1,
                job: ["nightly-report", "billing-sync", "cleanup", "index-rebuild"]
                    [(n % 4) as usize]
                    .into(),
                status,
                attempt: 1 + (n % 3) as u32,
                worker: Some(format!("worker-{:02}", n % 40)),
                created_ms: now - n as i64 * 7_000,
                updated_ms: now - n as i64 * 6_000,
                reason: failed.then(|| "HTTP 503 from upstream".into()),
                attempts: vec![AttemptRow {
                    number: 1,
                    worker: format!("worker-{:02}", n % 40),
                    started_ms: now - n as i64 * 6_000 - 1_500,
                    ended_ms: Some(now - n as i64 * 6_000),
                    http_status: Some(if failed { 503 } else { 200 }),
                    error: failed.then(|| "upstream returned 503".into()),
                    excerpt: Some(
                        "{\n  \"status\": \"unavailable\",\n\t\"retry_after\": 30\n}".into(),
                    ),
                }],
                parent: None,
                children: Vec::new(),
            }
        })
        .collect();
    Snapshot {
        cluster: "demo".into(),
        server: "http://127.0.0.1:8080".into(),
        fetched_at_ms: now,
        workers,
        jobs,
        instances,
        stats: Stats {
            live_workers: 37,
            dead_workers: 3,
            queued: 7,
            running: 4,
            succeeded_5m: 120,
            failed_5m: 9,
            throughput: (0..60).map(|i| (i * 7 % 13) as u64).collect(),
        },
        unplaceable: vec![Unplaceable {
            job: "billing-sync".into(),
            queued: 7,
            reason: "no live worker carries tag \"billing\" (37 live workers)".into(),
            fix: "shoal worker --join 127.0.0.1:7946 --tag billing".into(),
        }],
        unplaceable_totals: UnplaceableTotals { queued: 7, jobs: 1 },
        degraded: None,
        group: None,
        group_trouble: None,
    }
}
