//! Delivery that never loses an alert: faults, rate limits, hangs.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::*;

const SECRET: &str = "s3cret-token";

fn alert(i: i64) -> String {
    format!("Verdachte man nummer {i} loert in de tuinen van de Kerkstraat, 101 gebeld")
}

/// Copies per (chat, text), to find losses and duplicates.
fn tally(bodies: &[Value]) -> BTreeMap<(i64, String), usize> {
    let mut m = BTreeMap::new();
    for b in bodies {
        let key = (
            b["chat_id"].as_i64().unwrap_or(0),
            b["text"].as_str().unwrap_or("").to_string(),
        );
        *m.entry(key).or_default() += 1;
    }
    m
}

const NO_LIMITS: &str = "per_chat_limits = []\nper_account_limits = []";

#[tokio::test]
async fn with_30_percent_server_errors_every_copy_arrives_and_none_twice() {
    let fake = FakeTelegram::start().await;
    fake.fail_randomly(0.3, 42);
    let villages = ["Veulen", "Heers", "Batsheers", "Opheers", "Heks"];
    let app = spawn_app(&telegram_config(&fake, &villages, NO_LIMITS)).await;
    for i in 0..30 {
        let r = app
            .webhook(
                "bot",
                Some(SECRET),
                tg_update(i, "-1001000000000", 100 + i, 555, "Jan", &alert(i)),
            )
            .await;
        assert_eq!(r.status(), 200);
    }
    eventually(30, "120 copies", || async { fake.delivered().len() >= 120 }).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t = tally(&fake.delivered());
    assert_eq!(t.len(), 120, "30 alerts x 4 villages");
    assert!(t.values().all(|&n| n == 1), "no copy twice");
    let failed = fake.calls().iter().filter(|c| !c.answered_ok).count();
    assert!(
        failed > 20,
        "the fault injection really happened ({failed} failures)"
    );
}

#[tokio::test]
async fn after_429s_for_a_while_nothing_is_sent_before_the_retry_time() {
    let fake = FakeTelegram::start().await;
    fake.script(vec![
        Reply::TooMany(1),
        Reply::TooMany(1),
        Reply::TooMany(1),
    ]);
    let app = spawn_app(&telegram_config(&fake, &["Veulen", "Heers"], NO_LIMITS)).await;
    for i in 0..3 {
        app.webhook(
            "bot",
            Some(SECRET),
            tg_update(i, "-1001000000000", 100 + i, 555, "Jan", &alert(i)),
        )
        .await;
    }
    eventually(15, "3 copies", || async { fake.delivered().len() == 3 }).await;
    let calls = fake.calls();
    // After every 429 the chat stays quiet for the whole retry_after.
    for (i, c) in calls.iter().enumerate() {
        if !c.answered_ok {
            if let Some(next) = calls.get(i + 1) {
                assert!(
                    next.at.duration_since(c.at) >= Duration::from_secs(1),
                    "call {} came too early",
                    i + 1
                );
            }
        }
    }
    let order: Vec<String> = fake
        .delivered()
        .iter()
        .map(|b| b["text"].as_str().unwrap_or("").to_string())
        .collect();
    for (i, t) in order.iter().enumerate() {
        assert!(
            t.contains(&format!("nummer {i} ")),
            "strict order within the chat: {order:?}"
        );
    }
}

#[tokio::test]
async fn a_hanging_platform_times_out_and_does_not_slow_ingest() {
    let fake = FakeTelegram::start().await;
    fake.hang(true);
    let app = spawn_app(
        &telegram_config(
            &fake,
            &["Veulen", "Heers", "Batsheers"],
            &format!("{NO_LIMITS}\n"),
        )
        .replace("send_timeout = \"2s\"", "send_timeout = \"300ms\""),
    )
    .await;
    // Every webhook is acknowledged while no send has been answered.
    for i in 0..20 {
        let r = app
            .webhook(
                "bot",
                Some(SECRET),
                tg_update(i, "-1001000000000", 100 + i, 555, "Jan", &alert(i)),
            )
            .await;
        assert_eq!(r.status(), 200);
    }
    assert!(fake.delivered().is_empty());
    eventually(10, "timeouts are counted as retries", || async {
        app.metrics().await.contains("outcome=\"retry\"")
    })
    .await;
    fake.hang(false);
    eventually(20, "40 copies once the platform answers", || async {
        fake.delivered().len() >= 40
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t = tally(&fake.delivered());
    assert_eq!(t.len(), 40);
    assert!(t.values().all(|&n| n == 1));
}

/// 50 alerts into 11 groups against a fake that enforces Telegram's limits
/// (time scaled by 0.1): no 429, in close to the minimum time.
#[tokio::test]
async fn fifty_alerts_into_eleven_groups_respect_telegrams_limits() {
    let fake = FakeTelegram::start().await;
    fake.enforce_limits(TelegramLimits {
        scale: 0.1,
        // The relay counts a send when it starts; under a loaded machine the
        // request can reach the fake tens of milliseconds later than the one
        // before it. Telegram does not count to the millisecond either.
        tolerance: Duration::from_millis(40),
    });
    let villages = [
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
    ];
    let limits = "per_chat_limits = [\"1/100ms\", \"20/6s\"]\nper_account_limits = [\"30/100ms\"]\nmax_in_flight = 16";
    let app = spawn_app(&telegram_config(&fake, &villages, limits)).await;
    let t0 = Instant::now();
    for i in 0..50i64 {
        let chat = format!("-10010000000{:02}", i % 11);
        let r = app
            .webhook(
                "bot",
                Some(SECRET),
                tg_update(i, &chat, 100 + i, 555, "Jan", &alert(i)),
            )
            .await;
        assert_eq!(r.status(), 200);
    }
    eventually(60, "500 copies", || async { fake.delivered().len() >= 500 }).await;
    let elapsed = t0.elapsed();
    assert_eq!(
        fake.too_many_requests(),
        0,
        "no 429 from a fake that enforces the limits"
    );
    // Each group receives 50 - (its own ~4.5) copies: ~46, so at 20 per 6 s
    // the last ones cannot go before 12 s (2 full windows), plus ~0.1 s each.
    let per_chat =
        tally(&fake.delivered())
            .keys()
            .fold(BTreeMap::<i64, usize>::new(), |mut m, (c, _)| {
                *m.entry(*c).or_default() += 1;
                m
            });
    let max_per_chat = *per_chat.values().max().unwrap_or(&0) as f64;
    let minimum = ((max_per_chat / 20.0).ceil() - 1.0) * 6.0 + ((max_per_chat - 1.0) % 20.0) * 0.1;
    println!(
        "telegram limits (x0.1): {} copies in {:.2}s; minimum the limits allow {:.2}s; ratio {:.2}",
        fake.delivered().len(),
        elapsed.as_secs_f64(),
        minimum,
        elapsed.as_secs_f64() / minimum
    );
    assert!(
        elapsed.as_secs_f64() < minimum * 1.5 + 2.0,
        "close to the minimum: {elapsed:?} vs {minimum:.1}s"
    );
}
