//! Coordinators' corrections as labelled messages, so a network can retrain
//! the protocol model on its own real messages.
//!
//! A correction is read from the alert records the relay keeps anyway (under
//! `relay.retention`, like every stored text), never stored twice:
//! - **gemist** (missed): a coordinator's `/doorsturen` of a message the
//!   relay did not forward (a record made by the command: `forced`), labelled
//!   an alert;
//! - **ten onrechte doorgestuurd** (wrongly forwarded): a forwarded alert a
//!   coordinator took back with `/intrekken` (`retracted`), labelled not an
//!   alert.
//!
//! Texts leave with phone numbers, e-mail addresses, links, @-handles and
//! long digit runs (plates, house numbers with letters) replaced; the
//! sender is only ever a keyed hash in the record and never exported.

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use regex::Regex;
use serde::Serialize;

use crate::config::Config;
use crate::protocol::model::{CATEGORIES, Example};
use crate::store::AlertRecord;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Forwarded by a coordinator after the relay did not: an alert.
    Missed,
    /// Forwarded by the relay and taken back by a coordinator: not an alert.
    WrongForward,
}

/// One correction, as the dashboard and the export show it.
#[derive(Clone, Debug, Serialize)]
pub struct Correction {
    pub at_ms: u64,
    /// The village (group id) it was posted in.
    pub group: String,
    pub kind: Kind,
    /// The member's text, stripped (see the module docs).
    pub text: String,
    /// The group's language.
    pub lang: String,
}

static STRIP: LazyLock<Vec<(Regex, &'static str)>> = LazyLock::new(|| {
    [
        (r"(?i)\bhttps?://\S+|\bwww\.\S+", "<link>"),
        (r"(?i)\b[\w.+-]+@[\w-]+\.[\w.-]+\b", "<e-mail>"),
        (r"@\w+", "<handle>"),
        (r"\+?\d[\d ./-]{6,}\d", "<number>"),
        (r"\b\d{4,}\b", "<number>"),
    ]
    .into_iter()
    .filter_map(|(p, r)| Regex::new(p).ok().map(|re| (re, r)))
    .collect()
});

/// `text` without phone numbers, e-mail addresses, links and handles.
pub fn strip(text: &str) -> String {
    let mut out = text.trim().to_string();
    for (re, with) in STRIP.iter() {
        out = re.replace_all(&out, *with).into_owned();
    }
    out
}

/// The corrections among `alerts` (newest first, as the store gives them).
pub fn from_alerts(cfg: &Config, alerts: &[Arc<AlertRecord>]) -> Vec<Correction> {
    alerts
        .iter()
        .filter_map(|a| {
            let kind = if a.retracted {
                Kind::WrongForward
            } else if a.forced {
                Kind::Missed
            } else {
                return None;
            };
            Some(Correction {
                at_ms: a.at_ms,
                group: a.group.as_str().to_string(),
                kind,
                text: strip(&a.text),
                lang: cfg
                    .group(&a.group)
                    .map_or_else(|| cfg.network.language.clone(), |g| g.language.clone()),
            })
        })
        .collect()
}

/// `YYYY-MM` (UTC) of a time in milliseconds since the epoch.
pub fn month_of(ms: u64) -> String {
    // Days to a civil date (Howard Hinnant's algorithm).
    let z = (ms / 86_400_000) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}")
}

/// Per month: (missed, wrongly forwarded), oldest month first.
pub fn per_month(cs: &[Correction]) -> BTreeMap<String, (u32, u32)> {
    let mut m: BTreeMap<String, (u32, u32)> = BTreeMap::new();
    for c in cs {
        let e = m.entry(month_of(c.at_ms)).or_default();
        match c.kind {
            Kind::Missed => e.0 += 1,
            Kind::WrongForward => e.1 += 1,
        }
    }
    m
}

/// The corrections in the corpus's training format (one JSON object a
/// line; see docs/protocol/labelling-guide.md). "Police called" and the
/// categories are what the network's protocol check reads in the text (a
/// coordinator's correction says only whether it is an alert).
pub fn to_jsonl(cfg: &Config, cs: &[Correction]) -> String {
    let writer = format!(
        "corrections-{}",
        cfg.network
            .name
            .to_lowercase()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join("-")
    );
    let mut out = String::new();
    for c in cs {
        let judged = cfg.rules.classify(&c.text);
        let alert = c.kind == Kind::Missed;
        let mut categories: Vec<String> = judged
            .categories
            .into_iter()
            .filter(|k| CATEGORIES.contains(&k.as_str()))
            .collect();
        if alert && categories.is_empty() {
            categories.push(
                cfg.rules
                    .scores(&c.text)
                    .map(|s| {
                        let best = s
                            .categories
                            .iter()
                            .enumerate()
                            .max_by(|a, b| a.1.total_cmp(b.1))
                            .map_or(0, |(i, _)| i);
                        CATEGORIES[best].to_string()
                    })
                    .unwrap_or_else(|| CATEGORIES[0].to_string()),
            );
        }
        if !alert {
            categories.clear();
        }
        let lang = match c.lang.as_str() {
            "nl" | "fr" | "en" => c.lang.clone(),
            _ => "nl".to_string(),
        };
        let e = Example {
            writer: writer.clone(),
            text: c.text.clone(),
            lang,
            alert,
            called: judged.confirmed,
            categories,
            kind: match c.kind {
                Kind::Missed => "correction_missed".into(),
                Kind::WrongForward => "correction_wrong_forward".into(),
            },
            looks_only: false,
        };
        if let Ok(line) = serde_json::to_string(&e) {
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_mail_links_and_handles_are_stripped() {
        let s = strip(
            "Bel Jan op 0475 12 34 56 of +32 11 22 33 44, jan@example.be, zie https://x.be/a @jan 1-ABC-2345",
        );
        assert!(!s.contains("0475") && !s.contains("+32"), "{s}");
        assert!(!s.contains("jan@example.be") && !s.contains("https"), "{s}");
        assert!(!s.contains("@jan") && !s.contains("2345"), "{s}");
        assert!(s.starts_with("Bel Jan op <number>"), "{s}");
    }

    #[test]
    fn months_are_civil_months_in_utc() {
        assert_eq!(month_of(0), "1970-01");
        // 2026-12-05T19:00:00Z
        assert_eq!(month_of(1_796_497_200_000), "2026-12");
        // 2024-02-29T23:59:59Z, a leap day
        assert_eq!(month_of(1_709_251_199_000), "2024-02");
        assert_eq!(month_of(1_709_251_200_000), "2024-03");
    }
}
