//! Durations as people write them in `scopegate.yaml` and on the command line: one
//! grammar for every place a duration is read, with errors in our own words.
//!
//! Grammar: one or more `<integer><unit>` parts with no spaces, units `d`, `h`, `m`, `s`,
//! `ms`, each unit at most once and largest first: `30s`, `500ms`, `5m`, `1h30m`, `2d`.
//! A duration is at most [`MAX`] (10 years): anything longer is a typo, and far-future
//! deadlines overflow timers. Zero (`0s`) parses; callers that need a positive value say so.

use std::fmt;
use std::time::Duration;

/// The longest duration accepted anywhere: 3650 days.
pub const MAX: Duration = Duration::from_secs(3650 * 86_400);

/// The accepted form, quoted in every error.
pub const FORM: &str =
    "a whole number and a unit: ms, s, m, h or d, like 30s, 500ms, 5m, 1h30m, 7d";

/// Why a text is not a duration. `Display` is the full message, naming the text and the
/// accepted form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DurationError {
    text: String,
    problem: Problem,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Problem {
    Empty,
    /// A known spelling of a unit we do not accept (`30 sec`, `5 minutes`): the accepted
    /// spelling of the same value.
    Spelling(String),
    NoUnit,
    Fraction,
    UnknownUnit(String),
    Order,
    TooLong,
    Other,
}

impl DurationError {
    /// What is wrong, naming the text.
    pub fn message(&self) -> String {
        let text = printable(&self.text);
        match &self.problem {
            Problem::Empty => "empty duration".to_owned(),
            Problem::NoUnit => format!("`{text}` has no unit"),
            Problem::Fraction => format!("`{text}` has a fraction"),
            Problem::UnknownUnit(u) => {
                format!("`{text}` has an unknown unit `{}`", printable(u))
            }
            Problem::TooLong => format!("`{text}` is too long"),
            Problem::Spelling(_) | Problem::Order | Problem::Other => {
                format!("`{text}` is not a duration")
            }
        }
    }

    /// What to write instead.
    pub fn hint(&self) -> String {
        match &self.problem {
            Problem::Spelling(fixed) => format!("write `{fixed}`; a duration is {FORM}"),
            Problem::NoUnit => format!(
                "write `{}s` for seconds; a duration is {FORM}",
                printable(&self.text)
            ),
            Problem::Fraction => "use a smaller unit instead (1500ms, not 1.5s)".to_owned(),
            Problem::Order => "write each unit once, largest first (1h30m, not 30m1h)".to_owned(),
            Problem::TooLong => "at most 3650d (10 years)".to_owned(),
            Problem::Empty | Problem::UnknownUnit(_) | Problem::Other => format!("write {FORM}"),
        }
    }
}

/// `message: hint`, for command-line errors.
impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.message(), self.hint())
    }
}

impl std::error::Error for DurationError {}

/// Parses a duration (see the module documentation for the grammar).
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    let fail = |problem| DurationError {
        text: text.to_owned(),
        problem,
    };
    if text.trim().is_empty() {
        return Err(fail(Problem::Empty));
    }
    if let Some(fixed) = respell(text) {
        return Err(fail(Problem::Spelling(fixed)));
    }
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut total: u128 = 0;
    // Rank of the last unit seen (d=5 .. ms=1); each next one must be smaller.
    let mut last_rank = u8::MAX;
    while i < bytes.len() {
        let digits_start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if i == digits_start {
            return Err(fail(Problem::Other));
        }
        // At most 20 digits fit a u64; longer is too long by any unit.
        let digits = &text[digits_start..i];
        let Ok(number) = digits.parse::<u64>() else {
            return Err(fail(Problem::TooLong));
        };
        if i < bytes.len() && (bytes[i] == b'.' || bytes[i] == b',') {
            return Err(fail(Problem::Fraction));
        }
        let unit_start = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let unit = &text[unit_start..i];
        if unit.is_empty() {
            return Err(fail(if i == bytes.len() {
                Problem::NoUnit
            } else {
                Problem::Other
            }));
        }
        let (rank, millis) = match unit {
            "d" => (5, 86_400_000u128),
            "h" => (4, 3_600_000),
            "m" => (3, 60_000),
            "s" => (2, 1_000),
            "ms" => (1, 1),
            other => return Err(fail(Problem::UnknownUnit(other.to_owned()))),
        };
        if rank >= last_rank {
            return Err(fail(Problem::Order));
        }
        last_rank = rank;
        total += u128::from(number) * millis;
        if total > MAX.as_millis() {
            return Err(fail(Problem::TooLong));
        }
    }
    // `total` is at most MAX in milliseconds, which fits a u64.
    Ok(Duration::from_millis(total as u64))
}

/// Renders a duration in the same grammar (`90s` -> `1m30s`), for messages and defaults.
pub fn format(d: Duration) -> String {
    let mut ms = d.as_millis();
    if ms == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    for (unit, size) in [
        ("d", 86_400_000u128),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ] {
        if ms >= size {
            out.push_str(&format!("{}{unit}", ms / size));
            ms %= size;
        }
    }
    out
}

/// `30 sec`, `30secs`, `5 minutes`, `2 Hours`: a number and a unit spelled another way
/// gets the accepted spelling of the same value.
fn respell(text: &str) -> Option<String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit())?;
    let (number, rest) = t.split_at(split);
    if number.is_empty() {
        return None;
    }
    let unit = rest.trim_start().to_ascii_lowercase();
    let canonical = match unit.as_str() {
        "millisecond" | "milliseconds" | "msec" | "msecs" | "millis" | "milli" => "ms",
        "sec" | "secs" | "second" | "seconds" => "s",
        "min" | "mins" | "minute" | "minutes" => "m",
        "hr" | "hrs" | "hour" | "hours" => "h",
        "day" | "days" => "d",
        // The right unit, with a space or in capitals: `30 s`, `30S`.
        "ms" | "s" | "m" | "h" | "d" if rest != unit => unit.as_str(),
        _ => return None,
    };
    Some(format!("{number}{canonical}"))
}

/// The text as it may be quoted in a message: control characters escaped, long input cut.
fn printable(text: &str) -> String {
    let mut out: String = text
        .chars()
        .take(40)
        .flat_map(char::escape_default)
        .collect();
    if text.chars().count() > 40 {
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn accepts_the_grammar() {
        assert_eq!(parse("30s"), Ok(ms(30_000)));
        assert_eq!(parse("500ms"), Ok(ms(500)));
        assert_eq!(parse("5m"), Ok(ms(300_000)));
        assert_eq!(parse("1h30m"), Ok(ms(5_400_000)));
        assert_eq!(parse("2d"), Ok(ms(172_800_000)));
        assert_eq!(parse("1d2h3m4s5ms"), Ok(ms(93_784_005)));
        assert_eq!(parse("0s"), Ok(ms(0)));
        assert_eq!(parse("3650d"), Ok(MAX));
    }

    #[test]
    fn refuses_other_spellings_with_the_accepted_one() {
        for (text, fixed) in [
            ("30 sec", "30s"),
            ("30 secs", "30s"),
            ("30secs", "30s"),
            ("5 minutes", "5m"),
            ("2 Hours", "2h"),
            ("1 day", "1d"),
            ("30 s", "30s"),
            ("30S", "30s"),
            ("250 millis", "250ms"),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(&format!("write `{fixed}`")), "{text}: {e}");
        }
    }

    #[test]
    fn refuses_the_rest_in_our_words() {
        let cases = [
            ("", "empty duration"),
            ("   ", "empty duration"),
            ("30", "has no unit"),
            ("1.5s", "has a fraction"),
            ("10y", "unknown unit `y`"),
            ("10us", "unknown unit `us`"),
            ("30m1h", "largest first"),
            ("1h1h", "largest first"),
            ("1000000000000d", "too long"),
            ("3651d", "too long"),
            ("99999999999999999999999s", "too long"),
            ("-5s", "is not a duration"),
            ("s", "is not a duration"),
            ("1h 30m", "is not a duration"),
        ];
        for (text, want) in cases {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
            assert!(!e.contains("expected"), "{text:?}: {e}");
        }
    }

    #[test]
    fn format_round_trips() {
        for d in [ms(0), ms(1), ms(1500), ms(90_000), ms(5_400_000), MAX] {
            assert_eq!(parse(&format(d)), Ok(d));
        }
        assert_eq!(format(ms(5_400_000)), "1h30m");
    }
}
