//! The playground and the dashboard in a real browser (Debian's Chromium,
//! headless, through chromedriver): what an admin or a coordinator sees.
//! Screenshots go to `target/screenshots/`.

use std::path::PathBuf;

use serde_json::json;

use crate::helpers::*;
use crate::webdriver::{Browser, Driver};

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

const ALERT_UNCALLED: &str = "Verdachte grijze bestelwagen rijdt traag door de Kerkstraat";
const VILLAGES: [&str; 11] = [
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

fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("screenshots")
}

fn heers_with_admin() -> String {
    format!(
        "{}\n[admin]\ntoken = \"{ADMIN_TOKEN}\"\n",
        heers_config_with_sandbox()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_browser_an_alert_typed_in_veulen_shows_up_in_heers_and_the_dashboard_maps_every_village()
 {
    let test = "browser::in_a_browser_an_alert_typed_in_veulen_shows_up_in_heers";
    let Some(browser) = Browser::find_or_skip(test) else {
        return;
    };
    let app = spawn_app(&heers_with_admin()).await;
    let d = Driver::start(&browser)
        .await
        .expect("chromedriver and chromium start");
    let shots = screenshot_dir();
    let run = async {
        // --- playground, desktop width
        d.set_window(1400, 900).await?;
        d.goto(&format!("{}/", app.addr)).await?;
        d.wait_for(".live.on", 20).await?;
        d.wait_for(r#".phone[data-group="heers"] .chat li"#, 20)
            .await?;

        // Keyboard order: village → sender → message.
        d.execute(
            "document.getElementById('village').focus(); return true;",
            json!([]),
        )
        .await?;
        let active = d.find("#village").await?;
        d.send_keys(&active, "\u{E004}").await?;
        let focused = d
            .execute("return document.activeElement.id;", json!([]))
            .await?;
        anyhow::ensure!(
            focused == "sender",
            "Tab from the village goes to the sender, not {focused}"
        );

        d.click(&d.find(r#"#village option[value="veulen"]"#).await?)
            .await?;
        d.click(&d.find(r#"#sender option[value="jan"]"#).await?)
            .await?;
        let text = d.find("#text").await?;
        d.send_keys(&text, ALERT_UNCALLED).await?;
        // The preview says what the relay would do, before sending.
        d.wait_for("#preview .badge.alert", 10).await?;
        let preview = d.text_of("#preview", 10).await?;
        anyhow::ensure!(
            preview.contains("politie niet gebeld"),
            "preview: {preview}"
        );
        anyhow::ensure!(
            preview.contains("herinnering in Veulen"),
            "preview: {preview}"
        );
        anyhow::ensure!(
            preview.contains("doorsturen naar 10 dorpen"),
            "preview: {preview}"
        );
        d.screenshot(&shots.join("playground-preview.png")).await?;

        // Enter sends.
        d.send_keys(&text, "\u{E007}").await?;
        // The copy appears in another column, live.
        let copy_text = d
            .text_of(r#".phone[data-group="heers"] .msg.from-relay"#, 15)
            .await?;
        anyhow::ensure!(
            copy_text.contains(&format!("[Veulen] Jan: {ALERT_UNCALLED}")),
            "copy in Heers: {copy_text}"
        );
        // The reminder is a reply in Veulen, quoting Jan's message.
        let quoted = d
            .text_of(r#".phone[data-group="veulen"] .msg.from-relay .quote"#, 15)
            .await?;
        anyhow::ensure!(
            quoted.contains("Verdachte grijze"),
            "reminder quotes: {quoted}"
        );
        for v in ["batsheers", "vechmaal", "mechelen-bovelingen"] {
            d.wait_for(&format!(r#".phone[data-group="{v}"] .msg.from-relay"#), 15)
                .await?;
        }
        d.screenshot(&shots.join("playground-alert.png")).await?;

        // Reply to the copy in Heers, as its coordinator.
        let reply = d
            .find(r#".phone[data-group="heers"] .msg.from-relay button.reply"#)
            .await?;
        d.click(&reply).await?;
        d.wait_until(
            "the composer switched to Heers",
            "return document.getElementById('village').value === 'heers' && !document.getElementById('replying').hidden;",
            5,
        )
        .await?;
        d.click(&d.find(r#"#sender option[value="coord-heers"]"#).await?)
            .await?;
        d.wait_for("#commands:not([hidden])", 5).await?;
        let text = d.find("#text").await?;
        d.send_keys(
            &text,
            "Gezien aan de kerk van Heers, politie is ter plaatse\u{E007}",
        )
        .await?;
        let q = d
            .text_of(r#".phone[data-group="heers"] .msg.from-member .quote"#, 10)
            .await?;
        anyhow::ensure!(q.contains("[Veulen] Jan"), "the reply quotes the copy: {q}");
        d.screenshot(&shots.join("playground-desktop.png")).await?;

        // --- phone width: the composer on top, the columns scroll sideways
        d.set_window(390, 844).await?;
        d.wait_until(
            "columns scroll horizontally on a phone",
            "const p = document.querySelector('.phones'); return p.scrollWidth > p.clientWidth && document.getElementById('text').getBoundingClientRect().width <= window.innerWidth;",
            5,
        )
        .await?;
        d.screenshot(&shots.join("playground-phone.png")).await?;
        d.execute(
            "document.querySelector('.phones').scrollIntoView(); return true;",
            json!([]),
        )
        .await?;
        d.screenshot(&shots.join("playground-phone-columns.png"))
            .await?;

        // --- dashboard: refused without the token, then the sign-in form
        let r = app.client.get(format!("{}/admin", app.addr)).send().await?;
        anyhow::ensure!(r.status() == 401, "unauthenticated /admin: {}", r.status());
        d.set_window(1400, 900).await?;
        d.goto(&format!("{}/admin", app.addr)).await?;
        let token = d.wait_for("#token", 10).await?;
        anyhow::ensure!(
            d.find("svg.netmap").await.is_err(),
            "no map before signing in"
        );
        d.screenshot(&shots.join("admin-login.png")).await?;
        d.send_keys(&token, &format!("{ADMIN_TOKEN}\u{E007}"))
            .await?;
        d.wait_for("svg.netmap", 10).await?;
        let names = d
            .execute(
                "return Array.from(document.querySelectorAll('svg.netmap .node text')).map(t => t.textContent);",
                json!([]),
            )
            .await?;
        for v in VILLAGES {
            anyhow::ensure!(
                names.as_array().is_some_and(|a| a.iter().any(|n| n == v)),
                "{v} on the map: {names}"
            );
        }
        // The alert and where its copies went.
        d.wait_for(r#"table.alerts .state.delivered[data-group="heers"]"#, 10)
            .await?;
        // Live: an alert posted now shows up without reloading the page.
        d.wait_for(r#"#live-toggle[aria-pressed="true"]"#, 5)
            .await?;
        app.post_sandbox(
            "heks",
            "an",
            "An Claes",
            "Inbraak bezig in de Molenstraat, 101 is verwittigd",
        )
        .await;
        d.wait_until(
            "the new alert from Heks is listed without a reload",
            "return Array.from(document.querySelectorAll('table.alerts tbody tr td:nth-child(2)')).some(td => td.textContent === 'Heks');",
            20,
        )
        .await?;
        d.set_window(1400, 2600).await?;
        d.screenshot(&shots.join("admin-dashboard.png")).await?;
        anyhow::Ok(())
    };
    let result = run.await;
    if let Err(e) = result {
        let _ = d.screenshot(&shots.join("failure.png")).await;
        let text = d
            .execute(
                "return document.body ? document.body.innerText : '';",
                json!([]),
            )
            .await
            .unwrap_or_default();
        let console = d.console().await;
        d.quit().await;
        panic!(
            "{e:#}\n--- page text ---\n{}\n--- console ---\n{console}\n(screenshot: {})",
            text.as_str().unwrap_or_default(),
            shots.join("failure.png").display()
        );
    }
    d.quit().await;
}
