//! The network's configuration: one TOML file, loaded into typed values.
//!
//! A `Config` that exists is valid: ids are parsed, references resolved,
//! patterns compiled, durations and secrets read. Loading reports *every*
//! semantic error as `file:line:col: message`, and every unknown key; a
//! TOML syntax error stops at the first one (the file cannot be read
//! further).

mod duration;
mod ids;
mod platforms;
pub(crate) mod raw;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use toml::Spanned;

pub use duration::parse_duration;
pub use ids::{AccountId, ChatId, GroupId};
pub use platforms::{AnonymousAdmins, PlatformSettings, canonical_jid};
use raw::*;

use crate::protocol::{Judge, ModelChoice, RuleSet, RuleSource};

/// Built-in reminder and forward texts, per language (data, not code).
const BUILTIN_TEXTS: &str = include_str!("../../config/protocol/texts.toml");

/// One error in a config file, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.col, self.message
        )
    }
}

/// Every error found in a config file, in file order.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// The chat platforms an account can be on.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum PlatformKind {
    Sandbox,
    Telegram,
    /// WhatsApp through a WAHA gateway (a linked device).
    Waha,
    /// WhatsApp through an Evolution API gateway (a linked device).
    Evolution,
    /// Meta's official WhatsApp Cloud API (a business number).
    WhatsappCloud,
}

impl PlatformKind {
    /// Every platform, in the order the docs list them.
    pub const ALL: [PlatformKind; 5] = [
        Self::Sandbox,
        Self::Telegram,
        Self::Waha,
        Self::Evolution,
        Self::WhatsappCloud,
    ];

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sandbox => "sandbox",
            Self::Telegram => "telegram",
            Self::Waha => "waha",
            Self::Evolution => "evolution",
            Self::WhatsappCloud => "whatsapp-cloud",
        }
    }

    /// Whether the relay's own copies come back to it as members' messages:
    /// on WhatsApp through a linked number (WAHA, Evolution) a copy one
    /// coordinator's number posts reaches the others' as any member's
    /// message, so those adapters mark each copy before they send it
    /// ([`crate::platform::own_copy_key`]) and ingest looks for the mark.
    /// A Telegram bot never receives the messages of bots, the Cloud API
    /// and the sandbox never echo the relay's own sends: no mark to look for.
    pub fn echoes_own_copies(self) -> bool {
        matches!(self, Self::Waha | Self::Evolution)
    }

    /// The namespace of this platform's chat ids and message ids. WAHA and
    /// Evolution are two gateways to the same network: a group
    /// `120363...@g.us` is the same group, and a message in it the same
    /// message, whichever gateway (and whichever linked number) delivered it.
    /// Group lookup and dedup go by this space, never by the gateway. (The
    /// Cloud API's ids are its own: its groups are not `@g.us` groups.)
    pub fn chat_space(self) -> &'static str {
        match self {
            Self::Sandbox => "sandbox",
            Self::Telegram => "telegram",
            Self::Waha | Self::Evolution => "whatsapp",
            Self::WhatsappCloud => "whatsapp-cloud",
        }
    }

    /// The platform's published send limits, as defaults: (per chat, per
    /// account, sends in flight).
    fn default_limits(self) -> (&'static [&'static str], &'static [&'static str], usize) {
        match self {
            // Nothing to protect: a demo platform in the store.
            Self::Sandbox => (&[], &[], 16),
            // Bot API FAQ: about one message per second in a chat, at most 20
            // per minute in a group, about 30 per second for the bot.
            Self::Telegram => (&["1/1s", "20/1m"], &["30/1s"], 8),
            // Linked-device gateways: WhatsApp bans numbers that burst. Stay
            // well below anything a person could type.
            Self::Waha | Self::Evolution => (&["1/2s", "12/1m"], &["30/1m"], 2),
            // Cloud API: 80 messages/s per business number; the per-user pair
            // limit (131056) is answered by pausing that chat.
            Self::WhatsappCloud => (&[], &["80/1s"], 16),
        }
    }

    fn default_api_url(self) -> &'static str {
        match self {
            Self::Sandbox => "",
            Self::Telegram => "https://api.telegram.org",
            // Self-hosted: no default, the config must say where it runs.
            Self::Waha | Self::Evolution => "",
            Self::WhatsappCloud => "https://graph.facebook.com/v23.0",
        }
    }
}

impl fmt::Display for PlatformKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A secret value, read from the file or from the environment (`env:NAME`).
/// Its `Debug` never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Clone, Debug)]
pub struct Network {
    pub name: String,
    pub language: String,
    pub emergency_numbers: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct Server {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub max_body_bytes: usize,
    pub reload_poll: Duration,
    /// How log lines are written (read at start-up).
    pub log_format: LogFormat,
    /// The key of sender hashes (see `privacy`); None: the data dir's.
    pub sender_hash_key: Option<Secret>,
    /// Serve sandbox accounts (anyone may post as anyone) on an address
    /// other than loopback. Off by default.
    pub allow_public_sandbox: bool,
}

/// `server.log_format`: lines for people, or one JSON object a line for log
/// shippers (Loki, Elasticsearch, journald's JSON export).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// What happens to an alert whose text does not say that the police were called.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Unconfirmed {
    /// Forward it at once, with the configured note.
    Forward,
    /// Keep it until the sender confirms or `hold_for` passes.
    Hold,
    /// Do not forward it (the reminder is still sent).
    Drop,
}

/// What happens to a held alert when `hold_for` passes without confirmation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HoldTimeout {
    Forward,
    Drop,
}

/// How a forwarded copy names the member who posted the original.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Attribution {
    /// The village only.
    None,
    /// The village and the member's first name (never a number).
    FirstName,
    /// The village and the member's display name (never a number).
    FullName,
}

#[derive(Clone, Debug)]
pub struct RelayPolicy {
    pub unconfirmed: Unconfirmed,
    pub hold_for: Duration,
    pub on_hold_timeout: HoldTimeout,
    pub reminder_cooldown: Duration,
    pub attribution: Attribution,
    pub mask_phone_numbers: bool,
    pub retention: Duration,
    /// The same incident reported again within this window (in another
    /// group, or copied by hand) joins the first report's thread instead
    /// of fanning out again. Zero: never merged.
    pub merge_window: Duration,
    /// What travels of an alert's photo.
    pub media: MediaPolicy,
    /// A photo larger than this travels as its caption (with the note).
    pub media_max_bytes: u64,
    /// Fetching and posting one photo may take this long (instead of
    /// `delivery.send_timeout`).
    pub media_timeout: Duration,
}

/// What travels of a photo posted with an alert.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MediaPolicy {
    /// Its caption, and a note that a photo was posted in the village of
    /// origin (default).
    Caption,
    /// The photo itself, with the copy's text as its caption.
    Forward,
}

#[derive(Clone, Debug)]
pub struct DeliveryPolicy {
    pub send_timeout: Duration,
    pub retry_base: Duration,
    pub retry_max: Duration,
    pub max_age: Duration,
}

/// "At most `count` sends per `period`", counted over a sliding window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub count: u32,
    pub period: Duration,
}

impl Window {
    /// Parses `N/DURATION`: `1/1s`, `20/1m`, `30/s`.
    pub fn parse(s: &str) -> Result<Window, String> {
        let (n, d) = s
            .split_once('/')
            .ok_or_else(|| format!("limit `{s}` must look like `20/1m` (count/duration)"))?;
        let count: u32 = n
            .trim()
            .parse()
            .ok()
            .filter(|c| *c > 0)
            .ok_or_else(|| format!("limit `{s}`: `{n}` is not a positive count"))?;
        let d = d.trim();
        let d = if d.chars().next().is_some_and(|c| c.is_ascii_digit()) {
            d.to_string()
        } else {
            format!("1{d}")
        };
        let period = parse_duration(&d).map_err(|e| format!("limit `{s}`: {e}"))?;
        if period.is_zero() {
            return Err(format!("limit `{s}`: the period must not be zero"));
        }
        Ok(Window { count, period })
    }
}

/// How fast an account may send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    pub per_chat: Vec<Window>,
    pub per_account: Vec<Window>,
    pub max_in_flight: usize,
}
/// The dashboard (`/admin`). Present only when a token is configured.
#[derive(Clone, Debug)]
pub struct Admin {
    /// Sent as `Authorization: Bearer ...` or typed once into the login form.
    pub token: Secret,
}

/// Shorter admin tokens are refused: the dashboard can re-send messages.
pub const ADMIN_TOKEN_MIN_LEN: usize = 16;

#[derive(Clone, Debug)]
pub struct Account {
    pub id: AccountId,
    pub platform: PlatformKind,
    pub api_url: String,
    pub token: Option<Secret>,
    pub webhook_secret: Option<Secret>,
    pub display_name: String,
    pub limits: Limits,
    /// What this account's platform needs beyond the keys above.
    pub settings: PlatformSettings,
}

#[derive(Clone, Debug)]
pub struct Group {
    pub id: GroupId,
    pub name: String,
    pub account: AccountId,
    pub platform: PlatformKind,
    pub chat: ChatId,
    pub coordinators: BTreeSet<String>,
    pub police: BTreeSet<String>,
    pub neighbours: Vec<GroupId>,
    pub language: String,
    /// Telegram forum groups: the topic (`message_thread_id`) the relay's
    /// copies go to; `None`: General (or an ordinary group).
    pub topic: Option<String>,
}

macro_rules! texts {
    ($($field:ident),* $(,)?) => {
        /// The texts the relay writes, in one language. Placeholders:
        /// `{village}`, `{name}`, `{text}`, `{number}` (first emergency
        /// number), `{numbers}`, and in coordinators' answers `{command}`,
        /// `{count}`, `{groups}`, `{time}`. The `command_*` texts are the
        /// command names.
        #[derive(Clone, Debug, Serialize)]
        pub struct Texts {
            $(pub $field: String,)*
        }

        impl Texts {
            /// Every key of `[texts.LANG]`.
            pub const KEYS: &'static [&'static str] = &[$(stringify!($field)),*];

            /// Builds the texts from a lookup by key; the keys it lacks on error.
            fn from_lookup(
                mut get: impl FnMut(&'static str) -> Option<String>,
            ) -> Result<Texts, Vec<&'static str>> {
                let mut missing = Vec::new();
                $(
                    let $field = get(stringify!($field));
                    if $field.is_none() {
                        missing.push(stringify!($field));
                    }
                )*
                if !missing.is_empty() {
                    return Err(missing);
                }
                Ok(Texts { $($field: $field.unwrap_or_default(),)* })
            }

            fn get(&self, key: &str) -> Option<&String> {
                match key {
                    $(stringify!($field) => Some(&self.$field),)*
                    _ => None,
                }
            }
        }

        impl RawTexts {
            fn get(&self, key: &str) -> Option<&Spanned<String>> {
                match key {
                    $(stringify!($field) => self.$field.as_ref(),)*
                    _ => None,
                }
            }
        }
    };
}

texts!(
    reminder,
    unconfirmed_note,
    forward,
    followup,
    all_clear,
    corrected,
    retracted,
    also_reported,
    photo_note,
    command_retract,
    command_forward,
    command_status,
    not_coordinator,
    reply_needed,
    retract_done,
    retract_held,
    already_retracted,
    forward_done,
    already_forwarded,
    cannot_forward,
    status_header,
    status_line,
    status_empty,
    review,
    describe_behaviour,
);

/// The texts a language without built-in texts must give itself; the
/// others fall back to the English ones.
const REQUIRED_TEXTS: [&str; 3] = ["reminder", "unconfirmed_note", "forward"];
/// Texts that must show the member's message.
const TEXTS_WITH_TEXT: [&str; 4] = ["forward", "followup", "all_clear", "corrected"];

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteTargets {
    All,
    Neighbours,
    Groups(Vec<GroupId>),
}

#[derive(Clone, Debug)]
pub struct Route {
    /// `None` = from every group.
    pub from: Option<BTreeSet<GroupId>>,
    pub to: RouteTargets,
    /// `None` = every category.
    pub categories: Option<BTreeSet<String>>,
}

/// A loaded, valid configuration.
#[derive(Debug)]
pub struct Config {
    pub file: PathBuf,
    pub network: Network,
    pub server: Server,
    pub relay: RelayPolicy,
    pub delivery: DeliveryPolicy,
    pub accounts: BTreeMap<AccountId, Account>,
    pub groups: Vec<Group>,
    /// The protocol check: the rules and the learned model.
    pub rules: Arc<Judge>,
    pub texts: BTreeMap<String, Texts>,
    pub routes: Vec<Route>,
    /// `None`: no admin token configured, the dashboard is off.
    pub admin: Option<Admin>,
    /// Warnings that do not stop the relay (printed by check-config, logged at start).
    pub warnings: Vec<String>,
    /// What an operator should know about how an account is wired (what it
    /// accepts, what the gateway must send): printed by check-config and
    /// logged at start, not problems.
    pub notes: Vec<String>,
    by_id: HashMap<GroupId, usize>,
    /// Keyed by [`PlatformKind::chat_space`]: WAHA and Evolution share one.
    by_chat: HashMap<(&'static str, ChatId), usize>,
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let src = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                file: path.display().to_string(),
                line: 1,
                col: 1,
                message: format!("cannot read config file: {e}"),
            }])
        })?;
        Self::parse(&src, path)
    }

    /// Validates config text; `path` names the file in errors.
    pub fn parse(src: &str, path: &Path) -> Result<Config, ConfigErrors> {
        let mut cx = Cx {
            file: path.display().to_string(),
            src,
            errors: Vec::new(),
        };
        let raw: RawConfig = match toml::from_str(src) {
            Ok(raw) => raw,
            Err(e) => {
                unknown_keys_too(&mut cx, e);
                return Err(ConfigErrors(cx.errors));
            }
        };
        let cfg = build(&mut cx, raw, path);
        match cfg {
            Some(cfg) if cx.errors.is_empty() => Ok(cfg),
            _ => {
                cx.errors.sort_by_key(|e| (e.line, e.col));
                Err(ConfigErrors(cx.errors))
            }
        }
    }

    pub fn group(&self, id: &GroupId) -> Option<&Group> {
        self.by_id.get(id).map(|&i| &self.groups[i])
    }

    pub fn group_by_chat(&self, platform: PlatformKind, chat: &ChatId) -> Option<&Group> {
        self.by_chat
            .get(&(platform.chat_space(), chat.clone()))
            .map(|&i| &self.groups[i])
    }

    /// The texts for a group's language (every configured language has all texts).
    pub fn texts_for(&self, group: &Group) -> &Texts {
        self.texts
            .get(&group.language)
            .or_else(|| self.texts.get(&self.network.language))
            .or_else(|| self.texts.values().next())
            .expect("validated: the network language has texts")
    }

    /// `{number}` and `{numbers}` for texts: "101" and "101 / 112".
    pub fn numbers_text(&self) -> (String, String) {
        let first = self
            .network
            .emergency_numbers
            .first()
            .cloned()
            .unwrap_or_default();
        (first, self.network.emergency_numbers.join(" / "))
    }
}

/// Reports a TOML error and, when it is an unknown key, every further
/// unknown key: serde stops at the first, so that key's line is set aside
/// (its first character made a `#`, so every other byte keeps its place)
/// and the text read again, as long as the next error is another unknown
/// key. Only a line that the key starts is set aside; a key inside an
/// inline table, a table header or a value spanning lines ends the search
/// (what it would leave behind could produce errors that are not there).
fn unknown_keys_too(cx: &mut Cx, first: toml::de::Error) {
    const MAX: usize = 50;
    let is_unknown = |e: &toml::de::Error| e.message().starts_with("unknown field");
    let mut text = cx.src.to_string();
    let mut e = first;
    loop {
        let span = e.span().unwrap_or(0..0);
        cx.err(span.clone(), e.message().trim().to_string());
        if !is_unknown(&e) || cx.errors.len() >= MAX {
            return;
        }
        let at = span.start;
        let Some(head) = text.get(..at) else {
            return;
        };
        let line_start = head.rfind('\n').map_or(0, |p| p + 1);
        let starts_line = head[line_start..].chars().all(|c| c == ' ' || c == '\t');
        let key_char = text.as_bytes().get(at).copied();
        if !starts_line
            || !key_char
                .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'"')
        {
            return;
        }
        // An ASCII byte (checked above) becomes another: still UTF-8.
        let mut next = text.clone();
        next.replace_range(at..=at, "#");
        match toml::from_str::<RawConfig>(&next) {
            Err(again) if is_unknown(&again) && again.span() != Some(span) => {
                text = next;
                e = again;
            }
            // Read whole, or another kind of error: nothing more to name
            // for sure (the other errors come once the keys are fixed).
            _ => return,
        }
    }
}

/// Error collector with the source text, to turn byte spans into line:col.
struct Cx<'a> {
    file: String,
    src: &'a str,
    errors: Vec<ConfigError>,
}

impl Cx<'_> {
    fn err(&mut self, span: Range<usize>, message: impl Into<String>) {
        let (line, col) = line_col(self.src, span.start);
        self.errors.push(ConfigError {
            file: self.file.clone(),
            line,
            col,
            message: message.into(),
        });
    }

    /// The span of `"needle"` inside `span` (a list), or `span` itself.
    fn narrow(&self, span: &Range<usize>, needle: &str) -> Range<usize> {
        let end = span.end.min(self.src.len());
        let start = span.start.min(end);
        let hay = &self.src[start..end];
        for quoted in [format!("\"{needle}\""), format!("'{needle}'")] {
            if let Some(pos) = hay.find(&quoted) {
                return start + pos..start + pos + quoted.len();
            }
        }
        span.clone()
    }
}

fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(src.len());
    let before = &src[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rfind('\n').map_or(before.chars().count(), |nl| {
        before[nl + 1..].chars().count()
    }) + 1;
    (line, col)
}

fn dur(cx: &mut Cx, v: &Option<Spanned<String>>, default: &str, key: &str) -> Duration {
    match v {
        None => parse_duration(default).unwrap_or_default(),
        Some(s) => match parse_duration(s.get_ref()) {
            Ok(d) => d,
            Err(e) => {
                cx.err(s.span(), format!("{key}: {e}"));
                Duration::ZERO
            }
        },
    }
}

fn secret(cx: &mut Cx, v: &Option<Spanned<String>>, key: &str) -> Option<Secret> {
    let v = v.as_ref()?;
    let s = v.get_ref();
    if let Some(name) = s.strip_prefix("env:") {
        match std::env::var(name) {
            Ok(val) if !val.is_empty() => Some(Secret(val)),
            _ => {
                cx.err(
                    v.span(),
                    format!("{key}: environment variable `{name}` is not set (or empty)"),
                );
                None
            }
        }
    } else if s.is_empty() {
        cx.err(v.span(), format!("{key} must not be empty"));
        None
    } else {
        Some(Secret(s.clone()))
    }
}

/// A string or integer id from the file (Telegram user ids are integers).
fn user_id(cx: &mut Cx, v: &Spanned<toml::Value>, what: &str) -> Option<String> {
    match v.get_ref() {
        toml::Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        toml::Value::Integer(i) => Some(i.to_string()),
        _ => {
            cx.err(
                v.span(),
                format!("{what} must be a platform user id (a string)"),
            );
            None
        }
    }
}

fn build(cx: &mut Cx, raw: RawConfig, path: &Path) -> Option<Config> {
    // --- texts: built-in per language, then the file's overrides.
    let builtin: BTreeMap<String, RawTexts> = match toml::from_str(BUILTIN_TEXTS) {
        Ok(t) => t,
        Err(e) => panic!("built-in texts are invalid: {e}"),
    };
    let mut texts: BTreeMap<String, Texts> = BTreeMap::new();
    for (lang, t) in &builtin {
        match Texts::from_lookup(|k| t.get(k).map(|v| v.get_ref().clone())) {
            Ok(t) => {
                texts.insert(lang.clone(), t);
            }
            Err(missing) => panic!("built-in texts [{lang}] lack {missing:?}"),
        }
    }
    let english = texts.get("en").cloned();
    for (lang, t) in &raw.texts {
        let l = lang.get_ref();
        let known = texts.get(l).cloned();
        for key in Texts::KEYS {
            if let Some(v) = t.get(key) {
                check_placeholders(cx, v, &format!("texts.{l}.{key}"));
            }
        }
        if known.is_none() {
            let missing: Vec<&str> = REQUIRED_TEXTS
                .iter()
                .copied()
                .filter(|k| t.get(k).is_none())
                .collect();
            if !missing.is_empty() {
                cx.err(
                    lang.span(),
                    format!(
                        "texts.{l}: a language without built-in texts needs reminder, unconfirmed_note and forward"
                    ),
                );
                continue;
            }
        }
        let base = known.as_ref().or(english.as_ref());
        let built = Texts::from_lookup(|k| {
            t.get(k)
                .map(|v| v.get_ref().clone())
                .or_else(|| base.and_then(|b| b.get(k).cloned()))
        });
        let Ok(built) = built else {
            cx.err(lang.span(), format!("texts.{l}: incomplete"));
            continue;
        };
        for key in TEXTS_WITH_TEXT {
            if let Some(v) = t.get(key) {
                if !v.get_ref().contains("{text}") {
                    cx.err(v.span(), format!("texts.{l}.{key} must contain {{text}}"));
                }
            }
        }
        for key in ["command_retract", "command_forward", "command_status"] {
            if let Some(v) = t.get(key) {
                let c = v.get_ref();
                let ok = c.starts_with('/')
                    && c.len() > 1
                    && c.len() <= 32
                    && c[1..]
                        .chars()
                        .all(|ch| ch.is_alphanumeric() || ch == '_' || ch == '-');
                if !ok {
                    cx.err(
                        v.span(),
                        format!("texts.{l}.{key}: a command is `/` and one word, like \"/status\""),
                    );
                }
            }
        }
        texts.insert(l.clone(), built);
    }
    let known_langs = texts.keys().cloned().collect::<Vec<_>>().join(", ");

    // --- network
    let language = match &raw.network.language {
        None => "nl".to_string(),
        Some(l) => {
            if !texts.contains_key(l.get_ref()) {
                cx.err(
                    l.span(),
                    format!(
                        "network.language `{}` has no texts; use one of {known_langs} or add [texts.{}]",
                        l.get_ref(),
                        l.get_ref()
                    ),
                );
            }
            l.get_ref().clone()
        }
    };
    let emergency_numbers = match &raw.network.emergency_numbers {
        None => vec!["101".to_string(), "112".to_string()],
        Some(n) => {
            if n.get_ref().is_empty() {
                cx.err(
                    n.span(),
                    "network.emergency_numbers must name at least one number",
                );
            }
            for num in n.get_ref() {
                if num.is_empty() || !num.chars().all(|c| c.is_ascii_digit()) || num.len() > 6 {
                    cx.err(
                        n.span(),
                        format!("network.emergency_numbers: `{num}` is not a short emergency number (digits only)"),
                    );
                }
            }
            n.get_ref().clone()
        }
    };
    let network = Network {
        name: raw
            .network
            .name
            .as_ref()
            .map_or("buurtrelay".to_string(), |n| n.get_ref().clone()),
        language: language.clone(),
        emergency_numbers: emergency_numbers.clone(),
    };

    // --- server
    let listen = match &raw.server.listen {
        None => SocketAddr::from(([127, 0, 0, 1], 8080)),
        Some(l) => match l.get_ref().parse() {
            Ok(a) => a,
            Err(_) => {
                cx.err(
                    l.span(),
                    format!(
                        "server.listen `{}` is not an address like `127.0.0.1:8080` or `0.0.0.0:8080`",
                        l.get_ref()
                    ),
                );
                SocketAddr::from(([127, 0, 0, 1], 8080))
            }
        },
    };
    // Relative to the working directory, like every path an operator types.
    let data_dir = match &raw.server.data_dir {
        None => PathBuf::from("data"),
        Some(d) if d.get_ref().trim().is_empty() => {
            cx.err(d.span(), "server.data_dir must not be empty");
            PathBuf::from("data")
        }
        Some(d) => PathBuf::from(d.get_ref()),
    };
    let max_body_bytes = match &raw.server.max_body_bytes {
        None => 256 * 1024,
        Some(m) => {
            let v = *m.get_ref();
            if !(1024..=64 * 1024 * 1024).contains(&v) {
                cx.err(
                    m.span(),
                    "server.max_body_bytes must be between 1024 and 67108864",
                );
                256 * 1024
            } else {
                v as usize
            }
        }
    };
    let before = cx.errors.len();
    let mut reload_poll = dur(cx, &raw.server.reload_poll, "2s", "server.reload_poll");
    if let Some(p) = raw
        .server
        .reload_poll
        .as_ref()
        .filter(|_| cx.errors.len() == before)
    {
        // 0 would spin the watcher; more than an hour is a reload nobody waits for.
        if reload_poll < Duration::from_millis(100) || reload_poll > Duration::from_secs(3600) {
            cx.err(
                p.span(),
                "server.reload_poll must be between 100ms and 1h (SIGHUP reloads at once)",
            );
        }
    }
    if cx.errors.len() != before {
        reload_poll = Duration::from_secs(2);
    }
    let log_format = match raw.server.log_format.as_ref() {
        None => LogFormat::Text,
        Some(s) => match s.get_ref().as_str() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                cx.err(
                    s.span(),
                    format!("server.log_format `{other}` must be \"text\" or \"json\""),
                );
                LogFormat::Text
            }
        },
    };
    let server = Server {
        listen,
        data_dir,
        max_body_bytes,
        reload_poll,
        log_format,
        sender_hash_key: secret(cx, &raw.server.sender_hash_key, "server.sender_hash_key"),
        allow_public_sandbox: raw.server.allow_public_sandbox.unwrap_or(false),
    };

    // --- relay policy
    let unconfirmed = match raw.relay.unconfirmed.as_ref() {
        None => Unconfirmed::Forward,
        Some(s) => match s.get_ref().as_str() {
            "forward" => Unconfirmed::Forward,
            "hold" => Unconfirmed::Hold,
            "drop" => Unconfirmed::Drop,
            other => {
                cx.err(
                    s.span(),
                    format!(
                        "relay.unconfirmed `{other}` must be \"forward\", \"hold\" or \"drop\""
                    ),
                );
                Unconfirmed::Forward
            }
        },
    };
    let on_hold_timeout = match raw.relay.on_hold_timeout.as_ref() {
        None => HoldTimeout::Forward,
        Some(s) => match s.get_ref().as_str() {
            "forward" => HoldTimeout::Forward,
            "drop" => HoldTimeout::Drop,
            other => {
                cx.err(
                    s.span(),
                    format!("relay.on_hold_timeout `{other}` must be \"forward\" or \"drop\""),
                );
                HoldTimeout::Forward
            }
        },
    };
    let attribution = match raw.relay.attribution.as_ref() {
        None => Attribution::FirstName,
        Some(s) => match s.get_ref().as_str() {
            "none" => Attribution::None,
            "first_name" => Attribution::FirstName,
            "full_name" => Attribution::FullName,
            other => {
                cx.err(
                    s.span(),
                    format!("relay.attribution `{other}` must be \"none\", \"first_name\" or \"full_name\""),
                );
                Attribution::FirstName
            }
        },
    };
    let hold_for = dur(cx, &raw.relay.hold_for, "15m", "relay.hold_for");
    if let Some(h) = &raw.relay.hold_for {
        if hold_for > Duration::from_secs(24 * 3600) {
            cx.err(
                h.span(),
                "relay.hold_for must be at most 24h: an alert is news for hours, not days",
            );
        }
        if unconfirmed != Unconfirmed::Hold {
            // Not an error: the admin may switch `unconfirmed` back and forth.
        }
    }
    let relay = RelayPolicy {
        unconfirmed,
        hold_for,
        on_hold_timeout,
        reminder_cooldown: dur(
            cx,
            &raw.relay.reminder_cooldown,
            "6h",
            "relay.reminder_cooldown",
        ),
        attribution,
        mask_phone_numbers: raw.relay.mask_phone_numbers.unwrap_or(true),
        retention: dur(cx, &raw.relay.retention, "30d", "relay.retention"),
        merge_window: dur(cx, &raw.relay.merge_window, "2h", "relay.merge_window"),
        media: match raw.relay.media.as_ref() {
            None => MediaPolicy::Caption,
            Some(s) => match s.get_ref().as_str() {
                "caption" => MediaPolicy::Caption,
                "forward" => MediaPolicy::Forward,
                other => {
                    cx.err(
                        s.span(),
                        format!("relay.media `{other}` must be \"caption\" or \"forward\""),
                    );
                    MediaPolicy::Caption
                }
            },
        },
        media_max_bytes: match raw.relay.media_max_bytes.as_ref() {
            None => 5_000_000,
            Some(n) if (1..=50_000_000).contains(n.get_ref()) => *n.get_ref() as u64,
            Some(n) => {
                cx.err(
                    n.span(),
                    "relay.media_max_bytes must be between 1 and 50000000 (WhatsApp takes images up to 5 MB, Telegram photos up to 10 MB)",
                );
                5_000_000
            }
        },
        media_timeout: dur(cx, &raw.relay.media_timeout, "60s", "relay.media_timeout"),
    };
    let delivery = DeliveryPolicy {
        send_timeout: dur(
            cx,
            &raw.delivery.send_timeout,
            "15s",
            "delivery.send_timeout",
        ),
        retry_base: dur(cx, &raw.delivery.retry_base, "2s", "delivery.retry_base"),
        retry_max: dur(cx, &raw.delivery.retry_max, "5m", "delivery.retry_max"),
        max_age: dur(cx, &raw.delivery.max_age, "24h", "delivery.max_age"),
    };

    let mut warnings = Vec::new();
    let mut notes = Vec::new();

    // --- accounts
    let mut accounts = BTreeMap::new();
    for (id, a) in &raw.accounts {
        let aid = match AccountId::parse(id.get_ref()) {
            Ok(i) => i,
            Err(e) => {
                cx.err(id.span(), format!("[accounts.{}]: {e}", id.get_ref()));
                continue;
            }
        };
        let Some(platform) = PlatformKind::parse(a.platform.get_ref()) else {
            cx.err(
                a.platform.span(),
                format!(
                    "accounts.{aid}.platform `{}` is not a platform; use one of {}",
                    a.platform.get_ref(),
                    PlatformKind::ALL
                        .iter()
                        .map(|p| format!("\"{p}\""))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
            continue;
        };
        let api_url = match &a.api_url {
            None => platform.default_api_url().to_string(),
            Some(u) => {
                let s = u.get_ref().trim_end_matches('/').to_string();
                if !(s.starts_with("http://") || s.starts_with("https://")) {
                    cx.err(
                        u.span(),
                        format!("accounts.{aid}.api_url `{s}` must start with http:// or https://"),
                    );
                }
                s
            }
        };
        let token = secret(cx, &a.token, &format!("accounts.{aid}.token"));
        let webhook_secret = secret(
            cx,
            &a.webhook_secret,
            &format!("accounts.{aid}.webhook_secret"),
        );
        match platform {
            PlatformKind::Telegram => {
                if a.token.is_none() {
                    cx.err(
                        id.span(),
                        format!("accounts.{aid}: a telegram account needs `token` (from @BotFather; \"env:NAME\" reads it from the environment)"),
                    );
                }
                if let (Some(t), Some(raw_t)) = (&token, &a.token) {
                    let ok = t.expose().split_once(':').is_some_and(|(id, rest)| {
                        !id.is_empty() && id.chars().all(|c| c.is_ascii_digit()) && !rest.is_empty()
                    });
                    if !ok {
                        cx.err(raw_t.span(), format!("accounts.{aid}.token does not look like a Telegram bot token (`123456:ABC...`)"));
                    }
                }
                if let Some(ws) = &webhook_secret {
                    let ok = ws.expose().len() <= 256
                        && ws
                            .expose()
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                    if !ok {
                        if let Some(raw_ws) = &a.webhook_secret {
                            cx.err(raw_ws.span(), format!("accounts.{aid}.webhook_secret: Telegram allows only A-Z, a-z, 0-9, `_` and `-`, at most 256 characters"));
                        }
                    }
                } else if a.webhook_secret.is_none() {
                    warnings.push(format!(
                        "accounts.{aid}: no webhook_secret: anyone who knows the URL can post updates; set one and pass it to setWebhook as secret_token"
                    ));
                }
            }
            PlatformKind::Sandbox
            | PlatformKind::Waha
            | PlatformKind::Evolution
            | PlatformKind::WhatsappCloud => {}
        }
        let settings = platforms::account_settings(
            cx,
            &aid,
            id.span(),
            platform,
            a,
            &mut warnings,
            &mut notes,
        );
        let display_name = a
            .display_name
            .as_ref()
            .map_or_else(|| "buurtrelay".to_string(), |d| d.get_ref().clone());
        let (chat_default, account_default, in_flight_default) = platform.default_limits();
        let mut windows =
            |v: &Option<Spanned<Vec<String>>>, default: &[&str], key: &str| -> Vec<Window> {
                match v {
                    None => default
                        .iter()
                        .filter_map(|w| Window::parse(w).ok())
                        .collect(),
                    Some(list) => list
                        .get_ref()
                        .iter()
                        .filter_map(|w| match Window::parse(w) {
                            Ok(w) => Some(w),
                            Err(e) => {
                                cx.err(list.span(), format!("accounts.{aid}.{key}: {e}"));
                                None
                            }
                        })
                        .collect(),
                }
            };
        let per_chat = windows(&a.per_chat_limits, chat_default, "per_chat_limits");
        let per_account = windows(&a.per_account_limits, account_default, "per_account_limits");
        let max_in_flight = match &a.max_in_flight {
            None => in_flight_default,
            Some(m) if (1..=256).contains(m.get_ref()) => *m.get_ref() as usize,
            Some(m) => {
                cx.err(
                    m.span(),
                    format!("accounts.{aid}.max_in_flight must be between 1 and 256"),
                );
                in_flight_default
            }
        };
        accounts.insert(
            aid.clone(),
            Account {
                id: aid,
                platform,
                api_url,
                token,
                webhook_secret,
                display_name,
                limits: Limits {
                    per_chat,
                    per_account,
                    max_in_flight,
                },
                settings,
            },
        );
    }

    // --- groups (first pass: ids, so neighbours and routes may refer forward)
    let mut by_id: HashMap<GroupId, usize> = HashMap::new();
    let mut ids: Vec<Option<GroupId>> = Vec::new();
    for g in &raw.groups {
        match GroupId::parse(g.id.get_ref()) {
            Ok(id) => {
                if by_id.contains_key(&id) {
                    cx.err(g.id.span(), format!("duplicate group id `{id}`"));
                    ids.push(None);
                } else {
                    by_id.insert(id.clone(), ids.len());
                    ids.push(Some(id));
                }
            }
            Err(e) => {
                cx.err(g.id.span(), e);
                ids.push(None);
            }
        }
    }
    if raw.groups.is_empty() {
        cx.err(
            0..0,
            "no [[groups]]: the network needs at least two groups to relay between",
        );
    }
    let mut groups = Vec::new();
    let mut by_chat: HashMap<(&'static str, ChatId), usize> = HashMap::new();
    for (g, id) in raw.groups.iter().zip(ids) {
        let Some(id) = id else { continue };
        if g.name.get_ref().trim().is_empty() {
            cx.err(
                g.name.span(),
                format!("group `{id}`: name must not be empty"),
            );
        }
        let account = match AccountId::parse(g.account.get_ref()) {
            Ok(a) if accounts.contains_key(&a) => Some(a),
            Ok(a) => {
                let known = accounts
                    .keys()
                    .map(|k| k.to_string())
                    .collect::<Vec<_>>()
                    .join(", ");
                cx.err(
                    g.account.span(),
                    format!("group `{id}`: unknown account `{a}` (configured: {known})"),
                );
                None
            }
            Err(e) => {
                cx.err(g.account.span(), format!("group `{id}`: {e}"));
                None
            }
        };
        let chat = match g.chat.get_ref() {
            toml::Value::String(s) => match ChatId::parse(s) {
                Ok(c) => Some(c),
                Err(e) => {
                    cx.err(g.chat.span(), format!("group `{id}`: {e}"));
                    None
                }
            },
            toml::Value::Integer(i) => {
                cx.err(
                    g.chat.span(),
                    format!("group `{id}`: write the chat id as a string, e.g. chat = \"{i}\""),
                );
                None
            }
            _ => {
                cx.err(
                    g.chat.span(),
                    format!("group `{id}`: chat must be a string"),
                );
                None
            }
        };
        let platform = account
            .as_ref()
            .and_then(|a| accounts.get(a))
            .map(|a| a.platform);
        // WhatsApp ids are checked, and kept in one spelling, per platform.
        let chat = match (platform, chat) {
            (Some(p), Some(c)) => platforms::check_chat(cx, p, id.as_str(), g.chat.span(), c),
            (_, c) => c,
        };
        if let (Some(platform), Some(chat)) = (platform, &chat) {
            if platform == PlatformKind::Telegram
                && chat.as_str().parse::<i64>().is_err()
                && !chat.as_str().starts_with('@')
            {
                cx.err(
                    g.chat.span(),
                    format!("group `{id}`: a Telegram chat id is a number like \"-1001234567890\" (or \"@channelname\")"),
                );
            }
            if let Some(&other) = by_chat.get(&(platform.chat_space(), chat.clone())) {
                let other_id = raw.groups[other].id.get_ref();
                cx.err(
                    g.chat.span(),
                    format!(
                        "group `{id}`: chat `{chat}` is already the chat of group `{other_id}`"
                    ),
                );
            }
        }
        let mut people = |list: &[Spanned<toml::Value>], what: &str| {
            let what = format!("group `{id}`: {what}");
            list.iter()
                .filter_map(|c| {
                    let u = user_id(cx, c, &what)?;
                    match platform {
                        Some(p) => platforms::check_user_id(cx, p, c.span(), u, &what),
                        None => Some(u),
                    }
                })
                .collect::<BTreeSet<_>>()
        };
        let coordinators = people(&g.coordinators, "coordinators");
        let police = people(&g.police, "police");
        let mut neighbours = Vec::new();
        for n in &g.neighbours {
            match GroupId::parse(n.get_ref()) {
                Ok(nid) if nid == id => cx.err(
                    n.span(),
                    format!("group `{id}` cannot be its own neighbour"),
                ),
                Ok(nid) if by_id.contains_key(&nid) => neighbours.push(nid),
                Ok(nid) => cx.err(
                    n.span(),
                    format!("group `{id}`: unknown neighbour group `{nid}`"),
                ),
                Err(e) => cx.err(n.span(), format!("group `{id}`: neighbours: {e}")),
            }
        }
        let lang = match &g.language {
            None => language.clone(),
            Some(l) => {
                if !texts.contains_key(l.get_ref()) {
                    cx.err(
                        l.span(),
                        format!(
                            "group `{id}`: language `{}` has no texts; use one of {known_langs}",
                            l.get_ref()
                        ),
                    );
                }
                l.get_ref().clone()
            }
        };
        if coordinators.is_empty() {
            warnings.push(format!(
                "group `{id}` has no coordinators: nobody there can use coordinator commands"
            ));
        }
        let topic = match (&g.topic, platform) {
            (None, _) => None,
            (Some(t), Some(PlatformKind::Telegram)) if *t.get_ref() > 0 => {
                Some(t.get_ref().to_string())
            }
            (Some(t), Some(PlatformKind::Telegram)) => {
                cx.err(
                    t.span(),
                    format!("group `{id}`: topic is the forum topic's message_thread_id, a positive number (the number after the group's id in a link to the topic)"),
                );
                None
            }
            (Some(t), Some(p)) => {
                cx.err(
                    t.span(),
                    format!("group `{id}`: topic is only for Telegram forum groups (this group's account is \"{p}\")"),
                );
                None
            }
            (Some(_), None) => None,
        };
        let (Some(account), Some(chat), Some(platform)) = (account, chat, platform) else {
            continue;
        };
        by_chat.insert((platform.chat_space(), chat.clone()), groups.len());
        groups.push(Group {
            id,
            name: g.name.get_ref().trim().to_string(),
            account,
            platform,
            chat,
            coordinators,
            police,
            neighbours,
            language: lang,
            topic,
        });
    }
    // Rebuild the index over the groups that made it through.
    let by_id: HashMap<GroupId, usize> = groups
        .iter()
        .enumerate()
        .map(|(i, g)| (g.id.clone(), i))
        .collect();

    // --- protocol rules
    let rules = {
        let user = raw.protocol.as_ref();
        let use_builtin = user.and_then(|p| p.builtin).unwrap_or(true);
        match RuleSet::compile(
            use_builtin,
            user.map(|p| RuleSource { raw: p }),
            &emergency_numbers,
        ) {
            Ok(r) => Some(r),
            Err(errs) => {
                for (span, msg) in errs {
                    cx.err(span, msg);
                }
                None
            }
        }
    };

    // --- the learned model and its band of doubt
    let model = {
        let v = raw.protocol.as_ref().and_then(|p| p.model.as_ref());
        let choice = match v.map(|s| s.get_ref().as_str()) {
            None | Some("builtin") => ModelChoice::Builtin,
            Some("none") => ModelChoice::None,
            Some(file) => {
                let p = Path::new(file);
                ModelChoice::File(if p.is_absolute() {
                    p.to_path_buf()
                } else {
                    path.parent().unwrap_or(Path::new(".")).join(p)
                })
            }
        };
        match choice.load() {
            Ok(m) => m,
            Err(e) => {
                let span = v.map(|s| s.span()).unwrap_or(0..0);
                cx.err(span, format!("protocol.model: {e}"));
                None
            }
        }
    };
    let band = match raw.protocol.as_ref().and_then(|p| p.review_band.as_ref()) {
        None => crate::protocol::judge::DEFAULT_BAND,
        Some(b) => match b.get_ref().as_slice() {
            [lo, hi] if (0.0..=1.0).contains(lo) && (0.0..=1.0).contains(hi) && lo <= hi => {
                (*lo as f32, *hi as f32)
            }
            _ => {
                cx.err(
                    b.span(),
                    "protocol.review_band: two scores [low, high] with 0 <= low <= high <= 1 ([0.5, 0.5] asks nobody)",
                );
                crate::protocol::judge::DEFAULT_BAND
            }
        },
    };

    let raw_describe_behaviour = raw
        .protocol
        .as_ref()
        .and_then(|p| p.describe_behaviour)
        .unwrap_or(true);

    // --- routes
    let category_names: BTreeSet<String> = RuleSet::declared_categories(
        raw.protocol
            .as_ref()
            .and_then(|p| p.builtin)
            .unwrap_or(true),
        raw.protocol.as_ref(),
    )
    .into_iter()
    .collect();
    let all_ids: BTreeSet<GroupId> = by_id.keys().cloned().collect();
    let mut routes = Vec::new();
    for (i, r) in raw.routes.iter().enumerate() {
        let n = i + 1;
        let errors_before = cx.errors.len();
        let from = match r.from.get_ref() {
            toml::Value::String(s) if s == "*" => None,
            toml::Value::Array(items) => {
                let mut set = BTreeSet::new();
                for it in items {
                    match it.as_str().map(GroupId::parse) {
                        Some(Ok(g)) if all_ids.contains(&g) => {
                            set.insert(g);
                        }
                        Some(Ok(g)) => {
                            let sp = cx.narrow(&r.from.span(), g.as_str());
                            cx.err(sp, format!("route {n}: from: unknown group `{g}`"));
                        }
                        _ => cx.err(
                            r.from.span(),
                            format!("route {n}: from: list group ids as strings"),
                        ),
                    }
                }
                if items.is_empty() {
                    cx.err(
                        r.from.span(),
                        format!(
                            "route {n} can never match: `from` is empty (use \"*\" for every group)"
                        ),
                    );
                }
                Some(set)
            }
            _ => {
                cx.err(
                    r.from.span(),
                    format!("route {n}: from must be \"*\" or a list of group ids"),
                );
                continue;
            }
        };
        let to = match r.to.get_ref() {
            toml::Value::String(s) if s == "all" => RouteTargets::All,
            toml::Value::String(s) if s == "neighbours" => RouteTargets::Neighbours,
            toml::Value::Array(items) => {
                let mut v = Vec::new();
                for it in items {
                    match it.as_str().map(GroupId::parse) {
                        Some(Ok(g)) if all_ids.contains(&g) => v.push(g),
                        Some(Ok(g)) => {
                            let sp = cx.narrow(&r.to.span(), g.as_str());
                            cx.err(sp, format!("route {n}: to: unknown group `{g}`"));
                        }
                        _ => cx.err(
                            r.to.span(),
                            format!("route {n}: to: list group ids as strings"),
                        ),
                    }
                }
                if items.is_empty() {
                    cx.err(
                        r.to.span(),
                        format!("route {n} can never match: `to` is empty"),
                    );
                }
                RouteTargets::Groups(v)
            }
            toml::Value::String(s) if s == "neighbors" || s == "neighbour" || s == "neighbor" => {
                cx.err(
                    r.to.span(),
                    format!("route {n}: to = \"{s}\": did you mean \"neighbours\"?"),
                );
                continue;
            }
            _ => {
                cx.err(
                    r.to.span(),
                    format!("route {n}: to must be \"all\", \"neighbours\" or a list of group ids"),
                );
                continue;
            }
        };
        let categories = match r.categories.as_ref().map(|c| (c, c.get_ref())) {
            None => None,
            Some((_, toml::Value::Array(items)))
                if items.len() == 1 && items[0].as_str() == Some("*") =>
            {
                None
            }
            Some((c, toml::Value::String(s))) if s == "*" => {
                let _ = c;
                None
            }
            Some((c, toml::Value::Array(items))) => {
                let mut set = BTreeSet::new();
                for it in items {
                    match it.as_str() {
                        Some(name) if category_names.contains(name) => {
                            set.insert(name.to_string());
                        }
                        Some(name) => {
                            let known = category_names
                                .iter()
                                .cloned()
                                .collect::<Vec<_>>()
                                .join(", ");
                            let sp = cx.narrow(&c.span(), name);
                            cx.err(
                                sp,
                                format!("route {n}: unknown category `{name}` (known: {known})"),
                            );
                        }
                        None => cx.err(
                            c.span(),
                            format!("route {n}: categories: list names as strings"),
                        ),
                    }
                }
                if items.is_empty() {
                    cx.err(c.span(), format!("route {n} can never match: `categories` is empty (use [\"*\"] for every category)"));
                }
                Some(set)
            }
            Some((c, _)) => {
                cx.err(
                    c.span(),
                    format!("route {n}: categories must be [\"*\"] or a list of names"),
                );
                continue;
            }
        };
        // A route that can never produce a target is a mistake worth an error.
        let sources: Vec<&Group> = match &from {
            None => groups.iter().collect(),
            Some(set) => groups.iter().filter(|g| set.contains(&g.id)).collect(),
        };
        let reachable = sources.iter().any(|src| match &to {
            RouteTargets::All => groups.len() > 1,
            RouteTargets::Neighbours => !src.neighbours.is_empty(),
            RouteTargets::Groups(v) => v.iter().any(|t| *t != src.id),
        });
        // Only when the route itself is well-formed: an unknown group already
        // explains why it reaches nothing.
        if !sources.is_empty() && !reachable && cx.errors.len() == errors_before {
            let why = match &to {
                RouteTargets::Neighbours => "none of its source groups has neighbours",
                _ => "it only sends to its own source groups",
            };
            cx.err(r.from.span(), format!("route {n} can never match: {why}"));
        }
        routes.push(Route {
            from,
            to,
            categories,
        });
    }

    // --- admin dashboard
    let admin = raw.admin.as_ref().and_then(|a| {
        let raw_token = &a.token;
        let token = secret(cx, &Some(raw_token.clone()), "admin.token")?;
        let t = token.expose();
        if t.chars().count() < ADMIN_TOKEN_MIN_LEN {
            cx.err(
                raw_token.span(),
                format!("admin.token must be at least {ADMIN_TOKEN_MIN_LEN} characters (e.g. `openssl rand -hex 24`)"),
            );
            return None;
        }
        if t.chars().any(|c| c.is_whitespace() || c.is_control()) {
            cx.err(
                raw_token.span(),
                "admin.token must not contain spaces or control characters",
            );
            return None;
        }
        Some(Admin { token })
    });

    let rules = rules?;
    Some(Config {
        file: path.to_path_buf(),
        network,
        server,
        relay,
        delivery,
        accounts,
        groups,
        rules: Arc::new(
            Judge::new(rules, model, band).with_describe_behaviour(raw_describe_behaviour),
        ),
        texts,
        routes,
        admin,
        warnings,
        notes,
        by_id,
        by_chat,
    })
}

const PLACEHOLDERS: [&str; 9] = [
    "village", "name", "text", "number", "numbers", "command", "count", "groups", "time",
];

fn check_placeholders(cx: &mut Cx, v: &Spanned<String>, key: &str) {
    let s = v.get_ref();
    let mut rest = s.as_str();
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            cx.err(v.span(), format!("{key}: `{{` without `}}`"));
            return;
        };
        let name = &after[..close];
        if !PLACEHOLDERS.contains(&name) {
            cx.err(
                v.span(),
                format!("{key}: unknown placeholder {{{name}}} (use {{village}}, {{name}}, {{text}}, {{number}}, {{numbers}}, {{command}}, {{count}}, {{groups}}, {{time}})"),
            );
        }
        rest = &after[close + 1..];
    }
}
