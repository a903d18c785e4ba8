//! The dashboard (`/admin`): the network map, recent alerts with the state
//! of every copy, delivery health, dead letters (re-sendable), and the
//! config reload status.
//!
//! Access: only when the config has `[admin] token`; otherwise every admin
//! path answers 404 saying so (never open). A request is let in with
//! `Authorization: Bearer <token>`, or with the session cookie that the login
//! form sets (HttpOnly, SameSite=Strict; its value is derived from the token,
//! so changing the token signs everybody out). Tokens are compared in
//! constant time. A change made with the cookie (re-send, sign out) also
//! needs the CSRF token of the page (form field `csrf` or header
//! `x-csrf-token`), and is refused when the browser says it is cross-site.

use std::fmt::Write as _;

use axum::Json;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tracing::{info, warn};

use super::ApiError;
use super::netmap::{self, Edge};
use super::ui::{Lang, age, esc, html, secure, utc};
use crate::config::{Config, GroupId};
use crate::runtime::Runtime;
use crate::startup::{AppState, ReloadStatus};
use crate::store::{DeliveryState, StoreError};
use crate::time::now_ms;

const COOKIE: &str = "buurtrelay_admin";
const SESSION_HOURS: u64 = 12;

/// How a request stands with the dashboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No `[admin] token` in the config: the dashboard does not exist.
    Off,
    /// No or wrong credentials.
    Denied,
    /// `Authorization: Bearer` with the right token (scripts, curl).
    Bearer,
    /// The session cookie (a browser after the login form).
    Cookie,
}

impl Access {
    pub fn allowed(self) -> bool {
        matches!(self, Access::Bearer | Access::Cookie)
    }
}

/// Equal in constant time, whatever the lengths (both are hashed first).
fn same(a: &[u8], b: &[u8]) -> bool {
    Sha256::digest(a).ct_eq(&Sha256::digest(b)).into()
}

/// A value derived from the admin token for one purpose (cookie, CSRF).
fn derive(token: &str, purpose: &str) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(token.as_bytes()) {
        Ok(m) => m,
        // HMAC takes keys of any length; this arm is never taken.
        Err(_) => return String::new(),
    };
    mac.update(b"buurtrelay admin ");
    mac.update(purpose.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

fn cookie_value(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.trim().to_string())
}

pub fn access(headers: &HeaderMap, cfg: &Config) -> Access {
    let Some(admin) = &cfg.admin else {
        return Access::Off;
    };
    let token = admin.token.expose();
    if let Some(auth) = headers.get(header::AUTHORIZATION) {
        let given = auth
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        return match given {
            Some(g) if same(g.as_bytes(), token.as_bytes()) => Access::Bearer,
            _ => Access::Denied,
        };
    }
    match cookie_value(headers) {
        Some(c) if same(c.as_bytes(), derive(token, "session v1").as_bytes()) => Access::Cookie,
        _ => Access::Denied,
    }
}

/// A change (POST) is allowed: bearer, or cookie + CSRF token + not cross-site.
fn may_change(headers: &HeaderMap, cfg: &Config, form_csrf: Option<&str>) -> Access {
    let a = access(headers, cfg);
    if a != Access::Cookie {
        return a;
    }
    let token = cfg.admin.as_ref().map(|a| a.token.expose()).unwrap_or("");
    let cross_site = headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == "cross-site");
    let given = headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .or(form_csrf);
    let expected = derive(token, "csrf v1");
    match given {
        Some(g) if !cross_site && same(g.as_bytes(), expected.as_bytes()) => Access::Cookie,
        _ => Access::Denied,
    }
}

fn lang(cfg: &Config) -> Lang {
    Lang::of(&cfg.network.language)
}

fn page(l: Lang, title: &str, body_class: &str, body: &str) -> String {
    format!(
        r#"<!doctype html>
<html lang="{lang}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{title}</title>
<link rel="stylesheet" href="/assets/style.css">
<script src="/assets/admin.js" defer></script>
</head>
<body class="{body_class}">
{body}
</body>
</html>
"#,
        lang = l.code(),
        title = esc(title),
    )
}

fn off_page(cfg: &Config) -> Response {
    let l = lang(cfg);
    let body = format!(
        r#"<main class="login card"><h1>{}</h1><p>{}</p><pre>[admin]
token = "env:BUURTRELAY_ADMIN_TOKEN"</pre></main>"#,
        esc(l.t("dashboard")),
        esc(l.t("dashboard_off")),
    );
    html(
        StatusCode::NOT_FOUND,
        page(l, l.t("dashboard"), "admin", &body),
    )
}

fn login_page(cfg: &Config, wrong: bool) -> Response {
    let l = lang(cfg);
    let error = if wrong {
        format!(
            r#"<p class="error" role="alert">{}</p>"#,
            esc(l.t("wrong_token"))
        )
    } else {
        String::new()
    };
    let body = format!(
        r#"<main class="login card">
<h1>{network} · {dashboard}</h1>
<p>{intro}</p>
{error}
<form method="post" action="/admin/login">
<label for="token">{label}</label>
<input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
<button type="submit">{sign_in}</button>
</form>
</main>"#,
        network = esc(&cfg.network.name),
        dashboard = esc(l.t("dashboard")),
        intro = esc(l.t("sign_in_intro")),
        label = esc(l.t("admin_token")),
        sign_in = esc(l.t("sign_in")),
    );
    let mut r = html(
        StatusCode::UNAUTHORIZED,
        page(l, l.t("sign_in"), "admin", &body),
    );
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(r#"Bearer realm="buurtrelay admin""#),
    );
    r
}

/// Refusal for the JSON and SVG endpoints.
/// `Ok` for a request with the admin token or session, else the refusal.
fn admitted(headers: &HeaderMap, cfg: &Config) -> Result<(), ApiError> {
    let a = access(headers, cfg);
    if a.allowed() { Ok(()) } else { Err(refuse(a)) }
}

fn refuse(a: Access) -> ApiError {
    match a {
        Access::Off => {
            ApiError::NotFound("the dashboard is off: no [admin] token in the config".into())
        }
        _ => ApiError::Unauthorized,
    }
}

#[derive(Deserialize)]
pub struct LoginForm {
    token: String,
}

/// `POST /admin/login`: the token once, then a session cookie.
pub async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Response {
    let rt = state.runtime.borrow().clone();
    let cfg = &rt.config;
    let Some(admin) = &cfg.admin else {
        return off_page(cfg);
    };
    let token = admin.token.expose();
    let ok = form
        .as_ref()
        .is_ok_and(|Form(f)| same(f.token.trim().as_bytes(), token.as_bytes()));
    if !ok {
        warn!("dashboard: sign-in with a wrong token");
        // Slows down guessing; the token is long anyway.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        return login_page(cfg, true);
    }
    let secure_flag = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"));
    let cookie = format!(
        "{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        derive(token, "session v1"),
        SESSION_HOURS * 3600,
        if secure_flag { "; Secure" } else { "" }
    );
    info!("dashboard: signed in");
    let mut r = Redirect::to("/admin").into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    secure(r)
}

#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: Option<String>,
}

fn form_csrf(form: &Result<Form<CsrfForm>, FormRejection>) -> Option<&str> {
    form.as_ref().ok().and_then(|Form(f)| f.csrf.as_deref())
}

/// `POST /admin/logout`.
pub async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Response {
    let rt = state.runtime.borrow().clone();
    match may_change(&headers, &rt.config, form_csrf(&form)) {
        Access::Off => off_page(&rt.config),
        Access::Denied => ApiError::Forbidden.into_response(),
        Access::Bearer | Access::Cookie => {
            let mut r = Redirect::to("/admin").into_response();
            r.headers_mut().insert(
                header::SET_COOKIE,
                HeaderValue::from_static(
                    "buurtrelay_admin=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0",
                ),
            );
            secure(r)
        }
    }
}

/// `POST /admin/dead/{id}/resend`: a dead letter goes back to the outbox.
pub async fn resend(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<u64>,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Result<Response, ApiError> {
    let rt = state.runtime.borrow().clone();
    let how = match may_change(&headers, &rt.config, form_csrf(&form)) {
        Access::Denied if access(&headers, &rt.config) == Access::Cookie => {
            return Err(ApiError::Forbidden);
        }
        a @ (Access::Off | Access::Denied) => return Err(refuse(a)),
        a => a,
    };
    if !state.store.resend_dead(id, now_ms()).await? {
        return Err(ApiError::NotFound("no dead letter with that id".into()));
    }
    state.store.flush().await?;
    state.wake.notify_waiters();
    info!(id, "dashboard: dead letter queued again");
    Ok(match how {
        Access::Cookie => {
            secure(Redirect::to(&format!("/admin?resent={id}#dead-letters")).into_response())
        }
        _ => Json(serde_json::json!({ "resent": id })).into_response(),
    })
}

/// One account's delivery health.
#[derive(Serialize)]
pub struct AccountHealth {
    account: String,
    platform: &'static str,
    queued: usize,
    oldest_ms: Option<u64>,
    sent: u64,
    retries: u64,
    dead: u64,
}

#[derive(Serialize)]
pub struct DeadLetter {
    id: u64,
    account: String,
    group: String,
    kind: String,
    attempts: u32,
    last_error: Option<String>,
    created_ms: u64,
    text: String,
}

#[derive(Serialize)]
pub struct TargetView {
    group: String,
    /// delivered, pending, retrying, dead, held, or unknown (no record left,
    /// e.g. after the retention period).
    state: &'static str,
    attempts: u32,
    last_error: Option<String>,
}

#[derive(Serialize)]
pub struct AlertView {
    origin: String,
    at_ms: u64,
    group: String,
    categories: Vec<String>,
    police_called: bool,
    text: String,
    targets: Vec<TargetView>,
}

#[derive(Serialize)]
pub struct GroupView {
    id: String,
    name: String,
    platform: &'static str,
}

/// Everything the dashboard shows (also `GET /admin/api/overview`).
#[derive(Serialize)]
pub struct Overview {
    network: String,
    config_file: String,
    reload: ReloadStatus,
    groups: Vec<GroupView>,
    edges: Vec<Edge>,
    accounts: Vec<AccountHealth>,
    reminders_sent: u64,
    dead_letters: Vec<DeadLetter>,
    alerts: Vec<AlertView>,
    corrections: CorrectionsView,
}

/// Coordinators' corrections (see [`crate::corrections`]): per month and
/// the latest ones.
#[derive(Serialize)]
struct CorrectionsView {
    /// (`YYYY-MM`, missed, wrongly forwarded), newest month first.
    months: Vec<(String, u32, u32)>,
    items: Vec<crate::corrections::Correction>,
}

/// The corrections within the retention period (at most the last 10,000
/// alerts are looked at: a network sees a few a day).
async fn corrections_of(
    state: &AppState,
    cfg: &Config,
) -> Result<Vec<crate::corrections::Correction>, StoreError> {
    let from = now_ms().saturating_sub(cfg.relay.retention.as_millis() as u64);
    let alerts = state.store.alerts_since(from, 10_000).await?;
    Ok(crate::corrections::from_alerts(cfg, &alerts))
}

fn state_name(s: DeliveryState) -> &'static str {
    match s {
        DeliveryState::Delivered => "delivered",
        DeliveryState::Pending => "pending",
        DeliveryState::Retrying => "retrying",
        DeliveryState::Dead => "dead",
        DeliveryState::Held => "held",
    }
}

fn excerpt(s: &str, n: usize) -> String {
    let mut out: String = s.chars().take(n).collect();
    if s.chars().count() > n {
        out.push('…');
    }
    out
}

async fn overview(state: &AppState, rt: &Runtime) -> Result<Overview, StoreError> {
    let cfg = &rt.config;
    let stats = state.store.queue_stats().await?;
    let accounts = cfg
        .accounts
        .values()
        .map(|a| {
            let acc = a.id.as_str();
            let s = stats.iter().find(|s| s.account == a.id);
            let sends = |outcome| {
                state.metrics.get(
                    "buurtrelay_sends_total",
                    &[("account", acc), ("outcome", outcome)],
                )
            };
            AccountHealth {
                account: acc.to_string(),
                platform: a.platform.as_str(),
                queued: s.map_or(0, |s| s.depth),
                oldest_ms: s.and_then(|s| s.oldest_ms),
                sent: sends("ok"),
                retries: sends("retry"),
                dead: state
                    .metrics
                    .get("buurtrelay_dead_letters_total", &[("account", acc)]),
            }
        })
        .collect();
    let dead_letters = state
        .store
        .dead_letters(200)
        .await?
        .into_iter()
        .map(|e| DeadLetter {
            id: e.id,
            account: e.msg.account.to_string(),
            group: e.msg.group.to_string(),
            kind: format!("{:?}", e.msg.kind).to_lowercase(),
            attempts: e.attempts,
            last_error: e.last_error,
            created_ms: e.created_ms,
            text: excerpt(&e.msg.text, 200),
        })
        .collect();
    let mut alerts = Vec::new();
    for a in state.store.recent_alerts(50).await? {
        // The origin group's own entry is the reminder, not a copy.
        let states: Vec<_> = state
            .store
            .delivery_states(&a.origin)
            .await?
            .into_iter()
            .filter(|t| t.group != a.group)
            .collect();
        let mut groups: Vec<GroupId> = a.targets.clone();
        for t in &states {
            if !groups.contains(&t.group) {
                groups.push(t.group.clone());
            }
        }
        let targets = groups
            .iter()
            .map(|g| match states.iter().find(|t| &t.group == g) {
                Some(t) => TargetView {
                    group: g.to_string(),
                    state: state_name(t.state),
                    attempts: t.attempts,
                    last_error: t.last_error.clone(),
                },
                None => TargetView {
                    group: g.to_string(),
                    state: "unknown",
                    attempts: 0,
                    last_error: None,
                },
            })
            .collect();
        alerts.push(AlertView {
            origin: a.origin.clone(),
            at_ms: a.at_ms,
            group: a.group.to_string(),
            categories: a.categories.clone(),
            police_called: a.confirmed,
            // The stored text is the member's own; the dashboard follows the
            // same privacy rule as forwarded copies.
            text: excerpt(
                &if cfg.relay.mask_phone_numbers {
                    crate::relay::mask_phone_numbers(&a.text)
                } else {
                    a.text.clone()
                },
                120,
            ),
            targets,
        });
    }
    let reload = state.reload.lock().map(|r| r.clone()).unwrap_or_default();
    Ok(Overview {
        network: cfg.network.name.clone(),
        config_file: cfg.file.display().to_string(),
        reload,
        groups: cfg
            .groups
            .iter()
            .map(|g| GroupView {
                id: g.id.to_string(),
                name: g.name.clone(),
                platform: g.platform.as_str(),
            })
            .collect(),
        edges: netmap::edges(cfg),
        accounts,
        reminders_sent: state.metrics.get("buurtrelay_reminders_total", &[]),
        dead_letters,
        alerts,
        corrections: {
            let all = corrections_of(state, cfg).await?;
            CorrectionsView {
                months: crate::corrections::per_month(&all)
                    .into_iter()
                    .rev()
                    .map(|(m, (a, b))| (m, a, b))
                    .collect(),
                items: all.into_iter().take(50).collect(),
            }
        },
    })
}

/// `GET /admin/api/corrections.jsonl`: the coordinators' corrections in
/// the corpus's training format (`buurtrelay train --data FILE`).
pub async fn api_corrections_jsonl(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let rt = state.runtime.borrow().clone();
    admitted(&headers, &rt.config)?;
    let all = corrections_of(&state, &rt.config).await?;
    let body = crate::corrections::to_jsonl(&rt.config, &all);
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-ndjson; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response())
}

/// `GET /admin/api/overview`.
pub async fn api_overview(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let rt = state.runtime.borrow().clone();
    admitted(&headers, &rt.config)?;
    let o = overview(&state, &rt).await?;
    let mut r = Json(o).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

/// `GET /admin/map.svg`: the network map alone.
pub async fn map_svg(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let rt = state.runtime.borrow().clone();
    admitted(&headers, &rt.config)?;
    let svg = netmap::svg(&rt.config, lang(&rt.config));
    Ok(secure(
        (
            [
                (header::CONTENT_TYPE, "image/svg+xml; charset=utf-8"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            svg,
        )
            .into_response(),
    ))
}

#[derive(Deserialize)]
pub struct DashQuery {
    resent: Option<u64>,
}

/// `GET /admin`: the dashboard, or the sign-in form (401), or 404 when off.
pub async fn dashboard(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<DashQuery>,
) -> Result<Response, ApiError> {
    let rt = state.runtime.borrow().clone();
    let cfg = &rt.config;
    match access(&headers, cfg) {
        Access::Off => return Ok(off_page(cfg)),
        Access::Denied => return Ok(login_page(cfg, false)),
        Access::Bearer | Access::Cookie => {}
    }
    let o = overview(&state, &rt).await?;
    let l = lang(cfg);
    let csrf = cfg
        .admin
        .as_ref()
        .map(|a| derive(a.token.expose(), "csrf v1"))
        .unwrap_or_default();
    let body = render(cfg, l, &o, &csrf, q.resent);
    Ok(html(
        StatusCode::OK,
        page(
            l,
            &format!("{} · {}", l.t("dashboard"), cfg.network.name),
            "admin",
            &body,
        ),
    ))
}

fn name_of<'a>(cfg: &'a Config, id: &'a str) -> &'a str {
    GroupId::parse(id)
        .ok()
        .and_then(|g| cfg.group(&g))
        .map_or(id, |g| g.name.as_str())
}

fn render(cfg: &Config, l: Lang, o: &Overview, csrf: &str, resent: Option<u64>) -> String {
    let now = now_ms();
    let mut s = String::new();
    // Header: network, reload status, refresh, sign out.
    let _ = write!(
        s,
        r#"<header class="top"><h1>{network} <span class="sub">· {dash}</span></h1>
<div class="links"><a href="/admin">{refresh}</a><a href="/">{playground}</a>
<button type="button" id="live-toggle" class="secondary toggle" aria-pressed="false" hidden>{live}</button>
<form class="inline" method="post" action="/admin/logout"><input type="hidden" name="csrf" value="{csrf}"><button type="submit" class="secondary">{sign_out}</button></form></div></header>
<main>"#,
        network = esc(&o.network),
        dash = esc(l.t("dashboard")),
        refresh = esc(l.t("refresh")),
        playground = esc(l.t("playground")),
        sign_out = esc(l.t("sign_out")),
        live = esc(l.t("live_updates")),
        csrf = esc(csrf),
    );
    if let Some(id) = resent {
        let _ = write!(
            s,
            r#"<p class="notice" role="status">#{id} {}</p>"#,
            esc(l.t("resent"))
        );
    }

    // Config reload status.
    let _ = write!(
        s,
        r#"<section class="card" aria-labelledby="cfg-h"><h2 id="cfg-h">{}</h2><p><code>{}</code> — "#,
        esc(l.t("config")),
        esc(&o.config_file)
    );
    match o.reload.last_ok_ms {
        Some(t) => {
            let _ = write!(s, "{} {}", esc(l.t("reload_ok")), esc(&utc(t)));
        }
        None => s.push_str(&esc(l.t("reload_never"))),
    }
    s.push_str("</p>");
    if let Some(e) = &o.reload.last_error {
        let _ = write!(
            s,
            r#"<p>{}</p><pre class="error">{}</pre>"#,
            esc(l.t("reload_error")),
            esc(e)
        );
    }
    s.push_str("</section>");

    // Map and routes.
    let _ = write!(
        s,
        r#"<section class="card" aria-labelledby="map-h"><h2 id="map-h">{}</h2><div class="map-wrap"><div>{}</div><div><h3>{}</h3>"#,
        esc(l.t("map")),
        netmap::svg(cfg, l),
        esc(l.t("routes"))
    );
    if cfg.routes.is_empty() {
        let _ = write!(s, "<p>{}</p>", esc(l.t("no_routes")));
    } else {
        s.push_str(r#"<ol class="routes">"#);
        for r in &cfg.routes {
            let _ = write!(s, "<li>{}</li>", esc(&netmap::describe_route(cfg, r, l)));
        }
        s.push_str("</ol>");
    }
    let _ = write!(
        s,
        r#"<h3>{}</h3><ul class="villages">"#,
        esc(l.t("villages_h"))
    );
    for g in &o.groups {
        let out = o.edges.iter().filter(|e| e.from.as_str() == g.id).count();
        let inc = o.edges.iter().filter(|e| e.to.as_str() == g.id).count();
        let _ = write!(
            s,
            r#"<li data-group="{}">{} <span class="muted">({}; {} {out} · {} {inc})</span></li>"#,
            esc(&g.id),
            esc(&g.name),
            g.platform,
            esc(l.t("sends_to")),
            esc(l.t("receives_from")),
        );
    }
    s.push_str("</ul></div></div></section>");

    // Recent alerts.
    let _ = write!(
        s,
        r#"<section class="card" id="alerts" aria-labelledby="alerts-h"><h2 id="alerts-h">{}</h2>"#,
        esc(l.t("recent_alerts"))
    );
    if o.alerts.is_empty() {
        let _ = write!(s, "<p>{}</p>", esc(l.t("no_alerts")));
    } else {
        let _ = write!(
            s,
            r#"<table class="alerts"><thead><tr><th scope="col">{}</th><th scope="col">{}</th><th scope="col">{}</th><th scope="col">{}</th><th scope="col">{}</th><th scope="col">{}</th></tr></thead><tbody>"#,
            esc(l.t("when")),
            esc(l.t("village")),
            esc(l.t("category")),
            esc(l.t("police_col")),
            esc(l.t("text")),
            esc(l.t("targets")),
        );
        for a in &o.alerts {
            let (cls, yn) = if a.police_called {
                ("yes", l.t("yes"))
            } else {
                ("no", l.t("no"))
            };
            let _ = write!(
                s,
                r#"<tr data-origin="{}"><td>{}</td><td>{}</td><td>{}</td><td class="{cls}">{}</td><td class="excerpt">{}</td><td>"#,
                esc(&a.origin),
                esc(&utc(a.at_ms)),
                esc(name_of(cfg, &a.group)),
                esc(&a
                    .categories
                    .iter()
                    .map(|c| cfg.rules.label(c).unwrap_or(c))
                    .collect::<Vec<_>>()
                    .join(", ")),
                esc(yn),
                esc(&a.text),
            );
            for t in &a.targets {
                let label: &str = l.t(t.state);
                let title = match &t.last_error {
                    Some(e) => format!(
                        " title=\"{} {}: {}\"",
                        t.attempts,
                        esc(l.t("attempts")),
                        esc(e)
                    ),
                    None => String::new(),
                };
                let _ = write!(
                    s,
                    r#"<span class="state {}" data-group="{}"{title}>{}: {}</span> "#,
                    t.state,
                    esc(&t.group),
                    esc(name_of(cfg, &t.group)),
                    esc(label),
                );
            }
            s.push_str("</td></tr>");
        }
        s.push_str("</tbody></table>");
    }
    s.push_str("</section>");

    // Delivery health.
    let _ = write!(
        s,
        r#"<section class="card" id="health" aria-labelledby="health-h"><h2 id="health-h">{}</h2><table class="health"><thead><tr><th scope="col">{}</th><th scope="col">{}</th><th scope="col" class="num">{}</th><th scope="col" class="num">{}</th><th scope="col" class="num">{}</th><th scope="col" class="num">{}</th><th scope="col" class="num">{}</th></tr></thead><tbody>"#,
        esc(l.t("health")),
        esc(l.t("account")),
        esc(l.t("platform")),
        esc(l.t("queue")),
        esc(l.t("oldest")),
        esc(l.t("sent_ok")),
        esc(l.t("retries")),
        esc(l.t("dead_letters")),
    );
    for a in &o.accounts {
        let oldest = a
            .oldest_ms
            .map_or("—".to_string(), |t| age(now.saturating_sub(t)));
        let _ = write!(
            s,
            r#"<tr><td>{}</td><td>{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td></tr>"#,
            esc(&a.account),
            a.platform,
            a.queued,
            esc(&oldest),
            a.sent,
            a.retries,
            a.dead
        );
    }
    let _ = write!(
        s,
        r#"</tbody></table><p class="muted">{}, {}, {}: {}</p><p>{}: <strong>{}</strong> <span class="muted">({})</span></p>"#,
        esc(l.t("sent_ok")),
        esc(l.t("retries")),
        esc(l.t("dead_letters")),
        esc(l.t("since_start")),
        esc(l.t("reminders_sent")),
        o.reminders_sent,
        esc(l.t("since_start")),
    );

    // Dead letters with re-send buttons.
    let _ = write!(
        s,
        r#"<h3 id="dead-letters">{}</h3>"#,
        esc(l.t("dead_letters"))
    );
    if o.dead_letters.is_empty() {
        let _ = write!(s, "<p>{}</p>", esc(l.t("no_dead")));
    } else {
        let _ = write!(
            s,
            r#"<table class="dead"><thead><tr><th scope="col" class="num">#</th><th scope="col">{}</th><th scope="col">{}</th><th scope="col" class="num">{}</th><th scope="col">{}</th><th scope="col">{}</th><th scope="col"></th></tr></thead><tbody>"#,
            esc(l.t("when")),
            esc(l.t("group")),
            esc(l.t("attempts")),
            esc(l.t("last_error")),
            esc(l.t("text")),
        );
        for d in &o.dead_letters {
            let _ = write!(
                s,
                r#"<tr data-dead="{id}"><td class="num">{id}</td><td>{}</td><td>{} <span class="muted">({})</span></td><td class="num">{}</td><td class="excerpt">{}</td><td class="excerpt">{}</td><td><form method="post" action="/admin/dead/{id}/resend"><input type="hidden" name="csrf" value="{}"><button type="submit" aria-label="{} #{id}">{}</button></form></td></tr>"#,
                esc(&utc(d.created_ms)),
                esc(name_of(cfg, &d.group)),
                esc(&d.account),
                d.attempts,
                esc(d.last_error.as_deref().unwrap_or("")),
                esc(&d.text),
                esc(csrf),
                esc(l.t("resend")),
                esc(l.t("resend")),
                id = d.id,
            );
        }
        s.push_str("</tbody></table>");
    }
    s.push_str("</section>");
    render_corrections(&mut s, cfg, l, &o.corrections);
    s.push_str("</main>");
    s
}

fn render_corrections(s: &mut String, cfg: &Config, l: Lang, c: &CorrectionsView) {
    let _ = write!(
        s,
        r#"<section class="card" aria-labelledby="corr-h"><h2 id="corr-h">{}</h2><p class="muted">{}</p>"#,
        esc(l.t("corrections")),
        esc(l.t("corrections_help")),
    );
    if c.months.is_empty() {
        let _ = write!(s, "<p>{}</p></section>", esc(l.t("no_corrections")));
        return;
    }
    let _ = write!(
        s,
        r#"<table class="corrections-months"><thead><tr><th scope="col">{}</th><th scope="col" class="num">{}</th><th scope="col" class="num">{}</th></tr></thead><tbody>"#,
        esc(l.t("month")),
        esc(l.t("missed")),
        esc(l.t("wrong_forward")),
    );
    for (m, a, b) in &c.months {
        let _ = write!(
            s,
            r#"<tr><td>{}</td><td class="num">{a}</td><td class="num">{b}</td></tr>"#,
            esc(m)
        );
    }
    let _ = write!(
        s,
        r#"</tbody></table><table class="corrections"><thead><tr><th scope="col">{}</th><th scope="col">{}</th><th scope="col">{}</th><th scope="col">{}</th></tr></thead><tbody>"#,
        esc(l.t("when")),
        esc(l.t("group")),
        esc(l.t("correction")),
        esc(l.t("text")),
    );
    for i in &c.items {
        let kind = match i.kind {
            crate::corrections::Kind::Missed => "missed",
            crate::corrections::Kind::WrongForward => "wrong_forward",
        };
        let _ = write!(
            s,
            r#"<tr data-correction="{kind}"><td>{}</td><td>{}</td><td>{}</td><td class="excerpt">{}</td></tr>"#,
            esc(&utc(i.at_ms)),
            esc(name_of(cfg, &i.group)),
            esc(l.t(kind)),
            esc(&excerpt(&i.text, 160)),
        );
    }
    let _ = write!(
        s,
        r#"</tbody></table><p><a href="/admin/api/corrections.jsonl">{}</a></p></section>"#,
        esc(l.t("export_corrections"))
    );
}
