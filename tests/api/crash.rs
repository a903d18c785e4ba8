//! Crash test: a child relay under steady webhook load is killed (SIGKILL,
//! or an abort at a chosen point) and restarted on the same data dir, many
//! times. Every acknowledged message reaches every target; duplicates stay
//! within the stated bound: at most `max_in_flight` per crash (the sends in
//! flight when the process died).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::helpers::*;

const MAX_IN_FLIGHT: usize = 8;

fn spawn_child(config: &std::path::Path, failpoint: Option<&str>) -> (Child, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_buurtrelay"));
    cmd.args(["serve", "--config", config.to_str().unwrap_or_default()])
        .env("RUST_LOG", "warn,buurtrelay=info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    match failpoint {
        Some(f) => cmd.env("BUURTRELAY_FAILPOINT", f),
        None => cmd.env_remove("BUURTRELAY_FAILPOINT"),
    };
    let mut child = cmd.spawn().expect("spawn relay");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if !sent {
                if let Some(pos) = line.find("listening on http://") {
                    let rest = &line[pos + "listening on ".len()..];
                    let url = rest.split_whitespace().next().unwrap_or("").to_string();
                    let _ = tx.send(url);
                    sent = true;
                }
            }
        }
    });
    let url = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("relay started");
    (child, url)
}

/// Posts the messages `ids` (each once, in order) until told to stop or the
/// relay is gone; returns the ones acknowledged with 200.
async fn load(url: String, ids: Vec<i64>, stop: Arc<Mutex<bool>>) -> Vec<i64> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let mut acked = Vec::new();
    for id in ids {
        if *stop.lock().expect("lock") {
            break;
        }
        let body = tg_update(
            id,
            "-1001000000000",
            id,
            555,
            "Jan",
            &format!(
                "Inbraak bezig bij nummer {id} in de Molenstraat, twee mannen aan de achterdeur, 101 gebeld"
            ),
        );
        let r = client
            .post(format!("{url}/webhooks/bot"))
            .header("X-Telegram-Bot-Api-Secret-Token", "s3cret-token")
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await;
        match r {
            Ok(r) if r.status() == 200 => acked.push(id),
            Ok(_) => {}
            Err(_) => break,
        }
    }
    acked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_at_random_moments_the_relay_loses_nothing_it_acknowledged() {
    let fake = FakeTelegram::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg_path = dir.path().join("relay.toml");
    let cfg = telegram_config_with(
        &fake,
        &["Veulen", "Heers", "Batsheers", "Opheers"],
        &format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"",
            dir.path().join("data").display()
        ),
        &format!("per_chat_limits = []\nper_account_limits = []\nmax_in_flight = {MAX_IN_FLIGHT}"),
    );
    std::fs::write(&cfg_path, cfg).expect("config");

    let mut rng = fastrand::Rng::with_seed(2026);
    let mut acked: BTreeSet<i64> = BTreeSet::new();
    let mut next_id = 1i64;
    let mut not_acked: Vec<i64> = Vec::new();
    // Random kills, plus one abort between the durable write and the 2xx, and
    // one between a platform's answer and its bookkeeping.
    let plan: Vec<Option<&str>> = vec![
        None,
        Some("after_commit:7"),
        None,
        Some("after_send:9"),
        None,
        None,
        Some("after_commit:3"),
        None,
    ];
    let crashes = plan.len();
    for failpoint in plan {
        let (mut child, url) = spawn_child(&cfg_path, failpoint);
        // The platform retries what was not acknowledged, then sends new ones.
        let mut ids: Vec<i64> = std::mem::take(&mut not_acked);
        ids.extend(next_id..next_id + 400);
        next_id += 400;
        let stop = Arc::new(Mutex::new(false));
        let task = tokio::spawn(load(url, ids.clone(), stop.clone()));
        if failpoint.is_none() {
            tokio::time::sleep(Duration::from_millis(rng.u64(150..700))).await;
            child.kill().expect("SIGKILL");
        } else {
            // Dies by itself at the failpoint, within 5 s.
            let mut died = false;
            for _ in 0..50 {
                if child.try_wait().ok().flatten().is_some() {
                    died = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let _ = child.kill();
            assert!(died, "the relay never reached its failpoint {failpoint:?}");
        }
        let _ = child.wait();
        *stop.lock().expect("lock") = true;
        let got = task.await.expect("load task");
        let got_set: BTreeSet<i64> = got.iter().copied().collect();
        acked.extend(got.iter().copied());
        let attempted_upto = got.last().copied().unwrap_or(0);
        not_acked = ids
            .into_iter()
            .filter(|i| !got_set.contains(i) && *i <= attempted_upto + 1)
            .collect();
    }
    // A last, clean run: the platform retries the rest, the outbox drains.
    let (mut child, url) = spawn_child(&cfg_path, None);
    let got = load(
        url,
        std::mem::take(&mut not_acked),
        Arc::new(Mutex::new(false)),
    )
    .await;
    acked.extend(got);
    assert!(
        acked.len() > 200,
        "the load really ran ({} acknowledged)",
        acked.len()
    );

    let want = acked.len() * 3;
    let all_there = || {
        let mut per: BTreeMap<(i64, i64), usize> = BTreeMap::new();
        for b in fake.delivered() {
            let text = b["text"].as_str().unwrap_or("");
            if let Some(n) = text
                .split("nummer ")
                .nth(1)
                .and_then(|r| r.split(' ').next())
                .and_then(|n| n.parse::<i64>().ok())
            {
                *per.entry((n, b["chat_id"].as_i64().unwrap_or(0)))
                    .or_default() += 1;
            }
        }
        per
    };
    eventually(
        60,
        "every acknowledged message in every other village",
        || async {
            let per = all_there();
            acked.iter().all(|id| {
                [-1001000000001i64, -1001000000002, -1001000000003]
                    .iter()
                    .all(|chat| per.contains_key(&(*id, *chat)))
            })
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let per = all_there();
    let delivered: usize = per.values().sum();
    let duplicates = delivered - per.len();
    let _ = child.kill();
    let _ = child.wait();
    println!(
        "crash test: {crashes} crashes, {} acknowledged messages, {want} copies expected, {delivered} delivered, {duplicates} duplicates (bound {})",
        acked.len(),
        crashes * MAX_IN_FLIGHT
    );
    assert!(
        duplicates <= crashes * MAX_IN_FLIGHT,
        "{duplicates} duplicates over the bound"
    );
}
