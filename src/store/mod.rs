//! Durable state behind one trait: dedup marks, the outbox, reminder
//! cooldowns, the record of alerts and their delivered copies, the thread
//! map, and the sandbox platform's chats.
//!
//! The thread map keeps an alert and everything that belongs to it together:
//! the alert record (by time, and an index by its origin), the copies with
//! their platform message ids (`complete` records them), and links from every
//! message of the thread (the original, its copies, follow-ups and their
//! copies) to the thread's origin, so a reply to any of them is found. Links
//! are written in the same atomic step as the message or copy they name.
//!
//! The guarantee the ingest path relies on: [`Store::commit_ingest`] writes
//! the dedup mark and everything derived from the message in ONE atomic
//! step, and [`Store::flush`] makes it durable before the webhook is
//! answered.
//!
//! Every method is async and no engine blocks a tokio worker: a store runs
//! its database on threads of its own, so a slow disk delays the answers
//! that wait for the store, and nothing else (the timers, `/healthz`, the
//! sends in flight go on). The trait names no engine: its error is
//! [`StoreError`]. sled ([`SledStore`], in `sled/`) is the implementation;
//! the trait is the seam for a shared PostgreSQL later (outbox claimed with
//! `FOR UPDATE SKIP LOCKED`). The sandbox platform's chats are a store of
//! their own, [`SandboxChats`], which the sled store also keeps.

mod sled;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use self::sled::SledStore;

use crate::config::{AccountId, ChatId, GroupId};
use crate::message::{Outbound, Sent};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed or cannot be reached (disk full, I/O error, its
    /// threads stopped): the webhook answers 503 so the platform retries
    /// later; nothing is half-written.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A stored record could not be decoded (a bug or a foreign file).
    #[error("store: corrupt record: {0}")]
    Corrupt(String),
}

/// An outbox entry: one message for one chat, until it is delivered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEntry {
    pub id: u64,
    /// The dedup key of the message this entry was derived from.
    pub origin: String,
    pub msg: Outbound,
    pub created_ms: u64,
    pub attempts: u32,
    pub next_at_ms: u64,
    pub last_error: Option<String>,
}

/// A reminder that may only go out if the member's cooldown allows it; the
/// check and the new cooldown are part of the same atomic write.
#[derive(Clone, Debug)]
pub struct ReminderWrite {
    pub cooldown_key: String,
    pub now_ms: u64,
    pub until_ms: u64,
    pub msg: Outbound,
}

/// What the network should remember about an alert (for status pages and
/// later follow-ups). Text is purged after the retention period.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertRecord {
    /// The original's [`crate::message::InboundMessage::message_ref`]: the thread's name.
    pub origin: String,
    pub group: GroupId,
    pub message_id: String,
    pub categories: Vec<String>,
    pub confirmed: bool,
    pub at_ms: u64,
    /// The groups that get (or, for a held alert, will get) a copy.
    pub targets: Vec<GroupId>,
    pub text: String,
    /// A hash of the sender (see [`sender_hash`]): whose follow-up releases a hold.
    #[serde(default)]
    pub sender: String,
    /// A coordinator retracted it (`/intrekken`).
    #[serde(default)]
    pub retracted: bool,
    /// An all-clear ("vals alarm") was relayed.
    #[serde(default)]
    pub all_clear: bool,
    /// Other groups where the same incident was reported ("ook gemeld in").
    #[serde(default)]
    pub sightings: Vec<GroupId>,
    /// A coordinator forced the forward (`/doorsturen`).
    #[serde(default)]
    pub forced: bool,
    /// Telegram forum groups: the topic the original was posted in, so a
    /// follow-up from another group replies to it there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
}

/// The sender of a message as the thread map and the cooldowns keep it: a
/// keyed hash (see [`crate::privacy`]) of the chat space and the platform
/// user id (the id itself is never stored).
pub fn sender_hash(space: &str, sender_id: &str) -> String {
    let h = crate::privacy::key().mac(&format!("{space}:{sender_id}"));
    hex::encode(&h[..12])
}

/// A change to a stored alert, applied inside the ingest transaction to the
/// record as it is then (so two changes never overwrite each other).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AlertChange {
    Retracted,
    AllClear,
    Sighting(GroupId),
    /// The original was edited.
    Text {
        text: String,
        confirmed: bool,
    },
    /// Forwarded after all (`/doorsturen`), to these groups.
    Forced(Vec<GroupId>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlertUpdate {
    pub origin: String,
    pub changes: Vec<AlertChange>,
}

/// A change to a held alert, applied inside the ingest transaction. When the
/// hold has ended meanwhile (its time ran out, or another message released
/// it), a release, drop or replace does nothing (never a double), and an
/// append is queued directly (behind the copies the release queued).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HoldChange {
    /// End the hold now and queue its copies: these instead of the stored
    /// copies when given (the follow-ups appended to the hold follow them).
    Release(Option<Vec<Outbound>>),
    /// End the hold without forwarding (false alarm, retraction).
    Drop,
    /// New copies (the original was edited); appended follow-ups stay.
    Replace(Vec<Outbound>),
    /// Follow-ups that wait with the hold and go out after its copies.
    Append(Vec<Outbound>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HoldUpdate {
    pub origin: String,
    pub until_ms: u64,
    pub change: HoldChange,
}

/// Everything one accepted message leads to, written at once.
#[derive(Clone, Debug, Default)]
pub struct IngestWrite {
    pub dedup_key: String,
    pub at_ms: u64,
    pub outbox: Vec<Outbound>,
    pub reminder: Option<ReminderWrite>,
    pub alert: Option<AlertRecord>,
    pub held: Option<HeldAlert>,
    /// Thread map links: (a [`crate::message::link_key`], the thread's origin).
    pub links: Vec<(String, String)>,
    pub alert_update: Option<AlertUpdate>,
    pub hold_update: Option<HoldUpdate>,
}

impl IngestWrite {
    /// Nothing but the dedup mark (most messages: chit-chat). The pattern
    /// names every field, so a new one cannot be forgotten here.
    pub fn is_mark_only(&self) -> bool {
        let IngestWrite {
            dedup_key: _,
            at_ms: _,
            outbox,
            reminder,
            alert,
            held,
            links,
            alert_update,
            hold_update,
        } = self;
        outbox.is_empty()
            && reminder.is_none()
            && alert.is_none()
            && held.is_none()
            && links.is_empty()
            && alert_update.is_none()
            && hold_update.is_none()
    }
}

/// An unconfirmed alert kept back (`relay.unconfirmed = "hold"`), with the
/// copies it will become when released.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldAlert {
    pub origin: String,
    pub until_ms: u64,
    pub outbox: Vec<Outbound>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IngestResult {
    /// Seen before (a webhook retry, or another account in the same group).
    Duplicate,
    Accepted {
        queued: usize,
        reminded: bool,
    },
}

/// A chat id that changed (a Telegram group upgraded to a supergroup).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMove {
    pub from: ChatId,
    pub to: ChatId,
    pub at_ms: u64,
}

/// A delivered copy of an origin message in one target group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyRecord {
    pub group: GroupId,
    pub account: AccountId,
    pub chat: String,
    pub message_id: String,
    pub sent_ms: u64,
}

/// A message in a sandbox chat (the built-in demo platform).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxMessage {
    pub id: String,
    pub sender: String,
    pub sender_name: Option<String>,
    pub text: String,
    pub reply_to: Option<String>,
    /// Written by the relay itself.
    pub from_relay: bool,
    pub at_ms: u64,
    /// When the text was last changed (an edit), if ever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_ms: Option<u64>,
}

/// Queue depth of one account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct QueueStats {
    pub account: AccountId,
    pub depth: usize,
    pub oldest_ms: Option<u64>,
}

/// Where one copy of an origin message stands (for the dashboard).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryState {
    /// Sent: a copy record exists.
    Delivered,
    /// In the outbox, not tried yet.
    Pending,
    /// In the outbox after at least one failed try.
    Retrying,
    /// Given up on; kept in the dead letters (re-sendable).
    Dead,
    /// Part of a held alert (`relay.unconfirmed = "hold"`), not queued yet.
    Held,
}

/// The state of the copy of one origin message for one group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TargetDelivery {
    pub group: GroupId,
    pub state: DeliveryState,
    pub attempts: u32,
    pub last_error: Option<String>,
    /// Delivered: when it was sent; held: when the hold ends; otherwise
    /// when it was queued.
    pub at_ms: u64,
    /// The outbox or dead-letter id, when there is one.
    pub entry_id: Option<u64>,
}

/// The relay's durable state. Every method may wait for the disk (or a
/// database server), never on a tokio worker's time.
#[async_trait]
pub trait Store: Send + Sync {
    /// Writes a message's dedup mark and everything derived from it, atomically.
    async fn commit_ingest(&self, w: &IngestWrite) -> Result<IngestResult, StoreError>;

    /// Makes every write so far durable. Concurrent callers share flushes.
    async fn flush(&self) -> Result<(), StoreError>;

    /// Counts the duration of every flush from now on in
    /// `buurtrelay_store_flush_seconds` (the first registry given stays).
    fn count_flushes_in(&self, _metrics: std::sync::Arc<crate::telemetry::Metrics>) {}

    async fn is_seen(&self, dedup_key: &str) -> Result<bool, StoreError>;

    /// Pending entries of one account in delivery order (priority, then
    /// arrival).
    async fn pending(
        &self,
        account: &AccountId,
        limit: usize,
    ) -> Result<Vec<OutboxEntry>, StoreError>;

    /// Pending entries of one account with an id above `after` (entries
    /// accepted since a previous look; `None`: all), in delivery order.
    async fn pending_after(
        &self,
        account: &AccountId,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<OutboxEntry>, StoreError>;

    /// Records what was posted, then removes the delivered entries: a
    /// `Forward` is recorded as its thread's copy in its group (a reminder as
    /// before, under its origin), and every message of a thread is linked to
    /// it, so replies to it are found. [`Sent::nothing`] records nothing.
    /// Each entry leaves the outbox only once its copy and thread link are
    /// recorded, so a crash can leave an entry queued (sent again) but never
    /// gone unrecorded. Not flushed: the caller flushes before it relies on it.
    async fn complete_many(
        &self,
        done: &[(&OutboxEntry, &Sent)],
        at_ms: u64,
    ) -> Result<(), StoreError>;

    /// Stores a changed retry state (attempts, next_at_ms, last_error).
    async fn reschedule(&self, entry: &OutboxEntry) -> Result<(), StoreError>;

    /// Moves an entry to the dead letters, atomically.
    async fn dead_letter(&self, entry: &OutboxEntry) -> Result<(), StoreError>;

    /// The newest dead letters, newest first.
    async fn dead_letters(&self, limit: usize) -> Result<Vec<OutboxEntry>, StoreError>;

    /// How many dead letters there are (a counter, not a count).
    async fn dead_letter_count(&self) -> Result<u64, StoreError>;

    /// Puts a dead letter back in the outbox for another try.
    async fn resend_dead(&self, id: u64, now_ms: u64) -> Result<bool, StoreError>;

    /// Every account with queued entries: how many, and since when. Read
    /// from counters kept with the outbox, never by walking it.
    async fn queue_stats(&self) -> Result<Vec<QueueStats>, StoreError>;

    /// Cheap, for readiness probes: the store answers a read and can still
    /// make writes durable.
    async fn ready(&self) -> Result<(), StoreError>;

    /// The delivered copy of thread `origin` in one group.
    async fn copy_in(
        &self,
        origin: &str,
        group: &GroupId,
    ) -> Result<Option<CopyRecord>, StoreError>;

    /// The alert thread a message belongs to, by its [`crate::message::link_key`].
    async fn thread_of(&self, link_key: &str) -> Result<Option<AlertRecord>, StoreError>;

    /// The alert record of a thread, by its origin.
    async fn alert(&self, origin: &str) -> Result<Option<AlertRecord>, StoreError>;

    /// Alerts recorded at or after `from_ms`, newest first (shared: the
    /// store may serve them from memory).
    async fn alerts_since(
        &self,
        from_ms: u64,
        limit: usize,
    ) -> Result<Vec<std::sync::Arc<AlertRecord>>, StoreError>;

    /// The held alert of one thread (`relay.unconfirmed = "hold"`), if held.
    async fn held_of(&self, origin: &str) -> Result<Option<HeldAlert>, StoreError>;

    /// The alerts held now whose origin begins with `origin_prefix` (one
    /// chat's: `space|chat|`), at most `limit`.
    async fn held_in(
        &self,
        origin_prefix: &str,
        limit: usize,
    ) -> Result<Vec<HeldAlert>, StoreError>;

    /// Moves a chat's state to its new id (a Telegram group upgraded to a
    /// supergroup): pending and dead entries, held copies, copy records and
    /// thread links. Idempotent; returns how many records changed.
    async fn migrate_chat(
        &self,
        from: &ChatId,
        to: &ChatId,
        at_ms: u64,
    ) -> Result<usize, StoreError>;

    /// Chat ids that changed, oldest first.
    async fn chat_moves(&self) -> Result<Vec<ChatMove>, StoreError>;

    /// Where `chat` is now: itself, or the id it moved to (a chat may move
    /// twice: the moves are followed, a few at most, so a bad record never
    /// loops).
    async fn chat_now(&self, chat: &ChatId) -> Result<ChatId, StoreError>;

    /// Every group that one origin message has (or will have) a copy in, and
    /// how far that copy got: one entry per group, in the order delivered,
    /// outbox, dead letters, held (a group's first state wins). The reminder
    /// is the entry for the origin's own group.
    async fn delivery_states(&self, origin: &str) -> Result<Vec<TargetDelivery>, StoreError>;

    async fn recent_alerts(&self, limit: usize) -> Result<Vec<AlertRecord>, StoreError>;

    /// Held alerts whose time is up.
    async fn due_held(&self, now_ms: u64, limit: usize) -> Result<Vec<HeldAlert>, StoreError>;

    /// Ends a hold: removes it and, if `forward`, queues its copies, atomically.
    async fn release_held(
        &self,
        held: &HeldAlert,
        forward: bool,
        now_ms: u64,
    ) -> Result<usize, StoreError>;

    /// Removes dedup marks, cooldowns, alert texts, copies and thread links
    /// older than `cutoff_ms`.
    async fn purge_before(&self, cutoff_ms: u64) -> Result<usize, StoreError>;

    /// Removes the dead letters queued before `cutoff_ms`; how many.
    async fn expire_dead_letters(&self, cutoff_ms: u64) -> Result<usize, StoreError>;

    /// Removes the chat moves made before `cutoff_ms`, except those of the
    /// chats in `keep` (still named by their old id in the config); how many.
    async fn expire_chat_moves(&self, cutoff_ms: u64, keep: &[ChatId])
    -> Result<usize, StoreError>;
}

/// The chats of the built-in sandbox platform (demos, the playground,
/// tests): what a real platform keeps on its own servers. Apart from the
/// relay's state, so a second engine need not carry it.
#[async_trait]
pub trait SandboxChats: Send + Sync {
    /// Appends a message to a chat; the stored message has its new id.
    async fn append(&self, chat: &str, msg: SandboxMessage) -> Result<SandboxMessage, StoreError>;

    /// The newest `limit` messages of a chat, oldest first.
    async fn list(&self, chat: &str, limit: usize) -> Result<Vec<SandboxMessage>, StoreError>;

    /// One message of a chat.
    async fn get(&self, chat: &str, id: &str) -> Result<Option<SandboxMessage>, StoreError>;

    /// Changes a message's text; `None` if there is no such message.
    async fn edit(
        &self,
        chat: &str,
        id: &str,
        text: &str,
        at_ms: u64,
    ) -> Result<Option<SandboxMessage>, StoreError>;

    /// Deletes a message; false if there was none.
    async fn delete(&self, chat: &str, id: &str) -> Result<bool, StoreError>;

    /// Removes the messages written before `cutoff_ms`; how many.
    async fn expire_before(&self, cutoff_ms: u64) -> Result<usize, StoreError>;
}
