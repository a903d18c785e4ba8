//! The same network on Telegram, against a fake Bot API speaking its JSON.

use serde_json::Value;

use crate::helpers::*;

const SECRET: &str = "s3cret-token";
const VILLAGES: [&str; 4] = ["Veulen", "Heers", "Batsheers", "Opheers"];
const VEULEN: &str = "-1001000000000";
const ALERT: &str =
    "Verdachte grijze bestelwagen rijdt traag door de Kerkstraat, 101 is verwittigd";

async fn setup(server: &str) -> (TestApp, FakeTelegram) {
    let fake = FakeTelegram::start().await;
    let app = spawn_app(&telegram_config_with(&fake, &VILLAGES, server, "")).await;
    (app, fake)
}

fn chats(bodies: &[Value]) -> Vec<i64> {
    let mut v: Vec<i64> = bodies
        .iter()
        .map(|b| b["chat_id"].as_i64().expect("numeric chat_id"))
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn an_alert_fans_out_through_send_message_with_the_exact_chat_ids() {
    let (app, fake) = setup("").await;
    let r = app
        .webhook(
            "bot",
            Some(SECRET),
            tg_update(1, VEULEN, 10, 555, "Jan", ALERT),
        )
        .await;
    assert_eq!(r.status(), 200);
    eventually(5, "three copies", || async { fake.delivered().len() == 3 }).await;
    let sent = fake.delivered();
    assert_eq!(
        chats(&sent),
        vec![-1001000000003, -1001000000002, -1001000000001]
    );
    for b in &sent {
        assert_eq!(b["text"], format!("[Veulen] Jan: {ALERT}"));
        assert!(
            b.get("reply_parameters").is_none(),
            "a copy is a new message"
        );
    }
    assert!(fake.calls().iter().all(|c| c.token == "123456:TESTTOKEN"));
}

#[tokio::test]
async fn the_reminder_is_a_reply_to_the_members_message() {
    let (app, fake) = setup("").await;
    let r = app
        .webhook(
            "bot",
            Some(SECRET),
            tg_update(
                1,
                VEULEN,
                77,
                555,
                "Jan",
                "Inbraak bezig in de Molenstraat, twee mannen met een koevoet aan de achterdeur!",
            ),
        )
        .await;
    assert_eq!(r.status(), 200);
    eventually(5, "reminder + 3 copies", || async {
        fake.delivered().len() == 4
    })
    .await;
    let reminder = fake
        .delivered()
        .into_iter()
        .find(|b| b["chat_id"].as_i64() == Some(-1001000000000))
        .expect("a reminder in Veulen");
    assert_eq!(reminder["reply_parameters"]["message_id"], 77);
    assert!(reminder["text"].as_str().unwrap().contains("Jan"));
}

#[tokio::test]
async fn a_wrong_or_missing_secret_gets_401_and_changes_nothing() {
    let (app, fake) = setup("").await;
    let body = tg_update(1, VEULEN, 10, 555, "Jan", ALERT);
    assert_eq!(app.webhook("bot", None, body.clone()).await.status(), 401);
    assert_eq!(
        app.webhook("bot", Some("wrong"), body.clone())
            .await
            .status(),
        401
    );
    // The same update with the right secret is still new: nothing was stored.
    assert_eq!(app.webhook("bot", Some(SECRET), body).await.status(), 200);
    eventually(5, "three copies", || async { fake.delivered().len() == 3 }).await;
    assert!(
        app.metrics()
            .await
            .contains("buurtrelay_webhook_rejected_total{reason=\"unauthorized\"} 2")
    );
}

#[tokio::test]
async fn bad_input_gets_a_clear_answer() {
    let (app, fake) = setup("max_body_bytes = 2048").await;
    // Malformed JSON: 400 with a one-line reason.
    let r = app
        .webhook("bot", Some(SECRET), "{\"update_id\": 1, \"message\": ")
        .await;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    let reason = v["error"].as_str().unwrap();
    assert!(
        reason.contains("Telegram Update") && !reason.contains('\n'),
        "{reason}"
    );
    // Oversize: 413.
    let big = tg_update(2, VEULEN, 11, 555, "Jan", &"x".repeat(4000));
    assert_eq!(app.webhook("bot", Some(SECRET), big).await.status(), 413);
    // Unknown account: 404.
    assert_eq!(
        app.webhook("nobody", Some(SECRET), "{}").await.status(),
        404
    );
    // A chat that is not in the config: 200, counted, nothing sent.
    let r = app
        .webhook(
            "bot",
            Some(SECRET),
            tg_update(3, "-1009999999999", 12, 555, "Jan", ALERT),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert!(app.metrics().await.contains("outcome=\"unknown_chat\"} 1"));
    // Wrong JSON types are malformed too, not a panic.
    let r = app
        .webhook(
            "bot",
            Some(SECRET),
            r#"{"update_id":"x","message":{"message_id":[]}}"#,
        )
        .await;
    assert_eq!(r.status(), 400);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(fake.calls().is_empty());
}

#[tokio::test]
async fn a_retried_webhook_sends_nothing_twice() {
    let (app, fake) = setup("").await;
    let body = tg_update(1, VEULEN, 10, 555, "Jan", ALERT);
    for _ in 0..3 {
        assert_eq!(
            app.webhook("bot", Some(SECRET), body.clone())
                .await
                .status(),
            200
        );
    }
    eventually(5, "three copies", || async { fake.delivered().len() == 3 }).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(fake.calls().len(), 3);
    assert!(app.metrics().await.contains("outcome=\"duplicate\"} 2"));
}

#[tokio::test]
async fn the_relays_own_messages_are_never_relayed() {
    let (app, fake) = setup("").await;
    // 123456 is the bot id in the token 123456:TESTTOKEN.
    let r = app
        .webhook(
            "bot",
            Some(SECRET),
            tg_update(1, VEULEN, 10, 123456, "BIN Heers", ALERT),
        )
        .await;
    assert_eq!(r.status(), 200);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(fake.calls().is_empty());
}

#[tokio::test]
async fn a_429_pauses_that_chat_for_exactly_the_retry_time() {
    let (app, fake) = setup("").await;
    fake.script(vec![Reply::TooMany(1)]);
    let t0 = std::time::Instant::now();
    app.webhook(
        "bot",
        Some(SECRET),
        tg_update(1, VEULEN, 10, 555, "Jan", ALERT),
    )
    .await;
    eventually(8, "three copies", || async { fake.delivered().len() == 3 }).await;
    let calls = fake.calls();
    let limited = calls.iter().find(|c| !c.answered_ok).expect("the 429");
    let chat = limited.body["chat_id"].clone();
    let retry = calls
        .iter()
        .find(|c| c.body["chat_id"] == chat && c.answered_ok)
        .expect("retried");
    assert!(
        retry.at.duration_since(limited.at) >= std::time::Duration::from_secs(1),
        "waited retry_after"
    );
    assert!(t0.elapsed() < std::time::Duration::from_secs(8));
    assert_eq!(fake.delivered().len(), 3, "every copy once");
}

#[tokio::test]
async fn server_errors_are_retried_until_every_copy_arrives_once() {
    let (app, fake) = setup("").await;
    fake.script(vec![
        Reply::ServerError,
        Reply::ServerError,
        Reply::Ok,
        Reply::ServerError,
    ]);
    app.webhook(
        "bot",
        Some(SECRET),
        tg_update(1, VEULEN, 10, 555, "Jan", ALERT),
    )
    .await;
    eventually(8, "three copies", || async { fake.delivered().len() == 3 }).await;
    assert_eq!(
        chats(&fake.delivered()),
        vec![-1001000000003, -1001000000002, -1001000000001]
    );
}

#[tokio::test]
async fn a_refusal_becomes_a_dead_letter_and_does_not_block_the_others() {
    let (app, fake) = setup("").await;
    fake.script(vec![Reply::Forbidden]);
    app.webhook(
        "bot",
        Some(SECRET),
        tg_update(1, VEULEN, 10, 555, "Jan", ALERT),
    )
    .await;
    eventually(5, "two copies", || async { fake.delivered().len() == 2 }).await;
    eventually(5, "one dead letter", || async {
        app.metrics().await.contains("buurtrelay_dead_letters 1")
    })
    .await;
    let dead = app.state.store.dead_letters(10).unwrap();
    assert!(dead[0].last_error.as_deref().unwrap().contains("kicked"));
}
