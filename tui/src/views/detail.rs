//! Detail pane (Enter): a job's definition, an instance's attempts, or a
//! worker's details. Replaces the table so long TOML and response bodies get
//! the full width; Esc returns to the table.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Padding, Paragraph};

use crate::app::{App, Detail, DetailTarget};
use crate::format;
use crate::snapshot::{AttemptRow, ChainLink, InstanceRow, JobLink, JobRow, Snapshot, WorkerRow};
use crate::theme::Theme;

/// Width of the field labels ("schedule  ").
const LABEL: usize = 11;
/// Cap on the instances listed under a job or worker.
const RELATED_LIMIT: usize = 20;

/// Furthest the pane can scroll at `body` size, so scrolling stops at the end.
pub(crate) fn max_scroll(app: &App, body: Rect) -> usize {
    let Some(detail) = &app.detail else {
        return 0;
    };
    let (width, height) = inner_size(body);
    let total = lines(app, &detail.target, width, Theme::new(false)).len();
    total.saturating_sub(height)
}

/// Text width and height inside the borders and padding.
fn inner_size(body: Rect) -> (usize, usize) {
    (
        usize::from(body.width.saturating_sub(4)),
        usize::from(body.height.saturating_sub(2)),
    )
}

pub(crate) fn render(app: &App, detail: &Detail, frame: &mut Frame, area: Rect, theme: Theme) {
    let (width, height) = inner_size(area);
    let all = lines(app, &detail.target, width, theme);
    let scroll = detail.scroll.min(all.len().saturating_sub(height));
    let visible: Vec<Line> = all.into_iter().skip(scroll).take(height).collect();
    let block = Block::bordered()
        .border_style(theme.border())
        .padding(Padding::horizontal(1))
        .title_top(Span::styled(
            format!(" {} ", breadcrumb(app, &detail.target)),
            theme.title(),
        ))
        .title_bottom(Span::styled(hints(app, &detail.target), theme.dim()));
    frame.render_widget(Paragraph::new(visible).block(block), area);
}

/// "jobs › nightly-report" — where the operator is and what Esc returns to.
fn breadcrumb(app: &App, target: &DetailTarget) -> String {
    let view = app.view.title();
    match target {
        DetailTarget::Worker(id) => format!("{view} › {id}"),
        DetailTarget::Job(id) => {
            let name = app
                .snapshot
                .as_ref()
                .and_then(|s| s.jobs.iter().find(|j| j.id == *id))
                .map_or("", |j| j.name.as_str());
            format!("{view} › {name} (#{id}) › definition")
        }
        DetailTarget::Instance(id) => format!("{view} › instance {id} › attempts"),
    }
}

/// Keys that work in the pane; actions are left out in read-only mode.
fn hints(app: &App, target: &DetailTarget) -> &'static str {
    let actions = !app.options.readonly;
    match target {
        DetailTarget::Job(_) if actions => " r run · p pause/resume · j/k scroll · Esc back ",
        DetailTarget::Instance(_) if actions => " R retry · c cancel · j/k scroll · Esc back ",
        _ => " j/k scroll · Esc back ",
    }
}

/// Every line of the pane, wrapped to `width`.
fn lines(app: &App, target: &DetailTarget, width: usize, theme: Theme) -> Vec<Line<'static>> {
    let Some(snapshot) = &app.snapshot else {
        return vec![Line::styled("no data yet", theme.dim())];
    };
    let ctx = Ctx {
        now: app.now_ms,
        width,
        theme,
    };
    let missing = |what: String| {
        vec![Line::styled(
            format!("{what} is no longer in the snapshot"),
            theme.dim(),
        )]
    };
    match target {
        DetailTarget::Worker(id) => match snapshot.workers.iter().find(|w| &w.id == id) {
            Some(w) => worker_lines(snapshot, w, &ctx),
            None => missing(format!("worker {id}")),
        },
        DetailTarget::Job(id) => match snapshot.jobs.iter().find(|j| j.id == *id) {
            Some(j) => job_lines(snapshot, j, &ctx),
            None => missing(format!("job #{id}")),
        },
        DetailTarget::Instance(id) => match snapshot.instances.iter().find(|i| i.id == *id) {
            Some(i) => instance_lines(snapshot, i, &ctx),
            None => missing(format!("instance {id}")),
        },
    }
}

/// Says in red that a job skips certificate verification: an operator must not miss it.
const INSECURE_TLS: &str = "INSECURE: TLS certificates are not verified (http.tls.insecure)";

/// What every section builder needs.
struct Ctx {
    now: i64,
    width: usize,
    theme: Theme,
}

impl Ctx {
    /// "label      value", the value wrapped under itself.
    fn field(&self, out: &mut Vec<Line<'static>>, label: &str, value: String, style: Style) {
        let wrapped = format::wrap(&value, self.width.saturating_sub(LABEL));
        for (n, part) in wrapped.into_iter().enumerate() {
            let head = if n == 0 { label } else { "" };
            out.push(Line::from(vec![
                Span::styled(format!("{head:<LABEL$}"), self.theme.dim()),
                Span::styled(part, style),
            ]));
        }
    }

    /// A block of text indented by `indent` columns behind `gutter`.
    fn block(&self, out: &mut Vec<Line<'static>>, gutter: &'static str, text: &str, style: Style) {
        let avail = self.width.saturating_sub(gutter.chars().count());
        for part in format::wrap(text, avail) {
            out.push(Line::from(vec![
                Span::styled(gutter, self.theme.dim()),
                Span::styled(part, style),
            ]));
        }
    }

    fn heading(&self, out: &mut Vec<Line<'static>>, text: String) {
        out.push(Line::default());
        out.push(Line::styled(text, self.theme.column_header()));
    }

    /// One-line summaries of instances, newest first.
    fn related<'a>(
        &self,
        out: &mut Vec<Line<'static>>,
        instances: impl Iterator<Item = &'a InstanceRow>,
    ) {
        let mut any = false;
        for i in instances.take(RELATED_LIMIT) {
            any = true;
            out.push(Line::from(vec![
                Span::raw(format!("  {:<7} ", i.id)),
                Span::styled(
                    format!("{:<10}", i.status.label()),
                    self.theme.status(i.status),
                ),
                Span::raw(format!("{:<16} ", i.job)),
                Span::styled(format::ago(self.now, i.updated_ms), self.theme.dim()),
            ]));
        }
        if !any {
            out.push(Line::styled("  none", self.theme.dim()));
        }
    }
}

fn worker_lines(snapshot: &Snapshot, w: &WorkerRow, ctx: &Ctx) -> Vec<Line<'static>> {
    let t = ctx.theme;
    let plain = Style::default();
    let mut out = vec![Line::styled(
        format!("worker {} ({})", w.id, w.role),
        t.title(),
    )];
    ctx.field(&mut out, "state", w.state.label().into(), t.member(w.state));
    ctx.field(&mut out, "address", w.addr.clone(), plain);
    let tags = if w.tags.is_empty() {
        format::NONE.to_string()
    } else {
        w.tags.join(", ")
    };
    ctx.field(&mut out, "tags", tags, plain);
    ctx.field(
        &mut out,
        "load",
        format!("{} of {} slots running", w.running, w.capacity),
        plain,
    );
    ctx.field(
        &mut out,
        "heartbeat",
        format::stamp(ctx.now, w.last_seen_ms),
        plain,
    );
    ctx.field(&mut out, "version", w.version.clone(), plain);
    ctx.heading(&mut out, "instances on this worker".into());
    let here = snapshot
        .instances
        .iter()
        .filter(|i| !i.status.is_terminal() && i.worker.as_deref() == Some(w.id.as_str()));
    ctx.related(&mut out, here);
    out
}

fn job_lines(snapshot: &Snapshot, j: &JobRow, ctx: &Ctx) -> Vec<Line<'static>> {
    let t = ctx.theme;
    let plain = Style::default();
    let mut title = vec![Span::styled(
        format!("job {} (#{})", j.name, j.id),
        t.title(),
    )];
    if j.paused {
        title.push(Span::styled("  paused", t.warn()));
    }
    if j.insecure_tls {
        title.push(Span::styled("  INSECURE TLS", t.bad()));
    }
    let mut out = vec![Line::from(title)];
    if j.insecure_tls {
        ctx.field(&mut out, "tls", INSECURE_TLS.into(), t.bad());
    }
    ctx.field(&mut out, "schedule", j.schedule.clone(), plain);
    let next = match (j.paused, j.next_fire_ms) {
        (true, _) => "paused (p resumes)".to_string(),
        (false, Some(at)) => format!("{} UTC ({})", format::clock(at), format::until(ctx.now, at)),
        (false, None) => format::NONE.to_string(),
    };
    ctx.field(&mut out, "next fire", next, plain);
    ctx.field(
        &mut out,
        "queue",
        format!("{} queued · {} running", j.queued, j.running),
        plain,
    );
    if let Some(last) = j.last_result {
        ctx.field(&mut out, "last", last.label().into(), t.status(last));
    }
    // Its place in chains: who queues it, whom it queues.
    if !j.upstream.is_empty() {
        ctx.field(&mut out, "upstream", job_links(&j.upstream), plain);
    }
    if !j.downstream.is_empty() {
        ctx.field(&mut out, "downstream", job_links(&j.downstream), plain);
    }
    for stuck in snapshot.unplaceable.iter().filter(|u| u.job == j.name) {
        ctx.field(&mut out, "stuck", stuck.reason.clone(), t.bad());
        ctx.field(&mut out, "fix", stuck.fix.clone(), t.key());
    }
    ctx.heading(&mut out, "definition".into());
    ctx.block(&mut out, "  ", &j.definition, plain);
    ctx.heading(&mut out, "recent instances".into());
    ctx.related(
        &mut out,
        snapshot.instances.iter().filter(|i| i.job_id == j.id),
    );
    out
}

fn instance_lines(snapshot: &Snapshot, i: &InstanceRow, ctx: &Ctx) -> Vec<Line<'static>> {
    let t = ctx.theme;
    let plain = Style::default();
    let mut out = vec![Line::styled(
        format!("instance {} of {} (#{})", i.id, i.job, i.job_id),
        t.title(),
    )];
    ctx.field(
        &mut out,
        "status",
        format!("{} (attempt {})", i.status.label(), i.attempt),
        t.status(i.status),
    );
    ctx.field(
        &mut out,
        "worker",
        i.worker.clone().unwrap_or_else(|| format::NONE.into()),
        plain,
    );
    ctx.field(
        &mut out,
        "created",
        format::stamp(ctx.now, i.created_ms),
        plain,
    );
    ctx.field(
        &mut out,
        "updated",
        format::stamp(ctx.now, i.updated_ms),
        plain,
    );
    if let Some(reason) = &i.reason {
        ctx.field(&mut out, "reason", reason.clone(), t.status(i.status));
    }
    if snapshot
        .jobs
        .iter()
        .any(|j| j.id == i.job_id && j.insecure_tls)
    {
        ctx.field(&mut out, "tls", INSECURE_TLS.into(), t.bad());
    }
    if let Some(parent) = &i.parent {
        chain_line(&mut out, "parent", parent, ctx);
    }
    for (n, child) in i.children.iter().enumerate() {
        chain_line(&mut out, if n == 0 { "children" } else { "" }, child, ctx);
    }
    ctx.heading(
        &mut out,
        format!("attempts ({}, newest first)", i.attempts.len()),
    );
    if i.attempts.is_empty() {
        out.push(Line::styled("  no attempts yet", t.dim()));
    }
    let mut attempts: Vec<&AttemptRow> = i.attempts.iter().collect();
    attempts.sort_by_key(|a| std::cmp::Reverse(a.number));
    for a in attempts {
        attempt_lines(&mut out, a, ctx);
    }
    out
}

/// "load (on success), audit (on failure)".
fn job_links(links: &[JobLink]) -> String {
    links
        .iter()
        .map(|l| format!("{} ({})", l.job, l.on.label()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// "parent     instance 41 of extract · succeeded", the status in its colour.
fn chain_line(out: &mut Vec<Line<'static>>, label: &str, link: &ChainLink, ctx: &Ctx) {
    let t = ctx.theme;
    let mut spans = vec![Span::styled(format!("{label:<LABEL$}"), t.dim())];
    match link {
        ChainLink::Kept { id, job, status } => {
            spans.push(Span::raw(format!("instance {id} of {job} · ")));
            spans.push(Span::styled(status.label(), t.status(*status)));
        }
        ChainLink::Forgotten { id } => {
            spans.push(Span::raw(format!("instance {id} · ")));
            spans.push(Span::styled("no longer kept", t.dim()));
        }
    }
    out.push(Line::from(spans));
}

/// "#3 on w2 · 12:02:04 UTC (1m ago) · took 1.2s · HTTP 500", then its error
/// and response excerpt.
fn attempt_lines(out: &mut Vec<Line<'static>>, a: &AttemptRow, ctx: &Ctx) {
    let t = ctx.theme;
    let took = match a.ended_ms {
        Some(end) => format!("took {}", format::elapsed(end - a.started_ms)),
        None => format!("running for {}", format::elapsed(ctx.now - a.started_ms)),
    };
    let (outcome, style) = match (a.http_status, &a.error, a.ended_ms) {
        (Some(code), _, _) if (200..300).contains(&code) => (format!("HTTP {code}"), t.good()),
        (Some(code), _, _) => (format!("HTTP {code}"), t.bad()),
        (None, Some(_), _) => ("no response".to_string(), t.bad()),
        (None, None, None) => ("in progress".to_string(), t.warn()),
        (None, None, Some(_)) => ("no status".to_string(), t.dim()),
    };
    out.push(Line::default());
    out.push(Line::from(vec![
        Span::styled(format!("#{} ", a.number), t.title()),
        Span::raw(format!(
            "on {} · {} · {took} · ",
            a.worker,
            format::stamp(ctx.now, a.started_ms)
        )),
        Span::styled(outcome, style),
    ]));
    if let Some(error) = &a.error {
        ctx.block(out, "   error: ", error, t.bad());
    }
    if let Some(excerpt) = &a.excerpt {
        out.push(Line::styled("   response:", t.dim()));
        ctx.block(out, "   │ ", excerpt, Style::default());
    }
}

#[cfg(test)]
mod tests {
    use ratatui::crossterm::event::KeyCode;

    use crate::views::testing::*;

    #[test]
    fn job_detail_shows_definition() {
        for (w, h) in SIZES {
            let mut app = app_with(stuck());
            type_text(&mut app, "2j");
            app.handle_key(key(KeyCode::Enter));
            let lines = render_lines(&app, w, h);
            line_with(&lines, "jobs › billing-sync (#2) › definition");
            line_with(&lines, "every 30s");
            line_with(&lines, "7 queued · 0 running");
            line_with(&lines, r#"name = "billing-sync""#);
            line_with(&lines, r#"tags = ["billing"]"#);
            // The stuck reason and fix are repeated where the operator looks.
            assert!(line_with(&lines, "fix").contains(FIX));
            line_with(&lines, "recent instances");
            line_with(&lines, "105");

            app.handle_key(key(KeyCode::Esc));
            let lines = render_lines(&app, w, h);
            assert!(!screen(&lines).contains("definition"));
            row_with(&lines, "2 ");
        }
    }

    #[test]
    fn instance_detail_shows_attempts_with_error_and_excerpt() {
        for (w, h) in SIZES {
            let mut app = app_with(healthy());
            type_text(&mut app, "4");
            app.handle_key(key(KeyCode::Enter));
            let lines = render_lines(&app, w, h);
            line_with(&lines, "failures › instance 103 › attempts");
            assert!(line_with(&lines, "status").contains("failed (attempt 3)"));
            assert!(line_with(&lines, "reason").contains("HTTP 500 from billing.internal"));
            line_with(&lines, "attempts (3, newest first)");
            let newest = line_with(&lines, "#3 on w2");
            assert!(newest.contains("took 1.2s"), "{newest}");
            assert!(newest.contains("HTTP 500"), "{newest}");
            line_with(&lines, "error: upstream returned 500 on try 3");
            line_with(&lines, r#"│ {"error":"db timeout 3"}"#);
            // Newest attempt is listed first.
            let pos = |n: &str| lines.iter().position(|l| l.contains(n));
            assert!(pos("#3 on") < pos("#2 on") || pos("#2 on").is_none());
        }
    }

    /// Where `needle` starts on the rendered screen, and that cell's style.
    fn cell_of(app: &crate::App, needle: &str) -> ratatui::buffer::Cell {
        let mut terminal =
            ratatui::Terminal::new(ratatui::backend::TestBackend::new(100, 30)).expect("terminal");
        terminal.draw(|f| crate::render(app, f)).expect("draw");
        let buffer = terminal.backend().buffer().clone();
        for y in 0..buffer.area.height {
            let line: String = (0..buffer.area.width)
                .map(|x| buffer[(x, y)].symbol())
                .collect();
            if let Some(byte) = line.find(needle) {
                let x = line[..byte].chars().count() as u16;
                return buffer[(x, y)].clone();
            }
        }
        panic!("{needle:?} not on screen");
    }

    #[test]
    fn an_insecure_job_is_marked_in_red_on_its_detail_and_its_instances() {
        let mut snapshot = healthy();
        snapshot.jobs[1].insecure_tls = true;
        let mut app = app_with(snapshot.clone());
        type_text(&mut app, "2j");
        app.handle_key(key(KeyCode::Enter));
        let lines = render_lines(&app, 100, 30);
        assert!(line_with(&lines, "job billing-sync (#2)").contains("INSECURE TLS"));
        line_with(&lines, "INSECURE: TLS certificates are not verified");
        let cell = cell_of(&app, "INSECURE: TLS");
        assert_eq!(cell.fg, ratatui::style::Color::Red);

        // Instance 103 belongs to billing-sync: its detail says so too.
        let mut app = app_with(snapshot);
        type_text(&mut app, "4");
        app.handle_key(key(KeyCode::Enter));
        let lines = render_lines(&app, 100, 30);
        line_with(&lines, "instance 103 of billing-sync");
        assert!(line_with(&lines, "tls").contains("INSECURE"));
        assert_eq!(cell_of(&app, "INSECURE").fg, ratatui::style::Color::Red);

        // A job that verifies certificates shows no such line.
        let mut app = app_with(healthy());
        type_text(&mut app, "2j");
        app.handle_key(key(KeyCode::Enter));
        assert!(!screen(&render_lines(&app, 100, 30)).contains("INSECURE"));
    }

    #[test]
    fn instance_detail_shows_its_chain_parent_and_children() {
        for (w, h) in SIZES {
            let mut app = app_with(chained());
            type_text(&mut app, "3/load");
            app.handle_key(key(KeyCode::Enter));
            app.handle_key(key(KeyCode::Enter));
            let lines = render_lines(&app, w, h);
            line_with(&lines, "instances › instance 107 › attempts");
            let parent = line_with(&lines, "parent");
            assert!(
                parent.contains("instance 106 of extract · succeeded"),
                "{parent}"
            );
            let children = lines
                .iter()
                .position(|l| l.contains("children"))
                .unwrap_or_else(|| panic!("no children:\n{}", screen(&lines)));
            assert!(
                lines[children].contains("instance 108 of report · running"),
                "{}",
                lines[children]
            );
            assert!(
                lines[children + 1].contains("instance 109 · no longer kept"),
                "{}",
                lines[children + 1]
            );
        }
        // The chain's last step shows only its parent; an instance in no chain shows neither.
        let mut app = app_with(chained());
        type_text(&mut app, "3/report");
        app.handle_key(key(KeyCode::Enter));
        app.handle_key(key(KeyCode::Enter));
        let lines = render_lines(&app, 100, 30);
        assert!(line_with(&lines, "parent").contains("instance 107 of load · succeeded"));
        assert!(!screen(&lines).contains("children"));
        let mut app = app_with(chained());
        type_text(&mut app, "4");
        app.handle_key(key(KeyCode::Enter));
        let lines = render_lines(&app, 100, 30);
        line_with(&lines, "instance 103 of billing-sync");
        assert!(!screen(&lines).contains("parent"));
    }

    #[test]
    fn job_detail_shows_upstream_and_downstream_jobs() {
        let mut app = app_with(chained());
        type_text(&mut app, "2/load");
        app.handle_key(key(KeyCode::Enter));
        app.handle_key(key(KeyCode::Enter));
        let lines = render_lines(&app, 100, 30);
        line_with(&lines, "jobs › load (#5) › definition");
        assert!(line_with(&lines, "upstream").contains("extract (on success)"));
        assert!(
            line_with(&lines, "downstream").contains("report (on success), audit (on completion)")
        );
        // A job in no chain shows neither.
        let mut app = app_with(chained());
        type_text(&mut app, "2");
        app.handle_key(key(KeyCode::Enter));
        let screen = screen(&render_lines(&app, 100, 30));
        assert!(!screen.contains("upstream") && !screen.contains("downstream"));
    }

    #[test]
    fn detail_scrolls_to_older_attempts() {
        let mut app = app_with(healthy());
        type_text(&mut app, "4");
        app.handle_key(key(KeyCode::Enter));
        render_lines(&app, 80, 24);
        type_text(&mut app, "G");
        let lines = render_lines(&app, 80, 24);
        line_with(&lines, r#"db timeout 1"#);
        // Scrolling stops at the end; one `k` moves back by exactly one line.
        type_text(&mut app, "jjjk");
        let again = render_lines(&app, 80, 24);
        assert_ne!(lines, again);
        type_text(&mut app, "g");
        let top = render_lines(&app, 80, 24);
        line_with(&top, "instance 103 of billing-sync");
    }

    #[test]
    fn worker_detail_and_connection_refused_attempt() {
        let mut app = app_with(healthy());
        app.handle_key(key(KeyCode::Enter));
        let lines = render_lines(&app, 80, 24);
        line_with(&lines, "workers › w1");
        assert!(line_with(&lines, "address").contains("10.0.0.1:7946"));
        assert!(line_with(&lines, "tags").contains("gpu, eu"));
        line_with(&lines, "104");

        type_text(&mut app, "4j");
        app.handle_key(key(KeyCode::Enter));
        let lines = render_lines(&app, 80, 24);
        assert!(line_with(&lines, "#1 on w2").contains("no response"));
        line_with(&lines, "error: connection refused");
    }
}
