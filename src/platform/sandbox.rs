//! The built-in sandbox platform, for demos and tests: each sandbox group is
//! a chat kept in the store. Members post with `POST /sandbox/{group}/messages`;
//! whatever the relay sends to a sandbox chat is appended there and can be
//! read back with `GET /sandbox/{group}/messages`.

use std::sync::Arc;

use async_trait::async_trait;
use axum::http::HeaderMap;

use super::{Platform, SendError, WebhookError};
use crate::config::{Account, PlatformKind};
use crate::message::{Inbound, Outbound, Sent};
use crate::store::{SandboxMessage, Store};

pub struct Sandbox {
    self_id: String,
    display_name: String,
    store: Arc<dyn Store>,
}

impl Sandbox {
    pub fn new(account: &Account, store: Arc<dyn Store>) -> Self {
        Self {
            self_id: self_id(account.id.as_str()),
            display_name: account.display_name.clone(),
            store,
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
            .store
            .sandbox_append(
                msg.chat.as_str(),
                SandboxMessage {
                    id: String::new(),
                    sender: self.self_id.clone(),
                    sender_name: Some(self.display_name.clone()),
                    text: msg.text.clone(),
                    reply_to: msg.reply_to.clone(),
                    from_relay: true,
                    at_ms: now_ms(),
                },
            )
            .map_err(|e| SendError::Transient(e.to_string()))?;
        Ok(Sent {
            message_id: stored.id,
        })
    }
}
