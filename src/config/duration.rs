//! Human durations in the config: `90s`, `15m`, `6h`, `30d`, `1h30m`.

use std::time::Duration;

/// The longest duration the config accepts: ten years. Longer ones are
/// typing mistakes, and added to a clock they overflow it.
pub const MAX_DURATION: Duration = Duration::from_secs(3650 * 86_400);

/// Parses `<number><unit>` pairs (units `ms`, `s`, `m`, `h`, `d`), e.g. `1h30m`,
/// up to [`MAX_DURATION`].
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty duration; write e.g. `30s`, `15m`, `6h` or `30d`".into());
    }
    let total = parse_pairs(s).map_err(|e| match spelled_out(s) {
        Some(short) => format!("bad duration `{s}`: write `{short}`"),
        None => e,
    })?;
    if total > MAX_DURATION {
        return Err(format!("bad duration `{s}`: too large (at most 3650d)"));
    }
    Ok(total)
}

/// `2 hours`, `15 minuten`, `1 day 6 h` written the short way (`2h`, `15m`,
/// `1d6h`), when every word is a unit we know.
fn spelled_out(s: &str) -> Option<String> {
    let mut out = String::new();
    let mut words = s.split_whitespace().peekable();
    while let Some(w) = words.next() {
        let digits = w.chars().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        let (num, unit) = w.split_at(digits);
        let unit = if unit.is_empty() { words.next()? } else { unit };
        let short =
            match unit.trim_end_matches(',').to_lowercase().as_str() {
                "ms" | "millisecond" | "milliseconds" | "milliseconde" | "millisecondes" => "ms",
                "s" | "sec" | "secs" | "second" | "seconds" | "seconde" | "seconden"
                | "secondes" => "s",
                "m" | "min" | "mins" | "minute" | "minutes" | "minuut" | "minuten" => "m",
                "h" | "hr" | "hrs" | "hour" | "hours" | "u" | "uur" | "uren" | "heure"
                | "heures" => "h",
                "d" | "day" | "days" | "dag" | "dagen" | "jour" | "jours" => "d",
                _ => return None,
            };
        out.push_str(num);
        out.push_str(short);
    }
    (!out.is_empty() && out != s).then_some(out)
}

fn parse_pairs(s: &str) -> Result<Duration, String> {
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.chars().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return Err(format!(
                "bad duration `{s}`: expected a number; write e.g. `30s`, `15m`, `6h` or `30d`"
            ));
        }
        let value: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("bad duration `{s}`: number too large"))?;
        rest = &rest[digits..];
        let unit_len = rest.chars().take_while(|c| c.is_ascii_alphabetic()).count();
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let secs = match unit {
            "ms" => {
                total = total
                    .checked_add(Duration::from_millis(value))
                    .ok_or_else(|| format!("bad duration `{s}`: too large (at most 3650d)"))?;
                continue;
            }
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            "" => {
                return Err(format!(
                    "bad duration `{s}`: missing unit (ms, s, m, h or d)"
                ));
            }
            other => {
                return Err(format!(
                    "bad duration `{s}`: unknown unit `{other}` (use ms, s, m, h or d)"
                ));
            }
        };
        let add = value
            .checked_mul(secs)
            .ok_or_else(|| format!("bad duration `{s}`: too large (at most 3650d)"))?;
        total = total
            .checked_add(Duration::from_secs(add))
            .ok_or_else(|| format!("bad duration `{s}`: too large (at most 3650d)"))?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minutes_hours_and_days_are_understood() {
        assert_eq!(parse_duration("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_duration("6h").unwrap(), Duration::from_secs(21_600));
        assert_eq!(
            parse_duration("30d").unwrap(),
            Duration::from_secs(2_592_000)
        );
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5_400));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
    }

    #[test]
    fn a_duration_without_unit_or_with_a_strange_unit_is_refused() {
        assert!(parse_duration("15").unwrap_err().contains("missing unit"));
        assert!(parse_duration("3w").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("h").is_err());
    }

    #[test]
    fn a_duration_that_would_overflow_a_clock_is_refused_not_a_panic() {
        let e = parse_duration("99999999999d").unwrap_err();
        assert!(e.contains("too large"), "{e}");
        assert!(parse_duration("99999999999999999999s").is_err());
        assert!(
            parse_duration("3651d")
                .unwrap_err()
                .contains("at most 3650d")
        );
        assert_eq!(parse_duration("3650d").unwrap(), MAX_DURATION);
    }

    #[test]
    fn a_duration_written_out_in_words_suggests_the_short_form() {
        assert_eq!(
            parse_duration("2 hours").unwrap_err(),
            "bad duration `2 hours`: write `2h`"
        );
        assert!(
            parse_duration("15 minuten")
                .unwrap_err()
                .contains("write `15m`")
        );
        assert!(
            parse_duration("1 day 6 h")
                .unwrap_err()
                .contains("write `1d6h`")
        );
        assert!(
            !parse_duration("2 fortnights")
                .unwrap_err()
                .contains("write `")
        );
    }
}
