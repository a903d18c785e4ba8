//! WhatsApp groups through Evolution API (v2), a self-hosted gateway that
//! links a phone number as a device (Baileys underneath).
//!
//! Webhook: Evolution's envelope `{event, instance, data, destination,
//! date_time, sender, server_url, apikey}`. `messages.upsert` carries one
//! message: `data.key.{remoteJid, fromMe, id, participant}`, `data.pushName`,
//! and the text in `data.message.conversation`,
//! `.extendedTextMessage.text` (with `.contextInfo.stanzaId` for a quote)
//! or a media message's `caption`; every other event is answered 200 and
//! ignored. Set the instance's webhook with `webhook_by_events: false`, so
//! every event comes to `/webhooks/{account}` itself.
//!
//! Authentication: Evolution does not sign its webhooks. With a
//! `webhook_secret`, a request with an `apikey` header (a custom header set
//! in the instance's webhook `headers`) is accepted when that header equals
//! it; a request without one when the envelope's own `apikey` field does.
//! Evolution fills that field with the instance token only when
//! `AUTHENTICATION_EXPOSE_IN_FETCH_INSTANCES=true`; by default it is null,
//! and such an event is refused (401, and a warning that says why). Both
//! compare in constant time. Evolution v2.2+ flattens a quoting
//! `extendedTextMessage` into `conversation` and keeps the quote only in
//! `data.contextInfo`: both places are read.
//!
//! Our own posts come back as `fromMe` messages of the sending instance and
//! as members' messages of any other linked number in the group; the mark
//! written before each send ([`super::whatsapp::remember_own_copy`]) drops
//! both in ingest. Other `fromMe` messages are the linked number's owner
//! typing on the phone: a member's message like any other.
//!
//! Sending: `POST {api_url}/message/sendText/{instance}` with `{number,
//! text, quoted: {key: {id}}}` and the `apikey` header.

use std::sync::Arc;

use async_trait::async_trait;
use axum::http::HeaderMap;
use serde::Deserialize;
use serde_json::{Value, json};

use super::whatsapp::{self, canonical_jid};
use super::{Platform, SendError, WebhookError, secret_matches};
use crate::config::{Account, ChatId, PlatformKind, PlatformSettings};
use crate::message::{
    Extra, Inbound, InboundMessage, MediaFile, MediaRef, Outbound, Quoted, Sender, Sent,
};
use crate::store::Store;

pub const APIKEY_HEADER: &str = "apikey";
/// WhatsApp takes up to 65536 characters; a relayed alert is never near that.
const MAX_TEXT_CHARS: usize = 60_000;

pub struct Evolution {
    account: Account,
    instance: String,
    http: reqwest::Client,
    store: Arc<dyn Store>,
}

impl Evolution {
    pub fn new(account: &Account, http: reqwest::Client, store: Arc<dyn Store>) -> Self {
        let instance = match &account.settings {
            PlatformSettings::Evolution { instance } => instance.clone(),
            _ => String::new(),
        };
        Self {
            account: account.clone(),
            instance,
            http,
            store,
        }
    }
}

#[derive(Deserialize)]
struct Event {
    event: String,
    #[serde(default)]
    data: Value,
    /// The instance's own JID (the linked number).
    sender: Option<String>,
}

/// Only the field the authentication needs, read before anything else.
#[derive(Deserialize)]
struct Apikey {
    apikey: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Upsert {
    key: Key,
    push_name: Option<String>,
    #[serde(default)]
    message: Value,
    #[serde(default)]
    message_timestamp: Value,
    /// Evolution v2 copies the quote's context here too.
    #[serde(default)]
    context_info: Value,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Key {
    remote_jid: String,
    #[serde(default)]
    from_me: bool,
    id: String,
    participant: Option<String>,
    /// Baileys 7: the other spelling of a `@lid` member or chat.
    participant_alt: Option<String>,
    remote_jid_alt: Option<String>,
}

/// The message itself, out of the wrappers WhatsApp puts around it
/// (disappearing messages, view-once, documents with a caption).
fn unwrap_message(m: &Value) -> &Value {
    let mut m = m;
    for _ in 0..4 {
        let inner = [
            "ephemeralMessage",
            "viewOnceMessage",
            "viewOnceMessageV2",
            "documentWithCaptionMessage",
            "editedMessage",
        ]
        .iter()
        .find_map(|w| m.get(*w).and_then(|x| x.get("message")));
        match inner {
            Some(i) => m = i,
            None => break,
        }
    }
    m
}

/// The text of a message and the id of the message it quotes, if any.
fn text_and_quote(m: &Value) -> (Option<String>, Option<String>) {
    let m = unwrap_message(m);
    let str_at = |p: &str| {
        m.pointer(p)
            .and_then(Value::as_str)
            .filter(|s| !s.trim().is_empty())
            .map(str::to_string)
    };
    let text = str_at("/conversation")
        .or_else(|| str_at("/extendedTextMessage/text"))
        .or_else(|| str_at("/imageMessage/caption"))
        .or_else(|| str_at("/videoMessage/caption"))
        .or_else(|| str_at("/documentMessage/caption"));
    let quote = [
        "/extendedTextMessage/contextInfo/stanzaId",
        "/imageMessage/contextInfo/stanzaId",
        "/videoMessage/contextInfo/stanzaId",
        "/documentMessage/contextInfo/stanzaId",
    ]
    .iter()
    .find_map(|p| str_at(p));
    (text, quote)
}

/// The text of the message a reply quotes, when WhatsApp sent it along.
fn quoted_text(m: &Value) -> Option<String> {
    let m = unwrap_message(m);
    [
        "/extendedTextMessage/contextInfo",
        "/imageMessage/contextInfo",
        "/videoMessage/contextInfo",
    ]
    .iter()
    .find_map(|p| quoted_in(m.pointer(p)?))
}

/// The quoted text in a `contextInfo` (`quotedMessage`), if any.
fn quoted_in(context_info: &Value) -> Option<String> {
    let q = unwrap_message(context_info.get("quotedMessage")?);
    [
        "/conversation",
        "/extendedTextMessage/text",
        "/imageMessage/caption",
        "/videoMessage/caption",
        "/documentMessage/caption",
    ]
    .iter()
    .find_map(|p| q.pointer(p).and_then(Value::as_str))
    .filter(|s| !s.trim().is_empty())
    .map(str::to_string)
}

/// WhatsApp marks a forwarded message in its `contextInfo` (Evolution
/// 2.2+ lifts that out to `data.contextInfo`).
fn is_forwarded(m: &Value, context_info: &Value) -> bool {
    let m = unwrap_message(m);
    [
        "/extendedTextMessage/contextInfo/isForwarded",
        "/imageMessage/contextInfo/isForwarded",
        "/videoMessage/contextInfo/isForwarded",
    ]
    .iter()
    .filter_map(|p| m.pointer(p))
    .chain(context_info.get("isForwarded"))
    .any(|v| v.as_bool() == Some(true))
}

fn has_media(m: &Value) -> bool {
    let m = unwrap_message(m);
    [
        "imageMessage",
        "videoMessage",
        "documentMessage",
        "audioMessage",
        "stickerMessage",
    ]
    .iter()
    .any(|k| m.get(*k).is_some())
}

/// The phone-number spelling when the gateway offers it beside a `@lid`.
fn prefer_phone<'a>(id: &'a str, alt: Option<&'a str>) -> &'a str {
    match alt {
        Some(a) if id.ends_with("@lid") && !a.ends_with("@lid") && !a.is_empty() => a,
        _ => id,
    }
}

impl Evolution {
    fn to_inbound(&self, u: Upsert, instance_jid: Option<&str>) -> Result<Inbound, WebhookError> {
        let chat = canonical_jid(prefer_phone(
            &u.key.remote_jid,
            u.key.remote_jid_alt.as_deref(),
        ));
        if !whatsapp::relayable_chat(&chat) {
            return Ok(Inbound::Ignored {
                reason: "status update, broadcast list or channel",
            });
        }
        let chat = ChatId::parse(&chat).map_err(WebhookError::Malformed)?;
        let (text, quote) = text_and_quote(&u.message);
        let Some(text) = text else {
            return Ok(Inbound::Ignored {
                reason: if has_media(&u.message) {
                    "media without caption"
                } else {
                    "no text (reaction, sticker, location, ...)"
                },
            });
        };
        let quote = quote.or_else(|| {
            u.context_info
                .get("stanzaId")
                .and_then(Value::as_str)
                .map(str::to_string)
        });
        // Evolution >= 2.2 flattens an extendedTextMessage into
        // `conversation` and keeps the quote only in `data.contextInfo`.
        let quoted = quoted_text(&u.message)
            .or_else(|| quoted_in(&u.context_info))
            .map(|text| {
                let sender = u
                    .context_info
                    .get("participant")
                    .and_then(Value::as_str)
                    .filter(|p| !p.is_empty())
                    .map(|p| Sender {
                        id: canonical_jid(p),
                        name: None,
                        is_bot: false,
                    });
                Box::new(Quoted { text, sender })
            });
        let is_group = chat.as_str().ends_with("@g.us");
        let mut sender_lid = None;
        let sender_id = if u.key.from_me {
            // The linked number's owner, typing on the phone (our own posts
            // are dropped by their mark in ingest).
            instance_jid.unwrap_or("me").to_string()
        } else if is_group {
            let Some(p) = u.key.participant.as_deref().filter(|p| !p.is_empty()) else {
                return Err(WebhookError::Malformed(
                    "group message without key.participant".into(),
                ));
            };
            let id = prefer_phone(p, u.key.participant_alt.as_deref());
            if id != p {
                // Both spellings: the relay learns the pair.
                sender_lid = Some(canonical_jid(p));
            }
            id.to_string()
        } else {
            chat.as_str().to_string()
        };
        let photo = self.photo_of(&u.message, &u.key);
        Ok(Inbound::Message(InboundMessage {
            account: self.account.id.clone(),
            platform: PlatformKind::Evolution,
            chat,
            message_id: u.key.id,
            sender: Sender {
                id: canonical_jid(&sender_id),
                name: u.push_name.filter(|n| !n.trim().is_empty()),
                is_bot: false,
            },
            text,
            reply_to: quote,
            at_ms: whatsapp::unix_seconds(Some(&u.message_timestamp)).saturating_mul(1000),
            edit: None,
            quoted,
            extra: Box::new(Extra {
                sender_lid,
                media: photo,
                forwarded: is_forwarded(&u.message, &u.context_info),
                ..Extra::default()
            }),
        }))
    }

    /// The photo of a message (an `imageMessage`, also inside the usual
    /// wrappers), kept by the message's key: Evolution finds the message in
    /// its store by it when asked for the file.
    fn photo_of(&self, message: &Value, key: &Key) -> Option<MediaRef> {
        let img = unwrap_message(message).get("imageMessage")?;
        let handle = json!({
            "id": key.id,
            "remoteJid": key.remote_jid,
            "fromMe": key.from_me,
            "participant": key.participant,
        });
        Some(MediaRef {
            account: self.account.id.clone(),
            platform: PlatformKind::Evolution,
            handle: handle.to_string(),
            mimetype: img
                .get("mimetype")
                .and_then(Value::as_str)
                .map(str::to_string),
            size: img
                .get("fileLength")
                .and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok())),
            bot: None,
            note: String::new(),
        })
    }

    /// Evolution's `number`: a group's full JID, a member's bare number.
    fn number(chat: &ChatId) -> String {
        match chat.as_str().strip_suffix("@c.us") {
            Some(n) => n.to_string(),
            None => chat.as_str().to_string(),
        }
    }
}

#[async_trait]
impl Platform for Evolution {
    fn kind(&self) -> PlatformKind {
        PlatformKind::Evolution
    }

    /// None: the linked number may be a coordinator's own (see the module doc).
    fn self_id(&self) -> Option<String> {
        None
    }

    fn parse_webhook(
        &self,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Vec<Inbound>, WebhookError> {
        if let Some(secret) = &self.account.webhook_secret {
            // The custom header decides when it is there: it is the
            // operator's own secret, set on the instance's webhook. Without
            // it, the event's `apikey` field (the instance token) may stand
            // in, but Evolution fills that in only with
            // AUTHENTICATION_EXPOSE_IN_FETCH_INSTANCES=true: otherwise null.
            let ok = match headers.get(APIKEY_HEADER) {
                Some(h) => secret_matches(Some(h.as_bytes()), secret.expose()),
                // An unauthenticated body is not described back: any
                // failure to read its apikey is just "unauthorized".
                None => match serde_json::from_slice::<Apikey>(body) {
                    Ok(Apikey { apikey: Some(k) }) => {
                        secret_matches(Some(k.as_bytes()), secret.expose())
                    }
                    Ok(Apikey { apikey: None }) => {
                        tracing::warn!(
                            account = %self.account.id,
                            "evolution event refused: no `apikey` header and the event's apikey is null; set the header `apikey` on the instance's webhook (or AUTHENTICATION_EXPOSE_IN_FETCH_INSTANCES=true in Evolution, with webhook_secret = the instance token)"
                        );
                        false
                    }
                    Err(_) => false,
                },
            };
            if !ok {
                return Err(WebhookError::Unauthorized);
            }
        }
        let ev: Event = serde_json::from_slice(body)
            .map_err(|e| WebhookError::Malformed(format!("not an Evolution event: {e}")))?;
        // v2 writes `messages.upsert`; global webhooks of some versions
        // write `MESSAGES_UPSERT`.
        let name = ev.event.to_ascii_lowercase().replace('_', ".");
        if name != "messages.upsert" {
            return Ok(vec![Inbound::Ignored {
                reason: "Evolution event that is not a new message",
            }]);
        }
        let items = match ev.data {
            Value::Array(items) => items,
            one => vec![one],
        };
        let mut out = Vec::new();
        for item in items {
            let u: Upsert = serde_json::from_value(item).map_err(|e| {
                WebhookError::Malformed(format!("not an Evolution messages.upsert: {e}"))
            })?;
            out.push(self.to_inbound(u, ev.sender.as_deref())?);
        }
        if out.is_empty() {
            out.push(Inbound::Ignored {
                reason: "messages.upsert without a message",
            });
        }
        Ok(out)
    }

    /// `POST /chat/getBase64FromMediaMessage/{instance}` with the message's
    /// key: Evolution finds the message in its store and downloads it.
    async fn fetch_media(&self, media: &MediaRef, max_bytes: u64) -> Result<MediaFile, SendError> {
        use base64::Engine;
        let key: Value = serde_json::from_str(&media.handle)
            .map_err(|_| SendError::Permanent("evolution: not a message key".into()))?;
        if media.platform != PlatformKind::Evolution {
            return Err(SendError::Permanent(
                "evolution: not an Evolution message".into(),
            ));
        }
        let body = json!({ "message": { "key": key }, "convertToMp4": false });
        let v = self
            .request(
                &format!("chat/getBase64FromMediaMessage/{}", self.instance),
                &body,
            )
            .await?;
        let Some(b64) = v.get("base64").and_then(Value::as_str) else {
            return Err(SendError::Permanent(
                "evolution: no base64 in the answer".into(),
            ));
        };
        // The encoded size tells before decoding: 4 characters per 3 bytes.
        if (b64.len() as u64) / 4 * 3 > max_bytes + 3 {
            return Err(SendError::Permanent(format!(
                "evolution: photo larger than {max_bytes} bytes"
            )));
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map_err(|_| SendError::Permanent("evolution: unreadable base64".into()))?;
        if bytes.is_empty() || bytes.len() as u64 > max_bytes {
            return Err(SendError::Permanent(format!(
                "evolution: photo empty or larger than {max_bytes} bytes"
            )));
        }
        Ok(media.file(bytes, v.get("mimetype").and_then(Value::as_str)))
    }

    /// `POST /message/sendMedia/{instance}`: the photo as base64, the text
    /// as its caption.
    async fn send_photo(
        &self,
        msg: &Outbound,
        _media: &MediaRef,
        file: Option<&MediaFile>,
    ) -> Result<Sent, SendError> {
        use base64::Engine;
        let Some(file) = file else {
            return Err(SendError::Permanent(
                "evolution: a photo needs its file".into(),
            ));
        };
        let caption: String = msg.text.chars().take(MAX_TEXT_CHARS).collect();
        let body = json!({
            "number": Self::number(&msg.chat),
            "mediatype": "image",
            "mimetype": file.mimetype,
            "caption": caption,
            "media": base64::engine::general_purpose::STANDARD.encode(&file.bytes),
            "fileName": "photo.jpg",
        });
        self.post("sendMedia", msg, &caption, body).await
    }

    async fn send(&self, msg: &Outbound) -> Result<Sent, SendError> {
        let text: String = msg.text.chars().take(MAX_TEXT_CHARS).collect();
        let body = json!({
            "number": Self::number(&msg.chat),
            "text": text,
        });
        self.post("sendText", msg, &text, body).await
    }
}

impl Evolution {
    /// Posts `body` to `/message/{method}/{instance}` after marking `text`
    /// as our own copy in the chat; a reply quotes `msg.reply_to`.
    async fn post(
        &self,
        method: &str,
        msg: &Outbound,
        text: &str,
        mut body: Value,
    ) -> Result<Sent, SendError> {
        whatsapp::remember_own_copy(
            self.store.as_ref(),
            PlatformKind::Evolution,
            &msg.chat,
            text,
        )
        .await?;
        if let Some(r) = &msg.reply_to {
            // Evolution finds the quoted message by its id in its own store.
            let id = whatsapp::message_key(PlatformKind::Waha, r);
            body["quoted"] = json!({ "key": { "id": id } });
        }
        let v = self
            .request(&format!("message/{method}/{}", self.instance), &body)
            .await?;
        let id = v
            .pointer("/key/id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        Ok(Sent { message_id: id })
    }

    /// POSTs `body` to `{api_url}/{path}` with the apikey; the answer's JSON.
    async fn request(&self, path: &str, body: &Value) -> Result<Value, SendError> {
        let mut req = self
            .http
            .post(format!("{}/{path}", self.account.api_url))
            .json(body);
        if let Some(t) = &self.account.token {
            req = req.header(APIKEY_HEADER, t.expose());
        }
        let resp = req
            .send()
            .await
            .map_err(|e| super::transport_error("evolution", e))?;
        let status = resp.status();
        let retry = whatsapp::retry_after(resp.headers());
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| super::transport_error("evolution", e))?;
        if !status.is_success() {
            return Err(whatsapp::gateway_error("evolution", status, retry, &bytes));
        }
        Ok(serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AccountId, Config};
    use crate::store::SledStore;

    const CONVERSATION: &str =
        include_str!("../../tests/fixtures/evolution/messages-upsert-conversation.json");
    const REPLY: &str =
        include_str!("../../tests/fixtures/evolution/messages-upsert-extended-reply.json");
    const IMAGE: &str =
        include_str!("../../tests/fixtures/evolution/messages-upsert-image-caption.json");
    const ECHO: &str =
        include_str!("../../tests/fixtures/evolution/messages-upsert-from-me-echo.json");
    const UPDATE: &str = include_str!("../../tests/fixtures/evolution/messages-update.json");
    const FLATTENED: &str =
        include_str!("../../tests/fixtures/evolution/messages-upsert-v2.3-flattened-reply.json");
    const APIKEY_NULL: &str =
        include_str!("../../tests/fixtures/evolution/messages-upsert-apikey-null.json");

    /// The instance token in the fixtures' `apikey` field.
    const INSTANCE_KEY: &str = "B6D711FCDE4D4FD5936544120E713976";

    fn evo(secret: Option<&str>) -> (Evolution, tempfile::TempDir) {
        let cfg = format!(
            "[accounts.evo]\nplatform = \"evolution\"\napi_url = \"http://evolution:8080\"\ninstance = \"heers\"\ntoken = \"{INSTANCE_KEY}\"\n{}\n\
             [[groups]]\nid = \"a\"\nname = \"A\"\naccount = \"evo\"\nchat = \"120363041111111111@g.us\"\n",
            secret
                .map(|s| format!("webhook_secret = \"{s}\""))
                .unwrap_or_default()
        );
        let c = Config::parse(&cfg, std::path::Path::new("t.toml")).unwrap();
        let acc = c.accounts.get(&AccountId::parse("evo").unwrap()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SledStore::open(dir.path()).unwrap());
        (Evolution::new(acc, reqwest::Client::new(), store), dir)
    }

    fn one(e: &Evolution, body: &str) -> Inbound {
        let mut ev = e.parse_webhook(&HeaderMap::new(), body.as_bytes()).unwrap();
        assert_eq!(ev.len(), 1);
        ev.remove(0)
    }

    #[test]
    fn a_conversation_names_the_group_the_member_and_the_push_name() {
        let (e, _d) = evo(None);
        let Inbound::Message(m) = one(&e, CONVERSATION) else {
            panic!()
        };
        assert_eq!(m.platform, PlatformKind::Evolution);
        assert_eq!(m.chat.as_str(), "120363041111111111@g.us");
        // `@s.whatsapp.net` is kept in the one spelling WAHA uses too.
        assert_eq!(m.sender.id, "32475111111@c.us");
        assert_eq!(m.sender.name.as_deref(), Some("Jan Peeters"));
        assert_eq!(m.message_id, "3EB0C767D097B7C7C030");
        assert_eq!(m.at_ms, 1_764_300_000_000);
        // The same message through WAHA has the same key.
        assert_eq!(
            m.dedup_key(),
            "whatsapp|120363041111111111@g.us|3EB0C767D097B7C7C030"
        );
    }

    #[test]
    fn an_extended_text_reply_names_the_quoted_message() {
        let (e, _d) = evo(None);
        let Inbound::Message(m) = one(&e, REPLY) else {
            panic!()
        };
        assert_eq!(m.reply_to.as_deref(), Some("3EB0C767D097B7C7C030"));
        assert!(m.text.contains("richting Opheers"));
    }

    #[test]
    fn an_image_is_read_by_its_caption_in_a_disappearing_message() {
        let (e, _d) = evo(None);
        let Inbound::Message(m) = one(&e, IMAGE) else {
            panic!()
        };
        assert!(m.text.contains("nummerplaat"), "{}", m.text);
        // A `@lid` member is named by the phone JID Evolution gives beside it.
        assert_eq!(m.sender.id, "32475333333@c.us");
        // The photo, kept by the message's key and found in the wrapper.
        let media = m.extra.media.as_ref().expect("the photo");
        assert!(media.handle.contains("3A7C2F9E1B5D8A4C6E0F"));
        assert_eq!(media.size, Some(187_342));
    }

    #[test]
    fn a_from_me_message_is_the_linked_numbers_own_and_an_update_is_ignored() {
        let (e, _d) = evo(None);
        let Inbound::Message(m) = one(&e, ECHO) else {
            panic!()
        };
        assert_eq!(m.sender.id, "32475999999@c.us");
        assert!(matches!(one(&e, UPDATE), Inbound::Ignored { .. }));
    }

    #[test]
    fn the_secret_is_accepted_from_the_header_or_the_payloads_apikey() {
        // The payload carries the instance key: a secret equal to it works
        // without any header.
        let (e, _d) = evo(Some(INSTANCE_KEY));
        assert!(
            e.parse_webhook(&HeaderMap::new(), CONVERSATION.as_bytes())
                .is_ok()
        );
        // Another secret must come in the header.
        let (e, _d) = evo(Some("hook-secret"));
        assert!(matches!(
            e.parse_webhook(&HeaderMap::new(), CONVERSATION.as_bytes()),
            Err(WebhookError::Unauthorized)
        ));
        let mut h = HeaderMap::new();
        h.insert(APIKEY_HEADER, "wrong".parse().unwrap());
        assert!(matches!(
            e.parse_webhook(&h, CONVERSATION.as_bytes()),
            Err(WebhookError::Unauthorized)
        ));
        h.insert(APIKEY_HEADER, "hook-secret".parse().unwrap());
        assert!(e.parse_webhook(&h, CONVERSATION.as_bytes()).is_ok());
        // Garbage without the secret is unauthorized, not described.
        assert!(matches!(
            e.parse_webhook(&HeaderMap::new(), b"{nope"),
            Err(WebhookError::Unauthorized)
        ));
    }

    #[test]
    fn garbage_is_malformed_and_a_group_message_needs_its_participant() {
        let (e, _d) = evo(None);
        assert!(matches!(
            e.parse_webhook(&HeaderMap::new(), b"{\"event\":"),
            Err(WebhookError::Malformed(_))
        ));
        let no_participant = CONVERSATION.replace("\"participant\"", "\"x\"");
        assert!(matches!(
            e.parse_webhook(&HeaderMap::new(), no_participant.as_bytes()),
            Err(WebhookError::Malformed(_))
        ));
    }

    #[test]
    fn a_members_number_is_sent_bare_and_a_group_whole() {
        let g = ChatId::parse("120363041111111111@g.us").unwrap();
        assert_eq!(Evolution::number(&g), "120363041111111111@g.us");
        let p = ChatId::parse("32475111111@c.us").unwrap();
        assert_eq!(Evolution::number(&p), "32475111111");
    }

    #[test]
    fn a_v2_3_reply_flattened_to_a_conversation_keeps_its_quote() {
        let (e, _d) = evo(None);
        let Inbound::Message(m) = one(&e, FLATTENED) else {
            panic!()
        };
        assert_eq!(m.text, "/doorsturen");
        assert_eq!(m.reply_to.as_deref(), Some("3EB0D9E8F7A6B5C4D3E2"));
        let q = m.quoted.as_ref().expect("the quote in data.contextInfo");
        assert!(q.text.contains("koevoet"), "{}", q.text);
        assert_eq!(
            q.sender.as_ref().map(|s| s.id.as_str()),
            Some("32475111111@c.us")
        );
    }

    #[test]
    fn the_custom_header_decides_and_a_null_apikey_is_accepted_only_with_it() {
        let (e, _d) = evo(Some(INSTANCE_KEY));
        // Evolution's default: `apikey` null in the event.
        assert!(matches!(
            e.parse_webhook(&HeaderMap::new(), APIKEY_NULL.as_bytes()),
            Err(WebhookError::Unauthorized)
        ));
        let mut h = HeaderMap::new();
        h.insert(APIKEY_HEADER, INSTANCE_KEY.parse().unwrap());
        assert!(e.parse_webhook(&h, APIKEY_NULL.as_bytes()).is_ok());
        // A wrong header is refused even when the body's apikey is right:
        // the header is the operator's own secret and decides.
        h.insert(APIKEY_HEADER, "wrong".parse().unwrap());
        assert!(matches!(
            e.parse_webhook(&h, CONVERSATION.as_bytes()),
            Err(WebhookError::Unauthorized)
        ));
    }

    #[test]
    fn a_forwarded_message_is_marked_in_either_place() {
        let (e, _d) = evo(None);
        let mut v: Value = serde_json::from_str(FLATTENED).unwrap();
        v["data"]["contextInfo"]["isForwarded"] = json!(true);
        let Inbound::Message(m) = one(&e, &v.to_string()) else {
            panic!()
        };
        assert!(m.extra.forwarded);
        let Inbound::Message(m) = one(&e, REPLY) else {
            panic!()
        };
        assert!(!m.extra.forwarded);
    }

    #[test]
    fn no_mutation_of_an_event_makes_the_parser_panic() {
        let (e, _d) = evo(None);
        let mut rng = fastrand::Rng::with_seed(13);
        for base in [CONVERSATION, REPLY, IMAGE] {
            for _ in 0..2_000 {
                let b = crate::platform::mutated(base.as_bytes(), &mut rng);
                let _ = e.parse_webhook(&HeaderMap::new(), &b);
            }
        }
    }
}
