//! Frame-time benchmark: one frame at 200×60 with 1,000 workers and 10,000
//! instances, in the workers and instances views, plus the cost of the work
//! done outside the frame (applying a snapshot, typing a filter character).
//!
//! Run: `cargo run --release -p shoal-tui --example render_bench`

use std::hint::black_box;
use std::time::{Duration, Instant};

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use shoal_tui::{
    App, AttemptRow, InstanceRow, InstanceStatus, JobRow, MemberState, Options, Snapshot, Stats,
    Unplaceable, WorkerRow, render,
};

const WIDTH: u16 = 200;
const HEIGHT: u16 = 60;
const WORKERS: usize = 1_000;
const INSTANCES: usize = 10_000;
const FRAMES: usize = 2_000;
const WARMUP: usize = 100;
const NOW: i64 = 1_704_110_584_000;

fn main() {
    let snapshot = big_snapshot();
    println!(
        "render_bench: {WIDTH}x{HEIGHT}, {} workers, {} instances, {FRAMES} frames each",
        snapshot.workers.len(),
        snapshot.instances.len()
    );

    let mut app = App::new(Options::default());
    app.apply_snapshot(Ok(snapshot.clone()));
    report("workers view (frame)", frames(&app));

    press(&mut app, '3');
    report("instances view (frame)", frames(&app));

    press(&mut app, 'G');
    report("instances view, last page (frame)", frames(&app));

    // Work outside the frame: refresh and filtering rebuild the cached rows.
    let refresh = time(50, || app.apply_snapshot(Ok(snapshot.clone())));
    report("apply_snapshot incl. clone (per refresh)", refresh);
    press(&mut app, '/');
    let mut toggle = false;
    let typing = time(200, || {
        // Alternate typing and deleting one character: each re-filters 10,000 rows.
        if toggle {
            app.handle_key(KeyEvent::new(KeyCode::Backspace, KeyModifiers::NONE));
        } else {
            press(&mut app, 'x');
        }
        toggle = !toggle;
    });
    report("filter keystroke over 10,000 instances", typing);
    for c in "job-00".chars() {
        press(&mut app, c);
    }
    report("instances view, filtered /job-00 (frame)", frames(&app));
}

fn press(app: &mut App, c: char) {
    app.handle_key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE));
}

/// Times `FRAMES` full draws (render + buffer diff) after a warm-up.
fn frames(app: &App) -> Vec<Duration> {
    let mut terminal = Terminal::new(TestBackend::new(WIDTH, HEIGHT)).expect("test terminal");
    for _ in 0..WARMUP {
        terminal.draw(|f| render(app, f)).expect("draw");
    }
    (0..FRAMES)
        .map(|_| {
            let start = Instant::now();
            terminal.draw(|f| render(black_box(app), f)).expect("draw");
            start.elapsed()
        })
        .collect()
}

fn time(n: usize, mut f: impl FnMut()) -> Vec<Duration> {
    (0..n)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect()
}

fn report(what: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let mean = samples.iter().sum::<Duration>() / samples.len().max(1) as u32;
    let p99 = samples[(samples.len() * 99 / 100).min(samples.len() - 1)];
    let max = samples[samples.len() - 1];
    println!(
        "{what:<44} mean {:>9.1} µs   p99 {:>9.1} µs   max {:>9.1} µs",
        micros(mean),
        micros(p99),
        micros(max)
    );
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn big_snapshot() -> Snapshot {
    let tags = ["eu", "us", "gpu", "billing", "batch"];
    let workers = (0..WORKERS)
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
        })
        .collect();
    let statuses = InstanceStatus::ALL;
    let instances = (0..INSTANCES)
        .map(|i| {
            let status = statuses[i % statuses.len()];
            InstanceRow {
                id: (INSTANCES - i) as u64,
                job_id: (i % 200) as u64,
                job: format!("job-{:03}", i % 200),
                status,
                attempt: 1 + (i % 3) as u32,
                worker: Some(format!("worker-{:04}", i % WORKERS)),
                created_ms: NOW - i as i64 * 1_000,
                updated_ms: NOW - i as i64 * 900,
                reason: match status {
                    InstanceStatus::Queued => Some("waiting for a free slot".into()),
                    InstanceStatus::Failed => Some("HTTP 500 from upstream".into()),
                    _ => None,
                },
                attempts: vec![AttemptRow {
                    number: 1,
                    worker: format!("worker-{:04}", i % WORKERS),
                    started_ms: NOW - 5_000,
                    ended_ms: Some(NOW - 4_000),
                    http_status: Some(500),
                    error: Some("upstream returned 500".into()),
                    excerpt: Some("{\"error\":\"db timeout\"}".into()),
                }],
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
    }
}
