//! Rendering: a pure function of [`App`] onto a frame.
//!
//! Layout, top to bottom: header (always), the no-worker banner (only when
//! queued work cannot be placed), the body (a table or the detail pane), and
//! a one-line footer (prompt, status or key hints). Overlays — help and the
//! confirm dialog — are drawn last, over a cleared area.

pub(crate) mod banner;
pub(crate) mod confirm;
pub(crate) mod detail;
pub(crate) mod failures;
pub(crate) mod footer;
pub(crate) mod header;
pub(crate) mod help;
pub(crate) mod instances;
pub(crate) mod jobs;
pub(crate) mod table;
pub(crate) mod workers;

#[cfg(test)]
pub(crate) mod testing;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use crate::app::{App, Areas, View};
use crate::theme::Theme;

/// Below this size the full layout cannot fit; a compact summary is shown.
const MIN_WIDTH: u16 = 40;
const MIN_HEIGHT: u16 = 10;

/// Draws the whole console. Reads only `app`; the sole write is recording the
/// body area so paging keys know the viewport height.
pub fn render(app: &App, frame: &mut Frame) {
    let area = frame.area();
    let theme = Theme::new(app.options.color);
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        app.areas.set(Areas {
            screen: area,
            body: area,
        });
        render_compact(app, frame, area, theme);
        return;
    }
    let banner_height = banner::height(app, area);
    let [header_area, banner_area, body, footer_area] = Layout::vertical([
        Constraint::Length(header::height(app, area.width)),
        Constraint::Length(banner_height),
        Constraint::Min(3),
        Constraint::Length(1),
    ])
    .areas(area);
    app.areas.set(Areas { screen: area, body });

    header::render(app, frame, header_area, theme);
    banner::render(app, frame, banner_area, theme);
    if let Some(detail) = &app.detail {
        detail::render(app, detail, frame, body, theme);
    } else {
        match app.view {
            View::Workers => workers::render(app, frame, body, theme),
            View::Jobs => jobs::render(app, frame, body, theme),
            View::Instances => instances::render(app, frame, body, theme),
            View::Failures => failures::render(app, frame, body, theme),
        }
    }
    footer::render(app, frame, footer_area, theme);
    if let Some(scroll) = app.help {
        help::render(frame, area, scroll, theme);
    }
    if let Some(action) = &app.confirm {
        confirm::render(action, frame, area, theme);
    }
}

/// A few lines that still tell the operator whether the cluster is healthy
/// when the terminal is too small for tables.
fn render_compact(app: &App, frame: &mut Frame, area: Rect, theme: Theme) {
    // Most important first: lines beyond the height are cut off.
    let mut lines = vec![Line::from(vec![
        Span::styled("shoal ", theme.title()),
        Span::raw(app.snapshot.as_ref().map_or("", |s| s.cluster.as_str())),
    ])];
    if let Some(action) = &app.confirm {
        lines.push(Line::styled(
            format!("{} [y/n]", action.prompt()),
            theme.warn(),
        ));
    }
    if app.error.is_some() {
        lines.push(Line::styled("server unreachable — retrying", theme.alert()));
    }
    if let Some(s) = &app.snapshot {
        if !s.unplaceable.is_empty() {
            lines.push(Line::styled(
                format!(
                    "{} job(s) cannot be placed",
                    s.unplaceable_totals.jobs.max(s.unplaceable.len() as u64)
                ),
                theme.bad(),
            ));
        }
        lines.push(Line::from(format!(
            "{} live {} dead · {} queued {} running",
            s.stats.live_workers, s.stats.dead_workers, s.stats.queued, s.stats.running
        )));
    }
    if let Some(status) = app.current_status() {
        lines.push(Line::raw(status.text.clone()));
    }
    lines.push(Line::styled(
        format!("enlarge terminal ({}x{})", area.width, area.height),
        theme.dim(),
    ));
    frame.render_widget(Paragraph::new(lines), area);
}
