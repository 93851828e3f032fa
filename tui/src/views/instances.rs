//! Instances view: recent runs, filterable by state, with the reason a queued
//! run is waiting or a failed one failed.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::Span;
use ratatui::widgets::{Cell, Row};

use super::table::{self, Column, Spec, col};
use crate::app::App;
use crate::format;
use crate::snapshot::{InstanceRow, InstanceStatus};
use crate::theme::Theme;

const COLUMNS: &[Column] = &[
    col("ID", Constraint::Length(6)),
    col("JOB", Constraint::Fill(2)),
    col("STATUS", Constraint::Length(9)),
    col("TRY", Constraint::Length(3)),
    col("WORKER", Constraint::Length(8)),
    col("AGE", Constraint::Length(6)),
    col("REASON", Constraint::Fill(3)),
];

/// Text the `/` filter matches against.
pub(crate) fn haystack(i: &InstanceRow) -> String {
    format!(
        "{} {} {} {} {}",
        i.id,
        i.job,
        i.status.label(),
        i.worker.as_deref().unwrap_or(""),
        i.reason.as_deref().unwrap_or("")
    )
}

pub(crate) fn render(app: &App, frame: &mut Frame, area: Rect, theme: Theme) {
    let instances = app.snapshot.as_ref().map_or(&[][..], |s| &s.instances[..]);
    let spec = Spec {
        columns: COLUMNS,
        total: instances.len(),
        tag: app.state_filter.map(|s| s.label().to_string()),
        empty: "no instances yet",
    };
    let now = app.now_ms;
    table::render(app, frame, area, theme, spec, |i| match instances.get(i) {
        Some(inst) => row(inst, now, theme),
        None => Row::default(),
    });
}

fn row(i: &InstanceRow, now_ms: i64, theme: Theme) -> Row<'_> {
    let reason_style = match i.status {
        InstanceStatus::Queued => theme.warn(),
        InstanceStatus::Failed => theme.bad(),
        _ => theme.dim(),
    };
    Row::new([
        Cell::from(i.id.to_string()),
        Cell::from(i.job.as_str()),
        Cell::from(Span::styled(i.status.label(), theme.status(i.status))),
        Cell::from(i.attempt.to_string()),
        Cell::from(i.worker.as_deref().unwrap_or(format::NONE)),
        Cell::from(format::span(now_ms - i.updated_ms)),
        Cell::from(Span::styled(
            i.reason.as_deref().unwrap_or(""),
            reason_style,
        )),
    ])
}

#[cfg(test)]
mod tests {
    use ratatui::crossterm::event::KeyCode;

    use crate::app::View;
    use crate::views::testing::*;

    #[test]
    fn lists_instances_with_queued_reason() {
        for (w, h) in SIZES {
            let mut app = app_with(healthy());
            type_text(&mut app, "3");
            let lines = render_lines(&app, w, h);
            let queued = row_with(&lines, "105 ");
            assert!(queued.contains("billing-sync"), "{queued}");
            assert!(queued.contains("queued"), "{queued}");
            assert!(queued.contains("waiting for a worker"), "{queued}");
            let running = row_with(&lines, "104 ");
            assert!(
                running.contains("running") && running.contains("w1"),
                "{running}"
            );
            assert!(row_with(&lines, "103 ").contains("failed"));
            assert!(line_with(&lines, "3:instances").contains(" 6 "));
        }
    }

    #[test]
    fn state_filter_from_command_and_key() {
        let mut app = app_with(healthy());
        type_text(&mut app, ":instances failed");
        app.handle_key(key(KeyCode::Enter));
        assert_eq!(app.view(), View::Instances);
        let lines = render_lines(&app, 80, 24);
        assert!(line_with(&lines, "3:instances").contains("[failed]"));
        assert!(line_with(&lines, "3:instances").contains("2 of 6"));
        row_with(&lines, "103 ");
        row_with(&lines, "101 ");
        assert!(!screen(&lines).contains("│105 "));

        // `s` cycles from failed to cancelled, then back to all.
        type_text(&mut app, "s");
        let lines = render_lines(&app, 80, 24);
        assert!(line_with(&lines, "3:instances").contains("[cancelled]"));
        row_with(&lines, "100 ");
        type_text(&mut app, "s");
        let lines = render_lines(&app, 80, 24);
        assert!(!line_with(&lines, "3:instances").contains('['));
        assert!(line_with(&lines, "3:instances").contains(" 6 "));
    }
}
