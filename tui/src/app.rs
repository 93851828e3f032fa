//! Console state and key handling. Everything here is synchronous and free of
//! I/O: the run loop feeds snapshots and keys in, and carries `Outcome`s out.

use std::cell::Cell;
use std::cmp::Reverse;
use std::time::Duration;

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use ratatui::layout::Rect;

use crate::action::Action;
use crate::filter::Filter;
use crate::keymap::{self, Command, Intent};
use crate::list::{ListState, RowKey};
use crate::snapshot::{InstanceRow, InstanceStatus, JobRow, Snapshot};
use crate::views;

/// How the console was started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// How often to fetch a snapshot.
    pub refresh: Duration,
    /// Refuse every action (see [`Action::is_destructive`]).
    pub readonly: bool,
    /// False when `NO_COLOR` is set: emphasis then uses bold/reversed/underline.
    pub color: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            refresh: Duration::from_secs(2),
            readonly: false,
            color: true,
        }
    }
}

impl Options {
    /// Whether colour is wanted according to <https://no-color.org>: any
    /// non-empty `NO_COLOR` turns it off. For the binary's convenience.
    pub fn color_from_env() -> bool {
        std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
    }
}

/// What the run loop must do after a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing beyond redrawing.
    None,
    Quit,
    /// Fetch a snapshot now instead of waiting for the next tick.
    Refresh,
    /// The operator confirmed this action; send it to the data source and
    /// pass the result to [`App::report`].
    Perform(Action),
    /// Read-only mode refused this action (the status line says so); the run
    /// loop may record who asked for it.
    Refused(Action),
}

/// The four table views, in tab order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum View {
    Workers,
    Jobs,
    Instances,
    Failures,
}

impl View {
    pub const ALL: [View; 4] = [View::Workers, View::Jobs, View::Instances, View::Failures];

    pub fn title(self) -> &'static str {
        match self {
            View::Workers => "workers",
            View::Jobs => "jobs",
            View::Instances => "instances",
            View::Failures => "failures",
        }
    }

    pub(crate) fn index(self) -> usize {
        match self {
            View::Workers => 0,
            View::Jobs => 1,
            View::Instances => 2,
            View::Failures => 3,
        }
    }

    fn next(self) -> View {
        View::ALL[(self.index() + 1) % View::ALL.len()]
    }

    fn prev(self) -> View {
        View::ALL[(self.index() + View::ALL.len() - 1) % View::ALL.len()]
    }
}

/// A one-line text prompt in the footer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Prompt {
    pub kind: PromptKind,
    pub text: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PromptKind {
    /// `:` command line.
    Command,
    /// `/` filter, applied live as the operator types.
    Filter,
}

/// What the detail pane shows, by identity so it follows the object across
/// refreshes rather than whatever row ends up at the same position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum DetailTarget {
    Worker(String),
    Job(u64),
    Instance(u64),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Detail {
    pub target: DetailTarget,
    pub scroll: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StatusKind {
    Info,
    Success,
    Error,
}

/// The footer's message, e.g. the server's answer to an action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Status {
    pub text: String,
    pub kind: StatusKind,
    pub at_ms: i64,
}

/// How long a status message stays in the footer.
const STATUS_TTL_MS: i64 = 15_000;

/// Areas of the last rendered frame. Key handling needs the viewport height
/// to page and scroll; render records it here (a `Cell`, because rendering
/// takes `&App` and must not otherwise change state).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Areas {
    pub screen: Rect,
    pub body: Rect,
}

/// The console: last snapshot, connection state and all UI state.
#[derive(Debug)]
pub struct App {
    pub(crate) options: Options,
    pub(crate) view: View,
    /// Views visited before the current one; Esc walks back through them.
    pub(crate) history: Vec<View>,
    pub(crate) lists: [ListState; 4],
    /// State filter of the instances view (`s`, `:instances failed`).
    pub(crate) state_filter: Option<InstanceStatus>,
    pub(crate) snapshot: Option<Snapshot>,
    /// Error of the last refresh; `Some` means the data on screen is stale.
    pub(crate) error: Option<String>,
    pub(crate) prompt: Option<Prompt>,
    /// An action waiting for y/n.
    pub(crate) confirm: Option<Action>,
    /// The action sent to the source, awaiting [`App::report`].
    pub(crate) in_flight: Option<Action>,
    /// Scroll position of the help overlay when it is open.
    pub(crate) help: Option<usize>,
    pub(crate) detail: Option<Detail>,
    pub(crate) status: Option<Status>,
    /// Wall clock for relative times, set by [`App::tick`] so rendering never
    /// reads the system clock.
    pub(crate) now_ms: i64,
    pub(crate) areas: Cell<Areas>,
}

/// Cap on the view history so a long session does not grow it without bound.
const HISTORY_LIMIT: usize = 32;

impl App {
    pub fn new(options: Options) -> App {
        App {
            options,
            view: View::Workers,
            history: Vec::new(),
            lists: Default::default(),
            state_filter: None,
            snapshot: None,
            error: None,
            prompt: None,
            confirm: None,
            in_flight: None,
            help: None,
            detail: None,
            status: None,
            now_ms: 0,
            areas: Cell::new(Areas::default()),
        }
    }

    pub fn view(&self) -> View {
        self.view
    }

    pub fn options(&self) -> &Options {
        &self.options
    }

    /// The last snapshot received, if any.
    pub fn snapshot(&self) -> Option<&Snapshot> {
        self.snapshot.as_ref()
    }

    /// The last refresh error while the server is unreachable.
    pub fn last_error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// The status line's text, if a message is current.
    pub fn status(&self) -> Option<&str> {
        self.current_status().map(|s| s.text.as_str())
    }

    pub(crate) fn current_status(&self) -> Option<&Status> {
        self.status
            .as_ref()
            .filter(|s| self.now_ms - s.at_ms < STATUS_TTL_MS)
    }

    /// Advances the console's clock (unix ms) for relative times and status
    /// expiry.
    pub fn tick(&mut self, now_ms: i64) {
        self.now_ms = now_ms;
    }

    /// Takes the result of a refresh. On error the last data stays on screen
    /// and the header says the server is unreachable.
    pub fn apply_snapshot(&mut self, result: Result<Snapshot, String>) {
        match result {
            Ok(snapshot) => {
                // Remember what is selected before the rows change under it.
                let keys = View::ALL.map(|view| self.selected_key(view));
                self.now_ms = self.now_ms.max(snapshot.fetched_at_ms);
                self.snapshot = Some(snapshot);
                self.error = None;
                for (view, key) in View::ALL.into_iter().zip(keys) {
                    self.rebuild_keeping(view, key);
                }
            }
            Err(message) => {
                self.error = Some(message);
            }
        }
    }

    /// Shows the data source's answer to the action last returned in
    /// [`Outcome::Perform`].
    pub fn report(&mut self, result: Result<String, String>) {
        let what = self
            .in_flight
            .take()
            .map_or_else(|| "action".to_string(), |a| a.to_string());
        match result {
            Ok(message) if message.trim().is_empty() => {
                self.set_status(StatusKind::Success, format!("{what}: done"))
            }
            Ok(message) => self.set_status(StatusKind::Success, format!("{what}: {message}")),
            Err(error) => self.set_status(StatusKind::Error, format!("{what} failed: {error}")),
        }
    }

    /// Updates UI state for a key and says what the run loop must do.
    pub fn handle_key(&mut self, key: KeyEvent) -> Outcome {
        if key.kind == KeyEventKind::Release {
            return Outcome::None;
        }
        if keymap::is_interrupt(&key) {
            return Outcome::Quit;
        }
        if let Some(action) = self.confirm.take() {
            return self.on_confirm_key(key, action);
        }
        if let Some(prompt) = self.prompt.take() {
            return self.on_prompt_key(key, prompt);
        }
        if self.help.is_some() {
            return self.on_help_key(key);
        }
        match keymap::intent(&key) {
            Some(intent) => self.on_intent(intent),
            None => Outcome::None,
        }
    }

    fn on_confirm_key(&mut self, key: KeyEvent, action: Action) -> Outcome {
        match key.code {
            KeyCode::Char('y') | KeyCode::Char('Y') => {
                self.set_status(StatusKind::Info, format!("{action}: sending…"));
                self.in_flight = Some(action.clone());
                Outcome::Perform(action)
            }
            KeyCode::Char('n') | KeyCode::Char('N') | KeyCode::Esc => {
                self.set_status(StatusKind::Info, format!("not done: {action}"));
                Outcome::None
            }
            _ => {
                self.confirm = Some(action);
                Outcome::None
            }
        }
    }

    fn on_prompt_key(&mut self, key: KeyEvent, mut prompt: Prompt) -> Outcome {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            KeyCode::Esc => {
                if prompt.kind == PromptKind::Filter {
                    self.set_filter("");
                }
                return Outcome::None;
            }
            KeyCode::Enter => {
                return match prompt.kind {
                    PromptKind::Command => self.run_command(&prompt.text),
                    PromptKind::Filter => Outcome::None,
                };
            }
            KeyCode::Backspace if prompt.text.is_empty() => return Outcome::None,
            KeyCode::Backspace => {
                prompt.text.pop();
            }
            KeyCode::Char('u') if ctrl => prompt.text.clear(),
            KeyCode::Char('w') if ctrl => {
                let kept = prompt.text.trim_end().rfind(' ').map_or(0, |i| i + 1);
                prompt.text.truncate(kept);
            }
            KeyCode::Tab if prompt.kind == PromptKind::Command => {
                if let Some(completed) = keymap::complete(&prompt.text) {
                    prompt.text = completed;
                }
            }
            KeyCode::Char(c) if !ctrl => prompt.text.push(c),
            _ => {}
        }
        if prompt.kind == PromptKind::Filter {
            self.set_filter(&prompt.text);
        }
        self.prompt = Some(prompt);
        Outcome::None
    }

    fn on_help_key(&mut self, key: KeyEvent) -> Outcome {
        let intent = keymap::intent(&key);
        let max = views::help::max_scroll(self.areas.get().screen);
        let scroll = self.help.unwrap_or(0);
        let page = usize::from(self.areas.get().screen.height / 2).max(1);
        self.help = match intent {
            Some(Intent::Quit) => return Outcome::Quit,
            Some(Intent::Back | Intent::ToggleHelp | Intent::Open) => None,
            Some(Intent::Down) => Some(scroll + 1),
            Some(Intent::Up) => Some(scroll.saturating_sub(1)),
            Some(Intent::PageDown) => Some(scroll + page),
            Some(Intent::PageUp) => Some(scroll.saturating_sub(page)),
            Some(Intent::Top) => Some(0),
            Some(Intent::Bottom) => Some(max),
            _ => Some(scroll),
        }
        .map(|s| s.min(max));
        Outcome::None
    }

    fn on_intent(&mut self, intent: Intent) -> Outcome {
        match intent {
            Intent::Quit => return Outcome::Quit,
            Intent::Refresh => return Outcome::Refresh,
            Intent::ToggleHelp => self.help = Some(0),
            Intent::StartCommand => self.open_prompt(PromptKind::Command),
            Intent::StartFilter => self.open_prompt(PromptKind::Filter),
            Intent::Show(view) => self.show(view),
            Intent::NextView => self.show(self.view.next()),
            Intent::PrevView => self.show(self.view.prev()),
            Intent::Back => self.back(),
            Intent::Open => self.open_detail(),
            Intent::CycleState => self.cycle_state(),
            Intent::Down
            | Intent::Up
            | Intent::PageDown
            | Intent::PageUp
            | Intent::Top
            | Intent::Bottom => self.navigate(intent),
            Intent::RunJob | Intent::TogglePause | Intent::Retry | Intent::Cancel => {
                match self.action_for(intent) {
                    Ok(action) => return self.request(action),
                    Err(why) => self.set_status(StatusKind::Info, why),
                }
            }
        }
        Outcome::None
    }

    /// The single gate every action passes before the confirm dialog; the
    /// only place read-only mode is enforced.
    fn request(&mut self, action: Action) -> Outcome {
        if self.options.readonly && action.is_destructive() {
            self.set_status(StatusKind::Error, "read-only: actions are disabled".into());
            return Outcome::Refused(action);
        }
        self.confirm = Some(action);
        Outcome::None
    }

    /// The action an action key means for the focused row, or why there is
    /// none.
    fn action_for(&self, intent: Intent) -> Result<Action, String> {
        match intent {
            Intent::RunJob | Intent::TogglePause => {
                let job = self.focused_job().ok_or_else(|| {
                    let key = if intent == Intent::RunJob { 'r' } else { 'p' };
                    format!("{key} acts on a job: select one in the jobs view (2)")
                })?;
                Ok(if intent == Intent::RunJob {
                    Action::RunJob {
                        job_id: job.id,
                        name: job.name.clone(),
                    }
                } else {
                    Action::SetPaused {
                        job_id: job.id,
                        name: job.name.clone(),
                        paused: !job.paused,
                    }
                })
            }
            _ => {
                let key = if intent == Intent::Retry { 'R' } else { 'c' };
                let inst = self.focused_instance().ok_or_else(|| {
                    format!(
                        "{key} acts on an instance: select one in instances (3) or failures (4)"
                    )
                })?;
                let (id, status) = (inst.id, inst.status.label());
                match (intent, inst.status.is_terminal()) {
                    (Intent::Retry, true) => Ok(Action::RetryInstance { id }),
                    (Intent::Retry, false) => Err(format!(
                        "instance {id} is {status}; only finished instances can be retried"
                    )),
                    (_, false) => Ok(Action::CancelInstance { id }),
                    (_, true) => Err(format!("instance {id} is {status}; nothing to cancel")),
                }
            }
        }
    }

    /// The job an action key applies to: the one in the detail pane, or the
    /// selected row of the jobs view.
    pub(crate) fn focused_job(&self) -> Option<&JobRow> {
        let snapshot = self.snapshot.as_ref()?;
        match &self.detail {
            Some(Detail {
                target: DetailTarget::Job(id),
                ..
            }) => snapshot.jobs.iter().find(|j| j.id == *id),
            Some(_) => None,
            None if self.view == View::Jobs => self
                .selected_row(View::Jobs)
                .and_then(|i| snapshot.jobs.get(i)),
            None => None,
        }
    }

    /// The instance an action key applies to, like [`App::focused_job`].
    pub(crate) fn focused_instance(&self) -> Option<&InstanceRow> {
        let snapshot = self.snapshot.as_ref()?;
        match &self.detail {
            Some(Detail {
                target: DetailTarget::Instance(id),
                ..
            }) => snapshot.instances.iter().find(|i| i.id == *id),
            Some(_) => None,
            None if matches!(self.view, View::Instances | View::Failures) => self
                .selected_row(self.view)
                .and_then(|i| snapshot.instances.get(i)),
            None => None,
        }
    }

    /// Index into the snapshot vector of the view's selected row.
    pub(crate) fn selected_row(&self, view: View) -> Option<usize> {
        self.lists[view.index()].selected_row()
    }

    pub(crate) fn list(&self, view: View) -> &ListState {
        &self.lists[view.index()]
    }

    fn set_status(&mut self, kind: StatusKind, text: String) {
        self.status = Some(Status {
            text,
            kind,
            at_ms: self.now_ms,
        });
    }

    fn open_prompt(&mut self, kind: PromptKind) {
        let text = match kind {
            PromptKind::Command => String::new(),
            PromptKind::Filter => {
                // The filter belongs to the table, so leave the detail pane.
                self.detail = None;
                self.list(self.view)
                    .filter
                    .as_ref()
                    .map_or_else(String::new, |f| f.raw().to_string())
            }
        };
        self.prompt = Some(Prompt { kind, text });
    }

    fn run_command(&mut self, line: &str) -> Outcome {
        match keymap::parse_command(line) {
            Ok(Command::Show(view)) => self.show(view),
            Ok(Command::Instances(state)) => {
                if let Some(state) = state {
                    self.state_filter = state;
                    self.rebuild(View::Instances);
                }
                self.show(View::Instances);
            }
            Ok(Command::Refresh) => return Outcome::Refresh,
            Ok(Command::Help) => self.help = Some(0),
            Ok(Command::Quit) => return Outcome::Quit,
            Err(error) => self.set_status(StatusKind::Error, error),
        }
        Outcome::None
    }

    /// Switches view, remembering the current one for Esc.
    fn show(&mut self, view: View) {
        self.detail = None;
        if view == self.view {
            return;
        }
        if self.history.len() == HISTORY_LIMIT {
            self.history.remove(0);
        }
        self.history.push(self.view);
        self.view = view;
    }

    /// Esc: undo the innermost thing — detail pane, then the text filter, then
    /// the state filter, then the view switch.
    fn back(&mut self) {
        if self.detail.take().is_some() {
            return;
        }
        if self.list(self.view).filter.is_some() {
            self.set_filter("");
            return;
        }
        if self.view == View::Instances && self.state_filter.is_some() {
            self.state_filter = None;
            self.rebuild(View::Instances);
            return;
        }
        match self.history.pop() {
            Some(view) => self.view = view,
            None => self.status = None,
        }
    }

    fn open_detail(&mut self) {
        let Some(snapshot) = self.snapshot.as_ref() else {
            return;
        };
        let row = self.selected_row(self.view);
        let target = match self.view {
            View::Workers => row
                .and_then(|i| snapshot.workers.get(i))
                .map(|w| DetailTarget::Worker(w.id.clone())),
            View::Jobs => row
                .and_then(|i| snapshot.jobs.get(i))
                .map(|j| DetailTarget::Job(j.id)),
            View::Instances | View::Failures => row
                .and_then(|i| snapshot.instances.get(i))
                .map(|i| DetailTarget::Instance(i.id)),
        };
        match target {
            Some(target) => self.detail = Some(Detail { target, scroll: 0 }),
            None => self.set_status(StatusKind::Info, "nothing selected".into()),
        }
    }

    fn cycle_state(&mut self) {
        if self.view != View::Instances {
            self.set_status(
                StatusKind::Info,
                "s filters instances by state: open instances (3)".into(),
            );
            return;
        }
        self.detail = None;
        self.state_filter = match self.state_filter {
            None => Some(InstanceStatus::ALL[0]),
            Some(current) => InstanceStatus::ALL
                .iter()
                .skip_while(|s| **s != current)
                .nth(1)
                .copied(),
        };
        self.rebuild(View::Instances);
    }

    /// Rows visible in a table at the last rendered size (borders and column
    /// header excluded).
    fn table_height(&self) -> usize {
        usize::from(self.areas.get().body.height.saturating_sub(3)).max(1)
    }

    fn navigate(&mut self, intent: Intent) {
        if self.detail.is_some() {
            self.scroll_detail(intent);
            return;
        }
        let height = self.table_height();
        let page = height as isize;
        let list = &mut self.lists[self.view.index()];
        match intent {
            Intent::Down => list.move_by(1, height),
            Intent::Up => list.move_by(-1, height),
            Intent::PageDown => list.move_by(page, height),
            Intent::PageUp => list.move_by(-page, height),
            Intent::Top => list.top(height),
            _ => list.bottom(height),
        }
    }

    fn scroll_detail(&mut self, intent: Intent) {
        let body = self.areas.get().body;
        let max = views::detail::max_scroll(self, body);
        let page = usize::from(body.height.saturating_sub(2)).max(1);
        if let Some(detail) = self.detail.as_mut() {
            let scroll = detail.scroll;
            detail.scroll = match intent {
                Intent::Down => scroll + 1,
                Intent::Up => scroll.saturating_sub(1),
                Intent::PageDown => scroll + page,
                Intent::PageUp => scroll.saturating_sub(page),
                Intent::Top => 0,
                _ => max,
            }
            .min(max);
        }
    }

    fn set_filter(&mut self, text: &str) {
        let list = &mut self.lists[self.view.index()];
        let current = list.filter.as_ref().map_or("", |f| f.raw());
        if current == text {
            return;
        }
        list.filter = (!text.is_empty()).then(|| Filter::new(text));
        self.rebuild(self.view);
    }

    /// Recomputes a view's cached rows from the snapshot and its filters,
    /// keeping the selection on the same object where it still exists.
    fn rebuild(&mut self, view: View) {
        self.rebuild_keeping(view, self.selected_key(view));
    }

    /// [`App::rebuild`], selecting the row identified by `keep` if present.
    fn rebuild_keeping(&mut self, view: View, keep: Option<RowKey>) {
        let height = self.table_height();
        let Some(snapshot) = self.snapshot.as_ref() else {
            return;
        };
        let list = &mut self.lists[view.index()];
        let filter = list.filter.as_ref();
        // The haystack is only formatted when a text filter is set.
        let pass = |text: &dyn Fn() -> String| filter.is_none_or(|f| f.matches(&text()));
        let state = self.state_filter;
        let instances = &snapshot.instances;
        let rows = match view {
            View::Workers => matching(&snapshot.workers, |w| pass(&|| views::workers::haystack(w))),
            View::Jobs => matching(&snapshot.jobs, |j| pass(&|| views::jobs::haystack(j))),
            View::Instances => matching(instances, |i| {
                state.is_none_or(|s| s == i.status) && pass(&|| views::instances::haystack(i))
            }),
            View::Failures => {
                let mut rows = matching(instances, |i| {
                    i.status == InstanceStatus::Failed && pass(&|| views::failures::haystack(i))
                });
                // Newest first, whatever order the source lists them in.
                rows.sort_by_key(|&n| Reverse(instances.get(n).map(|i| (i.updated_ms, i.id))));
                rows
            }
        };
        let position = keep.and_then(|key| {
            rows.iter()
                .position(|&i| row_key(snapshot, view, i).as_ref() == Some(&key))
        });
        list.set_rows(rows, position, height);
    }

    fn selected_key(&self, view: View) -> Option<RowKey> {
        let snapshot = self.snapshot.as_ref()?;
        row_key(snapshot, view, self.selected_row(view)?)
    }
}

/// Indices of the items `keep` accepts.
fn matching<T>(items: &[T], keep: impl Fn(&T) -> bool) -> Vec<usize> {
    items
        .iter()
        .enumerate()
        .filter(|(_, item)| keep(item))
        .map(|(n, _)| n)
        .collect()
}

/// Identity of row `index` of a view's snapshot vector.
fn row_key(snapshot: &Snapshot, view: View, index: usize) -> Option<RowKey> {
    match view {
        View::Workers => snapshot
            .workers
            .get(index)
            .map(|w| RowKey::Name(w.id.clone())),
        View::Jobs => snapshot.jobs.get(index).map(|j| RowKey::Id(j.id)),
        View::Instances | View::Failures => snapshot.instances.get(index).map(|i| RowKey::Id(i.id)),
    }
}

#[cfg(test)]
mod tests {
    use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

    use super::*;
    use crate::snapshot::{InstanceRow, MemberState, WorkerRow};
    use crate::views::testing::*;

    #[test]
    fn run_job_on_second_job_after_confirm() {
        let mut app = app_with(healthy());
        assert_eq!(type_text(&mut app, "2j"), Outcome::None);
        assert_eq!(type_text(&mut app, "r"), Outcome::None);
        let lines = render_lines(&app, 80, 24);
        assert!(line_with(&lines, "Run job billing-sync (#2) now?").starts_with('│'));
        line_with(&lines, "[y] yes");
        assert_eq!(
            type_text(&mut app, "y"),
            Outcome::Perform(Action::RunJob {
                job_id: 2,
                name: "billing-sync".into()
            })
        );
        assert!(app.status().is_some_and(|s| s.contains("sending")));
        app.report(Ok("queued instance 106".into()));
        assert_eq!(
            app.status(),
            Some("run job billing-sync: queued instance 106")
        );
        let lines = render_lines(&app, 80, 24);
        line_with(&lines, "run job billing-sync: queued instance 106");
    }

    #[test]
    fn declining_does_nothing() {
        let mut app = app_with(healthy());
        type_text(&mut app, "2r");
        assert_eq!(type_text(&mut app, "n"), Outcome::None);
        assert!(app.confirm.is_none());
        // Stray keys while the dialog is open do not act or close it.
        type_text(&mut app, "r");
        assert_eq!(type_text(&mut app, "x"), Outcome::None);
        assert!(app.confirm.is_some());
        assert_eq!(app.handle_key(key(KeyCode::Esc)), Outcome::None);
        assert!(app.confirm.is_none());
        assert_eq!(app.view(), View::Jobs);
    }

    #[test]
    fn readonly_refuses_every_action_before_asking() {
        let options = Options {
            readonly: true,
            ..Options::default()
        };
        let mut app = app_with_options(healthy(), options);
        for keys in ["2r", "2p", "4R", "3c"] {
            app.status = None;
            let outcome = type_text(&mut app, keys);
            assert!(
                matches!(&outcome, Outcome::Refused(action) if action.is_destructive()),
                "{keys}: {outcome:?}"
            );
            assert!(app.confirm.is_none(), "{keys}");
            assert_eq!(
                app.status(),
                Some("read-only: actions are disabled"),
                "{keys}"
            );
            assert_eq!(type_text(&mut app, "y"), Outcome::None);
        }
        let lines = render_lines(&app, 80, 24);
        line_with(&lines, "read-only: actions are disabled");
        assert!(lines[0].contains("[read-only]"));
    }

    #[test]
    fn pause_toggles_and_resumes_paused_jobs() {
        let mut app = app_with(healthy());
        type_text(&mut app, "2p");
        assert_eq!(
            type_text(&mut app, "y"),
            Outcome::Perform(Action::SetPaused {
                job_id: 1,
                name: "nightly-report".into(),
                paused: true
            })
        );
        type_text(&mut app, "Gp");
        assert_eq!(
            type_text(&mut app, "y"),
            Outcome::Perform(Action::SetPaused {
                job_id: 3,
                name: "cleanup".into(),
                paused: false
            })
        );
    }

    #[test]
    fn retry_and_cancel_check_the_instance_state() {
        let mut app = app_with(healthy());
        // Failures view: newest failure is 103.
        type_text(&mut app, "4R");
        assert_eq!(
            type_text(&mut app, "y"),
            Outcome::Perform(Action::RetryInstance { id: 103 })
        );
        app.report(Err("instance 103 is already queued again".into()));
        assert_eq!(
            app.status(),
            Some("retry instance 103 failed: instance 103 is already queued again")
        );
        let lines = render_lines(&app, 80, 24);
        line_with(&lines, "failed: instance 103 is already queued again");

        // Instances view: 105 is queued, so it can be cancelled but not retried.
        type_text(&mut app, "3R");
        assert!(app.confirm.is_none());
        assert!(app.status().is_some_and(|s| s.contains("only finished")));
        type_text(&mut app, "c");
        assert_eq!(
            type_text(&mut app, "y"),
            Outcome::Perform(Action::CancelInstance { id: 105 })
        );
        // Actions outside their view explain where to go.
        type_text(&mut app, "1r");
        assert!(app.status().is_some_and(|s| s.contains("jobs view (2)")));
    }

    #[test]
    fn actions_from_the_detail_pane_target_its_object() {
        let mut app = app_with(healthy());
        type_text(&mut app, "2jj");
        app.handle_key(key(KeyCode::Enter));
        type_text(&mut app, "r");
        assert_eq!(
            type_text(&mut app, "y"),
            Outcome::Perform(Action::RunJob {
                job_id: 3,
                name: "cleanup".into()
            })
        );
    }

    #[test]
    fn command_line_switches_views_with_aliases() {
        let mut app = app_with(healthy());
        for (command, view) in [
            ("instances", View::Instances),
            ("w", View::Workers),
            ("j", View::Jobs),
            ("inst", View::Instances),
            ("f", View::Failures),
            ("jobs", View::Jobs),
            ("i", View::Instances),
            ("failures", View::Failures),
            ("workers", View::Workers),
        ] {
            type_text(&mut app, &format!(":{command}"));
            assert_eq!(app.handle_key(key(KeyCode::Enter)), Outcome::None);
            assert_eq!(app.view(), view, ":{command}");
            assert!(app.prompt.is_none());
        }
        type_text(&mut app, ":bogus");
        app.handle_key(key(KeyCode::Enter));
        assert!(
            app.status()
                .is_some_and(|s| s.contains("unknown command :bogus"))
        );
        type_text(&mut app, ":q");
        assert_eq!(app.handle_key(key(KeyCode::Enter)), Outcome::Quit);
    }

    #[test]
    fn command_line_shows_what_is_typed_and_completes() {
        let mut app = app_with(healthy());
        type_text(&mut app, ":ins");
        let lines = render_lines(&app, 80, 24);
        assert!(lines[23].starts_with(":instances"), "{}", lines[23]);
        app.handle_key(key(KeyCode::Tab));
        assert_eq!(
            app.prompt.as_ref().map(|p| p.text.as_str()),
            Some("instances ")
        );
        type_text(&mut app, "q");
        app.handle_key(key(KeyCode::Enter));
        assert_eq!(app.view(), View::Instances);
        assert_eq!(app.state_filter, Some(InstanceStatus::Queued));
        // Esc in the prompt cancels it without running anything.
        type_text(&mut app, ":w");
        app.handle_key(key(KeyCode::Esc));
        assert_eq!(app.view(), View::Instances);
        assert!(app.prompt.is_none());
    }

    #[test]
    fn filter_narrows_rows_live_and_esc_clears() {
        let mut app = app_with(healthy());
        type_text(&mut app, "/w3");
        assert_eq!(app.list(View::Workers).rows.len(), 1);
        let lines = render_lines(&app, 80, 24);
        assert!(lines[23].starts_with("/w3"), "{}", lines[23]);
        assert!(line_with(&lines, "1:workers").contains("/w3"));
        assert!(line_with(&lines, "1:workers").contains("1 of 3"));
        row_with(&lines, "w3 ");
        assert!(!screen(&lines).contains("│w1 "));

        // Enter keeps the filter; Esc then clears it.
        app.handle_key(key(KeyCode::Enter));
        assert!(app.prompt.is_none());
        assert_eq!(app.list(View::Workers).rows.len(), 1);
        app.handle_key(key(KeyCode::Esc));
        assert_eq!(app.list(View::Workers).rows.len(), 3);

        // `!` negates; regexes work; Backspace edits live.
        type_text(&mut app, "/!dead");
        assert_eq!(app.list(View::Workers).rows.len(), 2);
        for _ in 0.."!dead".len() {
            app.handle_key(key(KeyCode::Backspace));
        }
        assert_eq!(app.list(View::Workers).rows.len(), 3);
        type_text(&mut app, "^w[12] ");
        assert_eq!(app.list(View::Workers).rows.len(), 2);
        app.handle_key(key(KeyCode::Esc));
        assert_eq!(app.list(View::Workers).rows.len(), 3);
        assert!(app.prompt.is_none());
    }

    #[test]
    fn filters_are_per_view_and_survive_refresh() {
        let mut app = app_with(healthy());
        type_text(&mut app, "3/billing");
        app.handle_key(key(KeyCode::Enter));
        assert_eq!(app.list(View::Instances).rows.len(), 2);
        assert_eq!(app.list(View::Workers).rows.len(), 3);
        app.apply_snapshot(Ok(healthy()));
        assert_eq!(app.list(View::Instances).rows.len(), 2);
        let lines = render_lines(&app, 80, 24);
        assert!(line_with(&lines, "3:instances").contains("2 of 6"));
    }

    #[test]
    fn help_opens_and_q_quits() {
        let mut app = app_with(healthy());
        assert_eq!(type_text(&mut app, "?"), Outcome::None);
        assert!(app.help.is_some());
        assert_eq!(type_text(&mut app, "?"), Outcome::None);
        assert!(app.help.is_none());
        assert_eq!(type_text(&mut app, "q"), Outcome::Quit);
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        // Ctrl-C quits from anywhere, even mid-prompt or in a dialog.
        type_text(&mut app, "/abc");
        assert_eq!(app.handle_key(ctrl_c), Outcome::Quit);
        let mut app = app_with(healthy());
        type_text(&mut app, "2r");
        assert_eq!(app.handle_key(ctrl_c), Outcome::Quit);
        app.handle_key(key(KeyCode::Esc));
        assert_eq!(app.handle_key(ctrl('r')), Outcome::Refresh);
    }

    #[test]
    fn views_cycle_with_numbers_and_tab_and_esc_walks_back() {
        let mut app = app_with(healthy());
        assert_eq!(app.view(), View::Workers);
        app.handle_key(key(KeyCode::Tab));
        assert_eq!(app.view(), View::Jobs);
        app.handle_key(key(KeyCode::BackTab));
        app.handle_key(key(KeyCode::BackTab));
        assert_eq!(app.view(), View::Failures);
        type_text(&mut app, "3");
        assert_eq!(app.view(), View::Instances);
        // Esc: detail first, then the filter, then the views in reverse.
        app.handle_key(key(KeyCode::Enter));
        type_text(&mut app, "s");
        app.handle_key(key(KeyCode::Esc));
        assert_eq!(app.state_filter, None);
        app.handle_key(key(KeyCode::Enter));
        assert!(app.detail.is_some());
        app.handle_key(key(KeyCode::Esc));
        assert!(app.detail.is_none());
        assert_eq!(app.view(), View::Instances);
        let trail: Vec<View> = (0..4)
            .map(|_| {
                app.handle_key(key(KeyCode::Esc));
                app.view()
            })
            .collect();
        assert_eq!(
            trail,
            [View::Failures, View::Workers, View::Jobs, View::Workers]
        );
    }

    /// A cluster with `n` workers and `n` instances, for paging tests.
    fn big(n: usize) -> Snapshot {
        let mut s = healthy();
        s.workers = (0..n)
            .map(|i| WorkerRow {
                id: format!("node-{i:04}"),
                state: MemberState::Live,
                ..WorkerRow::default()
            })
            .collect();
        s.instances = (0..n)
            .map(|i| InstanceRow {
                id: (n - i) as u64,
                job: "bulk".into(),
                ..InstanceRow::default()
            })
            .collect();
        s
    }

    #[test]
    fn paging_and_scrolling_keep_the_selection_visible() {
        let mut app = app_with(big(500));
        render_lines(&app, 80, 24);
        let page = app.table_height();
        app.handle_key(key(KeyCode::PageDown));
        assert_eq!(app.list(View::Workers).selected, page);
        let lines = render_lines(&app, 80, 24);
        row_with(&lines, &format!("node-{page:04}"));
        type_text(&mut app, "G");
        let lines = render_lines(&app, 80, 24);
        row_with(&lines, "node-0499");
        assert!(!screen(&lines).contains("node-0000"));
        app.handle_key(key(KeyCode::PageUp));
        assert_eq!(app.list(View::Workers).selected, 499 - page);
        type_text(&mut app, "gk");
        assert_eq!(app.list(View::Workers).selected, 0);
        row_with(&render_lines(&app, 80, 24), "node-0000");
    }

    #[test]
    fn selection_follows_its_row_across_refreshes() {
        let mut app = app_with(healthy());
        type_text(&mut app, "3jj");
        assert_eq!(app.focused_instance().map(|i| i.id), Some(103));
        let mut newer = healthy();
        let mut fresh = newer.instances[0].clone();
        fresh.id = 106;
        newer.instances.insert(0, fresh);
        app.apply_snapshot(Ok(newer));
        assert_eq!(app.focused_instance().map(|i| i.id), Some(103));
        // When the row disappears the selection stays in range.
        let mut fewer = healthy();
        fewer.instances.truncate(1);
        app.apply_snapshot(Ok(fewer));
        assert_eq!(app.focused_instance().map(|i| i.id), Some(105));
    }

    #[test]
    fn status_messages_expire() {
        let mut app = app_with(healthy());
        type_text(&mut app, "1r");
        assert!(app.status().is_some());
        app.tick(NOW + STATUS_TTL_MS + 1);
        assert!(app.status().is_none());
    }

    #[test]
    fn never_panics_on_small_terminals_or_empty_data() {
        let sizes = [
            (20, 5),
            (1, 1),
            (0, 0),
            (39, 9),
            (40, 10),
            (80, 24),
            (200, 60),
        ];
        let mut apps = vec![App::new(Options::default()), app_with(Snapshot::default())];
        let mut unreachable = app_with(stuck());
        unreachable.apply_snapshot(Err("timeout".into()));
        apps.push(unreachable);
        for keys in ["?", "2r", "3\n", "4\n", ":inst", "/x", "2\n", "1\n"] {
            let mut app = app_with(stuck());
            for c in keys.chars() {
                let code = if c == '\n' {
                    KeyCode::Enter
                } else {
                    KeyCode::Char(c)
                };
                app.handle_key(key(code));
            }
            apps.push(app);
        }
        for app in &mut apps {
            for (w, h) in sizes {
                render_lines(app, w, h);
                // Keys after a tiny render must not panic either.
                for code in [KeyCode::PageDown, KeyCode::Char('G'), KeyCode::Char('j')] {
                    app.handle_key(key(code));
                }
                render_lines(app, w, h);
            }
        }
    }

    #[test]
    fn compact_mode_still_flags_trouble() {
        let mut app = app_with(stuck());
        app.apply_snapshot(Err("timeout".into()));
        let lines = render_lines(&app, 30, 8);
        let text = screen(&lines);
        assert!(text.contains("unreachable"), "{text}");
        assert!(text.contains("cannot be placed"), "{text}");
    }

    #[test]
    fn monochrome_uses_no_colour_and_reverses_the_selection() {
        let options = Options {
            color: false,
            ..Options::default()
        };
        for view in ["1", "2", "3", "4", "2\n", "?"] {
            let mut app = app_with_options(stuck(), options.clone());
            for c in view.chars() {
                let code = if c == '\n' {
                    KeyCode::Enter
                } else {
                    KeyCode::Char(c)
                };
                app.handle_key(key(code));
            }
            let mut terminal = ratatui::Terminal::new(ratatui::backend::TestBackend::new(80, 24))
                .expect("terminal");
            terminal.draw(|f| crate::render(&app, f)).expect("draw");
            let buffer = terminal.backend().buffer();
            assert!(
                buffer
                    .content()
                    .iter()
                    .all(|c| c.fg == ratatui::style::Color::Reset
                        && c.bg == ratatui::style::Color::Reset),
                "colour in view {view:?}"
            );
            if !view.contains(['\n', '?']) {
                let reversed = buffer
                    .content()
                    .iter()
                    .any(|c| c.modifier.contains(ratatui::style::Modifier::REVERSED));
                assert!(reversed, "selection not reversed in {view:?}");
            }
        }
    }
}
