//! The ingest path: inbound event → dedup → thread lookup → decision → one
//! atomic, flushed store write. A webhook is acknowledged only after
//! [`handle`] returns Ok; nothing here sends: the delivery workers are woken
//! instead, so a slow platform never slows ingest.
//!
//! The thread state the relay decides on ([`crate::thread_map::known`]) is
//! read before the write; everything the decision changes in it (links, the
//! alert record, a hold) is applied inside the same transaction as the dedup
//! mark and the outbox entries, against the records as they are then.

use std::collections::HashMap;

use tracing::{debug, error, info, warn};

use crate::config::{ChatId, Config, Group, GroupId, MediaPolicy};
use crate::message::{Inbound, InboundMessage, MediaRef, Op, Outbound, OutboundKind, link_key};
use crate::relay::{self, Action, Decision};
use crate::runtime::Runtime;
use crate::startup::AppState;
use crate::store::{
    AlertUpdate, HeldAlert, HoldChange, HoldUpdate, IngestResult, IngestWrite, ReminderWrite,
    StoreError,
};
use crate::telemetry::{chat_for_log, mask_id};
use crate::time::now_ms;

/// What became of one inbound event.
#[derive(Debug, Clone)]
pub enum Outcome {
    Ignored(&'static str),
    UnknownChat,
    Duplicate,
    Accepted(Decision),
}

pub async fn handle(state: &AppState, rt: &Runtime, ev: Inbound) -> Result<Outcome, StoreError> {
    match ev {
        Inbound::Ignored { reason } => {
            state
                .metrics
                .inc("buurtrelay_messages_in_total", &[("outcome", "ignored")]);
            debug!(reason, "event ignored");
            Ok(Outcome::Ignored(reason))
        }
        Inbound::ChatMigrated { platform, from, to } => {
            state
                .metrics
                .inc("buurtrelay_messages_in_total", &[("outcome", "migrated")]);
            match rt.config.group_by_chat(platform, &from) {
                Some(g) => error!(
                    group = %g.id, old_chat = %from, new_chat = %to,
                    "telegram group `{}` was upgraded to a supergroup: change its line `chat = \"{from}\"` to `chat = \"{to}\"` in {}",
                    g.id, rt.config.file.display()
                ),
                None => {
                    warn!(old_chat = %from, new_chat = %to, "a chat that is not in the config was migrated")
                }
            }
            // The relay follows at once: queued copies, held alerts and the
            // thread map move to the new id, and until the config says so,
            // messages from the new id belong to the group and sends go there.
            let moved = state.store.migrate_chat(&from, &to, now_ms()).await?;
            state.store.flush().await?;
            info!(old_chat = %from, new_chat = %to, records = moved, "chat state moved to the new chat id");
            if moved > 0 {
                state.wake.notify_waiters();
            }
            Ok(Outcome::Ignored("chat migrated"))
        }
        Inbound::Message(m) => handle_message(state, rt, m).await,
    }
}

/// Chat ids that changed since the config was written: old → new.
struct Moves(HashMap<ChatId, ChatId>);

impl Moves {
    async fn load(state: &AppState) -> Result<Moves, StoreError> {
        let mut map = HashMap::new();
        for m in state.store.chat_moves().await? {
            map.insert(m.from, m.to);
        }
        Ok(Moves(map))
    }

    /// Where a group's messages go now.
    fn chat_of(&self, g: &Group) -> ChatId {
        let mut chat = &g.chat;
        // A group may have moved twice; never loop.
        for _ in 0..4 {
            match self.0.get(chat) {
                Some(next) => chat = next,
                None => break,
            }
        }
        chat.clone()
    }

    /// The group of a chat, also under an id it moved to.
    fn group<'a>(&self, cfg: &'a Config, m: &InboundMessage) -> Option<&'a Group> {
        cfg.group_by_chat(m.platform, &m.chat).or_else(|| {
            self.0
                .iter()
                .filter(|(_, to)| **to == m.chat)
                .find_map(|(from, _)| cfg.group_by_chat(m.platform, from))
        })
    }
}

/// Builds outbound messages for groups of the config.
struct Out<'a> {
    cfg: &'a Config,
    moves: &'a Moves,
}

impl Out<'_> {
    fn to(
        &self,
        group: &GroupId,
        text: String,
        kind: OutboundKind,
        thread: Option<String>,
        reply_to: Option<String>,
        op: Op,
    ) -> Option<Outbound> {
        let g = self.cfg.group(group)?;
        Some(Outbound {
            account: g.account.clone(),
            group: g.id.clone(),
            chat: self.moves.chat_of(g),
            text,
            reply_to,
            kind,
            thread,
            op,
            // Copies (and what replies to them) go to the group's topic.
            topic: g.topic.clone(),
            media: None,
        })
    }
}

/// In a Telegram forum, a reply belongs in the topic of the message it
/// answers: `topic` instead of the group's topic for copies.
fn in_topic(msg: Option<Outbound>, topic: Option<&String>) -> Option<Outbound> {
    msg.map(|mut m| {
        m.topic = topic.cloned();
        m
    })
}

/// The photo a held copy of thread `origin` for `group` carries, if any.
fn held_media(known: &relay::Known, origin: &str, group: &GroupId) -> Option<MediaRef> {
    [&known.replied, &known.edited, &known.senders_hold]
        .into_iter()
        .flatten()
        .filter(|t| t.alert.origin == origin)
        .filter_map(|t| t.held.as_ref())
        .flat_map(|h| h.outbox.iter())
        .find(|o| o.group == *group && o.media.is_some())
        .and_then(|o| o.media.clone())
}

/// The forum topic of an alert thread's original, when the store knows it.
fn thread_topic<'a>(known: &'a relay::Known, origin: &str) -> Option<&'a String> {
    [&known.replied, &known.edited, &known.senders_hold]
        .into_iter()
        .flatten()
        .chain(known.recent.iter())
        .map(|t| &t.alert)
        .chain(known.status.iter().map(|s| &s.alert))
        .find(|a| a.origin == origin)
        .and_then(|a| a.topic.as_ref())
}

async fn handle_message(
    state: &AppState,
    rt: &Runtime,
    m: InboundMessage,
) -> Result<Outcome, StoreError> {
    let platform = m.platform.as_str();
    let cfg = &rt.config;
    let moves = Moves::load(state).await?;
    let Some(group) = moves.group(cfg, &m) else {
        state.metrics.inc(
            "buurtrelay_messages_in_total",
            &[("platform", platform), ("outcome", "unknown_chat")],
        );
        info!(platform, account = %m.account, chat = %chat_for_log(m.chat.as_str()), "message from a chat that is not in the config: ignored");
        return Ok(Outcome::UnknownChat);
    };
    // A copy one of our own accounts posted, seen through another linked
    // number in the same group (WhatsApp): never relayed again.
    if m.platform.echoes_own_copies()
        && state
            .store
            .is_seen(&crate::platform::own_copy_key(m.platform, &m.chat, &m.text))
            .await?
    {
        state.metrics.inc(
            "buurtrelay_messages_in_total",
            &[("platform", platform), ("outcome", "own_copy")],
        );
        return Ok(Outcome::Ignored("our own copy, seen by another account"));
    }
    let m = whatsapp_identity(state, rt, group, m).await?;
    // A message seen before (a platform's retry) is refused by the write
    // below, which inserts its dedup mark only if absent: one store lookup
    // fewer for every message that is new, which is nearly all of them.
    let key = m.dedup_key();
    let now = now_ms();
    let known = crate::thread_map::known(
        state.store.as_ref(),
        &state.alert_words,
        cfg,
        group,
        &m,
        now,
    )
    .await?;
    let decision = relay::decide(cfg, group, &m, &rt.own_ids(m.platform), &known, now);
    let w = write_for(cfg, &moves, group, &m, &decision, &known, &key, now);

    let result = state.store.commit_ingest(&w).await?;
    state.store.flush().await?;
    crate::failpoint::hit("after_commit");

    match result {
        IngestResult::Duplicate => {
            state.metrics.inc(
                "buurtrelay_messages_in_total",
                &[("platform", platform), ("outcome", "duplicate")],
            );
            Ok(Outcome::Duplicate)
        }
        IngestResult::Accepted { queued, reminded } => {
            let forwarded = decision
                .actions
                .iter()
                .filter(|a| matches!(a, Action::Forward { .. }))
                .count();
            let followups = decision
                .actions
                .iter()
                .filter(|a| {
                    matches!(
                        a,
                        Action::FollowUp { .. } | Action::Edit { .. } | Action::Delete { .. }
                    )
                })
                .count();
            let reviewed = decision
                .actions
                .iter()
                .any(|a| matches!(a, Action::Review { .. }));
            let looks_only = decision.looks_only && forwarded == 0;
            let outcome = if m.edit.is_some() {
                "edit"
            } else if reviewed {
                "review"
            } else if looks_only {
                "looks_only"
            } else if decision.alert {
                "alert"
            } else if followups > 0 {
                "followup"
            } else {
                "no_action"
            };
            state.metrics.inc(
                "buurtrelay_messages_in_total",
                &[("platform", platform), ("outcome", outcome)],
            );
            if decision.alert && decision.effects.record.is_some() {
                let called = if decision.confirmed { "yes" } else { "no" };
                state
                    .metrics
                    .inc("buurtrelay_alerts_total", &[("police_called", called)]);
                state
                    .metrics
                    .add("buurtrelay_forwards_total", &[], forwarded as u64);
                if w.held.is_some() {
                    state
                        .metrics
                        .inc("buurtrelay_held_total", &[("event", "held")]);
                }
                info!(
                    group = %group.id,
                    sender = %mask_id(&m.sender.id),
                    categories = ?decision.categories,
                    confirmed = decision.confirmed,
                    forwards = forwarded,
                    reminded,
                    held = w.held.is_some(),
                    "alert"
                );
            }
            if reviewed || looks_only {
                // Not forwarded: the coordinators are asked (band of doubt),
                // or the member is asked what the person did.
                info!(
                    group = %group.id,
                    sender = %mask_id(&m.sender.id),
                    score = decision.score,
                    asked = if reviewed { "coordinators" } else { "member" },
                    "not forwarded yet: a person is asked"
                );
            }
            if let Some(u) = &w.hold_update {
                let event = match u.change {
                    HoldChange::Release(_) => Some("released_early"),
                    HoldChange::Drop => Some("dropped"),
                    HoldChange::Replace(_) | HoldChange::Append(_) => None,
                };
                if let Some(event) = event {
                    state
                        .metrics
                        .inc("buurtrelay_held_total", &[("event", event)]);
                    info!(group = %group.id, event, "held alert");
                }
            }
            if followups > 0 || decision.effects.thread.is_some() && !decision.alert {
                info!(
                    group = %group.id,
                    sender = %mask_id(&m.sender.id),
                    followups,
                    edit = m.edit.is_some(),
                    "thread"
                );
            }
            if reminded {
                state.metrics.inc("buurtrelay_reminders_total", &[]);
            }
            if queued > 0 {
                state.wake.notify_waiters();
            }
            Ok(Outcome::Accepted(decision))
        }
    }
}

/// The store mark that says WhatsApp member `lid` has phone JID `phone`.
/// Hashed: the store keeps no phone number in clear; purged with the other
/// marks after `relay.retention` (and learned again).
fn lid_key(lid: &str, phone: &str) -> String {
    use sha2::{Digest, Sha256};
    let h = Sha256::digest(format!("{lid}|{phone}").as_bytes());
    format!("lid|{}", hex::encode(&h[..16]))
}

/// The store mark that says the gateway was asked for `lid`'s number and
/// answered (so it is not asked again).
fn lid_asked_key(lid: &str) -> String {
    use sha2::{Digest, Sha256};
    let h = Sha256::digest(format!("asked|{lid}").as_bytes());
    format!("lid|{}", hex::encode(&h[..16]))
}

async fn mark(state: &AppState, key: String, now: u64) -> Result<(), StoreError> {
    let w = IngestWrite {
        dedup_key: key,
        at_ms: now,
        ..IngestWrite::default()
    };
    // Already there is fine: the mark says the same thing.
    state.store.commit_ingest(&w).await.map(|_| ())
}

/// WhatsApp names a member by phone JID (`32475...@c.us`) or by a privacy
/// id (`...@lid`), depending on the gateway and engine; admins list
/// coordinators and police by either. So the relay learns the pairs the
/// gateways show (NOWEB, GOWS and Evolution give both spellings; the
/// adapter names the member by phone and passes the `@lid` along), and a
/// member named only by `@lid` (WEBJS) who is listed by phone in this group
/// is recognised by a learned pair or by asking the gateway (WAHA's lid
/// lookup, with a short timeout; once it has answered with a number, never
/// again for that member). Only then does the sender become the
/// listed phone JID; anyone else keeps their `@lid`. The marks are written
/// before the message's own write, whose flush makes them durable.
async fn whatsapp_identity(
    state: &AppState,
    rt: &Runtime,
    group: &Group,
    mut m: InboundMessage,
) -> Result<InboundMessage, StoreError> {
    if m.platform.chat_space() != "whatsapp" {
        return Ok(m);
    }
    let now = now_ms();
    if let Some(lid) = &m.extra.sender_lid {
        let key = lid_key(lid, &m.sender.id);
        if !state.store.is_seen(&key).await? {
            mark(state, key, now).await?;
        }
        return Ok(m);
    }
    if !m.sender.id.ends_with("@lid") {
        return Ok(m);
    }
    let listed: Vec<&String> = group
        .coordinators
        .iter()
        .chain(group.police.iter())
        .filter(|p| p.ends_with("@c.us"))
        .collect();
    if listed.is_empty() || group.coordinators.contains(&m.sender.id) {
        return Ok(m);
    }
    let lid = m.sender.id.clone();
    let mut phone = None;
    for p in &listed {
        if state.store.is_seen(&lid_key(&lid, p)).await? {
            phone = Some((*p).clone());
            break;
        }
    }
    if phone.is_none() && !state.store.is_seen(&lid_asked_key(&lid)).await? {
        if let Some(platform) = rt.platforms.get(&m.account) {
            if let Some(pn) = platform.phone_of_lid(&lid).await {
                mark(state, lid_key(&lid, &pn), now).await?;
                mark(state, lid_asked_key(&lid), now).await?;
                if listed.contains(&&pn) {
                    phone = Some(pn);
                }
            }
        }
    }
    if let Some(p) = phone {
        debug!(group = %group.id, sender = %mask_id(&p), "a listed member, recognised by their @lid");
        m.extra.sender_lid = Some(lid);
        m.sender.id = p;
    }
    Ok(m)
}

/// The one store write a decision becomes.
#[allow(clippy::too_many_arguments)]
fn write_for(
    cfg: &Config,
    moves: &Moves,
    group: &Group,
    m: &InboundMessage,
    decision: &Decision,
    known: &relay::Known,
    key: &str,
    now: u64,
) -> IngestWrite {
    let out = Out { cfg, moves };
    let fx = &decision.effects;
    let mut w = IngestWrite {
        dedup_key: key.to_string(),
        at_ms: now,
        ..IngestWrite::default()
    };
    // Follow-ups of a held alert wait in its hold, unless this very
    // decision releases it (then they queue behind its copies).
    let releases = decision
        .actions
        .iter()
        .any(|a| matches!(a, Action::Release { .. }));
    let mut waiting = Vec::new();
    let pairs = |copies: &[(GroupId, String)], thread: &str| -> Vec<Outbound> {
        copies
            .iter()
            .filter_map(|(g, text)| {
                let mut o = out.to(
                    g,
                    text.clone(),
                    OutboundKind::Forward,
                    Some(thread.to_string()),
                    None,
                    Op::Send,
                )?;
                // New texts for held copies keep the photo they carried.
                o.media = held_media(known, thread, g);
                Some(o)
            })
            .collect()
    };
    for a in &decision.actions {
        match a {
            Action::Forward {
                group: to,
                text,
                thread,
            } => {
                let thread = thread.clone().or_else(|| Some(m.message_ref()));
                w.outbox.extend(out.to(
                    to,
                    text.clone(),
                    OutboundKind::Forward,
                    thread,
                    None,
                    Op::Send,
                ));
            }
            Action::Remind {
                text,
                cooldown_key,
                reply_to,
                ..
            } => {
                let msg = out.to(
                    &group.id,
                    text.clone(),
                    OutboundKind::Reminder,
                    None,
                    Some(reply_to.clone()),
                    Op::Send,
                );
                if let Some(msg) = in_topic(msg, m.extra.topic.as_ref()) {
                    w.reminder = Some(ReminderWrite {
                        cooldown_key: cooldown_key.clone(),
                        now_ms: now,
                        until_ms: now + cfg.relay.reminder_cooldown.as_millis() as u64,
                        msg,
                    });
                }
            }
            Action::Hold {
                until_ms, targets, ..
            } => {
                let text = relay::forward_text(cfg, group, m, true);
                let origin = m.message_ref();
                let outbox = targets
                    .iter()
                    .filter_map(|t| {
                        out.to(
                            t,
                            text.clone(),
                            OutboundKind::Forward,
                            Some(origin.clone()),
                            None,
                            Op::Send,
                        )
                    })
                    .collect();
                w.held = Some(HeldAlert {
                    origin,
                    until_ms: *until_ms,
                    outbox,
                });
            }
            Action::FollowUp {
                group: to,
                text,
                thread,
                reply_to,
            } => {
                let mut msg = out.to(
                    to,
                    text.clone(),
                    OutboundKind::FollowUp,
                    Some(thread.clone()),
                    reply_to.clone(),
                    Op::Send,
                );
                if reply_to.is_some() {
                    // A reply to the original, in the topic it was posted
                    // in: known from this very message when it is in the
                    // same group, else from the thread's record.
                    let topic = if *to == group.id {
                        m.extra.topic.as_ref()
                    } else {
                        thread_topic(known, thread)
                    };
                    msg = in_topic(msg, topic);
                }
                // Only copies wait; a reply to the original is for now.
                if fx.hold.is_some() && !releases && reply_to.is_none() {
                    waiting.extend(msg);
                } else {
                    w.outbox.extend(msg);
                }
            }
            Action::Edit {
                group: to,
                text,
                fallback,
                thread,
            } => {
                w.outbox.extend(out.to(
                    to,
                    text.clone(),
                    OutboundKind::FollowUp,
                    Some(thread.clone()),
                    None,
                    Op::Edit {
                        fallback: fallback.clone(),
                    },
                ));
            }
            Action::Delete {
                group: to,
                fallback,
                thread,
            } => {
                w.outbox.extend(out.to(
                    to,
                    fallback.clone(),
                    OutboundKind::FollowUp,
                    Some(thread.clone()),
                    None,
                    Op::Delete {
                        fallback: fallback.clone(),
                    },
                ));
            }
            Action::Answer {
                group: to,
                text,
                reply_to,
            }
            | Action::Review {
                group: to,
                text,
                reply_to,
                ..
            } => {
                w.outbox.extend(in_topic(
                    out.to(
                        to,
                        text.clone(),
                        OutboundKind::FollowUp,
                        None,
                        Some(reply_to.clone()),
                        Op::Send,
                    ),
                    m.extra.topic.as_ref(),
                ));
            }
            Action::Release {
                forward, copies, ..
            } => {
                if let Some((origin, until_ms)) = &fx.hold {
                    let change = if *forward {
                        HoldChange::Release(copies.as_ref().map(|c| pairs(c, origin)))
                    } else {
                        HoldChange::Drop
                    };
                    w.hold_update = Some(HoldUpdate {
                        origin: origin.clone(),
                        until_ms: *until_ms,
                        change,
                    });
                }
            }
            Action::Rewrite { copies, .. } => {
                if let Some((origin, until_ms)) = &fx.hold {
                    w.hold_update = Some(HoldUpdate {
                        origin: origin.clone(),
                        until_ms: *until_ms,
                        change: HoldChange::Replace(pairs(copies, origin)),
                    });
                }
            }
            Action::None { .. } => {}
        }
    }
    if !waiting.is_empty() {
        if let Some((origin, until_ms)) = &fx.hold {
            w.hold_update = Some(HoldUpdate {
                origin: origin.clone(),
                until_ms: *until_ms,
                change: HoldChange::Append(waiting),
            });
        }
    }
    if let (MediaPolicy::Forward, Some(media)) = (cfg.relay.media, &m.extra.media) {
        // The alert's own copies carry its photo; the note is what stands
        // in for it where it cannot travel.
        let media = MediaRef {
            note: relay::photo_note(cfg, group),
            ..media.clone()
        };
        let origin = m.message_ref();
        let attach = |msgs: &mut Vec<Outbound>| {
            for o in msgs.iter_mut().filter(|o| {
                o.kind == OutboundKind::Forward && o.thread.as_deref() == Some(origin.as_str())
            }) {
                o.media = Some(media.clone());
            }
        };
        attach(&mut w.outbox);
        if let Some(h) = &mut w.held {
            attach(&mut h.outbox);
        }
    }
    if let Some(thread) = &fx.thread {
        w.links
            .push((link_key(&m.chat, &m.message_id), thread.clone()));
    }
    if let Some(r) = &fx.record {
        w.links
            .push((link_key(&m.chat, &r.message_id), r.origin.clone()));
        w.alert = Some((**r).clone());
    }
    if let (Some(thread), false) = (&fx.thread, fx.changes.is_empty()) {
        w.alert_update = Some(AlertUpdate {
            origin: thread.clone(),
            changes: fx.changes.clone(),
        });
    }
    w
}
