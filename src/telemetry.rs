//! Logs (tracing) and metrics (Prometheus text format).
//!
//! Log fields name groups, accounts and chats; never phone numbers, user ids
//! or message text at info level.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber. `RUST_LOG` overrides the default level.
/// Text lines carry colour only when standard output is a terminal (journald
/// and files get plain text) and `NO_COLOR` is not set; `json` writes one
/// object a line, for log shippers.
pub fn init(default: &str, format: LogFormat) {
    use std::io::IsTerminal;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(colour(
                std::io::stdout().is_terminal(),
                std::env::var_os("NO_COLOR"),
            ))
            .try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_ansi(false)
            .try_init(),
    };
}

/// Colour only on a terminal, and never with `NO_COLOR` set (no-color.org).
fn colour(terminal: bool, no_color: Option<std::ffi::OsString>) -> bool {
    terminal && no_color.is_none_or(|v| v.is_empty())
}

/// A short tag for a user id, for logs: stable within an installation,
/// not reversible by hashing every phone number (keyed: [`crate::privacy`]).
pub fn mask_id(id: &str) -> String {
    let h = crate::privacy::key().mac(&format!("log:{id}"));
    format!("u-{}", hex::encode(&h[..4]))
}

/// A chat id as it may appear in logs: group ids as they are (an admin
/// needs them to fill in the config), ids that name a person masked like
/// user ids: WhatsApp direct chats (`...@c.us`, `...@s.whatsapp.net`,
/// `...@lid`), old WhatsApp group ids that start with their creator's number
/// (`32475...-1580000000@g.us`), and bare numbers of 7+ digits (a Cloud API
/// member's number, a Telegram user's private chat).
pub fn chat_for_log(chat: &str) -> String {
    let personal = match chat.split_once('@') {
        Some((_, "c.us" | "s.whatsapp.net" | "lid")) => true,
        Some((user, "g.us")) => user.contains('-'),
        Some(_) => false,
        None => {
            let digits = chat.strip_prefix('+').unwrap_or(chat);
            digits.len() >= 7 && digits.chars().all(|c| c.is_ascii_digit())
        }
    };
    if personal {
        mask_id(chat)
    } else {
        chat.to_string()
    }
}

const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

/// Series by name, then by their labels as rendered (`a="x",b="y"`).
type Series<T> = BTreeMap<&'static str, BTreeMap<String, T>>;

/// A small in-process registry: counters and histograms with labels.
///
/// Counting is on every webhook's path: a series that exists already is
/// found and counted without allocating (its labels are rendered into a
/// per-thread buffer and looked up by that text).
#[derive(Default)]
pub struct Metrics {
    counters: Mutex<Series<u64>>,
    histograms: Mutex<Series<Histogram>>,
}

thread_local! {
    static LABELS: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

/// Runs `f` on the series of `name` with labels `l`, created if missing.
fn with_series<T: Default, R>(
    series: &mut Series<T>,
    name: &'static str,
    l: &[(&str, &str)],
    f: impl FnOnce(&mut T) -> R,
) -> R {
    let by_labels = series.entry(name).or_default();
    LABELS.with(|buf| {
        let mut buf = buf.borrow_mut();
        buf.clear();
        write_labels(&mut buf, l);
        match by_labels.get_mut(buf.as_str()) {
            Some(v) => f(v),
            None => f(by_labels.entry(buf.clone()).or_default()),
        }
    })
}

const HELP: &[(&str, &str, &str)] = &[
    (
        "buurtrelay_messages_in_total",
        "counter",
        "Inbound events by platform and outcome.",
    ),
    (
        "buurtrelay_webhook_rejected_total",
        "counter",
        "Webhook requests refused, by reason.",
    ),
    (
        "buurtrelay_alerts_total",
        "counter",
        "Alerts recognised, by whether the police were called.",
    ),
    ("buurtrelay_reminders_total", "counter", "Reminders queued."),
    (
        "buurtrelay_forwards_total",
        "counter",
        "Copies queued for other groups.",
    ),
    (
        "buurtrelay_held_total",
        "counter",
        "Unconfirmed alerts held, and how holds ended.",
    ),
    (
        "buurtrelay_sends_total",
        "counter",
        "Send attempts by account and outcome.",
    ),
    (
        "buurtrelay_dead_letters_total",
        "counter",
        "Entries given up on and kept as dead letters.",
    ),
    (
        "buurtrelay_config_reloads_total",
        "counter",
        "Config reloads by result.",
    ),
    (
        "buurtrelay_send_seconds",
        "histogram",
        "Platform send latency.",
    ),
    (
        "buurtrelay_queue_depth",
        "gauge",
        "Outbox entries waiting, per account.",
    ),
    (
        "buurtrelay_queue_oldest_seconds",
        "gauge",
        "Age of the oldest waiting entry, per account.",
    ),
    ("buurtrelay_dead_letters", "gauge", "Dead letters kept."),
    (
        "buurtrelay_store_flush_seconds",
        "histogram",
        "Time the store took to make writes durable (one flush serves every webhook waiting); a slow disk shows here first.",
    ),
];

fn labels(l: &[(&str, &str)]) -> String {
    let mut s = String::new();
    write_labels(&mut s, l);
    s
}

/// Appends `k="v",...` to `s`, the values escaped as the text format wants.
fn write_labels(s: &mut String, l: &[(&str, &str)]) {
    for (i, (k, v)) in l.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(k);
        s.push_str("=\"");
        for c in v.chars() {
            match c {
                '\\' => s.push_str("\\\\"),
                '"' => s.push_str("\\\""),
                '\n' => s.push_str("\\n"),
                c => s.push(c),
            }
        }
        s.push('"');
    }
}

impl Metrics {
    pub fn inc(&self, name: &'static str, l: &[(&str, &str)]) {
        self.add(name, l, 1);
    }

    pub fn add(&self, name: &'static str, l: &[(&str, &str)], n: u64) {
        if let Ok(mut c) = self.counters.lock() {
            with_series(&mut c, name, l, |v| *v += n);
        }
    }

    pub fn get(&self, name: &'static str, l: &[(&str, &str)]) -> u64 {
        let key = labels(l);
        self.counters
            .lock()
            .ok()
            .and_then(|c| c.get(name).and_then(|s| s.get(&key)).copied())
            .unwrap_or(0)
    }

    pub fn observe(&self, name: &'static str, l: &[(&str, &str)], secs: f64) {
        if let Ok(mut h) = self.histograms.lock() {
            with_series(&mut h, name, l, |h: &mut Histogram| {
                for (i, b) in BUCKETS.iter().enumerate() {
                    if secs <= *b {
                        h.counts[i] += 1;
                    }
                }
                h.sum += secs;
                h.count += 1;
            });
        }
    }

    /// Renders everything, plus gauges computed by the caller at scrape time.
    pub fn render(&self, gauges: &[(&'static str, String, f64)]) -> String {
        let mut out = String::new();
        let mut written = std::collections::BTreeSet::new();
        let mut head = |out: &mut String, name: &str| {
            if written.insert(name.to_string()) {
                if let Some((_, kind, help)) = HELP.iter().find(|h| h.0 == name) {
                    let _ = writeln!(out, "# HELP {name} {help}");
                    let _ = writeln!(out, "# TYPE {name} {kind}");
                }
            }
        };
        if let Ok(c) = self.counters.lock() {
            for (name, l, v) in c
                .iter()
                .flat_map(|(n, s)| s.iter().map(move |(l, v)| (n, l, v)))
            {
                head(&mut out, name);
                let _ = writeln!(out, "{name}{} {v}", braces(l));
            }
        }
        if let Ok(h) = self.histograms.lock() {
            for (name, l, h) in h
                .iter()
                .flat_map(|(n, s)| s.iter().map(move |(l, h)| (n, l, h)))
            {
                head(&mut out, name);
                let sep = if l.is_empty() { "" } else { "," };
                for (i, b) in BUCKETS.iter().enumerate() {
                    let _ = writeln!(out, "{name}_bucket{{{l}{sep}le=\"{b}\"}} {}", h.counts[i]);
                }
                let _ = writeln!(out, "{name}_bucket{{{l}{sep}le=\"+Inf\"}} {}", h.count);
                let _ = writeln!(out, "{name}_sum{} {}", braces(l), h.sum);
                let _ = writeln!(out, "{name}_count{} {}", braces(l), h.count);
            }
        }
        for (name, l, v) in gauges {
            head(&mut out, name);
            let _ = writeln!(out, "{name}{} {v}", braces(l));
        }
        out
    }
}

fn braces(l: &str) -> String {
    if l.is_empty() {
        String::new()
    } else {
        format!("{{{l}}}")
    }
}

pub fn gauge_labels(l: &[(&str, &str)]) -> String {
    labels(l)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_on_a_terminal_and_never_with_no_color() {
        assert!(colour(true, None));
        assert!(!colour(false, None));
        assert!(!colour(true, Some("1".into())));
        assert!(colour(true, Some("".into())));
    }

    #[test]
    fn counters_render_in_prometheus_text_format() {
        let m = Metrics::default();
        m.inc(
            "buurtrelay_sends_total",
            &[("account", "sandbox"), ("outcome", "ok")],
        );
        m.inc(
            "buurtrelay_sends_total",
            &[("account", "sandbox"), ("outcome", "ok")],
        );
        m.observe("buurtrelay_send_seconds", &[("account", "sandbox")], 0.02);
        let text = m.render(&[(
            "buurtrelay_queue_depth",
            gauge_labels(&[("account", "sandbox")]),
            3.0,
        )]);
        assert!(text.contains("# TYPE buurtrelay_sends_total counter"));
        assert!(text.contains("buurtrelay_sends_total{account=\"sandbox\",outcome=\"ok\"} 2"));
        assert!(
            text.contains("buurtrelay_send_seconds_bucket{account=\"sandbox\",le=\"0.025\"} 1")
        );
        assert!(text.contains("buurtrelay_send_seconds_bucket{account=\"sandbox\",le=\"0.01\"} 0"));
        assert!(text.contains("buurtrelay_queue_depth{account=\"sandbox\"} 3"));
    }

    #[test]
    fn label_values_are_escaped_and_one_series_stays_one_line() {
        let m = Metrics::default();
        for _ in 0..3 {
            m.inc("buurtrelay_messages_in_total", &[("reason", "a\"b\\c\nd")]);
        }
        m.inc("buurtrelay_messages_in_total", &[("reason", "plain")]);
        let text = m.render(&[]);
        assert!(
            text.contains("buurtrelay_messages_in_total{reason=\"a\\\"b\\\\c\\nd\"} 3"),
            "{text}"
        );
        assert!(text.contains("buurtrelay_messages_in_total{reason=\"plain\"} 1"));
        assert_eq!(
            text.matches("# TYPE buurtrelay_messages_in_total").count(),
            1
        );
        assert_eq!(
            m.get("buurtrelay_messages_in_total", &[("reason", "a\"b\\c\nd")]),
            3
        );
    }

    #[test]
    fn a_persons_chat_is_masked_in_logs_and_a_group_is_not() {
        assert_eq!(chat_for_log("-1001234567890"), "-1001234567890");
        assert_eq!(
            chat_for_log("120363011111111111@g.us"),
            "120363011111111111@g.us"
        );
        for personal in [
            "32475111111@c.us",
            "32475111111@s.whatsapp.net",
            "123456789012345@lid",
            "32475111111-1580000000@g.us",
            "32475111111",
        ] {
            let shown = chat_for_log(personal);
            assert!(!shown.contains("32475111111"), "{shown}");
            assert!(!shown.contains("123456789012345"), "{shown}");
            assert!(shown.starts_with("u-"), "{shown}");
        }
    }

    #[test]
    fn a_masked_id_does_not_contain_the_number() {
        let m = mask_id("+32475123456");
        assert!(!m.contains("475"));
        assert_eq!(m, mask_id("+32475123456"));
    }
}
