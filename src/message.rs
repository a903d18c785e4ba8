//! Platform-neutral messages: what adapters produce from webhooks (inbound)
//! and what the delivery workers hand them to send (outbound).

use serde::{Deserialize, Serialize};

use crate::config::{AccountId, ChatId, GroupId, PlatformKind};

/// Who wrote a message. `id` is the platform user id: never logged at info
/// level, never forwarded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sender {
    pub id: String,
    /// The display name the platform gives (may be missing or a number).
    pub name: Option<String>,
    /// The platform says the sender is a bot.
    pub is_bot: bool,
}

/// A member's message in a group chat, as the relay sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboundMessage {
    /// The account whose webhook received it.
    pub account: AccountId,
    pub platform: PlatformKind,
    pub chat: ChatId,
    /// The platform's id of the message within the chat.
    pub message_id: String,
    pub sender: Sender,
    pub text: String,
    /// The platform message id this one replies to, if any.
    pub reply_to: Option<String>,
    /// Milliseconds since the epoch, as the platform dated it.
    pub at_ms: u64,
    /// `Some(version)` for an edit of an earlier message.
    pub edit: Option<u64>,
    /// The message this one replies to, as the platform quoted it (Telegram's
    /// `reply_to_message`, WAHA's `replyTo`, the sandbox's store), when the
    /// platform gives it: what a coordinator's `/doorsturen` forwards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quoted: Option<Box<Quoted>>,
    /// What only some platforms say about a message (all optional).
    #[serde(default, skip_serializing_if = "Extra::is_empty")]
    pub extra: Box<Extra>,
}

/// What only some platforms say about a message. Every field is optional:
/// a platform that knows nothing of it leaves the default.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extra {
    /// Telegram: the forum topic (`message_thread_id`) the message was
    /// posted in; replies and reminders to it go to the same topic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// The member forwarded someone else's message (Telegram's
    /// `forward_origin`): the copy marks it, and no reminder goes to the
    /// member who forwarded it (they did not see it happen).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub forwarded: bool,
    /// One of the group's admins, posting anonymously (Telegram), on an
    /// account whose `anonymous_admins = "coordinator"`: a coordinator.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub group_admin: bool,
    /// WhatsApp: the sender's `@lid` when `sender.id` is their phone JID
    /// (the gateway gave both), so the relay learns the pair.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_lid: Option<String>,
    /// The photo posted with the message (its text is the caption), as its
    /// platform finds it again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media: Option<MediaRef>,
}

/// A photo of an inbound message, as the platform that delivered it finds
/// it again: what an outbox entry keeps (never the bytes), so a copy with a
/// photo is as durable, and retried the same way, as a text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaRef {
    /// The account whose platform fetches it (whose webhook delivered it).
    pub account: AccountId,
    pub platform: PlatformKind,
    /// Telegram: the `file_id`; WAHA: the file's path on the gateway
    /// (`/api/files/...`); Evolution: the message key, as JSON; Cloud API:
    /// the media id.
    pub handle: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mimetype: Option<String>,
    /// In bytes, when the platform says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Telegram: the bot that received it (a `file_id` is valid only for
    /// that bot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bot: Option<String>,
    /// Posted under the text instead when the photo cannot travel (too
    /// large, gone, a platform without photos).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
}

/// A photo's bytes, fetched from the platform that delivered it.
#[derive(Clone, Debug)]
pub struct MediaFile {
    pub bytes: Vec<u8>,
    pub mimetype: String,
}

impl MediaRef {
    /// The fetched file of this photo: its type as the download named it,
    /// else as the message named it, else JPEG (what phones send).
    pub fn file(&self, bytes: Vec<u8>, downloaded_as: Option<&str>) -> MediaFile {
        MediaFile {
            bytes,
            mimetype: downloaded_as
                .map(str::to_string)
                .or_else(|| self.mimetype.clone())
                .unwrap_or_else(|| "image/jpeg".into()),
        }
    }
}

impl Extra {
    pub fn is_empty(&self) -> bool {
        *self == Extra::default()
    }
}

/// A replied-to message as the platform quoted it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quoted {
    pub text: String,
    pub sender: Option<Sender>,
}

impl InboundMessage {
    /// The key that makes a message unique across webhook retries and across
    /// several accounts that sit in the same group: the chat space (WAHA and
    /// Evolution share "whatsapp", see [`PlatformKind::chat_space`]), the
    /// chat and the message's own id, never the account that delivered it.
    /// For Telegram and the sandbox the space is the platform's name, so
    /// their keys are what they always were.
    pub fn dedup_key(&self) -> String {
        let base = message_ref(self.platform, &self.chat, &self.message_id);
        match self.edit {
            None => base,
            Some(v) => format!("{base}|edit{v}"),
        }
    }

    /// The key of the message itself, whatever its version: for a first
    /// post the same as [`Self::dedup_key`]; the origin of an alert thread.
    pub fn message_ref(&self) -> String {
        message_ref(self.platform, &self.chat, &self.message_id)
    }
}

/// The store's name for one message of one chat: the chat space, the chat
/// and the message's own id (see [`InboundMessage::dedup_key`]).
pub fn message_ref(platform: PlatformKind, chat: &ChatId, message_id: &str) -> String {
    let space = platform.chat_space();
    let id = crate::platform::whatsapp::message_key(platform, message_id);
    format!("{space}|{chat}|{id}")
}

/// The thread map's key for a message in a chat, known both when the relay
/// posts a copy (it knows the chat and the id the platform answered, not the
/// platform) and when a member replies to it (the chat and the quoted id).
/// WhatsApp's serialized ids are reduced to the bare id every gateway agrees
/// on; other platforms' ids never look like those and stay as they are. Chat
/// ids of different platforms do not collide (Telegram's are negative
/// numbers, WhatsApp's end in `@g.us`, the sandbox's are names).
pub fn link_key(chat: &ChatId, message_id: &str) -> String {
    let id = crate::platform::whatsapp::message_key(PlatformKind::Waha, message_id);
    format!("{chat}|{id}")
}

/// What a webhook delivery turned out to contain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Inbound {
    Message(InboundMessage),
    /// A Telegram group became a supergroup: its chat id changed.
    ChatMigrated {
        platform: PlatformKind,
        from: ChatId,
        to: ChatId,
    },
    /// Parsed and deliberately not acted on (service message, sticker, ...).
    Ignored {
        reason: &'static str,
    },
}

/// Why an outbox entry exists; also its delivery priority (lower first).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum OutboundKind {
    /// A copy of an alert in another group.
    Forward,
    /// A follow-up, correction or all-clear attached to a copy.
    FollowUp,
    /// The reminder to call the police first.
    Reminder,
}

impl OutboundKind {
    /// Delivery priority: alerts before follow-ups before reminders.
    pub fn priority(self) -> u8 {
        match self {
            OutboundKind::Forward => 0,
            OutboundKind::FollowUp => 1,
            OutboundKind::Reminder => 2,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            OutboundKind::Forward => "forward",
            OutboundKind::FollowUp => "followup",
            OutboundKind::Reminder => "reminder",
        }
    }
}

/// What to do with an outbound message: post it, or change the relay's
/// copy of the thread in this chat. Stored in outbox entries; entries
/// written before this field existed are plain sends.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    #[default]
    Send,
    /// Replace the copy's text with `text`. Where the platform cannot edit,
    /// `fallback` is posted as a reply to the copy instead.
    Edit { fallback: String },
    /// Delete the copy. Where the platform cannot delete, `fallback` is
    /// posted as a reply to the copy instead.
    Delete { fallback: String },
}

/// One message to send to one chat through one account.
///
/// Stored as JSON in the outbox: every field added later has a serde
/// default, so entries written by an older version still read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outbound {
    pub account: AccountId,
    pub group: GroupId,
    pub chat: ChatId,
    pub text: String,
    /// Platform message id in `chat` to reply to.
    pub reply_to: Option<String>,
    pub kind: OutboundKind,
    /// The alert thread this message belongs to (the original's
    /// [`InboundMessage::message_ref`]). A `Forward` is that alert's copy in
    /// `group`; a `FollowUp` without `reply_to` replies to (or, per `op`,
    /// edits or deletes) that copy, whose id is looked up when it is sent,
    /// so a follow-up queued before its copy was delivered still finds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread: Option<String>,
    #[serde(default, skip_serializing_if = "is_send")]
    pub op: Op,
    /// Telegram: the forum topic (`message_thread_id`) to post in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// A photo to post with `text` as its caption (`relay.media =
    /// "forward"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media: Option<MediaRef>,
}

fn is_send(op: &Op) -> bool {
    *op == Op::Send
}

impl Outbound {
    /// A plain message (no thread, a send).
    pub fn new(
        account: AccountId,
        group: GroupId,
        chat: ChatId,
        text: String,
        reply_to: Option<String>,
        kind: OutboundKind,
    ) -> Self {
        Self {
            account,
            group,
            chat,
            text,
            reply_to,
            kind,
            thread: None,
            op: Op::Send,
            topic: None,
            media: None,
        }
    }
}

/// What the platform said about a sent message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sent {
    pub message_id: String,
}

impl Sent {
    /// Nothing was posted, on purpose: a follow-up for a group that never got
    /// the alert's copy, or an edit of a copy that does not exist.
    pub fn nothing() -> Self {
        Self {
            message_id: String::new(),
        }
    }

    pub fn is_nothing(&self) -> bool {
        self.message_id.is_empty()
    }
}
