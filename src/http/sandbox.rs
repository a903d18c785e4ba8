//! The sandbox platform's HTTP face: post as a member, edit your message,
//! read a group's chat.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::ApiError;
use crate::config::{GroupId, PlatformKind};
use crate::ingest::{self, Outcome};
use crate::message::{Inbound, InboundMessage, Quoted, Sender};
use crate::startup::AppState;
use crate::store::SandboxMessage;
use crate::time::now_ms;

const MAX_TEXT: usize = 4096;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostMessage {
    /// The member's user id in the sandbox (e.g. "jan", or a coordinator id).
    sender: String,
    /// Display name; defaults to the sender id.
    sender_name: Option<String>,
    text: String,
    reply_to: Option<String>,
}

#[derive(Serialize)]
pub struct ActionSummary {
    kind: &'static str,
    group: String,
}

#[derive(Serialize)]
pub struct PostAnswer {
    message: SandboxMessage,
    outcome: &'static str,
    alert: bool,
    categories: Vec<String>,
    confirmed: bool,
    actions: Vec<ActionSummary>,
}

fn sandbox_group(
    state: &AppState,
    group: &str,
) -> Result<
    (
        crate::config::Group,
        std::sync::Arc<crate::runtime::Runtime>,
    ),
    ApiError,
> {
    let rt = state.runtime.borrow().clone();
    let g = GroupId::parse(group)
        .ok()
        .and_then(|id| rt.config.group(&id).cloned())
        .filter(|g| g.platform == PlatformKind::Sandbox)
        .ok_or_else(|| ApiError::NotFound("unknown sandbox group".into()))?;
    Ok((g, rt))
}

pub async fn post_message(
    State(state): State<AppState>,
    Path(group): Path<String>,
    body: Result<Json<PostMessage>, JsonRejection>,
) -> Result<(StatusCode, Json<PostAnswer>), ApiError> {
    let (g, rt) = sandbox_group(&state, &group)?;
    let Json(p) = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::TooLarge,
        _ => ApiError::BadRequest(
            e.body_text()
                .lines()
                .next()
                .unwrap_or("bad JSON")
                .to_string(),
        ),
    })?;
    let sender = p.sender.trim();
    if sender.is_empty() || sender.len() > 128 {
        return Err(ApiError::BadRequest(
            "sender must be 1 to 128 characters".into(),
        ));
    }
    if p.text.trim().is_empty() || p.text.chars().count() > MAX_TEXT {
        return Err(ApiError::BadRequest(format!(
            "text must be 1 to {MAX_TEXT} characters"
        )));
    }
    let stored = state
        .sandbox_chats
        .append(
            g.chat.as_str(),
            SandboxMessage {
                id: String::new(),
                sender: sender.to_string(),
                sender_name: p.sender_name.clone().or_else(|| Some(sender.to_string())),
                text: p.text.clone(),
                reply_to: p.reply_to.clone(),
                from_relay: false,
                at_ms: now_ms(),
                edited_ms: None,
            },
        )
        .await?;
    // Stored first, then announced: the live view never shows what is not kept.
    state.sandbox_feed.publish(g.id.as_str(), stored.clone());
    // The replied message, as a platform quotes it (for `/doorsturen`).
    let quoted = match &p.reply_to {
        Some(r) => state.sandbox_chats.get(g.chat.as_str(), r).await?.map(|q| {
            Box::new(Quoted {
                text: q.text,
                sender: Some(Sender {
                    id: q.sender,
                    name: q.sender_name,
                    is_bot: q.from_relay,
                }),
            })
        }),
        None => None,
    };
    let inbound = InboundMessage {
        account: g.account.clone(),
        platform: PlatformKind::Sandbox,
        chat: g.chat.clone(),
        message_id: stored.id.clone(),
        sender: Sender {
            id: sender.to_string(),
            name: stored.sender_name.clone(),
            is_bot: false,
        },
        text: p.text,
        reply_to: p.reply_to,
        at_ms: stored.at_ms,
        edit: None,
        quoted,
        extra: Default::default(),
    };
    let outcome = ingest::handle(&state, &rt, Inbound::Message(inbound)).await?;
    Ok((StatusCode::CREATED, Json(summary(stored, outcome))))
}

fn summary(message: SandboxMessage, outcome: Outcome) -> PostAnswer {
    let mut answer = PostAnswer {
        message,
        outcome: "ignored",
        alert: false,
        categories: vec![],
        confirmed: false,
        actions: vec![],
    };
    match outcome {
        Outcome::Accepted(d) => {
            answer.outcome = "accepted";
            answer.alert = d.alert;
            answer.categories = d.categories.clone();
            answer.confirmed = d.confirmed;
            answer.actions = d
                .actions
                .iter()
                .map(|a| ActionSummary {
                    kind: a.kind(),
                    group: a.group().to_string(),
                })
                .collect();
        }
        Outcome::Duplicate => answer.outcome = "duplicate",
        Outcome::Ignored(_) | Outcome::UnknownChat => {}
    }
    answer
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EditMessage {
    /// Who edits: only the message's own sender may.
    sender: String,
    text: String,
}

/// `PATCH /sandbox/{group}/messages/{id}`: a member edits their message,
/// as on a platform that allows edits. The relay sees an edit (and changes
/// the copies of an alert).
pub async fn edit_message(
    State(state): State<AppState>,
    Path((group, id)): Path<(String, String)>,
    body: Result<Json<EditMessage>, JsonRejection>,
) -> Result<Json<PostAnswer>, ApiError> {
    let (g, rt) = sandbox_group(&state, &group)?;
    let Json(p) = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::TooLarge,
        _ => ApiError::BadRequest(
            e.body_text()
                .lines()
                .next()
                .unwrap_or("bad JSON")
                .to_string(),
        ),
    })?;
    if p.text.trim().is_empty() || p.text.chars().count() > MAX_TEXT {
        return Err(ApiError::BadRequest(format!(
            "text must be 1 to {MAX_TEXT} characters"
        )));
    }
    let Some(old) = state.sandbox_chats.get(g.chat.as_str(), &id).await? else {
        return Err(ApiError::NotFound("no such message".into()));
    };
    if old.from_relay || old.sender != p.sender.trim() {
        return Err(ApiError::Forbidden);
    }
    let at = now_ms();
    let Some(edited) = state
        .sandbox_chats
        .edit(g.chat.as_str(), &id, &p.text, at)
        .await?
    else {
        return Err(ApiError::NotFound("no such message".into()));
    };
    state.sandbox_feed.publish(g.id.as_str(), edited.clone());
    let inbound = InboundMessage {
        account: g.account.clone(),
        platform: PlatformKind::Sandbox,
        chat: g.chat.clone(),
        message_id: edited.id.clone(),
        sender: Sender {
            id: edited.sender.clone(),
            name: edited.sender_name.clone(),
            is_bot: false,
        },
        text: p.text,
        reply_to: edited.reply_to.clone(),
        at_ms: edited.at_ms,
        edit: Some(at),
        quoted: None,
        extra: Default::default(),
    };
    let outcome = ingest::handle(&state, &rt, Inbound::Message(inbound)).await?;
    Ok(Json(summary(edited, outcome)))
}

#[derive(Deserialize)]
pub struct ListQuery {
    limit: Option<usize>,
}

#[derive(Serialize)]
pub struct ListAnswer {
    group: String,
    name: String,
    messages: Vec<SandboxMessage>,
}

pub async fn list_messages(
    State(state): State<AppState>,
    Path(group): Path<String>,
    Query(q): Query<ListQuery>,
) -> Result<Json<ListAnswer>, ApiError> {
    let (g, _) = sandbox_group(&state, &group)?;
    let limit = q.limit.unwrap_or(200).clamp(1, 1000);
    let messages = state.sandbox_chats.list(g.chat.as_str(), limit).await?;
    Ok(Json(ListAnswer {
        group: g.id.to_string(),
        name: g.name.clone(),
        messages,
    }))
}
