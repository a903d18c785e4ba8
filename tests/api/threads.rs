//! An alert is a living thread across every group: follow-ups, corrections
//! and edits reach every copy; the same incident fans out once; a group
//! that moves to a new chat id keeps its threads. On the sandbox and on
//! Telegram, with restarts in the middle.

use serde_json::Value;

use crate::helpers::*;
use crate::helpers::{OTHER_VILLAGES as VILLAGES, VEULEN_ALERT as ALERT, VEULEN_COPY as COPY};

fn id(m: &Value) -> String {
    m["id"].as_str().unwrap_or_default().to_string()
}

/// Posts the alert in Veulen and waits for its copy in every village;
/// returns the original's id.
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
    a["message"]["id"].as_str().expect("id").to_string()
}

/// The relay's messages in a group after its copy of the alert.
async fn after_copy(app: &TestApp, group: &str) -> Vec<Value> {
    app.relayed(group)
        .await
        .into_iter()
        .filter(|m| text(m) != COPY)
        .collect()
}

async fn copy_in(app: &TestApp, group: &str) -> Value {
    app.relayed(group)
        .await
        .into_iter()
        .find(|m| text(m) == COPY)
        .expect("the copy")
}

#[tokio::test]
async fn a_reply_to_an_alert_reaches_every_copy_as_a_reply_to_that_copy() {
    let app = spawn_app(&heers_config_with_sandbox()).await;
    let original = alert_everywhere(&app).await;
    app.reply_sandbox(
        "veulen",
        "an",
        "An Claes",
        "Hij rijdt nu richting de kerk, wit busje met een ladder op het dak",
        &original,
    )
    .await;
    for v in VILLAGES {
        eventually(5, &format!("the follow-up in {v}"), || async {
            after_copy(&app, v).await.len() == 1
        })
        .await;
        let copy = copy_in(&app, v).await;
        let f = &after_copy(&app, v).await[0];
        assert_eq!(
            text(f),
            "[Veulen] An: Hij rijdt nu richting de kerk, wit busje met een ladder op het dak"
        );
        assert_eq!(f["reply_to"], id(&copy), "a reply to {v}'s own copy");
    }
    // Nothing goes back to Veulen: the follow-up was written there.
    assert!(app.relayed("veulen").await.is_empty());
}

#[tokio::test]
async fn a_reply_to_a_copy_goes_back_to_the_original_and_to_every_other_copy() {
    let app = spawn_app(&heers_config_with_sandbox()).await;
    let original = alert_everywhere(&app).await;
    let heers_copy = copy_in(&app, "heers").await;
    app.reply_sandbox(
        "heers",
        "an",
        "An",
        "Ik zie die wagen nu hier in de Stationsstraat",
        &id(&heers_copy),
    )
    .await;
    eventually(5, "the follow-up in Veulen", || async {
        app.relayed("veulen").await.len() == 1
    })
    .await;
    let back = &app.relayed("veulen").await[0];
    assert_eq!(
        text(back),
        "[Heers] An: Ik zie die wagen nu hier in de Stationsstraat"
    );
    assert_eq!(
        back["reply_to"],
        original.as_str(),
        "a reply to the original"
    );
    for v in VILLAGES.iter().filter(|v| **v != "heers") {
        eventually(5, &format!("the follow-up in {v}"), || async {
            after_copy(&app, v).await.len() == 1
        })
        .await;
        let copy = copy_in(&app, v).await;
        assert_eq!(after_copy(&app, v).await[0]["reply_to"], id(&copy));
    }
    assert!(
        after_copy(&app, "heers").await.is_empty(),
        "not back to Heers"
    );
}

#[tokio::test]
async fn a_reply_to_a_follow_up_joins_the_same_thread() {
    let app = spawn_app(&heers_config_with_sandbox()).await;
    let original = alert_everywhere(&app).await;
    let first = app
        .reply_sandbox(
            "veulen",
            "an",
            "An",
            "Hij is nu aan de kerk gestopt",
            &original,
        )
        .await;
    eventually(5, "the follow-up in Heers", || async {
        after_copy(&app, "heers").await.len() == 1
    })
    .await;
    // A reply to An's follow-up, in Veulen, is a follow-up too.
    app.reply_sandbox(
        "veulen",
        "piet",
        "Piet",
        "Ik zie hem ook staan, twee mannen stappen uit",
        first["message"]["id"].as_str().expect("id"),
    )
    .await;
    eventually(5, "the second follow-up in Heers", || async {
        after_copy(&app, "heers").await.len() == 2
    })
    .await;
    let copy = copy_in(&app, "heers").await;
    assert_eq!(after_copy(&app, "heers").await[1]["reply_to"], id(&copy));
}

#[tokio::test]
async fn a_thank_you_stays_in_its_group() {
    let app = spawn_app(&heers_config_with_sandbox()).await;
    let original = alert_everywhere(&app).await;
    for t in ["Bedankt voor de info!", "👍👍", "Waar precies?"] {
        let a = app.reply_sandbox("veulen", "an", "An", t, &original).await;
        assert_eq!(a["actions"][0]["kind"], "none", "{t}: {a}");
    }
    // A marker follow-up proves the workers ran past them.
    app.reply_sandbox("veulen", "an", "An", "Hij is weg richting Heks", &original)
        .await;
    eventually(5, "the marker in Heers", || async {
        after_copy(&app, "heers").await.len() == 1
    })
    .await;
    assert_eq!(
        text(&after_copy(&app, "heers").await[0]),
        "[Veulen] An: Hij is weg richting Heks"
    );
}

#[tokio::test]
async fn a_correction_reaches_every_copy_as_an_all_clear() {
    let app = spawn_app(&heers_config_with_sandbox()).await;
    let original = alert_everywhere(&app).await;
    let a = app
        .reply_sandbox(
            "veulen",
            "jan",
            "Jan",
            "Vals alarm, het was de buurman met zijn nieuwe bestelwagen",
            &original,
        )
        .await;
    assert_eq!(a["outcome"], "accepted");
    for v in VILLAGES {
        eventually(5, &format!("the all-clear in {v}"), || async {
            after_copy(&app, v).await.len() == 1
        })
        .await;
        let f = &after_copy(&app, v).await[0];
        assert_eq!(
            text(f),
            "✅ [Veulen] Jan: Vals alarm, het was de buurman met zijn nieuwe bestelwagen"
        );
        assert_eq!(f["reply_to"], id(&copy_in(&app, v).await));
    }
}

#[tokio::test]
async fn a_member_who_edits_an_alert_changes_every_copy_in_place() {
    let app = spawn_app(&heers_config_with_sandbox()).await;
    let original = alert_everywhere(&app).await;
    let (status, _) = app
        .edit_sandbox(
            "veulen",
            &original,
            "jan",
            "Verdachte WITTE bestelwagen rijdt traag door de Kerkstraat, 101 is verwittigd",
        )
        .await;
    assert_eq!(status, 200);
    for v in VILLAGES {
        eventually(5, &format!("the edited copy in {v}"), || async {
            let r = app.relayed(v).await;
            r.len() == 1 && text(&r[0]).contains("WITTE") && !r[0]["edited_ms"].is_null()
        })
        .await;
    }
    // Someone else cannot edit Jan's message.
    let (status, _) = app
        .edit_sandbox("veulen", &original, "piet", "Niets aan de hand")
        .await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn a_restart_in_the_middle_of_a_thread_loses_nothing() {
    let app = spawn_app(&heers_config_with_sandbox()).await;
    let original = alert_everywhere(&app).await;
    let app = app.restart().await;
    let heers_copy = copy_in(&app, "heers").await;
    app.reply_sandbox(
        "heers",
        "an",
        "An",
        "Hij staat nu aan de bakker in de Dorpsstraat",
        &id(&heers_copy),
    )
    .await;
    eventually(5, "the follow-up in Veulen after the restart", || async {
        app.relayed("veulen").await.len() == 1
    })
    .await;
    assert_eq!(
        app.relayed("veulen").await[0]["reply_to"],
        original.as_str()
    );
    eventually(5, "the follow-up in Batsheers", || async {
        after_copy(&app, "batsheers").await.len() == 1
    })
    .await;
    assert_eq!(
        after_copy(&app, "batsheers").await[0]["reply_to"],
        id(&copy_in(&app, "batsheers").await)
    );
}

#[tokio::test]
async fn the_same_alert_posted_in_two_groups_fans_out_once() {
    let app = spawn_app(&heers_config_with_sandbox()).await;
    let original = alert_everywhere(&app).await;
    // Jan posts the very same text in Heers too.
    let second = app.post_sandbox("heers", "jan", "Jan Peeters", ALERT).await;
    let kinds: Vec<&str> = second["actions"]
        .as_array()
        .expect("actions")
        .iter()
        .filter_map(|a| a["kind"].as_str())
        .collect();
    assert!(!kinds.contains(&"forward"), "{kinds:?}");
    eventually(5, "ook gemeld in Veulen's thread", || async {
        app.relayed("veulen").await.len() == 1
    })
    .await;
    let back = &app.relayed("veulen").await[0];
    assert_eq!(text(back), "🔁 Ook gemeld in Heers.");
    assert_eq!(back["reply_to"], original.as_str());
    for v in VILLAGES.iter().filter(|v| **v != "heers") {
        eventually(5, &format!("ook gemeld in {v}"), || async {
            after_copy(&app, v).await.len() == 1
        })
        .await;
        let f = &after_copy(&app, v).await[0];
        assert_eq!(text(f), "🔁 Ook gemeld in Heers.");
        assert_eq!(f["reply_to"], id(&copy_in(&app, v).await));
    }
    // No second copy anywhere, and nothing more in Heers.
    assert_eq!(app.relayed("heers").await.len(), 1);
}

#[tokio::test]
async fn a_coordinators_hand_copy_is_no_second_fan_out() {
    let app = spawn_app(&heers_config_with_sandbox()).await;
    alert_everywhere(&app).await;
    app.post_sandbox(
        "opheers",
        "coord-opheers",
        "Els",
        "Doorgestuurd: [Veulen] grijze bestelwagen rijdt heel traag door de Kerkstraat!!",
    )
    .await;
    eventually(5, "ook gemeld in Batsheers", || async {
        after_copy(&app, "batsheers").await.len() == 1
    })
    .await;
    assert_eq!(
        text(&after_copy(&app, "batsheers").await[0]),
        "🔁 Ook gemeld in Opheers."
    );
    assert!(
        app.relayed("batsheers")
            .await
            .iter()
            .all(|m| !text(m).starts_with("[Opheers]")),
        "no copy of the hand copy"
    );
}

#[tokio::test]
async fn two_grey_vans_in_different_streets_are_two_alerts() {
    let app = spawn_app(&heers_config_with_sandbox()).await;
    alert_everywhere(&app).await;
    app.post_sandbox(
        "heers",
        "an",
        "An",
        "Verdachte grijze bestelwagen rijdt traag door de Molenstraat, 101 is verwittigd",
    )
    .await;
    eventually(5, "Heers's own alert in Veulen", || async {
        app.relayed("veulen").await.len() == 1
    })
    .await;
    assert_eq!(
        text(&app.relayed("veulen").await[0]),
        "[Heers] An: Verdachte grijze bestelwagen rijdt traag door de Molenstraat, 101 is verwittigd"
    );
}

// ------------------------------------------------------------------ Telegram

const SECRET: &str = "s3cret-token";
const TG_VILLAGES: [&str; 4] = ["Veulen", "Heers", "Batsheers", "Opheers"];
const VEULEN: &str = "-1001000000000";
const HEERS: &str = "-1001000000001";
const COPY_CHATS: [i64; 3] = [-1001000000001, -1001000000002, -1001000000003];
const TG_COPY: &str =
    "[Veulen] Jan: Verdachte grijze bestelwagen rijdt traag door de Kerkstraat, 101 is verwittigd";

async fn telegram() -> (TestApp, FakeTelegram) {
    let fake = FakeTelegram::start().await;
    let app = spawn_app(&telegram_config(&fake, &TG_VILLAGES, "")).await;
    (app, fake)
}

async fn tg_alert(app: &TestApp, fake: &FakeTelegram) {
    let r = app
        .webhook(
            "bot",
            Some(SECRET),
            tg_update(1, VEULEN, 10, 555, "Jan", ALERT),
        )
        .await;
    assert_eq!(r.status(), 200);
    eventually(5, "three copies", || async {
        COPY_CHATS.iter().all(|c| fake.id_of(*c, TG_COPY).is_some())
    })
    .await;
}

fn sent_to(fake: &FakeTelegram, chat: i64, text: &str) -> Option<Value> {
    fake.delivered()
        .into_iter()
        .find(|b| b["chat_id"] == chat && b["text"] == text)
}

#[tokio::test]
async fn on_telegram_a_follow_up_replies_to_each_chats_own_copy() {
    let (app, fake) = telegram().await;
    tg_alert(&app, &fake).await;
    let r = app
        .webhook(
            "bot",
            Some(SECRET),
            tg_reply(2, VEULEN, 11, 556, "An", "Nu aan de kerk", 10, ALERT),
        )
        .await;
    assert_eq!(r.status(), 200);
    let line = "[Veulen] An: Nu aan de kerk";
    eventually(5, "three follow-ups", || async {
        COPY_CHATS
            .iter()
            .all(|c| sent_to(&fake, *c, line).is_some())
    })
    .await;
    for chat in COPY_CHATS {
        let f = sent_to(&fake, chat, line).expect("follow-up");
        assert_eq!(
            f["reply_parameters"]["message_id"],
            fake.id_of(chat, TG_COPY).expect("copy id"),
            "chat {chat}"
        );
    }
}

#[tokio::test]
async fn a_follow_up_queued_before_its_copy_was_delivered_still_replies_to_it() {
    let (app, fake) = telegram().await;
    // The copies hang (and time out after 2 s): the follow-up is accepted
    // while none of them is delivered.
    fake.hang(true);
    app.webhook(
        "bot",
        Some(SECRET),
        tg_update(1, VEULEN, 10, 555, "Jan", ALERT),
    )
    .await;
    app.webhook(
        "bot",
        Some(SECRET),
        tg_reply(2, VEULEN, 11, 556, "An", "Nu aan de kerk", 10, ALERT),
    )
    .await;
    assert!(fake.delivered().is_empty());
    fake.hang(false);
    let line = "[Veulen] An: Nu aan de kerk";
    eventually(15, "copies, then follow-ups", || async {
        COPY_CHATS
            .iter()
            .all(|c| sent_to(&fake, *c, line).is_some())
    })
    .await;
    for chat in COPY_CHATS {
        let copy_id = fake.id_of(chat, TG_COPY).expect("copy id");
        let f = sent_to(&fake, chat, line).expect("follow-up");
        assert_eq!(f["reply_parameters"]["message_id"], copy_id, "chat {chat}");
        let at = |t: &str| {
            fake.calls()
                .iter()
                .position(|c| c.answered_ok && c.body["chat_id"] == chat && c.body["text"] == t)
        };
        assert!(at(TG_COPY) < at(line), "the copy first in {chat}");
    }
}

#[tokio::test]
async fn a_restart_in_the_middle_of_a_telegram_thread_keeps_the_reply_targets() {
    let (app, fake) = telegram().await;
    tg_alert(&app, &fake).await;
    let app = app.restart().await;
    let heers_copy = fake.id_of(-1001000000001, TG_COPY).expect("copy id");
    app.webhook(
        "bot",
        Some(SECRET),
        tg_reply(
            2,
            HEERS,
            50,
            556,
            "An",
            "Hier nu ook gezien",
            heers_copy,
            TG_COPY,
        ),
    )
    .await;
    let line = "[Heers] An: Hier nu ook gezien";
    eventually(5, "the follow-up in Veulen", || async {
        sent_to(&fake, -1001000000000, line).is_some()
    })
    .await;
    assert_eq!(
        sent_to(&fake, -1001000000000, line).expect("back")["reply_parameters"]["message_id"],
        10,
        "a reply to the original"
    );
    for chat in [-1001000000002, -1001000000003] {
        eventually(5, "the follow-up in the other copies", || async {
            sent_to(&fake, chat, line).is_some()
        })
        .await;
        assert_eq!(
            sent_to(&fake, chat, line).expect("f")["reply_parameters"]["message_id"],
            fake.id_of(chat, TG_COPY).expect("copy")
        );
    }
    assert!(sent_to(&fake, -1001000000001, line).is_none());
}

#[tokio::test]
async fn an_edited_alert_on_telegram_edits_every_copy() {
    let (app, fake) = telegram().await;
    tg_alert(&app, &fake).await;
    let edited = "Verdachte grijze bestelwagen (1-ABC-234) rijdt traag door de Kerkstraat, 101 is verwittigd";
    let r = app
        .webhook(
            "bot",
            Some(SECRET),
            tg_edit(3, VEULEN, 10, 555, "Jan", edited, 1764300200),
        )
        .await;
    assert_eq!(r.status(), 200);
    eventually(5, "three edits", || async { fake.changes().len() == 3 }).await;
    for c in fake.changes() {
        assert_eq!(c.method, "editMessageText");
        let chat = c.body["chat_id"].as_i64().expect("chat");
        assert_eq!(
            c.body["message_id"],
            fake.id_of(chat, TG_COPY).expect("copy")
        );
        assert_eq!(c.body["text"], format!("[Veulen] Jan: {edited}"));
    }
    // The same edit again (a webhook retry) edits nothing twice.
    app.webhook(
        "bot",
        Some(SECRET),
        tg_edit(3, VEULEN, 10, 555, "Jan", edited, 1764300200),
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(fake.changes().len(), 3);
}

#[tokio::test]
async fn where_telegram_cannot_edit_a_copy_a_correction_replies_to_it() {
    let (app, fake) = telegram().await;
    tg_alert(&app, &fake).await;
    fake.script_changes(vec![
        Reply::BadRequest("Bad Request: message can't be edited"),
        Reply::BadRequest("Bad Request: message can't be edited"),
        Reply::BadRequest("Bad Request: message can't be edited"),
    ]);
    let edited = "Verdachte grijze bestelwagen rijdt traag door de Molenweg, 101 is verwittigd";
    app.webhook(
        "bot",
        Some(SECRET),
        tg_edit(3, VEULEN, 10, 555, "Jan", edited, 1764300200),
    )
    .await;
    let line = format!("✏️ gecorrigeerd: {edited}");
    eventually(5, "three corrections", || async {
        COPY_CHATS
            .iter()
            .all(|c| sent_to(&fake, *c, &line).is_some())
    })
    .await;
    for chat in COPY_CHATS {
        assert_eq!(
            sent_to(&fake, chat, &line).expect("correction")["reply_parameters"]["message_id"],
            fake.id_of(chat, TG_COPY).expect("copy")
        );
    }
}

#[tokio::test]
async fn an_all_clear_on_telegram_reaches_every_copy() {
    let (app, fake) = telegram().await;
    tg_alert(&app, &fake).await;
    app.webhook(
        "bot",
        Some(SECRET),
        tg_reply(
            2,
            VEULEN,
            11,
            555,
            "Jan",
            "Alles ok, politie ter plaatse geweest: het was de buurman",
            10,
            ALERT,
        ),
    )
    .await;
    let line = "✅ [Veulen] Jan: Alles ok, politie ter plaatse geweest: het was de buurman";
    eventually(5, "three all-clears", || async {
        COPY_CHATS
            .iter()
            .all(|c| sent_to(&fake, *c, line).is_some())
    })
    .await;
}

#[tokio::test]
async fn a_group_upgraded_to_a_supergroup_keeps_its_queued_copies_and_threads() {
    let (app, fake) = telegram().await;
    const NEW_HEERS: i64 = -1009999999999;
    // Copies wait (the API hangs); meanwhile Heers becomes a supergroup.
    fake.hang(true);
    app.webhook(
        "bot",
        Some(SECRET),
        tg_update(1, VEULEN, 10, 555, "Jan", ALERT),
    )
    .await;
    let migrate = serde_json::json!({
        "update_id": 2,
        "message": {
            "message_id": 7,
            "from": {"id": 1, "is_bot": false, "first_name": "A"},
            "chat": {"id": HEERS.parse::<i64>().expect("chat"), "title": "Heers", "type": "group"},
            "date": 1764300050,
            "migrate_to_chat_id": NEW_HEERS
        }
    })
    .to_string();
    assert_eq!(
        app.webhook("bot", Some(SECRET), migrate).await.status(),
        200
    );
    fake.hang(false);
    eventually(15, "Heers's copy in its new chat", || async {
        fake.id_of(NEW_HEERS, TG_COPY).is_some()
    })
    .await;
    assert!(
        fake.id_of(-1001000000001, TG_COPY).is_none(),
        "not delivered to the old id"
    );
    // A reply from the new chat (not yet in the config) is Heers's, and
    // follows the thread.
    let copy = fake.id_of(NEW_HEERS, TG_COPY).expect("copy");
    app.webhook(
        "bot",
        Some(SECRET),
        tg_reply(
            3,
            &NEW_HEERS.to_string(),
            60,
            556,
            "An",
            "Hier in Heers ook gezien",
            copy,
            TG_COPY,
        ),
    )
    .await;
    let line = "[Heers] An: Hier in Heers ook gezien";
    eventually(5, "the follow-up in Veulen", || async {
        sent_to(&fake, -1001000000000, line).is_some()
    })
    .await;
    // And the next alert goes to the new id directly.
    app.webhook(
        "bot",
        Some(SECRET),
        tg_update(
            4,
            VEULEN,
            12,
            555,
            "Jan",
            "Inbraak bezig in de Molenstraat 3, politie onderweg",
        ),
    )
    .await;
    eventually(5, "the next copy in the new chat", || async {
        fake.id_of(
            NEW_HEERS,
            "[Veulen] Jan: Inbraak bezig in de Molenstraat 3, politie onderweg",
        )
        .is_some()
    })
    .await;
}

// ------------------------------------------------------- WhatsApp (no edits)

#[tokio::test]
async fn a_whatsapp_copy_that_cannot_be_edited_gets_a_correction_and_its_replies_follow() {
    use crate::fakes::*;
    const WA_HEERS: &str = "120363042222222222@g.us";
    const WA_BATSHEERS: &str = "120363043333333333@g.us";
    let tg = FakeTelegram::start().await;
    let wa = FakeWhatsapp::start().await;
    let config = format!(
        r#"
[server]
reload_poll = "200ms"
[delivery]
retry_base = "50ms"
retry_max = "200ms"
send_timeout = "2s"
[accounts.bot]
platform = "telegram"
token = "123456:TESTTOKEN"
webhook_secret = "s3cret-token"
api_url = "{}"
[accounts.wa]
platform = "waha"
api_url = "{}"
session = "heers"
webhook_secret = "hmac-wa"
[[groups]]
id = "veulen"
name = "Veulen"
account = "bot"
chat = "{VEULEN}"
[[groups]]
id = "heers"
name = "Heers"
account = "wa"
chat = "{WA_HEERS}"
[[groups]]
id = "batsheers"
name = "Batsheers"
account = "wa"
chat = "{WA_BATSHEERS}"
"#,
        tg.url, wa.url
    );
    let app = spawn_app(&config).await;
    app.webhook(
        "bot",
        Some(SECRET),
        tg_update(1, VEULEN, 10, 555, "Jan", ALERT),
    )
    .await;
    eventually(5, "two WhatsApp copies", || async {
        wa.delivered().len() == 2
    })
    .await;
    let copy_id = |chat: &str| -> String {
        // The fake's ids: 3EB0 and the call number, as WEBJS answers.
        let n = wa
            .calls()
            .iter()
            .position(|c| c.answered_ok && c.body["chatId"] == chat)
            .expect("copy")
            + 1;
        format!("3EB0{n:016X}")
    };
    // Jan edits his alert on Telegram: WAHA cannot edit, so each copy gets
    // a correction as a reply.
    let edited = "Verdachte grijze bestelwagen rijdt traag door de Molenweg, 101 is verwittigd";
    app.webhook(
        "bot",
        Some(SECRET),
        tg_edit(2, VEULEN, 10, 555, "Jan", edited, 1764300200),
    )
    .await;
    eventually(5, "two corrections", || async { wa.delivered().len() == 4 }).await;
    for chat in [WA_HEERS, WA_BATSHEERS] {
        let c = wa
            .delivered()
            .into_iter()
            .find(|c| {
                c.body["chatId"] == chat && c.body["text"] == format!("✏️ gecorrigeerd: {edited}")
            })
            .expect("correction");
        let reply_to = c.body["reply_to"].as_str().expect("a reply");
        assert!(reply_to.contains(&copy_id(chat)), "{reply_to}");
    }
    // An answers the copy in Heers on WhatsApp: back to Telegram as a reply
    // to the original, and to Batsheers as a reply to its copy.
    let an = WahaMsg {
        session: "heers",
        me: "32475888888@c.us",
        chat: WA_HEERS,
        participant: "32475222222@c.us",
        stanza: "A5F1E3C2B4D6978800112233AABBCCDD",
        name: "An Janssens",
        text: "Ik zie die wagen nu hier in Heers",
    };
    let mut body: Value = serde_json::from_str(&an.body()).expect("json");
    body["payload"]["replyTo"] = serde_json::json!({
        "id": copy_id(WA_HEERS),
        "participant": "32475888888@c.us",
        "body": COPY,
    });
    assert_eq!(
        post_waha(&app, "wa", "hmac-wa", body.to_string())
            .await
            .status(),
        200
    );
    let line = "[Heers] An: Ik zie die wagen nu hier in Heers";
    eventually(5, "the follow-up on Telegram", || async {
        sent_to(&tg, -1001000000000, line).is_some()
    })
    .await;
    assert_eq!(
        sent_to(&tg, -1001000000000, line).expect("f")["reply_parameters"]["message_id"],
        10
    );
    eventually(5, "the follow-up in Batsheers", || async {
        wa.delivered()
            .iter()
            .any(|c| c.body["chatId"] == WA_BATSHEERS && c.body["text"] == line)
    })
    .await;
    let f = wa
        .delivered()
        .into_iter()
        .find(|c| c.body["chatId"] == WA_BATSHEERS && c.body["text"] == line)
        .expect("follow-up");
    assert!(
        f.body["reply_to"]
            .as_str()
            .is_some_and(|r| r.contains(&copy_id(WA_BATSHEERS)))
    );
}
