//! Cron expressions with errors that name the field: the `cron` crate parses, but its errors are
//! one opaque string, so each field is first checked here against its range.

use std::str::FromStr;

/// A parsed expression and its normalized source (always with a seconds field).
pub struct CronExpr {
    pub schedule: cron::Schedule,
    pub source: String,
}

/// (name, min, max) of each field, in order. A 7th field (year) is optional.
const FIELDS: [(&str, u32, u32); 7] = [
    ("second", 0, 59),
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 7),
    ("year", 1970, 2199),
];

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
    for (index, (field, (name, min, max))) in fields.iter().zip(FIELDS).enumerate() {
        check_field(field, min, max)
            .map_err(|reason| format!("field {} ({name}): {reason}", index + 1))?;
    }
    let source = fields.join(" ");
    let schedule = cron::Schedule::from_str(&source)
        .map_err(|error| format!("{source:?} is not a valid cron expression: {error}"))?;
    if schedule.upcoming(chrono::Utc).next().is_none() {
        return Err(format!("{source:?} never fires (no future time matches)"));
    }
    Ok(CronExpr { schedule, source })
}

/// Checks the numbers of one field (`*`, `?`, `n`, `a-b`, `*/s`, `a-b/s`, lists of those) against
/// its range. Names (`MON`, `JAN`) are left to the cron crate.
fn check_field(field: &str, min: u32, max: u32) -> Result<(), String> {
    for part in field.split(',') {
        if part.is_empty() {
            return Err(format!("{field:?} has an empty list item"));
        }
        let (range, step) = match part.split_once('/') {
            Some((range, step)) => (range, Some(step)),
            None => (part, None),
        };
        if let Some(step) = step {
            match step.parse::<u32>() {
                Ok(0) => return Err(format!("step in {part:?} must be at least 1")),
                Ok(_) => {}
                Err(_) => return Err(format!("step {step:?} in {part:?} is not a number")),
            }
        }
        if range == "*" || range == "?" {
            continue;
        }
        let bounds: Vec<&str> = range.split('-').collect();
        if bounds.len() > 2 {
            return Err(format!("{part:?} is not a value or a range"));
        }
        let mut numbers = Vec::new();
        for bound in &bounds {
            if bound.chars().all(|c| c.is_ascii_alphabetic()) && !bound.is_empty() {
                continue; // a name such as MON or JAN
            }
            let value: u32 = bound
                .parse()
                .map_err(|_| format!("{bound:?} is not a number"))?;
            if value < min || value > max {
                return Err(format!("{value} is out of range {min}–{max}"));
            }
            numbers.push(value);
        }
        if let [low, high] = numbers[..]
            && low > high
        {
            return Err(format!("range {part:?} runs backwards"));
        }
    }
    Ok(())
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
    }
}
