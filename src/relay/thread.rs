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
    if c.alert && role == "member" && !c.confirmed && !all_clear {
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
    actions.extend(follow_ups(cfg, group, msg, t, all_clear));
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
