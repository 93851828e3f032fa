//! The table frame shared by the four list views: tabs, counts, filter
//! indicator, column header, and — the point of this module — building only
//! the rows inside the viewport.

use ratatui::Frame;
use ratatui::layout::{Constraint, Margin, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Block, Paragraph, Row, Scrollbar, ScrollbarOrientation, ScrollbarState, Table, TableState,
};

use crate::app::{App, View};
use crate::list::scroll_offset;
use crate::theme::Theme;

/// A column: header text and width constraint.
pub(crate) struct Column {
    pub title: &'static str,
    pub width: Constraint,
}

pub(crate) const fn col(title: &'static str, width: Constraint) -> Column {
    Column { title, width }
}

/// What a view contributes to the shared table frame.
pub(crate) struct Spec<'a> {
    pub columns: &'a [Column],
    /// Rows before filtering, for the "12 of 10000" count.
    pub total: usize,
    /// Extra indicator in the title, e.g. the instances state filter.
    pub tag: Option<String>,
    /// Shown when the view has no rows at all.
    pub empty: &'a str,
}

/// Renders the current view's table. `row` builds the row for an index into
/// the snapshot vector and is only called for the visible rows.
pub(crate) fn render<'a>(
    app: &App,
    frame: &mut Frame,
    area: Rect,
    theme: Theme,
    spec: Spec<'_>,
    row: impl Fn(usize) -> Row<'a>,
) {
    let list = app.list(app.view);
    let block = Block::bordered()
        .border_style(theme.border())
        .title_top(tabs(app.view, theme))
        .title_top(counts(app, &spec, theme).right_aligned());
    let inner = block.inner(area);
    let height = usize::from(inner.height.saturating_sub(1));
    let len = list.rows.len();
    let offset = scroll_offset(list.offset, list.selected, len, height);
    let end = offset.saturating_add(height).min(len);
    let visible = list.rows.get(offset..end).unwrap_or_default();
    let rows: Vec<Row<'a>> = visible.iter().map(|&i| row(i)).collect();

    let header = Row::new(spec.columns.iter().map(|c| c.title)).style(theme.column_header());
    let table = Table::new(rows, spec.columns.iter().map(|c| c.width))
        .header(header)
        .block(block)
        .column_spacing(1)
        .row_highlight_style(theme.selected());
    let mut state = TableState::default()
        .with_selected((len > 0).then(|| list.selected.saturating_sub(offset)));
    frame.render_stateful_widget(table, area, &mut state);

    if len == 0 {
        let message = empty_message(app, spec.empty);
        let below_header = inner.inner(Margin::new(1, 0));
        let below_header = Rect {
            y: below_header.y.saturating_add(1),
            height: below_header.height.saturating_sub(1),
            ..below_header
        };
        frame.render_widget(
            Paragraph::new(Line::styled(message, theme.dim())),
            below_header,
        );
    } else if len > height && height > 0 {
        let mut scroll = ScrollbarState::new(len.saturating_sub(height)).position(offset);
        let bar = Scrollbar::new(ScrollbarOrientation::VerticalRight)
            .begin_symbol(None)
            .end_symbol(None)
            .style(theme.border());
        frame.render_stateful_widget(bar, area.inner(Margin::new(0, 1)), &mut scroll);
    }
}

/// View tabs in the top border, so the number keys are discoverable.
fn tabs(current: View, theme: Theme) -> Line<'static> {
    let mut spans = Vec::with_capacity(View::ALL.len() + 1);
    for (n, view) in View::ALL.iter().enumerate() {
        let text = format!(" {}:{} ", n + 1, view.title());
        let style = if *view == current {
            theme.tab_active()
        } else {
            theme.dim()
        };
        spans.push(Span::styled(text, style));
    }
    Line::from(spans)
}

/// "[failed] /bill 12 of 10000" in the top border's right corner.
fn counts(app: &App, spec: &Spec<'_>, theme: Theme) -> Line<'static> {
    let list = app.list(app.view);
    let mut spans = Vec::new();
    if let Some(tag) = &spec.tag {
        spans.push(Span::styled(format!(" [{tag}]"), theme.warn()));
    }
    if let Some(filter) = &list.filter {
        let kind = if filter.is_literal() { " (text)" } else { "" };
        spans.push(Span::styled(
            format!(" /{}{kind}", filter.raw()),
            theme.warn(),
        ));
    }
    let shown = list.rows.len();
    let count = if shown == spec.total {
        format!(" {shown} ")
    } else {
        format!(" {shown} of {} ", spec.total)
    };
    spans.push(Span::styled(count, theme.title()));
    Line::from(spans)
}

fn empty_message(app: &App, empty: &str) -> String {
    if app.snapshot.is_none() {
        return if app.error.is_some() {
            "no data yet: server unreachable".to_string()
        } else {
            "waiting for the first snapshot…".to_string()
        };
    }
    match &app.list(app.view).filter {
        Some(filter) => format!("no rows match /{} (Esc clears)", filter.raw()),
        None => empty.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use ratatui::Terminal;
    use ratatui::backend::TestBackend;
    use ratatui::layout::Constraint;
    use ratatui::widgets::Row;

    use super::{Spec, col, render};
    use crate::snapshot::InstanceRow;
    use crate::theme::Theme;
    use crate::views::testing::*;

    #[test]
    fn only_visible_rows_are_built() {
        let mut snapshot = healthy();
        snapshot.instances = (0..10_000)
            .map(|id| InstanceRow {
                id,
                ..InstanceRow::default()
            })
            .collect();
        let mut app = app_with(snapshot);
        type_text(&mut app, "3G");
        let built = Cell::new(0);
        let mut terminal = Terminal::new(TestBackend::new(200, 60)).expect("terminal");
        terminal
            .draw(|frame| {
                let spec = Spec {
                    columns: &[col("ID", Constraint::Fill(1))],
                    total: 10_000,
                    tag: None,
                    empty: "",
                };
                render(&app, frame, frame.area(), Theme::new(true), spec, |_| {
                    built.set(built.get() + 1);
                    Row::default()
                });
            })
            .expect("draw");
        // 60 rows minus two borders and the column header.
        assert_eq!(built.get(), 57);
    }
}
