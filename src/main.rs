//! The command line: `serve`, `check-config`, `simulate`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use buurtrelay::config::{ChatId, Config, GroupId};
use buurtrelay::message::{InboundMessage, Sender};
use buurtrelay::relay::{self, Action};
use buurtrelay::startup::{Application, Overrides, shutdown_signal};

#[derive(Parser)]
#[command(
    name = "buurtrelay",
    version,
    about = "Relay bot for neighbourhood-watch chat groups: call 101 first, then post."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the relay.
    Serve {
        #[arg(long, short, env = "BUURTRELAY_CONFIG")]
        config: PathBuf,
        /// Listen address, overriding server.listen (e.g. 0.0.0.0:8080).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Data directory, overriding server.data_dir.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Check a config file; prints `file:line:col: message` for every error.
    CheckConfig { file: PathBuf },
    /// Show what the relay would do with a message.
    Simulate {
        #[arg(long, short)]
        config: PathBuf,
        /// The group the message is posted in.
        #[arg(long, short)]
        group: String,
        /// The sender's platform user id (a coordinator id shows the coordinator path).
        #[arg(long, default_value = "member")]
        sender: String,
        /// The sender's display name.
        #[arg(long)]
        name: Option<String>,
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
        text: String,
    },
}

fn main() -> ExitCode {
    if !alloc_options::tune() {
        eprintln!(
            "note: the allocator runs with its default settings (more memory); build from the repository for the tuned ones"
        );
    }
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Serve {
            config,
            listen,
            data_dir,
        } => serve(config, Overrides { listen, data_dir }),
        Cmd::CheckConfig { file } => check(&file),
        Cmd::Simulate {
            config,
            group,
            sender,
            name,
            json,
            text,
        } => simulate(&config, &group, &sender, name, json, &text),
    }
}

fn serve(config: PathBuf, overrides: Overrides) -> ExitCode {
    buurtrelay::telemetry::init("info,sled=warn,hyper=warn");
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let res = rt.block_on(async {
        let app = Application::build(&config, overrides).await?;
        app.run_until(shutdown_signal()).await
    });
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("buurtrelay: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn check(file: &Path) -> ExitCode {
    match Config::load(file) {
        Ok(cfg) => {
            for w in &cfg.warnings {
                eprintln!("{}: warning: {w}", file.display());
            }
            for n in &cfg.notes {
                eprintln!("{}: note: {n}", file.display());
            }
            println!(
                "{}: ok — network \"{}\", {} groups, {} accounts, {} routes, {} alert categories",
                file.display(),
                cfg.network.name,
                cfg.groups.len(),
                cfg.accounts.len(),
                cfg.routes.len(),
                cfg.rules.category_names().count()
            );
            ExitCode::SUCCESS
        }
        Err(errs) => {
            for e in &errs.0 {
                eprintln!("{e}");
            }
            eprintln!("{} error(s)", errs.0.len());
            ExitCode::FAILURE
        }
    }
}

fn simulate(
    config: &Path,
    group: &str,
    sender: &str,
    name: Option<String>,
    json: bool,
    text: &str,
) -> ExitCode {
    let cfg = match Config::load(config) {
        Ok(c) => c,
        Err(errs) => {
            eprintln!("{errs}");
            return ExitCode::FAILURE;
        }
    };
    let Some(g) = GroupId::parse(group).ok().and_then(|id| cfg.group(&id)) else {
        let known: Vec<&str> = cfg.groups.iter().map(|g| g.id.as_str()).collect();
        eprintln!("unknown group `{group}`; groups: {}", known.join(", "));
        return ExitCode::FAILURE;
    };
    let msg = InboundMessage {
        account: g.account.clone(),
        platform: g.platform,
        chat: ChatId::parse(g.chat.as_str()).unwrap_or_else(|_| g.chat.clone()),
        message_id: "1".into(),
        sender: Sender {
            id: sender.to_string(),
            name,
            is_bot: false,
        },
        text: text.to_string(),
        reply_to: None,
        at_ms: 0,
        edit: None,
        quoted: None,
        extra: Default::default(),
    };
    // No store: the message is judged as a fresh one, outside any thread.
    let d = relay::decide(
        &cfg,
        g,
        &msg,
        &Default::default(),
        &Default::default(),
        buurtrelay::time::now_ms(),
    );
    if json {
        match serde_json::to_string_pretty(&d) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
        }
        return ExitCode::SUCCESS;
    }
    println!("alert:      {}", if d.alert { "yes" } else { "no" });
    println!(
        "categories: {}",
        if d.categories.is_empty() {
            "-".to_string()
        } else {
            d.categories.join(", ")
        }
    );
    println!(
        "police called (confirmed): {}",
        if d.confirmed { "yes" } else { "no" }
    );
    println!("sender role: {}", d.role);
    println!("actions:");
    for a in &d.actions {
        match a {
            Action::Remind { group, text, .. } => println!("  remind  in {group}: {text}"),
            Action::Forward { group, text, .. } => {
                println!("  forward to {group}: {}", text.replace('\n', " ⏎ "))
            }
            Action::Hold {
                group,
                until_ms,
                targets,
            } => println!(
                "  hold    in {group} for {}s, then to {}",
                until_ms.saturating_sub(buurtrelay::time::now_ms()) / 1000,
                targets
                    .iter()
                    .map(|t| t.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Action::None { group, reason } => println!("  none    in {group}: {reason}"),
            Action::Answer { group, text, .. } => {
                println!("  answer  in {group}: {}", text.replace('\n', " ⏎ "))
            }
            other => println!("  {:<7} in {}", other.kind(), other.group()),
        }
    }
    ExitCode::SUCCESS
}

/// The allocator: glibc's malloc with at most two arenas by default, or
/// mimalloc with `--features mimalloc`. Measured with the load generator on
/// the 2-core benchmark machine (README, "Measured speed", medians of six
/// runs each): mimalloc takes 15-25% more messages per second under heavy
/// load and about 12 MB more memory (peak RSS 66 MB against 54 MB under an
/// alert backlog; the budget is 64).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// glibc's malloc, with at most two arenas: one per core here, where its
/// default (eight per core) let each of the relay's threads keep an arena of
/// its own.
#[cfg(not(feature = "mimalloc"))]
mod alloc_options {
    /// Sets the arena limit; run first thing in `main`, before any other
    /// thread exists. Returns whether the setting took.
    pub fn tune() -> bool {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        {
            // SAFETY: mallopt takes plain integers and glibc's own lock.
            // (Called first in `main` so that every thread's arena follows it.)
            unsafe { libc::mallopt(libc::M_ARENA_MAX, 2) == 1 }
        }
        #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
        {
            true
        }
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn the_allocator_takes_the_arena_limit() {
            assert!(super::tune());
        }
    }
}

/// The allocator's settings that matter for memory (mimalloc's options, by
/// their number in `mi_option_t`, mimalloc.h v3: that enum's order is its ABI).
#[cfg(feature = "mimalloc")]
mod alloc_options {
    use libmimalloc_sys::{mi_option_get, mi_option_set, mi_option_t};

    /// Commit arena memory as it is used, not 1 GiB up front. Set at build
    /// time (.cargo/config.toml): the first arena exists before `main`.
    pub const ARENA_EAGER_COMMIT: mi_option_t = 4;
    /// Give freed pages back after this many ms (mimalloc's default: 1000),
    /// and arena memory after this many times that (default: 1). Both 0:
    /// peak RSS under the load generator's alert backlog 72 MB (one run)
    /// -> 66 MB (median of six), with no loss of speed seen.
    const PURGE_DELAY: mi_option_t = 15;
    const ARENA_PURGE_MULT: mi_option_t = 24;

    /// Sets what can be set at run time. Returns whether the allocator runs
    /// with the settings meant (a binary built without the build-time one
    /// still works, with a higher RSS).
    pub fn tune() -> bool {
        // SAFETY: mimalloc's option calls take plain integers and may be
        // called at any time.
        unsafe {
            mi_option_set(PURGE_DELAY, 0);
            mi_option_set(ARENA_PURGE_MULT, 0);
            mi_option_get(ARENA_EAGER_COMMIT) == 0
                && mi_option_get(PURGE_DELAY) == 0
                && mi_option_get(ARENA_PURGE_MULT) == 0
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn the_allocator_runs_with_the_settings_meant() {
            // SAFETY: as in `tune`.
            unsafe {
                // mimalloc's own defaults (src/options.c): these numbers
                // are purge_delay and arena_purge_mult; then the build-time
                // default took.
                assert_eq!(mi_option_get(PURGE_DELAY), 1000);
                assert_eq!(mi_option_get(ARENA_PURGE_MULT), 1);
                assert_eq!(
                    mi_option_get(ARENA_EAGER_COMMIT),
                    0,
                    "built without .cargo/config.toml's CFLAGS"
                );
            }
            assert!(tune());
        }
    }
}
