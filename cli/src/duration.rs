//! Durations on the command line: `30d`, `12h`, `90m`, `3600s`, `1w`, or sums like `1h30m`.

use std::time::Duration;

/// Parses `<number><unit>` groups (units `s`, `m`, `h`, `d`, `w`); used as a clap value
/// parser, so the error is the message clap shows (exit 2).
pub(crate) fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let help = "write a number and a unit: 3600s, 90m, 12h, 30d, 1w (or a sum like 1h30m)";
    if text.is_empty() {
        return Err(format!("empty duration; {help}"));
    }
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit: u64 = match c.to_ascii_lowercase() {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 7 * 86_400,
            _ => return Err(format!("{text:?}: unknown unit {c:?}; {help}")),
        };
        if digits.is_empty() {
            return Err(format!(
                "{text:?}: unit {c:?} has no number before it; {help}"
            ));
        }
        let n: u64 = digits
            .parse()
            .map_err(|_| format!("{text:?}: {digits} is too large"))?;
        total = n
            .checked_mul(unit)
            .and_then(|s| total.checked_add(s))
            .ok_or_else(|| format!("{text:?} is too long a duration"))?;
        digits.clear();
    }
    if !digits.is_empty() {
        return Err(format!("{text:?}: {digits} has no unit; {help}"));
    }
    Ok(Duration::from_secs(total))
}

/// The shortest exact rendering: `30d`, `1h30m`, `0s`.
pub(crate) fn format(d: Duration) -> String {
    let mut secs = d.as_secs();
    if secs == 0 {
        return "0s".to_string();
    }
    let mut s = String::new();
    for (unit, name) in [(86_400, 'd'), (3600, 'h'), (60, 'm'), (1, 's')] {
        if secs >= unit {
            s.push_str(&format!("{}{name}", secs / unit));
            secs %= unit;
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every accepted spelling and its length in seconds.
    #[test]
    fn parses_units_and_sums() {
        let table: &[(&str, u64)] = &[
            ("30d", 30 * 86_400),
            ("12h", 12 * 3600),
            ("90m", 90 * 60),
            ("3600s", 3600),
            ("1w", 7 * 86_400),
            ("1h30m", 5400),
            ("1D", 86_400),
            (" 2h ", 7200),
            ("0s", 0),
        ];
        for (text, secs) in table {
            assert_eq!(parse(text), Ok(Duration::from_secs(*secs)), "{text}");
        }
    }

    /// Bare numbers, unknown units, stray units and overflow are refused with a message
    /// that shows the right spelling.
    #[test]
    fn refuses_what_is_not_a_duration() {
        for text in [
            "",
            "30",
            "30x",
            "d",
            "1h30",
            "-5m",
            "1.5h",
            "99999999999999999999s",
        ] {
            let err = parse(text).expect_err(text);
            assert!(!err.is_empty(), "{text}");
        }
        assert!(parse("30").unwrap_err().contains("30d"));
        assert!(parse("18446744073709551615w").is_err());
    }

    /// `format` inverts `parse` for canonical spellings.
    #[test]
    fn formats_canonically() {
        for text in ["30d", "1h", "1h30m", "1d1s", "0s"] {
            let d = parse(text).expect(text);
            assert_eq!(format(d), text);
        }
        assert_eq!(format(Duration::from_secs(7 * 86_400)), "7d");
    }
}
