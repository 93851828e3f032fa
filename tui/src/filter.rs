//! The `/` row filter: a case-insensitive regex over a row's text, with a `!`
//! prefix to negate. Text that is not a valid regex is matched literally, so
//! an operator typing `job(1` mid-word never sees an error, just no matches.

use regex::{Regex, RegexBuilder};

/// A compiled filter. Compiling once per keystroke (not per row or per frame)
/// is what keeps filtering 10,000 rows cheap.
#[derive(Clone, Debug)]
pub(crate) struct Filter {
    raw: String,
    negate: bool,
    /// `None` when the pattern is empty: everything matches (or nothing, negated).
    pattern: Option<Regex>,
    literal: bool,
}

/// Guards against pathological patterns typed into an interactive prompt.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

impl Filter {
    pub(crate) fn new(raw: &str) -> Filter {
        let (negate, body) = match raw.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, raw),
        };
        let (pattern, literal) = if body.is_empty() {
            (None, false)
        } else {
            match compile(body) {
                Some(re) => (Some(re), false),
                None => (compile(&regex::escape(body)), true),
            }
        };
        Filter {
            raw: raw.to_string(),
            negate,
            pattern,
            literal,
        }
    }

    /// The text as typed, shown in the view title.
    pub(crate) fn raw(&self) -> &str {
        &self.raw
    }

    /// True when the pattern was not a valid regex and is matched literally.
    pub(crate) fn is_literal(&self) -> bool {
        self.literal
    }

    pub(crate) fn matches(&self, text: &str) -> bool {
        let hit = self.pattern.as_ref().is_none_or(|re| re.is_match(text));
        hit != self.negate
    }
}

fn compile(pattern: &str) -> Option<Regex> {
    RegexBuilder::new(pattern)
        .case_insensitive(true)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substring_is_case_insensitive() {
        let f = Filter::new("BILL");
        assert!(f.matches("job billing-sync"));
        assert!(!f.matches("job nightly"));
        assert!(!f.is_literal());
    }

    #[test]
    fn regex_and_negation() {
        let f = Filter::new("^w[12] ");
        assert!(f.matches("w1 live"));
        assert!(!f.matches("w3 live"));
        let f = Filter::new("!dead");
        assert!(f.matches("w1 live"));
        assert!(!f.matches("w2 dead"));
    }

    #[test]
    fn invalid_regex_falls_back_to_literal() {
        let f = Filter::new("job(1");
        assert!(f.is_literal());
        assert!(f.matches("a job(1) here"));
        assert!(!f.matches("job 1"));
    }

    #[test]
    fn empty_pattern_matches_everything_unless_negated() {
        assert!(Filter::new("").matches("x"));
        assert!(!Filter::new("!").matches("x"));
    }
}
