//! Delivery workers: one per account, draining that account's outbox.
//!
//! Guarantees:
//! - at-least-once: an entry leaves the outbox only in the same atomic step
//!   that records the delivered copy; a crash between the platform's answer
//!   and that step re-sends one message (the bound on duplicates: one per
//!   entry in flight, and a worker has one in flight at a time);
//! - strict order within a chat: an entry waiting for a retry holds back the
//!   later entries for the same chat (an all-clear never overtakes its alert);
//! - 429 answers pause that chat for exactly the time the platform asked;
//! - 5xx, timeouts and connection errors are retried with exponential
//!   backoff and jitter; an entry older than `delivery.max_age`, or refused
//!   for good, becomes a dead letter: kept, counted, re-sendable.

mod retry;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, error, info, warn};

pub use retry::backoff;

use crate::config::{AccountId, ChatId};
use crate::platform::SendError;
use crate::runtime::Runtime;
use crate::startup::AppState;
use crate::store::OutboxEntry;
use crate::time::now_ms;

/// What one step of a worker did.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing due; the earliest entry is due at this time (ms), if any.
    Idle {
        next_due_ms: Option<u64>,
    },
    Delivered,
    RetryLater,
    GaveUp,
    /// The account is gone from the config: its entries wait for it.
    AccountGone,
}

/// Runs one worker per configured account until shutdown; follows reloads.
pub async fn run(state: AppState, mut shutdown: watch::Receiver<bool>) {
    let mut workers: HashMap<AccountId, (JoinHandle<()>, watch::Sender<bool>)> = HashMap::new();
    let mut runtime = state.runtime.subscribe();
    loop {
        let accounts: HashSet<AccountId> = runtime.borrow().platforms.keys().cloned().collect();
        workers.retain(|id, (h, stop)| {
            if accounts.contains(id) && !h.is_finished() {
                true
            } else {
                let _ = stop.send(true);
                false
            }
        });
        for id in accounts {
            if let std::collections::hash_map::Entry::Vacant(slot) = workers.entry(id.clone()) {
                let (stop_tx, stop_rx) = watch::channel(false);
                let h = tokio::spawn(worker(state.clone(), id, stop_rx));
                slot.insert((h, stop_tx));
            }
        }
        tokio::select! {
            r = runtime.changed() => if r.is_err() { break },
            _ = shutdown.changed() => break,
        }
    }
    for (_, (_, stop)) in workers.iter() {
        let _ = stop.send(true);
    }
    for (id, (h, _)) in workers {
        // A send in flight gets its own timeout to finish; the rest stays queued.
        if h.await.is_err() {
            warn!(account = %id, "delivery worker ended abnormally");
        }
    }
}

async fn worker(state: AppState, account: AccountId, mut stop: watch::Receiver<bool>) {
    debug!(%account, "delivery worker started");
    let mut paused: HashMap<ChatId, u64> = HashMap::new();
    loop {
        if *stop.borrow() {
            break;
        }
        // Register interest before looking, so a wake-up between the look
        // and the wait is not lost.
        let notified = state.wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let rt = state.runtime.borrow().clone();
        match try_deliver_next(&state, &rt, &account, &mut paused).await {
            Outcome::Idle { next_due_ms } => {
                let wait = next_due_ms
                    .map(|t| Duration::from_millis(t.saturating_sub(now_ms())))
                    .unwrap_or(Duration::from_secs(5))
                    .min(Duration::from_secs(5));
                tokio::select! {
                    _ = &mut notified => {}
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.changed() => {}
                }
            }
            Outcome::AccountGone => break,
            Outcome::Delivered | Outcome::RetryLater | Outcome::GaveUp => {}
        }
    }
    debug!(%account, "delivery worker stopped");
}

/// Sends the next due entry of `account`, if any.
pub async fn try_deliver_next(
    state: &AppState,
    rt: &Runtime,
    account: &AccountId,
    paused: &mut HashMap<ChatId, u64>,
) -> Outcome {
    let Some(platform) = rt.platforms.get(account) else {
        return Outcome::AccountGone;
    };
    let entries = match state.store.pending(account, 512) {
        Ok(e) => e,
        Err(e) => {
            error!(%account, error = %e, "cannot read the outbox");
            return Outcome::Idle {
                next_due_ms: Some(now_ms() + 1_000),
            };
        }
    };
    let now = now_ms();
    let mut blocked: HashSet<ChatId> = HashSet::new();
    let mut next_due: Option<u64> = None;
    let mut pick: Option<OutboxEntry> = None;
    for e in entries {
        if blocked.contains(&e.msg.chat) {
            continue;
        }
        let pause = paused.get(&e.msg.chat).copied().unwrap_or(0);
        let due = e.next_at_ms.max(pause);
        if due > now {
            blocked.insert(e.msg.chat.clone());
            next_due = Some(next_due.map_or(due, |n: u64| n.min(due)));
            continue;
        }
        pick = Some(e);
        break;
    }
    let Some(mut entry) = pick else {
        return Outcome::Idle {
            next_due_ms: next_due,
        };
    };

    let policy = &rt.config.delivery;
    let started = Instant::now();
    let result = match tokio::time::timeout(policy.send_timeout, platform.send(&entry.msg)).await {
        Ok(r) => r,
        Err(_) => Err(SendError::Transient(format!(
            "no answer within {:?}",
            policy.send_timeout
        ))),
    };
    let acc = account.as_str();
    state.metrics.observe(
        "buurtrelay_send_seconds",
        &[("account", acc)],
        started.elapsed().as_secs_f64(),
    );
    let now = now_ms();
    match result {
        Ok(sent) => {
            state.metrics.inc(
                "buurtrelay_sends_total",
                &[("account", acc), ("outcome", "ok")],
            );
            if let Err(e) = state.store.complete(&entry, &sent, now) {
                // The copy is out but not recorded: it stays queued and will be
                // sent again (at-least-once). Flag it loudly.
                error!(%account, group = %entry.msg.group, error = %e, "sent but could not record the delivery");
                return Outcome::RetryLater;
            }
            debug!(%account, group = %entry.msg.group, kind = ?entry.msg.kind, "delivered");
            Outcome::Delivered
        }
        Err(SendError::RateLimited(wait)) => {
            state.metrics.inc(
                "buurtrelay_sends_total",
                &[("account", acc), ("outcome", "rate_limited")],
            );
            let until = now + wait.as_millis() as u64;
            paused.insert(entry.msg.chat.clone(), until);
            entry.next_at_ms = until;
            entry.last_error = Some(format!("rate limited for {wait:?}"));
            if let Err(e) = state.store.reschedule(&entry) {
                error!(%account, error = %e, "cannot store the retry time");
            }
            warn!(%account, chat = %entry.msg.chat, wait_ms = wait.as_millis() as u64, "platform asked to slow down");
            Outcome::RetryLater
        }
        Err(SendError::Transient(why)) => {
            entry.attempts += 1;
            entry.last_error = Some(why.clone());
            if now.saturating_sub(entry.created_ms) > policy.max_age.as_millis() as u64 {
                return give_up(state, account, entry, "too old");
            }
            state.metrics.inc(
                "buurtrelay_sends_total",
                &[("account", acc), ("outcome", "retry")],
            );
            let delay = backoff(entry.attempts, policy.retry_base, policy.retry_max);
            entry.next_at_ms = now + delay.as_millis() as u64;
            if let Err(e) = state.store.reschedule(&entry) {
                error!(%account, error = %e, "cannot store the retry time");
            }
            warn!(%account, group = %entry.msg.group, attempts = entry.attempts, retry_in_ms = delay.as_millis() as u64, error = %why, "send failed; will retry");
            Outcome::RetryLater
        }
        Err(SendError::Permanent(why)) => {
            entry.attempts += 1;
            entry.last_error = Some(why);
            give_up(state, account, entry, "refused")
        }
    }
}

fn give_up(state: &AppState, account: &AccountId, entry: OutboxEntry, why: &str) -> Outcome {
    let acc = account.as_str();
    state.metrics.inc(
        "buurtrelay_sends_total",
        &[("account", acc), ("outcome", "dead")],
    );
    state
        .metrics
        .inc("buurtrelay_dead_letters_total", &[("account", acc)]);
    error!(
        %account, group = %entry.msg.group, attempts = entry.attempts,
        error = entry.last_error.as_deref().unwrap_or(""),
        "giving up on a message ({why}): kept as a dead letter"
    );
    if let Err(e) = state.store.dead_letter(&entry) {
        error!(%account, error = %e, "cannot move the entry to the dead letters");
        return Outcome::RetryLater;
    }
    Outcome::GaveUp
}

/// Releases held alerts whose time is up, every second, until shutdown.
pub async fn run_holds(state: AppState, mut shutdown: watch::Receiver<bool>) {
    loop {
        let rt = state.runtime.borrow().clone();
        let forward = rt.config.relay.on_hold_timeout == crate::config::HoldTimeout::Forward;
        match state.store.due_held(now_ms(), 100) {
            Ok(due) => {
                for h in due {
                    match state.store.release_held(&h, forward, now_ms()) {
                        Ok(n) => {
                            let event = if forward {
                                "released_on_timeout"
                            } else {
                                "dropped_on_timeout"
                            };
                            state
                                .metrics
                                .inc("buurtrelay_held_total", &[("event", event)]);
                            info!(copies = n, event, "held alert's time is up");
                            if n > 0 {
                                state.wake.notify_waiters();
                            }
                        }
                        Err(e) => error!(error = %e, "cannot release a held alert"),
                    }
                }
                let _ = state.store.flush().await;
            }
            Err(e) => error!(error = %e, "cannot read held alerts"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shutdown.changed() => break,
        }
    }
}
