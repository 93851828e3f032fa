//! The real-terminal event loop. The only module that touches the terminal,
//! the clock or the data source.

use std::io;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ratatui::DefaultTerminal;
use ratatui::crossterm::event::{self, Event, KeyEvent, KeyEventKind};

use crate::app::{App, Options, Outcome};
use crate::source::DataSource;
use crate::views::render;

/// Redraw at least this often so relative times ("2s ago") keep moving.
const CLOCK_TICK: Duration = Duration::from_secs(1);

/// Runs the console on the real terminal until the operator quits.
///
/// `ratatui::try_init` enters the alternate screen and installs a panic hook
/// that restores the terminal; every other exit path restores it here.
/// Refreshes are synchronous between frames: the terminal is never redrawn
/// mid-fetch, but keys typed meanwhile are queued by the terminal, not lost.
pub fn run(source: &mut dyn DataSource, options: Options) -> io::Result<()> {
    let mut terminal = match ratatui::try_init() {
        Ok(terminal) => terminal,
        Err(error) => {
            // Raw mode may already be on when entering the alternate screen fails.
            ratatui::restore();
            return Err(error);
        }
    };
    let result = event_loop(&mut terminal, source, options);
    ratatui::restore();
    result
}

fn event_loop(
    terminal: &mut DefaultTerminal,
    source: &mut dyn DataSource,
    options: Options,
) -> io::Result<()> {
    let refresh_every = options.refresh.max(Duration::from_millis(100));
    let mut app = App::new(options);
    app.tick(now_ms());
    // Show the "connecting…" frame before the first (possibly slow) fetch.
    terminal.draw(|frame| render(&app, frame))?;
    app.apply_snapshot(source.refresh());
    let mut next_refresh = Instant::now() + refresh_every;
    loop {
        app.tick(now_ms());
        terminal.draw(|frame| render(&app, frame))?;

        let wait = next_refresh
            .saturating_duration_since(Instant::now())
            .min(CLOCK_TICK);
        let mut refresh_now = false;
        if let Some(key) = next_key(wait)? {
            match app.handle_key(key) {
                Outcome::None => {}
                Outcome::Quit => return Ok(()),
                Outcome::Refresh => refresh_now = true,
                Outcome::Perform(action) => {
                    // Show "sending…" while the request is in flight.
                    terminal.draw(|frame| render(&app, frame))?;
                    let result = source.perform(&action);
                    app.tick(now_ms());
                    app.report(result);
                    refresh_now = true;
                }
            }
        }
        if refresh_now || Instant::now() >= next_refresh {
            app.apply_snapshot(source.refresh());
            next_refresh = Instant::now() + refresh_every;
        }
    }
}

/// Waits up to `wait` for a key press. Resizes and other events return
/// `None` too: the caller redraws on every iteration anyway.
fn next_key(wait: Duration) -> io::Result<Option<KeyEvent>> {
    if !event::poll(wait)? {
        return Ok(None);
    }
    Ok(match event::read()? {
        Event::Key(key) if key.kind != KeyEventKind::Release => Some(key),
        _ => None,
    })
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
