//! The key map and the command line grammar, in one place so the help overlay
//! is generated from the same tables the handlers use.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use crate::app::View;
use crate::snapshot::InstanceStatus;

/// What a key means in the normal (no prompt, no dialog) mode. The App decides
/// what each intent does given the current view, detail pane and overlays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Intent {
    Down,
    Up,
    PageDown,
    PageUp,
    Top,
    Bottom,
    Show(View),
    NextView,
    PrevView,
    Open,
    Back,
    StartFilter,
    StartCommand,
    ToggleHelp,
    Quit,
    Refresh,
    RunJob,
    TogglePause,
    Retry,
    Cancel,
    CycleState,
}

/// Ctrl-C quits from every mode, including prompts and dialogs; it is checked
/// before anything else so `c` (cancel instance) can never shadow it.
pub(crate) fn is_interrupt(key: &KeyEvent) -> bool {
    key.modifiers.contains(KeyModifiers::CONTROL)
        && matches!(key.code, KeyCode::Char('c') | KeyCode::Char('C'))
}

/// Maps a key to an intent in normal mode. Shift is ignored for characters
/// because terminals disagree on whether `R` carries the SHIFT modifier.
pub(crate) fn intent(key: &KeyEvent) -> Option<Intent> {
    use Intent::*;
    if key.modifiers.contains(KeyModifiers::CONTROL) {
        return match key.code {
            KeyCode::Char('f') => Some(PageDown),
            KeyCode::Char('b') => Some(PageUp),
            KeyCode::Char('r') => Some(Refresh),
            _ => None,
        };
    }
    let intent = match key.code {
        KeyCode::Char('j') | KeyCode::Down => Down,
        KeyCode::Char('k') | KeyCode::Up => Up,
        KeyCode::Char('g') | KeyCode::Home => Top,
        KeyCode::Char('G') | KeyCode::End => Bottom,
        KeyCode::PageDown => PageDown,
        KeyCode::PageUp => PageUp,
        KeyCode::Char('1') => Show(View::Workers),
        KeyCode::Char('2') => Show(View::Jobs),
        KeyCode::Char('3') => Show(View::Instances),
        KeyCode::Char('4') => Show(View::Failures),
        KeyCode::Tab => NextView,
        KeyCode::BackTab => PrevView,
        KeyCode::Enter => Open,
        KeyCode::Esc => Back,
        KeyCode::Char('/') => StartFilter,
        KeyCode::Char(':') => StartCommand,
        KeyCode::Char('?') => ToggleHelp,
        KeyCode::Char('q') => Quit,
        KeyCode::Char('r') => RunJob,
        KeyCode::Char('p') => TogglePause,
        KeyCode::Char('R') => Retry,
        KeyCode::Char('c') => Cancel,
        KeyCode::Char('s') => CycleState,
        _ => return None,
    };
    Some(intent)
}

/// One line of the help overlay.
pub(crate) struct HelpEntry {
    pub keys: &'static str,
    pub what: &'static str,
}

const fn entry(keys: &'static str, what: &'static str) -> HelpEntry {
    HelpEntry { keys, what }
}

/// Key bindings by section, as shown by `?`. Keep in step with [`intent`].
/// Descriptions stay short so two columns fit in 80 columns.
pub(crate) const KEY_HELP: &[(&str, &[HelpEntry])] = &[
    (
        "Navigate",
        &[
            entry("j / Down", "next row"),
            entry("k / Up", "previous row"),
            entry("g / Home", "first row"),
            entry("G / End", "last row"),
            entry("PgDn / Ctrl-f", "page down"),
            entry("PgUp / Ctrl-b", "page up"),
            entry("1 / 2", "workers / jobs"),
            entry("3 / 4", "instances / failures"),
            entry("Tab / S-Tab", "next / previous view"),
            entry("Enter", "open detail pane"),
            entry("Esc", "back: close or clear"),
        ],
    ),
    (
        "Find",
        &[
            entry("/", "filter (regex, !not)"),
            entry("s", "filter by state"),
            entry(":", "command line (Tab)"),
        ],
    ),
    (
        "Act (asks y/n first)",
        &[
            entry("r", "run job now"),
            entry("p", "pause / resume job"),
            entry("R", "retry instance"),
            entry("c", "cancel instance"),
        ],
    ),
    (
        "General",
        &[
            entry("Ctrl-r", "refresh now"),
            entry("?", "toggle this help"),
            entry("q / Ctrl-c", "quit"),
        ],
    ),
];

/// A parsed `:` command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Command {
    Show(View),
    /// `:instances [state]`: `None` keeps the current state filter,
    /// `Some(None)` clears it (`all`), `Some(Some(s))` sets it.
    Instances(Option<Option<InstanceStatus>>),
    Refresh,
    Help,
    Quit,
}

/// A command name with its aliases and help text.
pub(crate) struct CommandSpec {
    pub name: &'static str,
    pub aliases: &'static [&'static str],
    pub what: &'static str,
}

pub(crate) const COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "workers",
        aliases: &["w", "wk", "worker", "nodes"],
        what: "cluster members",
    },
    CommandSpec {
        name: "jobs",
        aliases: &["j", "job"],
        what: "jobs and their queues",
    },
    CommandSpec {
        name: "instances",
        aliases: &["i", "inst", "instance"],
        what: "[state|all] runs",
    },
    CommandSpec {
        name: "failures",
        aliases: &["f", "fail", "failed"],
        what: "failed runs",
    },
    CommandSpec {
        name: "refresh",
        aliases: &[],
        what: "fetch now",
    },
    CommandSpec {
        name: "help",
        aliases: &["h", "?"],
        what: "this help",
    },
    CommandSpec {
        name: "quit",
        aliases: &["q", "q!", "exit"],
        what: "leave the console",
    },
];

/// Parses a command line (without the leading `:`). The error is shown in the
/// status line as is.
pub(crate) fn parse_command(line: &str) -> Result<Command, String> {
    let mut words = line.split_whitespace();
    let Some(word) = words.next() else {
        return Err("empty command; try :help".to_string());
    };
    let arg = words.next();
    if let Some(extra) = words.next() {
        return Err(format!("unexpected argument {extra:?}"));
    }
    let word = word.to_ascii_lowercase();
    let Some(spec) = COMMANDS
        .iter()
        .find(|c| c.name == word || c.aliases.contains(&word.as_str()))
    else {
        return Err(format!("unknown command :{word}; try :help"));
    };
    let command = match spec.name {
        "workers" => Command::Show(View::Workers),
        "jobs" => Command::Show(View::Jobs),
        "failures" => Command::Show(View::Failures),
        "instances" => Command::Instances(match arg {
            None => None,
            Some(a) if a.eq_ignore_ascii_case("all") || a == "*" => Some(None),
            Some(a) => match InstanceStatus::parse(a) {
                Some(status) => Some(Some(status)),
                None => {
                    return Err(format!(
                        "unknown state {a:?}; use queued, assigned, running, succeeded, failed, cancelled or all"
                    ));
                }
            },
        }),
        "refresh" => Command::Refresh,
        "help" => Command::Help,
        _ => Command::Quit,
    };
    if arg.is_some() && !matches!(command, Command::Instances(_)) {
        return Err(format!(":{} takes no argument", spec.name));
    }
    Ok(command)
}

/// Completes the command word when exactly one command name starts with it;
/// the operator presses Tab on `:inst` to get `:instances `.
pub(crate) fn complete(line: &str) -> Option<String> {
    if line.contains(char::is_whitespace) || line.is_empty() {
        return None;
    }
    let lower = line.to_ascii_lowercase();
    let mut names = COMMANDS
        .iter()
        .map(|c| c.name)
        .filter(|n| n.starts_with(&lower));
    match (names.next(), names.next()) {
        (Some(name), None) if name != lower => Some(format!("{name} ")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode, modifiers: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, modifiers)
    }

    #[test]
    fn ctrl_c_is_interrupt_but_c_is_cancel() {
        assert!(is_interrupt(&key(
            KeyCode::Char('c'),
            KeyModifiers::CONTROL
        )));
        assert!(!is_interrupt(&key(KeyCode::Char('c'), KeyModifiers::NONE)));
        assert_eq!(
            intent(&key(KeyCode::Char('c'), KeyModifiers::NONE)),
            Some(Intent::Cancel)
        );
        assert_eq!(
            intent(&key(KeyCode::Char('R'), KeyModifiers::SHIFT)),
            Some(Intent::Retry)
        );
        assert_eq!(
            intent(&key(KeyCode::Char('r'), KeyModifiers::CONTROL)),
            Some(Intent::Refresh)
        );
    }

    #[test]
    fn commands_and_aliases() {
        assert_eq!(parse_command("w"), Ok(Command::Show(View::Workers)));
        assert_eq!(parse_command("JOBS"), Ok(Command::Show(View::Jobs)));
        assert_eq!(parse_command("inst"), Ok(Command::Instances(None)));
        assert_eq!(
            parse_command("instances failed"),
            Ok(Command::Instances(Some(Some(InstanceStatus::Failed))))
        );
        assert_eq!(parse_command("i all"), Ok(Command::Instances(Some(None))));
        assert_eq!(parse_command("f"), Ok(Command::Show(View::Failures)));
        assert_eq!(parse_command("q"), Ok(Command::Quit));
        assert!(parse_command("instances bogus").is_err());
        assert!(parse_command("jobs extra").is_err());
        assert!(parse_command("nope").is_err());
        assert!(parse_command("  ").is_err());
    }

    #[test]
    fn completion_needs_a_unique_prefix() {
        assert_eq!(complete("inst").as_deref(), Some("instances "));
        assert_eq!(complete("w").as_deref(), Some("workers "));
        assert_eq!(complete("x"), None);
        assert_eq!(complete("instances failed"), None);
    }

    #[test]
    fn every_command_alias_is_unique() {
        let mut seen = std::collections::HashSet::new();
        for spec in COMMANDS {
            assert!(seen.insert(spec.name));
            for alias in spec.aliases {
                assert!(seen.insert(alias), "duplicate alias {alias}");
            }
        }
    }
}
