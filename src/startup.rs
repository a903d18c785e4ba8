//! Start-up: an [`Application`] opens the store, binds its listener (port 0
//! in tests), and runs the HTTP server, the delivery workers, the hold
//! sweeper, the config watcher and the janitor under one shutdown signal.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tracing::{error, info, warn};

use crate::config::Config;
use crate::platform::sandbox::SandboxFeed;
use crate::runtime::Runtime;
use crate::store::{SandboxChats, SledStore, Store};
use crate::telemetry::Metrics;
use crate::time::now_ms;

/// The last config reload, for operators.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ReloadStatus {
    pub last_ok_ms: Option<u64>,
    pub last_error: Option<String>,
}

/// Everything the request handlers and workers share.
#[derive(Clone)]
pub struct AppState {
    pub runtime: Arc<watch::Sender<Arc<Runtime>>>,
    pub store: Arc<dyn Store>,
    pub metrics: Arc<Metrics>,
    /// Woken when the outbox gains entries.
    pub wake: Arc<Notify>,
    pub reload: Arc<Mutex<ReloadStatus>>,
    pub config_path: Arc<Path>,
    /// Every message appended to a sandbox chat, live (the playground).
    pub sandbox_feed: SandboxFeed,
    /// The sandbox platform's chats.
    pub sandbox_chats: Arc<dyn SandboxChats>,
    /// The words of recent alerts, for comparing new ones with them.
    pub alert_words: Arc<crate::thread_map::AlertWords>,
    /// The config warnings already logged, so a reload repeats none.
    pub logged_warnings: Arc<Mutex<WarnOnce>>,
}

/// The config warnings of the last load. A reload logs only those that are
/// new; one that goes away and comes back is logged again.
#[derive(Default)]
pub struct WarnOnce {
    last: std::collections::HashSet<String>,
}

impl WarnOnce {
    /// The warnings in `now` that the last load did not have.
    pub fn fresh<'a>(&mut self, now: &'a [String]) -> Vec<&'a String> {
        let new = now.iter().filter(|w| !self.last.contains(*w)).collect();
        self.last = now.iter().cloned().collect();
        new
    }
}

/// Sandbox accounts let anyone who reaches the server post as any member:
/// fine on 127.0.0.1 for a demo, an open door on 0.0.0.0 (a container's
/// default). Refused there unless the config says so.
fn refuse_public_sandbox(config: &Config, listen: SocketAddr) -> anyhow::Result<()> {
    let sandbox: Vec<String> = config
        .accounts
        .iter()
        .filter(|(_, a)| a.platform == crate::config::PlatformKind::Sandbox)
        .map(|(id, _)| id.to_string())
        .collect();
    if sandbox.is_empty() || listen.ip().is_loopback() || config.server.allow_public_sandbox {
        return Ok(());
    }
    anyhow::bail!(
        "refusing to serve sandbox account(s) {} on {listen}: anyone who reaches it could post as any member. \
         Listen on 127.0.0.1, remove the sandbox accounts, or set server.allow_public_sandbox = true",
        sandbox.join(", ")
    )
}

/// An exclusive lock on `DIR/buurtrelay.lock`, held while the relay runs
/// (released by the kernel when the process ends, even killed).
pub struct DataDirLock {
    _file: std::fs::File,
}

impl DataDirLock {
    pub fn acquire(dir: &Path) -> anyhow::Result<DataDirLock> {
        let path = dir.join("buurtrelay.lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        #[cfg(unix)]
        {
            use std::os::fd::AsRawFd;
            // SAFETY: flock on a descriptor this function owns.
            let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            if rc != 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::WouldBlock {
                    anyhow::bail!(
                        "another buurtrelay is using {}: stop it first, or give this one another server.data_dir",
                        dir.display()
                    );
                }
                return Err(e).with_context(|| format!("cannot lock {}", path.display()));
            }
        }
        Ok(DataDirLock { _file: file })
    }
}

pub struct Application {
    listener: TcpListener,
    state: AppState,
    /// Held until the relay stops.
    lock: DataDirLock,
    max_body: usize,
    /// The config file as loaded, so a change made before the watcher
    /// starts is still seen as a change.
    loaded: Option<Vec<u8>>,
}

/// Start-up choices that the config file does not make (tests use them).
#[derive(Default, Clone)]
pub struct Overrides {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
}

impl Application {
    pub async fn build(config_path: &Path, overrides: Overrides) -> anyhow::Result<Application> {
        let loaded = std::fs::read(config_path).ok();
        let config = Config::load(config_path).map_err(|e| anyhow::anyhow!("{e}"))?;
        for w in &config.warnings {
            warn!("config: {w}");
        }
        for n in &config.notes {
            info!("config: {n}");
        }
        let data_dir = overrides
            .data_dir
            .clone()
            .unwrap_or_else(|| config.server.data_dir.clone());
        std::fs::create_dir_all(&data_dir)
            .with_context(|| format!("cannot create data directory {}", data_dir.display()))?;
        // Our own lock before sled's: a second relay is told so in one line
        // instead of sled's raw lock error.
        let lock = DataDirLock::acquire(&data_dir)?;
        let key = match &config.server.sender_hash_key {
            Some(k) => crate::privacy::SenderKey::from_secret(k.expose())?,
            None => crate::privacy::SenderKey::load_or_create(&data_dir)?,
        };
        crate::privacy::install(key);
        let sled = Arc::new(
            SledStore::open(&data_dir)
                .with_context(|| format!("cannot open the store in {}", data_dir.display()))?,
        );
        let store: Arc<dyn Store> = sled.clone();
        let sandbox_chats: Arc<dyn SandboxChats> = sled;
        let listen = overrides.listen.unwrap_or(config.server.listen);
        refuse_public_sandbox(&config, listen)?;
        let listener = TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let max_body = config.server.max_body_bytes;
        let sandbox_feed = SandboxFeed::default();
        let mut logged = WarnOnce::default();
        logged.fresh(&config.warnings);
        let runtime = Runtime::with_sandbox_feed(
            config,
            store.clone(),
            sandbox_chats.clone(),
            &sandbox_feed,
        )?;
        let (tx, _) = watch::channel(Arc::new(runtime));
        let metrics = Arc::new(Metrics::default());
        store.count_flushes_in(metrics.clone());
        let state = AppState {
            runtime: Arc::new(tx),
            store,
            metrics,
            wake: Arc::new(Notify::new()),
            reload: Arc::new(Mutex::new(ReloadStatus::default())),
            config_path: config_path.into(),
            sandbox_feed,
            sandbox_chats,
            alert_words: Arc::default(),
            logged_warnings: Arc::new(Mutex::new(logged)),
        };
        info!(
            data_dir = %data_dir.display(),
            pending = state.store.queue_stats().await.map(|s| s.iter().map(|q| q.depth).sum::<usize>()).unwrap_or(0),
            "store opened"
        );
        Ok(Application {
            lock,
            listener,
            state,
            max_body,
            loaded,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    pub fn state(&self) -> AppState {
        self.state.clone()
    }

    /// Serves until `shutdown` resolves, then stops accepting, lets the
    /// workers finish the sends in flight, and flushes the store.
    pub async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let addr = self.local_addr();
        let state = self.state.clone();
        // SIGHUP is caught from here on, before "listening" is logged: a
        // SIGHUP sent right after that line must reload, not kill (the
        // default action of an uncaught SIGHUP).
        let hangup = Hangup::install();
        {
            let rt = state.runtime.borrow().clone();
            info!(
                "buurtrelay listening on http://{addr} — network \"{}\", {} groups, {} accounts",
                rt.config.network.name,
                rt.config.groups.len(),
                rt.config.accounts.len()
            );
        }
        let (stop_tx, stop_rx) = watch::channel(false);
        let delivery = tokio::spawn(crate::delivery::run(state.clone(), stop_rx.clone()));
        let holds = tokio::spawn(crate::delivery::run_holds(state.clone(), stop_rx.clone()));
        let watcher = tokio::spawn(watch_config(
            state.clone(),
            self.loaded.clone(),
            stop_rx.clone(),
            hangup,
        ));
        let janitor = tokio::spawn(janitor(state.clone(), stop_rx.clone()));

        let app = crate::http::router(state.clone(), self.max_body);
        let stop_for_server = stop_tx.clone();
        let feed = state.sandbox_feed.clone();
        axum::serve(self.listener, app)
            .with_graceful_shutdown(async move {
                shutdown.await;
                info!("shutting down: no new requests; finishing sends in flight");
                let _ = stop_for_server.send(true);
                // Open live views (server-sent events) end, so the server can stop.
                feed.close();
            })
            .await
            .context("http server")?;
        let _ = stop_tx.send(true);
        let bound = Duration::from_secs(20);
        if tokio::time::timeout(bound, async {
            let _ = delivery.await;
            let _ = holds.await;
            let _ = watcher.await;
            let _ = janitor.await;
        })
        .await
        .is_err()
        {
            warn!("workers did not stop within {bound:?}; what is left stays in the outbox");
        }
        state.store.flush().await.context("final flush")?;
        drop(self.lock);
        info!("stopped");
        Ok(())
    }
}

/// Reloads the config on SIGHUP and when the file changes; keeps the old one
/// (and logs every error) when the new one is invalid.
/// The SIGHUP listener (none where there are no signals).
struct Hangup {
    #[cfg(unix)]
    signal: Option<tokio::signal::unix::Signal>,
}

impl Hangup {
    fn install() -> Hangup {
        Hangup {
            #[cfg(unix)]
            signal: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok(),
        }
    }
}

async fn watch_config(
    state: AppState,
    mut last: Option<Vec<u8>>,
    mut stop: watch::Receiver<bool>,
    hangup: Hangup,
) {
    let poll = state.runtime.borrow().config.server.reload_poll;
    #[cfg(unix)]
    let mut hup = hangup.signal;
    #[cfg(not(unix))]
    let _ = hangup;
    loop {
        #[cfg(unix)]
        let hup_fut = async {
            match hup.as_mut() {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let hup_fut = std::future::pending::<()>();
        let forced = tokio::select! {
            _ = hup_fut => true,
            _ = tokio::time::sleep(poll) => false,
            _ = stop.changed() => return,
        };
        let now = std::fs::read(&state.config_path).ok();
        if !forced && now == last {
            continue;
        }
        last = now;
        reload(&state, if forced { "SIGHUP" } else { "file changed" });
    }
}

/// Loads the config file again and swaps it in if it is valid.
pub fn reload(state: &AppState, why: &str) -> bool {
    match Config::load(&state.config_path) {
        Ok(cfg) => {
            let old = state.runtime.borrow().clone();
            if cfg.server.listen != old.config.server.listen
                || cfg.server.data_dir != old.config.server.data_dir
            {
                warn!("config: server.listen and server.data_dir take effect at the next restart");
            }
            if let Ok(mut logged) = state.logged_warnings.lock() {
                for w in logged.fresh(&cfg.warnings) {
                    warn!("config: {w}");
                }
            }
            let groups = cfg.groups.len();
            let rt = match Runtime::with_sandbox_feed(
                cfg,
                state.store.clone(),
                state.sandbox_chats.clone(),
                &state.sandbox_feed,
            ) {
                Ok(rt) => rt,
                Err(e) => {
                    state
                        .metrics
                        .inc("buurtrelay_config_reloads_total", &[("result", "error")]);
                    error!("config not reloaded, keeping the running one: {e}");
                    if let Ok(mut r) = state.reload.lock() {
                        r.last_error = Some(e.to_string());
                    }
                    return false;
                }
            };
            state.runtime.send_replace(Arc::new(rt));
            state
                .metrics
                .inc("buurtrelay_config_reloads_total", &[("result", "ok")]);
            if let Ok(mut r) = state.reload.lock() {
                r.last_ok_ms = Some(now_ms());
                r.last_error = None;
            }
            info!(groups, why, "config reloaded");
            state.wake.notify_waiters();
            true
        }
        Err(errs) => {
            state
                .metrics
                .inc("buurtrelay_config_reloads_total", &[("result", "error")]);
            for e in &errs.0 {
                error!("config not reloaded, keeping the running one: {e}");
            }
            if let Ok(mut r) = state.reload.lock() {
                r.last_error = Some(errs.to_string());
            }
            false
        }
    }
}

/// Every hour, removes what is past `relay.retention`: dedup marks,
/// cooldowns, alert texts, copies and thread links, dead letters, sandbox
/// messages, and chat moves the config no longer needs. Each kind removed is
/// counted in `buurtrelay_expired_total{kind}`. The work runs on the store's
/// threads, never on a tokio worker.
async fn janitor(state: AppState, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
            _ = stop.changed() => return,
        }
        expire(&state).await;
    }
}

/// One round of the janitor.
pub async fn expire(state: &AppState) {
    let rt = state.runtime.borrow().clone();
    let retention = rt.config.relay.retention;
    let cutoff = now_ms().saturating_sub(retention.as_millis() as u64);
    // The chats the config still names: their moves stay (see `migrate_chat`).
    let configured: Vec<crate::config::ChatId> =
        rt.config.groups.iter().map(|g| g.chat.clone()).collect();
    let rounds = [
        ("record", state.store.purge_before(cutoff).await),
        ("dead_letter", state.store.expire_dead_letters(cutoff).await),
        (
            "chat_move",
            state.store.expire_chat_moves(cutoff, &configured).await,
        ),
        (
            "sandbox_message",
            state.sandbox_chats.expire_before(cutoff).await,
        ),
    ];
    for (kind, result) in rounds {
        match result {
            Ok(n) => {
                state
                    .metrics
                    .add("buurtrelay_expired_total", &[("kind", kind)], n as u64);
                if n > 0 {
                    info!(records = n, kind, "removed past the retention period");
                }
            }
            Err(e) => error!(error = %e, kind, "expiry failed"),
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_warning_repeated_on_every_reload_is_logged_once() {
        let mut logged = WarnOnce::default();
        let a = vec!["group `x` has no coordinators".to_string()];
        assert_eq!(logged.fresh(&a).len(), 1);
        assert!(logged.fresh(&a).is_empty());
        assert!(logged.fresh(&a).is_empty());
        // Fixed, then back: said again.
        assert!(logged.fresh(&[]).is_empty());
        assert_eq!(logged.fresh(&a).len(), 1);
    }

    #[test]
    fn a_second_relay_on_the_same_data_dir_is_told_who_holds_it() {
        let dir = tempfile::tempdir().unwrap();
        let first = DataDirLock::acquire(dir.path()).unwrap();
        let e = DataDirLock::acquire(dir.path()).err().unwrap().to_string();
        assert_eq!(
            e,
            format!(
                "another buurtrelay is using {}: stop it first, or give this one another server.data_dir",
                dir.path().display()
            )
        );
        drop(first);
        assert!(DataDirLock::acquire(dir.path()).is_ok());
    }
}
