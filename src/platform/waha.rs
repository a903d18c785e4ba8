//! WhatsApp groups through WAHA (WhatsApp HTTP API), a self-hosted gateway
//! that links a phone number as a device.
//!
//! Webhook: WAHA's event envelope `{event, session, me, payload, ...}`.
//! `message` and `message.any` carry a message (`id`, `timestamp`, `from`,
//! `to`, `participant`, `fromMe`, `source`, `body`, `hasMedia`, `replyTo`,
//! `_data`); every other event (`message.ack`, `session.status`, ...) is
//! answered 200 and ignored. With a `webhook_secret`, the request must carry
//! `X-Webhook-Hmac`: the hex HMAC-SHA512 of the raw body (WAHA's hmac key),
//! checked in constant time before anything is parsed.
//!
//! Several sessions (one linked number per coordinator) may post to one
//! account's URL, or each to its own: the session only matters for sending.
//! A group's message seen by several sessions is acted on once: dedup goes
//! by the group and the message's own id (see [`super::whatsapp::message_key`]).
//!
//! Our own posts: the sending session reports them with `fromMe: true,
//! source: "api"` and they are dropped here; every other session sees them as
//! a member's message, and the mark written before the send
//! ([`super::whatsapp::remember_own_copy`]) drops them in ingest. A message
//! the linked number's owner types on the phone (`fromMe: true, source:
//! "app"`) is a member's message like any other (use `message.any` to get
//! those).
//!
//! Sending: `POST {api_url}/api/sendText` with `{session, chatId, text,
//! reply_to}` and the `X-Api-Key` header.

use std::sync::Arc;

use async_trait::async_trait;
use axum::http::HeaderMap;
use serde::Deserialize;
use serde_json::{Value, json};

use super::whatsapp::{self, canonical_jid};
use super::{Platform, SendError, WebhookError};
use crate::config::{Account, ChatId, PlatformKind, PlatformSettings};
use crate::message::{
    Extra, Inbound, InboundMessage, MediaFile, MediaRef, Outbound, Quoted, Sender, Sent,
};
use crate::store::Store;

pub const HMAC_HEADER: &str = "x-webhook-hmac";
pub const HMAC_ALGORITHM_HEADER: &str = "x-webhook-hmac-algorithm";
/// WhatsApp takes up to 65536 characters; a relayed alert is never near that.
const MAX_TEXT_CHARS: usize = 60_000;

pub struct Waha {
    account: Account,
    session: String,
    http: reqwest::Client,
    store: Arc<dyn Store>,
}

impl Waha {
    pub fn new(account: &Account, http: reqwest::Client, store: Arc<dyn Store>) -> Self {
        let session = match &account.settings {
            PlatformSettings::Waha { session } => session.clone(),
            _ => "default".to_string(),
        };
        Self {
            account: account.clone(),
            session,
            http,
            store,
        }
    }
}

#[derive(Deserialize)]
struct Event {
    event: String,
    #[serde(default)]
    me: Option<Me>,
    #[serde(default)]
    payload: Value,
}

#[derive(Deserialize)]
struct Me {
    id: Option<String>,
    #[serde(rename = "pushName")]
    push_name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Message {
    id: String,
    #[serde(default)]
    timestamp: Value,
    from: Option<String>,
    to: Option<String>,
    participant: Option<String>,
    /// Older WAHA versions name the group member here.
    author: Option<String>,
    #[serde(default)]
    from_me: bool,
    source: Option<String>,
    body: Option<String>,
    #[serde(default)]
    has_media: bool,
    /// Where WAHA keeps the file it downloaded (with WAHA's media download
    /// on): `{url, mimetype}`.
    media: Option<WahaMedia>,
    reply_to: Option<ReplyTo>,
    #[serde(rename = "_data", default)]
    data: Value,
}

#[derive(Deserialize)]
struct WahaMedia {
    url: Option<String>,
    mimetype: Option<String>,
}

#[derive(Deserialize)]
struct ReplyTo {
    id: Option<String>,
    participant: Option<String>,
    /// The quoted message's text.
    body: Option<String>,
}

/// The first string among these JSON pointers into the engine's raw data.
fn raw_str<'a>(data: &'a Value, pointers: &[&str]) -> Option<&'a str> {
    pointers
        .iter()
        .find_map(|p| data.pointer(p).and_then(Value::as_str))
        .filter(|s| !s.trim().is_empty())
}

/// The chat a WAHA message belongs to, whichever engine wrote it.
///
/// `from` is the chat for every received message, and for the linked
/// number's own messages in NOWEB and GOWS; WEBJS writes the linked number
/// in `from` and the chat in `to` for those, while GOWS writes the sender in
/// `to` and NOWEB leaves `to` out when Baileys gives no participant (our own
/// sends). So: a group id in `from`, else in `to`, else the engine's raw key
/// (WEBJS `id.remote`, NOWEB `key.remoteJid`, GOWS `Info.Chat`), else, for
/// a direct chat, `to` for our own messages and `from` for the others'.
fn chat_of(m: &Message) -> Option<String> {
    let group = |s: &Option<String>| {
        s.as_deref()
            .filter(|c| canonical_jid(c).ends_with("@g.us"))
            .map(str::to_string)
    };
    group(&m.from)
        .or_else(|| group(&m.to))
        .or_else(|| {
            raw_str(&m.data, &["/id/remote", "/key/remoteJid", "/Info/Chat"]).map(str::to_string)
        })
        .or_else(|| {
            if m.from_me {
                m.to.clone()
            } else {
                m.from.clone()
            }
        })
        .filter(|c| !c.trim().is_empty())
}

impl Waha {
    fn to_inbound(&self, m: Message, me: Option<&Me>) -> Result<Inbound, WebhookError> {
        // What the gateway's API sent is ours: answered and dropped before
        // anything else (NOWEB reports our sends without a `to`; a refusal
        // would only make WAHA retry).
        if m.from_me && m.source.as_deref() == Some("api") {
            return Ok(Inbound::Ignored {
                reason: "sent through the gateway's API (our own post)",
            });
        }
        let Some(chat_raw) = chat_of(&m) else {
            if m.from_me {
                return Ok(Inbound::Ignored {
                    reason: "the linked number's own message without a chat",
                });
            }
            return Err(WebhookError::Malformed("message without a chat".into()));
        };
        let chat = canonical_jid(&chat_raw);
        if !whatsapp::relayable_chat(&chat) {
            return Ok(Inbound::Ignored {
                reason: "status update, broadcast list or channel",
            });
        }
        let chat = ChatId::parse(&chat).map_err(WebhookError::Malformed)?;
        // A photo WAHA downloaded: kept by its path on the gateway, which is
        // fetched from `api_url` (WAHA's own base URL may name another host).
        let photo = m
            .media
            .as_ref()
            .filter(|_| m.has_media)
            .filter(|md| {
                md.mimetype
                    .as_deref()
                    .is_some_and(|t| t.starts_with("image/"))
            })
            .and_then(|md| {
                let url = md.url.as_deref()?;
                let path = &url[url.find("/api/files/")?..];
                Some(MediaRef {
                    account: self.account.id.clone(),
                    platform: PlatformKind::Waha,
                    handle: path.to_string(),
                    mimetype: md.mimetype.clone(),
                    size: None,
                    bot: None,
                    note: String::new(),
                })
            });
        let Some(text) = m.body.filter(|b| !b.trim().is_empty()) else {
            return Ok(Inbound::Ignored {
                reason: if m.has_media {
                    "media without caption"
                } else {
                    "no text (reaction, sticker, location, ...)"
                },
            });
        };
        let is_group = chat.as_str().ends_with("@g.us");
        let mut sender_lid = None;
        let (sender_id, name) = if m.from_me {
            // The linked number's owner, typing on the phone.
            (
                me.and_then(|me| me.id.as_deref()).unwrap_or("me"),
                me.and_then(|me| me.push_name.clone()),
            )
        } else {
            let member = if is_group {
                // A `@lid` member may come with the phone JID beside it: the
                // phone form is what admins write in `coordinators`.
                let lid = m.participant.as_deref().or(m.author.as_deref());
                match lid {
                    Some(p) if canonical_jid(p).ends_with("@lid") => {
                        let alt = raw_str(
                            &m.data,
                            &[
                                "/key/participantAlt",
                                "/key/participantPn",
                                "/Info/SenderAlt",
                            ],
                        )
                        .filter(|a| canonical_jid(a).ends_with("@c.us"));
                        if alt.is_some() {
                            // Both spellings: the relay learns the pair.
                            sender_lid = Some(canonical_jid(p));
                        }
                        alt.or(lid)
                    }
                    other => other,
                }
            } else {
                Some(chat_raw.as_str())
            };
            let Some(member) = member else {
                return Err(WebhookError::Malformed(
                    "group message without a participant".into(),
                ));
            };
            // The push name: WEBJS `notifyName`, NOWEB `pushName`, GOWS `Info.PushName`.
            let name = raw_str(&m.data, &["/notifyName", "/pushName", "/Info/PushName"])
                .map(str::to_string);
            (member, name)
        };
        let reply_to = m
            .reply_to
            .as_ref()
            .and_then(|r| r.id.as_deref().map(|id| (id, r.participant.as_deref())))
            .or_else(|| {
                raw_str(&m.data, &["/quotedStanzaID"])
                    .map(|id| (id, raw_str(&m.data, &["/quotedParticipant"])))
            })
            .map(|(id, participant)| serialized_id(&chat, id, participant));
        let quoted = m.reply_to.as_ref().and_then(|r| {
            let text = r.body.as_deref().filter(|b| !b.trim().is_empty())?;
            Some(Box::new(Quoted {
                text: text.to_string(),
                sender: r.participant.as_deref().map(|p| Sender {
                    id: canonical_jid(p),
                    name: None,
                    is_bot: false,
                }),
            }))
        });
        Ok(Inbound::Message(InboundMessage {
            account: self.account.id.clone(),
            platform: PlatformKind::Waha,
            chat,
            // Kept serialized: it is what `reply_to` takes when we answer it.
            message_id: m.id,
            sender: Sender {
                id: canonical_jid(sender_id),
                name,
                is_bot: false,
            },
            text,
            reply_to,
            at_ms: whatsapp::unix_seconds(Some(&m.timestamp)).saturating_mul(1000),
            edit: None,
            quoted,
            extra: Box::new(Extra {
                sender_lid,
                media: photo,
                // WEBJS says so in `isForwarded`; NOWEB (Baileys) and GOWS
                // (whatsmeow) in the message's `contextInfo`.
                forwarded: [
                    "/isForwarded",
                    "/message/extendedTextMessage/contextInfo/isForwarded",
                    "/message/imageMessage/contextInfo/isForwarded",
                    "/Message/extendedTextMessage/contextInfo/isForwarded",
                    "/Message/imageMessage/contextInfo/isForwarded",
                ]
                .iter()
                .any(|p| m.data.pointer(p).and_then(Value::as_bool) == Some(true)),
                ..Extra::default()
            }),
        }))
    }
}

/// A message id in WAHA's serialized form, from its parts: a member's
/// message as every linked number but the author's sees it.
fn serialized_id(chat: &ChatId, id: &str, participant: Option<&str>) -> String {
    if id.starts_with("false_") || id.starts_with("true_") {
        return id.to_string();
    }
    match participant.filter(|p| !p.is_empty() && chat.as_str().ends_with("@g.us")) {
        Some(p) => format!("false_{chat}_{id}_{}", canonical_jid(p)),
        None => format!("false_{chat}_{id}"),
    }
}

#[async_trait]
impl Platform for Waha {
    fn kind(&self) -> PlatformKind {
        PlatformKind::Waha
    }

    /// None: the linked number may be a coordinator's own, whose messages
    /// typed on the phone are members' messages. Our posts are recognised by
    /// `source: "api"` and by the mark written before each send.
    fn self_id(&self) -> Option<String> {
        None
    }

    fn parse_webhook(
        &self,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Vec<Inbound>, WebhookError> {
        if let Some(key) = &self.account.webhook_secret {
            let algorithm = whatsapp::header(headers, HMAC_ALGORITHM_HEADER);
            if algorithm.is_some_and(|a| !a.eq_ignore_ascii_case("sha512")) {
                return Err(WebhookError::Unauthorized);
            }
            let given = whatsapp::header(headers, HMAC_HEADER);
            if !whatsapp::hmac_sha512_matches(key.expose().as_bytes(), body, given) {
                return Err(WebhookError::Unauthorized);
            }
        }
        let ev: Event = serde_json::from_slice(body)
            .map_err(|e| WebhookError::Malformed(format!("not a WAHA event: {e}")))?;
        match ev.event.as_str() {
            "message" | "message.any" => {
                let m: Message = serde_json::from_value(ev.payload).map_err(|e| {
                    WebhookError::Malformed(format!("not a WAHA message payload: {e}"))
                })?;
                Ok(vec![self.to_inbound(m, ev.me.as_ref())?])
            }
            _ => Ok(vec![Inbound::Ignored {
                reason: "WAHA event that is not a message",
            }]),
        }
    }

    /// WAHA's lid lookup: `GET /api/{session}/lids/{lid}` answers `{lid,
    /// pn}`, `pn` null when the session does not know the number.
    async fn phone_of_lid(&self, lid: &str) -> Option<String> {
        let digits = lid.strip_suffix("@lid")?;
        if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        let mut req = self.http.get(format!(
            "{}/api/{}/lids/{digits}",
            self.account.api_url, self.session
        ));
        if let Some(t) = &self.account.token {
            req = req.header("X-Api-Key", t.expose());
        }
        let resp = req
            .timeout(std::time::Duration::from_secs(2))
            .send()
            .await
            .ok()?;
        if !resp.status().is_success() {
            return None;
        }
        let v: Value = resp.json().await.ok()?;
        let pn = canonical_jid(v.get("pn")?.as_str()?);
        pn.ends_with("@c.us").then_some(pn)
    }

    /// The file WAHA keeps under `handle` (`/api/files/...`), with the API key.
    async fn fetch_media(&self, media: &MediaRef, max_bytes: u64) -> Result<MediaFile, SendError> {
        // Only WAHA's files, on the configured gateway: the path comes from
        // a webhook and is never followed anywhere else.
        if media.platform != PlatformKind::Waha
            || !media.handle.starts_with("/api/files/")
            || media.handle.contains("..")
            || media.handle.contains('?')
        {
            return Err(SendError::Permanent("waha: not a WAHA file".into()));
        }
        let mut req = self
            .http
            .get(format!("{}{}", self.account.api_url, media.handle));
        if let Some(t) = &self.account.token {
            req = req.header("X-Api-Key", t.expose());
        }
        let bytes = super::download(req, max_bytes, "waha file").await?;
        Ok(media.file(bytes, None))
    }

    /// `POST /api/sendImage` with the file as base64 and the text as caption.
    async fn send_photo(
        &self,
        msg: &Outbound,
        _media: &MediaRef,
        file: Option<&MediaFile>,
    ) -> Result<Sent, SendError> {
        use base64::Engine;
        let Some(file) = file else {
            return Err(SendError::Permanent("waha: a photo needs its file".into()));
        };
        let caption: String = msg.text.chars().take(MAX_TEXT_CHARS).collect();
        let body = json!({
            "session": self.session,
            "chatId": msg.chat.as_str(),
            "file": {
                "mimetype": file.mimetype,
                "filename": "photo.jpg",
                "data": base64::engine::general_purpose::STANDARD.encode(&file.bytes),
            },
            "caption": caption,
        });
        self.post("sendImage", msg, &caption, body).await
    }

    async fn send(&self, msg: &Outbound) -> Result<Sent, SendError> {
        let text: String = msg.text.chars().take(MAX_TEXT_CHARS).collect();
        let body = json!({
            "session": self.session,
            "chatId": msg.chat.as_str(),
            "text": text,
        });
        self.post("sendText", msg, &text, body).await
    }
}

impl Waha {
    /// Posts `body` to `/api/{method}` after marking `text` as our own copy
    /// in the chat; a reply quotes `msg.reply_to`.
    async fn post(
        &self,
        method: &str,
        msg: &Outbound,
        text: &str,
        mut body: Value,
    ) -> Result<Sent, SendError> {
        whatsapp::remember_own_copy(self.store.as_ref(), PlatformKind::Waha, &msg.chat, text)
            .await?;
        if let Some(r) = &msg.reply_to {
            // An id from Evolution is bare; WAHA wants it serialized.
            body["reply_to"] = json!(serialized_id(&msg.chat, r, None));
        }
        let mut req = self
            .http
            .post(format!("{}/api/{method}", self.account.api_url))
            .json(&body);
        if let Some(t) = &self.account.token {
            req = req.header("X-Api-Key", t.expose());
        }
        let resp = req
            .send()
            .await
            .map_err(|e| super::transport_error("waha", e))?;
        let status = resp.status();
        let retry = whatsapp::retry_after(resp.headers());
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| super::transport_error("waha", e))?;
        if !status.is_success() {
            return Err(whatsapp::gateway_error("waha", status, retry, &bytes));
        }
        // The answer is the engine's message: WEBJS `{id: {_serialized}}`,
        // NOWEB `{key: {id}}`, or WAHA's own `{id: "true_..."}`.
        let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let id = v
            .get("id")
            .and_then(|id| id.as_str().or_else(|| id.get("_serialized")?.as_str()))
            .map(str::to_string)
            .or_else(|| {
                let id = v.pointer("/key/id")?.as_str()?;
                Some(format!("true_{}_{id}", msg.chat))
            })
            .unwrap_or_default();
        Ok(Sent { message_id: id })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AccountId, Config};
    use crate::store::SledStore;

    const GROUP_MSG: &str = include_str!("../../tests/fixtures/waha/message-group.json");
    const REPLY: &str = include_str!("../../tests/fixtures/waha/message-group-reply.json");
    const MEDIA: &str = include_str!("../../tests/fixtures/waha/message-media-caption.json");
    const ECHO: &str = include_str!("../../tests/fixtures/waha/message-any-own-echo.json");
    const ACK: &str = include_str!("../../tests/fixtures/waha/message-ack.json");
    const GOWS_FROM_PHONE: &str =
        include_str!("../../tests/fixtures/waha/message-any-gows-typed-on-phone.json");
    const NOWEB_ECHO: &str =
        include_str!("../../tests/fixtures/waha/message-any-noweb-own-echo.json");
    const WEBJS_LID: &str = include_str!("../../tests/fixtures/waha/message-webjs-lid-member.json");
    const NOWEB_LID: &str =
        include_str!("../../tests/fixtures/waha/message-noweb-lid-with-phone.json");
    const FROM_PHONE: &str =
        include_str!("../../tests/fixtures/waha/message-any-typed-on-phone.json");

    fn waha(secret: Option<&str>) -> (Waha, tempfile::TempDir) {
        let cfg = format!(
            "[accounts.wa]\nplatform = \"waha\"\napi_url = \"http://waha:3000\"\nsession = \"coord-veulen\"\n{}\n\
             [[groups]]\nid = \"a\"\nname = \"A\"\naccount = \"wa\"\nchat = \"120363041111111111@g.us\"\n",
            secret
                .map(|s| format!("webhook_secret = \"{s}\""))
                .unwrap_or_default()
        );
        let c = Config::parse(&cfg, std::path::Path::new("t.toml")).unwrap();
        let acc = c.accounts.get(&AccountId::parse("wa").unwrap()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SledStore::open(dir.path()).unwrap());
        (Waha::new(acc, reqwest::Client::new(), store), dir)
    }

    fn one(w: &Waha, body: &str) -> Inbound {
        let mut ev = w.parse_webhook(&HeaderMap::new(), body.as_bytes()).unwrap();
        assert_eq!(ev.len(), 1);
        ev.remove(0)
    }

    fn signed(secret: &str, body: &str) -> HeaderMap {
        use hmac::Mac;
        let mut mac = hmac::Hmac::<sha2::Sha512>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(body.as_bytes());
        let mut h = HeaderMap::new();
        h.insert(
            HMAC_HEADER,
            hex::encode(mac.finalize().into_bytes()).parse().unwrap(),
        );
        h.insert(HMAC_ALGORITHM_HEADER, "sha512".parse().unwrap());
        h
    }

    #[test]
    fn a_group_message_names_the_group_the_member_and_the_push_name() {
        let (w, _d) = waha(None);
        let Inbound::Message(m) = one(&w, GROUP_MSG) else {
            panic!()
        };
        assert_eq!(m.platform, PlatformKind::Waha);
        assert_eq!(m.chat.as_str(), "120363041111111111@g.us");
        assert_eq!(m.sender.id, "32475111111@c.us");
        assert_eq!(m.sender.name.as_deref(), Some("Jan Peeters"));
        assert!(m.text.starts_with("Verdachte grijze bestelwagen"));
        assert_eq!(
            m.message_id,
            "false_120363041111111111@g.us_3EB0C767D097B7C7C030_32475111111@c.us"
        );
        assert_eq!(m.at_ms, 1_764_300_000_000);
        assert_eq!(m.reply_to, None);
        assert_eq!(
            m.dedup_key(),
            "whatsapp|120363041111111111@g.us|3EB0C767D097B7C7C030"
        );
    }

    #[test]
    fn a_reply_keeps_the_quoted_message_in_the_form_waha_takes_back() {
        let (w, _d) = waha(None);
        let Inbound::Message(m) = one(&w, REPLY) else {
            panic!()
        };
        assert_eq!(
            m.reply_to.as_deref(),
            Some("false_120363041111111111@g.us_3EB0C767D097B7C7C030_32475111111@c.us")
        );
        assert_eq!(m.sender.name.as_deref(), Some("An"));
    }

    #[test]
    fn a_photo_with_a_caption_is_read_by_its_caption() {
        let (w, _d) = waha(None);
        let Inbound::Message(m) = one(&w, MEDIA) else {
            panic!()
        };
        assert!(m.text.contains("nummerplaat"), "{}", m.text);
        // Kept by its path on the gateway, fetched from `api_url`.
        let media = m.extra.media.as_ref().expect("the photo");
        assert_eq!(
            media.handle,
            "/api/files/coord-veulen/false_120363041111111111@g.us_3A7C2F9E1B5D8A4C6E0F_32475333333@c.us.jpeg"
        );
    }

    #[test]
    fn our_own_api_post_and_an_ack_are_ignored() {
        let (w, _d) = waha(None);
        assert!(matches!(one(&w, ECHO), Inbound::Ignored { .. }));
        assert!(matches!(one(&w, ACK), Inbound::Ignored { .. }));
    }

    #[test]
    fn what_the_linked_numbers_owner_types_on_the_phone_is_a_members_message() {
        let (w, _d) = waha(None);
        let Inbound::Message(m) = one(&w, FROM_PHONE) else {
            panic!()
        };
        // The chat is `to` for our own number's messages; the sender is `me`.
        assert_eq!(m.chat.as_str(), "120363041111111111@g.us");
        assert_eq!(m.sender.id, "32475999999@c.us");
        assert_eq!(m.sender.name.as_deref(), Some("Coördinator Veulen"));
        assert!(w.self_id().is_none());
    }

    #[test]
    fn a_bad_or_missing_hmac_is_refused_and_the_right_one_accepted() {
        let (w, _d) = waha(Some("hmac-key"));
        assert!(matches!(
            w.parse_webhook(&HeaderMap::new(), GROUP_MSG.as_bytes()),
            Err(WebhookError::Unauthorized)
        ));
        let wrong = signed("other-key", GROUP_MSG);
        assert!(matches!(
            w.parse_webhook(&wrong, GROUP_MSG.as_bytes()),
            Err(WebhookError::Unauthorized)
        ));
        // A signature over another body does not fit this one.
        let other_body = signed("hmac-key", ACK);
        assert!(matches!(
            w.parse_webhook(&other_body, GROUP_MSG.as_bytes()),
            Err(WebhookError::Unauthorized)
        ));
        let mut sha256 = signed("hmac-key", GROUP_MSG);
        sha256.insert(HMAC_ALGORITHM_HEADER, "sha256".parse().unwrap());
        assert!(matches!(
            w.parse_webhook(&sha256, GROUP_MSG.as_bytes()),
            Err(WebhookError::Unauthorized)
        ));
        let ok = signed("hmac-key", GROUP_MSG);
        assert!(matches!(
            w.parse_webhook(&ok, GROUP_MSG.as_bytes()).unwrap()[0],
            Inbound::Message(_)
        ));
    }

    #[test]
    fn garbage_is_malformed_and_a_status_update_is_ignored() {
        let (w, _d) = waha(None);
        assert!(matches!(
            w.parse_webhook(&HeaderMap::new(), b"{\"event\":"),
            Err(WebhookError::Malformed(_))
        ));
        assert!(matches!(
            w.parse_webhook(
                &HeaderMap::new(),
                br#"{"event":"message","payload":{"id":7}}"#
            ),
            Err(WebhookError::Malformed(_))
        ));
        let status = GROUP_MSG.replace("120363041111111111@g.us", "status@broadcast");
        assert!(matches!(one(&w, &status), Inbound::Ignored { .. }));
    }

    #[test]
    fn a_bare_id_from_another_gateway_is_serialized_for_reply_to() {
        let chat = ChatId::parse("120363041111111111@g.us").unwrap();
        assert_eq!(
            serialized_id(&chat, "3EB0AAAA", None),
            "false_120363041111111111@g.us_3EB0AAAA"
        );
        assert_eq!(
            serialized_id(&chat, "false_x@g.us_3EB0AAAA_1@c.us", None),
            "false_x@g.us_3EB0AAAA_1@c.us"
        );
    }

    #[test]
    fn a_gows_message_typed_on_the_linked_phone_belongs_to_the_group_in_from() {
        // GOWS writes the chat in `from` and the sender in `to`, also for
        // the linked number's own messages.
        let (w, _d) = waha(None);
        let Inbound::Message(m) = one(&w, GOWS_FROM_PHONE) else {
            panic!()
        };
        assert_eq!(m.chat.as_str(), "120363041111111111@g.us");
        assert_eq!(m.sender.id, "32475999999@c.us");
        assert!(m.text.starts_with("Inbraak gemeld"));
        // The same message through any engine has the same key.
        assert_eq!(
            m.dedup_key(),
            "whatsapp|120363041111111111@g.us|3EB0A1B2C3D4E5F60718"
        );
    }

    #[test]
    fn a_noweb_echo_of_our_own_send_is_ignored_not_refused() {
        // Baileys gives our own sends no participant, so WAHA leaves `to`
        // out: still our post, still answered 200.
        let (w, _d) = waha(None);
        assert!(matches!(one(&w, NOWEB_ECHO), Inbound::Ignored { .. }));
        // Without `source` (older WAHA) the group is found in `from`, and
        // the mark written before the send drops it in ingest.
        let no_source = NOWEB_ECHO.replace("\"source\": \"api\",", "");
        let Inbound::Message(m) = one(&w, &no_source) else {
            panic!()
        };
        assert_eq!(m.chat.as_str(), "120363042222222222@g.us");
    }

    #[test]
    fn a_lid_member_is_named_by_phone_where_the_engine_gives_it_and_keeps_the_lid() {
        let (w, _d) = waha(None);
        let Inbound::Message(webjs) = one(&w, WEBJS_LID) else {
            panic!()
        };
        assert_eq!(webjs.sender.id, "204567890123456@lid");
        assert_eq!(webjs.extra.sender_lid, None);
        let Inbound::Message(noweb) = one(&w, NOWEB_LID) else {
            panic!()
        };
        assert_eq!(noweb.sender.id, "32475333333@c.us");
        assert_eq!(
            noweb.extra.sender_lid.as_deref(),
            Some("204567890123456@lid")
        );
    }

    #[test]
    fn a_forwarded_message_is_marked_whatever_the_engine() {
        let (w, _d) = waha(None);
        let Inbound::Message(m) = one(&w, GROUP_MSG) else {
            panic!()
        };
        assert!(!m.extra.forwarded);
        // WEBJS: `_data.isForwarded`.
        let webjs = GROUP_MSG.replace("\"isForwarded\": false", "\"isForwarded\": true");
        let Inbound::Message(m) = one(&w, &webjs) else {
            panic!()
        };
        assert!(m.extra.forwarded);
        // NOWEB: the Baileys message's contextInfo.
        let noweb = REPLY.replace(
            "\"stanzaId\": \"3EB0C767D097B7C7C030\",",
            "\"stanzaId\": \"3EB0C767D097B7C7C030\", \"isForwarded\": true,",
        );
        let Inbound::Message(m) = one(&w, &noweb) else {
            panic!()
        };
        assert!(m.extra.forwarded);
    }

    #[test]
    fn no_mutation_of_an_event_makes_the_parser_panic() {
        let (w, _d) = waha(None);
        let mut rng = fastrand::Rng::with_seed(11);
        for base in [GROUP_MSG, REPLY, FROM_PHONE] {
            for _ in 0..2_000 {
                let b = crate::platform::mutated(base.as_bytes(), &mut rng);
                let _ = w.parse_webhook(&HeaderMap::new(), &b);
            }
        }
    }
}
