//! Cron expressions in Quartz syntax, with errors that name the field.
//!
//! The `croner` crate parses and steps them; this module first reads each field itself, so that
//! a bad value is refused naming its field ("field 6 (day of week): ..."), and turns month and
//! weekday names into numbers (croner knows only the three-letter names; the `cron` crate Shoal
//! used before also took full names such as `MONDAY`, and stored jobs keep working).
//!
//! Meaning, unchanged from the `cron` crate for every expression it accepted: 6 fields with
//! seconds, an optional 7th (year), or the classic 5 which run at second 0; weekdays numbered as
//! in Quartz (1 = SUN … 7 = SAT); when both day of month and day of week are restricted, a day
//! must match both. Quartz additions: `?`, `L` (last day of the month), `LW` (last weekday of the
//! month), `15W` (the weekday nearest the 15th), `6L` (the last Friday), `6#3` (the third
//! Friday), `6#L`. It never decides *when* a job fires in a timezone: see [`super::cron_after`].

use croner::Cron;
use croner::parser::{CronParser, Seconds};

/// A parsed expression and its normalized source (always with a seconds field; names kept).
pub struct CronExpr {
    pub schedule: Cron,
    pub source: String,
}

/// What a field is and which values it takes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Field {
    Second,
    Minute,
    Hour,
    DayOfMonth,
    Month,
    DayOfWeek,
    Year,
}

impl Field {
    const ALL: [Field; 7] = [
        Field::Second,
        Field::Minute,
        Field::Hour,
        Field::DayOfMonth,
        Field::Month,
        Field::DayOfWeek,
        Field::Year,
    ];

    fn name(self) -> &'static str {
        match self {
            Field::Second => "second",
            Field::Minute => "minute",
            Field::Hour => "hour",
            Field::DayOfMonth => "day of month",
            Field::Month => "month",
            Field::DayOfWeek => "day of week",
            Field::Year => "year",
        }
    }

    fn range(self) -> (u32, u32) {
        match self {
            Field::Second | Field::Minute => (0, 59),
            Field::Hour => (0, 23),
            Field::DayOfMonth => (1, 31),
            Field::Month => (1, 12),
            Field::DayOfWeek => (1, 7),
            Field::Year => (1970, 2199),
        }
    }

    /// The number a name stands for in this field (case-insensitive), if it is one.
    fn named(self, name: &str) -> Option<u32> {
        let lower = name.to_ascii_lowercase();
        let names: &[(&str, u32)] = match self {
            Field::Month => &MONTHS,
            Field::DayOfWeek => &WEEKDAYS,
            _ => &[],
        };
        names.iter().find(|(n, _)| *n == lower).map(|(_, v)| *v)
    }
}

/// Month names, short and long (as the `cron` crate took them).
const MONTHS: [(&str, u32); 23] = [
    ("jan", 1),
    ("january", 1),
    ("feb", 2),
    ("february", 2),
    ("mar", 3),
    ("march", 3),
    ("apr", 4),
    ("april", 4),
    ("may", 5),
    ("jun", 6),
    ("june", 6),
    ("jul", 7),
    ("july", 7),
    ("aug", 8),
    ("august", 8),
    ("sep", 9),
    ("september", 9),
    ("oct", 10),
    ("october", 10),
    ("nov", 11),
    ("november", 11),
    ("dec", 12),
    ("december", 12),
];

/// Weekday names in Quartz numbering (1 = Sunday), short and long (as the `cron` crate took them).
const WEEKDAYS: [(&str, u32); 16] = [
    ("sun", 1),
    ("sunday", 1),
    ("mon", 2),
    ("monday", 2),
    ("tue", 3),
    ("tues", 3),
    ("tuesday", 3),
    ("wed", 4),
    ("wednesday", 4),
    ("thu", 5),
    ("thurs", 5),
    ("thursday", 5),
    ("fri", 6),
    ("friday", 6),
    ("sat", 7),
    ("saturday", 7),
];

fn parser() -> CronParser {
    CronParser::builder()
        .seconds(Seconds::Required)
        .alternative_weekdays(true)
        .sloppy_ranges(true)
        .dom_and_dow(true)
        .build()
}

/// Parses 6 fields (`sec min hour dom month dow`), 7 (with year), or the classic 5 (`min hour dom
/// month dow`, which runs at second 0).
pub fn parse(expr: &str) -> Result<CronExpr, String> {
    let fields: Vec<&str> = expr.split_whitespace().collect();
    let fields: Vec<&str> = match fields.len() {
        5 => std::iter::once("0").chain(fields).collect(),
        6 | 7 => fields,
        0 => return Err("is empty; write e.g. \"0 */5 * * * *\" (every 5 minutes)".into()),
        n => {
            return Err(format!(
                "has {n} fields; expected 6 (sec min hour day-of-month month day-of-week), \
                 optionally a 7th (year), or the classic 5 without seconds"
            ));
        }
    };
    let mut numeric = Vec::with_capacity(fields.len());
    for (index, (text, field)) in fields.iter().zip(Field::ALL).enumerate() {
        let converted = normalize_field(text, field)
            .map_err(|reason| format!("field {} ({}): {reason}", index + 1, field.name()))?;
        numeric.push(converted);
    }
    let source = fields.join(" ");
    let schedule = parser()
        .parse(&numeric.join(" "))
        .map_err(|error| format!("{source:?} is not a valid cron expression: {error}"))?;
    if super::next_cron_time(
        &schedule,
        &chrono::Utc::now().with_timezone(&chrono_tz::UTC),
    )
    .is_none()
    {
        return Err(format!("{source:?} never fires (no future time matches)"));
    }
    Ok(CronExpr { schedule, source })
}

/// Checks one field and returns it with names replaced by numbers. Each comma-separated item is
/// `*`, `?`, a value, a range `a-b`, any of those with a step `/s`, or one of the Quartz forms
/// of its field.
fn normalize_field(text: &str, field: Field) -> Result<String, String> {
    let mut items = Vec::new();
    for item in text.split(',') {
        if item.is_empty() {
            return Err(format!("{text:?} has an empty list item"));
        }
        items.push(normalize_item(item, field)?);
    }
    Ok(items.join(","))
}

fn normalize_item(item: &str, field: Field) -> Result<String, String> {
    let upper = item.to_ascii_uppercase();
    if upper == "?" {
        return match field {
            Field::DayOfMonth | Field::DayOfWeek => Ok("?".into()),
            _ => Err(
                "\"?\" (no specific value) is only allowed in day of month and day of week; \
                 use * here"
                    .into(),
            ),
        };
    }
    if field == Field::DayOfMonth {
        if upper == "L" || upper == "LW" {
            return Ok(upper);
        }
        if let Some(offset) = upper.strip_prefix("L-") {
            return Err(format!(
                "{item:?}: an offset from the last day (L-{offset}) is not supported; write the \
                 days, e.g. L for the last day"
            ));
        }
        if let Some(day) = upper.strip_suffix('W') {
            let day = value(day, field)?;
            return Ok(format!("{day}W"));
        }
    }
    if field == Field::DayOfWeek {
        if let Some((day, nth)) = upper.split_once('#') {
            let day = value(day, field)?;
            return match nth {
                "L" => Ok(format!("{day}L")),
                _ => match nth.parse::<u32>() {
                    Ok(n @ 1..=5) => Ok(format!("{day}#{n}")),
                    _ => Err(format!(
                        "{item:?}: after # comes which one in the month, 1–5 (e.g. 6#3, the \
                         third Friday)"
                    )),
                },
            };
        }
        if upper == "L" {
            // Quartz reads a lone L in day of week as the last day of the week, Saturday.
            return Ok("7".into());
        }
        if upper.len() > 1
            && let Some(day) = upper.strip_suffix('L')
        {
            let day = value(day, field)?;
            return Ok(format!("{day}L"));
        }
    }
    let (range, step) = match upper.split_once('/') {
        Some((range, step)) => (range, Some(step)),
        None => (upper.as_str(), None),
    };
    let step = match step {
        None => None,
        Some(step) => match step.parse::<u32>() {
            Ok(0) => return Err(format!("step in {item:?} must be at least 1")),
            Ok(step) => Some(step),
            Err(_) => return Err(format!("step {step:?} in {item:?} is not a number")),
        },
    };
    let range = if range == "*" || range == "?" {
        range.to_string()
    } else {
        let bounds: Vec<&str> = range.split('-').collect();
        match bounds[..] {
            [single] => value(single, field)?.to_string(),
            [low, high] => {
                let (low, high) = (value(low, field)?, value(high, field)?);
                if low > high {
                    return Err(format!("range {item:?} runs backwards"));
                }
                format!("{low}-{high}")
            }
            _ => return Err(format!("{item:?} is not a value or a range")),
        }
    };
    Ok(match step {
        Some(step) => format!("{range}/{step}"),
        None => range,
    })
}

/// One value of a field: a number in its range or, for months and weekdays, a name.
fn value(text: &str, field: Field) -> Result<u32, String> {
    let (min, max) = field.range();
    if !text.is_empty() && text.chars().all(|c| c.is_ascii_alphabetic()) {
        return field.named(text).ok_or_else(|| match field {
            Field::Month => format!("{text:?} is not a month (JAN–DEC or 1–12)"),
            Field::DayOfWeek => {
                format!("{text:?} is not a weekday (SUN–SAT, or 1–7 with 1 = SUN as in Quartz)")
            }
            _ => format!("{text:?} is not a number"),
        });
    }
    let number: u32 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))?;
    if number < min || number > max {
        let hint = if field == Field::DayOfWeek {
            " (1 = SUN … 7 = SAT, as in Quartz)"
        } else {
            ""
        };
        return Err(format!("{number} is out of range {min}–{max}{hint}"));
    }
    Ok(number)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_field_and_range() {
        let error = parse("0 0 25 * * *").err().unwrap();
        assert_eq!(error, "field 3 (hour): 25 is out of range 0–23");
        assert!(
            parse("0 61 * * * *")
                .err()
                .unwrap()
                .starts_with("field 2 (minute)")
        );
        assert!(
            parse("0 0 0 32 * *")
                .err()
                .unwrap()
                .starts_with("field 4 (day of month)")
        );
        assert!(
            parse("0 0 0 * 13 *")
                .err()
                .unwrap()
                .starts_with("field 5 (month)")
        );
        assert!(parse("*/0 * * * * *").err().unwrap().contains("step"));
        assert!(parse("a b c").err().unwrap().contains("3 fields"));
        assert!(parse("").err().unwrap().contains("empty"));
        assert!(parse("0 0 10-5 * * *").err().unwrap().contains("backwards"));
    }

    #[test]
    fn unknown_quartz_tokens_are_refused_naming_field_and_value() {
        let cases = [
            (
                "0 0 12 ? * FOO",
                "field 6 (day of week): \"FOO\" is not a weekday",
            ),
            (
                "0 0 12 ? * 8",
                "field 6 (day of week): 8 is out of range 1–7",
            ),
            (
                "0 0 12 ? * 0",
                "field 6 (day of week): 0 is out of range 1–7",
            ),
            ("0 0 12 ? * 6#6", "field 6 (day of week): \"6#6\""),
            ("0 0 12 ? * 6#X", "field 6 (day of week): \"6#X\""),
            ("0 0 12 L-2 * ?", "field 4 (day of month): \"L-2\""),
            (
                "0 0 12 32W * ?",
                "field 4 (day of month): 32 is out of range",
            ),
            (
                "0 0 12 XW * ?",
                "field 4 (day of month): \"X\" is not a number",
            ),
            ("0 0 ? * * *", "field 3 (hour): \"?\""),
            (
                "0 0 12 * SMARCH ?",
                "field 5 (month): \"SMARCH\" is not a month",
            ),
            (
                "0 0 12 1,,2 * ?",
                "field 4 (day of month): \"1,,2\" has an empty list item",
            ),
            (
                "0 0 12 * * 6W",
                "field 6 (day of week): \"6W\" is not a number",
            ),
            (
                "0 0 12 5L * ?",
                "field 4 (day of month): \"5L\" is not a number",
            ),
        ];
        for (expr, expected) in cases {
            let error = parse(expr).err().unwrap_or_else(|| panic!("{expr} parsed"));
            assert!(error.starts_with(expected), "{expr}: {error}");
        }
    }

    #[test]
    fn quartz_forms_parse_and_keep_their_source() {
        for expr in [
            "0 0 12 ? * MON-FRI",
            "0 15 10 L * ?",
            "0 15 10 LW * ?",
            "0 15 10 ? * 6L",
            "0 15 10 ? * FRIL",
            "0 15 10 ? * 6#3",
            "0 15 10 ? * FRI#L",
            "0 0 12 15W * ?",
            "0 0 12 1W,15 * ?",
            "0 0 9 ? JANUARY-MARCH MONDAY,wednesday",
            "0 5/15 * * * ?",
        ] {
            let parsed = parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
            assert_eq!(parsed.source, expr);
        }
    }

    #[test]
    fn five_fields_mean_second_zero() {
        let parsed = parse("*/5 * * * *").unwrap();
        assert_eq!(parsed.source, "0 */5 * * * *");
        assert!(parse("0 0 9 * * MON-FRI").is_ok());
        assert!(parse("0 0 9 * JAN,JUL *").is_ok());
    }

    #[test]
    fn a_schedule_in_the_past_is_refused() {
        assert!(
            parse("0 0 0 1 1 * 2001")
                .err()
                .unwrap()
                .contains("never fires")
        );
        assert!(parse("0 0 0 30 2 ?").err().unwrap().contains("never fires"));
    }
}
