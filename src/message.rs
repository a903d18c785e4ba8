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
}

impl InboundMessage {
    /// The key that makes a message unique across webhook retries and across
    /// several accounts that sit in the same group: the chat space (WAHA and
    /// Evolution share "whatsapp", see [`PlatformKind::chat_space`]), the
    /// chat and the message's own id, never the account that delivered it.
    /// For Telegram and the sandbox the space is the platform's name, so
    /// their keys are what they always were.
    pub fn dedup_key(&self) -> String {
        let space = self.platform.chat_space();
        let id = crate::platform::whatsapp::message_key(self.platform, &self.message_id);
        match self.edit {
            None => format!("{space}|{}|{id}", self.chat),
            Some(v) => format!("{space}|{}|{id}|edit{v}", self.chat),
        }
    }
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

/// One message to send to one chat through one account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outbound {
    pub account: AccountId,
    pub group: GroupId,
    pub chat: ChatId,
    pub text: String,
    /// Platform message id in `chat` to reply to.
    pub reply_to: Option<String>,
    pub kind: OutboundKind,
}

/// What the platform said about a sent message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sent {
    pub message_id: String,
}
