//! Frame-time benchmark: one frame at 200×60 with 1,000 workers and 10,000
//! instances, in the workers and instances views, plus the cost of the work
//! done outside the frame (applying a snapshot, typing a filter character).
//!
//! Run: `cargo run --release -p shoal-tui --example render_bench`

use std::time::{Duration, Instant};

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use shoal_tui::fixtures::{big_snapshot, frame_times, press};
use shoal_tui::{App, Options};

const WIDTH: u16 = 200;
const HEIGHT: u16 = 60;
const WORKERS: usize = 1_000;
const INSTANCES: usize = 10_000;
const FRAMES: usize = 2_000;
const WARMUP: usize = 100;

fn main() {
    let snapshot = big_snapshot(WORKERS, INSTANCES);
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

fn frames(app: &App) -> Vec<Duration> {
    frame_times(app, WIDTH, HEIGHT, WARMUP, FRAMES)
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
