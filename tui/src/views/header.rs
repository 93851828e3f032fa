//! Header: which cluster, is it healthy, is the data fresh. Always visible.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Sparkline};

use crate::app::App;
use crate::format;
use crate::snapshot::Stats;
use crate::theme::Theme;

/// Most lines the unreachable warning may take; long client errors wrap.
const WARNING_LINES: usize = 2;

/// Two lines, plus the unreachable warning when there is one.
pub(crate) fn height(app: &App, width: u16) -> u16 {
    2 + warning(app, width).len() as u16
}

/// "✗ server unreachable — retrying every 2s: <error>",
/// wrapped to at most [`WARNING_LINES`] lines of `width`.
fn warning(app: &App, width: u16) -> Vec<String> {
    let Some(error) = &app.error else {
        return Vec::new();
    };
    let every = i64::try_from(app.options.refresh.as_millis()).unwrap_or(i64::MAX);
    let text = format!(
        "✗ server unreachable — retrying every {}: {error}",
        format::span(every)
    );
    let mut lines = format::wrap(&text, usize::from(width.saturating_sub(2)));
    lines.truncate(WARNING_LINES);
    lines
}

pub(crate) fn render(app: &App, frame: &mut Frame, area: Rect, theme: Theme) {
    let row = |n: u16| {
        Rect {
            y: area.y.saturating_add(n),
            height: 1,
            ..area
        }
        .intersection(area)
    };
    let (first, second) = (row(0), row(1));

    let freshness = freshness(app, theme);
    let [left, right] = Layout::horizontal([
        Constraint::Min(0),
        Constraint::Length(freshness.width() as u16),
    ])
    .areas(first);
    frame.render_widget(Paragraph::new(identity(app, theme)), left);
    frame.render_widget(Paragraph::new(freshness), right);

    match &app.snapshot {
        Some(snapshot) => render_stats(&snapshot.stats, frame, second, theme),
        None => frame.render_widget(
            Paragraph::new(Line::styled(" no data yet", theme.dim())),
            second,
        ),
    }

    let warning: Vec<Line> = warning(app, area.width)
        .into_iter()
        .map(|l| Line::raw(format!(" {l}")))
        .collect();
    if !warning.is_empty() {
        let rest = Rect {
            y: area.y.saturating_add(2),
            height: area.height.saturating_sub(2),
            ..area
        };
        frame.render_widget(Paragraph::new(warning).style(theme.alert()), rest);
    }
}

/// " SHOAL  prod-eu  http://…  [read-only]"
fn identity(app: &App, theme: Theme) -> Line<'_> {
    let (cluster, server) = match &app.snapshot {
        Some(s) => (s.cluster.as_str(), s.server.as_str()),
        None => ("", ""),
    };
    let mut spans = vec![
        Span::styled(" SHOAL ", theme.tab_active()),
        Span::raw(" "),
        Span::styled(cluster, theme.title()),
        Span::raw("  "),
        Span::styled(server, theme.dim()),
    ];
    if app.options.readonly {
        spans.push(Span::styled("  [read-only]", theme.warn()));
    }
    if let Some(group) = app.snapshot.as_ref().and_then(|s| s.group.as_deref()) {
        spans.push(Span::raw("  "));
        spans.push(Span::styled(group, theme.dim()));
    }
    if let Some(trouble) = app
        .snapshot
        .as_ref()
        .and_then(|s| s.group_trouble.as_deref())
    {
        spans.push(Span::raw("  "));
        spans.push(Span::styled(trouble, theme.bad()));
    }
    if let Some(reason) = app.snapshot.as_ref().and_then(|s| s.degraded.as_deref()) {
        spans.push(Span::raw("  "));
        spans.push(Span::styled(format!("DEGRADED: {reason}"), theme.bad()));
    }
    Line::from(spans)
}

/// When the data on screen was fetched; loud when it is stale.
fn freshness(app: &App, theme: Theme) -> Line<'static> {
    let fetched = app.snapshot.as_ref().map(|s| s.fetched_at_ms);
    match (fetched, app.error.is_some()) {
        (None, false) => Line::styled("connecting… ", theme.dim()),
        (None, true) => Line::styled("no data ", theme.bad()),
        (Some(at), false) => Line::styled(
            format!("updated {} ", format::stamp(app.now_ms, at)),
            theme.dim(),
        ),
        (Some(at), true) => Line::styled(
            format!("STALE: data from {} ", format::stamp(app.now_ms, at)),
            theme.bad(),
        ),
    }
}

fn render_stats(stats: &Stats, frame: &mut Frame, area: Rect, theme: Theme) {
    let count = |n: u32, label: &str, style: Style| Span::styled(format!("{n} {label}"), style);
    let plain = Style::default();
    let sep = || Span::styled(" │ ", theme.dim());
    let line = Line::from(vec![
        Span::raw(" workers "),
        count(
            stats.live_workers,
            "live",
            if stats.live_workers == 0 {
                theme.bad()
            } else {
                theme.good()
            },
        ),
        Span::raw(" "),
        count(
            stats.dead_workers,
            "dead",
            if stats.dead_workers > 0 {
                theme.bad()
            } else {
                plain
            },
        ),
        sep(),
        count(
            stats.queued,
            "queued",
            if stats.queued > 0 {
                theme.warn()
            } else {
                plain
            },
        ),
        Span::raw(" "),
        count(stats.running, "running", plain),
        sep(),
        Span::raw("5m "),
        count(stats.succeeded_5m, "ok", theme.good()),
        Span::raw(" "),
        count(
            stats.failed_5m,
            "failed",
            if stats.failed_5m > 0 {
                theme.bad()
            } else {
                plain
            },
        ),
        sep(),
    ]);
    let [text, spark] =
        Layout::horizontal([Constraint::Length(line.width() as u16), Constraint::Min(0)])
            .areas(area);
    frame.render_widget(Paragraph::new(line), text);
    // Show the newest buckets that fit: the sparkline draws from the left and
    // would otherwise cut off the present.
    let width = usize::from(spark.width.saturating_sub(1));
    let data = &stats.throughput[stats.throughput.len().saturating_sub(width)..];
    frame.render_widget(
        Sparkline::default().data(data).style(theme.sparkline()),
        spark,
    );
}

#[cfg(test)]
mod tests {
    use crate::views::testing::*;

    #[test]
    fn shows_cluster_counts_and_freshness() {
        for (w, h) in SIZES {
            let app = app_with(healthy());
            let lines = render_lines(&app, w, h);
            assert!(lines[0].contains("SHOAL"), "{}", lines[0]);
            assert!(lines[0].contains("prod-eu"), "{}", lines[0]);
            assert!(lines[0].contains("http://10.0.0.1:8080"), "{}", lines[0]);
            assert!(
                lines[0].contains("updated 12:03:04 UTC (0s ago)"),
                "{}",
                lines[0]
            );
            let stats = &lines[1];
            for part in [
                "2 live",
                "1 dead",
                "7 queued",
                "1 running",
                "42 ok",
                "2 failed",
            ] {
                assert!(stats.contains(part), "{part} missing: {stats}");
            }
            assert!(
                stats.contains(['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█']),
                "{stats}"
            );
        }
    }

    #[test]
    fn unreachable_keeps_last_data_and_says_so() {
        for (w, h) in SIZES {
            let mut app = app_with(healthy());
            app.tick(NOW + 35_000);
            app.apply_snapshot(Err("connection refused (os error 111)".into()));
            let lines = render_lines(&app, w, h);
            assert!(
                lines[0].contains("STALE: data from 12:03:04 UTC (35s ago)"),
                "{}",
                lines[0]
            );
            let warning = line_with(&lines, "server unreachable — retrying");
            assert!(warning.contains("connection refused"), "{warning}");
            // The last data is still on screen.
            assert!(lines[1].contains("2 live"));
            row_with(&lines, "w1 ");
            assert_eq!(app.last_error(), Some("connection refused (os error 111)"));

            // Recovery clears the warning.
            app.apply_snapshot(Ok(healthy()));
            let lines = render_lines(&app, w, h);
            assert!(!screen(&lines).contains("unreachable"));
        }
    }

    #[test]
    fn a_degraded_server_says_so_in_the_header() {
        let app = app_with(crate::Snapshot {
            degraded: Some("disk full".into()),
            ..healthy()
        });
        let lines = render_lines(&app, 100, 24);
        assert!(lines[0].contains("DEGRADED: disk full"), "{}", lines[0]);
        let healthy = render_lines(&app_with(healthy()), 100, 24);
        assert!(!screen(&healthy).contains("DEGRADED"));
    }

    #[test]
    fn the_header_says_which_server_of_the_group_answers_and_when_writes_are_refused() {
        let app = app_with(crate::Snapshot {
            group: Some("follower · leader at 10.0.0.5:7070 · term 3".into()),
            group_trouble: Some("NO QUORUM: 1 of 3 servers reachable".into()),
            ..healthy()
        });
        let lines = render_lines(&app, 160, 24);
        assert!(
            lines[0].contains("follower · leader at 10.0.0.5:7070"),
            "{}",
            lines[0]
        );
        assert!(lines[0].contains("NO QUORUM: 1 of 3"), "{}", lines[0]);
        let alone = render_lines(&app_with(healthy()), 160, 24);
        assert!(!alone[0].contains("term"), "{}", alone[0]);
    }

    #[test]
    fn unreachable_before_any_data() {
        let mut app = crate::App::new(crate::Options::default());
        app.apply_snapshot(Err("dns error".into()));
        let lines = render_lines(&app, 80, 24);
        assert!(line_with(&lines, "server unreachable").contains("dns error"));
        assert!(screen(&lines).contains("no data yet: server unreachable"));
    }
}
