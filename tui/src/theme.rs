//! Every style the console uses, in colour and monochrome variants.
//!
//! Views ask the theme for a role ("bad", "selected") instead of naming
//! colours, so `NO_COLOR` is honoured in one place: without colour, emphasis is
//! carried by bold, reversed and underline, which every terminal renders.

use ratatui::style::{Color, Modifier, Style};

use crate::snapshot::{InstanceStatus, MemberState};

#[derive(Clone, Copy, Debug)]
pub(crate) struct Theme {
    color: bool,
}

impl Theme {
    pub(crate) fn new(color: bool) -> Theme {
        Theme { color }
    }

    fn pick(self, colored: Style, mono: Style) -> Style {
        if self.color { colored } else { mono }
    }

    /// Product name and view titles.
    pub(crate) fn title(self) -> Style {
        self.pick(
            Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD),
            Style::new().add_modifier(Modifier::BOLD),
        )
    }

    /// Secondary text: labels, hints, placeholders.
    pub(crate) fn dim(self) -> Style {
        self.pick(Style::new().fg(Color::DarkGray), Style::new())
    }

    pub(crate) fn good(self) -> Style {
        self.pick(Style::new().fg(Color::Green), Style::new())
    }

    /// Something is wrong and the operator should look.
    pub(crate) fn bad(self) -> Style {
        self.pick(
            Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
            Style::new().add_modifier(Modifier::BOLD),
        )
    }

    /// Something is waiting or unusual but not failed.
    pub(crate) fn warn(self) -> Style {
        self.pick(
            Style::new().fg(Color::Yellow),
            Style::new().add_modifier(Modifier::UNDERLINED),
        )
    }

    /// A state the operator must not miss (server unreachable).
    pub(crate) fn alert(self) -> Style {
        self.pick(
            Style::new()
                .fg(Color::White)
                .bg(Color::Red)
                .add_modifier(Modifier::BOLD),
            Style::new().add_modifier(Modifier::BOLD | Modifier::REVERSED),
        )
    }

    /// Key names in the help overlay and the footer hints.
    pub(crate) fn key(self) -> Style {
        self.pick(
            Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD),
            Style::new().add_modifier(Modifier::BOLD),
        )
    }

    pub(crate) fn selected(self) -> Style {
        self.pick(
            Style::new()
                .fg(Color::Black)
                .bg(Color::Cyan)
                .add_modifier(Modifier::BOLD),
            Style::new().add_modifier(Modifier::REVERSED | Modifier::BOLD),
        )
    }

    /// Column headers of the tables.
    pub(crate) fn column_header(self) -> Style {
        self.pick(
            Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD),
            Style::new().add_modifier(Modifier::BOLD | Modifier::UNDERLINED),
        )
    }

    /// The active view's tab in the table title.
    pub(crate) fn tab_active(self) -> Style {
        self.pick(
            Style::new()
                .fg(Color::Black)
                .bg(Color::Cyan)
                .add_modifier(Modifier::BOLD),
            Style::new().add_modifier(Modifier::REVERSED | Modifier::BOLD),
        )
    }

    pub(crate) fn border(self) -> Style {
        self.pick(Style::new().fg(Color::Blue), Style::new())
    }

    pub(crate) fn sparkline(self) -> Style {
        self.pick(Style::new().fg(Color::Green), Style::new())
    }

    pub(crate) fn status(self, status: InstanceStatus) -> Style {
        match status {
            InstanceStatus::Queued => self.warn(),
            InstanceStatus::Assigned => self.pick(Style::new().fg(Color::Blue), Style::new()),
            InstanceStatus::Running => self.pick(Style::new().fg(Color::Cyan), Style::new()),
            InstanceStatus::Succeeded => self.good(),
            InstanceStatus::Failed => self.bad(),
            InstanceStatus::Cancelled => self.dim(),
        }
    }

    pub(crate) fn member(self, state: MemberState) -> Style {
        match state {
            MemberState::Live => self.good(),
            MemberState::Dead => self.bad(),
            MemberState::Left => self.dim(),
        }
    }
}
