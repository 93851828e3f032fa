//! The no-worker banner: queued work that no live worker can take is the one
//! failure that produces no error anywhere else, so it gets a loud box with
//! the reason and the exact command that fixes it.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Padding, Paragraph};

use crate::app::App;
use crate::format;
use crate::snapshot::{Snapshot, UnplaceableTotals};
use crate::theme::Theme;

/// Borders plus left/right padding.
const CHROME_WIDTH: u16 = 4;
const CHROME_HEIGHT: u16 = 2;

/// Rows the banner takes: all of its text, but at most a third of the screen
/// (never less than one entry's worth) so the tables stay usable.
pub(crate) fn height(app: &App, area: Rect) -> u16 {
    let Some(snapshot) = app.snapshot.as_ref() else {
        return 0;
    };
    if snapshot.unplaceable.is_empty() {
        return 0;
    }
    let wanted = text_lines(snapshot, area.width, Theme::new(false)).len();
    let wanted = u16::try_from(wanted)
        .unwrap_or(u16::MAX)
        .saturating_add(CHROME_HEIGHT);
    wanted.min((area.height / 3).max(5))
}

pub(crate) fn render(app: &App, frame: &mut Frame, area: Rect, theme: Theme) {
    let Some(snapshot) = app.snapshot.as_ref() else {
        return;
    };
    if snapshot.unplaceable.is_empty() || area.height == 0 {
        return;
    }
    let totals = totals(snapshot);
    let mut lines = text_lines(snapshot, area.width, theme);
    let room = usize::from(area.height.saturating_sub(CHROME_HEIGHT));
    if lines.len() > room && room > 0 {
        let hidden = lines.len() - (room - 1);
        lines.truncate(room - 1);
        lines.push(Line::styled(
            format!("… {hidden} more lines: see the jobs view (2) for every stuck queue"),
            theme.dim(),
        ));
    }
    let block = Block::bordered()
        .border_style(theme.bad())
        .padding(Padding::horizontal(1))
        .title_top(Span::styled(
            format!(
                " NO WORKER CAN RUN QUEUED WORK: {} queued ({} job{}) ",
                totals.queued,
                totals.jobs,
                if totals.jobs == 1 { "" } else { "s" }
            ),
            theme.alert(),
        ));
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

/// The whole queue's totals; at least what the listed jobs add up to (a
/// hand-built snapshot may leave them out).
fn totals(snapshot: &Snapshot) -> UnplaceableTotals {
    let listed = UnplaceableTotals::of(&snapshot.unplaceable);
    UnplaceableTotals {
        queued: snapshot.unplaceable_totals.queued.max(listed.queued),
        jobs: snapshot.unplaceable_totals.jobs.max(listed.jobs),
    }
}

/// "7 queued for billing-sync: <reason>" then "fix: <command>", each wrapped
/// to the banner's inner width; then how many more jobs the list left out.
fn text_lines(snapshot: &Snapshot, width: u16, theme: Theme) -> Vec<Line<'static>> {
    let inner = usize::from(width.saturating_sub(CHROME_WIDTH));
    let stuck = &snapshot.unplaceable;
    let mut lines = Vec::new();
    let left_out = totals(snapshot).jobs.saturating_sub(stuck.len() as u64);
    for u in stuck {
        let what = format!("{} queued for {}: {}", u.queued, u.job, u.reason);
        lines.extend(
            format::wrap(&what, inner)
                .into_iter()
                .map(|l| Line::styled(l, theme.bad())),
        );
        let fix = format!("fix: {}", u.fix);
        lines.extend(
            format::wrap(&fix, inner)
                .into_iter()
                .map(|l| Line::styled(l, theme.key())),
        );
    }
    if left_out > 0 {
        let more = format!(
            "… and {left_out} more job{} with work no worker can take: see the jobs view (2)",
            if left_out == 1 { "" } else { "s" }
        );
        lines.extend(
            format::wrap(&more, inner)
                .into_iter()
                .map(|l| Line::styled(l, theme.bad())),
        );
    }
    lines
}

#[cfg(test)]
mod tests {
    use ratatui::style::{Color, Modifier};

    use crate::snapshot::Unplaceable;
    use crate::views::testing::*;

    #[test]
    fn banner_shows_reason_and_fix_command() {
        for (w, h) in SIZES {
            let app = app_with(stuck());
            let lines = render_lines(&app, w, h);
            assert!(line_with(&lines, "NO WORKER CAN RUN QUEUED WORK").contains("(1 job)"));
            let text = screen(&lines);
            assert!(line_with(&lines, "7 queued for billing-sync").contains("no live worker"));
            // The reason may wrap at 80 columns; its parts are all on screen.
            assert!(
                text.contains(r#"no live worker carries tag "billing""#),
                "{text}"
            );
            assert!(text.contains("workers: w1,w2)"), "{text}");
            // The fix command is on one line, ready to copy.
            assert!(line_with(&lines, "fix:").contains(FIX), "{text}");
            // The table is still there below it.
            row_with(&lines, "w1 ");
        }
    }

    #[test]
    fn no_banner_when_everything_is_placeable() {
        let lines = render_lines(&app_with(healthy()), 80, 24);
        assert!(!screen(&lines).contains("NO WORKER"));
    }

    #[test]
    fn banner_is_red_and_bold_with_colour_and_bold_without() {
        let app = app_with(stuck());
        let mut terminal =
            ratatui::Terminal::new(ratatui::backend::TestBackend::new(80, 24)).expect("terminal");
        terminal.draw(|f| crate::render(&app, f)).expect("draw");
        let buffer = terminal.backend().buffer().clone();
        let (x, y) = find(&buffer, "7 queued for");
        assert_eq!(buffer[(x, y)].fg, Color::Red);
        assert!(buffer[(x, y)].modifier.contains(Modifier::BOLD));

        let mono = app_with_options(
            stuck(),
            crate::Options {
                color: false,
                ..Default::default()
            },
        );
        terminal.draw(|f| crate::render(&mono, f)).expect("draw");
        let buffer = terminal.backend().buffer();
        let (x, y) = find(buffer, "7 queued for");
        assert_eq!(buffer[(x, y)].fg, Color::Reset);
        assert!(buffer[(x, y)].modifier.contains(Modifier::BOLD));
        // No cell anywhere has a colour.
        assert!(
            buffer
                .content()
                .iter()
                .all(|c| c.fg == Color::Reset && c.bg == Color::Reset)
        );
    }

    #[test]
    fn many_stuck_jobs_are_capped_to_a_third_of_the_screen() {
        let mut snapshot = stuck();
        snapshot.unplaceable = (0..20)
            .map(|n| Unplaceable {
                job: format!("job-{n}"),
                queued: 1,
                reason: REASON.into(),
                fix: FIX.into(),
            })
            .collect();
        let lines = render_lines(&app_with(snapshot), 80, 24);
        assert!(line_with(&lines, "more lines").contains("jobs view"));
        assert!(line_with(&lines, "fix:").contains(FIX));
        row_with(&lines, "w1 ");
    }

    #[test]
    fn totals_count_the_whole_queue_and_name_the_jobs_left_out() {
        let mut snapshot = stuck();
        snapshot.unplaceable_totals = crate::snapshot::UnplaceableTotals {
            queued: 15_000,
            jobs: 5_000,
        };
        let lines = render_lines(&app_with(snapshot), 120, 40);
        assert!(
            line_with(&lines, "NO WORKER CAN RUN QUEUED WORK").contains("15000 queued (5000 jobs)")
        );
        assert!(line_with(&lines, "7 queued for billing-sync").contains("no live worker"));
        assert!(
            line_with(&lines, "4999 more jobs").contains("jobs view"),
            "{}",
            screen(&lines)
        );
    }

    fn find(buffer: &ratatui::buffer::Buffer, needle: &str) -> (u16, u16) {
        let area = buffer.area;
        for y in 0..area.height {
            let line: String = (0..area.width).map(|x| buffer[(x, y)].symbol()).collect();
            if let Some(byte) = line.find(needle) {
                let x = line[..byte].chars().count() as u16;
                return (x, y);
            }
        }
        panic!("{needle:?} not on screen");
    }
}
