//! Human durations in the config: `90s`, `15m`, `6h`, `30d`, `1h30m`.

use std::time::Duration;

/// Parses `<number><unit>` pairs (units `ms`, `s`, `m`, `h`, `d`), e.g. `1h30m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty duration; write e.g. `30s`, `15m`, `6h` or `30d`".into());
    }
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
                total += Duration::from_millis(value);
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
            .ok_or_else(|| format!("bad duration `{s}`: too large"))?;
        total += Duration::from_secs(add);
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
}
