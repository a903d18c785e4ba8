//! `POST /webhooks/{account}`: the webhook of one configured account.
//!
//! Answers 2xx only after every event in the request is durably stored;
//! 401 for a missing or wrong secret, 400 for a malformed body, 413 over the
//! size limit, 404 for an unknown account, 503 if the store fails (the
//! platform retries; the dedup mark makes the retry safe).
//!
//! `GET /webhooks/{account}`: the subscription handshake of platforms that
//! have one (WhatsApp Cloud API): the challenge echoed as text/plain for the
//! right token, 403 for a wrong one, 404 where the platform has none.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use tracing::{info, warn};

use super::ApiError;
use crate::config::AccountId;
use crate::ingest::{self, Outcome};
use crate::startup::AppState;

pub async fn receive(
    State(state): State<AppState>,
    Path(account): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let rt = state.runtime.borrow().clone();
    let platform = AccountId::parse(&account)
        .ok()
        .and_then(|id| rt.platforms.get(&id).cloned());
    let Some(platform) = platform else {
        state.metrics.inc(
            "buurtrelay_webhook_rejected_total",
            &[("reason", "unknown_account")],
        );
        return Err(ApiError::NotFound("unknown account".into()));
    };
    let body = match body {
        Ok(b) => b,
        Err(rej) if rej.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            state.metrics.inc(
                "buurtrelay_webhook_rejected_total",
                &[("reason", "too_large")],
            );
            return Err(ApiError::TooLarge);
        }
        Err(rej) => {
            state.metrics.inc(
                "buurtrelay_webhook_rejected_total",
                &[("reason", "unreadable")],
            );
            return Err(ApiError::BadRequest(rej.body_text()));
        }
    };
    let events = platform.parse_webhook(&headers, &body).map_err(|e| {
        let reason = match e {
            crate::platform::WebhookError::Unauthorized => "unauthorized",
            crate::platform::WebhookError::Malformed(_) => "malformed",
            crate::platform::WebhookError::Forbidden => "forbidden",
        };
        state
            .metrics
            .inc("buurtrelay_webhook_rejected_total", &[("reason", reason)]);
        warn!(%account, reason, "webhook refused");
        ApiError::from(e)
    })?;
    let mut handled = 0usize;
    for ev in events {
        match ingest::handle(&state, &rt, ev).await? {
            Outcome::Accepted(_) => handled += 1,
            Outcome::Duplicate | Outcome::Ignored(_) | Outcome::UnknownChat => {}
        }
    }
    Ok((
        StatusCode::OK,
        axum::Json(serde_json::json!({ "ok": true, "accepted": handled })),
    ))
}

/// `GET /webhooks/{account}`: the verification handshake of platforms that
/// use one (WhatsApp Cloud API); other platforms have none.
pub async fn verify(
    State(state): State<AppState>,
    Path(account): Path<String>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let rt = state.runtime.borrow().clone();
    let Some(platform) = AccountId::parse(&account)
        .ok()
        .and_then(|id| rt.platforms.get(&id).cloned())
    else {
        return Err(ApiError::NotFound("unknown account".into()));
    };
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    match platform.verify_handshake(&query) {
        None => Err(ApiError::NotFound(
            "this account's platform has no verification handshake".into(),
        )),
        Some(Ok(challenge)) => {
            info!(%account, "webhook verification handshake answered");
            Ok((
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                challenge,
            ))
        }
        Some(Err(e)) => {
            state.metrics.inc(
                "buurtrelay_webhook_rejected_total",
                &[("reason", "handshake")],
            );
            warn!(%account, error = %e, "webhook verification handshake refused");
            Err(ApiError::from(e))
        }
    }
}
