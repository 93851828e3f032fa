//! One operator's console over SSH: the `shoal-tui` app of `shoal tui`, on its own blocking
//! thread, drawing into the SSH channel and reading keys decoded from it.
//!
//! The console's loop is the same as on a local terminal ([`shoal_tui::drive`]); only its two
//! ends differ. Output: ratatui's crossterm backend writes escape sequences into a
//! [`ChannelWriter`], which sends each frame as channel data. Input: the connection forwards the
//! channel's bytes and window changes through a bounded queue; [`SshInput`] decodes them into
//! keys and closes the console when the operator has been idle too long or has gone.
//!
//! Every action and every refusal of one is logged with the operator's key ([`SshSource`]).
//! This module must never keep anything after its session: the thread ends when the connection
//! does (its queue closes), and the channel is closed when the console quits.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use std::cell::Cell;
use std::rc::Rc;

use ratatui::backend::{Backend, ClearType, CrosstermBackend, WindowSize};
use ratatui::buffer::Cell as BufferCell;
use ratatui::crossterm::event::KeyEvent;
use ratatui::layout::{Position, Rect, Size};
use ratatui::{Terminal, TerminalOptions, Viewport};
use russh::ChannelId;
use russh::server::Handle;
use shoal_tui::{Action, DataSource, Input, Options, Snapshot};

use super::Shared;
use super::input::KeyDecoder;
use super::keys::{Access, Operator};
use crate::client::console::ApiSource;

/// What the connection passes to its console.
#[derive(Debug)]
pub(crate) enum SessionInput {
    Bytes(Vec<u8>),
    Resize { width: u16, height: u16 },
}

/// How long the rest of an escape sequence may take to arrive before a lone ESC counts as the
/// Esc key. Sequences from one key press come in one packet; this only covers a split.
const ESCAPE_WAIT: Duration = Duration::from_millis(50);
/// How long one frame may take to leave; a client that stops reading is given up on.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// Alternate screen on, cursor hidden, bracketed paste on, screen cleared.
const ENTER: &[u8] = b"\x1b[?1049h\x1b[?25l\x1b[?2004h\x1b[2J";
/// Everything ENTER turned on, turned off again.
const LEAVE: &[u8] = b"\x1b[?2004l\x1b[?25h\x1b[?1049l";

/// Terminal sizes as ratatui takes them: at least 1×1, at most what a `u16` holds.
pub(crate) fn clamp_size(cols: u32, rows: u32) -> (u16, u16) {
    let clamp = |n: u32| u16::try_from(n.clamp(1, u32::from(u16::MAX))).unwrap_or(u16::MAX);
    (clamp(cols), clamp(rows))
}

pub(crate) struct ConsoleSession {
    pub shared: Arc<Shared>,
    pub operator: Operator,
    pub peer: SocketAddr,
    pub handle: Handle,
    pub channel: ChannelId,
    pub size: (u16, u16),
    pub input: Receiver<SessionInput>,
}

/// Starts the console on a blocking thread; it closes the channel when it ends.
pub(crate) fn start(session: ConsoleSession) {
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || run(session, runtime));
}

fn run(session: ConsoleSession, runtime: tokio::runtime::Handle) {
    let ConsoleSession {
        shared,
        operator,
        peer,
        handle,
        channel,
        size,
        input,
    } = session;
    let mut writer = ChannelWriter {
        handle: handle.clone(),
        channel,
        runtime: runtime.clone(),
        buffer: Vec::new(),
    };
    let screen = Rc::new(Cell::new(Size::new(size.0, size.1)));
    let mut input = SshInput {
        screen: screen.clone(),
        queue: input,
        decoder: KeyDecoder::new(),
        keys: VecDeque::new(),
        last_input: Instant::now(),
        idle_timeout: shared.idle_timeout,
        shutdown: shared.shutdown.clone(),
        ended: Ended::Quit,
    };
    let mut source = SshSource {
        inner: ApiSource::new(shared.api.clone(), runtime.clone()),
        operator: operator.clone(),
        peer,
    };
    let options = Options {
        refresh: Duration::from_secs(1),
        readonly: operator.access == Access::ReadOnly,
        color: true,
    };
    let result = writer
        .write_all(ENTER)
        .and_then(|()| writer.flush())
        .and_then(|()| {
            let backend = SshBackend {
                inner: CrosstermBackend::new(&mut writer),
                screen,
                cursor: Position::ORIGIN,
            };
            // A fixed viewport: its size comes from the pty request and window changes, never
            // from querying a terminal (the server's own, if it has one, is not the client's).
            let mut terminal = Terminal::with_options(
                backend,
                TerminalOptions {
                    viewport: Viewport::Fixed(Rect::new(0, 0, size.0, size.1)),
                },
            )?;
            shoal_tui::drive(&mut terminal, &mut source, options, &mut |wait| {
                input.next(wait)
            })
        });
    let farewell = match input.ended {
        Ended::Quit => String::new(),
        Ended::Idle => format!(
            "shoal: closed after {} without input\r\n",
            crate::model::human_ms(shared.idle_timeout.as_millis() as u64)
        ),
        Ended::ServerStopping => "shoal: the server is stopping\r\n".to_string(),
    };
    let _ = writer
        .write_all(LEAVE)
        .and_then(|()| writer.write_all(farewell.as_bytes()))
        .and_then(|()| writer.flush());
    match &result {
        Ok(()) => tracing::info!(peer = %peer, key = %operator.fingerprint,
            comment = %operator.comment, why = ?input.ended, "SSH console ended"),
        Err(error) => tracing::info!(peer = %peer, key = %operator.fingerprint,
            comment = %operator.comment, %error, "SSH console ended: the connection is gone"),
    }
    runtime.block_on(async {
        let _ = handle
            .exit_status_request(channel, u32::from(result.is_err()))
            .await;
        let _ = handle.eof(channel).await;
        let _ = handle.close(channel).await;
    });
}

/// The console's output: buffers what the backend writes and sends it as one channel message
/// per flush (ratatui flushes once per frame).
struct ChannelWriter {
    handle: Handle,
    channel: ChannelId,
    runtime: tokio::runtime::Handle,
    buffer: Vec<u8>,
}

impl Write for ChannelWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let frame = std::mem::take(&mut self.buffer);
        let sent = self.runtime.block_on(async {
            tokio::time::timeout(WRITE_TIMEOUT, self.handle.data(self.channel, frame)).await
        });
        match sent {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the SSH session is closed",
            )),
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the SSH client stopped reading",
            )),
        }
    }
}

/// Ratatui's crossterm backend, minus the two questions it would ask the server's own terminal:
/// the size (known from the pty request and window changes) and the cursor position (the last
/// one set; the console hides the cursor anyway).
struct SshBackend<W: Write> {
    inner: CrosstermBackend<W>,
    screen: Rc<Cell<Size>>,
    cursor: Position,
}

impl<W: Write> Backend for SshBackend<W> {
    type Error = io::Error;

    fn draw<'a, I>(&mut self, content: I) -> io::Result<()>
    where
        I: Iterator<Item = (u16, u16, &'a BufferCell)>,
    {
        self.inner.draw(content)
    }

    fn hide_cursor(&mut self) -> io::Result<()> {
        self.inner.hide_cursor()
    }

    fn show_cursor(&mut self) -> io::Result<()> {
        self.inner.show_cursor()
    }

    fn get_cursor_position(&mut self) -> io::Result<Position> {
        Ok(self.cursor)
    }

    fn set_cursor_position<P: Into<Position>>(&mut self, position: P) -> io::Result<()> {
        self.cursor = position.into();
        self.inner.set_cursor_position(self.cursor)
    }

    fn clear(&mut self) -> io::Result<()> {
        self.inner.clear()
    }

    fn clear_region(&mut self, clear_type: ClearType) -> io::Result<()> {
        self.inner.clear_region(clear_type)
    }

    fn size(&self) -> io::Result<Size> {
        Ok(self.screen.get())
    }

    fn window_size(&mut self) -> io::Result<WindowSize> {
        Ok(WindowSize {
            columns_rows: self.screen.get(),
            pixels: Size::new(0, 0),
        })
    }

    fn flush(&mut self) -> io::Result<()> {
        Backend::flush(&mut self.inner)
    }
}

/// The console's input: keys decoded from the channel's bytes, and window changes.
struct SshInput {
    /// The client's terminal size, shared with the backend.
    screen: Rc<Cell<Size>>,
    queue: Receiver<SessionInput>,
    decoder: KeyDecoder,
    keys: VecDeque<KeyEvent>,
    last_input: Instant,
    idle_timeout: Duration,
    shutdown: crate::shutdown::Shutdown,
    /// Why the console was closed, to tell the operator.
    ended: Ended,
}

/// Why a console ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ended {
    /// The operator quit, or the connection is gone.
    Quit,
    /// No input for the idle timeout.
    Idle,
    ServerStopping,
}

impl SshInput {
    fn next(&mut self, wait: Duration) -> io::Result<Input> {
        if self.shutdown.is_triggered() {
            self.ended = Ended::ServerStopping;
            return Ok(Input::Closed);
        }
        if let Some(key) = self.keys.pop_front() {
            return Ok(Input::Key(key));
        }
        let wait = if self.decoder.has_pending() {
            ESCAPE_WAIT
        } else {
            wait
        };
        match self.queue.recv_timeout(wait) {
            Ok(SessionInput::Bytes(bytes)) => {
                self.last_input = Instant::now();
                self.keys.extend(self.decoder.feed(&bytes));
            }
            Ok(SessionInput::Resize { width, height }) => {
                self.screen.set(Size::new(width, height));
                return Ok(Input::Resize { width, height });
            }
            Err(RecvTimeoutError::Timeout) => {
                self.keys.extend(self.decoder.flush());
                if self.last_input.elapsed() >= self.idle_timeout {
                    self.ended = Ended::Idle;
                    return Ok(Input::Closed);
                }
            }
            Err(RecvTimeoutError::Disconnected) => return Ok(Input::Closed),
        }
        Ok(self.keys.pop_front().map_or(Input::Nothing, Input::Key))
    }
}

/// The console's data source over SSH: the API client, with every action logged with the key
/// that asked for it.
struct SshSource {
    inner: ApiSource,
    operator: Operator,
    peer: SocketAddr,
}

impl DataSource for SshSource {
    fn refresh(&mut self) -> Result<Snapshot, String> {
        self.inner.refresh()
    }

    fn perform(&mut self, action: &Action) -> Result<String, String> {
        let result = self.inner.perform(action);
        let op = &self.operator;
        match &result {
            Ok(outcome) => tracing::info!(peer = %self.peer, key = %op.fingerprint,
                comment = %op.comment, %action, %outcome, "SSH console action"),
            Err(error) => tracing::warn!(peer = %self.peer, key = %op.fingerprint,
                comment = %op.comment, %action, %error, "SSH console action failed"),
        }
        result
    }

    fn refused(&mut self, action: &Action) {
        let op = &self.operator;
        tracing::warn!(peer = %self.peer, key = %op.fingerprint, comment = %op.comment,
            %action, "SSH console action refused: the key is read-only");
    }
}

#[cfg(test)]
mod tests {
    use ratatui::crossterm::event::KeyCode;

    use super::*;

    /// A console's input with its queue's sender and the server's shutdown trigger (which must
    /// outlive the input: dropping it means "stop").
    fn input(
        idle_timeout: Duration,
    ) -> (
        SshInput,
        std::sync::mpsc::SyncSender<SessionInput>,
        crate::shutdown::ShutdownTrigger,
    ) {
        let (sender, queue) = std::sync::mpsc::sync_channel(8);
        let (trigger, shutdown) = crate::shutdown::channel();
        let input = SshInput {
            screen: Rc::new(Cell::new(Size::new(80, 24))),
            queue,
            decoder: KeyDecoder::new(),
            keys: VecDeque::new(),
            last_input: Instant::now(),
            idle_timeout,
            shutdown,
            ended: Ended::Quit,
        };
        (input, sender, trigger)
    }

    fn next(input: &mut SshInput) -> Input {
        input.next(Duration::from_millis(10)).unwrap()
    }

    #[test]
    fn bytes_become_keys_and_window_changes_resize() {
        let (mut input, sender, _trigger) = input(Duration::from_secs(3600));
        sender
            .send(SessionInput::Bytes(b"2\x1b[B".to_vec()))
            .unwrap();
        sender
            .send(SessionInput::Resize {
                width: 140,
                height: 40,
            })
            .unwrap();
        let key = |code| Input::Key(KeyEvent::from(code));
        assert_eq!(next(&mut input), key(KeyCode::Char('2')));
        assert_eq!(next(&mut input), key(KeyCode::Down));
        assert_eq!(
            next(&mut input),
            Input::Resize {
                width: 140,
                height: 40
            }
        );
        assert_eq!(input.screen.get(), Size::new(140, 40), "the backend's size");
        assert_eq!(next(&mut input), Input::Nothing);
    }

    #[test]
    fn a_gone_connection_closes_the_console() {
        let (mut input, sender, _trigger) = input(Duration::from_secs(3600));
        drop(sender);
        assert_eq!(next(&mut input), Input::Closed);
        assert_eq!(input.ended, Ended::Quit);
    }

    #[test]
    fn an_idle_console_closes_and_says_why() {
        let (mut input, _sender, _trigger) = input(Duration::from_millis(30));
        let mut polls = 0;
        while next(&mut input) != Input::Closed {
            polls += 1;
            assert!(polls < 1000, "never closed");
        }
        assert_eq!(input.ended, Ended::Idle);
    }

    #[test]
    fn a_stopping_server_closes_the_console() {
        let (mut input, sender, trigger) = input(Duration::from_secs(3600));
        sender.send(SessionInput::Bytes(b"j".to_vec())).unwrap();
        trigger.trigger();
        assert_eq!(next(&mut input), Input::Closed);
        assert_eq!(input.ended, Ended::ServerStopping);
    }
}
