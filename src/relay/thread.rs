//! Decisions for messages that belong to an alert thread: replies (to the
//! original, a copy or a follow-up), edits of the original, a sender's
//! confirmation of a held alert, and a second report of the same incident.
//!
//! A follow-up goes to every group that has (or will have) a copy, as a
//! reply to that copy, and to the origin group as a reply to the original;
//! never back to the group it was written in. Its reply target is looked up
//! when it is sent (`thread_map::deliver`), so it may be decided before the
//! copy exists; a follow-up of a held alert waits in the hold.

use super::*;

/// The follow-up of `msg` (a reply in `group`) to every other group of
/// thread `t`, with `template` (the `followup` or `all_clear` text).
fn fan_out(
    cfg: &Config,
    group: &Group,
    t: &Thread,
    text_for: impl Fn(&Group) -> String,
) -> Vec<Action> {
    let mut out = Vec::new();
    let origin = &t.alert.group;
    if *origin != group.id {
        if let Some(g) = cfg.group(origin) {
            out.push(Action::FollowUp {
                group: g.id.clone(),
                text: text_for(g),
                thread: t.alert.origin.clone(),
                reply_to: Some(t.alert.message_id.clone()),
            });
        }
    }
    for gid in t.copy_groups() {
        if gid == group.id {
            continue;
        }
        if let Some(g) = cfg.group(&gid) {
            out.push(Action::FollowUp {
                group: g.id.clone(),
                text: text_for(g),
                thread: t.alert.origin.clone(),
                reply_to: None,
            });
        }
    }
    out
}

/// The held copies of `t` without the "not said whether 101 was called"
/// note: what goes out when the sender confirms.
fn confirmed_copies(cfg: &Config, t: &Thread) -> Option<Vec<(GroupId, String)>> {
    let held = t.held.as_ref()?;
    let origin = cfg.group(&t.alert.group)?;
    let note = format!("\n{}", unconfirmed_note(cfg, origin));
    Some(
        held.outbox
            .iter()
            .filter(|m| m.kind == crate::message::OutboundKind::Forward)
            .map(|m| {
                let text = m.text.strip_suffix(&note).unwrap_or(&m.text).to_string();
                (m.group.clone(), text)
            })
            .collect(),
    )
}

fn hold_of(t: &Thread) -> Option<(String, u64)> {
    t.held.as_ref().map(|h| (h.origin.clone(), h.until_ms))
}

/// `msg`, in `group`, replies to a message of thread `t`.
pub(super) fn reply(
    cfg: &Config,
    group: &Group,
    msg: &InboundMessage,
    role: &'static str,
    c: &Classification,
    t: &Thread,
) -> Decision {
    if t.alert.retracted {
        return Decision::none(
            role,
            c,
            group,
            "a reply to a retracted alert stays in its group",
        );
    }
    let all_clear = cfg.rules.is_all_clear(&msg.text);
    let by_sender = t.alert.sender == sender_hash(msg.platform.chat_space(), &msg.sender.id);
    let mut actions = Vec::new();
    // A new sighting in a thread whose alert said the police were called:
    // they know of this incident, so no reminder (it would be noise).
    if c.alert && role == "member" && !c.confirmed && !all_clear && !t.alert.confirmed {
        actions.push(remind(cfg, group, msg));
    }
    let mut d = Decision::new(role, c, Vec::new());
    d.effects.thread = Some(t.alert.origin.clone());
    d.effects.hold = hold_of(t);
    let origin_group = cfg.group(&t.alert.group);

    if t.held.is_some() {
        if all_clear {
            // A false alarm before it was forwarded: it stays in its group.
            actions.push(Action::Release {
                group: t.alert.group.clone(),
                forward: false,
                copies: None,
            });
            d.effects.changes.push(AlertChange::AllClear);
            d.actions = actions;
            return d;
        }
        let confirms = if by_sender {
            cfg.rules.confirms_followup(&msg.text)
        } else {
            c.confirmed
        };
        if confirms {
            actions.push(Action::Release {
                group: t.alert.group.clone(),
                forward: true,
                copies: confirmed_copies(cfg, t),
            });
            // Someone else's confirmation is news for the copies too; the
            // sender's own "101 gebeld" is in the copies now.
            if !by_sender && cfg.rules.worth_relaying(&msg.text) {
                actions.extend(follow_ups(cfg, group, msg, t, false));
            }
            d.actions = actions;
            return d;
        }
    }
    if !all_clear && !cfg.rules.worth_relaying(&msg.text) {
        actions.push(Action::None {
            group: group.id.clone(),
            reason: "a short reply (thanks, a question word) stays in its group".into(),
        });
        d.actions = actions;
        return d;
    }
    if origin_group.is_none() {
        actions.push(Action::None {
            group: group.id.clone(),
            reason: "the alert's group is no longer in the config".into(),
        });
        d.actions = actions;
        return d;
    }
    let fanned = follow_ups(cfg, group, msg, t, all_clear);
    if fanned.is_empty() {
        actions.push(Action::None {
            group: group.id.clone(),
            reason: "the alert went to no other group: the reply stays here".into(),
        });
    }
    actions.extend(fanned);
    if all_clear {
        d.effects.changes.push(AlertChange::AllClear);
    }
    d.actions = actions;
    d
}

/// `msg` as a follow-up (or all-clear) to every other group of `t`.
fn follow_ups(
    cfg: &Config,
    group: &Group,
    msg: &InboundMessage,
    t: &Thread,
    all_clear: bool,
) -> Vec<Action> {
    let name = attribution(cfg, msg);
    let text = body(cfg, &msg.text);
    let texts = cfg.texts_for(group);
    let template = if all_clear {
        &texts.all_clear
    } else {
        &texts.followup
    };
    let line = fill(template, cfg, &group.name, name.as_deref(), &text);
    fan_out(cfg, group, t, |_| line.clone())
}

/// The sender of held alert `t` confirms in their next message (not a
/// reply): the hold is released at once, without the note.
pub(super) fn sender_confirms(
    cfg: &Config,
    group: &Group,
    msg: &InboundMessage,
    role: &'static str,
    c: &Classification,
    t: &Thread,
) -> Decision {
    let mut d = Decision::new(
        role,
        c,
        vec![Action::Release {
            group: t.alert.group.clone(),
            forward: true,
            copies: confirmed_copies(cfg, t),
        }],
    );
    // More than a bare "101 gebeld" (a report of its own): a follow-up too.
    if c.alert {
        d.actions.extend(follow_ups(cfg, group, msg, t, false));
    }
    d.effects.thread = Some(t.alert.origin.clone());
    d.effects.hold = hold_of(t);
    d
}

/// An edit of `msg`, whose original began thread `known.edited`.
pub(super) fn edit(
    cfg: &Config,
    group: &Group,
    msg: &InboundMessage,
    role: &'static str,
    known: &Known,
) -> Decision {
    let c = cfg.rules.classify(&msg.text);
    let Some(t) = &known.edited else {
        return Decision::none(
            role,
            &c,
            group,
            "an edit of a message that was not relayed (only alerts' edits reach the copies)",
        );
    };
    if t.alert.retracted {
        return Decision::none(role, &c, group, "an edit of a retracted alert");
    }
    let unconfirmed = role == "member" && !c.confirmed;
    let mut d = Decision::new(role, &c, Vec::new());
    d.effects.thread = Some(t.alert.origin.clone());
    d.effects.hold = hold_of(t);
    d.effects.changes.push(AlertChange::Text {
        text: msg.text.clone(),
        confirmed: c.confirmed,
    });
    if let Some(h) = &t.held {
        let targets: Vec<GroupId> = h
            .outbox
            .iter()
            .filter(|m| m.kind == crate::message::OutboundKind::Forward)
            .map(|m| m.group.clone())
            .collect();
        if c.confirmed {
            let text = forward_text(cfg, group, msg, false);
            d.actions.push(Action::Release {
                group: group.id.clone(),
                forward: true,
                copies: Some(targets.into_iter().map(|g| (g, text.clone())).collect()),
            });
        } else {
            let text = forward_text(cfg, group, msg, unconfirmed);
            d.actions.push(Action::Rewrite {
                group: group.id.clone(),
                copies: targets.into_iter().map(|g| (g, text.clone())).collect(),
            });
        }
        return d;
    }
    let text = forward_text(cfg, group, msg, unconfirmed);
    let shown = body(cfg, &msg.text);
    for gid in t.copy_groups() {
        let Some(g) = cfg.group(&gid) else { continue };
        d.actions.push(Action::Edit {
            group: gid.clone(),
            text: text.clone(),
            fallback: fill(&cfg.texts_for(g).corrected, cfg, &group.name, None, &shown),
            thread: t.alert.origin.clone(),
        });
    }
    if d.actions.is_empty() {
        d.actions.push(Action::None {
            group: group.id.clone(),
            reason: "the alert has no copies to edit".into(),
        });
    }
    d
}

/// A second report (in `group`) of the incident of thread `t`: "ook gemeld
/// in" to the original and every copy but the one in `group`.
pub(super) fn sighting(cfg: &Config, group: &Group, t: &Thread) -> Vec<Action> {
    fan_out(cfg, group, t, |target| {
        fill(
            &cfg.texts_for(target).also_reported,
            cfg,
            &group.name,
            None,
            "",
        )
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::{AccountId, ChatId, PlatformKind};
    use crate::message::{Outbound, OutboundKind, Sender};

    const CFG: &str = r#"
[accounts.s]
platform = "sandbox"
[[groups]]
id = "veulen"
name = "Veulen"
account = "s"
chat = "veulen"
coordinators = ["coord"]
[[groups]]
id = "heers"
name = "Heers"
account = "s"
chat = "heers"
[[groups]]
id = "opheers"
name = "Opheers"
account = "s"
chat = "opheers"
"#;

    fn cfg(extra: &str) -> Config {
        Config::parse(&format!("{extra}\n{CFG}"), Path::new("t.toml")).unwrap()
    }

    fn msg(chat: &str, sender: &str, text: &str) -> InboundMessage {
        InboundMessage {
            account: AccountId::parse("s").unwrap(),
            platform: PlatformKind::Sandbox,
            chat: ChatId::parse(chat).unwrap(),
            message_id: "20".into(),
            sender: Sender {
                id: sender.into(),
                name: Some(sender.to_string()),
                is_bot: false,
            },
            text: text.into(),
            reply_to: Some("7".into()),
            at_ms: 0,
            edit: None,
            quoted: None,
            extra: Default::default(),
        }
    }

    /// Jan's alert in Veulen, copied to Heers and Opheers.
    fn thread(held: bool) -> Thread {
        let origin = "sandbox|veulen|7".to_string();
        let targets = vec![
            GroupId::parse("heers").unwrap(),
            GroupId::parse("opheers").unwrap(),
        ];
        let copy = |g: &str, text: &str| {
            Outbound::new(
                AccountId::parse("s").unwrap(),
                GroupId::parse(g).unwrap(),
                ChatId::parse(g).unwrap(),
                text.into(),
                None,
                OutboundKind::Forward,
            )
        };
        let note = "[Veulen] jan: Verdachte man in de tuin\n(niet vermeld of 101 al gebeld werd)";
        Thread {
            alert: AlertRecord {
                origin: origin.clone(),
                group: GroupId::parse("veulen").unwrap(),
                message_id: "7".into(),
                categories: vec!["suspicious_person".into()],
                confirmed: false,
                at_ms: 0,
                targets: targets.clone(),
                text: "Verdachte man in de tuin".into(),
                sender: sender_hash("sandbox", "jan"),
                retracted: false,
                all_clear: false,
                sightings: vec![],
                forced: false,
                topic: None,
            },
            held: held.then(|| HeldAlert {
                origin,
                until_ms: 60_000,
                outbox: vec![copy("heers", note), copy("opheers", note)],
            }),
            reached: if held { vec![] } else { targets },
        }
    }

    fn run(c: &Config, chat: &str, m: &InboundMessage, known: &Known) -> Decision {
        let g = c.group(&GroupId::parse(chat).unwrap()).unwrap();
        decide(c, g, m, &HashSet::new(), known, 1_000)
    }

    fn replied(t: Thread) -> Known {
        Known {
            replied: Some(t),
            ..Known::default()
        }
    }

    fn kinds(d: &Decision) -> Vec<String> {
        d.actions
            .iter()
            .map(|a| format!("{}:{}", a.kind(), a.group()))
            .collect()
    }

    #[test]
    fn a_reply_in_a_copy_group_goes_to_the_original_and_the_other_copies() {
        let c = cfg("");
        let d = run(
            &c,
            "heers",
            &msg("heers", "an", "Ik zie hem nu hier aan de kerk"),
            &replied(thread(false)),
        );
        // Where the suspect is now is news for every village, and a member
        // who sees him and does not say they called is reminded to.
        assert_eq!(
            kinds(&d),
            ["remind:heers", "followup:veulen", "followup:opheers"]
        );
        let Action::FollowUp { text, reply_to, .. } = &d.actions[1] else {
            panic!()
        };
        assert_eq!(text, "[Heers] an: Ik zie hem nu hier aan de kerk");
        assert_eq!(reply_to.as_deref(), Some("7"), "a reply to the original");
        let Action::FollowUp { reply_to, .. } = &d.actions[2] else {
            panic!()
        };
        assert_eq!(*reply_to, None, "found at send time");
        assert_eq!(d.effects.thread.as_deref(), Some("sandbox|veulen|7"));
    }

    #[test]
    fn a_new_sighting_is_reminded_only_in_a_thread_the_police_do_not_know_of() {
        let c = cfg("");
        let sighting = msg("heers", "an", "Verdachte man loert nu in de tuinen hier");
        let d = run(&c, "heers", &sighting, &replied(thread(false)));
        assert_eq!(
            kinds(&d)[0],
            "remind:heers",
            "the alert did not say 101 was called"
        );
        let mut t = thread(false);
        t.alert.confirmed = true;
        let d = run(&c, "heers", &sighting, &replied(t));
        assert!(
            !kinds(&d).iter().any(|k| k.starts_with("remind")),
            "the police know of this incident: {:?}",
            kinds(&d)
        );
    }

    #[test]
    fn a_reply_to_a_retracted_alert_stays_home() {
        let c = cfg("");
        let mut t = thread(false);
        t.alert.retracted = true;
        let d = run(
            &c,
            "veulen",
            &msg("veulen", "an", "Hij is weg"),
            &replied(t),
        );
        assert_eq!(kinds(&d), ["none:veulen"]);
    }

    #[test]
    fn the_senders_confirmation_releases_the_hold_without_the_note() {
        let c = cfg("[relay]\nunconfirmed = \"hold\"");
        let d = run(
            &c,
            "veulen",
            &msg("veulen", "jan", "ja, gebeld"),
            &replied(thread(true)),
        );
        assert_eq!(kinds(&d), ["release:veulen"]);
        let Action::Release {
            forward, copies, ..
        } = &d.actions[0]
        else {
            panic!()
        };
        assert!(*forward);
        let copies = copies.as_ref().expect("new copies");
        assert_eq!(copies[0].1, "[Veulen] jan: Verdachte man in de tuin");
        assert_eq!(
            d.effects.hold,
            Some(("sandbox|veulen|7".to_string(), 60_000))
        );
    }

    #[test]
    fn someone_elses_short_gedaan_does_not_release_a_hold() {
        let c = cfg("[relay]\nunconfirmed = \"hold\"");
        let d = run(
            &c,
            "veulen",
            &msg("veulen", "an", "gedaan"),
            &replied(thread(true)),
        );
        assert!(!kinds(&d).iter().any(|k| k.starts_with("release")));
    }

    #[test]
    fn an_all_clear_before_the_release_drops_the_hold() {
        let c = cfg("[relay]\nunconfirmed = \"hold\"");
        let d = run(
            &c,
            "veulen",
            &msg("veulen", "jan", "Vals alarm, het was mijn zoon"),
            &replied(thread(true)),
        );
        assert_eq!(
            d.actions,
            [Action::Release {
                group: GroupId::parse("veulen").unwrap(),
                forward: false,
                copies: None
            }]
        );
        assert_eq!(d.effects.changes, [AlertChange::AllClear]);
    }

    #[test]
    fn an_edit_of_a_forwarded_alert_edits_each_copy_with_a_correction_fallback() {
        let c = cfg("");
        let mut m = msg("veulen", "jan", "Verdachte man in de tuin van nummer 12");
        m.edit = Some(5);
        m.reply_to = None;
        let known = Known {
            edited: Some(thread(false)),
            ..Known::default()
        };
        let d = run(&c, "veulen", &m, &known);
        assert_eq!(kinds(&d), ["edit:heers", "edit:opheers"]);
        let Action::Edit { text, fallback, .. } = &d.actions[0] else {
            panic!()
        };
        assert!(text.starts_with("[Veulen] jan: Verdachte man in de tuin van nummer 12"));
        assert_eq!(
            fallback,
            "✏️ gecorrigeerd: Verdachte man in de tuin van nummer 12"
        );
    }

    #[test]
    fn an_edit_of_a_message_that_was_not_relayed_changes_nothing() {
        let c = cfg("");
        let mut m = msg("veulen", "jan", "Onze kat is terug");
        m.edit = Some(5);
        assert_eq!(
            kinds(&run(&c, "veulen", &m, &Known::default())),
            ["none:veulen"]
        );
    }

    #[test]
    fn a_second_report_from_another_group_is_an_ook_gemeld_reply() {
        let c = cfg("");
        let mut t = thread(false);
        t.alert.text =
            "Verdachte grijze bestelwagen rijdt traag door de Kerkstraat, 101 is verwittigd".into();
        let mut m = msg(
            "heers",
            "an",
            "Verdachte grijze bestelwagen rijdt traag door de Kerkstraat, 101 is verwittigd",
        );
        m.reply_to = None;
        let known = Known {
            recent: vec![t],
            ..Known::default()
        };
        let d = run(&c, "heers", &m, &known);
        assert_eq!(kinds(&d), ["followup:veulen", "followup:opheers"]);
        let Action::FollowUp { text, .. } = &d.actions[0] else {
            panic!()
        };
        assert_eq!(text, "🔁 Ook gemeld in Heers.");
        assert_eq!(
            d.effects.changes,
            [AlertChange::Sighting(GroupId::parse("heers").unwrap())]
        );
        assert!(d.effects.record.is_none(), "no thread of its own");
    }

    #[test]
    fn with_a_zero_merge_window_a_second_report_fans_out_again() {
        let c = cfg("[relay]\nmerge_window = \"0s\"");
        let mut t = thread(false);
        t.alert.text =
            "Verdachte grijze bestelwagen rijdt traag door de Kerkstraat, 101 is verwittigd".into();
        let mut m = msg(
            "heers",
            "an",
            "Verdachte grijze bestelwagen rijdt traag door de Kerkstraat, 101 is verwittigd",
        );
        m.reply_to = None;
        let known = Known {
            recent: vec![t],
            ..Known::default()
        };
        assert_eq!(
            kinds(&run(&c, "heers", &m, &known)),
            ["forward:veulen", "forward:opheers"]
        );
    }

    // --- the reply patterns of the built-in protocol data

    #[test]
    fn false_alarms_and_harmless_explanations_are_all_clears_in_three_languages() {
        let c = cfg("");
        for t in [
            "Vals alarm!",
            "het was de buurman",
            "Alles ok, politie ter plaatse geweest",
            "Loos alarm, t was gewoon de postbode",
            "Ze is teruggevonden, veilig thuis",
            "Fausse alerte, c'était le voisin",
            "Tout va bien, la police est passée",
            "False alarm, it was the neighbour",
            "All clear, police attended",
        ] {
            assert!(c.rules.is_all_clear(t), "{t}");
        }
    }

    #[test]
    fn a_question_or_a_denial_is_no_all_clear() {
        let c = cfg("");
        for t in [
            "Alles ok daar?",
            "Dit is GEEN vals alarm, hij is er weer",
            "Hij is nog niet teruggevonden",
            "Ce n'est pas une fausse alerte",
            "This is not a false alarm",
            "Hij loopt nu richting de kerk",
        ] {
            assert!(!c.rules.is_all_clear(t), "{t}");
        }
    }

    #[test]
    fn thanks_and_bare_question_words_are_not_worth_relaying() {
        let c = cfg("");
        for t in [
            "Bedankt!",
            "👍",
            "ok, merci",
            "Thanks all",
            "Waar precies?",
            "ou ça ?",
        ] {
            assert!(!c.rules.worth_relaying(t), "{t}");
        }
        for t in [
            "Hij rijdt nu richting Heks",
            "Bedankt, ik zie hem nu ook aan de kerk",
            "Waar is die wagen nu naartoe gereden?",
        ] {
            assert!(c.rules.worth_relaying(t), "{t}");
        }
    }

    #[test]
    fn a_short_gedaan_confirms_only_as_the_senders_follow_up() {
        let c = cfg("");
        assert!(c.rules.confirms_followup("gedaan"));
        assert!(c.rules.confirms_followup("ja, gebeld"));
        assert!(c.rules.confirms_followup("C'est fait"));
        assert!(c.rules.confirms_followup("done"));
        assert!(!c.rules.classify("gedaan").confirmed);
        assert!(!c.rules.confirms_followup("nog niet gebeld"));
        assert!(!c.rules.confirms_followup("moet ik bellen?"));
    }
}
