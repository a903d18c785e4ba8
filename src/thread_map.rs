//! The thread map's two edges: what the ingest looks up before the relay
//! decides ([`known`]), and how a message of a thread is delivered
//! ([`deliver`]): a follow-up, edit or deletion finds the thread's copy in
//! its chat when it is sent, not when it was decided.
//!
//! Why at send time: a follow-up may be accepted before its alert's copy is
//! delivered (the copy is retrying, or waits behind a rate limit). The
//! dispatcher keeps strict order within a chat and sends alerts before
//! follow-ups, so when a follow-up's turn comes its copy in that chat has
//! been sent (and recorded by `complete`), or given up on. A follow-up for a
//! group that has no copy (given up, or never routed there) is not sent: it
//! would answer nothing. A held alert's follow-ups wait in its hold and are
//! queued behind its copies when it is released.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use tracing::debug;

use crate::config::{ChatId, Config, Group};
use crate::message::{InboundMessage, Op, Outbound, OutboundKind, Sent, link_key};
use crate::platform::{ChangeError, Platform, SendError};
use crate::relay::{self, CommandKind, Known, StatusItem, Thread};
use crate::store::{AlertRecord, DeliveryState, Store, StoreError, sender_hash};

/// How many alerts `/status` lists.
const STATUS_ALERTS: usize = 5;
/// How many recent alerts are compared with a new one, at most.
/// How many of the newest alerts in the merge window a new alert is compared
/// with: a few per village per day is the load, and the comparison costs
/// tens of microseconds each.
const RECENT_ALERTS: usize = 100;

/// How many of a chat's held alerts are looked at for the sender's own.
const HELD_PER_CHAT: usize = 100;

/// The thread state of an alert record: its hold, and the groups reached.
async fn thread(store: &dyn Store, alert: AlertRecord) -> Result<Thread, StoreError> {
    let held = store.held_of(&alert.origin).await?;
    let reached = store
        .delivery_states(&alert.origin)
        .await?
        .into_iter()
        .filter(|t| {
            t.group != alert.group
                && matches!(
                    t.state,
                    DeliveryState::Delivered | DeliveryState::Pending | DeliveryState::Retrying
                )
        })
        .map(|t| t.group)
        .collect();
    Ok(Thread {
        alert,
        held,
        reached,
    })
}

/// The informative words of recent alerts (see [`relay::similar::tokens`]),
/// kept between messages: every new alert is compared with up to
/// [`RECENT_ALERTS`] recent ones, and working out their words again each
/// time was most of the cost of taking in a burst of reports of one
/// incident. Keyed by origin and text (an edited alert has new words); a
/// full cache starts afresh.
#[derive(Default)]
pub struct AlertWords {
    words: std::sync::Mutex<HashMap<WordsKey, Arc<BTreeSet<String>>>>,
}

/// An alert's origin and a hash of its text.
type WordsKey = (String, u64);

impl AlertWords {
    const CAPACITY: usize = 1024;

    fn of(&self, a: &AlertRecord) -> Arc<BTreeSet<String>> {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        a.text.hash(&mut h);
        let key = (a.origin.clone(), h.finish());
        let Ok(mut map) = self.words.lock() else {
            return Arc::new(relay::similar::tokens(&a.text));
        };
        if let Some(w) = map.get(&key) {
            return w.clone();
        }
        if map.len() >= Self::CAPACITY {
            map.clear();
        }
        let w = Arc::new(relay::similar::tokens(&a.text));
        map.insert(key, w.clone());
        w
    }
}

/// What the store knows about `msg`'s thread (see [`Known`]).
pub async fn known(
    store: &dyn Store,
    words: &AlertWords,
    cfg: &Config,
    group: &Group,
    msg: &InboundMessage,
    now_ms: u64,
) -> Result<Known, StoreError> {
    let mut k = Known::default();
    if msg.edit.is_some() {
        if let Some(a) = store.alert(&msg.message_ref()).await? {
            k.edited = Some(thread(store, a).await?);
        }
        return Ok(k);
    }
    if let Some(r) = &msg.reply_to {
        if let Some(a) = store.thread_of(&link_key(&msg.chat, r)).await? {
            k.replied = Some(thread(store, a).await?);
        }
    }
    match relay::parse_command(cfg, &msg.text) {
        Some(CommandKind::Status) => {
            for alert in store.recent_alerts(STATUS_ALERTS).await? {
                let targets = store.delivery_states(&alert.origin).await?;
                k.status.push(StatusItem { alert, targets });
            }
            return Ok(k);
        }
        Some(_) => return Ok(k),
        None => {}
    }
    if k.replied.is_some() {
        return Ok(k);
    }
    // The sender's own held alert in this group (most of the time no alert
    // is held at all: nothing to work out then).
    // By the index: only this chat's held alerts are read (a few at most:
    // a hold lasts minutes).
    let space = msg.platform.chat_space();
    let chat_prefix = format!("{space}|{}|", msg.chat);
    let held = store.held_in(&chat_prefix, HELD_PER_CHAT).await?;
    if !held.is_empty() {
        let me = sender_hash(space, &msg.sender.id);
        for h in held {
            if let Some(a) = store.alert(&h.origin).await? {
                if a.sender == me {
                    k.senders_hold = Some(thread(store, a).await?);
                    break;
                }
            }
        }
    }
    // Earlier reports of the same incident: only the alerts whose text is
    // alike are looked at further (their copies' states are a scan).
    // Only an alert can be a second report of one.
    let window = cfg.relay.merge_window.as_millis() as u64;
    let c = (window > 0).then(|| cfg.rules.classify(&msg.text));
    let is_alert = c.as_ref().is_some_and(|c| c.alert);
    k.classified = c;
    if is_alert {
        // Worked out only once there is an alert of another group to compare
        // with: most alerts have none within the merge window.
        let mut me = None;
        for a in store
            .alerts_since(now_ms.saturating_sub(window), RECENT_ALERTS)
            .await?
        {
            if a.group != group.id
                && !a.retracted
                && me
                    .get_or_insert_with(|| relay::similar::Fingerprint::of(&msg.text))
                    .same_incident_as_words(&a.text, &words.of(&a))
            {
                k.recent.push(thread(store, (*a).clone()).await?);
            }
        }
    }
    Ok(k)
}

/// Where `chat` is now, if it moved (a Telegram group upgraded to a
/// supergroup, see `Store::migrate_chat`).
pub async fn current_chat(store: &dyn Store, chat: &ChatId) -> Result<Option<ChatId>, StoreError> {
    let now = store.chat_now(chat).await?;
    Ok((now != *chat).then_some(now))
}

fn store_failed(e: StoreError) -> SendError {
    SendError::Transient(format!("cannot read the thread map: {e}"))
}

/// Where the photo of an entry comes from: the platform that delivered it
/// (`None`: that account is gone from the config), and the size limit.
pub struct MediaSource<'a> {
    pub platform: Option<&'a dyn Platform>,
    pub max_bytes: u64,
}

/// Posts a copy with its photo: by reference where the platform knows the
/// file (Telegram, the same bot), else fetched from the platform that
/// delivered it and uploaded. A fetch or post that fails for a while is
/// retried like any send; a photo that cannot travel at all (too large,
/// gone, a platform without photos) leaves the copy as text with the note
/// that a photo was posted in the village of origin: the alert is never
/// held back for its photo.
async fn send_with_photo(
    platform: &dyn Platform,
    source: &MediaSource<'_>,
    msg: &Outbound,
) -> Result<Sent, SendError> {
    let Some(media) = &msg.media else {
        return platform.send(msg).await;
    };
    let as_text = |why: &str| {
        debug!(group = %msg.group, why, "the photo does not travel: the copy goes as text with the note");
        let mut m = msg.clone();
        m.media = None;
        if !media.note.is_empty() {
            m.text = format!("{}\n{}", msg.text, media.note);
        }
        m
    };
    if media.size.is_some_and(|s| s > source.max_bytes) {
        return platform
            .send(&as_text("larger than relay.media_max_bytes"))
            .await;
    }
    let file = if platform.knows_media(media) {
        None
    } else {
        let Some(from) = source.platform else {
            return platform
                .send(&as_text("its account is no longer configured"))
                .await;
        };
        match from.fetch_media(media, source.max_bytes).await {
            Ok(f) => Some(f),
            Err(SendError::Permanent(why)) => return platform.send(&as_text(&why)).await,
            Err(e) => return Err(e),
        }
    };
    match platform.send_photo(msg, media, file.as_ref()).await {
        Err(SendError::Permanent(why)) => platform.send(&as_text(&why)).await,
        other => other,
    }
}

/// Sends one outbox entry: a plain message as it is; a follow-up as a reply
/// to its thread's copy in that chat; an edit or deletion applied to that
/// copy, or, where the platform cannot, its fallback posted as a reply to
/// it. [`Sent::nothing`] when there is no copy to answer or change.
pub async fn deliver(
    store: &dyn Store,
    platform: &dyn Platform,
    media: &MediaSource<'_>,
    msg: &Outbound,
) -> Result<Sent, SendError> {
    // A chat that moved since the entry was queued (or decoded by a
    // dispatcher) is sent to where it is now.
    let moved;
    let msg = match current_chat(store, &msg.chat).await.map_err(store_failed)? {
        Some(to) => {
            let mut m = msg.clone();
            m.chat = to;
            moved = m;
            &moved
        }
        None => msg,
    };
    let copy_id = async |root: &str| -> Result<Option<String>, SendError> {
        Ok(store
            .copy_in(root, &msg.group)
            .await
            .map_err(store_failed)?
            .map(|c| c.message_id))
    };
    match &msg.op {
        Op::Send => {
            let Some(root) = msg.thread.as_deref() else {
                return platform.send(msg).await;
            };
            if msg.media.is_some() {
                return send_with_photo(platform, media, msg).await;
            }
            if msg.kind != OutboundKind::FollowUp || msg.reply_to.is_some() {
                return platform.send(msg).await;
            }
            match copy_id(root).await? {
                Some(id) => {
                    let mut m = msg.clone();
                    m.reply_to = Some(id);
                    platform.send(&m).await
                }
                None => {
                    debug!(group = %msg.group, "no copy of the thread in this group: follow-up not sent");
                    Ok(Sent::nothing())
                }
            }
        }
        Op::Edit { fallback } | Op::Delete { fallback } => {
            let Some(root) = msg.thread.as_deref() else {
                return Ok(Sent::nothing());
            };
            let Some(id) = copy_id(root).await? else {
                debug!(group = %msg.group, "no copy of the thread in this group: nothing to change");
                return Ok(Sent::nothing());
            };
            let changed = match msg.op {
                Op::Edit { .. } => platform.edit(msg, &id).await,
                _ => platform.delete(msg, &id).await,
            };
            match changed {
                Ok(()) => Ok(Sent::nothing()),
                Err(ChangeError::NotSupported) => {
                    let mut m = msg.clone();
                    m.text = fallback.clone();
                    m.reply_to = Some(id);
                    m.op = Op::Send;
                    platform.send(&m).await
                }
                Err(ChangeError::Failed(e)) => Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::GroupId;

    fn alert(text: &str) -> AlertRecord {
        AlertRecord {
            origin: "sandbox|veulen|7".into(),
            group: GroupId::parse("veulen").unwrap(),
            message_id: "7".into(),
            categories: vec![],
            confirmed: true,
            at_ms: 1,
            targets: vec![],
            text: text.into(),
            sender: String::new(),
            retracted: false,
            all_clear: false,
            sightings: vec![],
            forced: false,
            topic: None,
        }
    }

    #[test]
    fn an_alerts_words_are_kept_until_its_text_changes() {
        let words = AlertWords::default();
        let a = alert("Grijze bestelwagen in de Kerkstraat");
        let first = words.of(&a);
        assert!(Arc::ptr_eq(&first, &words.of(&a)), "kept");
        assert!(first.contains("kerkstraat"));
        let edited = alert("Witte bestelwagen in de Molenstraat");
        let second = words.of(&edited);
        assert!(second.contains("molenstraat") && !second.contains("kerkstraat"));
    }
}
