//! One error type for every HTTP answer that is not a success: a short,
//! stable body; the cause is logged, not shown.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::platform::WebhookError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 401: missing or wrong secret.
    #[error("unauthorized")]
    Unauthorized,
    /// 403: a verification handshake with the wrong token, or a dashboard
    /// change without its CSRF token (or from another site).
    #[error("forbidden")]
    Forbidden,
    /// 400: the body could not be read as the platform's format.
    #[error("{0}")]
    BadRequest(String),
    /// 413: the body is over `server.max_body_bytes`.
    #[error("payload too large")]
    TooLarge,
    /// 404: no such account or group in the config.
    #[error("{0}")]
    NotFound(String),
    /// 503: the store could not take the write; the platform should retry.
    #[error("store unavailable")]
    Unavailable(#[from] StoreError),
}

impl From<WebhookError> for ApiError {
    fn from(e: WebhookError) -> Self {
        match e {
            WebhookError::Unauthorized => ApiError::Unauthorized,
            WebhookError::Malformed(m) => ApiError::BadRequest(m),
            WebhookError::Forbidden => ApiError::Forbidden,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden => StatusCode::FORBIDDEN,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Unavailable(e) => {
                tracing::error!(error = %e, "store write failed; answering 503");
                StatusCode::SERVICE_UNAVAILABLE
            }
        };
        // One line, no internals.
        let msg = self
            .to_string()
            .lines()
            .next()
            .unwrap_or("error")
            .to_string();
        (status, Json(json!({ "error": msg }))).into_response()
    }
}
