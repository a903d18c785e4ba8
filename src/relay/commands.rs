//! Coordinator commands: `/intrekken` (retract), `/doorsturen` (forward),
//! `/status`, named per language in the texts (`command_retract`,
//! `command_forward`, `command_status`).
//!
//! A command is the first word of a message; Telegram's `/status@botname`
//! form is accepted, and so is every configured language's name in every
//! group (a French-speaking coordinator in a Dutch group may type
//! `/statut`). The answer is in the group's language. Commands are run only
//! for the group's coordinators (by platform user id); anyone else gets a
//! polite answer and nothing changes.

use super::*;

/// What a coordinator asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CommandKind {
    /// Take an alert back: delete (or correct) every copy.
    Retract,
    /// Forward the replied message now (also: release a held alert).
    Forward,
    /// The network's last alerts and where each went.
    Status,
}

impl CommandKind {
    fn name(self, cfg: &Config, group: &Group) -> String {
        let t = cfg.texts_for(group);
        match self {
            CommandKind::Retract => t.command_retract.clone(),
            CommandKind::Forward => t.command_forward.clone(),
            CommandKind::Status => t.command_status.clone(),
        }
    }
}

/// The command `text` starts with, if any (case does not matter).
pub fn parse_command(cfg: &Config, text: &str) -> Option<CommandKind> {
    let first = text.split_whitespace().next()?;
    let word = first.strip_prefix('/')?;
    // Telegram: "/status@BinHeersBot" in groups with several bots.
    let word = word.split_once('@').map_or(word, |(w, _)| w);
    if word.is_empty() {
        return None;
    }
    let is = |name: &str| {
        name.strip_prefix('/')
            .is_some_and(|n| n.eq_ignore_ascii_case(word))
    };
    cfg.texts.values().find_map(|t| {
        if is(&t.command_retract) {
            Some(CommandKind::Retract)
        } else if is(&t.command_forward) {
            Some(CommandKind::Forward)
        } else if is(&t.command_status) {
            Some(CommandKind::Status)
        } else {
            None
        }
    })
}

fn answer(group: &Group, msg: &InboundMessage, text: String) -> Action {
    Action::Answer {
        group: group.id.clone(),
        text,
        reply_to: msg.message_id.clone(),
    }
}

/// A text of the group's language with `{command}` and `{count}` filled in.
fn say(cfg: &Config, group: &Group, template: &str, command: &str, count: usize) -> String {
    fill(template, cfg, &group.name, None, "")
        .replace("{command}", command)
        .replace("{count}", &count.to_string())
}

#[allow(clippy::too_many_arguments)]
pub(super) fn decide(
    cfg: &Config,
    group: &Group,
    msg: &InboundMessage,
    role: &'static str,
    kind: CommandKind,
    own_ids: &HashSet<String>,
    known: &Known,
    now_ms: u64,
) -> Decision {
    let texts = cfg.texts_for(group);
    let command = kind.name(cfg, group);
    let reply = |text: String| Decision::new(role, &NOT_AN_ALERT, vec![answer(group, msg, text)]);
    if role != "coordinator" {
        let name = attribution(cfg, msg);
        let text = fill(
            &texts.not_coordinator,
            cfg,
            &group.name,
            name.as_deref(),
            "",
        )
        .replace("{command}", &command);
        return reply(text);
    }
    match kind {
        CommandKind::Status => reply(status_text(cfg, group, &known.status, now_ms)),
        CommandKind::Retract => {
            let Some(t) = &known.replied else {
                return reply(say(cfg, group, &texts.reply_needed, &command, 0));
            };
            retract(cfg, group, msg, role, t, &command)
        }
        CommandKind::Forward => match &known.replied {
            Some(t) => forward_thread(cfg, group, msg, role, t, &command),
            None => forward_message(cfg, group, msg, role, own_ids, &command, now_ms),
        },
    }
}

fn retract(
    cfg: &Config,
    group: &Group,
    msg: &InboundMessage,
    role: &'static str,
    t: &Thread,
    command: &str,
) -> Decision {
    let texts = cfg.texts_for(group);
    let mut d = Decision::new(role, &NOT_AN_ALERT, Vec::new());
    if t.alert.retracted {
        d.actions.push(answer(
            group,
            msg,
            say(cfg, group, &texts.already_retracted, command, 0),
        ));
        return d;
    }
    d.effects.thread = Some(t.alert.origin.clone());
    d.effects.changes.push(AlertChange::Retracted);
    if let Some(h) = &t.held {
        d.effects.hold = Some((h.origin.clone(), h.until_ms));
        d.actions.push(Action::Release {
            group: t.alert.group.clone(),
            forward: false,
            copies: None,
        });
        d.actions.push(answer(
            group,
            msg,
            say(cfg, group, &texts.retract_held, command, 0),
        ));
        return d;
    }
    let copies = t.copy_groups();
    for gid in &copies {
        let Some(g) = cfg.group(gid) else { continue };
        d.actions.push(Action::Delete {
            group: gid.clone(),
            fallback: fill(&cfg.texts_for(g).retracted, cfg, &g.name, None, ""),
            thread: t.alert.origin.clone(),
        });
    }
    // The origin group hears it too, under the original (unless the
    // coordinator is there and gets the answer anyway).
    if t.alert.group != group.id {
        if let Some(g) = cfg.group(&t.alert.group) {
            d.actions.push(Action::FollowUp {
                group: g.id.clone(),
                text: fill(&cfg.texts_for(g).retracted, cfg, &g.name, None, ""),
                thread: t.alert.origin.clone(),
                reply_to: Some(t.alert.message_id.clone()),
            });
        }
    }
    d.actions.push(answer(
        group,
        msg,
        say(cfg, group, &texts.retract_done, command, copies.len()),
    ));
    d
}

/// `/doorsturen` as a reply to a message of a known thread.
fn forward_thread(
    cfg: &Config,
    group: &Group,
    msg: &InboundMessage,
    role: &'static str,
    t: &Thread,
    command: &str,
) -> Decision {
    let texts = cfg.texts_for(group);
    let mut d = Decision::new(role, &NOT_AN_ALERT, Vec::new());
    if t.alert.retracted {
        d.actions.push(answer(
            group,
            msg,
            say(cfg, group, &texts.already_retracted, command, 0),
        ));
        return d;
    }
    if let Some(h) = &t.held {
        // A coordinator vouches for it: released now, as it was held.
        d.effects.hold = Some((h.origin.clone(), h.until_ms));
        d.effects.thread = Some(t.alert.origin.clone());
        let n = t.copy_groups().len();
        d.actions.push(Action::Release {
            group: t.alert.group.clone(),
            forward: true,
            copies: None,
        });
        d.actions.push(answer(
            group,
            msg,
            say(cfg, group, &texts.forward_done, command, n),
        ));
        return d;
    }
    let reached = t.copy_groups();
    if !t.reached.is_empty() {
        d.actions.push(answer(
            group,
            msg,
            say(cfg, group, &texts.already_forwarded, command, reached.len()),
        ));
        return d;
    }
    // Recorded but never forwarded (`unconfirmed = "drop"`, no route, or
    // every copy given up on): forward the stored text now.
    let Some(origin) = cfg.group(&t.alert.group) else {
        d.actions.push(answer(
            group,
            msg,
            say(cfg, group, &texts.cannot_forward, command, 0),
        ));
        return d;
    };
    let name = msg
        .quoted
        .as_ref()
        .and_then(|q| q.sender.as_ref())
        .and_then(|s| attribution_of(cfg, s.name.as_deref()));
    let targets = forced_targets(cfg, origin, &t.alert.categories);
    let text = copy_text(cfg, origin, name.as_deref(), &t.alert.text, false);
    for g in &targets {
        d.actions.push(Action::Forward {
            group: g.clone(),
            text: text.clone(),
            thread: Some(t.alert.origin.clone()),
        });
    }
    d.effects.thread = Some(t.alert.origin.clone());
    d.effects.changes.push(AlertChange::Forced(targets.clone()));
    d.actions.push(answer(
        group,
        msg,
        say(cfg, group, &texts.forward_done, command, targets.len()),
    ));
    d
}

/// Where a forced forward goes: the routes for its categories, or every
/// other group when no route takes it (the coordinator wants it out).
fn forced_targets(cfg: &Config, origin: &Group, categories: &[String]) -> Vec<GroupId> {
    let routed = routing::targets(cfg, origin, categories);
    if !routed.is_empty() {
        return routed;
    }
    cfg.groups
        .iter()
        .filter(|g| g.id != origin.id)
        .map(|g| g.id.clone())
        .collect()
}

/// `/doorsturen` as a reply to a message the relay knows nothing about
/// (chit-chat, a report it did not see as an alert): forwarded now, from
/// the text the platform quoted, as a new thread.
fn forward_message(
    cfg: &Config,
    group: &Group,
    msg: &InboundMessage,
    role: &'static str,
    own_ids: &HashSet<String>,
    command: &str,
    now_ms: u64,
) -> Decision {
    let texts = cfg.texts_for(group);
    let reply = |t: &str| {
        Decision::new(
            role,
            &NOT_AN_ALERT,
            vec![answer(group, msg, say(cfg, group, t, command, 0))],
        )
    };
    let Some(replied) = &msg.reply_to else {
        return reply(&texts.reply_needed);
    };
    let Some(q) = msg.quoted.as_ref().filter(|q| !q.text.trim().is_empty()) else {
        return reply(&texts.cannot_forward);
    };
    if q.sender
        .as_ref()
        .is_some_and(|s| s.is_bot || own_ids.contains(&s.id))
    {
        return reply(&texts.cannot_forward);
    }
    let c = cfg.rules.classify(&q.text);
    let targets = forced_targets(cfg, group, &c.categories);
    let origin = crate::message::message_ref(msg.platform, &msg.chat, replied);
    let name = q
        .sender
        .as_ref()
        .and_then(|s| attribution_of(cfg, s.name.as_deref()));
    let text = copy_text(cfg, group, name.as_deref(), &q.text, false);
    let mut d = Decision::new(role, &NOT_AN_ALERT, Vec::new());
    for g in &targets {
        d.actions.push(Action::Forward {
            group: g.clone(),
            text: text.clone(),
            thread: Some(origin.clone()),
        });
    }
    d.actions.push(answer(
        group,
        msg,
        say(cfg, group, &texts.forward_done, command, targets.len()),
    ));
    d.effects.record = Some(Box::new(AlertRecord {
        origin,
        group: group.id.clone(),
        message_id: replied.clone(),
        categories: c.categories,
        confirmed: c.confirmed,
        at_ms: now_ms,
        targets,
        text: q.text.clone(),
        sender: q
            .sender
            .as_ref()
            .map(|s| sender_hash(msg.platform.chat_space(), &s.id))
            .unwrap_or_default(),
        retracted: false,
        all_clear: false,
        sightings: Vec::new(),
        forced: true,
        // The quoted message sits where the command was typed.
        topic: msg.extra.topic.clone(),
    }));
    d
}

/// How long ago, language-neutral: "12 min", "3h05", "2d".
fn ago(ms: u64) -> String {
    let min = ms / 60_000;
    if min < 60 {
        format!("{min} min")
    } else if min < 48 * 60 {
        format!("{}h{:02}", min / 60, min % 60)
    } else {
        format!("{}d", min / (24 * 60))
    }
}

/// At most `n` characters of `text`, on one line.
fn excerpt(text: &str, n: usize) -> String {
    let one: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one.chars().count() <= n {
        one
    } else {
        let cut: String = one.chars().take(n).collect();
        format!("{}…", cut.trim_end())
    }
}

/// The answer to `/status`: the last alerts, where each copy stands
/// (✓ delivered, ⏳ on its way, ⏸ held, ✗ given up), and whether the
/// alert was retracted (🚫) or cleared (✅).
pub(super) fn status_text(
    cfg: &Config,
    group: &Group,
    items: &[StatusItem],
    now_ms: u64,
) -> String {
    use crate::store::DeliveryState;
    let texts = cfg.texts_for(group);
    if items.is_empty() {
        return texts.status_empty.clone();
    }
    let mut out = texts.status_header.clone();
    for it in items {
        let a = &it.alert;
        let village = cfg
            .group(&a.group)
            .map_or_else(|| a.group.to_string(), |g| g.name.clone());
        let mut text = excerpt(&body(cfg, &a.text), 60);
        if a.retracted {
            text = format!("🚫 {text}");
        } else if a.all_clear {
            text = format!("✅ {text}");
        }
        let groups: Vec<String> = it
            .targets
            .iter()
            .filter(|t| t.group != a.group)
            .map(|t| {
                let name = cfg
                    .group(&t.group)
                    .map_or_else(|| t.group.to_string(), |g| g.name.clone());
                let mark = match t.state {
                    DeliveryState::Delivered => "✓",
                    DeliveryState::Pending | DeliveryState::Retrying => "⏳",
                    DeliveryState::Held => "⏸",
                    DeliveryState::Dead => "✗",
                };
                format!("{name} {mark}")
            })
            .collect();
        let groups = if groups.is_empty() {
            "—".to_string()
        } else {
            groups.join(", ")
        };
        out.push('\n');
        out.push_str(
            &fill(&texts.status_line, cfg, &village, None, &text)
                .replace("{time}", &ago(now_ms.saturating_sub(a.at_ms)))
                .replace("{groups}", &groups),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn cfg() -> Config {
        Config::parse(
            "[accounts.s]\nplatform = \"sandbox\"\n\
             [[groups]]\nid = \"a\"\nname = \"A\"\naccount = \"s\"\nchat = \"a\"\n\
             [[groups]]\nid = \"b\"\nname = \"B\"\naccount = \"s\"\nchat = \"b\"\n\
             [texts.nl]\ncommand_status = \"/overzicht\"\n",
            Path::new("t.toml"),
        )
        .unwrap()
    }

    #[test]
    fn each_languages_command_names_are_understood() {
        let c = cfg();
        for (text, kind) in [
            ("/intrekken", CommandKind::Retract),
            ("/doorsturen", CommandKind::Forward),
            ("/retirer", CommandKind::Retract),
            ("/transferer", CommandKind::Forward),
            ("/statut", CommandKind::Status),
            ("/retract", CommandKind::Retract),
            ("/forward", CommandKind::Forward),
            ("/status", CommandKind::Status),
        ] {
            assert_eq!(parse_command(&c, text), Some(kind), "{text}");
        }
    }

    #[test]
    fn a_renamed_command_is_understood_by_its_new_name() {
        assert_eq!(
            parse_command(&cfg(), "/overzicht"),
            Some(CommandKind::Status)
        );
    }

    #[test]
    fn telegrams_bot_name_suffix_and_capitals_do_not_matter() {
        let c = cfg();
        assert_eq!(
            parse_command(&c, "/intrekken@BinHeersBot"),
            Some(CommandKind::Retract)
        );
        assert_eq!(
            parse_command(&c, "/Doorsturen graag, dit is belangrijk"),
            Some(CommandKind::Forward)
        );
    }

    #[test]
    fn a_command_is_only_the_first_word_with_its_slash() {
        let c = cfg();
        for text in [
            "intrekken",
            "graag /intrekken",
            "/ intrekken",
            "/me",
            "/",
            "/@bot",
            "",
            "http://example.org/status",
        ] {
            assert_eq!(parse_command(&c, text), None, "{text}");
        }
    }

    const GROUPS: &str = "[accounts.s]\nplatform = \"sandbox\"\n\
         [[groups]]\nid = \"a\"\nname = \"A\"\naccount = \"s\"\nchat = \"a\"\n\
         [[groups]]\nid = \"b\"\nname = \"B\"\naccount = \"s\"\nchat = \"b\"\n";

    #[test]
    fn a_command_name_that_is_not_a_slash_and_one_word_is_refused_where_it_stands() {
        let src = format!("{GROUPS}[texts.nl]\ncommand_retract = \"intrekken nu\"\n");
        let err = Config::parse(&src, Path::new("t.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("t.toml:14:19: texts.nl.command_retract"),
            "{err}"
        );
    }

    #[test]
    fn a_language_without_built_in_texts_borrows_the_english_answers() {
        let src = format!(
            "{GROUPS}[texts.de]\nreminder = \"Danke{{name}}! Bitte zuerst {{number}} anrufen.\"\n\
             unconfirmed_note = \"(ohne Anruf)\"\nforward = \"[{{village}}]{{name}}: {{text}}\"\n\
             command_status = \"/lage\"\n"
        );
        let c = Config::parse(&src, Path::new("t.toml")).unwrap();
        let de = &c.texts["de"];
        assert_eq!(de.command_retract, "/retract");
        assert_eq!(de.command_status, "/lage");
        assert_eq!(parse_command(&c, "/lage"), Some(CommandKind::Status));
    }

    #[test]
    fn an_unknown_placeholder_in_an_answer_is_refused() {
        let src = format!("{GROUPS}[texts.en]\nforward_done = \"Sent to {{counts}} groups\"\n");
        let err = Config::parse(&src, Path::new("t.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown placeholder {counts}"), "{err}");
    }

    #[test]
    fn how_long_ago_reads_in_minutes_hours_or_days() {
        assert_eq!(ago(5 * 60_000), "5 min");
        assert_eq!(ago(125 * 60_000), "2h05");
        assert_eq!(ago(3 * 24 * 3_600_000), "3d");
    }
}
