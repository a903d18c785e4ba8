//! The dashboard: never open, token or cookie, the map, alerts and where
//! their copies went, dead letters sent again.

use std::path::Path;

use serde_json::Value;

use crate::browser::ADMIN_TOKEN;
use crate::helpers::*;

const ALERT_CALLED: &str =
    "Verdachte grijze bestelwagen rijdt traag door de Kerkstraat, 101 is verwittigd";

fn heers_with_admin() -> String {
    format!(
        "{}\n[admin]\ntoken = \"{ADMIN_TOKEN}\"\n",
        heers_config_with_sandbox()
    )
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn get(app: &TestApp, path: &str, bearer: Option<&str>) -> reqwest::Response {
    let mut r = app.client.get(format!("{}{path}", app.addr));
    if let Some(t) = bearer {
        r = r.bearer_auth(t);
    }
    r.send().await.unwrap()
}

async fn overview(app: &TestApp) -> Value {
    get(app, "/admin/api/overview", Some(ADMIN_TOKEN))
        .await
        .json()
        .await
        .unwrap()
}

/// Signs in through the form; returns the `name=value` cookie.
async fn sign_in(app: &TestApp, token: &str) -> reqwest::Response {
    no_redirects()
        .post(format!("{}/admin/login", app.addr))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={token}"))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn without_an_admin_token_in_the_config_the_dashboard_is_off_never_open() {
    let app = spawn_app(&heers_config_with_sandbox()).await;
    let r = get(&app, "/admin", None).await;
    assert_eq!(r.status(), 404);
    let page = r.text().await.unwrap();
    assert!(page.contains("[admin]") && page.contains("token"), "{page}");
    for path in ["/admin/api/overview", "/admin/map.svg"] {
        assert_eq!(
            get(&app, path, Some("anything")).await.status(),
            404,
            "{path}"
        );
    }
    let r = app
        .client
        .post(format!("{}/admin/dead/1/resend", app.addr))
        .bearer_auth("anything")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(sign_in(&app, "anything").await.status(), 404);
}

#[tokio::test]
async fn the_dashboard_refuses_requests_without_the_right_token() {
    let app = spawn_app(&heers_with_admin()).await;
    let r = get(&app, "/admin", None).await;
    assert_eq!(r.status(), 401);
    assert!(r.headers().contains_key("www-authenticate"));
    let page = r.text().await.unwrap();
    assert!(page.contains(r#"name="token""#), "a sign-in form");
    assert!(
        !page.contains("Mechelen-Bovelingen"),
        "nothing of the network"
    );
    assert_eq!(
        get(&app, "/admin", Some("wrong-token-wrong-token"))
            .await
            .status(),
        401
    );
    assert_eq!(get(&app, "/admin/api/overview", None).await.status(), 401);
    assert_eq!(get(&app, "/admin/map.svg", None).await.status(), 401);
    let r = app
        .client
        .get(format!("{}/admin", app.addr))
        .header("cookie", "buurtrelay_admin=forged")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn with_the_bearer_token_the_dashboard_shows_the_network() {
    let app = spawn_app(&heers_with_admin()).await;
    let r = get(&app, "/admin", Some(ADMIN_TOKEN)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert!(
        r.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'none'")
    );
    let page = r.text().await.unwrap();
    for v in ["Batsheers", "Mechelen-Bovelingen", "Veulen"] {
        assert!(page.contains(v), "{v}");
    }
    assert!(page.contains("<svg"));
}

#[tokio::test]
async fn signing_in_once_sets_a_strict_http_only_cookie() {
    let app = spawn_app(&heers_with_admin()).await;
    let wrong = sign_in(&app, "not-the-token-at-all").await;
    assert_eq!(wrong.status(), 401);
    assert!(wrong.headers().get("set-cookie").is_none());

    let r = sign_in(&app, ADMIN_TOKEN).await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/admin");
    let set = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(set.contains("HttpOnly"), "{set}");
    assert!(set.contains("SameSite=Strict"), "{set}");
    assert!(
        !set.contains(ADMIN_TOKEN),
        "the cookie is not the token itself"
    );
    let cookie = set.split(';').next().unwrap().to_string();

    let r = app
        .client
        .get(format!("{}/admin", app.addr))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    assert!(page.contains("Veulen"));

    // Signing out (with the page's CSRF token) ends the session cookie.
    let csrf = csrf_of(&page);
    let r = no_redirects()
        .post(format!("{}/admin/logout", app.addr))
        .header("cookie", &cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={csrf}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(
        r.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
}

fn csrf_of(page: &str) -> String {
    let at =
        page.find(r#"name="csrf" value=""#).expect("csrf field") + r#"name="csrf" value=""#.len();
    page[at..].split('"').next().unwrap().to_string()
}

#[tokio::test]
async fn the_map_lists_every_village_and_every_route_and_follows_a_reload() {
    let routes = r#"
[[routes]]
from = "*"
to = "neighbours"
categories = ["*"]
"#;
    let app = spawn_app(&format!(
        "{}\n{routes}\n[admin]\ntoken = \"{ADMIN_TOKEN}\"\n",
        heers_config_with_sandbox().replace(
            "[[routes]]\nfrom = \"*\"\nto = \"all\"\ncategories = [\"*\"]\n",
            ""
        )
    ))
    .await;
    let r = get(&app, "/admin/map.svg", Some(ADMIN_TOKEN)).await;
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("image/svg+xml")
    );
    let svg = r.text().await.unwrap();
    for v in [
        "Batsheers",
        "Gutschoven",
        "Heers",
        "Heks",
        "Horpmoel",
        "Klein-Gelmen",
        "Mechelen-Bovelingen",
        "Mettekoven",
        "Opheers",
        "Vechmaal",
        "Veulen",
    ] {
        assert!(svg.contains(&format!(">{v}</text>")), "{v} on the map");
    }
    // Every neighbour of config/heers.toml is one arrow, and nothing else.
    let cfg = buurtrelay::config::Config::load(&app.config_path).unwrap();
    let expected: usize = cfg.groups.iter().map(|g| g.neighbours.len()).sum();
    assert_eq!(svg.matches(r#"class="edge""#).count(), expected);
    assert!(svg.contains(r#"data-from="veulen" data-to="mettekoven""#));
    assert!(!svg.contains(r#"data-from="veulen" data-to="gutschoven""#));

    // An admin changes the routes: the map after the reload shows them.
    let text = std::fs::read_to_string(&app.config_path)
        .unwrap()
        .replace("to = \"neighbours\"", "to = [\"heers\"]");
    std::fs::write(&app.config_path, text).unwrap();
    assert!(buurtrelay::startup::reload(&app.state, "test"));
    let svg = get(&app, "/admin/map.svg", Some(ADMIN_TOKEN))
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(
        svg.matches(r#"class="edge""#).count(),
        10,
        "every village → Heers"
    );
    assert!(svg.contains(r#"data-from="veulen" data-to="heers""#));
    assert!(!svg.contains(r#"data-from="veulen" data-to="mettekoven""#));
}

#[tokio::test]
async fn recent_alerts_show_where_every_copy_went() {
    let app = spawn_app(&heers_with_admin()).await;
    app.post_sandbox("veulen", "jan", "Jan Peeters", ALERT_CALLED)
        .await;
    eventually(10, "ten copies delivered", || async {
        let o = overview(&app).await;
        o["alerts"][0]["targets"]
            .as_array()
            .is_some_and(|t| t.len() == 10 && t.iter().all(|t| t["state"] == "delivered"))
    })
    .await;
    let o = overview(&app).await;
    let a = &o["alerts"][0];
    assert_eq!(a["group"], "veulen");
    assert_eq!(a["police_called"], true);
    assert!(
        a["categories"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("suspicious_vehicle"))
    );
    assert!(
        !a["targets"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["group"] == "veulen")
    );
    let page = get(&app, "/admin", Some(ADMIN_TOKEN))
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains(r#"class="state delivered" data-group="heers""#));
}

#[tokio::test]
async fn a_members_markup_is_shown_as_text_on_the_dashboard() {
    let app = spawn_app(&heers_with_admin()).await;
    app.post_sandbox(
        "veulen",
        "jan",
        "<b>Jan</b>",
        "<img src=x onerror=alert(1)> Inbraak bezig in de Molenstraat, twee mannen aan de achterdeur, 101 is verwittigd, bel 0475 12 34 56",
    )
    .await;
    eventually(10, "the alert is listed", || async {
        overview(&app).await["alerts"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
    })
    .await;
    let page = get(&app, "/admin", Some(ADMIN_TOKEN))
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("&lt;img src=x onerror=alert(1)&gt;"));
    assert!(!page.contains("<img src=x"));
    assert!(
        !page.contains("0475 12 34 56"),
        "phone numbers masked, as in copies"
    );
}

#[tokio::test]
async fn a_dead_letter_is_sent_again_from_the_dashboard() {
    let fake = FakeTelegram::start().await;
    let app = spawn_app(&telegram_config(
        &fake,
        &["Veulen", "Heers"],
        &format!("[admin]\ntoken = \"{ADMIN_TOKEN}\"\n"),
    ))
    .await;
    // The bot was kicked from Heers: the copy is refused for good.
    fake.script(vec![Reply::Forbidden]);
    let r = app
        .webhook(
            "bot",
            Some("s3cret-token"),
            tg_update(1, "-1001000000000", 10, 4242, "Jan", ALERT_CALLED),
        )
        .await;
    assert_eq!(r.status(), 200);
    eventually(10, "a dead letter", || async {
        overview(&app).await["dead_letters"]
            .as_array()
            .is_some_and(|d| d.len() == 1)
    })
    .await;
    let o = overview(&app).await;
    let dead = &o["dead_letters"][0];
    assert_eq!(dead["group"], "heers");
    assert_eq!(o["alerts"][0]["targets"][0]["state"], "dead");
    let id = dead["id"].as_u64().unwrap();

    // With the cookie but without the page's CSRF token: refused.
    let set = sign_in(&app, ADMIN_TOKEN).await.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_string();
    let cookie = set.split(';').next().unwrap().to_string();
    let resend = |body: String| {
        no_redirects()
            .post(format!("{}/admin/dead/{id}/resend", app.addr))
            .header("cookie", cookie.clone())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
    };
    assert_eq!(resend(String::new()).send().await.unwrap().status(), 403);
    assert_eq!(
        resend("csrf=0000".into()).send().await.unwrap().status(),
        403
    );
    assert!(fake.delivered().is_empty());

    // The dashboard's own form (cookie + CSRF field) queues it again.
    let page = app
        .client
        .get(format!("{}/admin", app.addr))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains(&format!("/admin/dead/{id}/resend")));
    let r = resend(format!("csrf={}", csrf_of(&page)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    eventually(10, "the copy delivered after the re-send", || async {
        fake.delivered().len() == 1
    })
    .await;
    eventually(10, "shown as delivered", || async {
        let o = overview(&app).await;
        o["dead_letters"].as_array().is_some_and(|d| d.is_empty())
            && o["alerts"][0]["targets"][0]["state"] == "delivered"
    })
    .await;

    // Once is enough: it is no longer a dead letter.
    let r = app
        .client
        .post(format!("{}/admin/dead/{id}/resend", app.addr))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn a_script_re_sends_with_the_bearer_token() {
    let fake = FakeTelegram::start().await;
    let app = spawn_app(&telegram_config(
        &fake,
        &["Veulen", "Heers"],
        &format!("[admin]\ntoken = \"{ADMIN_TOKEN}\"\n"),
    ))
    .await;
    fake.script(vec![Reply::Forbidden]);
    app.webhook(
        "bot",
        Some("s3cret-token"),
        tg_update(1, "-1001000000000", 10, 4242, "Jan", ALERT_CALLED),
    )
    .await;
    eventually(10, "a dead letter", || async {
        app.state.store.dead_letters(10).await.unwrap().len() == 1
    })
    .await;
    let id = app.state.store.dead_letters(10).await.unwrap()[0].id;
    let r = app
        .client
        .post(format!("{}/admin/dead/{id}/resend", app.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "no token, no re-send");
    let r = app
        .client
        .post(format!("{}/admin/dead/{id}/resend", app.addr))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["resent"], id);
    eventually(10, "delivered", || async { fake.delivered().len() == 1 }).await;
}

#[test]
fn an_admin_token_must_be_long_and_may_come_from_the_environment() {
    let base = heers_config_with_sandbox();
    let parse = |admin: &str| {
        buurtrelay::config::Config::parse(&format!("{base}\n{admin}"), Path::new("heers.toml"))
    };
    let errs = parse("[admin]\ntoken = \"short\"").unwrap_err().to_string();
    assert!(
        errs.contains("admin.token must be at least 16 characters"),
        "{errs}"
    );
    assert!(errs.starts_with("heers.toml:"), "located: {errs}");
    let errs = parse("[admin]\ntoken = \"env:BUURTRELAY_TEST_UNSET_ADMIN_TOKEN\"")
        .unwrap_err()
        .to_string();
    assert!(errs.contains("BUURTRELAY_TEST_UNSET_ADMIN_TOKEN"), "{errs}");
    let errs = parse("[admin]\ntokn = \"x\"").unwrap_err().to_string();
    assert!(errs.contains("tokn") || errs.contains("token"), "{errs}");
    assert!(parse("").unwrap().admin.is_none());
    assert!(
        parse(&format!("[admin]\ntoken = \"{ADMIN_TOKEN}\""))
            .unwrap()
            .admin
            .is_some()
    );
}

/// A coordinator's `/doorsturen` of a message the relay let pass is a missed
/// alert; `/intrekken` of a forwarded one a wrong forward. Both are listed
/// on the dashboard per month and exported in the corpus's training format,
/// without the phone number a member typed.
#[tokio::test]
async fn a_coordinators_corrections_are_listed_and_exported_for_training() {
    let id = |m: &Value| m["message"]["id"].as_str().unwrap().to_string();
    let app = spawn_app(&heers_with_admin()).await;
    let missed = app
        .post_sandbox(
            "veulen",
            "piet",
            "Piet",
            "Onze grijze kater met rode halsband is sinds gisteren weg, bel 0475 12 34 56",
        )
        .await;
    assert_eq!(missed["alert"], false);
    app.reply_sandbox(
        "veulen",
        "coord-veulen",
        "Marc",
        "/doorsturen",
        &id(&missed),
    )
    .await;
    let alert = app.post_sandbox("veulen", "jan", "Jan", ALERT_CALLED).await;
    assert_eq!(alert["alert"], true);
    eventually(10, "both forwards in Heers", || async {
        app.relayed("heers").await.len() == 2
    })
    .await;
    app.reply_sandbox("veulen", "coord-veulen", "Marc", "/intrekken", &id(&alert))
        .await;
    eventually(10, "both corrections listed", || async {
        overview(&app).await["corrections"]["items"]
            .as_array()
            .map_or(0, Vec::len)
            == 2
    })
    .await;
    let o = overview(&app).await;
    let months = o["corrections"]["months"].as_array().unwrap();
    assert_eq!(months.len(), 1, "{months:?}");
    assert_eq!(months[0][1], 1, "one missed");
    assert_eq!(months[0][2], 1, "one wrongly forwarded");

    let r = get(&app, "/admin/api/corrections.jsonl", None).await;
    assert!(!r.status().is_success(), "no export without the token");
    let r = get(&app, "/admin/api/corrections.jsonl", Some(ADMIN_TOKEN)).await;
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    assert!(!body.contains("0475"), "{body}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mine.jsonl");
    std::fs::write(&file, &body).unwrap();
    let examples = buurtrelay::protocol::corpus::load(&file).expect("the training format");
    assert_eq!(examples.len(), 2);
    let kater = examples.iter().find(|e| e.text.contains("kater")).unwrap();
    assert!(kater.alert && !kater.categories.is_empty(), "{kater:?}");
    let van = examples
        .iter()
        .find(|e| e.text.contains("bestelwagen"))
        .unwrap();
    assert!(!van.alert && van.categories.is_empty(), "{van:?}");
    assert!(van.writer.starts_with("corrections-"), "{}", van.writer);

    let page = get(&app, "/admin", Some(ADMIN_TOKEN))
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("ten onrechte doorgestuurd"), "{page}");
    assert!(page.contains(r#"data-correction="missed""#));
}
