//! The `?` overlay, generated from the key map and command tables so it
//! cannot drift from what the keys actually do.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Padding, Paragraph};

use crate::keymap::{COMMANDS, KEY_HELP};
use crate::theme::Theme;

/// Sections shown in the left column when there is room for two.
const LEFT_SECTIONS: usize = 2;
const GAP: u16 = 2;
/// Border plus horizontal padding.
const CHROME: u16 = 4;

/// A help section: heading and (keys, description) pairs.
type Section = (&'static str, Vec<(String, &'static str)>);

fn sections() -> Vec<Section> {
    let mut out: Vec<Section> = KEY_HELP
        .iter()
        .map(|(title, entries)| {
            let pairs = entries
                .iter()
                .map(|e| (e.keys.to_string(), e.what))
                .collect();
            (*title, pairs)
        })
        .collect();
    let commands = COMMANDS
        .iter()
        .map(|c| {
            let keys = match c.aliases.first() {
                Some(alias) => format!(":{} :{alias}", c.name),
                None => format!(":{}", c.name),
            };
            (keys, c.what)
        })
        .collect();
    out.push(("Commands", commands));
    out
}

/// Widest key text, so descriptions line up across all sections.
fn key_width(sections: &[Section]) -> usize {
    sections
        .iter()
        .flat_map(|(_, pairs)| pairs.iter().map(|(k, _)| k.chars().count()))
        .max()
        .unwrap_or(0)
}

fn column_lines(sections: &[Section], key_width: usize, theme: Theme) -> Vec<Line<'static>> {
    let mut out = Vec::new();
    for (n, (title, pairs)) in sections.iter().enumerate() {
        if n > 0 {
            out.push(Line::default());
        }
        out.push(Line::styled(*title, theme.column_header()));
        for (keys, what) in pairs {
            out.push(Line::from(vec![
                Span::styled(format!(" {keys:<key_width$} "), theme.key()),
                Span::raw(*what),
            ]));
        }
    }
    out
}

/// Where the overlay goes and how its text is split into columns.
struct Plan {
    popup: Rect,
    columns: Vec<Vec<Line<'static>>>,
}

impl Plan {
    fn new(screen: Rect, theme: Theme) -> Plan {
        let all = sections();
        let kw = key_width(&all);
        let (left, right) = all.split_at(LEFT_SECTIONS.min(all.len()));
        let two = vec![
            column_lines(left, kw, theme),
            column_lines(right, kw, theme),
        ];
        let widest = |cols: &[Vec<Line>]| {
            cols.iter()
                .flat_map(|c| c.iter().map(Line::width))
                .max()
                .unwrap_or(0)
        };
        let col_width = u16::try_from(widest(&two)).unwrap_or(u16::MAX);
        let two_width = col_width.saturating_mul(2).saturating_add(GAP + CHROME);
        let columns = if two_width <= screen.width.saturating_sub(2) {
            two
        } else {
            vec![column_lines(&all, kw, theme)]
        };
        let n = columns.len() as u16;
        let width = (col_width.saturating_mul(n) + GAP * (n - 1) + CHROME).min(screen.width);
        let tallest = columns.iter().map(Vec::len).max().unwrap_or(0);
        let height = u16::try_from(tallest)
            .unwrap_or(u16::MAX)
            .saturating_add(2)
            .min(screen.height);
        let popup = screen.centered(Constraint::Length(width), Constraint::Length(height));
        Plan { popup, columns }
    }

    fn inner_height(&self) -> usize {
        usize::from(self.popup.height.saturating_sub(2))
    }

    fn max_scroll(&self) -> usize {
        let tallest = self.columns.iter().map(Vec::len).max().unwrap_or(0);
        tallest.saturating_sub(self.inner_height())
    }
}

/// Furthest the overlay can scroll on `screen` (non-zero only on short
/// terminals, where it falls back to one scrolling column).
pub(crate) fn max_scroll(screen: Rect) -> usize {
    Plan::new(screen, Theme::new(false)).max_scroll()
}

pub(crate) fn render(frame: &mut Frame, screen: Rect, scroll: usize, theme: Theme) {
    let plan = Plan::new(screen, theme);
    let scroll = scroll.min(plan.max_scroll());
    let more = if plan.max_scroll() > 0 {
        " j/k scroll ·"
    } else {
        ""
    };
    let block = Block::bordered()
        .border_style(theme.title())
        .padding(Padding::horizontal(1))
        .title_top(Span::styled(" help ", theme.title()))
        .title_bottom(
            Span::styled(format!("{more} Esc closes "), theme.dim()).into_right_aligned_line(),
        );
    let inner = block.inner(plan.popup);
    frame.render_widget(Clear, plan.popup);
    frame.render_widget(block, plan.popup);
    let n = plan.columns.len();
    let mut constraints = Vec::with_capacity(n * 2);
    for i in 0..n {
        if i > 0 {
            constraints.push(Constraint::Length(GAP));
        }
        constraints.push(Constraint::Fill(1));
    }
    let areas = Layout::horizontal(constraints).split(inner);
    for (column, area) in plan.columns.into_iter().zip(areas.iter().step_by(2)) {
        let visible: Vec<Line> = column.into_iter().skip(scroll).collect();
        frame.render_widget(Paragraph::new(visible), *area);
    }
}

#[cfg(test)]
mod tests {
    use ratatui::crossterm::event::KeyCode;

    use crate::views::testing::*;

    const EVERY_KEY: &[&str] = &[
        "j / Down",
        "k / Up",
        "g / Home",
        "G / End",
        "PgDn",
        "PgUp",
        "1 / 2",
        "3 / 4",
        "Tab",
        "Enter",
        "Esc",
        "/",
        " s ",
        ":",
        " r ",
        " p ",
        " R ",
        " c ",
        "Ctrl-r",
        "?",
        "q / Ctrl-c",
        ":workers :w",
        ":jobs :j",
        ":instances :i",
        ":failures :f",
        ":quit :q",
    ];

    #[test]
    fn help_lists_every_key_and_closes() {
        for (w, h) in SIZES {
            let mut app = app_with(healthy());
            type_text(&mut app, "?");
            let lines = render_lines(&app, w, h);
            let text = screen(&lines);
            for k in EVERY_KEY {
                assert!(text.contains(k), "{k:?} missing at {w}x{h}:\n{text}");
            }
            line_with(&lines, "run job now");
            line_with(&lines, "retry instance");
            app.handle_key(key(KeyCode::Esc));
            assert!(!screen(&render_lines(&app, w, h)).contains("run job now"));
        }
    }

    #[test]
    fn help_scrolls_on_short_terminals() {
        let mut app = app_with(healthy());
        type_text(&mut app, "?");
        let lines = render_lines(&app, 60, 14);
        assert!(screen(&lines).contains("j/k scroll"));
        type_text(&mut app, "G");
        let text = screen(&render_lines(&app, 60, 14));
        assert!(text.contains(":quit :q"), "{text}");
        assert!(!text.contains("j / Down"), "{text}");
    }
}
