//! Test fixtures: a small but complete cluster snapshot, and helpers that
//! render an App into a `TestBackend` and read the screen back as text.

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use crate::app::{App, Options, Outcome};
use crate::snapshot::*;
use crate::views::render;

/// The sizes every view is checked at: the classic terminal and a roomier one.
pub(crate) const SIZES: [(u16, u16); 2] = [(80, 24), (100, 30)];

/// 2024-01-01T12:03:04Z, the fixture's fetch time.
pub(crate) const NOW: i64 = 1_704_110_584_000;

pub(crate) const FIX: &str = "shoal worker --join 127.0.0.1:7946 --tag billing";
pub(crate) const REASON: &str = r#"no live worker carries tag "billing" (2 live workers: w1,w2)"#;

fn worker(id: &str, role: &str, state: MemberState, n: u8, tags: &[&str]) -> WorkerRow {
    WorkerRow {
        id: id.into(),
        role: role.into(),
        state,
        addr: format!("10.0.0.{n}:7946"),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        running: 0,
        capacity: 4,
        last_seen_ms: NOW - 2_000,
        version: "0.4.0".into(),
    }
}

fn instance(id: u64, job_id: u64, job: &str, status: InstanceStatus) -> InstanceRow {
    InstanceRow {
        id,
        job_id,
        job: job.into(),
        status,
        attempt: 1,
        worker: Some("w2".into()),
        created_ms: NOW - 60_000,
        updated_ms: NOW - (110 - id as i64) * 10_000,
        reason: None,
        attempts: Vec::new(),
        parent: None,
        children: Vec::new(),
    }
}

/// A cluster with one dead worker, three jobs (one paused, one stuck on a
/// missing tag) and instances in every interesting state.
pub(crate) fn healthy() -> Snapshot {
    let mut w1 = worker("w1", "server", MemberState::Live, 1, &["gpu", "eu"]);
    w1.running = 1;
    let mut w2 = worker("w2", "worker", MemberState::Live, 2, &["eu"]);
    w2.running = 4;
    w2.last_seen_ms = NOW - 1_000;
    let mut w3 = worker("w3", "worker", MemberState::Dead, 3, &["batch"]);
    w3.capacity = 2;
    w3.last_seen_ms = NOW - 300_000;

    let jobs = vec![
        JobRow {
            id: 1,
            name: "nightly-report".into(),
            schedule: "cron 0 0 2 * * * (UTC)".into(),
            next_fire_ms: Some(NOW + 42_000),
            queued: 0,
            running: 1,
            last_result: Some(InstanceStatus::Succeeded),
            paused: false,
            definition: "name = \"nightly-report\"\nschedule = \"0 0 2 * * *\"\n\n[http]\nurl = \"https://reports.internal/run\"\nmethod = \"POST\"".into(),
            insecure_tls: false,
            upstream: Vec::new(),
            downstream: Vec::new(),
        },
        JobRow {
            id: 2,
            name: "billing-sync".into(),
            schedule: "every 30s".into(),
            next_fire_ms: Some(NOW + 5_000),
            queued: 7,
            running: 0,
            last_result: Some(InstanceStatus::Failed),
            paused: false,
            definition: "name = \"billing-sync\"\ntags = [\"billing\"]".into(),
            insecure_tls: false,
            upstream: Vec::new(),
            downstream: Vec::new(),
        },
        JobRow {
            id: 3,
            name: "cleanup".into(),
            schedule: "every 1h".into(),
            next_fire_ms: None,
            queued: 0,
            running: 0,
            last_result: Some(InstanceStatus::Cancelled),
            paused: true,
            definition: "name = \"cleanup\"".into(),
            insecure_tls: false,
            upstream: Vec::new(),
            downstream: Vec::new(),
        },
    ];

    let mut queued = instance(105, 2, "billing-sync", InstanceStatus::Queued);
    queued.attempt = 0;
    queued.worker = None;
    queued.reason = Some("waiting for a worker tagged billing".into());
    let mut running = instance(104, 1, "nightly-report", InstanceStatus::Running);
    running.worker = Some("w1".into());
    let mut failed = instance(103, 2, "billing-sync", InstanceStatus::Failed);
    failed.attempt = 3;
    failed.reason = Some("HTTP 500 from billing.internal".into());
    failed.attempts = (1..=3)
        .map(|n| AttemptRow {
            number: n,
            worker: "w2".into(),
            started_ms: NOW - 90_000 + i64::from(n) * 10_000,
            ended_ms: Some(NOW - 90_000 + i64::from(n) * 10_000 + 1_250),
            http_status: Some(500),
            error: Some(format!("upstream returned 500 on try {n}")),
            excerpt: Some(format!("{{\"error\":\"db timeout {n}\"}}")),
        })
        .collect();
    let succeeded = instance(102, 1, "nightly-report", InstanceStatus::Succeeded);
    let mut refused = instance(101, 3, "cleanup", InstanceStatus::Failed);
    refused.attempts = vec![AttemptRow {
        number: 1,
        worker: "w2".into(),
        started_ms: NOW - 100_000,
        ended_ms: Some(NOW - 99_000),
        http_status: None,
        error: Some("connection refused".into()),
        excerpt: None,
    }];
    let cancelled = instance(100, 3, "cleanup", InstanceStatus::Cancelled);

    Snapshot {
        cluster: "prod-eu".into(),
        server: "http://10.0.0.1:8080".into(),
        fetched_at_ms: NOW,
        workers: vec![w1, w2, w3],
        jobs,
        instances: vec![queued, running, failed, succeeded, refused, cancelled],
        stats: Stats {
            live_workers: 2,
            dead_workers: 1,
            queued: 7,
            running: 1,
            succeeded_5m: 42,
            failed_5m: 2,
            throughput: vec![1, 3, 2, 5, 8, 4, 6, 7, 3, 2, 9, 4],
        },
        unplaceable: Vec::new(),
        unplaceable_totals: UnplaceableTotals::default(),
        degraded: None,
        group: None,
        group_trouble: None,
    }
}

/// [`healthy`] plus queued work that no live worker can take.
pub(crate) fn stuck() -> Snapshot {
    Snapshot {
        unplaceable: vec![Unplaceable {
            job: "billing-sync".into(),
            queued: 7,
            reason: REASON.into(),
            fix: FIX.into(),
        }],
        unplaceable_totals: UnplaceableTotals { queued: 7, jobs: 1 },
        ..healthy()
    }
}

/// [`healthy`] plus a chain of three jobs, extract → load → report (on success), and one run
/// of it: extract's instance 106 queued load's 107, whose end queued report's 108 (running) and
/// an audit instance the server has since forgotten (109).
pub(crate) fn chained() -> Snapshot {
    let mut snapshot = healthy();
    let link = |job: &str, on: ChainOn| JobLink {
        job: job.into(),
        on,
    };
    let job = |id: u64, name: &str, upstream: Vec<JobLink>, downstream: Vec<JobLink>| JobRow {
        id,
        name: name.into(),
        schedule: "on demand".into(),
        last_result: Some(InstanceStatus::Succeeded),
        definition: format!("name = \"{name}\""),
        upstream,
        downstream,
        ..JobRow::default()
    };
    snapshot.jobs.extend([
        job(4, "extract", vec![], vec![link("load", ChainOn::Success)]),
        job(
            5,
            "load",
            vec![link("extract", ChainOn::Success)],
            vec![
                link("report", ChainOn::Success),
                link("audit", ChainOn::Complete),
            ],
        ),
        job(6, "report", vec![link("load", ChainOn::Success)], vec![]),
    ]);
    let kept = |row: &InstanceRow| ChainLink::Kept {
        id: row.id,
        job: row.job.clone(),
        status: row.status,
    };
    let mut extract = instance(106, 4, "extract", InstanceStatus::Succeeded);
    let mut load = instance(107, 5, "load", InstanceStatus::Succeeded);
    let mut report = instance(108, 6, "report", InstanceStatus::Running);
    report.parent = Some(kept(&load));
    load.parent = Some(kept(&extract));
    load.children = vec![kept(&report), ChainLink::Forgotten { id: 109 }];
    extract.children = vec![kept(&load)];
    snapshot.instances.splice(0..0, [report, load, extract]);
    snapshot
}

pub(crate) fn app_with(snapshot: Snapshot) -> App {
    app_with_options(snapshot, Options::default())
}

pub(crate) fn app_with_options(snapshot: Snapshot, options: Options) -> App {
    let mut app = App::new(options);
    app.apply_snapshot(Ok(snapshot));
    app
}

/// Renders `app` at `width`×`height` and returns the screen, one string per row.
pub(crate) fn render_lines(app: &App, width: u16, height: u16) -> Vec<String> {
    let mut terminal = match Terminal::new(TestBackend::new(width, height)) {
        Ok(terminal) => terminal,
        Err(e) => panic!("test terminal: {e}"),
    };
    if let Err(e) = terminal.draw(|frame| render(app, frame)) {
        panic!("draw: {e}");
    }
    let buffer = terminal.backend().buffer();
    (0..height)
        .map(|y| (0..width).map(|x| buffer[(x, y)].symbol()).collect())
        .collect()
}

/// The first line containing `needle`; fails with the whole screen otherwise.
pub(crate) fn line_with<'a>(lines: &'a [String], needle: &str) -> &'a str {
    match lines.iter().find(|l| l.contains(needle)) {
        Some(line) => line,
        None => panic!("no line contains {needle:?}:\n{}", lines.join("\n")),
    }
}

/// The table row whose first cell starts with `start` (borders skipped), so a
/// worker id in the banner text cannot be mistaken for its row.
pub(crate) fn row_with<'a>(lines: &'a [String], start: &str) -> &'a str {
    let found = lines.iter().find(|l| {
        l.strip_prefix('│')
            .is_some_and(|rest| rest.starts_with(start))
    });
    match found {
        Some(line) => line,
        None => panic!("no row starts with {start:?}:\n{}", lines.join("\n")),
    }
}

pub(crate) fn screen(lines: &[String]) -> String {
    lines.join("\n")
}

pub(crate) fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

pub(crate) fn ctrl(c: char) -> KeyEvent {
    KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL)
}

/// Types `text` one character at a time and returns the last outcome.
pub(crate) fn type_text(app: &mut App, text: &str) -> Outcome {
    let mut last = Outcome::None;
    for c in text.chars() {
        last = app.handle_key(key(KeyCode::Char(c)));
    }
    last
}

/// Prints the main screens for eyeballing layout changes:
/// `cargo test -p shoal-tui print_screens -- --ignored --nocapture`.
#[test]
#[ignore]
fn print_screens() {
    for (w, h) in [(80u16, 24u16), (100, 30)] {
        for keys in [
            "", "2", "3", "4", "2j\n", "4\n", "?", "2jr", "/w[12]", ":inst", "1\n",
        ] {
            let mut app = app_with(stuck());
            for c in keys.chars() {
                let code = if c == '\n' {
                    KeyCode::Enter
                } else {
                    KeyCode::Char(c)
                };
                app.handle_key(key(code));
            }
            println!(
                "=== {w}x{h} keys {keys:?}\n{}",
                screen(&render_lines(&app, w, h))
            );
        }
    }
    let mut app = app_with(healthy());
    app.tick(NOW + 35_000);
    app.apply_snapshot(Err("connection refused (os error 111)".into()));
    println!("=== unreachable\n{}", screen(&render_lines(&app, 80, 24)));
    println!("=== 20x5\n{}", screen(&render_lines(&app, 20, 5)));
}
