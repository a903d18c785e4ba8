//! Photos (issue 15): `relay.media = "caption"` (the caption travels, with a
//! note that a photo was posted in the village of origin) or `"forward"`
//! (the photo travels with the copy), against fakes that hold the files as
//! the gateways do.

use base64::Engine;
use serde_json::Value;

use crate::fakes::*;
use crate::helpers::*;

const SECRET: &str = "s3cret-token";
const VEULEN: &str = "-1001000000000";
const HEERS: i64 = -1001000000001;
const BATSHEERS: &str = "120363043333333333@g.us";
const OPHEERS: &str = "120363044444444444@g.us";
const WIJKAGENT: &str = "32475777777";
const PHONE_ID: &str = "106540352242922";
/// The photo of the Telegram fixture (its largest size).
const TG_FILE: &str = "AgACAgQAAxkBAAIBQ2dXk3s0c2FtcGxlX2xhcmdlAAI";
const NOTE: &str = "📷 Er werd een foto bij gepost in de groep van Veulen.";

/// Some bytes standing in for a JPEG.
fn jpeg(seed: u8, len: usize) -> Vec<u8> {
    let mut v = vec![0xFF, 0xD8, 0xFF, 0xE0];
    v.extend((0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)));
    v
}

/// Veulen and Heers on one Telegram bot, Batsheers on WAHA, Opheers on
/// Evolution, the wijkagent on the Cloud API; `relay` are extra `[relay]`
/// keys.
fn network(tg: &FakeTelegram, wa: &FakeWhatsapp, relay: &str) -> String {
    format!(
        r#"
[network]
name = "Test Heers"
[relay]
merge_window = "0s"
{relay}
[delivery]
retry_base = "50ms"
retry_max = "200ms"
send_timeout = "2s"
[accounts.bot]
platform = "telegram"
token = "123456:TESTTOKEN"
webhook_secret = "{SECRET}"
api_url = "{tg}"
[accounts.wa]
platform = "waha"
api_url = "{wa}"
session = "heers"
token = "waha-key"
webhook_secret = "hmac-wa"
[accounts.evo]
platform = "evolution"
api_url = "{wa}"
instance = "heers"
token = "evo-key"
webhook_secret = "evo-key"
[accounts.cloud]
platform = "whatsapp-cloud"
api_url = "{wa}"
phone_number_id = "{PHONE_ID}"
token = "EAAG-test"
verify_token = "verify-me"
[[groups]]
id = "veulen"
name = "Veulen"
account = "bot"
chat = "{VEULEN}"
[[groups]]
id = "heers"
name = "Heers"
account = "bot"
chat = "{HEERS}"
[[groups]]
id = "batsheers"
name = "Batsheers"
account = "wa"
chat = "{BATSHEERS}"
[[groups]]
id = "opheers"
name = "Opheers"
account = "evo"
chat = "{OPHEERS}"
[[groups]]
id = "wijkagent"
name = "Wijkagent"
account = "cloud"
chat = "{WIJKAGENT}"
"#,
        tg = tg.url,
        wa = wa.url,
    )
}

async fn post_telegram_photo(app: &TestApp) {
    let u = fixture("telegram/update-photo-caption.json");
    let r = app.webhook("bot", Some(SECRET), u.to_string()).await;
    assert_eq!(r.status(), 200);
}

fn b64(v: &Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(v.as_str().expect("base64"))
        .expect("base64")
}

#[tokio::test]
async fn by_default_the_caption_travels_with_a_note_where_the_photo_was_posted() {
    let tg = FakeTelegram::start().await;
    let wa = FakeWhatsapp::start().await;
    let app = spawn_app(&network(&tg, &wa, "")).await;
    post_telegram_photo(&app).await;
    eventually(5, "the copies", || async {
        tg.delivered().len() == 1 && wa.delivered().len() == 3
    })
    .await;
    let heers = &tg.delivered()[0];
    assert!(heers.get("photo").is_none(), "a text: {heers}");
    let text = heers["text"].as_str().unwrap();
    assert!(
        text.starts_with("[Veulen] Marc: Deze wagen staat"),
        "{text}"
    );
    assert!(text.ends_with(NOTE), "{text}");
    assert!(tg.get_files().is_empty(), "nothing fetched");
}

#[tokio::test]
async fn forwarded_a_telegram_photo_reaches_every_platform_with_its_caption() {
    let tg = FakeTelegram::start().await;
    let wa = FakeWhatsapp::start().await;
    let photo = jpeg(1, 4000);
    tg.put_file(TG_FILE, &photo);
    let app = spawn_app(&network(&tg, &wa, "media = \"forward\"")).await;
    post_telegram_photo(&app).await;
    eventually(5, "a photo in every group", || async {
        tg.delivered().len() == 1 && wa.delivered().len() == 3
    })
    .await;
    // Telegram, the same bot: by file_id, nothing downloaded for it.
    let heers = &tg.delivered()[0];
    assert_eq!(heers["photo"], TG_FILE, "{heers}");
    let caption = heers["caption"].as_str().unwrap();
    assert!(
        caption.starts_with("[Veulen] Marc: Deze wagen staat"),
        "{caption}"
    );
    assert!(!caption.contains(NOTE));
    // WAHA: sendImage with the file's bytes.
    let sent = wa.delivered();
    let waha = sent.iter().find(|c| c.api == Api::Waha).expect("waha");
    assert_eq!(waha.body["chatId"], BATSHEERS);
    assert_eq!(b64(&waha.body["file"]["data"]), photo);
    assert_eq!(waha.body["caption"], caption);
    // Evolution: sendMedia, base64.
    let evo = sent.iter().find(|c| c.api == Api::Evolution).expect("evo");
    assert_eq!(evo.body["number"], OPHEERS);
    assert_eq!(evo.body["mediatype"], "image");
    assert_eq!(b64(&evo.body["media"]), photo);
    // Cloud API: uploaded, then sent by its media id.
    let cloud = sent.iter().find(|c| c.api == Api::Cloud).expect("cloud");
    assert_eq!(cloud.body["type"], "image");
    assert!(cloud.body["image"]["id"].is_string(), "{}", cloud.body);
    assert_eq!(wa.cloud_uploads(), vec![photo.clone()]);
    // Fetched from Telegram once per platform that needed the bytes.
    assert_eq!(tg.get_files().len(), 3);
}

#[tokio::test]
async fn forwarded_whatsapp_photos_are_fetched_from_their_gateway_and_uploaded_to_telegram() {
    let tg = FakeTelegram::start().await;
    let wa = FakeWhatsapp::start().await;
    // WAHA (GOWS) downloaded the photo; Evolution and the Cloud API hold theirs.
    let waha_photo = jpeg(2, 3000);
    let evo_photo = jpeg(3, 2500);
    let cloud_photo = jpeg(4, 2000);
    wa.put_file(
        "/api/files/coord-veulen/false_120363041111111111@g.us_3A7C2F9E1B5D8A4C6E0F_32475333333@c.us.jpeg",
        &waha_photo,
    );
    wa.put_file("3A7C2F9E1B5D8A4C6E0F", &evo_photo);
    wa.put_file("1482930571234567", &cloud_photo);
    let config = network(&tg, &wa, "media = \"forward\"");
    let app = spawn_app(&config).await;

    // From WAHA, in Batsheers.
    let mut v = fixture("waha/message-media-caption.json");
    v["payload"]["from"] = BATSHEERS.into();
    v["payload"]["_data"]["Info"]["Chat"] = BATSHEERS.into();
    v["payload"]["body"] = "Verdachte wagen aan de kerk, politie is verwittigd".into();
    let r = post_waha(&app, "wa", "hmac-wa", v.to_string()).await;
    assert_eq!(r.status(), 200);
    eventually(5, "the WAHA photo in both Telegram groups", || async {
        tg.uploads().len() == 2
    })
    .await;
    assert!(tg.uploads().iter().all(|u| *u == waha_photo));
    let up = tg
        .delivered()
        .into_iter()
        .find(|b| b["chat_id"] == HEERS)
        .unwrap();
    assert!(
        up["caption"]
            .as_str()
            .unwrap()
            .starts_with("[Batsheers] Marc: Verdachte wagen"),
        "{up}"
    );

    // From Evolution, in Opheers (authenticated by the instance key in the event).
    let mut v = fixture("evolution/messages-upsert-image-caption.json");
    v["data"]["key"]["remoteJid"] = OPHEERS.into();
    v["data"]["message"]["ephemeralMessage"]["message"]["imageMessage"]["caption"] =
        "Inbraak bezig in de Molenstraat, 101 gebeld".into();
    v["apikey"] = "evo-key".into();
    let r = post_webhook(&app, "evo", &[], v.to_string()).await;
    assert_eq!(r.status(), 200);
    eventually(5, "the Evolution photo in both Telegram groups", || async {
        tg.uploads().len() == 4
    })
    .await;
    assert!(tg.uploads()[2..].iter().all(|u| *u == evo_photo));

    // From the Cloud API, the wijkagent's chat.
    let mut v = fixture("whatsapp-cloud/message-text.json");
    let m = v
        .pointer_mut("/entry/0/changes/0/value/messages/0")
        .unwrap();
    m["from"] = WIJKAGENT.into();
    m["type"] = "image".into();
    m["image"] = serde_json::json!({
        "caption": "Verdachte man met koevoet aan de garages, politie is ter plaatse",
        "mime_type": "image/jpeg", "sha256": "kJ2...", "id": "1482930571234567"
    });
    m.as_object_mut().unwrap().remove("text");
    v["entry"][0]["changes"][0]["value"]["contacts"][0]["wa_id"] = WIJKAGENT.into();
    v["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] = PHONE_ID.into();
    let r = post_webhook(&app, "cloud", &[], v.to_string()).await;
    assert_eq!(r.status(), 200);
    eventually(5, "the Cloud API photo in both Telegram groups", || async {
        tg.uploads().len() == 6
    })
    .await;
    assert!(tg.uploads()[4..].iter().all(|u| *u == cloud_photo));
}

#[tokio::test]
async fn a_photo_that_cannot_travel_leaves_the_copy_as_text_with_the_note() {
    let tg = FakeTelegram::start().await;
    let wa = FakeWhatsapp::start().await;
    // Telegram says the photo is 98342 bytes: over this network's limit.
    tg.put_file(TG_FILE, &jpeg(5, 500));
    let config = network(&tg, &wa, "media = \"forward\"\nmedia_max_bytes = 50000");
    let app = spawn_app(&config).await;
    post_telegram_photo(&app).await;
    eventually(5, "the copies", || async {
        tg.delivered().len() == 1 && wa.delivered().len() == 3
    })
    .await;
    let heers = &tg.delivered()[0];
    assert!(heers["text"].as_str().unwrap().ends_with(NOTE), "{heers}");
    for c in wa.delivered() {
        let t = c.body["text"]
            .as_str()
            .or_else(|| c.body["text"]["body"].as_str())
            .unwrap_or_default();
        assert!(t.ends_with(NOTE), "{:?}", c.body);
    }
    assert!(tg.get_files().is_empty(), "too large: not even asked for");
}

#[tokio::test]
async fn a_photo_gone_from_its_gateway_leaves_the_copy_as_text_with_the_note() {
    let tg = FakeTelegram::start().await;
    let wa = FakeWhatsapp::start().await;
    // WAHA no longer has the file (404).
    let app = spawn_app(&network(&tg, &wa, "media = \"forward\"")).await;
    let mut v = fixture("waha/message-media-caption.json");
    v["payload"]["from"] = BATSHEERS.into();
    v["payload"]["_data"]["Info"]["Chat"] = BATSHEERS.into();
    v["payload"]["body"] = "Verdachte wagen aan de kerk, politie is verwittigd".into();
    let r = post_waha(&app, "wa", "hmac-wa", v.to_string()).await;
    assert_eq!(r.status(), 200);
    eventually(5, "the two Telegram copies", || async {
        tg.delivered().len() == 2
    })
    .await;
    for b in tg.delivered() {
        let t = b["text"].as_str().unwrap();
        assert!(
            t.ends_with("📷 Er werd een foto bij gepost in de groep van Batsheers."),
            "{t}"
        );
    }
    assert!(tg.uploads().is_empty());
}
