//! HTTP: platform webhooks, the sandbox platform, health and metrics, the
//! playground (`/`) and the dashboard (`/admin`).

mod admin;
mod error;
mod netmap;
mod playground;
mod sandbox;
mod ui;
mod webhooks;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

pub use error::ApiError;

use crate::startup::AppState;
use crate::telemetry::gauge_labels;
use crate::time::now_ms;

pub fn router(state: AppState, max_body_bytes: usize) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route(
            "/webhooks/{account}",
            post(webhooks::receive).get(webhooks::verify),
        )
        .route(
            "/sandbox/{group}/messages",
            post(sandbox::post_message).get(sandbox::list_messages),
        )
        .route(
            "/sandbox/{group}/messages/{id}",
            axum::routing::patch(sandbox::edit_message),
        )
        .route("/sandbox/events", get(playground::events))
        .route("/api/playground", get(playground::info))
        .route("/api/simulate", post(playground::simulate))
        .route("/assets/{name}", get(ui::asset))
        .route("/admin", get(admin::dashboard))
        .route("/admin/login", post(admin::login))
        .route("/admin/logout", post(admin::logout))
        .route("/admin/map.svg", get(admin::map_svg))
        .route("/admin/api/overview", get(admin::api_overview))
        .route(
            "/admin/api/corrections.jsonl",
            get(admin::api_corrections_jsonl),
        )
        .route("/admin/dead/{id}/resend", post(admin::resend))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(state)
}

/// The playground when the network has sandbox groups; otherwise a short
/// plain-text index.
async fn index(State(state): State<AppState>) -> Response {
    let rt = state.runtime.borrow().clone();
    if playground::has_sandbox(&rt.config) {
        return playground::page(&rt);
    }
    let cfg = &rt.config;
    let mut s = format!(
        "buurtrelay {} — network \"{}\" — {} groups\n\n",
        env!("CARGO_PKG_VERSION"),
        cfg.network.name,
        cfg.groups.len()
    );
    for g in &cfg.groups {
        s.push_str(&format!(
            "  {:<22} {:<10} {}\n",
            g.id.as_str(),
            g.platform.as_str(),
            g.name
        ));
    }
    s.push_str(
        "\nThe playground appears here when the config has sandbox groups ([accounts.X] platform = \"sandbox\").\n\nEndpoints: POST /webhooks/{account}, /admin (dashboard, with [admin] token), /healthz, /readyz, /metrics\n",
    );
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], s).into_response()
}

async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    match state.store.ready().await {
        Ok(_) => (StatusCode::OK, "ready\n"),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "store unavailable\n"),
    }
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let mut gauges = Vec::new();
    let now = now_ms();
    let rt = state.runtime.borrow().clone();
    let stats = state.store.queue_stats().await.unwrap_or_default();
    for acc in rt.config.accounts.keys() {
        let s = stats.iter().find(|s| &s.account == acc);
        let l = gauge_labels(&[("account", acc.as_str())]);
        gauges.push((
            "buurtrelay_queue_depth",
            l.clone(),
            s.map_or(0, |s| s.depth) as f64,
        ));
        let age = s
            .and_then(|s| s.oldest_ms)
            .map_or(0.0, |o| now.saturating_sub(o) as f64 / 1000.0);
        gauges.push(("buurtrelay_queue_oldest_seconds", l, age));
    }
    let dead = state.store.dead_letter_count().await.unwrap_or(0);
    gauges.push(("buurtrelay_dead_letters", String::new(), dead as f64));
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(&gauges),
    )
}
