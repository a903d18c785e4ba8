//! A small W3C WebDriver client over reqwest, enough to drive Debian's
//! Chromium through chromedriver: open pages, find elements, type, click,
//! run a script, take screenshots. (Written here rather than pulled in as a
//! crate: the protocol is a dozen JSON calls, and reqwest is already a
//! dependency.)
//!
//! The test starts chromedriver on a free port in its own process group and
//! ends that group (chromedriver and the Chromium it started) when the
//! [`Driver`] is dropped, even when the test fails.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use serde_json::{Value, json};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Where Chromium and chromedriver are, or why the browser test is skipped.
pub struct Browser {
    pub chromium: PathBuf,
    pub chromedriver: PathBuf,
}

impl Browser {
    /// Finds `/usr/bin/chromium` and `/usr/bin/chromedriver` (or
    /// `BUURTRELAY_CHROMIUM` / `BUURTRELAY_CHROMEDRIVER`). Without them the
    /// test prints a SKIP line and passes, unless `BUURTRELAY_REQUIRE_BROWSER=1`
    /// (set by CI), where it fails.
    pub fn find_or_skip(test: &str) -> Option<Browser> {
        let pick = |var: &str, default: &str| {
            std::env::var_os(var)
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(default))
        };
        let chromium = pick("BUURTRELAY_CHROMIUM", "/usr/bin/chromium");
        let chromedriver = pick("BUURTRELAY_CHROMEDRIVER", "/usr/bin/chromedriver");
        let missing: Vec<String> = [&chromium, &chromedriver]
            .iter()
            .filter(|p| !p.is_file())
            .map(|p| p.display().to_string())
            .collect();
        if missing.is_empty() {
            return Some(Browser {
                chromium,
                chromedriver,
            });
        }
        let why = format!(
            "{} not found (install Debian's chromium and chromium-driver)",
            missing.join(" and ")
        );
        if std::env::var("BUURTRELAY_REQUIRE_BROWSER").as_deref() == Ok("1") {
            panic!("{test}: BUURTRELAY_REQUIRE_BROWSER=1 but {why}");
        }
        // Straight to stderr: libtest captures print!/eprint!, not this.
        let _ = writeln!(std::io::stderr(), "SKIP {test}: {why}");
        None
    }
}

pub struct Driver {
    http: reqwest::Client,
    base: String,
    session: String,
    child: Child,
    _profile: tempfile::TempDir,
}

fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

impl Driver {
    /// Starts chromedriver and a headless Chromium session with a fresh profile.
    pub async fn start(b: &Browser) -> anyhow::Result<Driver> {
        use std::os::unix::process::CommandExt as _;
        let port = free_port()?;
        let child = Command::new(&b.chromedriver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group, so Drop can end it with its browser.
            .process_group(0)
            .spawn()
            .with_context(|| format!("cannot start {}", b.chromedriver.display()))?;
        let profile = tempfile::tempdir()?;
        let mut d = Driver {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()?,
            base: format!("http://127.0.0.1:{port}"),
            session: String::new(),
            child,
            _profile: profile,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = d
                .http
                .get(format!("{}/status", d.base))
                .send()
                .await
                .ok()
                .map(|r| r.status().is_success())
                .unwrap_or(false);
            if ready {
                break;
            }
            if Instant::now() > deadline {
                bail!("chromedriver did not answer on port {port} within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-quic",
            "--no-first-run",
            "--no-default-browser-check",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
            "--lang=nl-BE",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([format!("--user-data-dir={}", d._profile.path().display())])
        .collect::<Vec<_>>();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": b.chromium, "args": args},
            "goog:loggingPrefs": {"browser": "ALL"},
        }}});
        let v = d.call("POST", "/session", Some(caps)).await?;
        d.session = v["sessionId"]
            .as_str()
            .ok_or_else(|| anyhow!("no session id in {v}"))?
            .to_string();
        Ok(d)
    }

    /// One WebDriver command; returns its `value`.
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let url = if path == "/session" {
            format!("{}/session", self.base)
        } else {
            format!("{}/session/{}{path}", self.base, self.session)
        };
        let req = match method {
            "GET" => self.http.get(url),
            "DELETE" => self.http.delete(url),
            _ => self.http.post(url).json(&body.unwrap_or_else(|| json!({}))),
        };
        let r = req.send().await.context("chromedriver request")?;
        let status = r.status();
        let v: Value = r.json().await.context("chromedriver answer")?;
        if !status.is_success() {
            bail!(
                "{method} {path}: {} {}",
                v["value"]["error"],
                v["value"]["message"]
            );
        }
        Ok(v["value"].clone())
    }

    pub async fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.call("POST", "/url", Some(json!({"url": url}))).await?;
        Ok(())
    }

    pub async fn set_window(&self, w: u32, h: u32) -> anyhow::Result<()> {
        self.call(
            "POST",
            "/window/rect",
            Some(json!({"width": w, "height": h})),
        )
        .await?;
        Ok(())
    }

    pub async fn find(&self, css: &str) -> anyhow::Result<String> {
        let v = self
            .call(
                "POST",
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await?;
        v[ELEMENT]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| anyhow!("no element id for {css} in {v}"))
    }

    /// Waits until `css` matches an element.
    pub async fn wait_for(&self, css: &str, secs: u64) -> anyhow::Result<String> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            match self.find(css).await {
                Ok(e) => return Ok(e),
                Err(e) if Instant::now() > deadline => {
                    bail!("timed out after {secs} s waiting for `{css}`: {e}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// Waits until the script (a function body) returns true.
    pub async fn wait_until(&self, what: &str, script: &str, secs: u64) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if self.execute(script, json!([])).await? == json!(true) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("timed out after {secs} s waiting for: {what}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The text of the first element `css` matches, waiting for one. The
    /// playground re-renders its columns live: an element replaced between
    /// finding it and reading it ("stale element reference") is found again.
    pub async fn text_of(&self, css: &str, secs: u64) -> anyhow::Result<String> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let el = self.wait_for(css, secs).await?;
            match self.text(&el).await {
                Err(e)
                    if e.to_string().contains("stale element reference")
                        && Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                other => return other,
            }
        }
    }

    pub async fn text(&self, el: &str) -> anyhow::Result<String> {
        let v = self
            .call("GET", &format!("/element/{el}/text"), None)
            .await?;
        Ok(v.as_str().unwrap_or_default().to_string())
    }

    pub async fn click(&self, el: &str) -> anyhow::Result<()> {
        self.call("POST", &format!("/element/{el}/click"), None)
            .await?;
        Ok(())
    }

    /// Types into an element; `\u{E007}` is Enter, `\u{E004}` is Tab.
    pub async fn send_keys(&self, el: &str, text: &str) -> anyhow::Result<()> {
        self.call(
            "POST",
            &format!("/element/{el}/value"),
            Some(json!({"text": text})),
        )
        .await?;
        Ok(())
    }

    pub async fn execute(&self, script: &str, args: Value) -> anyhow::Result<Value> {
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
        .await
    }

    /// Saves a PNG of the viewport.
    pub async fn screenshot(&self, path: &Path) -> anyhow::Result<()> {
        let v = self.call("GET", "/screenshot", None).await?;
        let b64 = v.as_str().ok_or_else(|| anyhow!("no screenshot data"))?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, base64_decode(b64)?)?;
        Ok(())
    }

    /// The page's console messages and errors so far (for failure reports).
    pub async fn console(&self) -> String {
        match self
            .call("POST", "/se/log", Some(json!({"type": "browser"})))
            .await
        {
            Ok(v) => v
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|e| format!("{} {}", e["level"], e["message"]))
                        .collect::<Vec<_>>()
                        .join("\n")
                })
                .unwrap_or_default(),
            Err(e) => format!("(no console log: {e})"),
        }
    }

    pub async fn quit(mut self) {
        let _ = self.call("DELETE", "", None).await;
        self.session.clear();
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The group we started: chromedriver and its Chromium.
        let pgid = self.child.id();
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg("--")
            .arg(format!("-{pgid}"))
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Standard base64 (the screenshot), without a crate for it.
fn base64_decode(s: &str) -> anyhow::Result<Vec<u8>> {
    let val = |c: u8| -> anyhow::Result<u32> {
        Ok(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => bail!("not base64: {c}"),
        } as u32)
    };
    let bytes: Vec<u8> = s
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
        .collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= val(*c)? << (18 - 6 * i);
        }
        let take = chunk.len().saturating_sub(1);
        for i in 0..take {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    Ok(out)
}

#[test]
fn base64_decodes_what_the_browser_sends() {
    assert_eq!(base64_decode("aGVsbG8=").unwrap(), b"hello");
    assert_eq!(base64_decode("aGk=").unwrap(), b"hi");
    assert_eq!(base64_decode("YWJj").unwrap(), b"abc");
}
