//! The built-in sandbox platform, for demos and tests: each sandbox group is
//! a chat kept in the store. Members post with `POST /sandbox/{group}/messages`;
//! whatever the relay sends to a sandbox chat is appended there and can be
//! read back with `GET /sandbox/{group}/messages`.
//!
//! Every message appended to a sandbox chat is also published on the
//! [`SandboxFeed`] (the playground's live view, `GET /sandbox/events`), always
//! *after* the store write: the feed is a notification, the store the truth.
//! A subscriber that falls behind is told to re-read the chats.

use std::sync::Arc;

use async_trait::async_trait;
use axum::http::HeaderMap;
use serde::Serialize;
use tokio::sync::broadcast;

use super::{ChangeError, Platform, SendError, WebhookError};
use crate::config::{Account, PlatformKind};
use crate::message::{Inbound, Outbound, Sent};
use crate::store::{SandboxChats, SandboxMessage};

/// One message appended to a sandbox chat.
#[derive(Clone, Debug, Serialize)]
pub struct SandboxEvent {
    /// The group id (as in the config and in `/sandbox/{group}/...`).
    pub group: String,
    pub message: SandboxMessage,
    /// The message was deleted (a retracted copy); otherwise it is new or,
    /// with `edited_ms`, changed.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
}

/// What a feed subscriber receives.
#[derive(Clone, Debug)]
pub enum FeedItem {
    Message(Arc<SandboxEvent>),
    /// The relay is shutting down: end the stream, so that graceful
    /// shutdown does not wait for open browser tabs.
    Closing,
}

/// Live notifications of sandbox messages (a tokio broadcast channel).
#[derive(Clone)]
pub struct SandboxFeed {
    tx: broadcast::Sender<FeedItem>,
}

impl Default for SandboxFeed {
    fn default() -> Self {
        // Enough for a burst (one alert = one copy per village); a slower
        // subscriber gets `Lagged` and re-reads the chats.
        let (tx, _) = broadcast::channel(1024);
        Self { tx }
    }
}

impl SandboxFeed {
    /// Publishes a message that is already stored. Nobody listening is fine.
    pub fn publish(&self, group: &str, message: SandboxMessage) {
        let _ = self.tx.send(FeedItem::Message(Arc::new(SandboxEvent {
            group: group.to_string(),
            message,
            deleted: false,
        })));
    }

    /// Publishes that a stored message was deleted.
    pub fn publish_deleted(&self, group: &str, message: SandboxMessage) {
        let _ = self.tx.send(FeedItem::Message(Arc::new(SandboxEvent {
            group: group.to_string(),
            message,
            deleted: true,
        })));
    }

    pub fn subscribe(&self) -> broadcast::Receiver<FeedItem> {
        self.tx.subscribe()
    }

    /// Ends every subscriber's stream (at shutdown).
    pub fn close(&self) {
        let _ = self.tx.send(FeedItem::Closing);
    }
}

pub struct Sandbox {
    self_id: String,
    display_name: String,
    chats: Arc<dyn SandboxChats>,
    feed: SandboxFeed,
}

impl Sandbox {
    pub fn new(account: &Account, chats: Arc<dyn SandboxChats>, feed: SandboxFeed) -> Self {
        Self {
            self_id: self_id(account.id.as_str()),
            display_name: account.display_name.clone(),
            chats,
            feed,
        }
    }
}

/// The sender id the relay posts under in sandbox chats.
pub fn self_id(account: &str) -> String {
    format!("relay:{account}")
}

fn now_ms() -> u64 {
    crate::time::now_ms()
}

#[async_trait]
impl Platform for Sandbox {
    fn kind(&self) -> PlatformKind {
        PlatformKind::Sandbox
    }

    fn self_id(&self) -> Option<String> {
        Some(self.self_id.clone())
    }

    fn parse_webhook(&self, _: &HeaderMap, _: &[u8]) -> Result<Vec<Inbound>, WebhookError> {
        Err(WebhookError::Malformed(
            "sandbox accounts take messages at POST /sandbox/{group}/messages".into(),
        ))
    }

    async fn send(&self, msg: &Outbound) -> Result<Sent, SendError> {
        let stored = self
            .chats
            .append(
                msg.chat.as_str(),
                SandboxMessage {
                    id: String::new(),
                    sender: self.self_id.clone(),
                    sender_name: Some(self.display_name.clone()),
                    text: msg.text.clone(),
                    reply_to: msg.reply_to.clone(),
                    from_relay: true,
                    at_ms: now_ms(),
                    edited_ms: None,
                },
            )
            .await
            .map_err(|e| SendError::Transient(e.to_string()))?;
        let message_id = stored.id.clone();
        self.feed.publish(msg.group.as_str(), stored);
        Ok(Sent { message_id })
    }

    /// The sandbox edits in its store, like a platform that allows edits.
    async fn edit(&self, msg: &Outbound, message_id: &str) -> Result<(), ChangeError> {
        match self
            .chats
            .edit(msg.chat.as_str(), message_id, &msg.text, now_ms())
            .await
            .map_err(|e| SendError::Transient(e.to_string()))?
        {
            Some(changed) => {
                self.feed.publish(msg.group.as_str(), changed);
                Ok(())
            }
            // Gone: the relay posts the correction as a message instead.
            None => Err(ChangeError::NotSupported),
        }
    }

    async fn delete(&self, msg: &Outbound, message_id: &str) -> Result<(), ChangeError> {
        let chat = msg.chat.as_str();
        let old = self
            .chats
            .get(chat, message_id)
            .await
            .map_err(|e| SendError::Transient(e.to_string()))?;
        self.chats
            .delete(chat, message_id)
            .await
            .map_err(|e| SendError::Transient(e.to_string()))?;
        if let Some(old) = old {
            self.feed.publish_deleted(msg.group.as_str(), old);
        }
        Ok(())
    }
}
