//! The playground's endpoints: the page, the decision preview
//! (`/api/simulate`) and the live feed (`/sandbox/events`).

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::*;

const ALERT_UNCALLED: &str = "Verdachte grijze bestelwagen rijdt traag door de Kerkstraat";

async fn simulate(app: &TestApp, body: Value) -> reqwest::Response {
    app.client
        .post(format!("{}/api/simulate", app.addr))
        .json(&body)
        .send()
        .await
        .expect("simulate")
}

#[tokio::test]
async fn the_playground_shows_every_sandbox_village_as_a_column_in_the_network_language() {
    let app = spawn_app(&heers_config_with_sandbox()).await;
    let r = app
        .client
        .get(format!("{}/", app.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let page = r.text().await.unwrap();
    assert!(page.contains(r#"<html lang="nl">"#));
    assert!(page.contains(">Versturen<"), "Dutch labels");
    for g in OTHER_VILLAGES.iter().chain(&["veulen"]) {
        assert!(page.contains(&format!(r#"data-group="{g}""#)), "column {g}");
    }
    assert!(!page.contains("<script>"), "no inline script");
    for asset in ["style.css", "playground.js", "admin.js"] {
        let r = app
            .client
            .get(format!("{}/assets/{asset}", app.addr))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{asset}");
    }
}

#[tokio::test]
async fn a_french_network_gets_french_labels() {
    let cfg = heers_config_with_sandbox().replace("language = \"nl\"", "language = \"fr\"");
    let app = spawn_app(&cfg).await;
    let page = app
        .client
        .get(format!("{}/", app.addr))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains(r#"<html lang="fr">"#));
    assert!(page.contains(">Envoyer<"));
    let info: Value = app
        .client
        .get(format!("{}/api/playground", app.addr))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["labels"]["reply"], "Répondre");
}

#[tokio::test]
async fn a_network_without_sandbox_groups_keeps_a_plain_index() {
    let fake = FakeTelegram::start().await;
    let app = spawn_app(&telegram_config(&fake, &["Veulen", "Heers"], "")).await;
    let r = app
        .client
        .get(format!("{}/", app.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = r.text().await.unwrap();
    assert!(text.contains("veulen") && text.contains("/admin"), "{text}");
}

#[tokio::test]
async fn the_playground_offers_members_and_the_villages_coordinators_as_senders() {
    let app = spawn_app(&heers_config_with_sandbox()).await;
    let info: Value = app
        .client
        .get(format!("{}/api/playground", app.addr))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let groups = info["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 11);
    let veulen = groups.iter().find(|g| g["id"] == "veulen").unwrap();
    assert_eq!(veulen["name"], "Veulen");
    assert_eq!(veulen["coordinators"], json!(["coord-veulen"]));
    assert_eq!(veulen["police"], json!(["wijkagent-heers"]));
    assert!(!veulen["members"].as_array().unwrap().is_empty());
    let commands: Vec<&str> = info["commands"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["usage"].as_str())
        .collect();
    assert_eq!(commands, ["/intrekken", "/doorsturen", "/status"]);
    assert_eq!(info["labels"]["reply"], "Antwoorden");
}

#[tokio::test]
async fn simulate_says_what_the_relay_would_do_and_stores_nothing() {
    let app = spawn_app(&heers_config_with_sandbox()).await;
    let r = simulate(
        &app,
        json!({"group": "veulen", "sender": "jan", "sender_name": "Jan Peeters", "text": ALERT_UNCALLED}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let d: Value = r.json().await.unwrap();
    assert_eq!(d["group"], "veulen");
    assert_eq!(d["alert"], true);
    assert_eq!(d["confirmed"], false);
    assert_eq!(d["role"], "member");
    assert!(
        d["categories"]
            .as_array()
            .unwrap()
            .contains(&json!("suspicious_vehicle")),
        "{d}"
    );
    let actions = d["actions"].as_array().unwrap();
    assert_eq!(actions[0]["kind"], "remind");
    assert_eq!(actions[0]["group"], "veulen");
    assert!(actions[0]["text"].as_str().unwrap().contains("101"));
    let forwards: Vec<&Value> = actions.iter().filter(|a| a["kind"] == "forward").collect();
    assert_eq!(forwards.len(), 10);
    assert!(
        forwards[0]["text"]
            .as_str()
            .unwrap()
            .starts_with("[Veulen] Jan: Verdachte")
    );
    assert!(actions.iter().all(|a| a.get("cooldown_key").is_none()));

    // Nothing was posted, queued or remembered.
    assert!(app.sandbox_messages("veulen").await.is_empty());
    assert!(app.state.store.queue_stats().await.unwrap().is_empty());
    assert!(app.state.store.recent_alerts(10).await.unwrap().is_empty());
}

#[tokio::test]
async fn simulate_shows_the_coordinator_path_and_chit_chat() {
    let app = spawn_app(&heers_config_with_sandbox()).await;
    let d: Value = simulate(
        &app,
        json!({"group": "veulen", "sender": "coord-veulen", "text": ALERT_UNCALLED}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(d["role"], "coordinator");
    assert!(
        d["actions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["kind"] == "forward")
    );

    let d: Value = simulate(&app, json!({"group": "veulen", "text": "Onze kat is weg"}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(d["alert"], false);
    assert_eq!(d["actions"][0]["kind"], "none");
    assert!(d["actions"][0]["reason"].as_str().is_some());
}

#[tokio::test]
async fn simulate_refuses_unknown_groups_empty_texts_and_unknown_fields() {
    let app = spawn_app(&heers_config_with_sandbox()).await;
    let r = simulate(
        &app,
        json!({"group": "nergens", "sender": "jan", "text": "x"}),
    )
    .await;
    assert_eq!(r.status(), 404);
    let r = simulate(
        &app,
        json!({"group": "veulen", "sender": "jan", "text": "  "}),
    )
    .await;
    assert_eq!(r.status(), 400);
    let r = simulate(
        &app,
        json!({"group": "veulen", "sender": "jan", "text": "x", "store": true}),
    )
    .await;
    assert_eq!(r.status(), 400);
    let r: Value = r.json().await.unwrap();
    assert!(r["error"].as_str().unwrap().contains("store"), "{r}");
}

#[tokio::test]
async fn simulate_for_a_group_on_a_real_platform_needs_the_admin_token() {
    let fake = FakeTelegram::start().await;
    let token = "a-long-enough-admin-token";
    let app = spawn_app(&telegram_config(
        &fake,
        &["Veulen", "Heers"],
        &format!("[admin]\ntoken = \"{token}\"\n"),
    ))
    .await;
    let body = json!({"group": "veulen", "sender": "42", "text": ALERT_UNCALLED});
    assert_eq!(simulate(&app, body.clone()).await.status(), 401);
    let r = app
        .client
        .post(format!("{}/api/simulate", app.addr))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(fake.calls().is_empty(), "a simulation sends nothing");
}

/// Reads server-sent events until one matches, or fails after `secs`.
async fn read_until(
    resp: &mut reqwest::Response,
    buf: &mut String,
    secs: u64,
    want: impl Fn(&str) -> bool,
) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        while let Some(end) = buf.find("\n\n") {
            let event: String = buf.drain(..end + 2).collect();
            if want(&event) {
                return event;
            }
        }
        let chunk = tokio::time::timeout_at(deadline, resp.chunk())
            .await
            .unwrap_or_else(|_| panic!("no matching event within {secs} s; unread: {buf:?}"))
            .expect("stream")
            .expect("stream open");
        buf.push_str(&String::from_utf8_lossy(&chunk));
    }
}

#[tokio::test]
async fn the_live_feed_shows_the_members_post_and_the_relayed_copy() {
    let app = spawn_app(&heers_config_with_sandbox()).await;
    let mut events = app
        .client
        .get(format!("{}/sandbox/events", app.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(events.status(), 200);
    assert!(
        events.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut buf = String::new();
    read_until(&mut events, &mut buf, 5, |e| e.contains("event: ready")).await;

    app.post_sandbox(
        "veulen",
        "jan",
        "Jan Peeters",
        "Verdachte grijze bestelwagen rijdt traag door de Kerkstraat, 101 is verwittigd",
    )
    .await;
    let own = read_until(&mut events, &mut buf, 5, |e| e.contains("event: message")).await;
    let data = |e: &str| -> Value {
        let line = e
            .lines()
            .find_map(|l| l.strip_prefix("data: "))
            .expect("data line");
        serde_json::from_str(line).expect("json data")
    };
    let own = data(&own);
    assert_eq!(own["group"], "veulen");
    assert_eq!(own["message"]["from_relay"], false);

    let copy = read_until(&mut events, &mut buf, 10, |e| {
        e.contains(r#""group":"heers""#)
    })
    .await;
    let copy = data(&copy);
    assert_eq!(copy["message"]["from_relay"], true);
    assert!(
        copy["message"]["text"]
            .as_str()
            .unwrap()
            .starts_with("[Veulen] Jan: Verdachte")
    );
    // The store has it too: the feed only announces what is kept.
    assert!(
        app.relayed("heers")
            .await
            .iter()
            .any(|m| m["id"] == copy["message"]["id"])
    );
}

#[tokio::test]
async fn an_open_live_feed_does_not_hold_up_shutdown() {
    let mut app = spawn_app(&heers_config_with_sandbox()).await;
    let mut events = app
        .client
        .get(format!("{}/sandbox/events", app.addr))
        .send()
        .await
        .unwrap();
    let mut buf = String::new();
    read_until(&mut events, &mut buf, 5, |e| e.contains("event: ready")).await;
    tokio::time::timeout(Duration::from_secs(10), app.stop_now())
        .await
        .expect("stops although a browser tab is listening");
}

#[tokio::test]
async fn the_live_feed_keeps_showing_copies_after_a_config_reload() {
    let app = spawn_app(&heers_config_with_sandbox()).await;
    let mut events = app
        .client
        .get(format!("{}/sandbox/events", app.addr))
        .send()
        .await
        .unwrap();
    let mut buf = String::new();
    read_until(&mut events, &mut buf, 5, |e| e.contains("event: ready")).await;
    // The reload builds new sandbox platforms: they must publish on the same feed.
    let text = std::fs::read_to_string(&app.config_path)
        .unwrap()
        .replace("name = \"Heers\"", "name = \"Heers-Centrum\"");
    std::fs::write(&app.config_path, text).unwrap();
    assert!(buurtrelay::startup::reload(&app.state, "test"));
    app.post_sandbox(
        "veulen",
        "jan",
        "Jan",
        "Verdachte grijze bestelwagen rijdt traag door de Kerkstraat, 101 is verwittigd",
    )
    .await;
    read_until(&mut events, &mut buf, 10, |e| {
        e.contains(r#""group":"heers""#) && e.contains(r#""from_relay":true"#)
    })
    .await;
}
