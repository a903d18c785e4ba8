//! The heart: an inbound message → decisions. Pure: a function of the
//! config, the message and the time; I/O stays with the caller.
//!
//! - Messages of our own accounts and of bots: nothing (no loops).
//! - Not an alert (chit-chat, advice, bulletins): nothing.
//! - An alert that does not say the police were called, from a member (not a
//!   coordinator, not police): a friendly reminder as a reply. The store
//!   enforces the cooldown atomically.
//! - The alert itself: forwarded to the routed groups when confirmed, or when
//!   posted by a coordinator or the police; otherwise as `relay.unconfirmed`
//!   says: forwarded with a note, held, or dropped.

use std::collections::HashSet;
use std::sync::LazyLock;

use regex::Regex;
use serde::Serialize;

use crate::config::{Attribution, Config, Group, GroupId, Unconfirmed};
use crate::message::InboundMessage;
use crate::protocol::Classification;
use crate::routing;

/// The relay's answer to one message: the classification and the actions.
#[derive(Clone, Debug, Serialize)]
pub struct Decision {
    pub alert: bool,
    pub categories: Vec<String>,
    pub confirmed: bool,
    pub advisory: bool,
    /// `member`, `coordinator`, `police`, or `relay` (our own or a bot).
    pub role: &'static str,
    pub actions: Vec<Action>,
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
    Forward { group: GroupId, text: String },
    /// Keep the alert until it is confirmed or `hold_for` passes.
    Hold {
        group: GroupId,
        until_ms: u64,
        targets: Vec<GroupId>,
    },
    /// Nothing, and why.
    None { group: GroupId, reason: String },
}

impl Decision {
    pub fn classification(&self) -> Classification {
        Classification {
            alert: self.alert,
            categories: self.categories.clone(),
            confirmed: self.confirmed,
            advisory: self.advisory,
        }
    }
}

/// Decides what to do with `msg`, posted in `group`. `own_ids` are the user
/// ids our accounts post under.
pub fn decide(
    cfg: &Config,
    group: &Group,
    msg: &InboundMessage,
    own_ids: &HashSet<String>,
    now_ms: u64,
) -> Decision {
    let none = |role, c: &Classification, reason: &str| Decision {
        alert: c.alert,
        categories: c.categories.clone(),
        confirmed: c.confirmed,
        advisory: c.advisory,
        role,
        actions: vec![Action::None {
            group: group.id.clone(),
            reason: reason.to_string(),
        }],
    };
    if own_ids.contains(&msg.sender.id) || msg.sender.is_bot {
        let c = Classification {
            alert: false,
            categories: vec![],
            confirmed: false,
            advisory: false,
        };
        return none(
            "relay",
            &c,
            "written by a bot or by the relay itself: never relayed",
        );
    }
    let c = cfg.rules.classify(&msg.text);
    let role = if group.coordinators.contains(&msg.sender.id) {
        "coordinator"
    } else if group.police.contains(&msg.sender.id) {
        "police"
    } else {
        "member"
    };
    if !c.alert {
        let reason = if c.advisory {
            "advice or bulletin, not a member's report"
        } else {
            "not an alert"
        };
        return none(role, &c, reason);
    }

    let mut actions = Vec::new();
    let member = role == "member";
    if member && !c.confirmed {
        actions.push(Action::Remind {
            group: group.id.clone(),
            reply_to: msg.message_id.clone(),
            text: reminder_text(cfg, group, msg),
            // By chat space: a WhatsApp member is one member through WAHA or Evolution.
            cooldown_key: format!("{}:{}", msg.platform.chat_space(), msg.sender.id),
        });
    }
    let targets = routing::targets(cfg, group, &c.categories);
    let forward_now = c.confirmed || !member || cfg.relay.unconfirmed == Unconfirmed::Forward;
    if targets.is_empty() {
        actions.push(Action::None {
            group: group.id.clone(),
            reason: "no route sends this alert anywhere".into(),
        });
    } else if forward_now {
        let text = forward_text(cfg, group, msg, member && !c.confirmed);
        for t in targets {
            actions.push(Action::Forward {
                group: t,
                text: text.clone(),
            });
        }
    } else if cfg.relay.unconfirmed == Unconfirmed::Hold {
        actions.push(Action::Hold {
            group: group.id.clone(),
            until_ms: now_ms + cfg.relay.hold_for.as_millis() as u64,
            targets,
        });
    } else {
        actions.push(Action::None {
            group: group.id.clone(),
            reason: "unconfirmed alert not forwarded (relay.unconfirmed = \"drop\")".into(),
        });
    }
    Decision {
        alert: c.alert,
        categories: c.categories.clone(),
        confirmed: c.confirmed,
        advisory: c.advisory,
        role,
        actions,
    }
}

/// The member's name as the config allows it: never a phone number or id.
pub fn attribution(cfg: &Config, msg: &InboundMessage) -> Option<String> {
    let name = msg.sender.name.as_deref()?.trim();
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

pub fn forward_text(
    cfg: &Config,
    origin: &Group,
    msg: &InboundMessage,
    unconfirmed: bool,
) -> String {
    let texts = cfg.texts_for(origin);
    let mut body = msg.text.trim().to_string();
    if cfg.relay.mask_phone_numbers {
        body = mask_phone_numbers(&body);
    }
    let name = attribution(cfg, msg);
    let mut out = fill(&texts.forward, cfg, &origin.name, name.as_deref(), &body);
    if unconfirmed && !texts.unconfirmed_note.is_empty() {
        out.push('\n');
        out.push_str(&fill(&texts.unconfirmed_note, cfg, &origin.name, None, ""));
    }
    out
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
        }
    }

    fn run(c: &Config, m: &InboundMessage) -> Decision {
        let g = c.group(&GroupId::parse("veulen").unwrap()).unwrap();
        decide(c, g, m, &HashSet::from(["relay".to_string()]), 0)
    }

    fn kinds(d: &Decision) -> Vec<String> {
        d.actions
            .iter()
            .map(|a| match a {
                Action::Remind { group, .. } => format!("remind:{group}"),
                Action::Forward { group, .. } => format!("forward:{group}"),
                Action::Hold { group, .. } => format!("hold:{group}"),
                Action::None { group, .. } => format!("none:{group}"),
            })
            .collect()
    }

    const ALERT: &str = "Verdachte grijze bestelwagen rijdt traag door de Kerkstraat";

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
