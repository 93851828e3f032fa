//! Jobs view: each job with its schedule and queue.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::Span;
use ratatui::widgets::{Cell, Row};

use super::table::{self, Column, Spec, col};
use crate::app::App;
use crate::format;
use crate::snapshot::JobRow;
use crate::theme::Theme;

const COLUMNS: &[Column] = &[
    col("ID", Constraint::Length(4)),
    col("NAME", Constraint::Fill(3)),
    col("SCHEDULE", Constraint::Fill(3)),
    col("NEXT", Constraint::Length(8)),
    col("QUEUED", Constraint::Length(6)),
    col("RUN", Constraint::Length(4)),
    col("LAST", Constraint::Length(9)),
    col("PAUSED", Constraint::Length(6)),
];

/// Text the `/` filter matches against.
pub(crate) fn haystack(j: &JobRow) -> String {
    format!(
        "{} {} {} {} {} {}{}",
        j.id,
        j.name,
        j.schedule,
        j.queued,
        j.running,
        j.last_result.map_or("", |s| s.label()),
        if j.paused { " paused" } else { "" }
    )
}

pub(crate) fn render(app: &App, frame: &mut Frame, area: Rect, theme: Theme) {
    let (jobs, stuck) = match &app.snapshot {
        Some(s) => (&s.jobs[..], &s.unplaceable[..]),
        None => (&[][..], &[][..]),
    };
    let spec = Spec {
        columns: COLUMNS,
        total: jobs.len(),
        tag: None,
        empty: "no jobs defined",
    };
    let now = app.now_ms;
    table::render(app, frame, area, theme, spec, |i| match jobs.get(i) {
        Some(j) => {
            let unplaceable = stuck.iter().any(|u| u.job == j.name);
            row(j, unplaceable, now, theme)
        }
        None => Row::default(),
    });
}

fn row(j: &JobRow, unplaceable: bool, now_ms: i64, theme: Theme) -> Row<'_> {
    let next = match (j.paused, j.next_fire_ms) {
        (true, _) => Span::styled("paused", theme.dim()),
        (false, Some(at)) => Span::raw(format::until(now_ms, at)),
        (false, None) => Span::styled(format::NONE, theme.dim()),
    };
    let queued_style = if unplaceable {
        theme.bad()
    } else if j.queued > 0 {
        theme.warn()
    } else {
        Default::default()
    };
    let last = match j.last_result {
        Some(status) => Span::styled(status.label(), theme.status(status)),
        None => Span::styled(format::NONE, theme.dim()),
    };
    let paused = if j.paused {
        Span::styled("paused", theme.warn())
    } else {
        Span::styled(format::NONE, theme.dim())
    };
    Row::new([
        Cell::from(j.id.to_string()),
        Cell::from(j.name.as_str()),
        Cell::from(j.schedule.as_str()),
        Cell::from(next),
        Cell::from(Span::styled(j.queued.to_string(), queued_style)),
        Cell::from(j.running.to_string()),
        Cell::from(last),
        Cell::from(paused),
    ])
}

#[cfg(test)]
mod tests {
    use crate::views::testing::*;

    #[test]
    fn lists_jobs_with_schedule_queue_and_last_result() {
        for (w, h) in SIZES {
            let mut app = app_with(healthy());
            type_text(&mut app, "2");
            let lines = render_lines(&app, w, h);
            let nightly = row_with(&lines, "1 ");
            assert!(nightly.contains("nightly-report"), "{nightly}");
            assert!(nightly.contains("in 42s"), "{nightly}");
            assert!(nightly.contains("succeeded"), "{nightly}");
            let billing = row_with(&lines, "2 ");
            assert!(billing.contains("every 30s"), "{billing}");
            assert!(billing.contains(" 7 "), "{billing}");
            assert!(billing.contains("failed"), "{billing}");
            let cleanup = row_with(&lines, "3 ");
            assert!(cleanup.contains("paused"), "{cleanup}");
            assert!(line_with(&lines, "NAME").contains("QUEUED"));
        }
        let lines = render_lines(
            &{
                let mut app = app_with(healthy());
                type_text(&mut app, "2");
                app
            },
            100,
            30,
        );
        assert!(row_with(&lines, "1 ").contains("cron 0 0 2 * * * (UTC)"));
    }
}
