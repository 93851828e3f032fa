//! The y/n dialog every action goes through.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Padding, Paragraph};

use crate::action::Action;
use crate::format;
use crate::theme::Theme;

const MIN_WIDTH: u16 = 36;
const MAX_WIDTH: u16 = 70;
/// Border plus horizontal padding.
const CHROME: u16 = 4;

pub(crate) fn render(action: &Action, frame: &mut Frame, screen: Rect, theme: Theme) {
    let question = action.prompt();
    let wanted = u16::try_from(question.chars().count())
        .unwrap_or(u16::MAX)
        .saturating_add(CHROME);
    let width = wanted.clamp(MIN_WIDTH, MAX_WIDTH).min(screen.width);
    let wrapped = format::wrap(&question, usize::from(width.saturating_sub(CHROME)));
    let mut lines: Vec<Line> = wrapped
        .into_iter()
        .map(|l| Line::styled(l, theme.title()))
        .collect();
    lines.push(Line::default());
    lines.push(Line::from(vec![
        Span::styled("[y]", theme.key()),
        Span::raw(" yes    "),
        Span::styled("[n]", theme.key()),
        Span::raw(" no (Esc)"),
    ]));
    let height = u16::try_from(lines.len())
        .unwrap_or(u16::MAX)
        .saturating_add(2)
        .min(screen.height);
    let popup = screen.centered(Constraint::Length(width), Constraint::Length(height));
    let block = Block::bordered()
        .border_style(theme.warn())
        .padding(Padding::horizontal(1))
        .title_top(Span::styled(" confirm ", theme.warn()));
    frame.render_widget(Clear, popup);
    frame.render_widget(Paragraph::new(lines).block(block), popup);
}
