//! The ingest path: inbound event → dedup → decision → one atomic, flushed
//! store write. A webhook is acknowledged only after [`handle`] returns Ok;
//! nothing here sends: the delivery workers are woken instead, so a slow
//! platform never slows ingest.

use tracing::{debug, error, info, warn};

use crate::message::{Inbound, InboundMessage, Outbound, OutboundKind};
use crate::relay::{self, Action, Decision};
use crate::runtime::Runtime;
use crate::startup::AppState;
use crate::store::{AlertRecord, HeldAlert, IngestResult, IngestWrite, ReminderWrite, StoreError};
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
            Ok(Outcome::Ignored("chat migrated"))
        }
        Inbound::Message(m) => handle_message(state, rt, m).await,
    }
}

async fn handle_message(
    state: &AppState,
    rt: &Runtime,
    m: InboundMessage,
) -> Result<Outcome, StoreError> {
    let platform = m.platform.as_str();
    let cfg = &rt.config;
    let Some(group) = cfg.group_by_chat(m.platform, &m.chat) else {
        state.metrics.inc(
            "buurtrelay_messages_in_total",
            &[("platform", platform), ("outcome", "unknown_chat")],
        );
        info!(platform, account = %m.account, chat = %chat_for_log(m.chat.as_str()), "message from a chat that is not in the config: ignored");
        return Ok(Outcome::UnknownChat);
    };
    if m.edit.is_some() {
        // Edits reach the copies in a later version (thread map); the
        // original was already handled when it was first posted.
        state.metrics.inc(
            "buurtrelay_messages_in_total",
            &[("platform", platform), ("outcome", "edit")],
        );
        return Ok(Outcome::Ignored("edits are not relayed yet"));
    }
    // A copy one of our own accounts posted, seen through another linked
    // number in the same group (WhatsApp): never relayed again.
    let own = crate::platform::own_copy_key(m.platform, &m.chat, &m.text);
    if state.store.is_seen(&own)? {
        state.metrics.inc(
            "buurtrelay_messages_in_total",
            &[("platform", platform), ("outcome", "own_copy")],
        );
        return Ok(Outcome::Ignored("our own copy, seen by another account"));
    }
    let key = m.dedup_key();
    if state.store.is_seen(&key)? {
        state.metrics.inc(
            "buurtrelay_messages_in_total",
            &[("platform", platform), ("outcome", "duplicate")],
        );
        return Ok(Outcome::Duplicate);
    }
    let now = now_ms();
    let decision = relay::decide(cfg, group, &m, &rt.own_ids(m.platform), now);

    let mut w = IngestWrite {
        dedup_key: key.clone(),
        at_ms: now,
        ..IngestWrite::default()
    };
    let mut forwarded = Vec::new();
    for a in &decision.actions {
        match a {
            Action::Forward { group: to, text } => {
                if let Some(t) = cfg.group(to) {
                    w.outbox.push(Outbound {
                        account: t.account.clone(),
                        group: t.id.clone(),
                        chat: t.chat.clone(),
                        text: text.clone(),
                        reply_to: None,
                        kind: OutboundKind::Forward,
                    });
                    forwarded.push(t.id.clone());
                }
            }
            Action::Remind {
                text,
                cooldown_key,
                reply_to,
                ..
            } => {
                w.reminder = Some(ReminderWrite {
                    cooldown_key: cooldown_key.clone(),
                    now_ms: now,
                    until_ms: now + cfg.relay.reminder_cooldown.as_millis() as u64,
                    msg: Outbound {
                        account: group.account.clone(),
                        group: group.id.clone(),
                        chat: group.chat.clone(),
                        text: text.clone(),
                        reply_to: Some(reply_to.clone()),
                        kind: OutboundKind::Reminder,
                    },
                });
            }
            Action::Hold {
                until_ms, targets, ..
            } => {
                let text = relay::forward_text(cfg, group, &m, true);
                let outbox = targets
                    .iter()
                    .filter_map(|t| cfg.group(t))
                    .map(|t| Outbound {
                        account: t.account.clone(),
                        group: t.id.clone(),
                        chat: t.chat.clone(),
                        text: text.clone(),
                        reply_to: None,
                        kind: OutboundKind::Forward,
                    })
                    .collect();
                w.held = Some(HeldAlert {
                    origin: key.clone(),
                    until_ms: *until_ms,
                    outbox,
                });
            }
            Action::None { .. } => {}
        }
    }
    if decision.alert {
        w.alert = Some(AlertRecord {
            origin: key.clone(),
            group: group.id.clone(),
            message_id: m.message_id.clone(),
            categories: decision.categories.clone(),
            confirmed: decision.confirmed,
            at_ms: now,
            targets: forwarded.clone(),
            text: m.text.clone(),
        });
    }

    let result = state.store.commit_ingest(&w)?;
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
            let outcome = if decision.alert { "alert" } else { "no_action" };
            state.metrics.inc(
                "buurtrelay_messages_in_total",
                &[("platform", platform), ("outcome", outcome)],
            );
            if decision.alert {
                let called = if decision.confirmed { "yes" } else { "no" };
                state
                    .metrics
                    .inc("buurtrelay_alerts_total", &[("police_called", called)]);
                state
                    .metrics
                    .add("buurtrelay_forwards_total", &[], forwarded.len() as u64);
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
                    forwards = forwarded.len(),
                    reminded,
                    held = w.held.is_some(),
                    "alert"
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
