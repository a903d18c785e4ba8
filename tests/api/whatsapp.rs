//! The network on WhatsApp: WAHA and Evolution gateways (linked devices),
//! the Cloud API, and a network that mixes them with Telegram; against fake
//! gateways that speak their JSON.

use std::time::Duration;

use serde_json::Value;

use crate::fakes::*;
use crate::helpers::*;

const VEULEN: &str = "120363041111111111@g.us";
const HEERS: &str = "120363042222222222@g.us";
const BATSHEERS: &str = "120363043333333333@g.us";
/// The numbers linked in WAHA: one session per coordinator.
const COORD_VEULEN: &str = "32475999999@c.us";
const COORD_HEERS: &str = "32475888888@c.us";
const JAN: &str = "32475111111@c.us";
const ALERT: &str =
    "Verdachte grijze bestelwagen rijdt traag door de Kerkstraat, 101 is verwittigd";
const UNCONFIRMED: &str =
    "Inbraak bezig in de Molenstraat, twee mannen met een koevoet aan de achterdeur!";

fn head(server: &str) -> String {
    format!(
        r#"
[network]
name = "Test Heers"
[server]
reload_poll = "200ms"
{server}
[delivery]
retry_base = "50ms"
retry_max = "200ms"
send_timeout = "2s"
"#
    )
}

fn group(id: &str, name: &str, account: &str, chat: &str, coordinators: &[&str]) -> String {
    let c = coordinators
        .iter()
        .map(|c| format!("\"{c}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "[[groups]]\nid = \"{id}\"\nname = \"{name}\"\naccount = \"{account}\"\nchat = \"{chat}\"\ncoordinators = [{c}]\n"
    )
}

/// Veulen posts through its coordinator's session, Heers and Batsheers
/// through the Heers coordinator's.
fn waha_network(fake: &FakeWhatsapp) -> String {
    format!(
        r#"{}
[accounts.coord-veulen]
platform = "waha"
api_url = "{url}"
session = "coord-veulen"
token = "waha-key"
webhook_secret = "hmac-veulen"
[accounts.coord-heers]
platform = "waha"
api_url = "{url}"
session = "coord-heers"
token = "waha-key"
webhook_secret = "hmac-heers"
{}{}{}"#,
        head(""),
        group("veulen", "Veulen", "coord-veulen", VEULEN, &[COORD_VEULEN]),
        group("heers", "Heers", "coord-heers", HEERS, &[COORD_HEERS]),
        group("batsheers", "Batsheers", "coord-heers", BATSHEERS, &[]),
        url = fake.url,
    )
}

fn jan_in_veulen(session: &'static str, me: &'static str, text: &'static str) -> WahaMsg<'static> {
    WahaMsg {
        session,
        me,
        chat: VEULEN,
        participant: JAN,
        stanza: "3EB0C767D097B7C7C030",
        name: "Jan Peeters",
        text,
    }
}

fn chats(calls: &[WaCall], field: &str) -> Vec<String> {
    let mut v: Vec<String> = calls
        .iter()
        .map(|c| c.body[field].as_str().unwrap_or_default().to_string())
        .collect();
    v.sort();
    v
}

async fn quiet() {
    tokio::time::sleep(Duration::from_millis(400)).await;
}

#[tokio::test]
async fn a_whatsapp_alert_fans_out_through_each_groups_own_session() {
    let fake = FakeWhatsapp::start().await;
    let app = spawn_app(&waha_network(&fake)).await;
    let msg = jan_in_veulen("coord-veulen", COORD_VEULEN, ALERT);
    let r = post_waha(&app, "coord-veulen", "hmac-veulen", msg.body()).await;
    assert_eq!(r.status(), 200);
    eventually(5, "two copies", || async { fake.delivered().len() == 2 }).await;
    let sent = fake.delivered();
    assert_eq!(chats(&sent, "chatId"), vec![HEERS, BATSHEERS]);
    for c in &sent {
        assert_eq!(c.api, Api::Waha);
        // Heers and Batsheers post through the Heers coordinator's session.
        assert_eq!(c.sender, "coord-heers");
        assert_eq!(c.body["session"], "coord-heers");
        assert_eq!(c.key.as_deref(), Some("waha-key"));
        assert_eq!(c.body["text"], format!("[Veulen] Jan: {ALERT}"));
        assert!(c.body.get("reply_to").is_none(), "a copy is a new message");
        // No phone number, no WhatsApp id in a copy.
        let text = c.body["text"].as_str().unwrap();
        assert!(!text.contains("32475") && !text.contains('@'), "{text}");
    }
}

#[tokio::test]
async fn the_reminder_quotes_the_members_whatsapp_message() {
    let fake = FakeWhatsapp::start().await;
    let app = spawn_app(&waha_network(&fake)).await;
    let msg = jan_in_veulen("coord-veulen", COORD_VEULEN, UNCONFIRMED);
    let r = post_waha(&app, "coord-veulen", "hmac-veulen", msg.body()).await;
    assert_eq!(r.status(), 200);
    eventually(5, "reminder + two copies", || async {
        fake.delivered().len() == 3
    })
    .await;
    let reminder = fake
        .delivered()
        .into_iter()
        .find(|c| c.body["chatId"] == VEULEN)
        .expect("a reminder in Veulen");
    assert_eq!(reminder.body["session"], "coord-veulen");
    // WAHA quotes by the serialized id it gave the member's message.
    assert_eq!(reminder.body["reply_to"], msg.serialized_id());
    let text = reminder.body["text"].as_str().unwrap();
    assert!(text.contains("Jan") && text.contains("101"), "{text}");
}

#[tokio::test]
async fn the_same_message_delivered_by_two_waha_sessions_is_handled_once() {
    let fake = FakeWhatsapp::start().await;
    let app = spawn_app(&waha_network(&fake)).await;
    // Both coordinators sit in Veulen: each session reports Jan's message,
    // the second with Jan spelled as a `@lid` (another engine's view).
    let first = jan_in_veulen("coord-veulen", COORD_VEULEN, ALERT);
    let second = WahaMsg {
        session: "coord-heers",
        me: COORD_HEERS,
        participant: "204567890123456@lid",
        ..jan_in_veulen("coord-heers", COORD_HEERS, ALERT)
    };
    let r1 = post_waha(&app, "coord-veulen", "hmac-veulen", first.body()).await;
    let r2 = post_waha(&app, "coord-heers", "hmac-heers", second.body()).await;
    assert_eq!((r1.status().as_u16(), r2.status().as_u16()), (200, 200));
    eventually(5, "two copies", || async { fake.delivered().len() == 2 }).await;
    quiet().await;
    assert_eq!(fake.calls().len(), 2, "one copy per other group, once");
    assert!(
        app.metrics()
            .await
            .contains("buurtrelay_messages_in_total{platform=\"waha\",outcome=\"duplicate\"} 1")
    );
}

#[tokio::test]
async fn our_own_copies_are_never_relayed_again_whichever_session_sees_them() {
    let fake = FakeWhatsapp::start().await;
    let app = spawn_app(&waha_network(&fake)).await;
    let msg = jan_in_veulen("coord-veulen", COORD_VEULEN, ALERT);
    post_waha(&app, "coord-veulen", "hmac-veulen", msg.body()).await;
    eventually(5, "two copies", || async { fake.delivered().len() == 2 }).await;
    let copy = fake.delivered()[0].body["text"]
        .as_str()
        .unwrap()
        .to_string();
    // The sending session reports its own post (fromMe, source "api") ...
    let echo = waha_own_echo(
        "coord-heers",
        COORD_HEERS,
        HEERS,
        "3EB0000000000000AAAA",
        &copy,
    );
    assert_eq!(
        post_waha(&app, "coord-heers", "hmac-heers", echo)
            .await
            .status(),
        200
    );
    // ... and the Veulen coordinator, who also sits in Heers, sees it as
    // an ordinary member's message from the Heers coordinator's number.
    let seen_by_other = WahaMsg {
        session: "coord-veulen",
        me: COORD_VEULEN,
        chat: HEERS,
        participant: COORD_HEERS,
        stanza: "3EB0000000000000AAAA",
        name: "Coördinator Heers",
        text: &copy,
    };
    let r = post_waha(&app, "coord-veulen", "hmac-veulen", seen_by_other.body()).await;
    assert_eq!(r.status(), 200);
    quiet().await;
    assert_eq!(fake.calls().len(), 2, "no copy of a copy");
    let m = app.metrics().await;
    assert!(
        m.contains("buurtrelay_messages_in_total{platform=\"waha\",outcome=\"own_copy\"} 1"),
        "{m}"
    );
}

#[tokio::test]
async fn what_a_linked_coordinator_types_on_the_phone_is_relayed_once_without_a_reminder() {
    let fake = FakeWhatsapp::start().await;
    let app = spawn_app(&waha_network(&fake)).await;
    // The Veulen coordinator's own number is linked: WAHA reports what he
    // types on his phone as `fromMe`, `source: "app"` ...
    let mut own: Value = fixture("waha/message-any-typed-on-phone.json");
    *own.pointer_mut("/payload/body").unwrap() = Value::from(UNCONFIRMED);
    let r = post_waha(&app, "coord-veulen", "hmac-veulen", own.to_string()).await;
    assert_eq!(r.status(), 200);
    // ... and the Heers coordinator's session sees the same message.
    let seen = WahaMsg {
        session: "coord-heers",
        me: COORD_HEERS,
        chat: VEULEN,
        participant: COORD_VEULEN,
        stanza: "ACD4E6F8A0B2C4D6E8F0A1B2C3D4E5F6",
        name: "Coördinator Veulen",
        text: UNCONFIRMED,
    };
    post_waha(&app, "coord-heers", "hmac-heers", seen.body()).await;
    eventually(5, "two copies", || async { fake.delivered().len() == 2 }).await;
    quiet().await;
    let sent = fake.calls();
    assert_eq!(
        sent.len(),
        2,
        "forwarded once, and a coordinator is never reminded"
    );
    assert!(sent.iter().all(|c| c.body["chatId"] != VEULEN));
    assert_eq!(
        sent[0].body["text"],
        format!("[Veulen] Coördinator: {UNCONFIRMED}")
    );
}

#[tokio::test]
async fn a_bad_or_missing_waha_hmac_gets_401_and_changes_nothing() {
    let fake = FakeWhatsapp::start().await;
    let app = spawn_app(&waha_network(&fake)).await;
    let body = jan_in_veulen("coord-veulen", COORD_VEULEN, ALERT).body();
    assert_eq!(
        post_webhook(&app, "coord-veulen", &[], body.clone())
            .await
            .status(),
        401
    );
    // Signed with another session's key.
    assert_eq!(
        post_waha(&app, "coord-veulen", "hmac-heers", body.clone())
            .await
            .status(),
        401
    );
    // Signed, then altered on the way.
    let sig = waha_hmac("hmac-veulen", &body);
    let altered = body.replace("Kerkstraat", "Kerkstraaf");
    let r = post_webhook(
        &app,
        "coord-veulen",
        &[
            ("X-Webhook-Hmac", sig),
            ("X-Webhook-Hmac-Algorithm", "sha512".into()),
        ],
        altered,
    )
    .await;
    assert_eq!(r.status(), 401);
    quiet().await;
    assert!(fake.calls().is_empty());
    // Nothing was stored: the genuine request is still new.
    assert_eq!(
        post_waha(&app, "coord-veulen", "hmac-veulen", body)
            .await
            .status(),
        200
    );
    eventually(5, "two copies", || async { fake.delivered().len() == 2 }).await;
    assert!(
        app.metrics()
            .await
            .contains("buurtrelay_webhook_rejected_total{reason=\"unauthorized\"} 3")
    );
}

#[tokio::test]
async fn a_waha_ack_or_session_event_is_answered_and_ignored() {
    let fake = FakeWhatsapp::start().await;
    let app = spawn_app(&waha_network(&fake)).await;
    let ack = fixture("waha/message-ack.json").to_string();
    let r = post_waha(&app, "coord-veulen", "hmac-veulen", ack).await;
    assert_eq!(r.status(), 200);
    let status = r#"{"event":"session.status","session":"coord-veulen","payload":{"status":"WORKING"},"engine":"WEBJS"}"#;
    let r = post_waha(&app, "coord-veulen", "hmac-veulen", status.to_string()).await;
    assert_eq!(r.status(), 200);
    let r = post_waha(
        &app,
        "coord-veulen",
        "hmac-veulen",
        "{\"event\":".to_string(),
    )
    .await;
    assert_eq!(r.status(), 400);
    quiet().await;
    assert!(fake.calls().is_empty());
}

#[tokio::test]
async fn a_busy_waha_is_waited_for_and_the_copy_still_arrives() {
    let fake = FakeWhatsapp::start().await;
    fake.script(vec![WaReply::TooMany(1), WaReply::ServerError]);
    let app = spawn_app(&waha_network(&fake)).await;
    let msg = jan_in_veulen("coord-veulen", COORD_VEULEN, ALERT);
    post_waha(&app, "coord-veulen", "hmac-veulen", msg.body()).await;
    eventually(8, "two copies", || async { fake.delivered().len() == 2 }).await;
    let calls = fake.calls();
    let limited = calls.iter().find(|c| !c.answered_ok).expect("the 429");
    let chat = limited.body["chatId"].clone();
    let next = calls
        .iter()
        .filter(|c| c.body["chatId"] == chat && c.at > limited.at)
        .map(|c| c.at)
        .min()
        .expect("a retry");
    assert!(next.duration_since(limited.at) >= Duration::from_millis(950));
}

// ---------------------------------------------------------------- Evolution

const EVO_KEY: &str = "B6D711FCDE4D4FD5936544120E713976";

fn evolution_network(fake: &FakeWhatsapp) -> String {
    format!(
        r#"{}
[accounts.heers-evo]
platform = "evolution"
api_url = "{}"
instance = "heers"
token = "{EVO_KEY}"
webhook_secret = "{EVO_KEY}"
{}{}{}"#,
        head(""),
        fake.url,
        group("veulen", "Veulen", "heers-evo", VEULEN, &[]),
        group("heers", "Heers", "heers-evo", HEERS, &[]),
        group("batsheers", "Batsheers", "heers-evo", BATSHEERS, &[]),
    )
}

#[tokio::test]
async fn an_evolution_alert_fans_out_by_number_and_the_reminder_quotes_the_message() {
    let fake = FakeWhatsapp::start().await;
    let app = spawn_app(&evolution_network(&fake)).await;
    // Authenticated by the instance key Evolution puts in every event.
    let body = evolution_upsert(
        EVO_KEY,
        VEULEN,
        "32475111111@s.whatsapp.net",
        "3EB0C767D097B7C7C030",
        "Jan Peeters",
        UNCONFIRMED,
    );
    let r = post_webhook(&app, "heers-evo", &[], body).await;
    assert_eq!(r.status(), 200);
    eventually(5, "reminder + two copies", || async {
        fake.delivered().len() == 3
    })
    .await;
    let sent = fake.delivered();
    assert!(
        sent.iter()
            .all(|c| c.api == Api::Evolution && c.sender == "heers")
    );
    assert!(sent.iter().all(|c| c.key.as_deref() == Some(EVO_KEY)));
    assert_eq!(chats(&sent, "number"), vec![VEULEN, HEERS, BATSHEERS]);
    let reminder = sent.iter().find(|c| c.body["number"] == VEULEN).unwrap();
    assert_eq!(reminder.body["quoted"]["key"]["id"], "3EB0C767D097B7C7C030");
    let copy = sent.iter().find(|c| c.body["number"] == HEERS).unwrap();
    assert!(
        copy.body["text"]
            .as_str()
            .unwrap()
            .starts_with(&format!("[Veulen] Jan: {UNCONFIRMED}"))
    );
    assert!(copy.body.get("quoted").is_none());
}

#[tokio::test]
async fn an_evolution_event_with_a_wrong_apikey_gets_401_and_changes_nothing() {
    let fake = FakeWhatsapp::start().await;
    let app = spawn_app(&evolution_network(&fake)).await;
    let forged = evolution_upsert(
        "not-the-key",
        VEULEN,
        "32475111111@s.whatsapp.net",
        "3EB0AA",
        "Jan",
        ALERT,
    );
    assert_eq!(
        post_webhook(&app, "heers-evo", &[], forged.clone())
            .await
            .status(),
        401
    );
    let with_header = post_webhook(
        &app,
        "heers-evo",
        &[("apikey", "guess".into())],
        forged.clone(),
    )
    .await;
    assert_eq!(with_header.status(), 401);
    quiet().await;
    assert!(fake.calls().is_empty());
    // The right key in the header is enough, whatever the payload says.
    let ok = post_webhook(&app, "heers-evo", &[("apikey", EVO_KEY.into())], forged).await;
    assert_eq!(ok.status(), 200);
    eventually(5, "two copies", || async { fake.delivered().len() == 2 }).await;
}

#[tokio::test]
async fn a_group_served_by_waha_and_evolution_acts_on_a_message_once() {
    let fake = FakeWhatsapp::start().await;
    let config = format!(
        r#"{}
[accounts.wa]
platform = "waha"
api_url = "{url}"
webhook_secret = "hmac-wa"
[accounts.evo]
platform = "evolution"
api_url = "{url}"
instance = "heers"
token = "{EVO_KEY}"
webhook_secret = "{EVO_KEY}"
{}{}{}"#,
        head(""),
        group("veulen", "Veulen", "wa", VEULEN, &[]),
        group("heers", "Heers", "evo", HEERS, &[]),
        group("batsheers", "Batsheers", "wa", BATSHEERS, &[]),
        url = fake.url,
    );
    let app = spawn_app(&config).await;
    // An in Heers; both the WAHA number and the Evolution number sit there.
    let via_evolution = evolution_upsert(
        EVO_KEY,
        HEERS,
        "32475222222@s.whatsapp.net",
        "A5F1E3C2B4D6978800112233AABBCCDD",
        "An",
        ALERT,
    );
    let via_waha = WahaMsg {
        session: "default",
        me: COORD_VEULEN,
        chat: HEERS,
        participant: "32475222222@c.us",
        stanza: "A5F1E3C2B4D6978800112233AABBCCDD",
        name: "An",
        text: ALERT,
    };
    assert_eq!(
        post_webhook(&app, "evo", &[], via_evolution).await.status(),
        200
    );
    assert_eq!(
        post_waha(&app, "wa", "hmac-wa", via_waha.body())
            .await
            .status(),
        200
    );
    eventually(5, "two copies", || async { fake.delivered().len() == 2 }).await;
    quiet().await;
    let sent = fake.calls();
    assert_eq!(sent.len(), 2);
    // Veulen and Batsheers are WAHA groups: both copies go through WAHA.
    assert!(
        sent.iter()
            .all(|c| c.api == Api::Waha && c.body["session"] == "default")
    );
    assert_eq!(chats(&sent, "chatId"), vec![VEULEN, BATSHEERS]);
    assert!(
        sent.iter()
            .all(|c| c.body["text"] == format!("[Heers] An: {ALERT}"))
    );
}

#[tokio::test]
async fn a_member_reminded_through_waha_is_not_reminded_again_through_evolution() {
    let fake = FakeWhatsapp::start().await;
    let config = format!(
        r#"{}
[accounts.wa]
platform = "waha"
api_url = "{url}"
webhook_secret = "hmac-wa"
[accounts.evo]
platform = "evolution"
api_url = "{url}"
instance = "heers"
token = "{EVO_KEY}"
webhook_secret = "{EVO_KEY}"
{}{}"#,
        head(""),
        group("veulen", "Veulen", "wa", VEULEN, &[]),
        group("heers", "Heers", "evo", HEERS, &[]),
        url = fake.url,
    );
    let app = spawn_app(&config).await;
    // Jan's first unconfirmed alert reaches the relay through WAHA ...
    let first = WahaMsg {
        session: "default",
        me: COORD_VEULEN,
        ..jan_in_veulen("default", COORD_VEULEN, UNCONFIRMED)
    };
    post_waha(&app, "wa", "hmac-wa", first.body()).await;
    eventually(5, "reminder + copy", || async {
        fake.delivered().len() == 2
    })
    .await;
    // ... his second one first through Evolution, which sits in Veulen too.
    let second = evolution_upsert(
        EVO_KEY,
        VEULEN,
        "32475111111@s.whatsapp.net",
        "3EB0FFEEDDCCBBAA9988",
        "Jan Peeters",
        "Weer iemand aan het inbreken in de Molenstraat!",
    );
    assert_eq!(post_webhook(&app, "evo", &[], second).await.status(), 200);
    eventually(5, "a second copy", || async { fake.delivered().len() == 3 }).await;
    quiet().await;
    let reminders = fake
        .calls()
        .into_iter()
        .filter(|c| c.body["chatId"] == VEULEN)
        .count();
    assert_eq!(reminders, 1, "one reminder per member per cooldown");
}

// ---------------------------------------------------------------- Cloud API

const PHONE_ID: &str = "106540352242922";
const APP_SECRET: &str = "app-secret";
const COORDINATORS_GROUP: &str = "Y2FwaV9ncm91cDoxMDY1NDAzNTIyNDI5MjI6MTIwMzYz";
const WIJKAGENT: &str = "32475777777";

fn cloud_network(fake: &FakeWhatsapp) -> String {
    format!(
        r#"{}
[accounts.cloud]
platform = "whatsapp-cloud"
api_url = "{}"
phone_number_id = "{PHONE_ID}"
token = "EAAG-test"
verify_token = "verify-me"
webhook_secret = "{APP_SECRET}"
{}{}"#,
        head(""),
        fake.url,
        group(
            "coordinatoren",
            "Coördinatoren",
            "cloud",
            COORDINATORS_GROUP,
            &[]
        ),
        group("wijkagent", "Wijkagent", "cloud", WIJKAGENT, &[]),
    )
}

async fn handshake(app: &TestApp, account: &str, query: &str) -> reqwest::Response {
    app.client
        .get(format!("{}/webhooks/{account}?{query}", app.addr))
        .send()
        .await
        .expect("get")
}

#[tokio::test]
async fn the_cloud_api_handshake_echoes_the_challenge_only_for_the_right_token() {
    let fake = FakeWhatsapp::start().await;
    let app = spawn_app(&cloud_network(&fake)).await;
    let ok = handshake(
        &app,
        "cloud",
        "hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=verify-me",
    )
    .await;
    assert_eq!(ok.status(), 200);
    assert!(
        ok.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    assert_eq!(ok.text().await.unwrap(), "1158201444");
    let wrong = handshake(
        &app,
        "cloud",
        "hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=guess",
    )
    .await;
    assert_eq!(wrong.status(), 403);
    assert!(!wrong.text().await.unwrap().contains("1158201444"));
    assert_eq!(
        handshake(&app, "cloud", "hub.challenge=1").await.status(),
        403
    );
    assert_eq!(
        handshake(&app, "nobody", "hub.mode=subscribe")
            .await
            .status(),
        404
    );
}

#[tokio::test]
async fn a_platform_without_a_handshake_answers_404_to_get() {
    let fake = FakeWhatsapp::start().await;
    let app = spawn_app(&waha_network(&fake)).await;
    let r = handshake(
        &app,
        "coord-veulen",
        "hub.mode=subscribe&hub.verify_token=x&hub.challenge=1",
    )
    .await;
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn a_cloud_api_message_with_a_bad_signature_gets_401_and_changes_nothing() {
    let fake = FakeWhatsapp::start().await;
    let app = spawn_app(&cloud_network(&fake)).await;
    let body = cloud_text(
        PHONE_ID,
        "32475222222",
        Some(COORDINATORS_GROUP),
        "wamid.HBgLMzI0NzUyMjIyMjIVAgASGBQ3RjFB",
        "An Janssens",
        ALERT,
    );
    let forged = cloud_signature("not-the-secret", &body);
    let r = post_webhook(
        &app,
        "cloud",
        &[("X-Hub-Signature-256", forged)],
        body.clone(),
    )
    .await;
    assert_eq!(r.status(), 401);
    assert_eq!(
        post_webhook(&app, "cloud", &[], body.clone())
            .await
            .status(),
        401
    );
    quiet().await;
    assert!(fake.calls().is_empty());
    let good = cloud_signature(APP_SECRET, &body);
    let r = post_webhook(&app, "cloud", &[("X-Hub-Signature-256", good)], body).await;
    assert_eq!(r.status(), 200);
    eventually(5, "a copy to the wijkagent", || async {
        fake.delivered().len() == 1
    })
    .await;
    let c = &fake.delivered()[0];
    assert_eq!(c.api, Api::Cloud);
    assert_eq!(c.sender, PHONE_ID);
    assert_eq!(c.key.as_deref(), Some("EAAG-test"));
    assert_eq!(c.body["messaging_product"], "whatsapp");
    assert_eq!(c.body["recipient_type"], "individual");
    assert_eq!(c.body["to"], WIJKAGENT);
    assert_eq!(c.body["type"], "text");
    assert_eq!(
        c.body["text"]["body"],
        format!("[Coördinatoren] An: {ALERT}")
    );
}

#[tokio::test]
async fn a_cloud_api_reminder_replies_in_context_and_a_throttled_send_waits() {
    let fake = FakeWhatsapp::start().await;
    fake.script(vec![WaReply::CloudThrottled(1)]);
    let app = spawn_app(&cloud_network(&fake)).await;
    let wamid = "wamid.HBgLMzI0NzUyMjIyMjIVAgASGBQ3RjFBMkIzQzRENUU2RjdBOEI5QwA=";
    let body = cloud_text(
        PHONE_ID,
        "32475222222",
        Some(COORDINATORS_GROUP),
        wamid,
        "An",
        UNCONFIRMED,
    );
    let sig = cloud_signature(APP_SECRET, &body);
    assert_eq!(
        post_webhook(&app, "cloud", &[("X-Hub-Signature-256", sig)], body)
            .await
            .status(),
        200
    );
    eventually(8, "reminder + copy", || async {
        fake.delivered().len() == 2
    })
    .await;
    let reminder = fake
        .delivered()
        .into_iter()
        .find(|c| c.body["to"] == COORDINATORS_GROUP)
        .expect("reminder in the group");
    assert_eq!(reminder.body["recipient_type"], "group");
    assert_eq!(reminder.body["context"]["message_id"], wamid);
    let calls = fake.calls();
    let throttled = calls.iter().find(|c| !c.answered_ok).expect("the 130429");
    let retry = calls
        .iter()
        .filter(|c| c.answered_ok && c.body["to"] == throttled.body["to"])
        .map(|c| c.at)
        .min()
        .expect("a retry");
    assert!(retry.duration_since(throttled.at) >= Duration::from_millis(950));
}

// ----------------------------------------------------------- mixed network

#[tokio::test]
async fn a_mixed_network_relays_from_telegram_to_whatsapp_and_back() {
    let tg = FakeTelegram::start().await;
    let wa = FakeWhatsapp::start().await;
    let config = format!(
        r#"{}
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
{}{}{}"#,
        head(""),
        tg.url,
        wa.url,
        group("veulen", "Veulen", "bot", "-1001000000000", &[]),
        group("heers", "Heers", "wa", HEERS, &[]),
        group("batsheers", "Batsheers", "wa", BATSHEERS, &[]),
    );
    let app = spawn_app(&config).await;
    // Telegram → WhatsApp.
    let r = app
        .webhook(
            "bot",
            Some("s3cret-token"),
            tg_update(1, "-1001000000000", 10, 555, "Jan", ALERT),
        )
        .await;
    assert_eq!(r.status(), 200);
    eventually(5, "two WhatsApp copies", || async {
        wa.delivered().len() == 2
    })
    .await;
    assert_eq!(chats(&wa.delivered(), "chatId"), vec![HEERS, BATSHEERS]);
    assert!(
        wa.delivered()
            .iter()
            .all(|c| c.body["text"] == format!("[Veulen] Jan: {ALERT}"))
    );
    // WhatsApp → Telegram (and the other WhatsApp group).
    let an = WahaMsg {
        session: "heers",
        me: COORD_HEERS,
        chat: HEERS,
        participant: "32475222222@c.us",
        stanza: "A5F1E3C2B4D6978800112233AABBCCDD",
        name: "An Janssens",
        text: "Twee mannen proberen deuren van auto's open te trekken in de Stationsstraat, politie is verwittigd",
    };
    assert_eq!(
        post_waha(&app, "wa", "hmac-wa", an.body()).await.status(),
        200
    );
    eventually(5, "a Telegram copy", || async { tg.delivered().len() == 1 }).await;
    eventually(5, "a third WhatsApp copy", || async {
        wa.delivered().len() == 3
    })
    .await;
    let to_tg = &tg.delivered()[0];
    assert_eq!(to_tg["chat_id"], -1001000000000i64);
    assert_eq!(to_tg["text"], format!("[Heers] An: {}", an.text));
    let to_batsheers = wa.delivered().into_iter().last().unwrap();
    assert_eq!(to_batsheers.body["chatId"], BATSHEERS);
    assert_eq!(
        to_batsheers.body["text"],
        format!("[Heers] An: {}", an.text)
    );
}

// --- Gateways as they are today (issue 15): one test per defect, over the
// fixtures in tests/fixtures/ (see the README there for their sources).

/// Veulen, Heers and Batsheers on the two WAHA sessions; Veulen's
/// coordinators are its linked number and Marc, listed by phone number.
fn waha_network_with_marc(fake: &FakeWhatsapp) -> String {
    waha_network(fake).replace(
        &format!("coordinators = [\"{COORD_VEULEN}\"]"),
        &format!("coordinators = [\"{COORD_VEULEN}\", \"{MARC}\"]"),
    )
}

const MARC: &str = "32475333333@c.us";
const MARC_LID: &str = "204567890123456@lid";

fn texts_to(calls: &[WaCall], chat: &str) -> Vec<String> {
    calls
        .iter()
        .filter(|c| c.body["chatId"] == chat || c.body["number"] == chat || c.body["to"] == chat)
        .map(|c| c.body["text"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn what_the_linked_phones_owner_types_through_gows_reaches_the_other_villages() {
    let fake = FakeWhatsapp::start().await;
    let app = spawn_app(&waha_network(&fake)).await;
    // GOWS: `from` is the group, `to` the sender, also for our own number.
    let body = fixture("waha/message-any-gows-typed-on-phone.json").to_string();
    let r = post_waha(&app, "coord-veulen", "hmac-veulen", body).await;
    assert_eq!(r.status(), 200);
    eventually(5, "copies in Heers and Batsheers", || async {
        fake.delivered().len() == 2
    })
    .await;
    let sent = fake.delivered();
    assert_eq!(chats(&sent, "chatId"), vec![HEERS, BATSHEERS]);
    assert!(
        sent.iter().all(|c| c.body["text"]
            .as_str()
            .unwrap()
            .contains("Inbraak gemeld in de Molenstraat")),
        "{sent:?}"
    );
}

#[tokio::test]
async fn a_noweb_echo_of_our_own_copy_is_answered_200_and_relayed_nowhere() {
    let fake = FakeWhatsapp::start().await;
    let app = spawn_app(&waha_network(&fake)).await;
    // Baileys gives our own send no participant: WAHA leaves `to` out.
    let body = fixture("waha/message-any-noweb-own-echo.json").to_string();
    let r = post_waha(&app, "coord-veulen", "hmac-veulen", body).await;
    assert_eq!(r.status(), 200, "a refusal would make WAHA retry");
    let answer: Value = r.json().await.unwrap();
    assert_eq!(answer["accepted"], 0);
    // Sentinel: a member's alert after it; once its copies are out,
    // anything the echo had caused would have been sent before them.
    let r = post_waha(
        &app,
        "coord-veulen",
        "hmac-veulen",
        jan_in_veulen("coord-veulen", COORD_VEULEN, ALERT).body(),
    )
    .await;
    assert_eq!(r.status(), 200);
    eventually(5, "the sentinel's two copies", || async {
        fake.delivered().len() >= 2
    })
    .await;
    let sent = fake.delivered();
    assert_eq!(chats(&sent, "chatId"), vec![HEERS, BATSHEERS], "{sent:?}");
}

#[tokio::test]
async fn a_coordinator_listed_by_number_is_recognised_behind_a_webjs_lid() {
    let fake = FakeWhatsapp::start().await;
    fake.know_lid(MARC_LID, MARC);
    let app = spawn_app(&waha_network_with_marc(&fake)).await;
    // WEBJS names Marc only by his @lid; the config lists his number.
    let body = fixture("waha/message-webjs-lid-member.json").to_string();
    let r = post_waha(&app, "coord-veulen", "hmac-veulen", body).await;
    assert_eq!(r.status(), 200);
    eventually(5, "the answer to /status", || async {
        fake.delivered().len() == 1
    })
    .await;
    let answer = &texts_to(&fake.delivered(), VEULEN)[0];
    assert!(
        answer.starts_with("Geen meldingen"),
        "a coordinator's /status, not a refusal: {answer}"
    );
    assert_eq!(fake.lid_lookups(), vec![MARC_LID.to_string()]);
    // Learned: the next message asks WAHA nothing.
    let again = fixture("waha/message-webjs-lid-member.json")
        .to_string()
        .replace("3EB0F0E1D2C3B4A59687", "3EB0F0E1D2C3B4A59688");
    let r = post_waha(&app, "coord-veulen", "hmac-veulen", again).await;
    assert_eq!(r.status(), 200);
    eventually(5, "the second answer", || async {
        fake.delivered().len() == 2
    })
    .await;
    assert_eq!(fake.lid_lookups().len(), 1);
}

#[tokio::test]
async fn a_lid_learned_from_an_engine_that_gives_the_number_needs_no_lookup() {
    let fake = FakeWhatsapp::start().await;
    let app = spawn_app(&waha_network_with_marc(&fake)).await;
    // NOWEB gives Marc's number beside his @lid: the pair is learned.
    let noweb = fixture("waha/message-noweb-lid-with-phone.json").to_string();
    let r = post_waha(&app, "coord-veulen", "hmac-veulen", noweb).await;
    assert_eq!(r.status(), 200);
    let webjs = fixture("waha/message-webjs-lid-member.json").to_string();
    let r = post_waha(&app, "coord-veulen", "hmac-veulen", webjs).await;
    assert_eq!(r.status(), 200);
    eventually(5, "the answer to /status", || async {
        fake.delivered().len() == 1
    })
    .await;
    let answer = &texts_to(&fake.delivered(), VEULEN)[0];
    assert!(answer.starts_with("Geen meldingen"), "{answer}");
    assert!(fake.lid_lookups().is_empty(), "{:?}", fake.lid_lookups());
}

/// The Evolution network with Els (32475888888) as Veulen's coordinator,
/// authenticated by the custom header (Evolution's default events carry
/// `apikey: null`).
fn evolution_network_with_els(fake: &FakeWhatsapp) -> String {
    evolution_network(fake).replacen(
        "coordinators = []",
        "coordinators = [\"32475888888@c.us\"]",
        1,
    )
}

#[tokio::test]
async fn an_evolution_event_with_apikey_null_is_accepted_by_its_custom_header_only() {
    let fake = FakeWhatsapp::start().await;
    let app = spawn_app(&evolution_network(&fake)).await;
    let body = fixture("evolution/messages-upsert-apikey-null.json").to_string();
    let r = post_webhook(&app, "heers-evo", &[], body.clone()).await;
    assert_eq!(r.status(), 401);
    let r = post_webhook(&app, "heers-evo", &[("apikey", EVO_KEY.into())], body).await;
    assert_eq!(r.status(), 200);
    eventually(5, "two copies", || async { fake.delivered().len() == 2 }).await;
    // The header decides: a wrong one is refused even when the event's own
    // apikey is right.
    let with_key = evolution_upsert(
        EVO_KEY,
        VEULEN,
        "32475111111@s.whatsapp.net",
        "3EB0AAAABBBBCCCCDDDD",
        "Jan Peeters",
        UNCONFIRMED,
    );
    let r = post_webhook(&app, "heers-evo", &[("apikey", "wrong".into())], with_key).await;
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn doorsturen_in_a_flattened_evolution_reply_forwards_the_quoted_text() {
    let fake = FakeWhatsapp::start().await;
    let app = spawn_app(&evolution_network_with_els(&fake)).await;
    // Evolution 2.3: the reply is a `conversation`, the quote only in
    // data.contextInfo; the relay never stored the quoted message.
    let body = fixture("evolution/messages-upsert-v2.3-flattened-reply.json").to_string();
    let r = post_webhook(&app, "heers-evo", &[("apikey", EVO_KEY.into())], body).await;
    assert_eq!(r.status(), 200);
    eventually(5, "two copies and the answer", || async {
        fake.delivered().len() == 3
    })
    .await;
    let sent = fake.delivered();
    for chat in [HEERS, BATSHEERS] {
        let t = &texts_to(&sent, chat)[0];
        assert!(t.contains("koevoet"), "{t}");
    }
    let answer = &texts_to(&sent, VEULEN)[0];
    assert!(answer.starts_with("Doorgestuurd naar 2"), "{answer}");
}

#[tokio::test]
async fn a_cloud_batch_with_a_member_who_has_only_a_username_is_handled_whole() {
    let fake = FakeWhatsapp::start().await;
    let app = spawn_app(&cloud_network(&fake)).await;
    let mut v = fixture("whatsapp-cloud/message-username-batch.json");
    let value = v.pointer_mut("/entry/0/changes/0/value").unwrap();
    value["metadata"]["phone_number_id"] = PHONE_ID.into();
    for m in value["messages"].as_array_mut().unwrap() {
        m["group_id"] = COORDINATORS_GROUP.into();
    }
    let body = v.to_string();
    let sig = cloud_signature(APP_SECRET, &body);
    let r = post_webhook(&app, "cloud", &[("X-Hub-Signature-256", sig)], body).await;
    assert_eq!(r.status(), 200, "Meta would retry and disable the webhook");
    // Sofie (no number, a username) reported a burglary: it reaches the
    // wijkagent, named by her first name only.
    eventually(5, "the copy for the wijkagent", || async {
        fake.delivered().len() == 1
    })
    .await;
    let sent = fake.delivered();
    assert_eq!(sent[0].body["to"], WIJKAGENT);
    let text = sent[0].body["text"]["body"].as_str().unwrap();
    assert!(
        text.starts_with("[Coördinatoren] Sofie: Inbraak bezig"),
        "{text}"
    );
    assert!(!text.contains("BE."), "{text}");
}
