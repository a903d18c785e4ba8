//! The command line contract: check-config and simulate.

use std::process::Command;

use serde_json::Value;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_buurtrelay"))
}

fn heers() -> String {
    format!("{}/config/heers.toml", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn the_shipped_heers_config_is_valid() {
    let out = bin().args(["check-config", &heers()]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("11 groups"), "{stdout}");
}

#[test]
fn the_shipped_whatsapp_config_for_the_compose_file_is_valid() {
    let f = format!("{}/config/heers-whatsapp.toml", env!("CARGO_MANIFEST_DIR"));
    // Its secrets come from the environment, as in deploy/compose.whatsapp.yml.
    let out = bin()
        .args(["check-config", &f])
        .env("WAHA_API_KEY", "k")
        .env("WAHA_HOOK_HMAC_KEY", "h")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("11 groups"), "{stdout}");
    // Without them, the check says which variable is missing, where.
    let out = bin()
        .args(["check-config", &f])
        .env_remove("WAHA_API_KEY")
        .env_remove("WAHA_HOOK_HMAC_KEY")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("`WAHA_API_KEY` is not set"), "{stderr}");
}

#[test]
fn check_config_names_file_line_and_column_for_every_error() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("broken.toml");
    std::fs::write(
        &f,
        r#"[accounts.sandbox]
platform = "sandbox"

[[groups]]
id = "veulen"
name = "Veulen"
account = "sandbox"
chat = "veulen"

[[groups]]
id = "veulen"
name = "Veulen again"
account = "sandbox"
chat = "veulen2"

[[groups]]
id = "heers"
name = "Heers"
account = "telegram-bot"
chat = "heers"

[protocol]
[[protocol.categories]]
name = "tractors"
patterns = ['tractor (zonder']

[[routes]]
from = ["veulen"]
to = ["veulen"]

[[routes]]
from = "*"
to = ["batsheers"]
categories = ["burglary"]
"#,
    )
    .unwrap();
    let out = bin()
        .args(["check-config", f.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let name = f.display().to_string();
    let expect = [
        format!("{name}:11:6: duplicate group id `veulen`"),
        format!("{name}:19:11: group `heers`: unknown account `telegram-bot`"),
        format!(
            "{name}:25:13: protocol: bad regex in category `tractors` patterns: `tractor (zonder`"
        ),
        format!("{name}:28:8: route 1 can never match: it only sends to its own source groups"),
        format!("{name}:33:7: route 2: to: unknown group `batsheers`"),
        format!("{name}:34:15: route 2: unknown category `burglary`"),
    ];
    for e in expect {
        assert!(err.contains(&e), "missing `{e}` in:\n{err}");
    }
}

/// Runs check-config on `text` (saved as `name`); it must fail. Returns the
/// file's path as printed and what it wrote to stderr.
fn check_config_fails(name: &str, text: &str) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join(name);
    std::fs::write(&f, text).unwrap();
    let out = bin()
        .args(["check-config", f.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    (
        f.display().to_string(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn an_unknown_key_is_reported_where_it_stands() {
    let (p, err) = check_config_fails("typo.toml", "[network]\nname = \"x\"\nlanguge = \"nl\"\n");
    assert!(
        err.contains(&format!("{p}:3:1: unknown field `languge`")),
        "{err}"
    );
}

#[test]
fn every_unknown_key_is_reported_in_one_run() {
    let (p, err) = check_config_fails(
        "typos.toml",
        "[network]\nname = \"x\"\nlanguge = \"nl\"\n\n[server]\nlisten = \"127.0.0.1:0\"\n  data_dri = \"/tmp/x\"\n\n[[groups]]\nid = \"a\"\nnmae = \"A\"\n",
    );
    for want in [
        format!("{p}:3:1: unknown field `languge`"),
        format!("{p}:7:3: unknown field `data_dri`"),
        format!("{p}:11:1: unknown field `nmae`"),
    ] {
        assert!(err.contains(&want), "missing {want:?} in:\n{err}");
    }
}

#[test]
fn an_unknown_key_with_a_value_over_several_lines_ends_the_list_without_false_errors() {
    let (p, err) = check_config_fails(
        "multi.toml",
        "[network]\nname = \"x\"\nextra = [\n  \"a\",\n]\nlanguge = \"nl\"\n",
    );
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with(&p)).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0].starts_with(&format!("{p}:3:1: unknown field `extra`")),
        "{err}"
    );
}

#[test]
fn check_config_refuses_durations_that_overflow_or_spin_and_suggests_spellings() {
    let (p, err) = check_config_fails(
        "ranges.toml",
        r#"[server]
reload_poll = "0s"

[relay]
retention = "99999999999d"
reminder_cooldown = "2 hours"

[accounts.sandbox]
platform = "sandbox"

[[groups]]
id = "veulen"
name = "Veulen"
account = "sandbox"
chat = "veulen"
neighbours = ["heers"]

[[groups]]
id = "heers"
name = "Heers"
account = "sandbox"
chat = "heers"

[[routes]]
from = "*"
to = "neighbors"
"#,
    );
    for want in [
        format!("{p}:2:15: server.reload_poll must be between 100ms and 1h"),
        format!("{p}:5:13: relay.retention: bad duration `99999999999d`: too large"),
        format!("{p}:6:21: relay.reminder_cooldown: bad duration `2 hours`: write `2h`"),
        format!("{p}:26:6: route 1: to = \"neighbors\": did you mean \"neighbours\"?"),
    ] {
        assert!(err.contains(&want), "missing {want:?} in:\n{err}");
    }
    assert!(!err.contains("panicked"), "{err}");
}

/// Starts `serve` with `server` lines added to a minimal sandbox config and
/// stdout piped (not a terminal); returns every line up to "listening on".
fn serve_log_until_listening(server: &str) -> Vec<String> {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("relay.toml");
    let data = dir.path().join("data");
    std::fs::write(
        &f,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = {data:?}\n{server}\n\n[accounts.sandbox]\nplatform = \"sandbox\"\n\n[[groups]]\nid = \"veulen\"\nname = \"Veulen\"\naccount = \"sandbox\"\nchat = \"veulen\"\n"
        ),
    )
    .unwrap();
    let mut child = bin()
        .args(["serve", "--config", f.to_str().unwrap()])
        .env_remove("RUST_LOG")
        .env_remove("NO_COLOR")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        let done = line.contains("listening on");
        lines.push(line);
        if done {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        lines.last().is_some_and(|l| l.contains("listening on")),
        "{lines:?}"
    );
    lines
}

#[test]
fn logs_written_to_a_pipe_carry_no_colour_codes() {
    for line in serve_log_until_listening("") {
        assert!(!line.contains('\u{1b}'), "ANSI escape in {line:?}");
    }
}

#[test]
fn log_format_json_writes_one_object_a_line_for_log_shippers() {
    let lines = serve_log_until_listening("log_format = \"json\"");
    for line in &lines {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(
            v["level"].is_string() && v["timestamp"].is_string(),
            "{line}"
        );
    }
    let last: Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    assert!(
        last["message"].as_str().unwrap().contains("listening on"),
        "{last}"
    );
}

#[test]
fn check_config_refuses_an_unknown_log_format() {
    let (p, err) = check_config_fails("log.toml", "[server]\nlog_format = \"xml\"\n");
    assert!(
        err.contains(&format!(
            "{p}:2:14: server.log_format `xml` must be \"text\" or \"json\""
        )),
        "{err}"
    );
}

fn simulate(args: &[&str]) -> Value {
    let mut cmd = bin();
    cmd.args(["simulate", "--config", &heers(), "--json"])
        .args(args);
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn simulate_prints_the_decision_in_the_documented_json() {
    let v = simulate(&[
        "--group",
        "veulen",
        "Verdachte grijze bestelwagen rijdt traag door de Kerkstraat",
    ]);
    assert_eq!(v["alert"], true);
    assert_eq!(v["categories"], serde_json::json!(["suspicious_vehicle"]));
    assert_eq!(v["confirmed"], false);
    // The learned model's calibrated score, outside the band of doubt, and
    // what weighed most.
    let score = v["score"].as_f64().unwrap();
    assert!((0.6..=1.0).contains(&score), "{score}");
    assert_eq!(v["uncertain"], false);
    let why = v["why"].as_array().unwrap();
    assert!(!why.is_empty() && why.len() <= 6, "{why:?}");
    let actions = v["actions"].as_array().unwrap();
    assert_eq!(actions[0]["kind"], "remind");
    assert_eq!(actions[0]["group"], "veulen");
    assert_eq!(
        actions.iter().filter(|a| a["kind"] == "forward").count(),
        10
    );
    assert!(
        actions[0].get("cooldown_key").is_none(),
        "no user id in the output"
    );
}

#[test]
fn simulate_shows_a_coordinator_is_not_reminded_and_chit_chat_does_nothing() {
    let v = simulate(&[
        "--group",
        "veulen",
        "--sender",
        "coord-veulen",
        "Inbraak bezig in de Molenstraat, twee mannen aan de achterdeur",
    ]);
    assert!(
        v["actions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["kind"] == "forward")
    );
    let v = simulate(&["--group", "veulen", "Onze kat is weg"]);
    assert_eq!(v["alert"], false);
    assert_eq!(
        v["actions"],
        serde_json::json!([{"kind": "none", "group": "veulen", "reason": "not an alert"}])
    );
}

#[test]
fn simulate_refuses_an_unknown_group() {
    let out = bin()
        .args(["simulate", "--config", &heers(), "--group", "nowhere", "x"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown group `nowhere`"));
}

#[test]
fn check_config_says_what_an_evolution_account_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("evo.toml");
    std::fs::write(
        &f,
        "[accounts.evo]\nplatform = \"evolution\"\napi_url = \"http://evolution:8080\"\ninstance = \"heers\"\ntoken = \"instance-token\"\nwebhook_secret = \"a-long-random-secret\"\n\
         [[groups]]\nid = \"a\"\nname = \"A\"\naccount = \"evo\"\nchat = \"120363011111111111@g.us\"\ncoordinators = [\"32475111111@c.us\"]\n\
         [[groups]]\nid = \"b\"\nname = \"B\"\naccount = \"evo\"\nchat = \"120363022222222222@g.us\"\ncoordinators = [\"32475222222@c.us\"]\n",
    )
    .unwrap();
    let out = bin()
        .args(["check-config", f.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("note: accounts.evo (evolution) accepts"),
        "{stderr}"
    );
    assert!(stderr.contains("`apikey` header"), "{stderr}");
    assert!(
        stderr.contains("AUTHENTICATION_EXPOSE_IN_FETCH_INSTANCES=true"),
        "{stderr}"
    );
}

/// Starts `serve` on a minimal sandbox config; returns the child and the
/// URL it listens on (read from its "listening on" line).
fn serve_child(extra: &[&str]) -> (std::process::Child, String, tempfile::TempDir) {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("relay.toml");
    let data = dir.path().join("data");
    std::fs::write(
        &f,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = {data:?}\n\n[accounts.sandbox]\nplatform = \"sandbox\"\n\n[[groups]]\nid = \"veulen\"\nname = \"Veulen\"\naccount = \"sandbox\"\nchat = \"veulen\"\n"
        ),
    )
    .unwrap();
    let mut child = bin()
        .args(["serve", "--config", f.to_str().unwrap()])
        .args(extra)
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut url = String::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if let Some(pos) = line.find("listening on ") {
            url = line[pos + "listening on ".len()..]
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_string();
            break;
        }
    }
    (child, url, dir)
}

#[test]
fn healthcheck_answers_for_a_running_relay_and_fails_when_it_is_gone() {
    let (mut child, url, _dir) = serve_child(&[]);
    assert!(url.starts_with("http://127.0.0.1:"), "no listening line");
    let ok = bin()
        .args(["healthcheck", &format!("{url}/healthz")])
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let _ = child.kill();
    let _ = child.wait();
    let gone = bin()
        .args(["healthcheck", &format!("{url}/healthz")])
        .output()
        .unwrap();
    assert!(!gone.status.success());
    let err = String::from_utf8_lossy(&gone.stderr);
    assert!(err.contains("connection refused"), "{err}");
}

#[test]
fn sandbox_accounts_are_refused_on_a_public_address() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("relay.toml");
    std::fs::write(
        &f,
        "[accounts.sandbox]\nplatform = \"sandbox\"\n\n[[groups]]\nid = \"veulen\"\nname = \"Veulen\"\naccount = \"sandbox\"\nchat = \"veulen\"\n",
    )
    .unwrap();
    let out = bin()
        .args([
            "serve",
            "--config",
            f.to_str().unwrap(),
            "--listen",
            "0.0.0.0:0",
        ])
        .args(["--data-dir", dir.path().join("data").to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refusing to serve sandbox account(s) sandbox on 0.0.0.0:0"),
        "{err}"
    );
    assert!(err.contains("server.allow_public_sandbox = true"), "{err}");
}
