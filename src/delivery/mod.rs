//! Delivery: one dispatcher per account, draining that account's outbox.
//!
//! Guarantees:
//! - at-least-once: an entry leaves the outbox only after the delivered copy
//!   is recorded, and the bookings are flushed before the dispatcher sends
//!   again. A crash between the platform's answer and that flush re-sends
//!   what was in flight: at most `max_in_flight` messages per account (one
//!   per chat), the bound on duplicates;
//! - strict order within a chat: only the head of a chat's queue is ever in
//!   flight, and a head waiting for a retry holds back the chat's later
//!   entries (an all-clear never overtakes its alert);
//! - priorities: alerts before follow-ups before reminders (the outbox is
//!   ordered that way);
//! - limits: per chat and per account sliding windows ([`limits`]); a 429
//!   pauses the chat (or the account) for exactly the time the platform asked;
//! - 5xx, timeouts and connection errors are retried with exponential backoff
//!   and jitter; an entry older than `delivery.max_age`, or refused for good,
//!   becomes a dead letter: kept, counted, re-sendable;
//! - shutdown: no new sends; the ones in flight finish (each bounded by
//!   `delivery.send_timeout`); everything else stays in the outbox.

pub mod limits;
mod queue;
mod retry;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{debug, error, info, warn};

pub use retry::backoff;

use crate::config::{AccountId, ChatId};
use crate::message::Sent;
use crate::platform::SendError;
use crate::startup::AppState;
use crate::store::OutboxEntry;
use crate::time::now_ms;
use limits::Limiter;
use queue::{Key, Queue};

/// How many outbox entries a dispatcher keeps decoded in memory (a cache of
/// the store, which stays the truth).
const CACHE: usize = 4096;
/// Look at the whole outbox again this often (entries re-sent by an admin
/// come back with their old id).
const FULL_RESCAN: Duration = Duration::from_secs(10);

/// Runs one dispatcher per configured account until shutdown; follows reloads.
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
                let h = tokio::spawn(Dispatcher::new(state.clone(), id).run(stop_rx));
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
        if h.await.is_err() {
            warn!(account = %id, "delivery worker ended abnormally");
        }
    }
}

/// The result of one send, reported back to the dispatcher.
struct Done {
    chat: ChatId,
    key: Key,
    result: Result<Sent, SendError>,
    elapsed: Duration,
}

struct Dispatcher {
    state: AppState,
    account: AccountId,
    limiter: Option<Limiter>,
    /// Decoded pending entries, per chat, keyed like the outbox.
    queue: Queue,
    /// Highest entry id loaded so far.
    cursor: Option<u64>,
    truncated: bool,
    last_full: Option<Instant>,
    in_flight: HashSet<ChatId>,
    done_tx: mpsc::UnboundedSender<Done>,
    done_rx: mpsc::UnboundedReceiver<Done>,
}

impl Dispatcher {
    fn new(state: AppState, account: AccountId) -> Self {
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        Self {
            state,
            account,
            limiter: None,
            queue: Queue::default(),
            cursor: None,
            truncated: false,
            last_full: None,
            in_flight: HashSet::new(),
            done_tx,
            done_rx,
        }
    }

    async fn run(mut self, mut stop: watch::Receiver<bool>) {
        debug!(account = %self.account, "delivery worker started");
        let mut stopping = false;
        let wake = self.state.wake.clone();
        // A send that finished while we waited, booked with the others.
        let mut carried: Option<Done> = None;
        loop {
            // Register interest before looking, so a wake-up between the look
            // and the wait is not lost.
            let notified = wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();

            let mut batch: Vec<Done> = carried.take().into_iter().collect();
            while let Ok(done) = self.done_rx.try_recv() {
                batch.push(done);
            }
            if self.finish(batch).await {
                // Durable before the chats they freed send again: a crash
                // re-sends at most what was in flight (see `complete_many`).
                if let Err(e) = self.state.store.flush().await {
                    error!(account = %self.account, error = %e, "cannot flush the delivery bookkeeping");
                }
            }
            let mut next_due = None;
            if !stopping {
                let rt = self.state.runtime.borrow().clone();
                let Some(account) = rt.config.accounts.get(&self.account) else {
                    // Removed from the config: its entries wait in the store.
                    stopping = true;
                    continue;
                };
                match &mut self.limiter {
                    Some(l) => l.update(&account.limits),
                    None => self.limiter = Some(Limiter::new(account.limits.clone())),
                }
                self.refresh().await;
                next_due = self.dispatch(&rt);
            }
            if stopping && self.in_flight.is_empty() {
                break;
            }
            let wait = next_due
                .map(|t: u64| Duration::from_millis(t.saturating_sub(now_ms())))
                .unwrap_or(Duration::from_secs(5))
                .min(Duration::from_secs(5));
            let done = tokio::select! {
                d = self.done_rx.recv() => d,
                _ = &mut notified, if !stopping => None,
                _ = tokio::time::sleep(wait), if !stopping => None,
                _ = stop.changed(), if !stopping => {
                    stopping = true;
                    None
                }
            };
            carried = done;
        }
        debug!(account = %self.account, "delivery worker stopped");
    }

    /// Loads entries accepted since the last look (and, now and then, all).
    async fn refresh(&mut self) {
        let full_due = self.last_full.is_none_or(|t| t.elapsed() >= FULL_RESCAN)
            || (self.truncated && self.queue.len() < CACHE / 2);
        let loaded = if full_due {
            // Off the tokio workers: under a backlog this reads and decodes
            // up to CACHE entries (20-56 ms measured), and the webhooks
            // waiting on the same worker would wait with it.
            // The store reads on its own threads: under a backlog this reads
            // and decodes up to CACHE entries (20-56 ms measured).
            self.state
                .store
                .pending(&self.account, CACHE)
                .await
                .inspect(|v| {
                    // Keep the decoded copies of entries in flight as they are.
                    self.queue.retain_chats(|c| self.in_flight.contains(c));
                    self.last_full = Some(Instant::now());
                    self.truncated = v.len() >= CACHE;
                })
        } else if self.queue.len() < CACHE {
            let room = CACHE - self.queue.len();
            self.state
                .store
                .pending_after(&self.account, self.cursor, room)
                .await
                .inspect(|v| {
                    if v.len() >= room {
                        self.truncated = true;
                    }
                })
        } else {
            return;
        };
        match loaded {
            Ok(entries) => {
                for e in entries {
                    self.cursor = Some(self.cursor.map_or(e.id, |c| c.max(e.id)));
                    self.queue.insert(e);
                }
            }
            Err(e) => error!(account = %self.account, error = %e, "cannot read the outbox"),
        }
    }

    /// Starts every send that is due and allowed; returns when to look again.
    fn dispatch(&mut self, rt: &crate::runtime::Runtime) -> Option<u64> {
        let platform = rt.platforms.get(&self.account).cloned()?;
        let limiter = self.limiter.as_mut()?;
        let now = now_ms();
        let mut next_due: Option<u64> = None;
        let mut start = Vec::new();
        let max = limiter.max_in_flight();
        // Only the head of each chat's queue may go, most urgent first.
        for (key, e) in self.queue.heads() {
            if self.in_flight.len() + start.len() >= max {
                break;
            }
            if self.in_flight.contains(&e.msg.chat) {
                continue;
            }
            let ready = e.next_at_ms.max(limiter.ready_at(&e.msg.chat, now));
            if ready > now {
                next_due = Some(next_due.map_or(ready, |n| n.min(ready)));
                continue;
            }
            limiter.record(&e.msg.chat, now);
            start.push((e.msg.chat.clone(), key));
        }
        let send_timeout = rt.config.delivery.send_timeout;
        let media_timeout = rt.config.relay.media_timeout.max(send_timeout);
        let max_bytes = rt.config.relay.media_max_bytes;
        for (chat, key) in start {
            let Some(entry) = self.queue.get(&chat, &key) else {
                continue;
            };
            self.in_flight.insert(entry.msg.chat.clone());
            let msg = entry.msg.clone();
            let platform = platform.clone();
            // A photo comes from the platform that delivered it, and may
            // take longer than a text.
            let source = msg
                .media
                .as_ref()
                .and_then(|m| rt.platforms.get(&m.account).cloned());
            let timeout = if msg.media.is_some() {
                media_timeout
            } else {
                send_timeout
            };
            let store = self.state.store.clone();
            let tx = self.done_tx.clone();
            tokio::spawn(async move {
                let started = Instant::now();
                // A follow-up finds its thread's copy in this chat now, when
                // its turn has come (see `thread_map`).
                let media = crate::thread_map::MediaSource {
                    platform: source.as_deref(),
                    max_bytes,
                };
                let send =
                    crate::thread_map::deliver(store.as_ref(), platform.as_ref(), &media, &msg);
                let result = match tokio::time::timeout(timeout, send).await {
                    Ok(r) => r,
                    Err(_) => Err(SendError::Transient(format!(
                        "no answer within {timeout:?}"
                    ))),
                };
                if result.is_ok() {
                    crate::failpoint::hit("after_send");
                }
                let _ = tx.send(Done {
                    chat,
                    key,
                    result,
                    elapsed: started.elapsed(),
                });
            });
        }
        next_due
    }

    /// Books the results of the sends that finished since the last look:
    /// the delivered ones in one store call (their copies recorded, then the
    /// entries removed), the others each by its outcome.
    ///
    /// True if deliveries were booked (they are to be flushed).
    async fn finish(&mut self, batch: Vec<Done>) -> bool {
        if batch.is_empty() {
            return false;
        }
        let policy = self.state.runtime.borrow().config.delivery.clone();
        let now = now_ms();
        let mut delivered = Vec::new();
        for done in batch {
            self.in_flight.remove(&done.chat);
            let Some(entry) = self.queue.remove(&done.chat, &done.key) else {
                continue;
            };
            self.state.metrics.observe(
                "buurtrelay_send_seconds",
                &[("account", self.account.as_str())],
                done.elapsed.as_secs_f64(),
            );
            match done.result {
                Ok(sent) => delivered.push((entry, sent)),
                Err(e) => self.failed(entry, e, &policy, now).await,
            }
        }
        if delivered.is_empty() {
            return false;
        }
        let state = &self.state;
        let account = &self.account;
        let done: Vec<(&OutboxEntry, &Sent)> = delivered.iter().map(|(e, s)| (e, s)).collect();
        if let Err(e) = state.store.complete_many(&done, now).await {
            // The copies are out but not recorded: they stay queued and will
            // be sent again (at-least-once). Flag it loudly.
            error!(%account, copies = delivered.len(), error = %e, "sent but could not record the deliveries");
            for (entry, _) in delivered {
                self.queue.put_back(entry);
            }
            return false;
        }
        state.metrics.add(
            "buurtrelay_sends_total",
            &[("account", account.as_str()), ("outcome", "ok")],
            delivered.len() as u64,
        );
        for (entry, _) in &delivered {
            debug!(%account, group = %entry.msg.group, kind = entry.msg.kind.as_str(), "delivered");
        }
        true
    }

    /// Books a send that did not deliver: retry later, or give up.
    async fn failed(
        &mut self,
        mut entry: OutboxEntry,
        error: SendError,
        policy: &crate::config::DeliveryPolicy,
        now: u64,
    ) {
        let state = &self.state;
        let account = &self.account;
        let acc = account.as_str();
        match error {
            SendError::RateLimited(wait) | SendError::AccountRateLimited(wait) => {
                let account_wide = matches!(error, SendError::AccountRateLimited(_));
                state.metrics.inc(
                    "buurtrelay_sends_total",
                    &[("account", acc), ("outcome", "rate_limited")],
                );
                let until = now + wait.as_millis() as u64;
                if let Some(l) = self.limiter.as_mut() {
                    if account_wide {
                        l.pause_account(until);
                    } else {
                        l.pause_chat(&entry.msg.chat, until);
                    }
                }
                entry.next_at_ms = until;
                entry.last_error = Some(format!("rate limited for {wait:?}"));
                if let Err(e) = state.store.reschedule(&entry).await {
                    error!(%account, error = %e, "cannot store the retry time");
                }
                warn!(%account, chat = %crate::telemetry::chat_for_log(entry.msg.chat.as_str()), wait_ms = wait.as_millis() as u64, account_wide, "platform asked to slow down");
                self.queue.put_back(entry);
            }
            SendError::Transient(why) => {
                entry.attempts += 1;
                entry.last_error = Some(why.clone());
                if now.saturating_sub(entry.created_ms) > policy.max_age.as_millis() as u64 {
                    self.give_up(entry, "too old").await;
                    return;
                }
                state.metrics.inc(
                    "buurtrelay_sends_total",
                    &[("account", acc), ("outcome", "retry")],
                );
                let delay = backoff(entry.attempts, policy.retry_base, policy.retry_max);
                entry.next_at_ms = now + delay.as_millis() as u64;
                if let Err(e) = state.store.reschedule(&entry).await {
                    error!(%account, error = %e, "cannot store the retry time");
                }
                warn!(%account, group = %entry.msg.group, attempts = entry.attempts, retry_in_ms = delay.as_millis() as u64, error = %why, "send failed; will retry");
                self.queue.put_back(entry);
            }
            SendError::Permanent(why) => {
                entry.attempts += 1;
                entry.last_error = Some(why);
                self.give_up(entry, "refused").await;
            }
        }
    }

    async fn give_up(&mut self, entry: OutboxEntry, why: &str) {
        let state = &self.state;
        let account = &self.account;
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
        if let Err(e) = state.store.dead_letter(&entry).await {
            error!(%account, error = %e, "cannot move the entry to the dead letters");
            self.queue.put_back(entry);
        }
    }
}

/// Releases held alerts whose time is up, every second, until shutdown.
pub async fn run_holds(state: AppState, mut shutdown: watch::Receiver<bool>) {
    loop {
        let rt = state.runtime.borrow().clone();
        let forward = rt.config.relay.on_hold_timeout == crate::config::HoldTimeout::Forward;
        match state.store.due_held(now_ms(), 100).await {
            Ok(due) => {
                for h in due {
                    match state.store.release_held(&h, forward, now_ms()).await {
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
