//! The playground (`/` when the config has sandbox groups): every sandbox
//! group as a phone-like column, a composer to post as a member or
//! coordinator, a live preview of the relay's decision while typing, and the
//! relay's reminders and copies arriving live.
//!
//! - `GET /api/playground`: the groups, their senders and the labels.
//! - `POST /api/simulate`: what the relay would do with a text; the same
//!   decision as `buurtrelay simulate`, and nothing is stored.
//! - `GET /sandbox/events`: server-sent events, one per message appended to
//!   a sandbox chat (`ready` first; `resync` when the client fell behind).

use std::collections::BTreeMap;
use std::convert::Infallible;

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;

use super::ApiError;
use super::admin;
use super::ui::{Lang, SCRIPT_LABELS, esc, html, secure};
use crate::config::{Config, GroupId, PlatformKind};
use crate::message::{InboundMessage, Sender};
use crate::platform::sandbox::FeedItem;
use crate::relay::{self, Decision};
use crate::runtime::Runtime;
use crate::startup::AppState;
use crate::time::now_ms;

const MAX_TEXT: usize = 4096;
const PAGE: &str = include_str!("assets/playground.html");

/// Members offered in every village's sender list (the sandbox has no real
/// members; coordinators and police come from the config).
const MEMBERS: [(&str, &str); 3] = [
    ("jan", "Jan Peeters"),
    ("an", "An Claes"),
    ("marie", "Marie Dubois"),
];

pub fn has_sandbox(cfg: &Config) -> bool {
    cfg.groups
        .iter()
        .any(|g| g.platform == PlatformKind::Sandbox)
}

/// Fills `{{t:key}}` with labels and `{{name}}` with `vars` (already HTML).
pub fn fill(template: &str, lang: Lang, vars: &[(&str, String)]) -> String {
    let mut out = String::with_capacity(template.len() + 1024);
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            out.push_str(&rest[open..]);
            return out;
        };
        let key = &after[..close];
        if let Some(label) = key.strip_prefix("t:") {
            out.push_str(&esc(lang.t(label)));
        } else if let Some((_, v)) = vars.iter().find(|(k, _)| *k == key) {
            out.push_str(v);
        }
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    out
}

/// The playground page (server-rendered skeleton; the script fills the chats).
pub fn page(rt: &Runtime) -> Response {
    let cfg = &rt.config;
    let lang = Lang::of(&cfg.network.language);
    let sandbox: Vec<_> = cfg
        .groups
        .iter()
        .filter(|g| g.platform == PlatformKind::Sandbox)
        .collect();
    let mut options = String::new();
    let mut columns = String::new();
    for g in &sandbox {
        let id = esc(g.id.as_str());
        let name = esc(&g.name);
        options.push_str(&format!(r#"<option value="{id}">{name}</option>"#));
        columns.push_str(&format!(
            r#"    <article class="phone" data-group="{id}" aria-labelledby="h-{id}">
      <h2 id="h-{id}">{name}</h2>
      <ol class="chat" tabindex="0" aria-label="{name}"></ol>
    </article>
"#
        ));
    }
    let others = cfg.groups.len() - sandbox.len();
    let other_platforms = if others > 0 {
        format!(
            r#"<p class="other">+ {others} {}</p>"#,
            esc(lang.t("other_platforms"))
        )
    } else {
        String::new()
    };
    let admin_link = if cfg.admin.is_some() {
        format!(r#"<a href="/admin">{}</a>"#, esc(lang.t("dashboard")))
    } else {
        String::new()
    };
    let body = fill(
        PAGE,
        lang,
        &[
            ("lang", lang.code().to_string()),
            ("network", esc(&cfg.network.name)),
            ("village_options", options),
            ("columns", columns),
            ("other_platforms", other_platforms),
            ("admin_link", admin_link),
        ],
    );
    html(StatusCode::OK, body)
}

#[derive(Serialize)]
struct Person {
    id: &'static str,
    name: &'static str,
}

#[derive(Serialize)]
struct PlaygroundGroup {
    id: String,
    name: String,
    members: Vec<Person>,
    coordinators: Vec<String>,
    police: Vec<String>,
}

/// A coordinator command the playground offers to coordinators.
#[derive(Serialize)]
pub struct Command {
    pub usage: String,
    pub description: String,
}

/// The coordinator commands, named in the network's language (every
/// language's names work in every group; see `relay::commands`).
pub fn coordinator_commands(cfg: &crate::config::Config, lang: Lang) -> Vec<Command> {
    let Some(t) = cfg.texts.get(&cfg.network.language) else {
        return Vec::new();
    };
    [
        (&t.command_retract, "cmd_retract"),
        (&t.command_forward, "cmd_forward"),
        (&t.command_status, "cmd_status"),
    ]
    .into_iter()
    .map(|(usage, key)| Command {
        usage: usage.clone(),
        description: lang.t(key).to_string(),
    })
    .collect()
}

#[derive(Serialize)]
pub struct PlaygroundInfo {
    network: String,
    language: &'static str,
    groups: Vec<PlaygroundGroup>,
    commands: Vec<Command>,
    /// Category name → its human label.
    categories: BTreeMap<String, String>,
    labels: BTreeMap<&'static str, &'static str>,
    admin: bool,
}

/// `GET /api/playground`: sandbox groups only (their ids are demo ids).
pub async fn info(State(state): State<AppState>) -> Json<PlaygroundInfo> {
    let rt = state.runtime.borrow().clone();
    let cfg = &rt.config;
    let lang = Lang::of(&cfg.network.language);
    let groups = cfg
        .groups
        .iter()
        .filter(|g| g.platform == PlatformKind::Sandbox)
        .map(|g| PlaygroundGroup {
            id: g.id.to_string(),
            name: g.name.clone(),
            members: MEMBERS
                .iter()
                .map(|(id, name)| Person { id, name })
                .collect(),
            coordinators: g.coordinators.iter().cloned().collect(),
            police: g.police.iter().cloned().collect(),
        })
        .collect();
    Json(PlaygroundInfo {
        network: cfg.network.name.clone(),
        language: lang.code(),
        groups,
        commands: coordinator_commands(cfg, lang),
        categories: cfg
            .rules
            .category_names()
            .map(|n| (n.to_string(), cfg.rules.label(n).unwrap_or(n).to_string()))
            .collect(),
        labels: SCRIPT_LABELS.iter().map(|k| (*k, lang.t(k))).collect(),
        admin: cfg.admin.is_some(),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulateRequest {
    group: String,
    #[serde(default = "default_sender")]
    sender: String,
    sender_name: Option<String>,
    text: String,
}

fn default_sender() -> String {
    "member".into()
}

#[derive(Serialize)]
pub struct SimulateAnswer {
    group: String,
    #[serde(flatten)]
    decision: Decision,
}

/// `POST /api/simulate`: the relay's decision for a text, stored nowhere.
/// Sandbox groups are open (like `/sandbox/...`); a group on a real platform
/// needs the admin token, since the answer shows its routing and roles.
pub async fn simulate(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<SimulateRequest>, JsonRejection>,
) -> Result<Json<SimulateAnswer>, ApiError> {
    let Json(req) = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::TooLarge,
        _ => ApiError::BadRequest(
            e.body_text()
                .lines()
                .next()
                .unwrap_or("bad JSON")
                .to_string(),
        ),
    })?;
    let rt = state.runtime.borrow().clone();
    let cfg = &rt.config;
    let group = GroupId::parse(&req.group)
        .ok()
        .and_then(|id| cfg.group(&id))
        .ok_or_else(|| ApiError::NotFound("unknown group".into()))?;
    if group.platform != PlatformKind::Sandbox && !admin::access(&headers, cfg).allowed() {
        return Err(ApiError::Unauthorized);
    }
    let sender = req.sender.trim();
    if sender.is_empty() || sender.len() > 128 {
        return Err(ApiError::BadRequest(
            "sender must be 1 to 128 characters".into(),
        ));
    }
    if req.text.trim().is_empty() || req.text.chars().count() > MAX_TEXT {
        return Err(ApiError::BadRequest(format!(
            "text must be 1 to {MAX_TEXT} characters"
        )));
    }
    let msg = InboundMessage {
        account: group.account.clone(),
        platform: group.platform,
        chat: group.chat.clone(),
        message_id: "0".into(),
        sender: Sender {
            id: sender.to_string(),
            name: req.sender_name.clone(),
            is_bot: false,
        },
        text: req.text,
        reply_to: None,
        at_ms: now_ms(),
        edit: None,
        quoted: None,
        extra: Default::default(),
    };
    // A dry run: judged as a fresh message, outside any thread.
    let decision = relay::decide(
        cfg,
        group,
        &msg,
        &rt.own_ids(group.platform),
        &Default::default(),
        now_ms(),
    );
    Ok(Json(SimulateAnswer {
        group: group.id.to_string(),
        decision,
    }))
}

/// `GET /sandbox/events`: every message appended to a sandbox chat, as it
/// happens (`event: message`, data `{"group": ..., "message": {...}}`).
pub async fn events(State(state): State<AppState>) -> Response {
    let rx = state.sandbox_feed.subscribe();
    let stream = feed_stream(rx);
    let mut r = Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response();
    // Proxies must not buffer a live stream.
    r.headers_mut().insert(
        "x-accel-buffering",
        axum::http::HeaderValue::from_static("no"),
    );
    secure(r)
}

enum Phase {
    Start(tokio::sync::broadcast::Receiver<FeedItem>),
    Live(tokio::sync::broadcast::Receiver<FeedItem>),
}

fn feed_stream(
    rx: tokio::sync::broadcast::Receiver<FeedItem>,
) -> impl Stream<Item = Result<Event, Infallible>> {
    futures_util::stream::unfold(Phase::Start(rx), |phase| async move {
        let mut rx = match phase {
            // Subscribed before this first event: whatever the client reads
            // after `ready` cannot miss a later message.
            Phase::Start(rx) => {
                return Some((
                    Ok(Event::default().event("ready").data("ok")),
                    Phase::Live(rx),
                ));
            }
            Phase::Live(rx) => rx,
        };
        loop {
            match rx.recv().await {
                Ok(FeedItem::Message(ev)) => {
                    match Event::default().event("message").json_data(&*ev) {
                        Ok(e) => return Some((Ok(e), Phase::Live(rx))),
                        Err(_) => continue,
                    }
                }
                Ok(FeedItem::Closing) | Err(RecvError::Closed) => return None,
                Err(RecvError::Lagged(_)) => {
                    return Some((
                        Ok(Event::default().event("resync").data("lagged")),
                        Phase::Live(rx),
                    ));
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_get_escaped_labels_and_raw_html_vars() {
        let out = fill(
            "<h1>{{t:send}}</h1>{{x}}{{missing}}",
            Lang::Fr,
            &[("x", "<b>ok</b>".into())],
        );
        assert_eq!(out, "<h1>Envoyer</h1><b>ok</b>");
    }
}
