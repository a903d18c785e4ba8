//! `spawn_app()`: the real relay on port 0 with a fresh data dir, plus a
//! fake Telegram Bot API that speaks the real JSON.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Path as AxPath, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::post;
use buurtrelay::startup::{AppState, Application, Overrides};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

static LOG: Once = Once::new();

/// Quiet logs unless TEST_LOG is set.
pub fn init_logs() {
    LOG.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            buurtrelay::telemetry::init(
                "debug,sled=warn,hyper=warn",
                buurtrelay::config::LogFormat::Text,
            );
        }
    });
}

pub struct TestApp {
    pub addr: String,
    pub client: reqwest::Client,
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    pub state: AppState,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
}

pub async fn spawn_app(config: &str) -> TestApp {
    init_logs();
    let dir = tempfile::tempdir().expect("tempdir");
    let config_path = dir.path().join("relay.toml");
    std::fs::write(&config_path, config).expect("write config");
    start(dir, config_path).await
}

async fn start(dir: tempfile::TempDir, config_path: PathBuf) -> TestApp {
    let app = Application::build(
        &config_path,
        Overrides {
            listen: Some("127.0.0.1:0".parse().expect("addr")),
            data_dir: Some(dir.path().join("data")),
        },
    )
    .await
    .expect("app builds");
    let addr = format!("http://{}", app.local_addr());
    let state = app.state();
    let (tx, rx) = oneshot::channel::<()>();
    let handle = tokio::spawn(app.run_until(async move {
        let _ = rx.await;
    }));
    TestApp {
        addr,
        client: reqwest::Client::new(),
        dir,
        config_path,
        state,
        stop: Some(tx),
        handle: Some(handle),
    }
}

impl TestApp {
    /// Graceful stop, then a new relay on the same data dir and config.
    pub async fn restart(mut self) -> TestApp {
        self.stop_now().await;
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("tempdir"));
        let config_path = self.config_path.clone();
        // Release the store (and its file lock) before opening it again.
        drop(self);
        start(dir, config_path).await
    }

    pub async fn stop_now(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            h.await.expect("join").expect("clean stop");
        }
    }

    pub async fn post_sandbox(&self, group: &str, sender: &str, name: &str, text: &str) -> Value {
        let r = self
            .client
            .post(format!("{}/sandbox/{group}/messages", self.addr))
            .json(&json!({"sender": sender, "sender_name": name, "text": text}))
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), 201, "sandbox post accepted");
        r.json().await.expect("json")
    }

    /// Posts in a sandbox group as a reply to message `reply_to`.
    pub async fn reply_sandbox(
        &self,
        group: &str,
        sender: &str,
        name: &str,
        text: &str,
        reply_to: &str,
    ) -> Value {
        let r = self
            .client
            .post(format!("{}/sandbox/{group}/messages", self.addr))
            .json(
                &json!({"sender": sender, "sender_name": name, "text": text, "reply_to": reply_to}),
            )
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), 201, "sandbox reply accepted");
        r.json().await.expect("json")
    }

    /// Edits a sandbox message as its sender; the HTTP status and answer.
    pub async fn edit_sandbox(
        &self,
        group: &str,
        id: &str,
        sender: &str,
        text: &str,
    ) -> (u16, Value) {
        let r = self
            .client
            .patch(format!("{}/sandbox/{group}/messages/{id}", self.addr))
            .json(&json!({"sender": sender, "text": text}))
            .send()
            .await
            .expect("patch");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn sandbox_messages(&self, group: &str) -> Vec<Value> {
        let v: Value = self
            .client
            .get(format!("{}/sandbox/{group}/messages", self.addr))
            .send()
            .await
            .expect("get")
            .json()
            .await
            .expect("json");
        v["messages"].as_array().cloned().unwrap_or_default()
    }

    /// Messages the relay wrote into a sandbox group.
    pub async fn relayed(&self, group: &str) -> Vec<Value> {
        self.sandbox_messages(group)
            .await
            .into_iter()
            .filter(|m| m["from_relay"] == true)
            .collect()
    }

    pub async fn webhook(
        &self,
        account: &str,
        secret: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> reqwest::Response {
        let mut req = self
            .client
            .post(format!("{}/webhooks/{account}", self.addr))
            .header("content-type", "application/json")
            .body(body);
        if let Some(s) = secret {
            req = req.header("X-Telegram-Bot-Api-Secret-Token", s);
        }
        req.send().await.expect("webhook")
    }

    pub async fn metrics(&self) -> String {
        self.client
            .get(format!("{}/metrics", self.addr))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text")
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// Waits until `f` holds, polling; panics with `what` after `secs`.
pub async fn eventually<F, Fut>(secs: u64, what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if f().await {
            return;
        }
        if Instant::now() > deadline {
            panic!("timed out waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// How the fake answers the next sendMessage calls.
#[derive(Clone, Debug)]
pub enum Reply {
    Ok,
    /// HTTP 429 with `parameters.retry_after` seconds.
    TooMany(u64),
    /// HTTP 500.
    ServerError,
    /// HTTP 403: bot was kicked from the group.
    Forbidden,
    /// HTTP 400 with this description ("Bad Request: message can't be deleted").
    BadRequest(&'static str),
}

#[derive(Clone, Debug)]
pub struct Call {
    pub token: String,
    pub body: Value,
    pub at: Instant,
    pub answered_ok: bool,
    /// The id the fake gave the message (successful sends).
    pub message_id: Option<i64>,
}

/// An `editMessageText` or `deleteMessage` call.
#[derive(Clone, Debug)]
pub struct Change {
    pub method: String,
    pub body: Value,
}

/// Telegram's published limits, enforced by the fake (time scaled by
/// `scale`: 0.1 means ten times faster than the real platform).
#[derive(Clone, Copy, Debug)]
pub struct TelegramLimits {
    pub scale: f64,
    /// Slack for network jitter: the platform's own counting is not exact either.
    pub tolerance: Duration,
}

#[derive(Default)]
struct FakeState {
    script: Vec<Reply>,
    calls: Vec<Call>,
    next_id: i64,
    /// Share of sends answered with 500, at random.
    fail_ratio: f64,
    rng: Option<fastrand::Rng>,
    /// Sends are never answered.
    hang: bool,
    limits: Option<TelegramLimits>,
    chat_log: std::collections::HashMap<String, std::collections::VecDeque<Instant>>,
    bot_log: std::collections::VecDeque<Instant>,
    too_many: u64,
    /// How the next edit and delete calls are answered; then Ok.
    change_script: Vec<Reply>,
    changes: Vec<Change>,
    /// Forum groups whose General topic is closed: a send without
    /// `message_thread_id` is refused there with TOPIC_CLOSED.
    general_closed: std::collections::HashSet<i64>,
    /// Files the bot can download: file_id → bytes.
    files: std::collections::HashMap<String, Vec<u8>>,
    /// getFile calls, by file_id.
    get_files: Vec<String>,
    /// The bytes of every photo uploaded with sendPhoto.
    uploads: Vec<Vec<u8>>,
}

/// A fake Telegram Bot API: `POST /bot<token>/sendMessage`.
#[derive(Clone)]
pub struct FakeTelegram {
    pub url: String,
    state: Arc<Mutex<FakeState>>,
}

/// Serves a fake platform API on a free loopback port; returns its base URL.
pub async fn serve_fake(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    url
}

impl FakeTelegram {
    pub async fn start() -> FakeTelegram {
        let state = Arc::new(Mutex::new(FakeState {
            next_id: 1000,
            ..FakeState::default()
        }));
        let app = axum::Router::new()
            .route("/{bot}/sendMessage", post(send_message))
            .route("/{bot}/editMessageText", post(edit_message))
            .route("/{bot}/deleteMessage", post(delete_message))
            .route("/{bot}/getFile", post(get_file))
            .route("/{bot}/sendPhoto", post(send_photo))
            .route("/file/{bot}/{*path}", axum::routing::get(file_download))
            .with_state(state.clone());
        let url = serve_fake(app).await;
        FakeTelegram { url, state }
    }

    /// The next calls are answered in this order; then Ok.
    pub fn script(&self, replies: Vec<Reply>) {
        self.state.lock().expect("lock").script = replies;
    }

    pub fn calls(&self) -> Vec<Call> {
        self.state.lock().expect("lock").calls.clone()
    }

    /// Successful sends only.
    pub fn delivered(&self) -> Vec<Value> {
        self.calls()
            .into_iter()
            .filter(|c| c.answered_ok)
            .map(|c| c.body)
            .collect()
    }

    /// Answers this share of sends with 500, at random (seeded).
    pub fn fail_randomly(&self, ratio: f64, seed: u64) {
        let mut s = self.state.lock().expect("lock");
        s.fail_ratio = ratio;
        s.rng = Some(fastrand::Rng::with_seed(seed));
    }

    /// Stops (or resumes) answering sends.
    pub fn hang(&self, on: bool) {
        self.state.lock().expect("lock").hang = on;
    }

    /// Enforces Telegram's limits; a send over them gets a 429.
    pub fn enforce_limits(&self, limits: TelegramLimits) {
        self.state.lock().expect("lock").limits = Some(limits);
    }

    /// How many 429 answers the limits produced.
    pub fn too_many_requests(&self) -> u64 {
        self.state.lock().expect("lock").too_many
    }

    /// The bot can download `bytes` as `file_id` (getFile, then /file/).
    pub fn put_file(&self, file_id: &str, bytes: &[u8]) {
        self.state
            .lock()
            .expect("lock")
            .files
            .insert(file_id.to_string(), bytes.to_vec());
    }

    /// The file_ids asked with getFile.
    pub fn get_files(&self) -> Vec<String> {
        self.state.lock().expect("lock").get_files.clone()
    }

    /// The bytes of every photo uploaded with sendPhoto, in order.
    pub fn uploads(&self) -> Vec<Vec<u8>> {
        self.state.lock().expect("lock").uploads.clone()
    }

    /// `chat` is a forum whose General topic is closed, as Telegram answers
    /// for it: a message without `message_thread_id` gets 400 TOPIC_CLOSED.
    pub fn close_general(&self, chat: i64) {
        self.state.lock().expect("lock").general_closed.insert(chat);
    }

    /// The next edit and delete calls are answered in this order; then Ok.
    pub fn script_changes(&self, replies: Vec<Reply>) {
        self.state.lock().expect("lock").change_script = replies;
    }

    /// Every `editMessageText` and `deleteMessage` call.
    pub fn changes(&self) -> Vec<Change> {
        self.state.lock().expect("lock").changes.clone()
    }

    /// The message id the fake gave to the successful send whose text is
    /// `text` in chat `chat`.
    pub fn id_of(&self, chat: i64, text: &str) -> Option<i64> {
        self.calls()
            .into_iter()
            .find(|c| c.answered_ok && c.body["chat_id"] == chat && c.body["text"] == text)
            .and_then(|c| c.message_id)
    }
}

async fn change(
    state: &Arc<Mutex<FakeState>>,
    method: &str,
    body: Value,
) -> (StatusCode, Json<Value>) {
    let mut s = state.lock().expect("lock");
    let reply = if s.change_script.is_empty() {
        Reply::Ok
    } else {
        s.change_script.remove(0)
    };
    s.changes.push(Change {
        method: method.to_string(),
        body: body.clone(),
    });
    match reply {
        Reply::Ok if method == "deleteMessage" => {
            (StatusCode::OK, Json(json!({"ok": true, "result": true})))
        }
        Reply::Ok => (
            StatusCode::OK,
            Json(json!({"ok": true, "result": {
                "message_id": body["message_id"],
                "chat": {"id": body["chat_id"], "type": "supergroup"},
                "date": 1700000000,
                "edit_date": 1700000100,
                "text": body["text"],
            }})),
        ),
        Reply::BadRequest(d) => (
            StatusCode::BAD_REQUEST,
            Json(json!({"ok": false, "error_code": 400, "description": d})),
        ),
        Reply::TooMany(secs) => (
            StatusCode::TOO_MANY_REQUESTS,
            Json(
                json!({"ok": false, "error_code": 429, "description": "Too Many Requests",
                "parameters": {"retry_after": secs}}),
            ),
        ),
        Reply::ServerError => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"ok": false, "error_code": 500, "description": "Internal Server Error"})),
        ),
        Reply::Forbidden => (
            StatusCode::FORBIDDEN,
            Json(json!({"ok": false, "error_code": 403, "description": "Forbidden"})),
        ),
    }
}

async fn edit_message(
    State(state): State<Arc<Mutex<FakeState>>>,
    Json(body): Json<Value>,
) -> impl IntoResponse {
    change(&state, "editMessageText", body).await
}

async fn delete_message(
    State(state): State<Arc<Mutex<FakeState>>>,
    Json(body): Json<Value>,
) -> impl IntoResponse {
    change(&state, "deleteMessage", body).await
}

/// `getFile`: the file's path, as the Bot API gives it (`file_path` under
/// `/file/bot<token>/`), or 400 for an unknown file_id.
async fn get_file(
    State(state): State<Arc<Mutex<FakeState>>>,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    let mut s = state.lock().expect("lock");
    let id = body["file_id"].as_str().unwrap_or_default().to_string();
    s.get_files.push(id.clone());
    match s.files.get(&id) {
        Some(bytes) => (
            StatusCode::OK,
            Json(json!({"ok": true, "result": {
                "file_id": id, "file_unique_id": "AQADw7sxG1aZ", "file_size": bytes.len(),
                "file_path": format!("photos/{id}.jpg"),
            }})),
        ),
        None => (
            StatusCode::BAD_REQUEST,
            Json(
                json!({"ok": false, "error_code": 400, "description": "Bad Request: invalid file_id"}),
            ),
        ),
    }
}

/// `GET /file/bot<token>/photos/<file_id>.jpg`.
async fn file_download(
    State(state): State<Arc<Mutex<FakeState>>>,
    AxPath((_bot, path)): AxPath<(String, String)>,
) -> axum::response::Response {
    let id = path
        .trim_start_matches("photos/")
        .trim_end_matches(".jpg")
        .to_string();
    match state.lock().expect("lock").files.get(&id) {
        Some(bytes) => bytes.clone().into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// `sendPhoto`, with `photo` a file_id (JSON) or an upload (multipart);
/// recorded as a call whose `photo` is the file_id or `{"uploaded": n}`.
async fn send_photo(
    State(state): State<Arc<Mutex<FakeState>>>,
    AxPath(bot): AxPath<String>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> (StatusCode, Json<Value>) {
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let mut s = state.lock().expect("lock");
    let mut call = if content_type.starts_with("multipart/form-data") {
        let mut v = json!({});
        for (name, filename, bytes) in crate::fakes::parse_multipart(&content_type, &body) {
            if filename.is_some() {
                v[name.as_str()] = json!({"uploaded": bytes.len()});
                s.uploads.push(bytes);
            } else {
                let text = String::from_utf8_lossy(&bytes).to_string();
                v[name.as_str()] = match name.as_str() {
                    "chat_id" | "message_thread_id" => json!(text.parse::<i64>().unwrap_or(0)),
                    "reply_parameters" => serde_json::from_str(&text).unwrap_or(Value::Null),
                    _ => json!(text),
                };
            }
        }
        v
    } else {
        serde_json::from_slice(&body).unwrap_or(Value::Null)
    };
    if call["chat_id"].is_string() {
        call["chat_id"] = json!(
            call["chat_id"]
                .as_str()
                .unwrap_or("")
                .parse::<i64>()
                .unwrap_or(0)
        );
    }
    s.next_id += 1;
    let id = s.next_id;
    s.calls.push(Call {
        token: bot.strip_prefix("bot").unwrap_or("").to_string(),
        body: call.clone(),
        at: Instant::now(),
        answered_ok: true,
        message_id: Some(id),
    });
    (
        StatusCode::OK,
        Json(json!({"ok": true, "result": {
            "message_id": id,
            "chat": {"id": call["chat_id"], "type": "supergroup"},
            "date": 1700000000,
            "photo": [{"file_id": "AgACAgQAAxkDAAIBX2dXk3s0c2VudAAI", "file_unique_id": "AQADx", "width": 1280, "height": 960}],
            "caption": call["caption"],
        }})),
    )
}

/// Would one more send now break Telegram's limits? (1/s per chat, 20/min
/// per group, 30/s per bot; scaled.)
fn over_limits(s: &mut FakeState, chat: &str, now: Instant) -> bool {
    let Some(l) = s.limits else { return false };
    let scaled = |secs: f64| Duration::from_secs_f64(secs * l.scale);
    let within = |log: &std::collections::VecDeque<Instant>, window: Duration| {
        log.iter()
            .filter(|t| now.duration_since(**t) + l.tolerance < window)
            .count()
    };
    let chat_log = s.chat_log.entry(chat.to_string()).or_default();
    let over = within(chat_log, scaled(1.0)) >= 1
        || within(chat_log, scaled(60.0)) >= 20
        || within(&s.bot_log, scaled(1.0)) >= 30;
    if !over {
        s.chat_log
            .entry(chat.to_string())
            .or_default()
            .push_back(now);
        s.bot_log.push_back(now);
    }
    over
}

async fn send_message(
    State(state): State<Arc<Mutex<FakeState>>>,
    AxPath(bot): AxPath<String>,
    Json(body): Json<Value>,
) -> impl IntoResponse {
    let hang = state.lock().expect("lock").hang;
    if hang {
        // Never answer; the relay's timeout must fire. Nothing is delivered.
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    let mut s = state.lock().expect("lock");
    let now = Instant::now();
    let chat = body["chat_id"].to_string();
    let mut reply = if s.script.is_empty() {
        Reply::Ok
    } else {
        s.script.remove(0)
    };
    if matches!(reply, Reply::Ok) {
        let ratio = s.fail_ratio;
        if let Some(rng) = s.rng.as_mut() {
            if rng.f64() < ratio {
                reply = Reply::ServerError;
            }
        }
    }
    if matches!(reply, Reply::Ok)
        && body.get("message_thread_id").is_none()
        && body["chat_id"]
            .as_i64()
            .is_some_and(|c| s.general_closed.contains(&c))
    {
        reply = Reply::BadRequest("Bad Request: TOPIC_CLOSED");
    }
    if matches!(reply, Reply::Ok) && over_limits(&mut s, &chat, now) {
        s.too_many += 1;
        reply = Reply::TooMany(1);
    }
    let token = bot.strip_prefix("bot").unwrap_or("").to_string();
    let ok = matches!(reply, Reply::Ok);
    if ok {
        s.next_id += 1;
    }
    let message_id = ok.then_some(s.next_id);
    s.calls.push(Call {
        token,
        body: body.clone(),
        at: Instant::now(),
        answered_ok: ok,
        message_id,
    });
    match reply {
        Reply::Ok => {
            let chat_id = body["chat_id"].clone();
            (
                StatusCode::OK,
                Json(json!({"ok": true, "result": {
                    "message_id": s.next_id,
                    "from": {"id": 123456, "is_bot": true, "first_name": "BIN Heers"},
                    "chat": {"id": chat_id, "type": "supergroup"},
                    "date": 1700000000,
                    "text": body["text"],
                }})),
            )
        }
        Reply::TooMany(secs) => (
            StatusCode::TOO_MANY_REQUESTS,
            Json(json!({"ok": false, "error_code": 429,
                "description": format!("Too Many Requests: retry after {secs}"),
                "parameters": {"retry_after": secs}})),
        ),
        Reply::ServerError => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"ok": false, "error_code": 500, "description": "Internal Server Error"})),
        ),
        Reply::Forbidden => (
            StatusCode::FORBIDDEN,
            Json(
                json!({"ok": false, "error_code": 403, "description": "Forbidden: bot was kicked from the supergroup chat"}),
            ),
        ),
        Reply::BadRequest(d) => (
            StatusCode::BAD_REQUEST,
            Json(json!({"ok": false, "error_code": 400, "description": d})),
        ),
    }
}

/// A Telegram network of `n` groups on one bot, pointed at `fake`.
pub fn telegram_config(fake: &FakeTelegram, villages: &[&str], extra: &str) -> String {
    telegram_config_with(fake, villages, "", extra)
}

/// As [`telegram_config`], with extra `[server]` keys.
pub fn telegram_config_with(
    fake: &FakeTelegram,
    villages: &[&str],
    server: &str,
    extra: &str,
) -> String {
    let mut s = format!(
        r#"
[network]
name = "Test Heers"
[server]
reload_poll = "200ms"
{server}
[delivery]
retry_base = "50ms"
retry_max = "200ms"
send_timeout = "2s"
[accounts.bot]
platform = "telegram"
token = "123456:TESTTOKEN"
webhook_secret = "s3cret-token"
api_url = "{}"
{extra}
"#,
        fake.url
    );
    for (i, v) in villages.iter().enumerate() {
        s.push_str(&format!(
            "[[groups]]\nid = \"{}\"\nname = \"{v}\"\naccount = \"bot\"\nchat = \"-10010000000{i:02}\"\ncoordinators = [\"900{i}\"]\n",
            v.to_lowercase()
        ));
    }
    s
}

/// A Telegram `Update` with a group message, exactly as the Bot API sends it.
pub fn tg_update(
    update_id: i64,
    chat: &str,
    message_id: i64,
    from_id: i64,
    first_name: &str,
    text: &str,
) -> String {
    json!({
        "update_id": update_id,
        "message": {
            "message_id": message_id,
            "from": {"id": from_id, "is_bot": false, "first_name": first_name, "last_name": "Peeters", "language_code": "nl"},
            "chat": {"id": chat.parse::<i64>().expect("numeric chat"), "title": "BIN", "type": "supergroup"},
            "date": 1764300000,
            "text": text
        }
    })
    .to_string()
}

/// A Telegram `Update` with a group message that replies to message
/// `reply_to` (whose text the Bot API quotes along).
#[allow(clippy::too_many_arguments)]
pub fn tg_reply(
    update_id: i64,
    chat: &str,
    message_id: i64,
    from_id: i64,
    first_name: &str,
    text: &str,
    reply_to: i64,
    quoted: &str,
) -> String {
    let chat_id = chat.parse::<i64>().expect("numeric chat");
    json!({
        "update_id": update_id,
        "message": {
            "message_id": message_id,
            "from": {"id": from_id, "is_bot": false, "first_name": first_name, "language_code": "nl"},
            "chat": {"id": chat_id, "title": "BIN", "type": "supergroup"},
            "date": 1764300100,
            "text": text,
            "reply_to_message": {
                "message_id": reply_to,
                "from": {"id": 777, "is_bot": false, "first_name": "Piet"},
                "chat": {"id": chat_id, "title": "BIN", "type": "supergroup"},
                "date": 1764300000,
                "text": quoted
            }
        }
    })
    .to_string()
}

/// A Telegram `Update` with an `edited_message`.
pub fn tg_edit(
    update_id: i64,
    chat: &str,
    message_id: i64,
    from_id: i64,
    first_name: &str,
    text: &str,
    edit_date: i64,
) -> String {
    json!({
        "update_id": update_id,
        "edited_message": {
            "message_id": message_id,
            "from": {"id": from_id, "is_bot": false, "first_name": first_name, "last_name": "Peeters"},
            "chat": {"id": chat.parse::<i64>().expect("numeric chat"), "title": "BIN", "type": "supergroup"},
            "date": 1764300000,
            "edit_date": edit_date,
            "text": text
        }
    })
    .to_string()
}

/// The reference alert as a Veulen member writes it, police called.
pub const VEULEN_ALERT: &str =
    "Verdachte grijze bestelwagen rijdt traag door de Kerkstraat, 101 is verwittigd";
/// Its copy in every other village (the sender is "Jan Peeters").
pub const VEULEN_COPY: &str =
    "[Veulen] Jan: Verdachte grijze bestelwagen rijdt traag door de Kerkstraat, 101 is verwittigd";
/// Heers's villages other than Veulen, as in config/heers.toml.
pub const OTHER_VILLAGES: [&str; 10] = [
    "batsheers",
    "gutschoven",
    "heers",
    "heks",
    "horpmoel",
    "klein-gelmen",
    "mechelen-bovelingen",
    "mettekoven",
    "opheers",
    "vechmaal",
];

/// A sandbox message's text.
pub fn text(m: &Value) -> &str {
    m["text"].as_str().unwrap_or_default()
}

pub fn heers_config_with_sandbox() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/heers.toml");
    std::fs::read_to_string(path).expect("config/heers.toml")
}
