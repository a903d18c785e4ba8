//! Fake WhatsApp gateways that speak the real JSON: WAHA's `POST
//! /api/sendText`, Evolution's `POST /message/sendText/{instance}` and the
//! Cloud API's `POST /{phone_number_id}/messages`, on one local server; and
//! webhook bodies built from the fixtures in `tests/fixtures/`, signed the
//! way each platform signs them.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Json;
use axum::extract::{Path as AxPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use hmac::Mac;
use serde_json::{Value, json};

use crate::helpers::TestApp;

/// How the fake answers the next sends.
#[derive(Clone, Debug)]
pub enum WaReply {
    Ok,
    /// HTTP 429 with `Retry-After` (WAHA, Evolution).
    TooMany(u64),
    /// The Cloud API's throughput limit: HTTP 400, error code 130429, with
    /// `Retry-After`.
    CloudThrottled(u64),
    /// HTTP 500.
    ServerError,
}

/// Which gateway API a call went to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Api {
    Waha,
    Evolution,
    Cloud,
}

#[derive(Clone, Debug)]
pub struct WaCall {
    pub api: Api,
    /// The session (WAHA body), instance (Evolution path) or phone number id
    /// (Cloud API path) the call was made for.
    pub sender: String,
    /// `X-Api-Key` (WAHA), `apikey` (Evolution) or the Bearer token (Cloud).
    pub key: Option<String>,
    pub body: Value,
    pub at: Instant,
    pub answered_ok: bool,
}

#[derive(Default)]
struct FakeState {
    /// The fake's own address (download URLs point back at it).
    base_url: String,
    script: Vec<WaReply>,
    calls: Vec<WaCall>,
    next_id: u64,
    /// WAHA's lid lookup: `@lid` → phone JID (`pn`), as the session knows it.
    lids: std::collections::HashMap<String, String>,
    /// Every lid lookup asked, in order.
    lid_lookups: Vec<String>,
    /// Files the gateways hold: WAHA by path (`/api/files/...`), Evolution
    /// by message id, the Cloud API by media id.
    files: std::collections::HashMap<String, Vec<u8>>,
    /// The Cloud API's uploads (`POST /{phone}/media`), in order.
    cloud_uploads: Vec<Vec<u8>>,
}

type Shared = Arc<Mutex<FakeState>>;

#[derive(Clone)]
pub struct FakeWhatsapp {
    pub url: String,
    state: Shared,
}

impl FakeWhatsapp {
    pub async fn start() -> FakeWhatsapp {
        let state: Shared = Arc::new(Mutex::new(FakeState::default()));
        let app = axum::Router::new()
            .route("/api/sendText", post(waha_send))
            .route("/api/{session}/lids/{lid}", axum::routing::get(waha_lid))
            .route("/api/files/{*path}", axum::routing::get(waha_file))
            .route("/api/sendImage", post(waha_send))
            .route("/message/sendMedia/{instance}", post(evolution_send))
            .route(
                "/chat/getBase64FromMediaMessage/{instance}",
                post(evolution_media),
            )
            .route("/{id}", axum::routing::get(cloud_media_info))
            .route("/cloud-download/{id}", axum::routing::get(cloud_download))
            .route("/{phone}/media", post(cloud_upload))
            .route("/message/sendText/{instance}", post(evolution_send))
            .route("/{phone}/messages", post(cloud_send))
            .with_state(state.clone());
        let url = crate::helpers::serve_fake(app).await;
        state.lock().expect("lock").base_url = url.clone();
        FakeWhatsapp { url, state }
    }

    /// The next calls are answered in this order; then Ok.
    pub fn script(&self, replies: Vec<WaReply>) {
        self.state.lock().expect("lock").script = replies;
    }

    pub fn calls(&self) -> Vec<WaCall> {
        self.state.lock().expect("lock").calls.clone()
    }

    /// Successful sends only.
    pub fn delivered(&self) -> Vec<WaCall> {
        self.calls().into_iter().filter(|c| c.answered_ok).collect()
    }

    /// The gateway holds `bytes` under `key`: a WAHA file path
    /// (`/api/files/...`), an Evolution message id or a Cloud API media id.
    pub fn put_file(&self, key: &str, bytes: &[u8]) {
        self.state
            .lock()
            .expect("lock")
            .files
            .insert(key.to_string(), bytes.to_vec());
    }

    /// What was uploaded to the Cloud API's media endpoint.
    pub fn cloud_uploads(&self) -> Vec<Vec<u8>> {
        self.state.lock().expect("lock").cloud_uploads.clone()
    }

    /// WAHA's session knows that `lid` is `pn` (both JIDs).
    pub fn know_lid(&self, lid: &str, pn: &str) {
        self.state
            .lock()
            .expect("lock")
            .lids
            .insert(lid.to_string(), pn.to_string());
    }

    /// The lids WAHA was asked about.
    pub fn lid_lookups(&self) -> Vec<String> {
        self.state.lock().expect("lock").lid_lookups.clone()
    }
}

/// WAHA's `GET /api/files/...`: the file it downloaded, with the API key.
async fn waha_file(
    State(state): State<Shared>,
    AxPath(path): AxPath<String>,
    h: HeaderMap,
) -> Response {
    if header(&h, "x-api-key").is_none() {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    match state
        .lock()
        .expect("lock")
        .files
        .get(&format!("/api/files/{path}"))
    {
        Some(b) => b.clone().into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// Evolution's `getBase64FromMediaMessage`: the message found by its key's
/// id; 400 "Message not found" otherwise, as Evolution answers.
async fn evolution_media(State(state): State<Shared>, Json(body): Json<Value>) -> Response {
    use base64::Engine;
    let id = body
        .pointer("/message/key/id")
        .and_then(Value::as_str)
        .unwrap_or_default();
    match state.lock().expect("lock").files.get(id) {
        Some(b) => Json(json!({
            "mediaType": "imageMessage",
            "fileName": format!("{id}.jpeg"),
            "caption": null,
            "size": {"fileLength": b.len(), "height": 1600, "width": 1200},
            "mimetype": "image/jpeg",
            "base64": base64::engine::general_purpose::STANDARD.encode(b),
            "buffer": null,
        }))
        .into_response(),
        None => (
            StatusCode::BAD_REQUEST,
            Json(json!({"status": 400, "error": "Bad Request", "response": {"message": ["Message not found"]}})),
        )
            .into_response(),
    }
}

/// The Cloud API's `GET /{media id}`: where to download it.
async fn cloud_media_info(
    State(state): State<Shared>,
    AxPath(id): AxPath<String>,
    h: HeaderMap,
) -> Response {
    if header(&h, "authorization").is_none() {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let s = state.lock().expect("lock");
    let Some(b) = s.files.get(&id) else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error": {"message": "Unsupported get request.", "code": 100}})),
        )
            .into_response();
    };
    Json(json!({
        "messaging_product": "whatsapp",
        "url": format!("{}/cloud-download/{id}", s.base_url),
        "mime_type": "image/jpeg",
        "sha256": "d8f3c2...",
        "file_size": b.len(),
        "id": id,
    }))
    .into_response()
}

async fn cloud_download(
    State(state): State<Shared>,
    AxPath(id): AxPath<String>,
    h: HeaderMap,
) -> Response {
    if header(&h, "authorization").is_none() {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    match state.lock().expect("lock").files.get(&id) {
        Some(b) => b.clone().into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// The Cloud API's `POST /{phone}/media` (multipart): a media id.
async fn cloud_upload(
    State(state): State<Shared>,
    h: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let ct = header(&h, "content-type").unwrap_or_default();
    let mut s = state.lock().expect("lock");
    let parts = parse_multipart(&ct, &body);
    let ok = parts
        .iter()
        .any(|(n, _, v)| n == "messaging_product" && v == b"whatsapp");
    let Some((_, _, file)) = parts
        .into_iter()
        .find(|(n, f, _)| n == "file" && f.is_some())
    else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    if !ok {
        return StatusCode::BAD_REQUEST.into_response();
    }
    s.cloud_uploads.push(file);
    let id = format!("{}", 900_000_000_000u64 + s.cloud_uploads.len() as u64);
    Json(json!({"id": id})).into_response()
}

/// The parts of a `multipart/form-data` body: name, filename, bytes.
pub fn parse_multipart(content_type: &str, body: &[u8]) -> Vec<(String, Option<String>, Vec<u8>)> {
    let Some(boundary) = content_type.split("boundary=").nth(1) else {
        return vec![];
    };
    let delim = format!("--{}", boundary.trim_matches('"'));
    let text = body;
    let mut out = Vec::new();
    let mut pos = 0;
    let find = |hay: &[u8], needle: &[u8], from: usize| -> Option<usize> {
        hay.get(from..)?
            .windows(needle.len())
            .position(|w| w == needle)
            .map(|p| p + from)
    };
    while let Some(start) = find(text, delim.as_bytes(), pos) {
        let after = start + delim.len();
        if text.get(after..after + 2) == Some(b"--") {
            break;
        }
        let Some(head_end) = find(text, b"\r\n\r\n", after) else {
            break;
        };
        let head = String::from_utf8_lossy(&text[after..head_end]).to_string();
        let Some(next) = find(text, delim.as_bytes(), head_end) else {
            break;
        };
        let value = text[head_end + 4..next.saturating_sub(2)].to_vec();
        let attr = |key: &str| {
            head.split(&format!("{key}=\""))
                .nth(1)
                .and_then(|r| r.split('"').next())
                .map(str::to_string)
        };
        if let Some(name) = attr("name") {
            out.push((name, attr("filename"), value));
        }
        pos = next;
    }
    out
}

/// WAHA's `GET /api/{session}/lids/{lid}`: `{lid, pn}`, `pn` null when the
/// session does not know it (WAHA adds `@lid` to a bare number).
async fn waha_lid(
    State(state): State<Shared>,
    AxPath((_session, lid)): AxPath<(String, String)>,
) -> Response {
    let lid = if lid.contains('@') {
        lid
    } else {
        format!("{lid}@lid")
    };
    let mut s = state.lock().expect("lock");
    s.lid_lookups.push(lid.clone());
    let pn = s.lids.get(&lid).cloned();
    Json(json!({"lid": lid, "pn": pn})).into_response()
}

fn record(
    state: &Shared,
    api: Api,
    sender: String,
    key: Option<String>,
    body: &Value,
) -> (WaReply, u64) {
    let mut s = state.lock().expect("lock");
    let reply = if s.script.is_empty() {
        WaReply::Ok
    } else {
        s.script.remove(0)
    };
    s.next_id += 1;
    s.calls.push(WaCall {
        api,
        sender,
        key,
        body: body.clone(),
        at: Instant::now(),
        answered_ok: matches!(reply, WaReply::Ok),
    });
    (reply, s.next_id)
}

fn header(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn failure(reply: WaReply) -> Response {
    match reply {
        WaReply::Ok => unreachable!(),
        WaReply::TooMany(secs) => (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", secs.to_string())],
            Json(json!({"statusCode": 429, "message": "Too Many Requests"})),
        )
            .into_response(),
        WaReply::CloudThrottled(secs) => (
            StatusCode::BAD_REQUEST,
            [("retry-after", secs.to_string())],
            Json(json!({"error": {
                "message": "(#130429) Rate limit hit",
                "type": "OAuthException",
                "code": 130429,
                "error_data": {"messaging_product": "whatsapp", "details": "Cloud API message throughput has been reached."},
                "fbtrace_id": "AbCdEfGhIjKlMnOpQrStUv"
            }})),
        )
            .into_response(),
        WaReply::ServerError => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"statusCode": 500, "message": "Internal server error"})),
        )
            .into_response(),
    }
}

/// WAHA: answers with the engine's message, as WEBJS does.
async fn waha_send(State(state): State<Shared>, h: HeaderMap, Json(body): Json<Value>) -> Response {
    let session = body["session"].as_str().unwrap_or("").to_string();
    let (reply, n) = record(&state, Api::Waha, session, header(&h, "x-api-key"), &body);
    if !matches!(reply, WaReply::Ok) {
        return failure(reply);
    }
    let chat = body["chatId"].as_str().unwrap_or("");
    let id = format!("3EB0{n:016X}");
    (
        StatusCode::CREATED,
        Json(json!({
            "id": {"fromMe": true, "remote": chat, "id": id, "_serialized": format!("true_{chat}_{id}")},
            "ack": 0,
            "body": body["text"],
            "type": "chat",
            "timestamp": 1764300001,
            "from": "32475999999@c.us",
            "to": chat,
            "fromMe": true,
            "hasQuotedMsg": body.get("reply_to").is_some(),
        })),
    )
        .into_response()
}

/// Evolution v2: answers 201 with the Baileys key.
async fn evolution_send(
    State(state): State<Shared>,
    AxPath(instance): AxPath<String>,
    h: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let (reply, n) = record(
        &state,
        Api::Evolution,
        instance,
        header(&h, "apikey"),
        &body,
    );
    if !matches!(reply, WaReply::Ok) {
        return failure(reply);
    }
    let number = body["number"].as_str().unwrap_or("");
    let jid = if number.contains('@') {
        number.to_string()
    } else {
        format!("{number}@s.whatsapp.net")
    };
    (
        StatusCode::CREATED,
        Json(json!({
            "key": {"remoteJid": jid, "fromMe": true, "id": format!("BAE5{n:012X}")},
            "pushName": "",
            "status": "PENDING",
            "message": {"extendedTextMessage": {"text": body["text"]}},
            "messageType": "extendedTextMessage",
            "messageTimestamp": 1764300001,
            "instanceId": "7d0e4c8a-3b1f-4e6a-9c2d-5f8e1a3b7c90",
            "source": "unknown"
        })),
    )
        .into_response()
}

/// Cloud API: answers with the wamid.
async fn cloud_send(
    State(state): State<Shared>,
    AxPath(phone): AxPath<String>,
    h: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let bearer = header(&h, "authorization").map(|a| a.trim_start_matches("Bearer ").to_string());
    let (reply, n) = record(&state, Api::Cloud, phone, bearer, &body);
    if !matches!(reply, WaReply::Ok) {
        return failure(reply);
    }
    (
        StatusCode::OK,
        Json(json!({
            "messaging_product": "whatsapp",
            "contacts": [{"input": body["to"], "wa_id": body["to"]}],
            "messages": [{"id": format!("wamid.HBgLMzI0NzUxMTExMTEVAgARGBI{n:08X}AA==")}]
        })),
    )
        .into_response()
}

/// A fixture from `tests/fixtures/`, as JSON.
pub fn fixture(path: &str) -> Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path);
    let text = std::fs::read_to_string(&p).expect("fixture");
    serde_json::from_str(&text).expect("fixture is JSON")
}

fn set(v: &mut Value, pointer: &str, new: Value) {
    *v.pointer_mut(pointer).expect(pointer) = new;
}

/// A member's group message as WAHA's `message` event delivers it to one
/// session (`me` is that session's number).
pub struct WahaMsg<'a> {
    pub session: &'a str,
    pub me: &'a str,
    pub chat: &'a str,
    pub participant: &'a str,
    pub stanza: &'a str,
    pub name: &'a str,
    pub text: &'a str,
}

impl WahaMsg<'_> {
    pub fn serialized_id(&self) -> String {
        format!("false_{}_{}_{}", self.chat, self.stanza, self.participant)
    }

    pub fn body(&self) -> String {
        let mut v = fixture("waha/message-group.json");
        let id = self.serialized_id();
        set(&mut v, "/session", json!(self.session));
        set(&mut v, "/me/id", json!(self.me));
        set(&mut v, "/payload/id", json!(id));
        set(&mut v, "/payload/from", json!(self.chat));
        set(&mut v, "/payload/to", json!(self.me));
        set(&mut v, "/payload/participant", json!(self.participant));
        set(&mut v, "/payload/author", json!(self.participant));
        set(&mut v, "/payload/body", json!(self.text));
        set(&mut v, "/payload/_data/id/remote", json!(self.chat));
        set(&mut v, "/payload/_data/id/id", json!(self.stanza));
        set(
            &mut v,
            "/payload/_data/id/participant",
            json!(self.participant),
        );
        set(&mut v, "/payload/_data/id/_serialized", json!(id));
        set(&mut v, "/payload/_data/body", json!(self.text));
        set(&mut v, "/payload/_data/notifyName", json!(self.name));
        set(&mut v, "/payload/_data/from", json!(self.chat));
        set(&mut v, "/payload/_data/to", json!(self.me));
        set(&mut v, "/payload/_data/author", json!(self.participant));
        v.to_string()
    }
}

/// What WAHA's `message.any` reports to the session that sent `text`
/// through the API (our own post).
pub fn waha_own_echo(session: &str, me: &str, chat: &str, stanza: &str, text: &str) -> String {
    let mut v = fixture("waha/message-any-own-echo.json");
    let id = format!("true_{chat}_{stanza}_{me}");
    set(&mut v, "/session", json!(session));
    set(&mut v, "/me/id", json!(me));
    set(&mut v, "/payload/id", json!(id));
    set(&mut v, "/payload/from", json!(me));
    set(&mut v, "/payload/to", json!(chat));
    set(&mut v, "/payload/participant", json!(me));
    set(&mut v, "/payload/body", json!(text));
    set(&mut v, "/payload/_data/body", json!(text));
    v.to_string()
}

/// A group message as Evolution's `messages.upsert` delivers it.
pub fn evolution_upsert(
    instance_key: &str,
    chat: &str,
    participant: &str,
    stanza: &str,
    name: &str,
    text: &str,
) -> String {
    let mut v = fixture("evolution/messages-upsert-conversation.json");
    set(&mut v, "/data/key/remoteJid", json!(chat));
    set(&mut v, "/data/key/participant", json!(participant));
    set(&mut v, "/data/key/id", json!(stanza));
    set(&mut v, "/data/pushName", json!(name));
    set(&mut v, "/data/message/conversation", json!(text));
    set(&mut v, "/apikey", json!(instance_key));
    v.to_string()
}

/// A member's text as the Cloud API notifies it.
pub fn cloud_text(
    phone_number_id: &str,
    from: &str,
    group_id: Option<&str>,
    wamid: &str,
    name: &str,
    text: &str,
) -> String {
    let mut v = fixture("whatsapp-cloud/message-text.json");
    let value = "/entry/0/changes/0/value";
    set(
        &mut v,
        &format!("{value}/metadata/phone_number_id"),
        json!(phone_number_id),
    );
    set(&mut v, &format!("{value}/contacts/0/wa_id"), json!(from));
    set(
        &mut v,
        &format!("{value}/contacts/0/profile/name"),
        json!(name),
    );
    set(&mut v, &format!("{value}/messages/0/from"), json!(from));
    set(&mut v, &format!("{value}/messages/0/id"), json!(wamid));
    set(
        &mut v,
        &format!("{value}/messages/0/text/body"),
        json!(text),
    );
    if let Some(g) = group_id {
        v.pointer_mut(&format!("{value}/messages/0"))
            .and_then(Value::as_object_mut)
            .expect("message")
            .insert("group_id".into(), json!(g));
    }
    v.to_string()
}

/// WAHA's `X-Webhook-Hmac`: hex HMAC-SHA512 of the body.
pub fn waha_hmac(key: &str, body: &str) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha512>::new_from_slice(key.as_bytes()).expect("key");
    mac.update(body.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// The Cloud API's `X-Hub-Signature-256`: `sha256=` + hex HMAC-SHA256.
pub fn cloud_signature(app_secret: &str, body: &str) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(app_secret.as_bytes()).expect("key");
    mac.update(body.as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// POSTs a webhook body with these headers.
pub async fn post_webhook(
    app: &TestApp,
    account: &str,
    headers: &[(&str, String)],
    body: String,
) -> reqwest::Response {
    let mut req = app
        .client
        .post(format!("{}/webhooks/{account}", app.addr))
        .header("content-type", "application/json")
        .body(body);
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    req.send().await.expect("webhook")
}

/// POSTs a WAHA event, signed with `key` as WAHA signs it.
pub async fn post_waha(app: &TestApp, account: &str, key: &str, body: String) -> reqwest::Response {
    let sig = waha_hmac(key, &body);
    post_webhook(
        app,
        account,
        &[
            ("X-Webhook-Hmac", sig),
            ("X-Webhook-Hmac-Algorithm", "sha512".into()),
        ],
        body,
    )
    .await
}
