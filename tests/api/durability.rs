//! Nothing accepted is lost: restarts resume the outbox.

use crate::helpers::*;

const ALERT: &str = "Verdachte man met zaklamp in de tuinen van de Kerkstraat, 101 gebeld";

#[tokio::test]
async fn a_restart_resumes_a_non_empty_outbox_and_sends_each_copy_once() {
    let fake = FakeTelegram::start().await;
    let villages = ["Veulen", "Heers", "Batsheers", "Opheers", "Heks"];
    let app = spawn_app(&telegram_config(&fake, &villages, "")).await;
    // The platform is down: every send fails, entries stay queued.
    fake.script(vec![Reply::ServerError; 1000]);
    for i in 0..5 {
        let r = app
            .webhook(
                "bot",
                Some("s3cret-token"),
                tg_update(i, "-1001000000000", 100 + i, 555, "Jan", ALERT),
            )
            .await;
        assert_eq!(r.status(), 200);
    }
    eventually(5, "failed attempts", || async { fake.calls().len() >= 3 }).await;
    let queued: usize = app
        .state
        .store
        .queue_stats()
        .await
        .unwrap()
        .iter()
        .map(|q| q.depth)
        .sum();
    assert_eq!(queued, 20, "5 alerts x 4 other villages, all waiting");

    let app = app.restart().await;
    fake.script(vec![]);
    eventually(10, "20 copies after the restart", || async {
        fake.delivered().len() == 20
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let mut per_chat = std::collections::BTreeMap::<i64, usize>::new();
    for b in fake.delivered() {
        *per_chat.entry(b["chat_id"].as_i64().unwrap()).or_default() += 1;
    }
    assert_eq!(fake.delivered().len(), 20, "each copy exactly once");
    assert!(
        per_chat.values().all(|&n| n == 5),
        "5 alerts in each other village: {per_chat:?}"
    );
    assert!(
        !per_chat.contains_key(&-1001000000000),
        "nothing back to Veulen"
    );
    let queued: usize = app
        .state
        .store
        .queue_stats()
        .await
        .unwrap()
        .iter()
        .map(|q| q.depth)
        .sum();
    assert_eq!(queued, 0);
}

#[tokio::test]
async fn a_webhook_retry_after_a_restart_is_still_a_duplicate() {
    let fake = FakeTelegram::start().await;
    let app = spawn_app(&telegram_config(&fake, &["Veulen", "Heers"], "")).await;
    let body = tg_update(1, "-1001000000000", 10, 555, "Jan", ALERT);
    assert_eq!(
        app.webhook("bot", Some("s3cret-token"), body.clone())
            .await
            .status(),
        200
    );
    eventually(5, "one copy", || async { fake.delivered().len() == 1 }).await;
    let app = app.restart().await;
    assert_eq!(
        app.webhook("bot", Some("s3cret-token"), body)
            .await
            .status(),
        200
    );
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(fake.calls().len(), 1);
}
