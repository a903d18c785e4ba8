//! Admins edit the file; the running relay follows, and refuses a broken one.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::*;

#[tokio::test]
async fn the_relay_reloads_a_changed_file_and_keeps_the_old_one_when_it_is_broken() {
    let cfg =
        heers_config_with_sandbox().replace("reload_poll = \"2s\"", "reload_poll = \"100ms\"");
    let app = spawn_app(&cfg).await;
    // Rukkelingen-Loon starts a group.
    let added = format!(
        "{cfg}\n[[groups]]\nid = \"rukkelingen-loon\"\nname = \"Rukkelingen-Loon\"\naccount = \"sandbox\"\nchat = \"rukkelingen-loon\"\n"
    );
    std::fs::write(&app.config_path, &added).unwrap();
    eventually(5, "the new group is served", || async {
        app.client
            .get(format!("{}/sandbox/rukkelingen-loon/messages", app.addr))
            .send()
            .await
            .map(|r| r.status() == 200)
            .unwrap_or(false)
    })
    .await;
    // A broken file: the running config stays, the error is counted.
    std::fs::write(
        &app.config_path,
        format!("{added}\n[[routes]]\nfrom = \"*\"\nto = [\"nowhere\"]\n"),
    )
    .unwrap();
    eventually(5, "the error is counted", || async {
        app.metrics()
            .await
            .contains("buurtrelay_config_reloads_total{result=\"error\"} 1")
    })
    .await;
    app.post_sandbox(
        "veulen",
        "jan",
        "Jan",
        "Inbraak bij de buren in de Molenstraat, politie is verwittigd",
    )
    .await;
    eventually(5, "the new village still gets copies", || async {
        app.relayed("rukkelingen-loon").await.len() == 1
    })
    .await;
}

/// The real binary: SIGHUP reloads, a migrated Telegram group is logged with
/// the config line to change, SIGTERM stops cleanly.
#[test]
fn sighup_reloads_and_sigterm_stops_the_served_relay() {
    let dir = tempfile::tempdir().unwrap();
    let cfg_path = dir.path().join("relay.toml");
    let cfg = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"{}\"\nreload_poll = \"1h\"\n\
         [accounts.sandbox]\nplatform = \"sandbox\"\n\
         [[groups]]\nid = \"a\"\nname = \"A\"\naccount = \"sandbox\"\nchat = \"a\"\n\
         [[groups]]\nid = \"b\"\nname = \"B\"\naccount = \"sandbox\"\nchat = \"b\"\n",
        dir.path().join("data").display()
    );
    std::fs::write(&cfg_path, cfg).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_buurtrelay"))
        .args(["serve", "--config", cfg_path.to_str().unwrap()])
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let wait_for = |needle: &str| -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(l) = rx.recv_timeout(Duration::from_millis(100)) {
                if l.contains(needle) {
                    return l;
                }
            }
        }
        panic!("no log line with `{needle}`");
    };
    let listening = wait_for("listening on http://");
    assert!(listening.contains("127.0.0.1:"), "{listening}");
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    let reloaded = wait_for("config reloaded");
    assert!(reloaded.contains("SIGHUP"), "{reloaded}");
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    wait_for("stopped");
    let status = child.wait().unwrap();
    assert!(status.success(), "clean exit on SIGTERM");
}
