//! Text formatting shared by the views: relative times, clock times and
//! word-wrapping. Pure functions of their inputs so they are trivially testable
//! and never consult the system clock.

use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

/// Placeholder for an absent value; one cell wide so columns stay aligned.
pub(crate) const NONE: &str = "-";

/// A non-negative span in the largest two units that matter to an operator:
/// "45s", "3m12s", "2h5m", "3d4h".
pub(crate) fn span(ms: i64) -> String {
    if (1..1000).contains(&ms) {
        // Sub-second spans (a fast refresh) would otherwise read "0s".
        return format!("{ms}ms");
    }
    let secs = ms.max(0) / 1000;
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) if s == 0 => format!("{m}m"),
        (0, 0, _) => format!("{m}m{s}s"),
        (0, _, _) if m == 0 => format!("{h}h"),
        (0, _, _) => format!("{h}h{m}m"),
        _ if h == 0 => format!("{d}d"),
        _ => format!("{d}d{h}h"),
    }
}

/// How long ago `then` was, e.g. "2s ago". Clock skew (a timestamp slightly in
/// the future) reads as "0s ago" rather than something alarming; 0 means the
/// source never saw the event.
pub(crate) fn ago(now_ms: i64, then_ms: i64) -> String {
    if then_ms <= 0 {
        return "never".to_string();
    }
    format!("{} ago", span(now_ms - then_ms))
}

/// How long until `then`, e.g. "in 42s"; a time already passed reads "due".
pub(crate) fn until(now_ms: i64, then_ms: i64) -> String {
    if then_ms <= now_ms {
        "due".to_string()
    } else {
        format!("in {}", span(then_ms - now_ms))
    }
}

/// Duration of an attempt with sub-second precision, since HTTP calls are
/// usually short: "340ms", "1.2s", "2m5s".
pub(crate) fn elapsed(ms: i64) -> String {
    let ms = ms.max(0);
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{}.{}s", ms / 1000, ms % 1000 / 100)
    } else {
        span(ms)
    }
}

/// Wall-clock time of day in UTC, "12:03:04". The console has no timezone
/// database; UTC is unambiguous across an operations team anyway.
pub(crate) fn clock(ms: i64) -> String {
    let secs = ms.div_euclid(1000).rem_euclid(86_400);
    format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}

/// Clock time plus relative age: "12:03:04 UTC (2s ago)".
pub(crate) fn stamp(now_ms: i64, ms: i64) -> String {
    if ms <= 0 {
        return NONE.to_string();
    }
    format!("{} UTC ({})", clock(ms), ago(now_ms, ms))
}

/// Greedy word-wrap to `width` display columns. Explicit newlines and
/// leading indentation are kept (TOML and JSON excerpts rely on them), tabs
/// become four spaces (the terminal would otherwise drop them), words longer
/// than a line are split, and the result is never empty, so the caller can
/// size a box from `len()` exactly (unlike estimating a `Paragraph`'s wrapped
/// height).
pub(crate) fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let mut out = Vec::new();
    for raw in text.lines() {
        let raw = raw.replace('\t', "    ");
        let mut line = String::new();
        let mut line_width = 0;
        // Whether `line` has begun: an empty word then stands for a space.
        let mut started = false;
        for word in raw.split(' ') {
            let word_width = word.width();
            let sep = usize::from(started);
            if line_width + sep + word_width <= width {
                if started {
                    line.push(' ');
                }
                line.push_str(word);
                line_width += sep + word_width;
                started = true;
                continue;
            }
            if started {
                out.push(std::mem::take(&mut line));
                line_width = 0;
            }
            for ch in word.chars() {
                let w = ch.width().unwrap_or(0);
                if line_width + w > width && !line.is_empty() {
                    out.push(std::mem::take(&mut line));
                    line_width = 0;
                }
                line.push(ch);
                line_width += w;
            }
            started = true;
        }
        out.push(line);
    }
    if out.is_empty() {
        out.push(String::new());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_use_two_units() {
        assert_eq!(span(0), "0s");
        assert_eq!(span(500), "500ms");
        assert_eq!(span(2_400), "2s");
        assert_eq!(span(180_000), "3m");
        assert_eq!(span(192_000), "3m12s");
        assert_eq!(span(7_500_000), "2h5m");
        assert_eq!(span(3 * 86_400_000 + 4 * 3_600_000 + 5_000), "3d4h");
        assert_eq!(span(-5), "0s");
    }

    #[test]
    fn relative_times() {
        assert_eq!(ago(10_000, 8_000), "2s ago");
        assert_eq!(ago(10_000, 11_000), "0s ago");
        assert_eq!(ago(10_000, 0), "never");
        assert_eq!(until(10_000, 52_000), "in 42s");
        assert_eq!(until(10_000, 9_000), "due");
        assert_eq!(elapsed(340), "340ms");
        assert_eq!(elapsed(1_250), "1.2s");
        assert_eq!(elapsed(125_000), "2m5s");
    }

    #[test]
    fn clock_is_utc_time_of_day() {
        // 2024-01-01T12:03:04Z
        assert_eq!(clock(1_704_110_584_000), "12:03:04");
        assert_eq!(
            stamp(1_704_110_586_000, 1_704_110_584_000),
            "12:03:04 UTC (2s ago)"
        );
        assert_eq!(stamp(5, 0), NONE);
    }

    #[test]
    fn wrap_breaks_on_words_and_splits_long_ones() {
        assert_eq!(wrap("aaa bbb ccc", 7), ["aaa bbb", "ccc"]);
        assert_eq!(wrap("abcdefghij", 4), ["abcd", "efgh", "ij"]);
        assert_eq!(wrap("one\ntwo", 20), ["one", "two"]);
        assert_eq!(wrap("", 5), [""]);
        assert_eq!(wrap("x y", 0), ["x", "y"]);
        assert_eq!(wrap("[a]\n  b = 1\n\tc", 20), ["[a]", "  b = 1", "    c"]);
    }
}
