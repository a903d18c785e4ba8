//! Telegram Bot API.
//!
//! Webhook: `Update` JSON, authenticated by the `X-Telegram-Bot-Api-Secret-Token`
//! header (the `secret_token` given to `setWebhook`), compared in constant
//! time. `message` and `edited_message` from groups and supergroups are
//! parsed; chat ids are kept exactly (negative i64). Service messages are
//! ignored, `migrate_to_chat_id` is reported.
//!
//! Senders that are no user: an admin posting anonymously (`from` is
//! @GroupAnonymousBot, `sender_chat` the group) is one of the group's
//! admins, a coordinator or a member as the account's `anonymous_admins`
//! says; a member posting as their channel is named after the channel; a
//! linked channel's automatic forward (`is_automatic_forward`) is ignored
//! (the channel published it already). A forwarded message (`forward_origin`)
//! is the forwarding member's, marked as forwarded. In forum groups the
//! topic (`message_thread_id` with `is_topic_message`) is kept, and sends
//! carry the topic they belong in.
//!
//! Sending: `sendMessage` with `reply_parameters`; `{ok:false, error_code:429,
//! parameters.retry_after}` becomes [`SendError::RateLimited`]. Copies are
//! changed with `editMessageText` and `deleteMessage`; a message Telegram
//! will not change (a bot may delete its messages for 48 hours only) is
//! [`ChangeError::NotSupported`], so the relay replies instead.

use std::time::Duration;

use async_trait::async_trait;
use axum::http::HeaderMap;
use serde::Deserialize;
use serde_json::json;

use super::{ChangeError, Platform, SendError, WebhookError, secret_matches};
use crate::config::{Account, AnonymousAdmins, ChatId, PlatformKind, PlatformSettings, Secret};
use crate::message::{
    Extra, Inbound, InboundMessage, MediaFile, MediaRef, Outbound, Quoted, Sender, Sent,
};

pub const SECRET_HEADER: &str = "x-telegram-bot-api-secret-token";
/// Telegram's limit is 4096 UTF-16 units; stay safely below.
const MAX_TEXT_CHARS: usize = 4000;

pub struct Telegram {
    account: Account,
    http: reqwest::Client,
    bot_id: Option<String>,
    anonymous_admins: AnonymousAdmins,
}

/// The user Telegram names as the author of an anonymous admin's message
/// (@GroupAnonymousBot); `sender_chat` is then the group itself.
const GROUP_ANONYMOUS_BOT: i64 = 1_087_968_824;

impl Telegram {
    pub fn new(account: &Account, http: reqwest::Client) -> Self {
        // A bot token is `<bot id>:<secret>`; the bot id is what `from.id`
        // says on the bot's own messages.
        let bot_id = account
            .token
            .as_ref()
            .and_then(|t| t.expose().split_once(':'))
            .map(|(id, _)| id.to_string());
        let anonymous_admins = match &account.settings {
            PlatformSettings::Telegram { anonymous_admins } => *anonymous_admins,
            _ => AnonymousAdmins::Coordinator,
        };
        Self {
            account: account.clone(),
            http,
            bot_id,
            anonymous_admins,
        }
    }

    fn token(&self) -> Option<&Secret> {
        self.account.token.as_ref()
    }
}

#[derive(Deserialize)]
struct Update {
    #[allow(dead_code)]
    update_id: i64,
    message: Option<Message>,
    edited_message: Option<Message>,
}

#[derive(Deserialize)]
struct Message {
    message_id: i64,
    from: Option<User>,
    /// The chat a message was sent on behalf of: the group itself (an
    /// anonymous admin) or a channel (its linked channel's automatic
    /// forward, or a member posting as their channel).
    sender_chat: Option<Chat>,
    /// An anonymous admin's custom title.
    author_signature: Option<String>,
    /// A channel post copied into its linked discussion group by Telegram.
    #[serde(default)]
    is_automatic_forward: bool,
    /// Where a forwarded message came from (Bot API 7.0+).
    forward_origin: Option<serde_json::Value>,
    /// Forum topic (or, outside forums, reply thread) of the message.
    message_thread_id: Option<i64>,
    /// True when `message_thread_id` is a forum topic.
    #[serde(default)]
    is_topic_message: bool,
    chat: Chat,
    date: i64,
    edit_date: Option<i64>,
    text: Option<String>,
    caption: Option<String>,
    /// A photo in several sizes, the largest last.
    photo: Option<Vec<PhotoSize>>,
    reply_to_message: Option<Box<ReplyTo>>,
    migrate_to_chat_id: Option<i64>,
}

#[derive(Deserialize)]
struct ReplyTo {
    message_id: i64,
    from: Option<User>,
    text: Option<String>,
    caption: Option<String>,
}

#[derive(Deserialize)]
struct PhotoSize {
    file_id: String,
    file_size: Option<u64>,
}

#[derive(Deserialize)]
struct User {
    id: i64,
    is_bot: bool,
    first_name: String,
    last_name: Option<String>,
}

#[derive(Deserialize)]
struct Chat {
    id: i64,
    #[serde(rename = "type")]
    kind: String,
    title: Option<String>,
}

/// An answer of the Bot API. `result` is a message for `sendMessage` and
/// `editMessageText`, and `true` for `deleteMessage`.
#[derive(Deserialize)]
struct ApiResponse {
    ok: bool,
    result: Option<serde_json::Value>,
    error_code: Option<i64>,
    description: Option<String>,
    parameters: Option<ApiParameters>,
}

#[derive(Deserialize)]
struct ApiParameters {
    retry_after: Option<u64>,
    migrate_to_chat_id: Option<i64>,
}

impl Telegram {
    fn to_inbound(&self, m: Message, edited: bool) -> Result<Inbound, WebhookError> {
        if !matches!(m.chat.kind.as_str(), "group" | "supergroup") {
            return Ok(Inbound::Ignored {
                reason: "not a group chat",
            });
        }
        let chat = ChatId::parse(&m.chat.id.to_string()).map_err(WebhookError::Malformed)?;
        if let Some(to) = m.migrate_to_chat_id {
            let to = ChatId::parse(&to.to_string()).map_err(WebhookError::Malformed)?;
            return Ok(Inbound::ChatMigrated {
                platform: PlatformKind::Telegram,
                from: chat,
                to,
            });
        }
        let photo = m
            .photo
            .as_ref()
            .and_then(|sizes| sizes.last())
            .map(|p| MediaRef {
                account: self.account.id.clone(),
                platform: PlatformKind::Telegram,
                handle: p.file_id.clone(),
                // Telegram re-encodes every photo as JPEG.
                mimetype: Some("image/jpeg".into()),
                size: p.file_size,
                bot: self.bot_id.clone(),
                note: String::new(),
            });
        let Some(text) = m.text.or(m.caption) else {
            return Ok(Inbound::Ignored {
                reason: "no text (service message, sticker or media without caption)",
            });
        };
        if m.is_automatic_forward {
            // The linked channel's own post, copied into its discussion
            // group by Telegram: an announcement already published to the
            // channel's readers, not a member's report.
            return Ok(Inbound::Ignored {
                reason: "a linked channel's post (automatic forward)",
            });
        }
        let mut group_admin = false;
        let (sender_id, name, is_bot) = match (&m.sender_chat, m.from) {
            // An admin posting anonymously, as the group: Telegram does not
            // say which one. One id for all of them in this group.
            (Some(sc), _) if sc.id == m.chat.id => {
                group_admin = self.anonymous_admins == AnonymousAdmins::Coordinator;
                (
                    format!("admin:{}", sc.id),
                    m.author_signature.clone(),
                    false,
                )
            }
            // A member posting as their channel: named after the channel.
            (Some(sc), _) => (format!("chat:{}", sc.id), sc.title.clone(), false),
            (None, Some(from)) => (
                from.id.to_string(),
                Some(full_name(from.first_name, from.last_name)),
                from.is_bot && from.id != GROUP_ANONYMOUS_BOT,
            ),
            (None, None) => {
                return Ok(Inbound::Ignored {
                    reason: "no sender",
                });
            }
        };
        let (reply_to, quoted) = match m.reply_to_message {
            Some(r) => {
                let r = *r;
                let quoted = r.text.or(r.caption).map(|text| {
                    Box::new(Quoted {
                        text,
                        sender: r.from.map(|u| Sender {
                            id: u.id.to_string(),
                            name: Some(full_name(u.first_name, u.last_name)),
                            is_bot: u.is_bot,
                        }),
                    })
                });
                (Some(r.message_id.to_string()), quoted)
            }
            None => (None, None),
        };
        Ok(Inbound::Message(InboundMessage {
            account: self.account.id.clone(),
            platform: PlatformKind::Telegram,
            chat,
            message_id: m.message_id.to_string(),
            sender: Sender {
                id: sender_id,
                name,
                is_bot,
            },
            text,
            reply_to,
            at_ms: u64::try_from(m.date).unwrap_or(0) * 1000,
            edit: if edited {
                Some(u64::try_from(m.edit_date.unwrap_or(m.date)).unwrap_or(0))
            } else {
                None
            },
            quoted,
            extra: Box::new(Extra {
                topic: m
                    .message_thread_id
                    .filter(|_| m.is_topic_message)
                    .map(|t| t.to_string()),
                forwarded: m.forward_origin.is_some(),
                group_admin,
                sender_lid: None,
                media: photo,
            }),
        }))
    }

    /// Calls one Bot API method; `Ok` carries `result`.
    async fn call(
        &self,
        method: &str,
        body: &serde_json::Value,
        chat: &ChatId,
        group: &str,
    ) -> Result<serde_json::Value, ApiFailure> {
        self.call_with(method, Body::Json(body), Some(chat), group)
            .await
    }

    /// Calls one Bot API method with a JSON or multipart body; `chat` and
    /// `group` name the chat a migration error is about.
    async fn call_with(
        &self,
        method: &str,
        body: Body<'_>,
        chat: Option<&ChatId>,
        group: &str,
    ) -> Result<serde_json::Value, ApiFailure> {
        let Some(token) = self.token() else {
            return Err(ApiFailure::Send(SendError::Permanent(
                "account has no token".into(),
            )));
        };
        let url = format!("{}/bot{}/{method}", self.account.api_url, token.expose());
        let req = self.http.post(url);
        let req = match body {
            Body::Json(v) => req.json(v),
            Body::Multipart(content_type, bytes) => req
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(bytes),
        };
        let resp = req
            .send()
            .await
            // The URL holds the token: never let it reach an error message.
            .map_err(|e| ApiFailure::Send(super::transport_error("telegram", e)))?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| ApiFailure::Send(super::transport_error("telegram", e)))?;
        let parsed: Option<ApiResponse> = serde_json::from_slice(&bytes).ok();
        match parsed {
            Some(ApiResponse {
                ok: true,
                result: Some(r),
                ..
            }) => Ok(r),
            Some(r) if !r.ok => {
                let code = r.error_code.unwrap_or(i64::from(status.as_u16()));
                let desc = r.description.unwrap_or_default();
                let params = r.parameters;
                if code == 429 {
                    let secs = params.as_ref().and_then(|p| p.retry_after).unwrap_or(5);
                    return Err(ApiFailure::Send(SendError::RateLimited(
                        Duration::from_secs(secs),
                    )));
                }
                if let (Some(to), Some(chat)) =
                    (params.as_ref().and_then(|p| p.migrate_to_chat_id), chat)
                {
                    tracing::error!(
                        account = %self.account.id,
                        chat = %chat,
                        new_chat = to,
                        "telegram group was upgraded to a supergroup: set chat = \"{to}\" for group `{group}` in the config",
                    );
                    return Err(ApiFailure::Send(SendError::Permanent(format!(
                        "chat migrated to {to}; update the config"
                    ))));
                }
                if code >= 500 || status.is_server_error() {
                    Err(ApiFailure::Send(SendError::Transient(format!(
                        "telegram {code}: {desc}"
                    ))))
                } else {
                    Err(ApiFailure::Refused(code, desc))
                }
            }
            _ if status.is_server_error() || status.as_u16() == 429 => Err(ApiFailure::Send(
                SendError::Transient(format!("telegram HTTP {status}")),
            )),
            _ => Err(ApiFailure::Send(SendError::Transient(format!(
                "telegram HTTP {status}: unreadable answer"
            )))),
        }
    }

    fn message_body(chat: &ChatId, message_id: &str) -> Result<serde_json::Value, ChangeError> {
        let Ok(id) = message_id.parse::<i64>() else {
            // Not a Telegram message id (a record from another platform):
            // nothing Telegram can change.
            return Err(ChangeError::NotSupported);
        };
        Ok(json!({ "chat_id": chat_json(chat), "message_id": id }))
    }
}

/// The body of a Bot API call.
enum Body<'a> {
    Json(&'a serde_json::Value),
    /// Content type (with its boundary) and bytes.
    Multipart(String, Vec<u8>),
}

/// Telegram's limit for a photo's caption.
const MAX_CAPTION_CHARS: usize = 1024;

/// A failed Bot API call: a send error as the workers know it, or a 4xx
/// refusal with Telegram's code and description (which edit and delete
/// read before deciding).
enum ApiFailure {
    Send(SendError),
    Refused(i64, String),
}

/// The copy a send made, from the Bot API's answer (a `Message`).
fn sent(answer: Result<serde_json::Value, ApiFailure>) -> Result<Sent, SendError> {
    match answer {
        Ok(result) => match result.get("message_id").and_then(serde_json::Value::as_i64) {
            Some(id) => Ok(Sent {
                message_id: id.to_string(),
            }),
            None => Err(SendError::Transient(
                "telegram: answer without a message_id".into(),
            )),
        },
        Err(ApiFailure::Send(e)) => Err(e),
        Err(ApiFailure::Refused(code, desc)) => {
            Err(SendError::Permanent(format!("telegram {code}: {desc}")))
        }
    }
}

fn full_name(first: String, last: Option<String>) -> String {
    match last {
        Some(l) => format!("{first} {l}"),
        None => first,
    }
}

/// Telegram wants numeric chat ids as numbers, `@channel` names as strings.
fn chat_json(chat: &ChatId) -> serde_json::Value {
    match chat.as_str().parse::<i64>() {
        Ok(n) => json!(n),
        Err(_) => json!(chat.as_str()),
    }
}

#[async_trait]
impl Platform for Telegram {
    fn kind(&self) -> PlatformKind {
        PlatformKind::Telegram
    }

    fn self_id(&self) -> Option<String> {
        self.bot_id.clone()
    }

    fn parse_webhook(
        &self,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Vec<Inbound>, WebhookError> {
        if let Some(secret) = &self.account.webhook_secret {
            let given = headers.get(SECRET_HEADER).map(|v| v.as_bytes());
            if !secret_matches(given, secret.expose()) {
                return Err(WebhookError::Unauthorized);
            }
        }
        let update: Update = serde_json::from_slice(body)
            .map_err(|e| WebhookError::Malformed(format!("not a Telegram Update: {e}")))?;
        let mut out = Vec::new();
        if let Some(m) = update.message {
            out.push(self.to_inbound(m, false)?);
        }
        if let Some(m) = update.edited_message {
            out.push(self.to_inbound(m, true)?);
        }
        if out.is_empty() {
            out.push(Inbound::Ignored {
                reason: "update type not relayed",
            });
        }
        Ok(out)
    }

    fn knows_media(&self, media: &MediaRef) -> bool {
        media.platform == PlatformKind::Telegram && media.bot.is_some() && media.bot == self.bot_id
    }

    /// `getFile`, then the file from `{api_url}/file/bot{token}/{path}`.
    async fn fetch_media(&self, media: &MediaRef, max_bytes: u64) -> Result<MediaFile, SendError> {
        if !self.knows_media(media) {
            return Err(SendError::Permanent(
                "telegram: a file of another bot".into(),
            ));
        }
        let body = json!({ "file_id": media.handle });
        let file = match self.call_with("getFile", Body::Json(&body), None, "").await {
            Ok(f) => f,
            Err(ApiFailure::Send(e)) => return Err(e),
            Err(ApiFailure::Refused(code, desc)) => {
                return Err(SendError::Permanent(format!("telegram {code}: {desc}")));
            }
        };
        if file
            .get("file_size")
            .and_then(serde_json::Value::as_u64)
            .is_some_and(|n| n > max_bytes)
        {
            return Err(SendError::Permanent(format!(
                "telegram: photo larger than {max_bytes} bytes"
            )));
        }
        let Some(path) = file.get("file_path").and_then(serde_json::Value::as_str) else {
            return Err(SendError::Permanent(
                "telegram: getFile gave no file_path".into(),
            ));
        };
        let Some(token) = self.token() else {
            return Err(SendError::Permanent("account has no token".into()));
        };
        let url = format!("{}/file/bot{}/{path}", self.account.api_url, token.expose());
        let bytes = super::download(self.http.get(url), max_bytes, "telegram file").await?;
        Ok(media.file(bytes, None))
    }

    /// `sendPhoto`: by `file_id` when this bot knows it, else uploaded.
    async fn send_photo(
        &self,
        msg: &Outbound,
        media: &MediaRef,
        file: Option<&MediaFile>,
    ) -> Result<Sent, SendError> {
        let caption = super::caption(&msg.text, MAX_CAPTION_CHARS);
        let reply = msg
            .reply_to
            .as_ref()
            .and_then(|r| r.parse::<i64>().ok())
            .map(|r| json!({"message_id": r, "allow_sending_without_reply": true}));
        let topic = msg.topic.as_ref().and_then(|t| t.parse::<i64>().ok());
        let json_body;
        let body = match file {
            None => {
                let mut b = json!({
                    "chat_id": chat_json(&msg.chat),
                    "photo": media.handle,
                    "caption": caption,
                });
                if let Some(t) = topic {
                    b["message_thread_id"] = json!(t);
                }
                if let Some(r) = &reply {
                    b["reply_parameters"] = r.clone();
                }
                json_body = b;
                Body::Json(&json_body)
            }
            Some(f) => {
                let mut fields = vec![
                    ("chat_id", msg.chat.as_str().to_string()),
                    ("caption", caption),
                ];
                if let Some(t) = topic {
                    fields.push(("message_thread_id", t.to_string()));
                }
                if let Some(r) = &reply {
                    fields.push(("reply_parameters", r.to_string()));
                }
                let (content_type, bytes) = super::multipart(&fields, ("photo", "photo.jpg", f));
                Body::Multipart(content_type, bytes)
            }
        };
        sent(
            self.call_with("sendPhoto", body, Some(&msg.chat), msg.group.as_str())
                .await,
        )
    }

    async fn send(&self, msg: &Outbound) -> Result<Sent, SendError> {
        let text: String = msg.text.chars().take(MAX_TEXT_CHARS).collect();
        let mut body = json!({
            "chat_id": chat_json(&msg.chat),
            "text": text,
            "link_preview_options": {"is_disabled": true},
        });
        if let Some(t) = msg.topic.as_ref().and_then(|t| t.parse::<i64>().ok()) {
            // A forum topic: without it the message lands in General (and
            // is refused with TOPIC_CLOSED where General is closed).
            body["message_thread_id"] = json!(t);
        }
        if let Some(r) = msg.reply_to.as_ref().and_then(|r| r.parse::<i64>().ok()) {
            body["reply_parameters"] = json!({
                "message_id": r,
                "allow_sending_without_reply": true,
            });
        }
        sent(
            self.call("sendMessage", &body, &msg.chat, msg.group.as_str())
                .await,
        )
    }

    async fn edit(&self, msg: &Outbound, message_id: &str) -> Result<(), ChangeError> {
        let mut body = Self::message_body(&msg.chat, message_id)?;
        body["text"] = json!(msg.text.chars().take(MAX_TEXT_CHARS).collect::<String>());
        body["link_preview_options"] = json!({"is_disabled": true});
        match self
            .call("editMessageText", &body, &msg.chat, msg.group.as_str())
            .await
        {
            Ok(_) => Ok(()),
            Err(ApiFailure::Send(e)) => Err(e.into()),
            // The same text again (an edit that changed nothing the copy shows).
            Err(ApiFailure::Refused(_, d)) if d.contains("not modified") => Ok(()),
            // A copy posted as a photo: its text is the caption.
            Err(ApiFailure::Refused(400, d)) if d.contains("no text in the message") => {
                let mut body = Self::message_body(&msg.chat, message_id)?;
                body["caption"] = json!(super::caption(&msg.text, MAX_CAPTION_CHARS));
                match self
                    .call("editMessageCaption", &body, &msg.chat, msg.group.as_str())
                    .await
                {
                    Ok(_) => Ok(()),
                    Err(ApiFailure::Send(e)) => Err(e.into()),
                    Err(ApiFailure::Refused(_, d)) if d.contains("not modified") => Ok(()),
                    Err(ApiFailure::Refused(400, _)) => Err(ChangeError::NotSupported),
                    Err(ApiFailure::Refused(code, desc)) => Err(ChangeError::Failed(
                        SendError::Permanent(format!("telegram {code}: {desc}")),
                    )),
                }
            }
            // "message can't be edited", "message to edit not found": reply instead.
            Err(ApiFailure::Refused(400, _)) => Err(ChangeError::NotSupported),
            Err(ApiFailure::Refused(code, desc)) => Err(ChangeError::Failed(SendError::Permanent(
                format!("telegram {code}: {desc}"),
            ))),
        }
    }

    async fn delete(&self, msg: &Outbound, message_id: &str) -> Result<(), ChangeError> {
        let body = Self::message_body(&msg.chat, message_id)?;
        match self
            .call("deleteMessage", &body, &msg.chat, msg.group.as_str())
            .await
        {
            Ok(_) => Ok(()),
            Err(ApiFailure::Send(e)) => Err(e.into()),
            // Deleted already (by hand, by an admin): what we wanted.
            Err(ApiFailure::Refused(_, d)) if d.contains("not found") => Ok(()),
            // "message can't be deleted" (older than 48 hours, no rights): reply instead.
            Err(ApiFailure::Refused(400, _)) => Err(ChangeError::NotSupported),
            Err(ApiFailure::Refused(code, desc)) => Err(ChangeError::Failed(SendError::Permanent(
                format!("telegram {code}: {desc}"),
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AccountId;

    fn tg(secret: Option<&str>) -> Telegram {
        let cfg = format!(
            "[accounts.bot]\nplatform = \"telegram\"\ntoken = \"123456:ABCDEF\"\n{}\n\
             [[groups]]\nid = \"a\"\nname = \"A\"\naccount = \"bot\"\nchat = \"-1001\"\n",
            secret
                .map(|s| format!("webhook_secret = \"{s}\""))
                .unwrap_or_default()
        );
        let c = crate::config::Config::parse(&cfg, std::path::Path::new("t.toml")).unwrap();
        let acc = c.accounts.get(&AccountId::parse("bot").unwrap()).unwrap();
        Telegram::new(acc, reqwest::Client::new())
    }

    const ANONYMOUS_ADMIN: &str =
        include_str!("../../tests/fixtures/telegram/update-anonymous-admin.json");
    const AUTOMATIC_FORWARD: &str =
        include_str!("../../tests/fixtures/telegram/update-automatic-forward.json");
    const FORWARDED: &str = include_str!("../../tests/fixtures/telegram/update-forwarded.json");
    const FORUM: &str =
        include_str!("../../tests/fixtures/telegram/update-forum-topic-message.json");
    const PHOTO: &str = include_str!("../../tests/fixtures/telegram/update-photo-caption.json");
    const ALBUM_SECOND: &str =
        include_str!("../../tests/fixtures/telegram/update-album-second-photo.json");

    const GROUP_MSG: &str = r#"{"update_id":10,"message":{"message_id":5,"from":{"id":111,"is_bot":false,"first_name":"Jan","last_name":"Peeters"},"chat":{"id":-1001234567890,"title":"Veulen","type":"supergroup"},"date":1700000000,"text":"Verdachte wagen","reply_to_message":{"message_id":4,"chat":{"id":-1001234567890,"type":"supergroup"},"date":1699999999}}}"#;

    #[test]
    fn a_supergroup_message_keeps_its_exact_chat_id_and_reply() {
        let t = tg(None);
        let ev = t
            .parse_webhook(&HeaderMap::new(), GROUP_MSG.as_bytes())
            .unwrap();
        let Inbound::Message(m) = &ev[0] else {
            panic!("{ev:?}")
        };
        assert_eq!(m.chat.as_str(), "-1001234567890");
        assert_eq!(m.message_id, "5");
        assert_eq!(m.reply_to.as_deref(), Some("4"));
        assert_eq!(m.sender.id, "111");
        assert_eq!(m.at_ms, 1_700_000_000_000);
    }

    #[test]
    fn a_reply_carries_the_quoted_text_and_its_author() {
        let body = r#"{"update_id":10,"message":{"message_id":6,"from":{"id":9000,"is_bot":false,"first_name":"Marc"},"chat":{"id":-1001,"type":"supergroup"},"date":1700000001,"text":"/doorsturen","reply_to_message":{"message_id":5,"from":{"id":111,"is_bot":false,"first_name":"Jan","last_name":"Peeters"},"chat":{"id":-1001,"type":"supergroup"},"date":1700000000,"text":"Onze kat is weg"}}}"#;
        let ev = tg(None)
            .parse_webhook(&HeaderMap::new(), body.as_bytes())
            .unwrap();
        let Inbound::Message(m) = &ev[0] else {
            panic!("{ev:?}")
        };
        assert_eq!(m.reply_to.as_deref(), Some("5"));
        let q = m.quoted.as_ref().expect("quoted");
        assert_eq!(q.text, "Onze kat is weg");
        let s = q.sender.as_ref().expect("author");
        assert_eq!(
            (s.id.as_str(), s.name.as_deref()),
            ("111", Some("Jan Peeters"))
        );
    }

    #[test]
    fn an_edited_message_is_an_edit_with_its_edit_date_as_version() {
        let body = r#"{"update_id":11,"edited_message":{"message_id":5,"from":{"id":111,"is_bot":false,"first_name":"Jan"},"chat":{"id":-1001,"type":"supergroup"},"date":1700000000,"edit_date":1700000300,"text":"Verdachte wagen, 101 gebeld"}}"#;
        let ev = tg(None)
            .parse_webhook(&HeaderMap::new(), body.as_bytes())
            .unwrap();
        let Inbound::Message(m) = &ev[0] else {
            panic!("{ev:?}")
        };
        assert_eq!(m.edit, Some(1_700_000_300));
        assert_eq!(m.message_ref(), "telegram|-1001|5");
        assert_eq!(m.dedup_key(), "telegram|-1001|5|edit1700000300");
    }

    #[test]
    fn a_wrong_or_missing_secret_is_refused() {
        let t = tg(Some("s3cret"));
        assert!(matches!(
            t.parse_webhook(&HeaderMap::new(), GROUP_MSG.as_bytes()),
            Err(WebhookError::Unauthorized)
        ));
        let mut h = HeaderMap::new();
        h.insert(SECRET_HEADER, "wrong".parse().unwrap());
        assert!(matches!(
            t.parse_webhook(&h, GROUP_MSG.as_bytes()),
            Err(WebhookError::Unauthorized)
        ));
        h.insert(SECRET_HEADER, "s3cret".parse().unwrap());
        assert!(t.parse_webhook(&h, GROUP_MSG.as_bytes()).is_ok());
    }

    #[test]
    fn a_migration_is_reported_with_both_ids() {
        let body = r#"{"update_id":11,"message":{"message_id":6,"from":{"id":1,"is_bot":false,"first_name":"A"},"chat":{"id":-4001,"title":"Veulen","type":"group"},"date":1700000000,"migrate_to_chat_id":-1009876543210}}"#;
        let ev = tg(None)
            .parse_webhook(&HeaderMap::new(), body.as_bytes())
            .unwrap();
        assert_eq!(
            ev,
            vec![Inbound::ChatMigrated {
                platform: PlatformKind::Telegram,
                from: ChatId::parse("-4001").unwrap(),
                to: ChatId::parse("-1009876543210").unwrap(),
            }]
        );
    }

    #[test]
    fn garbage_is_malformed_and_a_join_is_ignored() {
        let t = tg(None);
        assert!(matches!(
            t.parse_webhook(&HeaderMap::new(), b"{nope"),
            Err(WebhookError::Malformed(_))
        ));
        let join = r#"{"update_id":12,"message":{"message_id":7,"from":{"id":1,"is_bot":false,"first_name":"A"},"chat":{"id":-4001,"type":"group"},"date":1,"new_chat_members":[{"id":2,"is_bot":false,"first_name":"B"}]}}"#;
        assert!(matches!(
            t.parse_webhook(&HeaderMap::new(), join.as_bytes()).unwrap()[0],
            Inbound::Ignored { .. }
        ));
    }

    fn tg_with(extra: &str) -> Telegram {
        let cfg = format!(
            "[accounts.bot]\nplatform = \"telegram\"\ntoken = \"123456:ABCDEF\"\n{extra}\n\
             [[groups]]\nid = \"a\"\nname = \"A\"\naccount = \"bot\"\nchat = \"-1001000000000\"\n"
        );
        let c = crate::config::Config::parse(&cfg, std::path::Path::new("t.toml")).unwrap();
        let acc = c.accounts.get(&AccountId::parse("bot").unwrap()).unwrap();
        Telegram::new(acc, reqwest::Client::new())
    }

    fn only(t: &Telegram, body: &str) -> Inbound {
        let mut ev = t.parse_webhook(&HeaderMap::new(), body.as_bytes()).unwrap();
        assert_eq!(ev.len(), 1);
        ev.remove(0)
    }

    #[test]
    fn an_anonymous_admin_is_one_of_the_groups_admins_not_a_bot() {
        let Inbound::Message(m) = only(&tg(None), ANONYMOUS_ADMIN) else {
            panic!()
        };
        assert!(!m.sender.is_bot);
        assert!(m.extra.group_admin, "a coordinator by default");
        assert_eq!(m.sender.id, "admin:-1001000000000");
        // The custom title is the only name Telegram gives.
        assert_eq!(m.sender.name.as_deref(), Some("Wijkagent"));
        let members = tg_with("anonymous_admins = \"member\"");
        let Inbound::Message(m) = only(&members, ANONYMOUS_ADMIN) else {
            panic!()
        };
        assert!(!m.extra.group_admin);
        assert!(!m.sender.is_bot);
    }

    #[test]
    fn a_linked_channels_automatic_forward_is_ignored_and_a_forward_is_marked() {
        assert!(matches!(
            only(&tg(None), AUTOMATIC_FORWARD),
            Inbound::Ignored { .. }
        ));
        let Inbound::Message(m) = only(&tg(None), FORWARDED) else {
            panic!()
        };
        assert!(m.extra.forwarded);
        // The member who forwarded it, never the first author.
        assert_eq!(m.sender.id, "555");
        assert_eq!(m.sender.name.as_deref(), Some("Jan Peeters"));
    }

    #[test]
    fn a_forum_message_keeps_its_topic_and_a_reply_thread_is_no_topic() {
        let Inbound::Message(m) = only(&tg(None), FORUM) else {
            panic!()
        };
        assert_eq!(m.extra.topic.as_deref(), Some("7"));
        // The topic's creation message is no message the member replied to.
        let plain = GROUP_MSG.replace(
            "\"message_id\":5,",
            "\"message_id\":5,\"message_thread_id\":4,",
        );
        let Inbound::Message(m) = only(&tg(None), &plain) else {
            panic!()
        };
        assert_eq!(m.extra.topic, None, "no is_topic_message: not a forum");
    }

    #[test]
    fn a_photo_is_read_by_its_caption() {
        let Inbound::Message(m) = only(&tg(None), PHOTO) else {
            panic!()
        };
        assert!(m.text.starts_with("Deze wagen staat"), "{}", m.text);
        // The largest size, known to this bot.
        let media = m.extra.media.as_ref().expect("the photo");
        assert_eq!(media.handle, "AgACAgQAAxkBAAIBQ2dXk3s0c2FtcGxlX2xhcmdlAAI");
        assert_eq!(media.size, Some(98342));
        assert_eq!(media.bot.as_deref(), Some("123456"));
    }

    #[test]
    fn an_albums_photo_without_caption_is_ignored() {
        assert!(matches!(
            only(&tg(None), ALBUM_SECOND),
            Inbound::Ignored { .. }
        ));
    }

    #[test]
    fn the_bot_id_comes_from_the_token() {
        assert_eq!(tg(None).self_id().as_deref(), Some("123456"));
    }

    #[test]
    fn no_mutation_of_an_update_makes_the_parser_panic() {
        let t = tg(Some("s3cret"));
        let mut h = HeaderMap::new();
        h.insert(SECRET_HEADER, "s3cret".parse().unwrap());
        let base = GROUP_MSG.as_bytes();
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..5_000 {
            let b = crate::platform::mutated(base, &mut rng);
            let _ = t.parse_webhook(&h, &b);
        }
    }
}
