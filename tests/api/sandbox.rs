//! What members and coordinators of the Heers network see, on the sandbox.

use crate::helpers::VEULEN_ALERT as ALERT_CALLED;
use crate::helpers::*;

const ALERT_UNCALLED: &str = "Verdachte grijze bestelwagen rijdt traag door de Kerkstraat";

#[tokio::test]
async fn a_confirmed_alert_in_veulen_reaches_every_other_village_with_its_origin() {
    let app = spawn_app(&heers_config_with_sandbox()).await;
    let answer = app
        .post_sandbox("veulen", "+32475123456", "Jan Peeters", ALERT_CALLED)
        .await;
    assert_eq!(answer["alert"], true);
    assert_eq!(answer["confirmed"], true);

    for v in OTHER_VILLAGES {
        eventually(5, &format!("a copy in {v}"), || async {
            app.relayed(v).await.len() == 1
        })
        .await;
        let copy = &app.relayed(v).await[0];
        let text = copy["text"].as_str().unwrap();
        assert_eq!(text, format!("[Veulen] Jan: {ALERT_CALLED}"));
        assert!(!text.contains("475"), "no phone number in the copy");
        assert!(!text.contains("Peeters"), "first name only");
    }
    // Nothing is sent back to the origin group: no reminder, no copy.
    assert!(app.relayed("veulen").await.is_empty());
}

#[tokio::test]
async fn an_unconfirmed_alert_gets_one_friendly_reminder_per_member_per_cooldown() {
    let app = spawn_app(&heers_config_with_sandbox()).await;
    let first = app
        .post_sandbox("veulen", "piet", "Piet", ALERT_UNCALLED)
        .await;
    let first_id = first["message"]["id"].as_str().unwrap().to_string();
    app.post_sandbox(
        "veulen",
        "piet",
        "Piet",
        "Verdachte man loert in de tuinen van de Dorpsstraat",
    )
    .await;
    app.post_sandbox(
        "veulen",
        "an",
        "An",
        "Inbraak bezig in de Molenstraat, twee mannen met een koevoet aan de achterdeur!",
    )
    .await;

    eventually(5, "two reminders in Veulen", || async {
        app.relayed("veulen").await.len() == 2
    })
    .await;
    let reminders = app.relayed("veulen").await;
    assert_eq!(
        reminders[0]["reply_to"],
        first_id.as_str(),
        "a reply to the member's message"
    );
    let text = reminders[0]["text"].as_str().unwrap();
    assert!(
        text.contains("Piet") && text.contains("eerst 101"),
        "{text}"
    );
    // The alerts themselves were forwarded (default: forward), with a note.
    eventually(5, "three copies in Heers", || async {
        app.relayed("heers").await.len() == 3
    })
    .await;
    let copy = app.relayed("heers").await[0]["text"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        copy.starts_with("[Veulen] Piet: Verdachte grijze"),
        "{copy}"
    );
    assert!(copy.contains("niet vermeld of 101"), "{copy}");
}

#[tokio::test]
async fn coordinators_are_never_reminded() {
    let app = spawn_app(&heers_config_with_sandbox()).await;
    let a = app
        .post_sandbox("veulen", "coord-veulen", "Marc", ALERT_UNCALLED)
        .await;
    let kinds: Vec<&str> = a["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["kind"].as_str().unwrap())
        .collect();
    assert!(!kinds.contains(&"remind"), "{kinds:?}");
    eventually(5, "copies", || async {
        app.relayed("heers").await.len() == 1
    })
    .await;
    let copy = app.relayed("heers").await[0]["text"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        !copy.contains("niet vermeld"),
        "a coordinator's alert carries no note: {copy}"
    );
    assert!(app.relayed("veulen").await.is_empty());
}

#[tokio::test]
async fn chit_chat_is_neither_forwarded_nor_answered() {
    let app = spawn_app(&heers_config_with_sandbox()).await;
    for t in [
        "Onze kat is weg",
        "👍 bedankt",
        "Verdacht lekker weer vandaag",
    ] {
        let a = app.post_sandbox("veulen", "piet", "Piet", t).await;
        assert_eq!(a["alert"], false, "{t}");
    }
    // A marker alert afterwards proves the workers ran past the chit-chat.
    app.post_sandbox("heks", "an", "An", ALERT_CALLED).await;
    eventually(5, "marker copy in Veulen", || async {
        app.relayed("veulen").await.len() == 1
    })
    .await;
    for v in OTHER_VILLAGES {
        let copies = app.relayed(v).await;
        assert!(
            copies
                .iter()
                .all(|c| !c["text"].as_str().unwrap().contains("kat")),
            "{v}"
        );
    }
    assert_eq!(
        app.relayed("veulen").await.len(),
        1,
        "no reminder for chit-chat"
    );
}

#[tokio::test]
async fn a_message_written_by_the_relay_itself_is_never_relayed() {
    let app = spawn_app(&heers_config_with_sandbox()).await;
    let a = app
        .post_sandbox("veulen", "relay:sandbox", "BIN Heers", ALERT_CALLED)
        .await;
    assert_eq!(a["actions"][0]["kind"], "none");
    app.post_sandbox("heks", "an", "An", ALERT_CALLED).await;
    eventually(5, "marker copy", || async {
        app.relayed("heers").await.len() == 1
    })
    .await;
    assert_eq!(app.relayed("heers").await.len(), 1);
}

#[tokio::test]
async fn an_unknown_sandbox_group_and_a_bad_body_are_refused_clearly() {
    let app = spawn_app(&heers_config_with_sandbox()).await;
    let r = app
        .client
        .post(format!("{}/sandbox/rukkelingen-loon/messages", app.addr))
        .json(&serde_json::json!({"sender": "a", "text": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = app
        .client
        .post(format!("{}/sandbox/veulen/messages", app.addr))
        .header("content-type", "application/json")
        .body("{\"sender\": 1}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(!body["error"].as_str().unwrap().contains('\n'));
}

#[tokio::test]
async fn health_readiness_and_metrics_answer() {
    let app = spawn_app(&heers_config_with_sandbox()).await;
    for p in ["/healthz", "/readyz"] {
        let r = app
            .client
            .get(format!("{}{p}", app.addr))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{p}");
    }
    app.post_sandbox("veulen", "jan", "Jan", ALERT_CALLED).await;
    eventually(5, "sent", || async {
        app.metrics()
            .await
            .contains("buurtrelay_sends_total{account=\"sandbox\",outcome=\"ok\"} 10")
    })
    .await;
    let m = app.metrics().await;
    assert!(
        m.contains("buurtrelay_alerts_total{police_called=\"yes\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("# TYPE buurtrelay_send_seconds histogram"),
        "{m}"
    );
    // The alert's ingest and its deliveries were flushed: each flush counted.
    let flushes = m
        .lines()
        .find_map(|l| l.strip_prefix("buurtrelay_store_flush_seconds_count "))
        .and_then(|n| n.parse::<u64>().ok());
    assert!(flushes.is_some_and(|n| n >= 1), "{m}");
    assert!(
        m.contains("buurtrelay_queue_depth{account=\"sandbox\"} 0"),
        "{m}"
    );
}

#[tokio::test]
async fn with_hold_an_unconfirmed_alert_waits_and_is_forwarded_with_a_note_at_the_timeout() {
    let cfg = heers_config_with_sandbox()
        .replace("unconfirmed = \"forward\"", "unconfirmed = \"hold\"")
        .replace("hold_for = \"15m\"", "hold_for = \"2s\"");
    let app = spawn_app(&cfg).await;
    let a = app
        .post_sandbox("veulen", "piet", "Piet", ALERT_UNCALLED)
        .await;
    let kinds: Vec<&str> = a["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["remind", "hold"]);
    eventually(5, "the reminder", || async {
        app.relayed("veulen").await.len() == 1
    })
    .await;
    assert!(
        app.relayed("heers").await.is_empty(),
        "held: not yet forwarded"
    );
    eventually(8, "release after hold_for", || async {
        app.relayed("heers").await.len() == 1
    })
    .await;
    let copy = app.relayed("heers").await[0]["text"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(copy.contains("niet vermeld of 101"), "{copy}");
}

/// A message in the band of doubt is neither forwarded nor ignored: the
/// village's coordinators are asked in the group, as a reply to it, and the
/// operator sees it counted.
#[tokio::test]
async fn a_doubtful_message_asks_the_coordinators_in_the_group_and_goes_nowhere_else() {
    let app = spawn_app(&format!(
        "{}\n[protocol]\nreview_band = [0.0, 1.0]\n",
        heers_config_with_sandbox()
    ))
    .await;
    let posted = app
        .post_sandbox(
            "veulen",
            "piet",
            "Piet",
            "Verdachte man loert in de tuinen van de Dorpsstraat",
        )
        .await;
    assert_eq!(posted["actions"][0]["kind"], "review", "{posted}");
    let id = posted["message"]["id"].as_str().unwrap().to_string();
    eventually(5, "the question in Veulen", || async {
        app.relayed("veulen").await.len() == 1
    })
    .await;
    let q = &app.relayed("veulen").await[0];
    assert!(text(q).contains("/doorsturen"), "{q}");
    assert_eq!(q["reply_to"].as_str(), Some(id.as_str()), "a reply to it");
    let m = app.metrics().await;
    assert!(
        m.contains(r#"buurtrelay_messages_in_total{platform="sandbox",outcome="review"} 1"#),
        "{m}"
    );
    // Nothing went to the other villages: a sentinel alert from a
    // coordinator arrives in Heers first and alone.
    app.post_sandbox(
        "veulen",
        "coord-veulen",
        "Marc",
        "Inbraak bezig in de Molenstraat, twee mannen aan de achterdeur",
    )
    .await;
    eventually(5, "the sentinel in Heers", || async {
        !app.relayed("heers").await.is_empty()
    })
    .await;
    let heers = app.relayed("heers").await;
    assert_eq!(heers.len(), 1, "{heers:?}");
    assert!(text(&heers[0]).contains("Molenstraat"));
}
