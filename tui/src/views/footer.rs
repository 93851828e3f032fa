//! The bottom line: the `:`/`/` prompt while typing, else the latest status
//! message, else the keys that matter in this view.

use ratatui::Frame;
use ratatui::layout::{Position, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use crate::app::{App, Prompt, PromptKind, StatusKind, View};
use crate::keymap;
use crate::theme::Theme;

pub(crate) fn render(app: &App, frame: &mut Frame, area: Rect, theme: Theme) {
    if let Some(prompt) = &app.prompt {
        render_prompt(prompt, frame, area, theme);
        return;
    }
    let line = match app.current_status() {
        Some(status) => {
            let style = match status.kind {
                StatusKind::Info => theme.warn(),
                StatusKind::Success => theme.good(),
                StatusKind::Error => theme.bad(),
            };
            Line::styled(format!(" {}", status.text), style)
        }
        None => hints(app, theme),
    };
    frame.render_widget(Paragraph::new(line), area);
}

fn render_prompt(prompt: &Prompt, frame: &mut Frame, area: Rect, theme: Theme) {
    let (sigil, help) = match prompt.kind {
        PromptKind::Command => (":", "   Enter run · Tab complete · Esc cancel"),
        PromptKind::Filter => ("/", "   regex or text, ! negates · Enter keep · Esc clear"),
    };
    let mut spans = vec![
        Span::styled(sigil, theme.key()),
        Span::raw(prompt.text.clone()),
    ];
    if prompt.kind == PromptKind::Command
        && let Some(rest) = keymap::complete(&prompt.text)
            .and_then(|done| done.get(prompt.text.len()..).map(str::to_string))
    {
        spans.push(Span::styled(rest, theme.dim()));
    }
    let typed = 1 + prompt.text.chars().count();
    spans.push(Span::styled(help, theme.dim()));
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
    let x = area
        .x
        .saturating_add(u16::try_from(typed).unwrap_or(u16::MAX));
    if x < area.right() {
        frame.set_cursor_position(Position::new(x, area.y));
    }
}

/// The keys for what is on screen; actions only where they apply.
fn hints(app: &App, theme: Theme) -> Line<'static> {
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    if !app.options.readonly {
        match app.view {
            View::Jobs => pairs.extend([("r", "run"), ("p", "pause")]),
            View::Instances | View::Failures => pairs.extend([("R", "retry"), ("c", "cancel")]),
            _ => {}
        }
    }
    if app.detail.is_none() {
        pairs.extend([("enter", "detail"), ("/", "filter")]);
        if app.view == View::Instances {
            pairs.push(("s", "state"));
        }
    }
    pairs.extend([(":", "cmd"), ("esc", "back"), ("?", "help"), ("q", "quit")]);
    let mut spans = Vec::new();
    if app.options.readonly {
        spans.push(Span::styled(" READ-ONLY ", theme.alert()));
    }
    for (key, what) in pairs {
        spans.push(Span::styled(format!(" {key}"), theme.key()));
        spans.push(Span::styled(format!(" {what} "), theme.dim()));
    }
    Line::from(spans)
}
