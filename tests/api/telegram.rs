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
    let dead = app.state.store.dead_letters(10).await.unwrap();
    assert!(dead[0].last_error.as_deref().unwrap().contains("kicked"));
}

// --- Telegram as groups use it today (issue 15): anonymous admins,
// forwards, linked channels and forum topics, over tests/fixtures/telegram.

const HEERS: i64 = -1001000000001;
const VEULEN_ID: i64 = -1001000000000;
const UNCONFIRMED: &str = "Inbraak bezig in de Molenstraat!";

fn tg_fixture(name: &str) -> Value {
    crate::fakes::fixture(&format!("telegram/{name}"))
}

fn to_chat(sent: &[Value], chat: i64) -> Vec<Value> {
    sent.iter()
        .filter(|b| b["chat_id"].as_i64() == Some(chat))
        .cloned()
        .collect()
}

#[tokio::test]
async fn an_anonymous_admins_alert_goes_out_without_a_reminder_and_their_command_runs() {
    let (app, fake) = setup("").await;
    let mut u = tg_fixture("update-anonymous-admin.json");
    u["message"]["text"] = UNCONFIRMED.into();
    assert_eq!(
        app.webhook("bot", Some(SECRET), u.to_string())
            .await
            .status(),
        200
    );
    // The command after it is the sentinel: its answer is queued after
    // any reminder the alert would have had in Veulen.
    let mut cmd = tg_fixture("update-anonymous-admin.json");
    cmd["update_id"] = 900011.into();
    cmd["message"]["message_id"] = 4111.into();
    cmd["message"]["text"] = "/status".into();
    assert_eq!(
        app.webhook("bot", Some(SECRET), cmd.to_string())
            .await
            .status(),
        200
    );
    eventually(5, "three copies and the answer", || async {
        fake.delivered().len() == 4
    })
    .await;
    let sent = fake.delivered();
    let veulen = to_chat(&sent, VEULEN_ID);
    assert_eq!(veulen.len(), 1, "no reminder to an admin: {veulen:?}");
    assert_eq!(veulen[0]["reply_parameters"]["message_id"], 4111);
    let answer = veulen[0]["text"].as_str().unwrap();
    assert!(answer.starts_with("Laatste meldingen"), "{answer}");
    // The copies name nobody: the custom title is no person's name.
    let copy = to_chat(&sent, HEERS)[0]["text"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        copy.starts_with("[Veulen] Wijkagent: Inbraak bezig"),
        "{copy}"
    );
}

#[tokio::test]
async fn anonymous_admins_can_be_members_who_get_the_reminder() {
    let fake = FakeTelegram::start().await;
    let config = telegram_config(&fake, &VILLAGES, "anonymous_admins = \"member\"");
    let app = spawn_app(&config).await;
    let mut u = tg_fixture("update-anonymous-admin.json");
    u["message"]["text"] = UNCONFIRMED.into();
    let r = app.webhook("bot", Some(SECRET), u.to_string()).await;
    assert_eq!(r.status(), 200);
    eventually(5, "three copies and a reminder", || async {
        fake.delivered().len() == 4
    })
    .await;
    let veulen = to_chat(&fake.delivered(), VEULEN_ID);
    assert_eq!(veulen[0]["reply_parameters"]["message_id"], 4101);
}

#[tokio::test]
async fn a_forwarded_alert_is_marked_and_a_linked_channels_post_stays_home() {
    let (app, fake) = setup("").await;
    for name in ["update-automatic-forward.json", "update-forwarded.json"] {
        let r = app
            .webhook("bot", Some(SECRET), tg_fixture(name).to_string())
            .await;
        assert_eq!(r.status(), 200, "{name}");
    }
    // Sentinel: a member's unconfirmed alert; its reminder in Veulen comes
    // after any the forward would have had.
    let r = app
        .webhook(
            "bot",
            Some(SECRET),
            tg_update(900020, VEULEN, 4120, 558, "An", UNCONFIRMED),
        )
        .await;
    assert_eq!(r.status(), 200);
    eventually(5, "the sentinel's reminder", || async {
        to_chat(&fake.delivered(), VEULEN_ID)
            .iter()
            .any(|b| b["reply_parameters"]["message_id"] == 4120)
    })
    .await;
    let sent = fake.delivered();
    let veulen = to_chat(&sent, VEULEN_ID);
    assert_eq!(veulen.len(), 1, "no reminder to who forwarded: {veulen:?}");
    let copies: Vec<String> = to_chat(&sent, HEERS)
        .iter()
        .map(|b| b["text"].as_str().unwrap().to_string())
        .collect();
    assert!(
        copies
            .iter()
            .any(|t| t.starts_with("[Veulen] Jan: ↪️ Verdachte man belt aan")),
        "{copies:?}"
    );
    assert!(
        !copies
            .iter()
            .any(|t| t.contains("Karel") || t.contains("inbraakgolf")),
        "{copies:?}"
    );
}

/// Veulen and Heers are forum groups: copies to Heers go to its topic 3
/// (its General is closed); Batsheers is an ordinary group.
fn forum_config(fake: &FakeTelegram) -> String {
    telegram_config(fake, &VILLAGES, "").replacen(
        "chat = \"-1001000000001\"\n",
        "chat = \"-1001000000001\"\ntopic = 3\n",
        1,
    )
}

#[tokio::test]
async fn in_forums_copies_go_to_the_groups_topic_and_replies_stay_in_the_topic_they_answer() {
    let fake = FakeTelegram::start().await;
    fake.close_general(HEERS);
    let app = spawn_app(&forum_config(&fake)).await;
    // Piet reports in Veulen's topic 7, without saying he called.
    let u = tg_fixture("update-forum-topic-message.json");
    let r = app.webhook("bot", Some(SECRET), u.to_string()).await;
    assert_eq!(r.status(), 200);
    eventually(5, "three copies and the reminder", || async {
        fake.delivered().len() == 4
    })
    .await;
    let sent = fake.delivered();
    let reminder = &to_chat(&sent, VEULEN_ID)[0];
    assert_eq!(reminder["message_thread_id"], 7, "{reminder}");
    assert_eq!(reminder["reply_parameters"]["message_id"], 4104);
    let heers = &to_chat(&sent, HEERS)[0];
    assert_eq!(heers["message_thread_id"], 3, "{heers}");
    let batsheers = &to_chat(&sent, -1001000000002)[0];
    assert!(batsheers.get("message_thread_id").is_none(), "{batsheers}");
    // A reply to the copy in Heers' topic 3 reaches the original in
    // Veulen's topic 7: the thread follows across topics.
    let copy_text = heers["text"].as_str().unwrap();
    let copy_id = fake.id_of(HEERS, copy_text).expect("the copy's id");
    let mut reply: Value = serde_json::from_str(&tg_reply(
        900030,
        "-1001000000001",
        5001,
        600,
        "Els",
        "Ik zie hem ook, hij rijdt richting Opheers",
        copy_id,
        copy_text,
    ))
    .unwrap();
    reply["message"]["message_thread_id"] = 3.into();
    reply["message"]["is_topic_message"] = true.into();
    let r = app.webhook("bot", Some(SECRET), reply.to_string()).await;
    assert_eq!(r.status(), 200);
    eventually(5, "the follow-up under the original", || async {
        to_chat(&fake.delivered(), VEULEN_ID).len() == 2
    })
    .await;
    let followup = to_chat(&fake.delivered(), VEULEN_ID)
        .into_iter()
        .find(|b| b["reply_parameters"]["message_id"] == 4104 && b != reminder)
        .expect("a follow-up replying to the original");
    assert_eq!(followup["message_thread_id"], 7, "{followup}");
    assert!(
        followup["text"]
            .as_str()
            .unwrap()
            .starts_with("[Heers] Els: Ik zie hem ook"),
        "{followup}"
    );
    assert!(
        fake.calls().iter().all(|c| c.answered_ok),
        "nothing refused with TOPIC_CLOSED"
    );
}

#[tokio::test]
async fn a_photos_caption_travels_and_the_rest_of_its_album_stays_home() {
    let (app, fake) = setup("").await;
    for name in [
        "update-album-second-photo.json",
        "update-photo-caption.json",
    ] {
        let r = app
            .webhook("bot", Some(SECRET), tg_fixture(name).to_string())
            .await;
        assert_eq!(r.status(), 200, "{name}");
    }
    eventually(5, "three copies of the caption", || async {
        fake.delivered().len() == 3
    })
    .await;
    for b in fake.delivered() {
        let t = b["text"].as_str().unwrap();
        assert!(t.starts_with("[Veulen] Marc: Deze wagen staat"), "{t}");
    }
}
