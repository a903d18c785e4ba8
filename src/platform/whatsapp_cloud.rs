//! Meta's WhatsApp Cloud API: the official route, for a business number.
//!
//! It cannot join ordinary WhatsApp groups: its Groups API serves only
//! groups the business itself creates, of at most 8 participants. It fits a
//! coordinators' group, a police liaison's direct chat, or a small network;
//! village groups need a linked-device gateway (`waha`, `evolution`).
//!
//! Handshake: `GET /webhooks/{account}?hub.mode=subscribe&hub.verify_token=
//! ...&hub.challenge=...` is answered with the challenge, as text/plain, only
//! when the token equals `verify_token` (constant time); otherwise 403.
//!
//! Webhook: `{object: "whatsapp_business_account", entry[].changes[].value}`
//! with `metadata.phone_number_id`, `contacts[].profile.name` and
//! `messages[]` (`from`, or `from_user_id` (the business-scoped user id)
//! for a member with a username whose number Meta withholds; `id`,
//! `timestamp`, `type`, `text.body`, a media
//! message's `caption`, `context.id` for a reply, `group_id` for a Groups
//! API group); `statuses[]` (sent, delivered, read) are ignored. With a
//! `webhook_secret` (the app secret), `X-Hub-Signature-256: sha256=<hex>`
//! must be the HMAC-SHA256 of the raw body, checked in constant time before
//! anything is parsed. A message of a batch that cannot be read is skipped
//! (and logged); the others are handled and the batch is answered 200.
//!
//! Sending: `POST {api_url}/{phone_number_id}/messages` with a Bearer token:
//! `{messaging_product: "whatsapp", recipient_type, to, type: "text",
//! text: {body}, context: {message_id}}`. Throttling (HTTP 429, error codes
//! 130429, 131056, 131048, 80007, 4) waits; 5xx and Meta's "temporarily
//! unavailable" codes are retried; anything else is refused for good.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use axum::http::HeaderMap;
use serde::Deserialize;
use serde_json::{Value, json};

use super::whatsapp;
use super::{Platform, SendError, WebhookError, secret_matches};
use crate::config::{Account, ChatId, PlatformKind, PlatformSettings};
use crate::message::{Extra, Inbound, InboundMessage, MediaFile, MediaRef, Outbound, Sender, Sent};

pub const SIGNATURE_HEADER: &str = "x-hub-signature-256";
/// The Cloud API's limit for `text.body`.
const MAX_TEXT_CHARS: usize = 4096;
/// The Cloud API's limit for a media caption.
const MAX_CAPTION_CHARS: usize = 1024;

pub struct WhatsappCloud {
    account: Account,
    phone_number_id: String,
    verify_token: Option<String>,
    http: reqwest::Client,
}

impl WhatsappCloud {
    pub fn new(account: &Account, http: reqwest::Client) -> Self {
        let (phone_number_id, verify_token) = match &account.settings {
            PlatformSettings::WhatsappCloud {
                phone_number_id,
                verify_token,
            } => (
                phone_number_id.clone(),
                Some(verify_token.expose().to_string()).filter(|t| !t.is_empty()),
            ),
            _ => (String::new(), None),
        };
        Self {
            account: account.clone(),
            phone_number_id,
            verify_token,
            http,
        }
    }
}

#[derive(Deserialize)]
struct Notification {
    object: String,
    #[serde(default)]
    entry: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    #[serde(default)]
    changes: Vec<Change>,
}

#[derive(Deserialize)]
struct Change {
    field: String,
    #[serde(default)]
    value: ChangeValue,
}

#[derive(Deserialize, Default)]
struct ChangeValue {
    metadata: Option<Metadata>,
    #[serde(default)]
    contacts: Vec<Contact>,
    /// Read one by one: a message the relay cannot read is skipped, never
    /// the whole notification (Meta would retry it, and disable a webhook
    /// that keeps failing).
    #[serde(default)]
    messages: Vec<Value>,
    #[serde(default)]
    statuses: Vec<Value>,
}

#[derive(Deserialize)]
struct Metadata {
    phone_number_id: String,
}

#[derive(Deserialize)]
struct Contact {
    /// The phone number; absent for a member with a username whose number
    /// Meta does not share.
    wa_id: Option<String>,
    /// The business-scoped user id (BSUID, `BE.1234...`).
    user_id: Option<String>,
    profile: Option<Profile>,
}

#[derive(Deserialize)]
struct Profile {
    name: Option<String>,
}

#[derive(Deserialize)]
struct CloudMessage {
    /// The member's phone number; absent when they use a username.
    from: Option<String>,
    /// The member's business-scoped user id (always there since the
    /// username rollout).
    from_user_id: Option<String>,
    id: String,
    #[serde(default)]
    timestamp: Value,
    #[serde(rename = "type", default)]
    kind: String,
    group_id: Option<String>,
    text: Option<TextBody>,
    context: Option<Context>,
    image: Option<Caption>,
    video: Option<Caption>,
    document: Option<Caption>,
}

#[derive(Deserialize)]
struct TextBody {
    body: String,
}

#[derive(Deserialize)]
struct Caption {
    caption: Option<String>,
    /// The media id (`GET /{id}` gives a download URL).
    id: Option<String>,
    mime_type: Option<String>,
}

#[derive(Deserialize)]
struct Context {
    id: Option<String>,
    /// The member forwarded this message.
    #[serde(default)]
    forwarded: bool,
}

#[derive(Deserialize)]
struct ApiError {
    error: ApiErrorBody,
}

#[derive(Deserialize)]
struct ApiErrorBody {
    code: Option<i64>,
    message: Option<String>,
}

impl WhatsappCloud {
    fn to_inbound(&self, m: CloudMessage, contacts: &[Contact]) -> Result<Inbound, WebhookError> {
        let text = match m.kind.as_str() {
            "text" => m.text.map(|t| t.body),
            "image" => m.image.as_ref().and_then(|c| c.caption.clone()),
            "video" => m.video.and_then(|c| c.caption),
            "document" => m.document.and_then(|c| c.caption),
            _ => None,
        };
        let Some(text) = text.filter(|t| !t.trim().is_empty()) else {
            return Ok(Inbound::Ignored {
                reason: "no text (reaction, sticker, location, button, ...)",
            });
        };
        let photo = m.image.as_ref().and_then(|i| {
            Some(MediaRef {
                account: self.account.id.clone(),
                platform: PlatformKind::WhatsappCloud,
                handle: i.id.clone().filter(|id| !id.is_empty())?,
                mimetype: i.mime_type.clone(),
                size: None,
                bot: None,
                note: String::new(),
            })
        });
        // The number when Meta shares it (what admins write in the
        // config), else the business-scoped user id.
        let from = m
            .from
            .as_deref()
            .or(m.from_user_id.as_deref())
            .filter(|f| !f.trim().is_empty())
            .ok_or_else(|| {
                WebhookError::Malformed("message without `from` or `from_user_id`".into())
            })?
            .to_string();
        let chat = m.group_id.as_deref().unwrap_or(&from);
        let chat = ChatId::parse(chat).map_err(WebhookError::Malformed)?;
        let name = contacts
            .iter()
            .find(|c| {
                (m.from.is_some() && c.wa_id == m.from)
                    || (m.from_user_id.is_some() && c.user_id == m.from_user_id)
            })
            .or(contacts.first())
            .and_then(|c| c.profile.as_ref()?.name.clone());
        Ok(Inbound::Message(InboundMessage {
            account: self.account.id.clone(),
            platform: PlatformKind::WhatsappCloud,
            chat,
            message_id: m.id,
            sender: Sender {
                id: from,
                name,
                is_bot: false,
            },
            text,
            reply_to: m.context.as_ref().and_then(|c| c.id.clone()),
            at_ms: whatsapp::unix_seconds(Some(&m.timestamp)).saturating_mul(1000),
            edit: None,
            quoted: None,
            extra: Box::new(Extra {
                forwarded: m.context.is_some_and(|c| c.forwarded),
                media: photo,
                ..Extra::default()
            }),
        }))
    }
}

/// How long to wait when Meta throttles, by its error code.
fn throttle(code: i64) -> Option<Duration> {
    match code {
        // Pair rate limit: too many messages to one recipient (one per 6s).
        131056 => Some(Duration::from_secs(10)),
        // Cloud API throughput, spam rate limit, WABA and app rate limits.
        130429 | 131048 | 80007 | 4 => Some(Duration::from_secs(60)),
        _ => None,
    }
}

#[async_trait]
impl Platform for WhatsappCloud {
    fn kind(&self) -> PlatformKind {
        PlatformKind::WhatsappCloud
    }

    /// None: the business number's own messages never come back as messages.
    fn self_id(&self) -> Option<String> {
        None
    }

    fn verify_handshake(
        &self,
        query: &HashMap<String, String>,
    ) -> Option<Result<String, WebhookError>> {
        let mode = query.get("hub.mode").map(String::as_str);
        let token = query.get("hub.verify_token").map(String::as_bytes);
        let expected = self.verify_token.as_deref().unwrap_or_default();
        if mode != Some("subscribe") || expected.is_empty() || !secret_matches(token, expected) {
            return Some(Err(WebhookError::Forbidden));
        }
        Some(match query.get("hub.challenge") {
            Some(c) if !c.is_empty() && c.len() <= 256 => Ok(c.clone()),
            _ => Err(WebhookError::Malformed(
                "hub.challenge is missing or too long".into(),
            )),
        })
    }

    fn parse_webhook(
        &self,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Vec<Inbound>, WebhookError> {
        if let Some(secret) = &self.account.webhook_secret {
            let given = whatsapp::header(headers, SIGNATURE_HEADER)
                .and_then(|h| h.trim().strip_prefix("sha256="));
            if !whatsapp::hmac_sha256_matches(secret.expose().as_bytes(), body, given) {
                return Err(WebhookError::Unauthorized);
            }
        }
        let n: Notification = serde_json::from_slice(body).map_err(|e| {
            WebhookError::Malformed(format!("not a WhatsApp Cloud API notification: {e}"))
        })?;
        if n.object != "whatsapp_business_account" {
            return Ok(vec![Inbound::Ignored {
                reason: "not a WhatsApp Business Account notification",
            }]);
        }
        let mut out = Vec::new();
        for change in n.entry.into_iter().flat_map(|e| e.changes) {
            if change.field != "messages" {
                out.push(Inbound::Ignored {
                    reason: "Cloud API change that is not about messages",
                });
                continue;
            }
            let v = change.value;
            // One app may serve several numbers: only ours are ours.
            if v.metadata
                .as_ref()
                .is_some_and(|m| m.phone_number_id != self.phone_number_id)
            {
                out.push(Inbound::Ignored {
                    reason: "for another phone number of the same app",
                });
                continue;
            }
            for raw in v.messages {
                let parsed = serde_json::from_value::<CloudMessage>(raw)
                    .map_err(|e| WebhookError::Malformed(format!("unreadable message: {e}")))
                    .and_then(|m| self.to_inbound(m, &v.contacts));
                match parsed {
                    Ok(ev) => out.push(ev),
                    Err(e) => {
                        // One bad message loses only itself: the rest of
                        // the batch is handled, and Meta gets its 200.
                        // Redacted: a parse error may quote a number.
                        let why = whatsapp::redact(&e.to_string());
                        tracing::warn!(account = %self.account.id, error = %why, "cloud api: message skipped");
                        out.push(Inbound::Ignored {
                            reason: "a message of the batch could not be read",
                        });
                    }
                }
            }
            if !v.statuses.is_empty() {
                out.push(Inbound::Ignored {
                    reason: "delivery status (sent, delivered, read)",
                });
            }
        }
        if out.is_empty() {
            out.push(Inbound::Ignored {
                reason: "notification without messages",
            });
        }
        Ok(out)
    }

    /// `GET /{media id}` for the download URL, then the file, both with the
    /// token (only for a media id this account received).
    async fn fetch_media(&self, media: &MediaRef, max_bytes: u64) -> Result<MediaFile, SendError> {
        if media.platform != PlatformKind::WhatsappCloud || media.account != self.account.id {
            return Err(SendError::Permanent(
                "cloud api: not this account's media".into(),
            ));
        }
        let token = self.token()?;
        let info: Value = self
            .answer(
                self.http
                    .get(format!("{}/{}", self.account.api_url, media.handle))
                    .bearer_auth(token),
            )
            .await?;
        if info
            .get("file_size")
            .and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()))
            .is_some_and(|n| n > max_bytes)
        {
            return Err(SendError::Permanent(format!(
                "cloud api: photo larger than {max_bytes} bytes"
            )));
        }
        let Some(url) = info.get("url").and_then(Value::as_str) else {
            return Err(SendError::Permanent("cloud api: media without url".into()));
        };
        let bytes = super::download(
            self.http.get(url).bearer_auth(token),
            max_bytes,
            "cloud api media",
        )
        .await?;
        Ok(media.file(bytes, info.get("mime_type").and_then(Value::as_str)))
    }

    /// Uploads the photo (`POST /{phone_number_id}/media`), then sends it by
    /// the media id Meta gives, with the text as caption.
    async fn send_photo(
        &self,
        msg: &Outbound,
        _media: &MediaRef,
        file: Option<&MediaFile>,
    ) -> Result<Sent, SendError> {
        let Some(file) = file else {
            return Err(SendError::Permanent(
                "cloud api: a photo needs its file".into(),
            ));
        };
        let token = self.token()?;
        let (content_type, body) = super::multipart(
            &[
                ("messaging_product", "whatsapp".to_string()),
                ("type", file.mimetype.clone()),
            ],
            ("file", "photo.jpg", file),
        );
        let uploaded = self
            .answer(
                self.http
                    .post(format!(
                        "{}/{}/media",
                        self.account.api_url, self.phone_number_id
                    ))
                    .bearer_auth(token)
                    .header(reqwest::header::CONTENT_TYPE, content_type)
                    .body(body),
            )
            .await?;
        let Some(id) = uploaded.get("id").and_then(Value::as_str) else {
            return Err(SendError::Transient(
                "cloud api: upload without an id".into(),
            ));
        };
        let caption = super::caption(&msg.text, MAX_CAPTION_CHARS);
        let body = json!({
            "type": "image",
            "image": {"id": id, "caption": caption},
        });
        self.post_message(msg, body).await
    }

    async fn send(&self, msg: &Outbound) -> Result<Sent, SendError> {
        let text: String = msg.text.chars().take(MAX_TEXT_CHARS).collect();
        let body = json!({
            "type": "text",
            "text": {"body": text, "preview_url": false},
        });
        self.post_message(msg, body).await
    }
}

impl WhatsappCloud {
    fn token(&self) -> Result<&str, SendError> {
        self.account
            .token
            .as_ref()
            .map(|t| t.expose())
            .ok_or_else(|| SendError::Permanent("account has no token".into()))
    }

    /// `POST /{phone_number_id}/messages`: `body` (its type and content)
    /// to `msg.chat`, as a reply to `msg.reply_to`.
    async fn post_message(&self, msg: &Outbound, mut body: Value) -> Result<Sent, SendError> {
        let token = self.token()?;
        // A member is a number; anything else is a Groups API group id.
        let is_member = msg.chat.as_str().chars().all(|c| c.is_ascii_digit());
        body["messaging_product"] = json!("whatsapp");
        body["recipient_type"] = json!(if is_member { "individual" } else { "group" });
        body["to"] = json!(msg.chat.as_str());
        if let Some(r) = &msg.reply_to {
            body["context"] = json!({ "message_id": r });
        }
        let v = self
            .answer(
                self.http
                    .post(format!(
                        "{}/{}/messages",
                        self.account.api_url, self.phone_number_id
                    ))
                    .bearer_auth(token)
                    .json(&body),
            )
            .await?;
        let id = v
            .pointer("/messages/0/id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        Ok(Sent { message_id: id })
    }

    /// Sends a Graph API request; its JSON answer, or the failure as the
    /// delivery workers need it.
    async fn answer(&self, req: reqwest::RequestBuilder) -> Result<Value, SendError> {
        let resp = req
            .send()
            .await
            .map_err(|e| super::transport_error("cloud api", e))?;
        let status = resp.status();
        let retry = whatsapp::retry_after(resp.headers());
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| super::transport_error("cloud api", e))?;
        if status.is_success() {
            return Ok(serde_json::from_slice(&bytes).unwrap_or(Value::Null));
        }
        let err = serde_json::from_slice::<ApiError>(&bytes)
            .ok()
            .map(|e| e.error);
        let code = err.as_ref().and_then(|e| e.code).unwrap_or(0);
        let why = whatsapp::redact(&format!(
            "cloud api HTTP {} code {code}: {}",
            status.as_u16(),
            err.and_then(|e| e.message).unwrap_or_default()
        ));
        if let Some(wait) = throttle(code) {
            return Err(SendError::RateLimited(retry.unwrap_or(wait)));
        }
        if status.as_u16() == 429 {
            return Err(SendError::RateLimited(
                retry.unwrap_or(Duration::from_secs(60)),
            ));
        }
        // 1: unknown API error, 2: service temporarily unavailable,
        // 131000: something went wrong, 131016: service unavailable.
        if status.is_server_error() || matches!(code, 1 | 2 | 131000 | 131016) {
            return Err(SendError::Transient(why));
        }
        Err(SendError::Permanent(why))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AccountId, Config};

    const TEXT: &str = include_str!("../../tests/fixtures/whatsapp-cloud/message-text.json");
    const REPLY: &str = include_str!("../../tests/fixtures/whatsapp-cloud/message-reply.json");
    const GROUP: &str = include_str!("../../tests/fixtures/whatsapp-cloud/message-group.json");
    const STATUS: &str = include_str!("../../tests/fixtures/whatsapp-cloud/status-delivered.json");
    const IMAGE: &str = include_str!("../../tests/fixtures/whatsapp-cloud/message-image.json");
    const USERNAME_BATCH: &str =
        include_str!("../../tests/fixtures/whatsapp-cloud/message-username-batch.json");

    fn cloud(secret: Option<&str>) -> WhatsappCloud {
        let cfg = format!(
            "[accounts.cloud]\nplatform = \"whatsapp-cloud\"\ntoken = \"EAAG-test\"\nphone_number_id = \"106540352242922\"\nverify_token = \"verify-me\"\n{}\n\
             [[groups]]\nid = \"a\"\nname = \"A\"\naccount = \"cloud\"\nchat = \"32475111111\"\n",
            secret
                .map(|s| format!("webhook_secret = \"{s}\""))
                .unwrap_or_default()
        );
        let c = Config::parse(&cfg, std::path::Path::new("t.toml")).unwrap();
        let acc = c.accounts.get(&AccountId::parse("cloud").unwrap()).unwrap();
        WhatsappCloud::new(acc, reqwest::Client::new())
    }

    fn signature(secret: &str, body: &str) -> HeaderMap {
        use hmac::Mac;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(body.as_bytes());
        let mut h = HeaderMap::new();
        h.insert(
            SIGNATURE_HEADER,
            format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
                .parse()
                .unwrap(),
        );
        h
    }

    fn query(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_text_names_the_member_by_the_profile_name_and_the_chat_by_the_number() {
        let ev = cloud(None)
            .parse_webhook(&HeaderMap::new(), TEXT.as_bytes())
            .unwrap();
        let Inbound::Message(m) = &ev[0] else {
            panic!("{ev:?}")
        };
        assert_eq!(m.platform, PlatformKind::WhatsappCloud);
        assert_eq!(m.chat.as_str(), "32475111111");
        assert_eq!(m.sender.id, "32475111111");
        assert_eq!(m.sender.name.as_deref(), Some("Jan Peeters"));
        assert!(m.message_id.starts_with("wamid."));
        assert_eq!(m.at_ms, 1_764_300_000_000);
    }

    #[test]
    fn a_member_with_a_username_is_named_by_their_business_scoped_id_and_the_batch_is_read_whole() {
        let ev = cloud(None)
            .parse_webhook(&HeaderMap::new(), USERNAME_BATCH.as_bytes())
            .unwrap();
        assert_eq!(ev.len(), 2, "{ev:?}");
        let Inbound::Message(sofie) = &ev[0] else {
            panic!("{ev:?}")
        };
        // No number: the business-scoped user id names her and her chat.
        assert_eq!(sofie.sender.id, "BE.1834920561123456789");
        assert_eq!(sofie.chat.as_str(), "BE.1834920561123456789");
        assert_eq!(sofie.sender.name.as_deref(), Some("Sofie Claes"));
        let Inbound::Message(jan) = &ev[1] else {
            panic!("{ev:?}")
        };
        // With a number: the number, as admins write it in the config.
        assert_eq!(jan.sender.id, "32475111111");
        assert_eq!(jan.sender.name.as_deref(), Some("Jan Peeters"));
    }

    #[test]
    fn a_photo_is_read_by_its_caption_and_kept_by_its_media_id() {
        let ev = cloud(None)
            .parse_webhook(&HeaderMap::new(), IMAGE.as_bytes())
            .unwrap();
        let Inbound::Message(m) = &ev[0] else {
            panic!("{ev:?}")
        };
        assert!(m.text.starts_with("Deze wagen staat"));
        let media = m.extra.media.as_ref().expect("the photo");
        assert_eq!(media.handle, "1482930571234567");
        assert_eq!(media.platform, PlatformKind::WhatsappCloud);
    }

    #[test]
    fn a_forwarded_message_is_marked() {
        let mut v: Value = serde_json::from_str(TEXT).unwrap();
        v["entry"][0]["changes"][0]["value"]["messages"][0]["context"] = json!({"forwarded": true});
        let ev = cloud(None)
            .parse_webhook(&HeaderMap::new(), v.to_string().as_bytes())
            .unwrap();
        assert!(matches!(&ev[0], Inbound::Message(m) if m.extra.forwarded && m.reply_to.is_none()));
    }

    #[test]
    fn one_unreadable_message_loses_only_itself() {
        let mut v: Value = serde_json::from_str(USERNAME_BATCH).unwrap();
        let msgs = v
            .pointer_mut("/entry/0/changes/0/value/messages")
            .and_then(Value::as_array_mut)
            .unwrap();
        // Neither `from` nor `from_user_id`, and one that is no object.
        msgs[0].as_object_mut().unwrap().remove("from_user_id");
        msgs.push(json!(42));
        let ev = cloud(None)
            .parse_webhook(&HeaderMap::new(), v.to_string().as_bytes())
            .unwrap();
        assert_eq!(ev.len(), 3, "{ev:?}");
        assert!(matches!(ev[0], Inbound::Ignored { .. }));
        assert!(matches!(&ev[1], Inbound::Message(m) if m.sender.id == "32475111111"));
        assert!(matches!(ev[2], Inbound::Ignored { .. }));
    }

    #[test]
    fn a_reply_names_the_message_it_answers() {
        let ev = cloud(None)
            .parse_webhook(&HeaderMap::new(), REPLY.as_bytes())
            .unwrap();
        let Inbound::Message(m) = &ev[0] else {
            panic!("{ev:?}")
        };
        assert_eq!(
            m.reply_to.as_deref(),
            Some("wamid.HBgLMzI0NzUxMTExMTEVAgASGBQzQUI3RjlDMkU1RDhBMEIzQzZGMQA=")
        );
    }

    #[test]
    fn a_groups_api_message_is_in_its_group() {
        let ev = cloud(None)
            .parse_webhook(&HeaderMap::new(), GROUP.as_bytes())
            .unwrap();
        let Inbound::Message(m) = &ev[0] else {
            panic!("{ev:?}")
        };
        assert_eq!(
            m.chat.as_str(),
            "Y2FwaV9ncm91cDoxMDY1NDAzNTIyNDI5MjI6MTIwMzYz"
        );
        assert_eq!(m.sender.id, "32475222222");
        assert_eq!(m.sender.name.as_deref(), Some("An"));
    }

    #[test]
    fn a_status_update_is_ignored_and_another_numbers_message_too() {
        let c = cloud(None);
        let ev = c
            .parse_webhook(&HeaderMap::new(), STATUS.as_bytes())
            .unwrap();
        assert!(
            ev.iter().all(|e| matches!(e, Inbound::Ignored { .. })),
            "{ev:?}"
        );
        let other = TEXT.replace("106540352242922", "999999999999999");
        let ev = c
            .parse_webhook(&HeaderMap::new(), other.as_bytes())
            .unwrap();
        assert!(
            ev.iter().all(|e| matches!(e, Inbound::Ignored { .. })),
            "{ev:?}"
        );
    }

    #[test]
    fn a_bad_or_missing_signature_is_refused_and_the_right_one_accepted() {
        let c = cloud(Some("app-secret"));
        assert!(matches!(
            c.parse_webhook(&HeaderMap::new(), TEXT.as_bytes()),
            Err(WebhookError::Unauthorized)
        ));
        assert!(matches!(
            c.parse_webhook(&signature("other", TEXT), TEXT.as_bytes()),
            Err(WebhookError::Unauthorized)
        ));
        let mut no_prefix = HeaderMap::new();
        let good = signature("app-secret", TEXT);
        let hex_only = good[SIGNATURE_HEADER]
            .to_str()
            .unwrap()
            .replace("sha256=", "");
        no_prefix.insert(SIGNATURE_HEADER, hex_only.parse().unwrap());
        assert!(matches!(
            c.parse_webhook(&no_prefix, TEXT.as_bytes()),
            Err(WebhookError::Unauthorized)
        ));
        assert!(c.parse_webhook(&good, TEXT.as_bytes()).is_ok());
    }

    #[test]
    fn the_handshake_echoes_the_challenge_only_for_the_right_token() {
        let c = cloud(None);
        let ok = c.verify_handshake(&query(&[
            ("hub.mode", "subscribe"),
            ("hub.verify_token", "verify-me"),
            ("hub.challenge", "1158201444"),
        ]));
        assert_eq!(ok.unwrap().unwrap(), "1158201444");
        let wrong = c.verify_handshake(&query(&[
            ("hub.mode", "subscribe"),
            ("hub.verify_token", "guess"),
            ("hub.challenge", "1158201444"),
        ]));
        assert!(matches!(wrong, Some(Err(WebhookError::Forbidden))));
        let no_mode = c.verify_handshake(&query(&[
            ("hub.verify_token", "verify-me"),
            ("hub.challenge", "1158201444"),
        ]));
        assert!(matches!(no_mode, Some(Err(WebhookError::Forbidden))));
    }

    #[test]
    fn meta_throttling_codes_wait_and_the_pair_limit_waits_less() {
        assert_eq!(throttle(131056), Some(Duration::from_secs(10)));
        assert_eq!(throttle(130429), Some(Duration::from_secs(60)));
        assert_eq!(throttle(131026), None);
    }

    #[test]
    fn garbage_is_malformed() {
        assert!(matches!(
            cloud(None).parse_webhook(&HeaderMap::new(), b"{\"object\": 3"),
            Err(WebhookError::Malformed(_))
        ));
    }
}
