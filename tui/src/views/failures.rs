//! Failures view: failed instances, newest first, with the error that matters.

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
    col("AGE", Constraint::Length(6)),
    col("ID", Constraint::Length(6)),
    col("JOB", Constraint::Fill(2)),
    col("WORKER", Constraint::Length(8)),
    col("TRY", Constraint::Length(3)),
    col("ERROR", Constraint::Fill(4)),
];

/// The most useful one-line explanation of a failure: the server's reason,
/// else the last attempt's error, else its HTTP status.
pub(crate) fn error_text(i: &InstanceRow) -> String {
    if let Some(reason) = i.reason.as_deref().filter(|r| !r.is_empty()) {
        return reason.to_string();
    }
    let last = i.attempts.iter().max_by_key(|a| a.number);
    match last {
        Some(a) => match (&a.error, a.http_status) {
            (Some(error), _) => error.clone(),
            (None, Some(code)) => format!("HTTP {code}"),
            (None, None) => "failed without an error message".to_string(),
        },
        None => "failed without an error message".to_string(),
    }
}

/// Text the `/` filter matches against.
pub(crate) fn haystack(i: &InstanceRow) -> String {
    format!(
        "{} {} {} {}",
        i.id,
        i.job,
        i.worker.as_deref().unwrap_or(""),
        error_text(i)
    )
}

pub(crate) fn render(app: &App, frame: &mut Frame, area: Rect, theme: Theme) {
    let instances = app.snapshot.as_ref().map_or(&[][..], |s| &s.instances[..]);
    let total = count_failed(instances, app);
    let spec = Spec {
        columns: COLUMNS,
        total,
        tag: None,
        empty: "no failed instances",
    };
    let now = app.now_ms;
    table::render(app, frame, area, theme, spec, |i| match instances.get(i) {
        Some(inst) => row(inst, now, theme),
        None => Row::default(),
    });
}

/// The unfiltered count; only scanned when a text filter is active, since
/// otherwise it equals the cached row count.
fn count_failed(instances: &[InstanceRow], app: &App) -> usize {
    let list = app.list(crate::app::View::Failures);
    if list.filter.is_none() {
        return list.rows.len();
    }
    instances
        .iter()
        .filter(|i| i.status == InstanceStatus::Failed)
        .count()
}

fn row(i: &InstanceRow, now_ms: i64, theme: Theme) -> Row<'static> {
    Row::new([
        Cell::from(format::span(now_ms - i.updated_ms)),
        Cell::from(i.id.to_string()),
        Cell::from(i.job.clone()),
        Cell::from(i.worker.clone().unwrap_or_else(|| format::NONE.into())),
        Cell::from(i.attempt.to_string()),
        Cell::from(Span::styled(error_text(i), theme.bad())),
    ])
}

#[cfg(test)]
mod tests {
    use crate::views::testing::*;

    #[test]
    fn lists_failures_newest_first_with_error() {
        for (w, h) in SIZES {
            let mut app = app_with(healthy());
            type_text(&mut app, "4");
            let lines = render_lines(&app, w, h);
            let newest = line_with(&lines, "billing-sync");
            assert!(newest.contains("103"), "{newest}");
            assert!(newest.contains("w2"), "{newest}");
            assert!(newest.contains(" 3 "), "{newest}");
            assert!(
                newest.contains("HTTP 500 from billing.internal"),
                "{newest}"
            );
            let older = line_with(&lines, "cleanup");
            assert!(older.contains("connection refused"), "{older}");
            let pos = |needle: &str| lines.iter().position(|l| l.contains(needle));
            assert!(pos("billing-sync") < pos("cleanup"), "newest first");
            assert!(!screen(&lines).contains("nightly-report"));
            assert!(line_with(&lines, "4:failures").contains(" 2 "));
        }
    }
}
