//! Load generator: drives the real relay (the release binary, as a child
//! process) over HTTP, against a fake Telegram Bot API on loopback, and
//! prints figures. Not a test: run it by hand.
//!
//!     cargo build --release && cargo run --release --example loadgen
//!
//! `LOADGEN_ALERT_SECONDS=30` sustains (a) for 30 s instead of 5. It drives
//! whatever `target/release/buurtrelay` is: for the mimalloc build, add
//! `--features mimalloc` to both commands.
//!
//! Scenarios:
//!   (a) alerts from one group fanned out to 10 groups, no rate limit:
//!       sustained ingest rate (closed loop), webhook ack latency at
//!       500 alerts/s and end-to-end latency (webhook → last copy) at
//!       100 alerts/s (open loop: requests leave on schedule);
//!   (b) chit-chat only: sustained ingest rate with durable acks;
//!   (c) classification alone, per message, on one core;
//!   (d) a burst of one incident's reports from every village (merged into
//!       one thread), against (a)'s rate of distinct alerts.
//! After (a)'s closed loop, the answer times of `/metrics` and `/readyz`
//! with its backlog queued.
//! And the relay's peak RSS (VmHWM).

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::routing::post;
use serde_json::{Value, json};

const GROUPS: usize = 11;

#[derive(Default)]
struct Fake {
    /// message number → (copies received, time of the last one)
    copies: Mutex<HashMap<i64, (u32, Instant)>>,
    next_id: AtomicI64,
    total: AtomicU64,
}

async fn send_message(State(f): State<Arc<Fake>>, Json(body): Json<Value>) -> Json<Value> {
    let text = body["text"].as_str().unwrap_or("");
    if let Some(n) = text
        .split("#")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse::<i64>().ok())
    {
        if let Ok(mut m) = f.copies.lock() {
            let e = m.entry(n).or_insert((0, Instant::now()));
            e.0 += 1;
            e.1 = Instant::now();
        }
    }
    f.total.fetch_add(1, Ordering::Relaxed);
    let id = f.next_id.fetch_add(1, Ordering::Relaxed);
    Json(
        json!({"ok": true, "result": {"message_id": id, "chat": {"id": body["chat_id"], "type": "supergroup"}, "date": 0}}),
    )
}

fn config(fake_url: &str, data: &std::path::Path) -> String {
    let mut s = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"{}\"\nmax_body_bytes = 65536\n\
         [delivery]\nretry_base = \"100ms\"\nretry_max = \"1s\"\n\
         [accounts.bot]\nplatform = \"telegram\"\ntoken = \"123456:BENCH\"\nwebhook_secret = \"bench-secret\"\napi_url = \"{fake_url}\"\n\
         per_chat_limits = []\nper_account_limits = []\nmax_in_flight = 64\n",
        data.display()
    );
    for i in 0..GROUPS {
        s.push_str(&format!("[[groups]]\nid = \"g{i}\"\nname = \"Dorp {i}\"\naccount = \"bot\"\nchat = \"-100200000{i:04}\"\n"));
    }
    s
}

fn start_relay(cfg: &std::path::Path) -> (Child, String) {
    let bin = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent()?.parent().map(|d| d.join("buurtrelay")))
        .filter(|p| p.exists())
        .expect("target/release/buurtrelay: run `cargo build --release` first");
    let mut child = Command::new(bin)
        .args(["serve", "--config", cfg.to_str().unwrap_or_default()])
        // The default log level of a real deployment: one line per alert.
        .env("RUST_LOG", "info,sled=warn,hyper=warn")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn relay");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(p) = line.find("listening on http://") {
                let url = line[p + 13..]
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .to_string();
                let _ = tx.send(url);
            }
        }
    });
    let url = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("relay address");
    (child, url)
}

fn update(n: i64, text: &str) -> String {
    update_in(n, 0, 555, text)
}

/// A message in group `g` (the config's `-100200000{g:04}`) from member `from`.
fn update_in(n: i64, g: i64, from: i64, text: &str) -> String {
    let chat: i64 = format!("-100200000{g:04}")
        .parse()
        .unwrap_or(-1002000000000);
    json!({"update_id": n, "message": {"message_id": n, "from": {"id": from, "is_bot": false, "first_name": "Jan"},
        "chat": {"id": chat, "type": "supergroup"}, "date": 1764300000, "text": text}})
    .to_string()
}

/// (d) one incident reported by many members of every village: each report
/// is merged into the thread of the first (a sighting), as when a whole
/// network sees the same van.
fn incident(n: i64) -> String {
    let text = format!(
        "Verdachte witte bestelwagen #{n} rijdt traag door de Kerkstraat en de Dorpsstraat, 101 is verwittigd"
    );
    update_in(n, n.rem_euclid(GROUPS as i64), 1000 + n, &text)
}

fn alert(n: i64) -> String {
    format!("Inbraak #{n} bezig in de Molenstraat, twee mannen met koevoet, 101 is verwittigd")
}

fn chat(n: i64) -> String {
    format!("Bedankt voor de gezellige buurtbarbecue #{n}, tot volgend jaar!")
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// A keep-alive HTTP/1.1 connection posting webhooks to the relay.
///
/// Written out by hand rather than through reqwest: the load generator shares
/// the machine's two cores with the relay, and with reqwest's client (pool,
/// URL parsing, header maps) it used about 60 us of CPU per request in (b),
/// 0.6 of a core taken from the relay under test; this one about 25 us. The requests are the same bytes on the wire: a POST with the
/// secret header and a JSON body; the answer's status line is checked and its
/// body read to the end (Content-Length), as any client must.
struct Conn {
    stream: tokio::net::TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    async fn open(addr: &str) -> std::io::Result<Conn> {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            buf: Vec::with_capacity(1024),
        })
    }

    /// Posts one webhook; the answer's status code.
    async fn post(&mut self, host: &str, body: &str) -> std::io::Result<u16> {
        use std::io::{Error, ErrorKind};
        use tokio::io::AsyncWriteExt;
        let mut req = format!(
            "POST /webhooks/bot HTTP/1.1\r\nhost: {host}\r\nx-telegram-bot-api-secret-token: bench-secret\r\n\
             content-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        req.push_str(body);
        self.stream.write_all(req.as_bytes()).await?;
        self.buf.clear();
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = std::str::from_utf8(&self.buf[..end])
                    .map_err(|_| Error::new(ErrorKind::InvalidData, "answer head is not UTF-8"))?;
                let status = head
                    .split(' ')
                    .nth(1)
                    .and_then(|c| c.parse::<u16>().ok())
                    .ok_or_else(|| Error::new(ErrorKind::InvalidData, "no status line"))?;
                let len = head
                    .lines()
                    .filter_map(|l| l.split_once(':'))
                    .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                    .and_then(|(_, v)| v.trim().parse::<usize>().ok())
                    .ok_or_else(|| Error::new(ErrorKind::InvalidData, "no content-length"))?;
                let close = head.to_ascii_lowercase().contains("connection: close");
                while self.buf.len() < end + 4 + len {
                    if self.read_more().await? == 0 {
                        return Err(ErrorKind::UnexpectedEof.into());
                    }
                }
                if close {
                    return Err(Error::new(ErrorKind::ConnectionAborted, "server closed"));
                }
                return Ok(status);
            }
            if self.read_more().await? == 0 {
                return Err(ErrorKind::UnexpectedEof.into());
            }
        }
    }

    async fn read_more(&mut self) -> std::io::Result<usize> {
        use tokio::io::AsyncReadExt;
        let mut chunk = [0u8; 2048];
        let n = self.stream.read(&mut chunk).await?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }
}

/// Posts on `conn`, opening it first if needed; a connection that failed is
/// dropped (the next post opens a new one). True on a 2xx answer.
async fn post_webhook(conn: &mut Option<Conn>, addr: &str, body: &str) -> bool {
    if conn.is_none() {
        *conn = Conn::open(addr).await.ok();
    }
    let Some(c) = conn.as_mut() else {
        return false;
    };
    match c.post(addr, body).await {
        Ok(status) => (200..300).contains(&status),
        Err(_) => {
            *conn = None;
            false
        }
    }
}

/// Closed loop: `conc` clients post as fast as acks come back for `secs`.
async fn closed_loop(
    url: &str,
    conc: usize,
    secs: f64,
    first: i64,
    body: fn(i64) -> String,
) -> (f64, i64) {
    let addr = url.trim_start_matches("http://");
    let next = Arc::new(AtomicI64::new(first));
    let ok = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..conc {
        let (addr, next, ok) = (addr.to_string(), next.clone(), ok.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = None;
            while t0.elapsed().as_secs_f64() < secs {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if post_webhook(&mut conn, &addr, &body(n)).await {
                    ok.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let elapsed = t0.elapsed().as_secs_f64();
    (
        ok.load(Ordering::Relaxed) as f64 / elapsed,
        next.load(Ordering::Relaxed),
    )
}

/// Open loop at `rate`/s for `secs`: returns ack latencies (ms) and the
/// send time of each message.
async fn open_loop(
    url: &str,
    rate: f64,
    secs: f64,
    first: i64,
    make: fn(i64) -> String,
) -> (Vec<f64>, HashMap<i64, Instant>, i64) {
    let addr = url.trim_start_matches("http://");
    // Idle keep-alive connections; a request finding none opens one.
    let idle: Arc<Mutex<Vec<Conn>>> = Arc::default();
    let lat = Arc::new(Mutex::new(Vec::new()));
    let sent = Arc::new(Mutex::new(HashMap::new()));
    let n_total = (rate * secs) as i64;
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for k in 0..n_total {
        let due = t0 + Duration::from_secs_f64(k as f64 / rate);
        tokio::time::sleep_until(due.into()).await;
        let n = first + k;
        let (addr, idle, lat, sent) = (addr.to_string(), idle.clone(), lat.clone(), sent.clone());
        tasks.push(tokio::spawn(async move {
            let body = update(n, &make(n));
            let mut conn = idle.lock().ok().and_then(|mut v| v.pop());
            let start = Instant::now();
            if let Ok(mut s) = sent.lock() {
                s.insert(n, start);
            }
            if post_webhook(&mut conn, &addr, &body).await {
                if let Ok(mut l) = lat.lock() {
                    l.push(start.elapsed().as_secs_f64() * 1000.0);
                }
            }
            if let (Some(c), Ok(mut v)) = (conn, idle.lock()) {
                v.push(c);
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let lat = lat.lock().map(|l| l.clone()).unwrap_or_default();
    let sent = sent.lock().map(|s| s.clone()).unwrap_or_default();
    (lat, sent, first + n_total)
}

/// CPU time (user + system) a process has used so far, in seconds.
fn cpu_secs(pid: u32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = s.rsplit_once(')').map(|r| r.1).unwrap_or("");
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 here.
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    // SAFETY: sysconf only reads a system constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    ticks as f64 / hz
}

/// Where the CPU went during a phase: the relay's time per message and the
/// cores each side used. Machine-independent where rates are not: on a
/// shared VM the rate moves with the neighbours, the cost per message much
/// less.
struct CpuMeter {
    relay: u32,
    t0: Instant,
    relay0: f64,
    own0: f64,
}

impl CpuMeter {
    fn start(relay: u32) -> CpuMeter {
        CpuMeter {
            relay,
            t0: Instant::now(),
            relay0: cpu_secs(relay),
            own0: cpu_secs(std::process::id()),
        }
    }

    fn report(&self, messages: f64, what: &str) -> String {
        let wall = self.t0.elapsed().as_secs_f64();
        let relay = cpu_secs(self.relay) - self.relay0;
        let own = cpu_secs(std::process::id()) - self.own0;
        format!(
            "relay CPU {:.0} us per {what} ({:.2} cores), load generator and fake {:.2} cores",
            relay / messages.max(1.0) * 1e6,
            relay / wall,
            own / wall
        )
    }
}

fn rss_kb(pid: u32) -> (u64, u64) {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let get = |k: &str| {
        s.lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (get("VmRSS:"), get("VmHWM:"))
}

/// The relay's store flushes so far (`buurtrelay_store_flush_seconds`): the
/// count, and how many took at most 10, 50 and 250 ms.
#[derive(Clone, Copy, Default)]
struct Flushes {
    count: u64,
    within_10ms: u64,
    within_50ms: u64,
    within_250ms: u64,
}

impl Flushes {
    async fn read(url: &str) -> Flushes {
        let text = match reqwest::get(format!("{url}/metrics")).await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        let value = |prefix: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(prefix))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0)
        };
        Flushes {
            count: value("buurtrelay_store_flush_seconds_count "),
            within_10ms: value("buurtrelay_store_flush_seconds_bucket{le=\"0.01\"} "),
            within_50ms: value("buurtrelay_store_flush_seconds_bucket{le=\"0.05\"} "),
            within_250ms: value("buurtrelay_store_flush_seconds_bucket{le=\"0.25\"} "),
        }
    }

    /// What the store's disk did since `before`: a latency outlier with slow
    /// flushes beside it is the disk's; without them, the relay's.
    fn since(&self, before: &Flushes) -> String {
        let n = self.count.saturating_sub(before.count);
        let over10 = n.saturating_sub(self.within_10ms.saturating_sub(before.within_10ms));
        let over50 = n.saturating_sub(self.within_50ms.saturating_sub(before.within_50ms));
        let over250 = n.saturating_sub(self.within_250ms.saturating_sub(before.within_250ms));
        format!(
            "store flushes: {n}, of which over 10 ms: {over10}, over 50 ms: {over50}, over 250 ms: {over250}"
        )
    }
}

/// How long `/metrics` and `/readyz` take to answer now: 20 of each, one at
/// a time; the median and the slowest, and the queue depth `/metrics` said.
async fn probe_times(url: &str) -> String {
    let client = reqwest::Client::new();
    let mut out = Vec::new();
    let mut depth = 0.0;
    for path in ["/metrics", "/readyz"] {
        let mut ms = Vec::new();
        for _ in 0..20 {
            let t = Instant::now();
            if let Ok(r) = client.get(format!("{url}{path}")).send().await {
                let text = r.text().await.unwrap_or_default();
                ms.push(t.elapsed().as_secs_f64() * 1000.0);
                if let Some(d) = text
                    .lines()
                    .find_map(|l| l.strip_prefix("buurtrelay_queue_depth{account=\"bot\"} "))
                    .and_then(|v| v.trim().parse::<f64>().ok())
                {
                    depth = d;
                }
            }
        }
        out.push(format!(
            "{path} p50 {:.2} ms, max {:.2} ms",
            pct(&mut ms, 0.5),
            pct(&mut ms, 1.0)
        ));
    }
    format!("{} (with {depth:.0} copies queued)", out.join("; "))
}

async fn wait_delivered(fake: &Fake, want: u64, secs: u64) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(secs) {
        if fake.total.load(Ordering::Relaxed) >= want {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::main]
async fn main() {
    if std::env::args().nth(1).as_deref() == Some("classify") {
        classify_bench();
        return;
    }
    let fake = Arc::new(Fake::default());
    let app = axum::Router::new()
        .route("/{bot}/sendMessage", post(send_message))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let fake_url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("bench.toml");
    std::fs::write(&cfg, config(&fake_url, &dir.path().join("data"))).expect("config");
    let (mut child, url) = start_relay(&cfg);
    let pid = child.id();
    println!(
        "buurtrelay load test — {} cores, relay pid {pid}, {GROUPS} groups (fan-out 10), fake Telegram on loopback",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );

    // (b) chit-chat, closed loop.
    let cpu = CpuMeter::start(pid);
    let (rate_b, mut next) = closed_loop(&url, 64, 5.0, 1, |n| update(n, &chat(n))).await;
    println!("(b) chit-chat, 64 connections, durable acks: {rate_b:.0} messages/s");
    println!("    {}", cpu.report((next - 1) as f64, "message"));
    let rss_b = rss_kb(pid).1;

    // (a1) alerts, closed loop: sustained ingest rate, and delivery keeping up.
    let before = fake.total.load(Ordering::Relaxed);
    let t0 = Instant::now();
    let cpu = CpuMeter::start(pid);
    // LOADGEN_ALERT_SECONDS: how long (a) is sustained (default 5 s).
    let secs_a: f64 = std::env::var("LOADGEN_ALERT_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5.0);
    let (rate_a, n2) = closed_loop(&url, 64, secs_a, next, |n| update(n, &alert(n))).await;
    let acked = ((n2 - next) as f64).min(rate_a * secs_a + 64.0);
    let want = before + (rate_a * t0.elapsed().as_secs_f64()).round() as u64 * 10;
    // The answers an operator's monitoring gets under that backlog.
    println!("    {}", probe_times(&url).await);
    let drained = wait_delivered(&fake, want.saturating_sub(640), 600).await;
    let send_rate =
        (fake.total.load(Ordering::Relaxed) - before) as f64 / t0.elapsed().as_secs_f64();
    println!(
        "(a) alerts x10, 64 connections: ingest {rate_a:.0} alerts/s sustained for {secs_a:.0} s; copies delivered {send_rate:.0}/s until drained (drained: {drained}, ~{acked:.0} alerts)"
    );
    println!(
        "    until drained: {}",
        cpu.report((n2 - next) as f64, "alert (its ingest and 10 copies sent)")
    );
    next = n2;
    let rss_a = rss_kb(pid).1;

    // (a2) ack latency at 500 alerts/s.
    let before = fake.total.load(Ordering::Relaxed);
    let flushes = Flushes::read(&url).await;
    let (mut lat, _, n3) = open_loop(&url, 500.0, 5.0, next, alert).await;
    println!(
        "(a) ack latency at 500 alerts/s: p50 {:.2} ms, p99 {:.2} ms ({} requests)",
        pct(&mut lat, 0.5),
        pct(&mut lat, 0.99),
        lat.len()
    );
    println!("    {}", Flushes::read(&url).await.since(&flushes));
    next = n3;
    // Let the relay deliver that backlog before measuring end-to-end latency.
    let drained = wait_delivered(&fake, before + lat.len() as u64 * 10, 120).await;
    println!("    (backlog of that run delivered before the next: {drained})");
    tokio::time::sleep(Duration::from_secs(1)).await;

    // (a3) end-to-end latency at 100 alerts/s.
    let flushes = Flushes::read(&url).await;
    let (mut lat, sent, _) = open_loop(&url, 100.0, 5.0, next, alert).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let flushed = Flushes::read(&url).await.since(&flushes);
    let copies = fake.copies.lock().map(|c| c.clone()).unwrap_or_default();
    let mut e2e: Vec<f64> = sent
        .iter()
        .filter_map(|(n, t)| {
            copies
                .get(n)
                .filter(|(c, _)| *c >= 10)
                .map(|(_, last)| last.duration_since(*t).as_secs_f64() * 1000.0)
        })
        .collect();
    println!(
        "(a) at 100 alerts/s: ack p50 {:.2} ms p99 {:.2} ms; end-to-end to the 10th copy p50 {:.2} ms, p99 {:.2} ms ({} of {} alerts complete)",
        pct(&mut lat, 0.5),
        pct(&mut lat, 0.99),
        pct(&mut e2e, 0.5),
        pct(&mut e2e, 0.99),
        e2e.len(),
        sent.len()
    );
    println!("    {flushed}");

    // (d) a burst of one incident's reports, after the backlog of (a3).
    let (rate_d, _) = closed_loop(&url, 64, 5.0, next + 1_000_000, incident).await;
    println!(
        "(d) one incident reported in every village, 64 connections: {rate_d:.0} reports/s ({:.0}% of the distinct-alert rate of (a))",
        rate_d / rate_a.max(1.0) * 100.0
    );

    let (rss, hwm) = rss_kb(pid);
    println!(
        "relay memory: peak RSS {:.1} MB after (b), {:.1} MB after the backlog of (a) ({:.0} copies at most); RSS now {:.1} MB, peak {:.1} MB",
        rss_b as f64 / 1024.0,
        rss_a as f64 / 1024.0,
        acked * 10.0,
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
    let _ = child.kill();
    let _ = child.wait();

    classify_bench();
}

/// (c) classification alone, one core: the rules alone (as before) and the
/// judgement the relay uses (rules and the built-in model), on the corpus.
fn classify_bench() {
    let rules = buurtrelay::protocol::RuleSet::compile(true, None, &["101".into(), "112".into()])
        .expect("rules");
    let judge = buurtrelay::protocol::Judge::new(
        buurtrelay::protocol::RuleSet::compile(true, None, &["101".into(), "112".into()])
            .expect("rules"),
        buurtrelay::protocol::ModelChoice::Builtin
            .load()
            .expect("built-in model"),
        buurtrelay::protocol::judge::DEFAULT_BAND,
    );
    let corpus: Vec<String> = buurtrelay::protocol::corpus::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/corpus"
    )))
    .map(|v| v.into_iter().map(|e| e.text).collect())
    .unwrap_or_default();
    let measure = |f: &dyn Fn(&str) -> bool| -> Vec<f64> {
        let mut runs = Vec::new();
        for _ in 0..5 {
            let t = Instant::now();
            let mut alerts = 0;
            let mut n = 0;
            while t.elapsed() < Duration::from_millis(600) {
                for text in &corpus {
                    if f(text) {
                        alerts += 1;
                    }
                    n += 1;
                }
            }
            std::hint::black_box(alerts);
            runs.push(n as f64 / t.elapsed().as_secs_f64());
        }
        runs
    };
    for (name, runs) in [
        ("rules alone", measure(&|t| rules.classify(t).alert)),
        (
            "rules + model (the relay)",
            measure(&|t| judge.classify(t).alert),
        ),
    ] {
        let mut r = runs.clone();
        println!(
            "(c) classification, {name}, one core, {} corpus messages: median {:.0} messages/s (runs: {})",
            corpus.len(),
            pct(&mut r, 0.5),
            runs.iter()
                .map(|x| format!("{x:.0}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
}
