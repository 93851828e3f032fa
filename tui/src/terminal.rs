//! The real-terminal event loop. The only module that touches the terminal,
//! the clock or the data source.

use std::io;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ratatui::DefaultTerminal;
use ratatui::Terminal;
use ratatui::backend::Backend;
use ratatui::crossterm::event::{self, Event, KeyEvent, KeyEventKind};
use ratatui::layout::Rect;

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

/// What the terminal said while the console waited for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// A key press.
    Key(KeyEvent),
    /// The terminal is now this many columns and rows (for a fixed viewport,
    /// e.g. a remote terminal whose size arrives as a message).
    Resize { width: u16, height: u16 },
    /// Nothing that matters: the wait ran out, or an event the console ignores.
    Nothing,
    /// The terminal is gone or the session ended: stop as if the operator quit.
    Closed,
}

fn event_loop(
    terminal: &mut DefaultTerminal,
    source: &mut dyn DataSource,
    options: Options,
) -> io::Result<()> {
    // Resizes need nothing here: a full-screen viewport re-reads the size on every draw.
    drive(terminal, source, options, &mut |wait| {
        Ok(next_key(wait)?.map_or(Input::Nothing, Input::Key))
    })
}

/// Runs the console on any ratatui terminal until the operator quits or `next_input` says the
/// terminal is closed. `next_input(wait)` must return within about `wait`.
pub fn drive<B: Backend>(
    terminal: &mut Terminal<B>,
    source: &mut dyn DataSource,
    options: Options,
    next_input: &mut dyn FnMut(Duration) -> io::Result<Input>,
) -> io::Result<()>
where
    B::Error: Into<io::Error>,
{
    let refresh_every = options.refresh.max(Duration::from_millis(100));
    let mut app = App::new(options);
    app.tick(now_ms());
    // Show the "connecting…" frame before the first (possibly slow) fetch.
    draw(terminal, &app)?;
    app.apply_snapshot(source.refresh());
    let mut next_refresh = Instant::now() + refresh_every;
    loop {
        app.tick(now_ms());
        draw(terminal, &app)?;

        let wait = next_refresh
            .saturating_duration_since(Instant::now())
            .min(CLOCK_TICK);
        let mut refresh_now = false;
        match next_input(wait)? {
            Input::Nothing => {}
            Input::Closed => return Ok(()),
            Input::Resize { width, height } => {
                terminal
                    .resize(Rect::new(0, 0, width, height))
                    .map_err(Into::into)?;
            }
            Input::Key(key) => match app.handle_key(key) {
                Outcome::None => {}
                Outcome::Refused(action) => source.refused(&action),
                Outcome::Quit => return Ok(()),
                Outcome::Refresh => refresh_now = true,
                Outcome::Perform(action) => {
                    // Show "sending…" while the request is in flight.
                    draw(terminal, &app)?;
                    let result = source.perform(&action);
                    app.tick(now_ms());
                    app.report(result);
                    refresh_now = true;
                }
            },
        }
        if refresh_now || Instant::now() >= next_refresh {
            app.apply_snapshot(source.refresh());
            next_refresh = Instant::now() + refresh_every;
        }
    }
}

fn draw<B: Backend>(terminal: &mut Terminal<B>, app: &App) -> io::Result<()>
where
    B::Error: Into<io::Error>,
{
    terminal
        .draw(|frame| render(app, frame))
        .map(drop)
        .map_err(Into::into)
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
