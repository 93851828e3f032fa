//! A large, made-up cluster for measuring the console: the render benchmark example and the
//! whole-cluster benchmark (`shoal_bench console`) draw the same frames, so their figures agree.

use std::time::{Duration, Instant};

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use crate::{
    App, AttemptRow, InstanceRow, InstanceStatus, JobRow, MemberState, Snapshot, Stats,
    Unplaceable, UnplaceableTotals, WorkerRow, render,
};

/// A fixed "now" so that relative times in the frame never change between runs.
pub const NOW: i64 = 1_704_110_584_000;

/// Times `frames` full draws (render + buffer diff) of `app` at `width`×`height`, after `warmup`
/// untimed ones.
pub fn frame_times(
    app: &App,
    width: u16,
    height: u16,
    warmup: usize,
    frames: usize,
) -> Vec<Duration> {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("test terminal");
    for _ in 0..warmup {
        terminal.draw(|f| render(app, f)).expect("draw");
    }
    (0..frames)
        .map(|_| {
            let start = Instant::now();
            terminal
                .draw(|f| render(std::hint::black_box(app), f))
                .expect("draw");
            start.elapsed()
        })
        .collect()
}

/// Types one character, as an operator would (`3` opens the instances view, `/` a filter).
pub fn press(app: &mut App, c: char) {
    app.handle_key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE));
}

/// A snapshot with `worker_count` workers (a few dead), 200 jobs and `instance_count` instances
/// in every state.
pub fn big_snapshot(worker_count: usize, instance_count: usize) -> Snapshot {
    let tags = ["eu", "us", "gpu", "billing", "batch"];
    let workers = (0..worker_count)
        .map(|i| WorkerRow {
            id: format!("worker-{i:04}"),
            role: if i < 3 { "server" } else { "worker" }.into(),
            state: if i % 50 == 7 {
                MemberState::Dead
            } else {
                MemberState::Live
            },
            addr: format!("10.{}.{}.{}:7946", i / 65_536, i / 256 % 256, i % 256),
            tags: vec![tags[i % 5].into(), tags[(i / 5) % 5].into()],
            running: (i % 5) as u32,
            capacity: 4,
            last_seen_ms: NOW - (i as i64 % 30) * 1_000,
            version: "0.4.0".into(),
        })
        .collect();
    let jobs: Vec<JobRow> = (0..200)
        .map(|i| JobRow {
            id: i,
            name: format!("job-{i:03}"),
            schedule: "every 30s".into(),
            next_fire_ms: Some(NOW + 10_000),
            queued: (i % 4) as u32,
            running: 1,
            last_result: Some(InstanceStatus::Succeeded),
            paused: i % 17 == 0,
            definition: format!("name = \"job-{i:03}\""),
            insecure_tls: false,
            upstream: Vec::new(),
            downstream: Vec::new(),
        })
        .collect();
    let statuses = InstanceStatus::ALL;
    let instances = (0..instance_count)
        .map(|i| {
            let status = statuses[i % statuses.len()];
            InstanceRow {
                id: (instance_count - i) as u64,
                job_id: (i % 200) as u64,
                job: format!("job-{:03}", i % 200),
                status,
                attempt: 1 + (i % 3) as u32,
                worker: Some(format!("worker-{:04}", i % worker_count.max(1))),
                created_ms: NOW - i as i64 * 1_000,
                updated_ms: NOW - i as i64 * 900,
                reason: match status {
                    InstanceStatus::Queued => Some("waiting for a free slot".into()),
                    InstanceStatus::Failed => Some("HTTP 500 from upstream".into()),
                    _ => None,
                },
                attempts: vec![AttemptRow {
                    number: 1,
                    worker: format!("worker-{:04}", i % worker_count.max(1)),
                    started_ms: NOW - 5_000,
                    ended_ms: Some(NOW - 4_000),
                    http_status: Some(500),
                    error: Some("upstream returned 500".into()),
                    excerpt: Some("{\"error\":\"db timeout\"}".into()),
                }],
                parent: None,
                children: Vec::new(),
            }
        })
        .collect();
    Snapshot {
        cluster: "bench".into(),
        server: "http://127.0.0.1:8080".into(),
        fetched_at_ms: NOW,
        workers,
        jobs,
        instances,
        stats: Stats {
            live_workers: 980,
            dead_workers: 20,
            queued: 1_667,
            running: 1_667,
            succeeded_5m: 4_000,
            failed_5m: 120,
            throughput: (0..120).map(|i| (i * 37 % 100) as u64).collect(),
        },
        unplaceable: vec![Unplaceable {
            job: "job-003".into(),
            queued: 3,
            reason: "no live worker carries tag \"billing-eu\" (980 live workers)".into(),
            fix: "shoal worker --join 127.0.0.1:7946 --tag billing-eu".into(),
        }],
        unplaceable_totals: UnplaceableTotals { queued: 3, jobs: 1 },
        degraded: None,
        group: None,
        group_trouble: None,
    }
}
