//! The deploy files, checked where Docker does not run: the Docker build
//! context (what `.dockerignore` lets through) holds every path the build
//! needs, and the image holds no config and no shell health check.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The allowlist of `.dockerignore` (`*`, then `!path` lines).
fn allowed() -> Vec<String> {
    let text = std::fs::read_to_string(root().join(".dockerignore")).expect(".dockerignore exists");
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert_eq!(
        lines.first(),
        Some(&"*"),
        ".dockerignore is an allowlist: it starts with `*`"
    );
    lines[1..]
        .iter()
        .map(|l| {
            let p = l
                .strip_prefix('!')
                .unwrap_or_else(|| panic!("only `!path` after `*`: {l}"));
            p.trim_end_matches('/').to_string()
        })
        .collect()
}

fn in_context(allow: &[String], rel: &Path) -> bool {
    let rel = rel.to_string_lossy().replace('\\', "/");
    allow
        .iter()
        .any(|a| rel == *a || rel.starts_with(&format!("{a}/")))
}

/// Every `path = "..."` in Cargo.toml (path dependencies, [patch]es, targets).
fn manifest_paths(v: &toml::Value, out: &mut Vec<PathBuf>) {
    match v {
        toml::Value::Table(t) => {
            for (k, v) in t {
                match (k.as_str(), v) {
                    ("path", toml::Value::String(p)) => out.push(PathBuf::from(p)),
                    _ => manifest_paths(v, out),
                }
            }
        }
        toml::Value::Array(a) => a.iter().for_each(|v| manifest_paths(v, out)),
        _ => {}
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read src") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Files the release build reads through `include_str!`/`include_bytes!`
/// (those inside `#[cfg(test)]` code, test fixtures, are not built).
fn included_files() -> Vec<PathBuf> {
    let re = regex::Regex::new(r#"include_(?:str|bytes)!\(\s*"([^"]+)"\s*\)"#).expect("regex");
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).expect("read source");
        let tests_from = text.find("#[cfg(test)]\nmod ").unwrap_or(text.len());
        for c in re.captures_iter(&text) {
            let at = c.get(0).expect("match").start();
            if at > tests_from {
                continue;
            }
            let target = f.parent().expect("dir").join(&c[1]);
            let target = target
                .canonicalize()
                .unwrap_or_else(|e| panic!("{}: {e}", target.display()));
            out.push(
                target
                    .strip_prefix(root().canonicalize().expect("root"))
                    .expect("inside the repo")
                    .to_path_buf(),
            );
        }
    }
    out
}

#[test]
fn the_docker_build_context_holds_every_path_the_build_needs() {
    let allow = allowed();
    let mut needed: Vec<PathBuf> = ["Cargo.toml", "Cargo.lock", "src/main.rs", "src/lib.rs"]
        .iter()
        .map(PathBuf::from)
        .collect();
    if root().join(".cargo/config.toml").exists() {
        needed.push(".cargo/config.toml".into());
    }
    let manifest: toml::Value = std::fs::read_to_string(root().join("Cargo.toml"))
        .expect("Cargo.toml")
        .parse()
        .expect("Cargo.toml parses");
    manifest_paths(&manifest, &mut needed);
    if root().join("build.rs").exists() {
        needed.push("build.rs".into());
    }
    let included = included_files();
    assert!(
        included.iter().any(|p| p.starts_with("config/protocol")),
        "the built-in protocol files are found: {included:?}"
    );
    needed.extend(included);
    for p in &needed {
        assert!(
            root().join(p).exists(),
            "{} is needed but missing",
            p.display()
        );
        assert!(
            in_context(&allow, p),
            "{} is needed by the build but .dockerignore keeps it out",
            p.display()
        );
    }
    for heavy in ["target", "data", "tests", ".git"] {
        assert!(
            !in_context(&allow, Path::new(heavy)),
            "{heavy}/ must stay out of the build context"
        );
    }
}

#[test]
fn the_image_holds_no_config_and_checks_health_without_a_shell() {
    let docker = std::fs::read_to_string(root().join("deploy/Dockerfile")).expect("Dockerfile");
    let last_stage = docker.rsplit("\nFROM ").next().expect("a final stage");
    for line in last_stage.lines().filter(|l| l.starts_with("COPY")) {
        assert!(
            line.contains("--from=build"),
            "the image copies only the binary: {line}"
        );
    }
    let health: Vec<&str> = docker.lines().filter(|l| l.contains("CMD [")).collect();
    assert_eq!(health.len(), 1, "{health:?}");
    assert!(
        health[0].contains(r#"["buurtrelay", "healthcheck", "#),
        "{}",
        health[0]
    );
    assert!(!docker.contains("/bin/sh") && !docker.contains("/dev/tcp"));
    // The build stage copies the context, which .dockerignore narrows.
    for line in docker
        .lines()
        .filter(|l| l.starts_with("COPY") && !l.contains("--from"))
    {
        assert_eq!(line.trim(), "COPY . .", "{line}");
    }
}

#[test]
fn the_kubernetes_manifests_hang_together_and_their_config_is_valid() {
    let k8s = root().join("deploy/k8s");
    let read =
        |f: &str| std::fs::read_to_string(k8s.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
    let kustomization = read("kustomization.yaml");
    for f in [
        "configmap.yaml",
        "pvc.yaml",
        "deployment.yaml",
        "service.yaml",
    ] {
        assert!(
            kustomization.contains(&format!("- {f}")),
            "{f} not in kustomization.yaml"
        );
    }
    // The secret is applied by hand from its example, never committed filled in.
    assert!(
        !kustomization
            .lines()
            .any(|l| l.trim().starts_with("- secret")),
        "secrets stay out of kustomize"
    );
    let deployment = read("deployment.yaml");
    for (what, name) in [
        ("the Secret", "name: buurtrelay-secrets"),
        ("the ConfigMap", "name: buurtrelay-config"),
        ("the PVC", "claimName: buurtrelay-data"),
        ("the liveness probe", "path: /healthz"),
        ("the readiness probe", "path: /readyz"),
        ("one sled owner at a time", "type: Recreate"),
    ] {
        assert!(
            deployment.contains(name),
            "the Deployment lacks {what} ({name})"
        );
    }
    assert!(read("secret.example.yaml").contains("name: buurtrelay-secrets"));
    assert!(read("pvc.yaml").contains("name: buurtrelay-data"));
    // The config in the ConfigMap passes check-config with its secrets set.
    let configmap = read("configmap.yaml");
    let toml: String = configmap
        .split_once("buurtrelay.toml: |\n")
        .expect("the config in the ConfigMap")
        .1
        .lines()
        .map(|l| l.strip_prefix("    ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n");
    let dir = tempfile::tempdir().expect("tempdir");
    let f = dir.path().join("buurtrelay.toml");
    std::fs::write(&f, toml).expect("write");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_buurtrelay"))
        .args(["check-config", f.to_str().expect("utf-8 path")])
        .env("HEERS_BOT_TOKEN", "123456:ABCdefGHIjklMNOpqrSTUvwxYZ")
        .env("HEERS_WEBHOOK_SECRET", "a-long-webhook-secret")
        .env("ADMIN_TOKEN", "a-long-admin-token-for-tests")
        .output()
        .expect("run check-config");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for key in ["HEERS_BOT_TOKEN", "HEERS_WEBHOOK_SECRET", "ADMIN_TOKEN"] {
        assert!(
            read("secret.example.yaml").contains(&format!("{key}:")),
            "{key} not in the Secret"
        );
    }
}
