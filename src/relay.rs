//! The heart: an inbound message → decisions. Pure: a function of the
//! config, what the store knows about the message's thread ([`Known`],
//! looked up by the ingest before deciding), the message and the time; I/O
//! stays with the caller.
//!
//! - Messages of our own accounts and of bots: nothing (no loops).
//! - A coordinator command (`/intrekken`, `/doorsturen`, `/status`, in any
//!   configured language): run for the group's coordinators, answered
//!   politely for anyone else ([`commands`]).
//! - An edit of an alert: every copy is edited (or corrected by a reply).
//! - A reply to an alert, to one of its copies or to a follow-up: a
//!   follow-up to every copy and to the original; an all-clear ("vals
//!   alarm") is marked as such; a confirmation releases a held alert
//!   ([`thread`]).
//! - Not an alert (chit-chat, advice, bulletins): nothing.
//! - An alert that does not say the police were called, from a member (not a
//!   coordinator, not police): a friendly reminder as a reply. The store
//!   enforces the cooldown atomically.
//! - The alert itself: forwarded to the routed groups when confirmed, or when
//!   posted by a coordinator or the police; otherwise as `relay.unconfirmed`
//!   says: forwarded with a note, held, or dropped. The same incident
//!   reported again (in another group, or copied by hand) within
//!   `relay.merge_window` joins the first report's thread as an "ook gemeld
//!   in" reply instead of a second fan-out ([`similar`]).

mod commands;
pub mod similar;
mod thread;

use std::collections::HashSet;
use std::sync::LazyLock;

use regex::Regex;
use serde::Serialize;

pub use commands::{CommandKind, parse_command};

use crate::config::{Attribution, Config, Group, GroupId, MediaPolicy, Unconfirmed};
use crate::message::InboundMessage;
use crate::protocol::Classification;
use crate::routing;
use crate::store::{AlertChange, AlertRecord, HeldAlert, TargetDelivery, sender_hash};

/// The relay's answer to one message: the classification and the actions.
#[derive(Clone, Debug, Serialize)]
pub struct Decision {
    pub alert: bool,
    pub categories: Vec<String>,
    pub confirmed: bool,
    pub advisory: bool,
    /// The alert score, 0 to 1 (see [`Classification::score`]).
    pub score: f32,
    /// In the band of doubt: the coordinators are asked (a `review` action).
    pub uncertain: bool,
    /// Describes a person only by looks: the member is asked what the
    /// person did, and nothing is forwarded yet.
    pub looks_only: bool,
    /// What weighed most (filled for admins: `simulate`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub why: Vec<String>,
    /// `member`, `coordinator`, `police`, or `relay` (our own or a bot).
    pub role: &'static str,
    pub actions: Vec<Action>,
    /// What the decision changes in the thread map (not shown by `simulate`).
    #[serde(skip)]
    pub effects: Effects,
}

/// The thread map changes of one decision.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Effects {
    /// The thread this message belongs to from now on: it is linked, so a
    /// reply to it is followed too.
    pub thread: Option<String>,
    /// Changes to that thread's alert record.
    pub changes: Vec<AlertChange>,
    /// The hold this decision concerns: (origin, until_ms). Follow-ups of a
    /// held alert wait with it unless the decision releases it.
    pub hold: Option<(String, u64)>,
    /// A new thread: the message itself (an alert), or the message a
    /// coordinator forwards.
    pub record: Option<Box<AlertRecord>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Action {
    /// Reply to the member's message with the reminder.
    Remind {
        group: GroupId,
        reply_to: String,
        text: String,
        /// Per member; internal (holds a platform user id), never shown.
        #[serde(skip)]
        cooldown_key: String,
    },
    /// Post a copy in another group.
    Forward {
        group: GroupId,
        text: String,
        /// The thread the copy belongs to.
        #[serde(skip)]
        thread: Option<String>,
    },
    /// Keep the alert until it is confirmed or `hold_for` passes.
    Hold {
        group: GroupId,
        until_ms: u64,
        targets: Vec<GroupId>,
    },
    /// A reply to the thread's copy in `group` (looked up when it is sent),
    /// or to the message `reply_to` (the original, in its own group).
    #[serde(rename = "followup")]
    FollowUp {
        group: GroupId,
        text: String,
        #[serde(skip)]
        thread: String,
        #[serde(skip)]
        reply_to: Option<String>,
    },
    /// Replace the text of the thread's copy in `group`; where the platform
    /// cannot, reply to it with `fallback`.
    Edit {
        group: GroupId,
        text: String,
        #[serde(skip)]
        fallback: String,
        #[serde(skip)]
        thread: String,
    },
    /// Delete the thread's copy in `group`; where the platform cannot,
    /// reply to it with `fallback`.
    Delete {
        group: GroupId,
        #[serde(skip)]
        fallback: String,
        #[serde(skip)]
        thread: String,
    },
    /// End the hold of the thread now: forward it (with `copies` instead of
    /// the stored ones, when given) or not.
    Release {
        group: GroupId,
        forward: bool,
        #[serde(skip)]
        copies: Option<Vec<(GroupId, String)>>,
    },
    /// New texts for the copies of a held alert (its original was edited).
    Rewrite {
        group: GroupId,
        #[serde(skip)]
        copies: Vec<(GroupId, String)>,
    },
    /// The message is in the band of doubt: ask the group's coordinators,
    /// as a reply to it in the group, whether it should go to the other
    /// villages (they answer with the forward command).
    Review {
        group: GroupId,
        /// Who is asked: the group's coordinators, by role (never an id).
        ask: String,
        text: String,
        #[serde(skip)]
        reply_to: String,
    },
    /// Answer a coordinator's command, as a reply, in its group.
    Answer {
        group: GroupId,
        text: String,
        #[serde(skip)]
        reply_to: String,
    },
    /// Nothing, and why.
    None { group: GroupId, reason: String },
}

impl Action {
    /// The `kind` a summary shows (as serialized).
    pub fn kind(&self) -> &'static str {
        match self {
            Action::Remind { .. } => "remind",
            Action::Forward { .. } => "forward",
            Action::Hold { .. } => "hold",
            Action::FollowUp { .. } => "followup",
            Action::Edit { .. } => "edit",
            Action::Delete { .. } => "delete",
            Action::Release { .. } => "release",
            Action::Rewrite { .. } => "rewrite",
            Action::Answer { .. } => "answer",
            Action::Review { .. } => "review",
            Action::None { .. } => "none",
        }
    }

    pub fn group(&self) -> &GroupId {
        match self {
            Action::Remind { group, .. }
            | Action::Forward { group, .. }
            | Action::Hold { group, .. }
            | Action::FollowUp { group, .. }
            | Action::Edit { group, .. }
            | Action::Delete { group, .. }
            | Action::Release { group, .. }
            | Action::Rewrite { group, .. }
            | Action::Answer { group, .. }
            | Action::Review { group, .. }
            | Action::None { group, .. } => group,
        }
    }
}

impl Decision {
    pub fn classification(&self) -> Classification {
        Classification {
            alert: self.alert,
            categories: self.categories.clone(),
            confirmed: self.confirmed,
            advisory: self.advisory,
            score: self.score,
            uncertain: self.uncertain,
            looks_only: self.looks_only,
        }
    }

    fn new(role: &'static str, c: &Classification, actions: Vec<Action>) -> Decision {
        Decision {
            alert: c.alert,
            categories: c.categories.clone(),
            confirmed: c.confirmed,
            advisory: c.advisory,
            score: c.score,
            uncertain: c.uncertain,
            looks_only: c.looks_only,
            why: Vec::new(),
            role,
            actions,
            effects: Effects::default(),
        }
    }

    fn none(role: &'static str, c: &Classification, group: &Group, reason: &str) -> Decision {
        Self::new(
            role,
            c,
            vec![Action::None {
                group: group.id.clone(),
                reason: reason.to_string(),
            }],
        )
    }
}

/// What the store knows that matters for one message: looked up by the
/// ingest before deciding (see `thread_map::known`).
#[derive(Clone, Debug, Default)]
pub struct Known {
    /// The thread of the message this one replies to: the original, one of
    /// its copies, or a follow-up.
    pub replied: Option<Thread>,
    /// For an edit: the thread this very message began (it was an alert).
    pub edited: Option<Thread>,
    /// Alerts of the last `relay.merge_window`, newest first.
    pub recent: Vec<Thread>,
    /// This sender's alert held in this group now, if any.
    pub senders_hold: Option<Thread>,
    /// For `/status`: the network's last alerts and where each copy stands.
    pub status: Vec<StatusItem>,
    /// The message's classification, when the lookup needed it already
    /// (only an alert is compared with recent ones): computed once.
    pub classified: Option<Classification>,
}

/// One alert thread as the relay sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Thread {
    pub alert: AlertRecord,
    /// Held now: the copies (and follow-ups) waiting.
    pub held: Option<HeldAlert>,
    /// Groups other than the origin that have or will have a copy (sent,
    /// queued or retrying).
    pub reached: Vec<GroupId>,
}

impl Thread {
    /// Every group with (or getting) a copy: the alert's targets and any
    /// group reached, without the origin.
    pub fn copy_groups(&self) -> Vec<GroupId> {
        let mut v: Vec<GroupId> = Vec::new();
        let held = self
            .held
            .iter()
            .flat_map(|h| h.outbox.iter().map(|m| &m.group));
        for g in self.alert.targets.iter().chain(&self.reached).chain(held) {
            if *g != self.alert.group && !v.contains(g) {
                v.push(g.clone());
            }
        }
        v
    }
}

/// One line of `/status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusItem {
    pub alert: AlertRecord,
    pub targets: Vec<TargetDelivery>,
}

fn role_of(group: &Group, msg: &InboundMessage) -> &'static str {
    // An anonymous Telegram admin counts as a coordinator where the
    // account says so (the adapter sets `group_admin` only then).
    // A WhatsApp member may be listed by phone JID or by `@lid`: both count.
    let listed = |set: &std::collections::BTreeSet<String>| {
        set.contains(&msg.sender.id)
            || msg
                .extra
                .sender_lid
                .as_ref()
                .is_some_and(|l| set.contains(l))
    };
    if listed(&group.coordinators) || msg.extra.group_admin {
        "coordinator"
    } else if listed(&group.police) {
        "police"
    } else {
        "member"
    }
}

const NOT_AN_ALERT: Classification = Classification {
    alert: false,
    categories: Vec::new(),
    confirmed: false,
    advisory: false,
    score: 0.0,
    uncertain: false,
    looks_only: false,
};

/// Decides what to do with `msg`, posted in `group`. `own_ids` are the user
/// ids our accounts post under; `known` is what the store knows about the
/// message's thread.
pub fn decide(
    cfg: &Config,
    group: &Group,
    msg: &InboundMessage,
    own_ids: &HashSet<String>,
    known: &Known,
    now_ms: u64,
) -> Decision {
    if own_ids.contains(&msg.sender.id) || msg.sender.is_bot {
        return Decision::none(
            "relay",
            &NOT_AN_ALERT,
            group,
            "written by a bot or by the relay itself: never relayed",
        );
    }
    let role = role_of(group, msg);
    if let Some(cmd) = parse_command(cfg, &msg.text) {
        if msg.edit.is_some() {
            return Decision::none(
                role,
                &NOT_AN_ALERT,
                group,
                "an edited command is not run again",
            );
        }
        return commands::decide(cfg, group, msg, role, cmd, own_ids, known, now_ms);
    }
    if msg.edit.is_some() {
        return thread::edit(cfg, group, msg, role, known);
    }
    let c = known
        .classified
        .clone()
        .unwrap_or_else(|| cfg.rules.classify(&msg.text));
    if let Some(t) = &known.replied {
        return thread::reply(cfg, group, msg, role, &c, t);
    }
    if let Some(t) = &known.senders_hold {
        if cfg.rules.confirms_followup(&msg.text) {
            return thread::sender_confirms(cfg, group, msg, role, &c, t);
        }
    }
    if let Some(added) = adds_behaviour(cfg, msg) {
        // The member answers our question about their own looks-only
        // report: the two together are the alert.
        let c = cfg.rules.classify(&added.text);
        return fresh(cfg, group, &added, role, c, known, now_ms);
    }
    fresh(cfg, group, msg, role, c, known, now_ms)
}

/// A member's reply to their own report that described a person only by
/// looks (which was not forwarded): the report and the reply as one
/// message, when together they describe what the person did.
fn adds_behaviour(cfg: &Config, msg: &InboundMessage) -> Option<InboundMessage> {
    let q = msg.quoted.as_ref()?;
    if q.sender.as_ref()?.id != msg.sender.id || !cfg.rules.classify(&q.text).looks_only {
        return None;
    }
    let mut both = msg.clone();
    both.text = format!("{}\n{}", q.text.trim(), msg.text.trim());
    let c = cfg.rules.classify(&both.text);
    (c.alert && !c.looks_only).then_some(both)
}

/// A message that is no reply to a thread: an alert starts one.
fn fresh(
    cfg: &Config,
    group: &Group,
    msg: &InboundMessage,
    role: &'static str,
    c: Classification,
    known: &Known,
    now_ms: u64,
) -> Decision {
    if c.uncertain && role == "member" {
        // Neither forwarded nor ignored: a person decides.
        return Decision::new(role, &c, vec![review(cfg, group, msg)]);
    }
    if c.alert && c.looks_only && role == "member" {
        // Describe behaviour, not appearance: nothing is forwarded until
        // the member says what the person did (a reply to their own
        // report) or a coordinator forwards it.
        let t = cfg.texts_for(group);
        let name = attribution(cfg, msg);
        let ask = fill(&t.describe_behaviour, cfg, &group.name, name.as_deref(), "");
        return Decision::new(
            role,
            &c,
            vec![
                Action::Answer {
                    group: group.id.clone(),
                    text: ask,
                    reply_to: msg.message_id.clone(),
                },
                Action::None {
                    group: group.id.clone(),
                    reason: "describes a person only by looks: held until the member says what the person did, or a coordinator forwards it".into(),
                },
            ],
        );
    }
    if !c.alert {
        let reason = if c.advisory {
            "advice or bulletin, not a member's report"
        } else {
            "not an alert"
        };
        return Decision::none(role, &c, group, reason);
    }

    let mut actions = Vec::new();
    let member = role == "member";
    // Whoever forwards someone else's message did not see it happen: no
    // reminder to them (the copy still says the call is not mentioned).
    if member && !c.confirmed && !msg.extra.forwarded {
        actions.push(remind(cfg, group, msg));
    }
    let targets = routing::targets(cfg, group, &c.categories);
    let forward_now = c.confirmed || !member || cfg.relay.unconfirmed == Unconfirmed::Forward;
    let hold = !forward_now && cfg.relay.unconfirmed == Unconfirmed::Hold;
    let origin = msg.message_ref();
    let mut record = AlertRecord {
        origin: origin.clone(),
        group: group.id.clone(),
        message_id: msg.message_id.clone(),
        categories: c.categories.clone(),
        confirmed: c.confirmed,
        at_ms: now_ms,
        targets: Vec::new(),
        text: msg.text.clone(),
        sender: sender_hash(msg.platform.chat_space(), &msg.sender.id),
        retracted: false,
        all_clear: false,
        sightings: Vec::new(),
        forced: false,
        topic: msg.extra.topic.clone(),
    };
    if !targets.is_empty() && (forward_now || hold) {
        if let Some(t) = similar::earlier_report(cfg, group, &msg.text, &known.recent, now_ms) {
            // One incident, one fan-out: the first report's thread hears
            // that it was seen here too.
            let mut d = Decision::new(role, &c, actions);
            d.actions.extend(thread::sighting(cfg, group, t));
            d.effects.thread = Some(t.alert.origin.clone());
            d.effects.changes = vec![AlertChange::Sighting(group.id.clone())];
            return d;
        }
    }
    if targets.is_empty() {
        actions.push(Action::None {
            group: group.id.clone(),
            reason: "no route sends this alert anywhere".into(),
        });
    } else if forward_now {
        let text = forward_text(cfg, group, msg, member && !c.confirmed);
        for t in &targets {
            actions.push(Action::Forward {
                group: t.clone(),
                text: text.clone(),
                thread: Some(origin.clone()),
            });
        }
        record.targets = targets;
    } else if hold {
        actions.push(Action::Hold {
            group: group.id.clone(),
            until_ms: now_ms + cfg.relay.hold_for.as_millis() as u64,
            targets: targets.clone(),
        });
        record.targets = targets;
    } else {
        actions.push(Action::None {
            group: group.id.clone(),
            reason: "unconfirmed alert not forwarded (relay.unconfirmed = \"drop\")".into(),
        });
    }
    let mut d = Decision::new(role, &c, actions);
    d.effects.thread = Some(origin);
    d.effects.record = Some(Box::new(record));
    d
}

fn review(cfg: &Config, group: &Group, msg: &InboundMessage) -> Action {
    let t = cfg.texts_for(group);
    Action::Review {
        group: group.id.clone(),
        ask: format!("coordinators of {}", group.name),
        text: t
            .review
            .replace("{command}", &t.command_forward)
            .replace("{village}", &group.name),
        reply_to: msg.message_id.clone(),
    }
}

fn remind(cfg: &Config, group: &Group, msg: &InboundMessage) -> Action {
    Action::Remind {
        group: group.id.clone(),
        reply_to: msg.message_id.clone(),
        text: reminder_text(cfg, group, msg),
        // By chat space: a WhatsApp member is one member through WAHA or Evolution.
        // Keyed hash: the store never holds the member's number.
        cooldown_key: sender_hash(msg.platform.chat_space(), &msg.sender.id),
    }
}

/// The member's name as the config allows it: never a phone number or id.
pub fn attribution(cfg: &Config, msg: &InboundMessage) -> Option<String> {
    attribution_of(cfg, msg.sender.name.as_deref())
}

/// A display name as the config allows it in copies: never a number or id.
pub fn attribution_of(cfg: &Config, name: Option<&str>) -> Option<String> {
    let name = name?.trim();
    if name.is_empty()
        || name
            .chars()
            .any(|c| c.is_ascii_digit() || c == '@' || c == '+')
    {
        return None;
    }
    let picked: String = match cfg.relay.attribution {
        Attribution::None => return None,
        Attribution::FirstName => name.split_whitespace().next()?.to_string(),
        Attribution::FullName => name.split_whitespace().collect::<Vec<_>>().join(" "),
    };
    Some(picked.chars().take(40).collect())
}

static PHONE: LazyLock<Regex> = LazyLock::new(|| {
    // International (+32 475 12 34 56, 0032...) and national (0475/12.34.56,
    // 011 12 34 56) numbers: 8+ digits with the usual separators.
    Regex::new(r"(?:\+|\b00)\d(?:[ ./-]?\d){7,13}\b|\b0\d(?:[ ./-]?\d){7,9}\b")
        .expect("static regex")
});

/// Hides phone numbers in a text.
pub fn mask_phone_numbers(text: &str) -> String {
    PHONE.replace_all(text, "[☎]").into_owned()
}

fn fill(template: &str, cfg: &Config, village: &str, name: Option<&str>, text: &str) -> String {
    let (number, numbers) = cfg.numbers_text();
    let name = name.map(|n| format!(" {n}")).unwrap_or_default();
    template
        .replace("{village}", village)
        .replace("{name}", &name)
        .replace("{number}", &number)
        .replace("{numbers}", &numbers)
        .replace("{text}", text)
}

/// A member's text as copies show it: trimmed, phone numbers masked when
/// the config says so.
fn body(cfg: &Config, text: &str) -> String {
    let body = text.trim();
    if cfg.relay.mask_phone_numbers {
        mask_phone_numbers(body)
    } else {
        body.to_string()
    }
}

pub fn forward_text(
    cfg: &Config,
    origin: &Group,
    msg: &InboundMessage,
    unconfirmed: bool,
) -> String {
    // A forwarded message is named after the member who brought it into
    // the group (never its first author, who may be no member at all) and
    // marked with ↪️, so readers know it is hearsay from elsewhere.
    let text;
    let body = if msg.extra.forwarded {
        text = format!("↪️ {}", msg.text.trim());
        &text
    } else {
        &msg.text
    };
    let mut out = copy_text(cfg, origin, attribution(cfg, msg).as_deref(), body, false);
    // A photo that does not travel is announced, before the note that ends
    // an unconfirmed copy (a confirmation strips that note off the end).
    if msg.extra.media.is_some() && cfg.relay.media == MediaPolicy::Caption {
        let note = photo_note(cfg, origin);
        if !note.is_empty() {
            out.push('\n');
            out.push_str(&note);
        }
    }
    if unconfirmed && !cfg.texts_for(origin).unconfirmed_note.is_empty() {
        out.push('\n');
        out.push_str(&unconfirmed_note(cfg, origin));
    }
    out
}

/// The line that says a photo was posted with the alert in `origin`.
pub fn photo_note(cfg: &Config, origin: &Group) -> String {
    fill(
        &cfg.texts_for(origin).photo_note,
        cfg,
        &origin.name,
        None,
        "",
    )
}

/// The copy of an alert with `text`, by `name` (already as attributed).
fn copy_text(
    cfg: &Config,
    origin: &Group,
    name: Option<&str>,
    text: &str,
    unconfirmed: bool,
) -> String {
    let texts = cfg.texts_for(origin);
    let mut out = fill(&texts.forward, cfg, &origin.name, name, &body(cfg, text));
    if unconfirmed && !texts.unconfirmed_note.is_empty() {
        out.push('\n');
        out.push_str(&unconfirmed_note(cfg, origin));
    }
    out
}

/// The note under a copy of an unconfirmed alert.
fn unconfirmed_note(cfg: &Config, origin: &Group) -> String {
    fill(
        &cfg.texts_for(origin).unconfirmed_note,
        cfg,
        &origin.name,
        None,
        "",
    )
}

pub fn reminder_text(cfg: &Config, group: &Group, msg: &InboundMessage) -> String {
    let texts = cfg.texts_for(group);
    let name = attribution(cfg, msg);
    fill(&texts.reminder, cfg, &group.name, name.as_deref(), "")
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::{AccountId, ChatId, PlatformKind};
    use crate::message::Sender;

    const CFG: &str = r#"
[accounts.sandbox]
platform = "sandbox"
[[groups]]
id = "veulen"
name = "Veulen"
account = "sandbox"
chat = "veulen"
coordinators = ["coord"]
police = ["wijkagent"]
[[groups]]
id = "heers"
name = "Heers"
account = "sandbox"
chat = "heers"
[[groups]]
id = "opheers"
name = "Opheers"
account = "sandbox"
chat = "opheers"
"#;

    fn cfg(extra: &str) -> Config {
        Config::parse(&format!("{extra}\n{CFG}"), Path::new("t.toml")).unwrap()
    }

    fn msg(sender: &str, name: Option<&str>, text: &str) -> InboundMessage {
        InboundMessage {
            account: AccountId::parse("sandbox").unwrap(),
            platform: PlatformKind::Sandbox,
            chat: ChatId::parse("veulen").unwrap(),
            message_id: "7".into(),
            sender: Sender {
                id: sender.into(),
                name: name.map(str::to_string),
                is_bot: false,
            },
            text: text.into(),
            reply_to: None,
            at_ms: 0,
            edit: None,
            quoted: None,
            extra: Default::default(),
        }
    }

    fn run(c: &Config, m: &InboundMessage) -> Decision {
        let g = c.group(&GroupId::parse("veulen").unwrap()).unwrap();
        decide(
            c,
            g,
            m,
            &HashSet::from(["relay".to_string()]),
            &Known::default(),
            0,
        )
    }

    fn kinds(d: &Decision) -> Vec<String> {
        d.actions
            .iter()
            .map(|a| format!("{}:{}", a.kind(), a.group()))
            .collect()
    }

    const ALERT: &str = "Verdachte grijze bestelwagen rijdt traag door de Kerkstraat";

    #[test]
    fn a_message_in_the_band_of_doubt_asks_the_coordinators_instead_of_guessing() {
        // Every score in the band: whatever the model says, a person decides.
        let c = cfg("[protocol]\nreview_band = [0.0, 1.0]");
        let d = run(&c, &msg("jan", Some("Jan"), ALERT));
        assert!(d.uncertain);
        assert_eq!(kinds(&d), ["review:veulen"], "no forward, no reminder");
        let Action::Review {
            ask,
            text,
            reply_to,
            ..
        } = &d.actions[0]
        else {
            panic!("{:?}", d.actions)
        };
        assert_eq!(ask, "coordinators of Veulen");
        assert!(text.contains("/doorsturen"), "{text}");
        assert_eq!(reply_to, "7", "asked as a reply to the message");
        let json = serde_json::to_value(&d).unwrap();
        assert_eq!(json["actions"][0]["kind"], "review");
        assert!(json["score"].as_f64().is_some());
        // A coordinator's own message is not put to the coordinators.
        let d = run(&c, &msg("coord", Some("Co"), ALERT));
        assert!(!kinds(&d).iter().any(|k| k.starts_with("review")), "{d:?}");
    }

    #[test]
    fn an_admins_not_an_alert_pattern_forbids_what_the_model_would_forward() {
        assert!(run(&cfg(""), &msg("jan", None, ALERT)).alert);
        let c = cfg("[protocol]\nnot_an_alert = ['bestelwagen rijdt traag']");
        let d = run(&c, &msg("jan", None, ALERT));
        assert!(!d.alert && !d.uncertain, "{d:?}");
        assert_eq!(kinds(&d), ["none:veulen"]);
    }

    #[test]
    fn an_admins_category_pattern_forces_an_alert_the_model_would_not_see() {
        let text = "Het paard van Vanneste staat los op de steenweg";
        let c = cfg(
            "[protocol]\n[[protocol.categories]]\nname = 'loose_animal'\nlabel = 'loslopend dier'\npatterns = ['\\bstaat los\\b']",
        );
        let d = run(&c, &msg("jan", None, &format!("{text}, 101 gebeld")));
        assert!(d.alert, "{d:?}");
        assert_eq!(d.categories, ["loose_animal"]);
        assert!(kinds(&d).contains(&"forward:heers".to_string()));
    }

    #[test]
    fn a_report_of_looks_alone_is_held_and_the_member_asked_what_the_person_did() {
        let c = cfg("");
        let looks = "Een donkere man loopt in de straat";
        let d = run(&c, &msg("jan", Some("Jan"), looks));
        assert!(d.looks_only, "{d:?}");
        assert_eq!(
            kinds(&d),
            ["answer:veulen", "none:veulen"],
            "nothing forwarded"
        );
        let Action::Answer { text, .. } = &d.actions[0] else {
            panic!()
        };
        assert!(text.contains("Wat deed de persoon"), "{text}");
        // The member answers their own report with what the man did: the
        // two together go to the other villages.
        let mut reply = msg(
            "jan",
            Some("Jan"),
            "Hij probeert de deurklinken van de auto's op de parking, 101 gebeld",
        );
        reply.message_id = "8".into();
        reply.reply_to = Some("7".into());
        reply.quoted = Some(Box::new(crate::message::Quoted {
            text: looks.into(),
            sender: Some(reply.sender.clone()),
        }));
        let d = run(&c, &reply);
        assert!(d.alert && !d.looks_only, "{d:?}");
        let Some(Action::Forward { text, .. }) = d.actions.first() else {
            panic!("{:?}", d.actions)
        };
        assert!(
            text.contains(looks) && text.contains("deurklinken"),
            "{text}"
        );
        // Someone else's answer does not release it.
        let mut other = reply.clone();
        other.sender.id = "piet".into();
        assert!(
            run(&c, &other)
                .actions
                .iter()
                .all(|a| !matches!(a, Action::Forward { text, .. } if text.contains(looks)))
        );
        // A network can switch the question off.
        let off = cfg("[protocol]\ndescribe_behaviour = false");
        let d = run(&off, &msg("jan", Some("Jan"), looks));
        assert!(!d.looks_only);
        assert!(kinds(&d).contains(&"forward:heers".to_string()), "{d:?}");
    }

    #[test]
    fn without_the_model_the_rules_decide_alone() {
        let c = cfg("[protocol]\nmodel = 'none'");
        let d = run(&c, &msg("jan", None, ALERT));
        assert!(d.alert && !d.uncertain);
        assert_eq!(d.score, 1.0);
    }

    #[test]
    fn a_bad_band_or_model_file_is_a_config_error_with_its_place() {
        let e = Config::parse(
            &format!("[protocol]\nreview_band = [0.7, 0.2]\n{CFG}"),
            Path::new("t.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("t.toml:2:") && e.contains("review_band"), "{e}");
        let e = Config::parse(
            &format!("[protocol]\nmodel = 'no/such/model.bin'\n{CFG}"),
            Path::new("t.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("protocol.model") && e.contains("no/such/model.bin"),
            "{e}"
        );
    }

    #[test]
    fn a_confirmed_alert_goes_to_every_other_village_with_its_name() {
        let c = cfg("");
        let d = run(
            &c,
            &msg(
                "m1",
                Some("Jan Peeters"),
                &format!("{ALERT}, 101 is verwittigd"),
            ),
        );
        assert_eq!(kinds(&d), ["forward:heers", "forward:opheers"]);
        let Action::Forward { text, .. } = &d.actions[0] else {
            panic!()
        };
        assert!(text.starts_with("[Veulen] Jan: Verdachte"), "{text}");
        assert!(!text.contains("Peeters"));
    }

    #[test]
    fn an_unconfirmed_alert_from_a_member_gets_a_reminder_and_is_forwarded_with_a_note() {
        let c = cfg("");
        let d = run(&c, &msg("m1", Some("Jan"), ALERT));
        assert_eq!(
            kinds(&d),
            ["remind:veulen", "forward:heers", "forward:opheers"]
        );
        let Action::Remind { text, reply_to, .. } = &d.actions[0] else {
            panic!()
        };
        assert!(text.contains("101"), "{text}");
        assert_eq!(reply_to, "7");
        let Action::Forward { text, .. } = &d.actions[1] else {
            panic!()
        };
        assert!(text.contains("niet vermeld"), "{text}");
    }

    #[test]
    fn coordinators_and_police_are_never_reminded() {
        let c = cfg("");
        assert_eq!(
            kinds(&run(&c, &msg("coord", None, ALERT))),
            ["forward:heers", "forward:opheers"]
        );
        assert_eq!(
            kinds(&run(&c, &msg("wijkagent", None, ALERT))),
            ["forward:heers", "forward:opheers"]
        );
    }

    #[test]
    fn with_hold_an_unconfirmed_alert_waits() {
        let c = cfg("[relay]\nunconfirmed = \"hold\"\nhold_for = \"10m\"");
        let d = run(&c, &msg("m1", None, ALERT));
        assert_eq!(kinds(&d), ["remind:veulen", "hold:veulen"]);
    }

    #[test]
    fn with_drop_an_unconfirmed_alert_stays_in_its_group() {
        let c = cfg("[relay]\nunconfirmed = \"drop\"");
        assert_eq!(
            kinds(&run(&c, &msg("m1", None, ALERT))),
            ["remind:veulen", "none:veulen"]
        );
    }

    #[test]
    fn chit_chat_is_neither_forwarded_nor_answered() {
        let c = cfg("");
        for t in [
            "Onze kat is weg",
            "👍 bedankt",
            "Verdacht lekker weer vandaag",
        ] {
            assert_eq!(kinds(&run(&c, &msg("m1", None, t))), ["none:veulen"], "{t}");
        }
    }

    #[test]
    fn our_own_messages_and_bots_are_never_relayed() {
        let c = cfg("");
        assert_eq!(kinds(&run(&c, &msg("relay", None, ALERT))), ["none:veulen"]);
        let mut bot = msg("other-bot", None, ALERT);
        bot.sender.is_bot = true;
        assert_eq!(kinds(&run(&c, &bot)), ["none:veulen"]);
    }

    #[test]
    fn a_phone_number_as_display_name_is_never_shown() {
        let c = cfg("");
        let d = run(
            &c,
            &msg(
                "m1",
                Some("+32 475 12 34 56"),
                &format!("{ALERT}, 101 gebeld"),
            ),
        );
        let Action::Forward { text, .. } = &d.actions[0] else {
            panic!()
        };
        assert!(text.starts_with("[Veulen]: Verdachte"), "{text}");
    }

    #[test]
    fn phone_numbers_in_the_text_are_masked() {
        assert_eq!(
            mask_phone_numbers("bel me op 0475 12 34 56 of +32 11 12 34 56, 101 gebeld"),
            "bel me op [☎] of [☎], 101 gebeld"
        );
        assert_eq!(
            mask_phone_numbers("plaat 1-ABC-234 om 22u30"),
            "plaat 1-ABC-234 om 22u30"
        );
    }

    #[test]
    fn attribution_none_names_only_the_village() {
        let c = cfg("[relay]\nattribution = \"none\"");
        let d = run(&c, &msg("m1", Some("Jan"), &format!("{ALERT}, 101 gebeld")));
        let Action::Forward { text, .. } = &d.actions[0] else {
            panic!()
        };
        assert!(!text.contains("Jan"), "{text}");
    }
}
