//! What coordinators can do (retract, force a forward, see the status), in
//! every language and with Telegram's `@botname`; and held alerts released
//! early by the sender or a coordinator, across restarts.

use std::time::Duration;

use serde_json::Value;

use crate::helpers::*;
use crate::helpers::{OTHER_VILLAGES as VILLAGES, VEULEN_ALERT as ALERT, VEULEN_COPY as COPY};

const UNCALLED: &str = "Verdachte man loert in de tuinen van de Dorpsstraat";

fn id(m: &Value) -> String {
    m["message"]["id"].as_str().unwrap_or_default().to_string()
}

async fn alert_everywhere(app: &TestApp) -> String {
    let a = app
        .post_sandbox("veulen", "jan", "Jan Peeters", ALERT)
        .await;
    for v in VILLAGES {
        eventually(5, &format!("the copy in {v}"), || async {
            app.relayed(v).await.len() == 1
        })
        .await;
    }
    id(&a)
}

/// The relay's answers in a group that reply to message `to`.
async fn answers_to(app: &TestApp, group: &str, to: &str) -> Vec<String> {
    app.relayed(group)
        .await
        .into_iter()
        .filter(|m| m["reply_to"] == to)
        .map(|m| text(&m).to_string())
        .collect()
}

// ------------------------------------------------------------------ retract

#[tokio::test]
async fn a_coordinator_retracts_an_alert_from_a_copy_and_every_copy_disappears() {
    let app = spawn_app(&heers_config_with_sandbox()).await;
    let original = alert_everywhere(&app).await;
    let heers_copy = app.relayed("heers").await[0]["id"]
        .as_str()
        .expect("id")
        .to_string();
    let cmd = app
        .reply_sandbox("heers", "coord-heers", "Marc", "/intrekken", &heers_copy)
        .await;
    for v in VILLAGES.iter().filter(|v| **v != "heers") {
        eventually(5, &format!("the copy gone from {v}"), || async {
            app.relayed(v).await.is_empty()
        })
        .await;
    }
    // Heers: its copy gone, the coordinator answered.
    eventually(5, "the answer in Heers", || async {
        answers_to(&app, "heers", &id(&cmd)).await.len() == 1
    })
    .await;
    let answer = &answers_to(&app, "heers", &id(&cmd)).await[0];
    assert!(answer.starts_with("Ingetrokken"), "{answer}");
    assert!(app.relayed("heers").await.iter().all(|m| text(m) != COPY));
    // Veulen hears it under the original.
    eventually(5, "the notice in Veulen", || async {
        answers_to(&app, "veulen", &original).await.len() == 1
    })
    .await;
    assert!(answers_to(&app, "veulen", &original).await[0].contains("ingetrokken"));
}

#[tokio::test]
async fn a_member_who_tries_a_command_gets_a_polite_answer_and_nothing_changes() {
    let app = spawn_app(&heers_config_with_sandbox()).await;
    let original = alert_everywhere(&app).await;
    let cmd = app
        .reply_sandbox("veulen", "piet", "Piet", "/intrekken", &original)
        .await;
    eventually(5, "the polite answer", || async {
        answers_to(&app, "veulen", &id(&cmd)).await.len() == 1
    })
    .await;
    let answer = &answers_to(&app, "veulen", &id(&cmd)).await[0];
    assert_eq!(
        answer,
        "Sorry Piet, /intrekken is voorbehouden aan de coördinatoren van deze groep."
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    for v in VILLAGES {
        assert_eq!(app.relayed(v).await.len(), 1, "{v} keeps its copy");
    }
}

// ------------------------------------------------------------------ forward

#[tokio::test]
async fn a_coordinator_forces_a_forward_of_a_message_the_relay_let_pass() {
    let app = spawn_app(&heers_config_with_sandbox()).await;
    let chat = app
        .post_sandbox(
            "veulen",
            "piet",
            "Piet Claes",
            "Onze grijze kater met rode halsband is sinds gisteren weg",
        )
        .await;
    assert_eq!(chat["alert"], false);
    let cmd = app
        .reply_sandbox("veulen", "coord-veulen", "Marc", "/doorsturen", &id(&chat))
        .await;
    for v in VILLAGES {
        eventually(5, &format!("the forward in {v}"), || async {
            app.relayed(v).await.len() == 1
        })
        .await;
        assert_eq!(
            text(&app.relayed(v).await[0]),
            "[Veulen] Piet: Onze grijze kater met rode halsband is sinds gisteren weg"
        );
    }
    eventually(5, "the answer", || async {
        answers_to(&app, "veulen", &id(&cmd)).await == ["Doorgestuurd naar 10 groepen."]
    })
    .await;
    // The forwarded message is a thread now: a reply to it follows.
    app.reply_sandbox("veulen", "piet", "Piet", "Hij is terug thuis!", &id(&chat))
        .await;
    eventually(5, "the all-clear in Heers", || async {
        app.relayed("heers").await.len() == 2
    })
    .await;
    assert_eq!(
        text(&app.relayed("heers").await[1]),
        "✅ [Veulen] Piet: Hij is terug thuis!"
    );
}

#[tokio::test]
async fn forwarding_an_alert_twice_is_answered_not_repeated() {
    let app = spawn_app(&heers_config_with_sandbox()).await;
    let original = alert_everywhere(&app).await;
    let cmd = app
        .reply_sandbox("veulen", "coord-veulen", "Marc", "/doorsturen", &original)
        .await;
    eventually(5, "the answer", || async {
        answers_to(&app, "veulen", &id(&cmd)).await
            == ["Deze melding werd al doorgestuurd naar 10 groepen."]
    })
    .await;
    assert_eq!(app.relayed("heers").await.len(), 1);
}

// ------------------------------------------------------------------ status

#[tokio::test]
async fn status_shows_the_last_alerts_and_where_each_went() {
    let app = spawn_app(&heers_config_with_sandbox()).await;
    alert_everywhere(&app).await;
    // A French-speaking coordinator types the French name: understood, and
    // answered in the group's language.
    let cmd = app
        .post_sandbox("heks", "coord-heks", "Luc", "/statut")
        .await;
    eventually(5, "the status", || async {
        answers_to(&app, "heks", &id(&cmd)).await.len() == 1
    })
    .await;
    let status = &answers_to(&app, "heks", &id(&cmd)).await[0];
    assert!(
        status.starts_with("Laatste meldingen in het netwerk:"),
        "{status}"
    );
    assert!(
        status.contains("• Veulen, ") && status.contains("Verdachte grijze bestelwagen"),
        "{status}"
    );
    assert!(
        status.contains("Heers ✓") && status.contains("Vechmaal ✓"),
        "{status}"
    );
}

// ------------------------------------------------------------------ Telegram

const SECRET: &str = "s3cret-token";
const VEULEN: &str = "-1001000000000";
const COPY_CHATS: [i64; 3] = [-1001000000001, -1001000000002, -1001000000003];

async fn telegram(extra: &str) -> (TestApp, FakeTelegram) {
    let fake = FakeTelegram::start().await;
    let app = spawn_app(&telegram_config(
        &fake,
        &["Veulen", "Heers", "Batsheers", "Opheers"],
        extra,
    ))
    .await;
    app.webhook(
        "bot",
        Some(SECRET),
        tg_update(1, VEULEN, 10, 555, "Jan", ALERT),
    )
    .await;
    eventually(5, "three copies", || async {
        COPY_CHATS.iter().all(|c| fake.id_of(*c, COPY).is_some())
    })
    .await;
    (app, fake)
}

#[tokio::test]
async fn on_telegram_retract_with_the_bot_name_deletes_every_copy() {
    let (app, fake) = telegram("").await;
    app.webhook(
        "bot",
        Some(SECRET),
        tg_reply(
            2,
            VEULEN,
            11,
            9000,
            "Marc",
            "/intrekken@BinHeersBot",
            10,
            ALERT,
        ),
    )
    .await;
    eventually(5, "three deletions", || async { fake.changes().len() == 3 }).await;
    for c in fake.changes() {
        assert_eq!(c.method, "deleteMessage");
        let chat = c.body["chat_id"].as_i64().expect("chat");
        assert_eq!(c.body["message_id"], fake.id_of(chat, COPY).expect("copy"));
    }
    eventually(5, "the answer in Veulen", || async {
        fake.delivered().iter().any(|b| {
            b["chat_id"] == -1001000000000i64
                && b["reply_parameters"]["message_id"] == 11
                && b["text"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("Ingetrokken: de kopieën in 3 groepen"))
        })
    })
    .await;
}

#[tokio::test]
async fn where_telegram_cannot_delete_a_copy_a_retraction_replies_to_it() {
    let (app, fake) = telegram("").await;
    fake.script_changes(vec![
        Reply::BadRequest("Bad Request: message can't be deleted"),
        Reply::BadRequest("Bad Request: message can't be deleted"),
        Reply::BadRequest("Bad Request: message can't be deleted"),
    ]);
    app.webhook(
        "bot",
        Some(SECRET),
        tg_reply(2, VEULEN, 11, 9000, "Marc", "/intrekken", 10, ALERT),
    )
    .await;
    let notice =
        "⚠️ Deze melding werd ingetrokken door een coördinator: niet langer van toepassing.";
    for chat in COPY_CHATS {
        eventually(5, "a retraction under each copy", || async {
            fake.delivered().iter().any(|b| {
                b["chat_id"] == chat
                    && b["text"] == notice
                    && b["reply_parameters"]["message_id"] == fake.id_of(chat, COPY).unwrap_or(-1)
            })
        })
        .await;
    }
}

#[tokio::test]
async fn a_non_coordinator_on_telegram_cannot_retract() {
    let (app, fake) = telegram("").await;
    app.webhook(
        "bot",
        Some(SECRET),
        tg_reply(2, VEULEN, 11, 555, "Jan", "/intrekken", 10, ALERT),
    )
    .await;
    eventually(5, "the polite answer", || async {
        fake.delivered().iter().any(|b| {
            b["reply_parameters"]["message_id"] == 11
                && b["text"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("Sorry Jan,"))
        })
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(fake.changes().is_empty());
}

// ------------------------------------------------------------------ hold

fn hold_config(hold_for: &str) -> String {
    heers_config_with_sandbox()
        .replace("unconfirmed = \"forward\"", "unconfirmed = \"hold\"")
        .replace("hold_for = \"15m\"", &format!("hold_for = \"{hold_for}\""))
}

async fn nothing_forwarded(app: &TestApp) {
    tokio::time::sleep(Duration::from_millis(300)).await;
    for v in VILLAGES {
        assert!(app.relayed(v).await.is_empty(), "{v}: still held");
    }
}

async fn released_once(app: &TestApp, expect: &str) {
    for v in VILLAGES {
        eventually(5, &format!("the copy in {v}"), || async {
            app.relayed(v).await.len() == 1
        })
        .await;
        assert_eq!(text(&app.relayed(v).await[0]), expect, "{v}");
    }
}

#[tokio::test]
async fn the_senders_reply_that_101_was_called_releases_the_hold_at_once() {
    let app = spawn_app(&hold_config("15m")).await;
    let held = app.post_sandbox("veulen", "piet", "Piet", UNCALLED).await;
    nothing_forwarded(&app).await;
    app.reply_sandbox("veulen", "piet", "Piet", "101 gebeld", &id(&held))
        .await;
    // Without the "not said whether 101 was called" note.
    released_once(&app, &format!("[Veulen] Piet: {UNCALLED}")).await;
}

#[tokio::test]
async fn the_senders_next_message_ja_gebeld_releases_the_hold() {
    let app = spawn_app(&hold_config("15m")).await;
    app.post_sandbox("veulen", "piet", "Piet", UNCALLED).await;
    nothing_forwarded(&app).await;
    // Someone else's "gedaan" is not Piet's confirmation.
    app.post_sandbox("veulen", "an", "An", "gedaan").await;
    nothing_forwarded(&app).await;
    app.post_sandbox("veulen", "piet", "Piet", "ja, gebeld")
        .await;
    released_once(&app, &format!("[Veulen] Piet: {UNCALLED}")).await;
}

#[tokio::test]
async fn a_coordinators_doorsturen_releases_the_hold() {
    let app = spawn_app(&hold_config("15m")).await;
    let held = app.post_sandbox("veulen", "piet", "Piet", UNCALLED).await;
    nothing_forwarded(&app).await;
    app.reply_sandbox("veulen", "coord-veulen", "Marc", "/doorsturen", &id(&held))
        .await;
    released_once(
        &app,
        &format!("[Veulen] Piet: {UNCALLED}\n(niet vermeld of 101 al gebeld werd)"),
    )
    .await;
}

#[tokio::test]
async fn a_follow_up_to_a_held_alert_waits_and_comes_after_its_copy() {
    let app = spawn_app(&hold_config("15m")).await;
    let held = app.post_sandbox("veulen", "piet", "Piet", UNCALLED).await;
    app.reply_sandbox(
        "veulen",
        "an",
        "An",
        "Hij loopt nu richting de kerk",
        &id(&held),
    )
    .await;
    nothing_forwarded(&app).await;
    app.reply_sandbox(
        "veulen",
        "piet",
        "Piet",
        "Politie is verwittigd",
        &id(&held),
    )
    .await;
    for v in VILLAGES {
        eventually(5, &format!("copy and follow-up in {v}"), || async {
            app.relayed(v).await.len() == 2
        })
        .await;
        let r = app.relayed(v).await;
        assert_eq!(text(&r[0]), format!("[Veulen] Piet: {UNCALLED}"));
        assert_eq!(text(&r[1]), "[Veulen] An: Hij loopt nu richting de kerk");
        assert_eq!(r[1]["reply_to"], r[0]["id"], "{v}");
    }
}

#[tokio::test]
async fn a_false_alarm_before_the_release_stays_in_its_group() {
    let app = spawn_app(&hold_config("1s")).await;
    let held = app.post_sandbox("veulen", "piet", "Piet", UNCALLED).await;
    app.reply_sandbox(
        "veulen",
        "piet",
        "Piet",
        "Vals alarm, het was mijn zoon",
        &id(&held),
    )
    .await;
    // Past hold_for: the dropped hold does not come back.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    for v in VILLAGES {
        assert!(app.relayed(v).await.is_empty(), "{v}");
    }
}

#[tokio::test]
async fn a_hold_survives_a_restart_and_its_confirmation_releases_it_once() {
    let app = spawn_app(&hold_config("3s")).await;
    let held = app.post_sandbox("veulen", "piet", "Piet", UNCALLED).await;
    let app = app.restart().await;
    nothing_forwarded(&app).await;
    app.reply_sandbox("veulen", "piet", "Piet", "101 gebeld", &id(&held))
        .await;
    released_once(&app, &format!("[Veulen] Piet: {UNCALLED}")).await;
    // Past hold_for, and after another restart: still one copy each.
    let app = app.restart().await;
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    for v in VILLAGES {
        assert_eq!(app.relayed(v).await.len(), 1, "{v}");
    }
}

#[tokio::test]
async fn a_held_alert_whose_time_runs_out_during_a_restart_goes_out_once() {
    let app = spawn_app(&hold_config("1s")).await;
    app.post_sandbox("veulen", "piet", "Piet", UNCALLED).await;
    let app = app.restart().await;
    released_once(
        &app,
        &format!("[Veulen] Piet: {UNCALLED}\n(niet vermeld of 101 al gebeld werd)"),
    )
    .await;
    // A late confirmation changes nothing: the hold is over.
    app.post_sandbox("veulen", "piet", "Piet", "101 gebeld")
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    for v in VILLAGES {
        assert_eq!(app.relayed(v).await.len(), 1, "{v}");
    }
}
