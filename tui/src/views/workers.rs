//! Workers view: cluster members, their load and heartbeat.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Row};

use super::table::{self, Column, Spec, col};
use crate::app::App;
use crate::format;
use crate::snapshot::{MemberState, WorkerRow};
use crate::theme::Theme;

const COLUMNS: &[Column] = &[
    col("ID", Constraint::Fill(2)),
    col("ROLE", Constraint::Length(6)),
    col("STATE", Constraint::Length(5)),
    col("ADDRESS", Constraint::Fill(3)),
    col("TAGS", Constraint::Fill(2)),
    col("RUN/CAP", Constraint::Length(7)),
    col("HEARTBEAT", Constraint::Length(10)),
    col("VERSION", Constraint::Length(8)),
];

/// Text the `/` filter matches against: the row as displayed, minus the
/// relative time (which changes every second).
pub(crate) fn haystack(w: &WorkerRow) -> String {
    format!(
        "{} {} {} {} {} {}/{} {}",
        w.id,
        w.role,
        w.state.label(),
        w.addr,
        w.tags.join(","),
        w.running,
        w.capacity,
        w.version
    )
}

pub(crate) fn render(app: &App, frame: &mut Frame, area: Rect, theme: Theme) {
    let workers = app.snapshot.as_ref().map_or(&[][..], |s| &s.workers[..]);
    let spec = Spec {
        columns: COLUMNS,
        total: workers.len(),
        tag: None,
        empty: "no cluster members reported",
    };
    let now = app.now_ms;
    table::render(app, frame, area, theme, spec, |i| match workers.get(i) {
        Some(w) => row(w, now, theme),
        None => Row::default(),
    });
}

fn row(w: &WorkerRow, now_ms: i64, theme: Theme) -> Row<'_> {
    let load = format!("{}/{}", w.running, w.capacity);
    let load_style = if w.capacity > 0 && w.running >= w.capacity {
        theme.warn()
    } else {
        Default::default()
    };
    let heartbeat_style = match w.state {
        MemberState::Dead => theme.bad(),
        _ => Default::default(),
    };
    Row::new([
        Cell::from(w.id.as_str()),
        Cell::from(w.role.as_str()),
        Cell::from(Span::styled(w.state.label(), theme.member(w.state))),
        Cell::from(w.addr.as_str()),
        Cell::from(Line::styled(w.tags.join(","), theme.dim())),
        Cell::from(Span::styled(load, load_style)),
        Cell::from(Span::styled(
            format::ago(now_ms, w.last_seen_ms),
            heartbeat_style,
        )),
        Cell::from(w.version.as_str()),
    ])
}

#[cfg(test)]
mod tests {
    use crate::app::View;
    use crate::views::testing::*;

    #[test]
    fn lists_workers_with_state_load_heartbeat_and_version() {
        for (w, h) in SIZES {
            let app = app_with(stuck());
            let lines = render_lines(&app, w, h);
            assert_eq!(app.view(), View::Workers);
            let w1 = row_with(&lines, "w1 ");
            assert!(w1.contains("server"), "{w1}");
            assert!(w1.contains("live"), "{w1}");
            assert!(w1.contains("1/4"), "{w1}");
            assert!(w1.contains("2s ago"), "{w1}");
            assert!(w1.contains("0.4.0"), "{w1}");
            assert!(row_with(&lines, "w2 ").contains("4/4"));
            let w3 = row_with(&lines, "w3 ");
            assert!(w3.contains("dead"), "{w3}");
            assert!(w3.contains("5m ago"), "{w3}");
            assert!(line_with(&lines, "ID").contains("HEARTBEAT"));
            assert!(line_with(&lines, "1:workers").contains(" 3 "));
        }
        let lines = render_lines(&app_with(healthy()), 100, 30);
        let w1 = row_with(&lines, "w1 ");
        assert!(w1.contains("10.0.0.1:7946"), "{w1}");
        assert!(w1.contains("gpu,eu"), "{w1}");
    }
}
