//! The TOML file as written by an admin, before validation. Every field an
//! error may point at is `Spanned`, so `check-config` can say `file:line:col`.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub network: RawNetwork,
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub relay: RawRelay,
    #[serde(default)]
    pub delivery: RawDelivery,
    #[serde(default)]
    pub accounts: BTreeMap<Spanned<String>, RawAccount>,
    #[serde(default)]
    pub groups: Vec<RawGroup>,
    pub protocol: Option<RawProtocol>,
    #[serde(default)]
    pub texts: BTreeMap<Spanned<String>, RawTexts>,
    #[serde(default)]
    pub routes: Vec<RawRoute>,
    pub admin: Option<RawAdmin>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNetwork {
    pub name: Option<Spanned<String>>,
    pub language: Option<Spanned<String>>,
    pub emergency_numbers: Option<Spanned<Vec<String>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub listen: Option<Spanned<String>>,
    pub data_dir: Option<Spanned<String>>,
    pub max_body_bytes: Option<Spanned<i64>>,
    pub reload_poll: Option<Spanned<String>>,
    pub log_format: Option<Spanned<String>>,
    pub sender_hash_key: Option<Spanned<String>>,
    pub allow_public_sandbox: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRelay {
    pub unconfirmed: Option<Spanned<String>>,
    pub hold_for: Option<Spanned<String>>,
    pub on_hold_timeout: Option<Spanned<String>>,
    pub reminder_cooldown: Option<Spanned<String>>,
    pub attribution: Option<Spanned<String>>,
    pub mask_phone_numbers: Option<bool>,
    pub retention: Option<Spanned<String>>,
    /// The same incident reported again within this window is one thread.
    pub merge_window: Option<Spanned<String>>,
    /// What travels of an alert's photo: "caption" or "forward".
    pub media: Option<Spanned<String>>,
    /// A photo larger than this travels as its caption (with the note).
    pub media_max_bytes: Option<Spanned<i64>>,
    /// How long fetching and posting one photo may take.
    pub media_timeout: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDelivery {
    pub send_timeout: Option<Spanned<String>>,
    pub retry_base: Option<Spanned<String>>,
    pub retry_max: Option<Spanned<String>>,
    pub max_age: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAccount {
    pub platform: Spanned<String>,
    pub api_url: Option<Spanned<String>>,
    pub token: Option<Spanned<String>>,
    pub webhook_secret: Option<Spanned<String>>,
    /// The name the relay posts under in sandbox groups.
    pub display_name: Option<Spanned<String>>,
    /// Send limits per chat, e.g. ["1/1s", "20/1m"] (platform default if absent).
    pub per_chat_limits: Option<Spanned<Vec<String>>>,
    /// Send limits for the whole account, e.g. ["30/1s"].
    pub per_account_limits: Option<Spanned<Vec<String>>>,
    /// At most this many sends of this account at once (different chats).
    pub max_in_flight: Option<Spanned<i64>>,
    /// WAHA: the session that sends (default "default").
    pub session: Option<Spanned<String>>,
    /// Evolution API: the instance that sends.
    pub instance: Option<Spanned<String>>,
    /// WhatsApp Cloud API: the business number's id.
    pub phone_number_id: Option<Spanned<String>>,
    /// WhatsApp Cloud API: the token of the GET verification handshake.
    pub verify_token: Option<Spanned<String>>,
    /// Telegram: what a group admin posting anonymously is ("coordinator"
    /// or "member"; default "coordinator").
    pub anonymous_admins: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGroup {
    pub id: Spanned<String>,
    pub name: Spanned<String>,
    pub account: Spanned<String>,
    pub chat: Spanned<toml::Value>,
    #[serde(default)]
    pub coordinators: Vec<Spanned<toml::Value>>,
    #[serde(default)]
    pub police: Vec<Spanned<toml::Value>>,
    #[serde(default)]
    pub neighbours: Vec<Spanned<String>>,
    pub language: Option<Spanned<String>>,
    /// Telegram forum groups: the topic (`message_thread_id`) copies go to.
    pub topic: Option<Spanned<i64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProtocol {
    /// Keep the built-in Flemish/French/English rules and add these (default true).
    pub builtin: Option<bool>,
    /// The learned model: "builtin" (default), "none" (rules only), or the
    /// path of a model file (relative to the config file).
    pub model: Option<Spanned<String>>,
    /// The band of doubt [low, high): alert scores in it go to a person.
    pub review_band: Option<Spanned<Vec<f64>>>,
    /// Ask what a person did when an alert describes only looks (default true).
    pub describe_behaviour: Option<bool>,
    #[serde(default)]
    pub macros: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    pub categories: Vec<RawCategory>,
    #[serde(default)]
    pub not_an_alert: Vec<Spanned<String>>,
    #[serde(default)]
    pub police: RawPolice,
    /// A reply that says an alert is over: false alarm, a harmless
    /// explanation, all clear ("vals alarm", "het was de buurman").
    #[serde(default)]
    pub all_clear: Vec<Spanned<String>>,
    /// Sentences that deny an all-clear ("dit is geen vals alarm").
    #[serde(default)]
    pub not_all_clear: Vec<Spanned<String>>,
    /// A reply not worth relaying to every group ("bedankt", "👍", "waar?").
    #[serde(default)]
    pub not_a_followup: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCategory {
    pub name: Spanned<String>,
    pub label: Option<String>,
    #[serde(default)]
    pub patterns: Vec<Spanned<String>>,
    #[serde(default)]
    pub unless: Vec<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPolice {
    #[serde(default)]
    pub called: Vec<Spanned<String>>,
    #[serde(default)]
    pub not_called: Vec<Spanned<String>>,
    #[serde(default)]
    pub question: Vec<Spanned<String>>,
    /// Short confirmations that count only as the sender's follow-up to
    /// their own alert ("ja, gebeld", "gedaan").
    #[serde(default)]
    pub called_followup: Vec<Spanned<String>>,
}

/// `[texts.LANG]`: every key optional (a built-in language keeps the
/// built-in text for what is not given). The list of keys is
/// [`crate::config::Texts::KEYS`].
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTexts {
    pub reminder: Option<Spanned<String>>,
    pub unconfirmed_note: Option<Spanned<String>>,
    pub forward: Option<Spanned<String>>,
    pub followup: Option<Spanned<String>>,
    pub all_clear: Option<Spanned<String>>,
    pub corrected: Option<Spanned<String>>,
    pub retracted: Option<Spanned<String>>,
    pub also_reported: Option<Spanned<String>>,
    pub photo_note: Option<Spanned<String>>,
    pub command_retract: Option<Spanned<String>>,
    pub command_forward: Option<Spanned<String>>,
    pub command_status: Option<Spanned<String>>,
    pub not_coordinator: Option<Spanned<String>>,
    pub reply_needed: Option<Spanned<String>>,
    pub retract_done: Option<Spanned<String>>,
    pub retract_held: Option<Spanned<String>>,
    pub already_retracted: Option<Spanned<String>>,
    pub forward_done: Option<Spanned<String>>,
    pub already_forwarded: Option<Spanned<String>>,
    pub cannot_forward: Option<Spanned<String>>,
    pub status_header: Option<Spanned<String>>,
    pub status_line: Option<Spanned<String>>,
    pub status_empty: Option<Spanned<String>>,
    pub review: Option<Spanned<String>>,
    pub describe_behaviour: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub from: Spanned<toml::Value>,
    pub to: Spanned<toml::Value>,
    pub categories: Option<Spanned<toml::Value>>,
}

/// `[admin]`: the dashboard at `/admin`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    /// Bearer token for `/admin` (`"env:NAME"` allowed). No `[admin]`: no dashboard.
    pub token: Spanned<String>,
}
