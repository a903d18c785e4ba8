//! The sled engine itself (sled 0.34): one database under `data_dir`, one
//! tree per kind of record, multi-tree transactions for atomic writes.
//!
//! Every method here blocks on sled, and may block on the disk. Only the
//! store's own threads call them (see the parent module); the type is not
//! visible outside `store::sled`, so nothing else can.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use ::sled::Transactional;
use ::sled::transaction::{ConflictableTransactionError, TransactionError};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use super::recent::{self, RecentAlerts};
use crate::message::OutboundKind;
use crate::store::*;

pub(super) struct Engine {
    db: ::sled::Db,
    commit: GroupCommit,
    seen: ::sled::Tree,
    outbox: ::sled::Tree,
    dead: ::sled::Tree,
    cooldown: ::sled::Tree,
    alerts: ::sled::Tree,
    copies: ::sled::Tree,
    sandbox: ::sled::Tree,
    held: ::sled::Tree,
    /// Thread map: a message's link key → its thread's origin.
    links: ::sled::Tree,
    /// An alert's origin → its time (the key of its record in `alerts`).
    alert_index: ::sled::Tree,
    /// Chat ids that changed: old → [`ChatMove`].
    moves: ::sled::Tree,
    /// Derived records (see [`INDEX_VERSION`]): counters and indexes, each
    /// written in the same atomic step as the records it counts or points
    /// to, so a request reads them instead of walking a tree.
    index: ::sled::Tree,
    /// The newest alert records, decoded (`None`: not loaded yet, or
    /// dropped after an error or a purge).
    recent: Mutex<Option<RecentAlerts>>,
}

fn enc<T: Serialize>(v: &T) -> Vec<u8> {
    // Serialising our own plain structs to JSON cannot fail.
    serde_json::to_vec(v).unwrap_or_default()
}

/// sled's errors become the store's own: the trait names no engine.
impl From<::sled::Error> for StoreError {
    fn from(e: ::sled::Error) -> Self {
        StoreError::Unavailable(e.to_string())
    }
}

fn dec<T: DeserializeOwned>(b: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(b).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Outbox keys sort by account, then priority, then arrival: a scan of one
/// account's prefix yields alerts before follow-ups before reminders, each
/// in the order they were accepted.
fn outbox_key(msg: &Outbound, id: u64) -> Vec<u8> {
    let account = msg.account.as_str();
    let mut k = Vec::with_capacity(account.len() + 10);
    k.extend_from_slice(account.as_bytes());
    k.push(0);
    k.push(msg.kind.priority());
    k.extend_from_slice(&id.to_be_bytes());
    k
}

fn held_key(h: &HeldAlert) -> Vec<u8> {
    held_key_of(h.until_ms, &h.origin)
}

fn held_key_of(until_ms: u64, origin: &str) -> Vec<u8> {
    let mut k = until_ms.to_be_bytes().to_vec();
    k.extend_from_slice(origin.as_bytes());
    k
}

fn alert_key(at_ms: u64, origin: &str) -> Vec<u8> {
    let mut k = at_ms.to_be_bytes().to_vec();
    k.extend_from_slice(origin.as_bytes());
    k
}

fn copy_key(origin: &str, group: &GroupId) -> Vec<u8> {
    let mut k = prefix(origin);
    k.extend_from_slice(group.as_str().as_bytes());
    k
}

fn be_u64(v: &[u8]) -> Option<u64> {
    v.try_into().ok().map(u64::from_be_bytes)
}

/// The layout of the `index` tree, stored under [`VERSION_KEY`]. A
/// database without it (written before the index existed, or left by a
/// crash during the build) has its index built afresh at open.
const INDEX_VERSION: u64 = 1;
const VERSION_KEY: &[u8] = b"v";
/// `n/` + account: how many entries the account has in the outbox.
const DEPTH: &[u8] = b"n/";
/// How many dead letters there are.
const DEAD_COUNT: &[u8] = b"N";
/// `o/` + origin: the outbox keys of every entry queued for that origin
/// (see [`keys_decode`]), one record per origin, appended to when entries
/// are queued and left as it is when they leave: a listed entry is found in
/// the outbox, or by its id in the dead letters, or is gone. One write per
/// accepted message, not one per copy; removed with the origin's alert or,
/// for other origins, once none of its entries is left.
const BY_ORIGIN: &[u8] = b"o/";
/// `h/` + origin: the held alert of that origin (value: its `until_ms`).
/// Origins begin with their chat (`space|chat|id`), so a prefix is a chat's
/// held alerts.
const HELD_BY_ORIGIN: &[u8] = b"h/";

fn cat(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(a.len() + b.len());
    k.extend_from_slice(a);
    k.extend_from_slice(b);
    k
}

fn depth_key(account: &str) -> Vec<u8> {
    cat(DEPTH, account.as_bytes())
}

fn origin_index_key(origin: &str) -> Vec<u8> {
    cat(BY_ORIGIN, origin.as_bytes())
}

/// Appends an outbox key to a list of them: a 2-byte length, then the key.
fn keys_push(list: &mut Vec<u8>, key: &[u8]) {
    let len = u16::try_from(key.len()).unwrap_or(u16::MAX);
    list.extend_from_slice(&len.to_be_bytes());
    list.extend_from_slice(&key[..usize::from(len)]);
}

/// The outbox keys of a list (a cut-off tail is left out).
fn keys_decode(mut list: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while list.len() >= 2 {
        let len = usize::from(u16::from_be_bytes([list[0], list[1]]));
        let Some(key) = list.get(2..2 + len) else {
            break;
        };
        out.push(key);
        list = &list[2 + len..];
    }
    out
}

/// The entry id at the end of an outbox key.
fn id_of(okey: &[u8]) -> Option<u64> {
    okey.len().checked_sub(8).and_then(|i| be_u64(&okey[i..]))
}

fn held_index_key(origin: &str) -> Vec<u8> {
    cat(HELD_BY_ORIGIN, origin.as_bytes())
}

type TxTree = ::sled::transaction::TransactionalTree;
type TxResult<T, A> = Result<T, ConflictableTransactionError<A>>;

/// Adds `delta` to a counter of the index (a counter at 0 is removed).
fn tx_count<A>(index: &TxTree, key: &[u8], delta: i64) -> TxResult<(), A> {
    let now = index.get(key)?.and_then(|v| be_u64(&v)).unwrap_or(0);
    let new = now.saturating_add_signed(delta);
    if new == 0 {
        index.remove(key)?;
    } else {
        index.insert(key, &new.to_be_bytes())?;
    }
    Ok(())
}

/// Queues an entry, with its index records.
fn tx_queue<A>(outbox: &TxTree, index: &TxTree, entry: &OutboxEntry) -> TxResult<(), A> {
    let okey = outbox_key(&entry.msg, entry.id);
    outbox.insert(okey.as_slice(), enc(entry))?;
    // Several entries of one origin in one transaction: the transaction
    // keeps the last value, so the list is written once.
    let ikey = origin_index_key(&entry.origin);
    let mut list = index.get(&ikey)?.map(|v| v.to_vec()).unwrap_or_default();
    keys_push(&mut list, &okey);
    index.insert(ikey, list)?;
    tx_count(index, &depth_key(entry.msg.account.as_str()), 1)
}

/// Takes an entry out of the outbox, with its index records; false if it
/// was not there.
fn tx_unqueue<A>(outbox: &TxTree, index: &TxTree, entry: &OutboxEntry) -> TxResult<bool, A> {
    if outbox.remove(outbox_key(&entry.msg, entry.id))?.is_none() {
        return Ok(false);
    }
    tx_count(index, &depth_key(entry.msg.account.as_str()), -1)?;
    Ok(true)
}

/// Keeps an entry as a dead letter, with its index records.
fn tx_bury<A>(dead: &TxTree, index: &TxTree, entry: &OutboxEntry) -> TxResult<(), A> {
    let dkey = entry.id.to_be_bytes();
    // Found by its origin's list: a dead letter keeps its entry's id.
    if dead.insert(&dkey, enc(entry))?.is_none() {
        tx_count(index, DEAD_COUNT, 1)?;
    }
    Ok(())
}

/// Removes a dead letter, with its index records; the entry, if there was one.
fn tx_unbury<A>(dead: &TxTree, index: &TxTree, id: u64) -> TxResult<Option<OutboxEntry>, A> {
    let Some(v) = dead.remove(&id.to_be_bytes())? else {
        return Ok(None);
    };
    tx_count(index, DEAD_COUNT, -1)?;
    Ok(dec::<OutboxEntry>(&v).ok())
}

/// Holds an alert, with its index record.
fn tx_hold<A>(held: &TxTree, index: &TxTree, h: &HeldAlert) -> TxResult<(), A> {
    held.insert(held_key(h), enc(h))?;
    index.insert(held_index_key(&h.origin), &h.until_ms.to_be_bytes())?;
    Ok(())
}

/// Ends a hold, with its index record; the record, if it was there.
fn tx_unhold<A>(
    held: &TxTree,
    index: &TxTree,
    until_ms: u64,
    origin: &str,
) -> TxResult<Option<::sled::IVec>, A> {
    let old = held.remove(held_key_of(until_ms, origin))?;
    if old.is_some() {
        index.remove(held_index_key(origin))?;
    }
    Ok(old)
}

/// Applies one change to an alert record.
fn apply(a: &mut AlertRecord, change: &AlertChange) {
    match change {
        AlertChange::Retracted => a.retracted = true,
        AlertChange::AllClear => a.all_clear = true,
        AlertChange::Sighting(g) => {
            if !a.sightings.contains(g) {
                a.sightings.push(g.clone());
            }
        }
        AlertChange::Text { text, confirmed } => {
            a.text = text.clone();
            a.confirmed = *confirmed;
        }
        AlertChange::Forced(targets) => {
            a.forced = true;
            for t in targets {
                if !a.targets.contains(t) {
                    a.targets.push(t.clone());
                }
            }
        }
    }
}

/// A held alert's copies replaced by `copies`, keeping its follow-ups.
fn with_copies(h: &HeldAlert, copies: &[Outbound]) -> Vec<Outbound> {
    let mut v = copies.to_vec();
    v.extend(
        h.outbox
            .iter()
            .filter(|m| m.kind != OutboundKind::Forward)
            .cloned(),
    );
    v
}

/// A sandbox message's key: its chat and its numeric id.
fn sandbox_key(chat: &str, id: &str) -> Option<Vec<u8>> {
    let id: u64 = id.parse().ok()?;
    let mut key = prefix(chat);
    key.extend_from_slice(&id.to_be_bytes());
    Some(key)
}

/// The error of a transaction that never aborts on purpose.
fn tx_error(e: TransactionError<()>) -> StoreError {
    match e {
        TransactionError::Storage(e) => e.into(),
        TransactionError::Abort(()) => StoreError::Corrupt("aborted".into()),
    }
}

fn prefix(s: &str) -> Vec<u8> {
    let mut k = s.as_bytes().to_vec();
    k.push(0);
    k
}

impl Engine {
    /// Brings the cached copy of the alert records under `keys` up to date
    /// with the store (after a write). On any error the cache is dropped:
    /// the next read loads it again, or reports the error.
    fn refresh_recent(&self, keys: &[Vec<u8>]) {
        let mut guard = self.recent_cache();
        let Some(cache) = guard.as_mut() else {
            return;
        };
        for key in keys {
            let record = match self.alerts.get(key) {
                Ok(Some(v)) => match dec::<AlertRecord>(&v) {
                    Ok(a) => Some(a),
                    Err(_) => {
                        *guard = None;
                        return;
                    }
                },
                Ok(None) => None,
                Err(_) => {
                    *guard = None;
                    return;
                }
            };
            cache.set(key.clone(), record);
        }
    }

    /// The alert cache, locked. A lock poisoned by a panic elsewhere is
    /// taken over with the cache emptied (it is loaded again from the store).
    fn recent_cache(&self) -> std::sync::MutexGuard<'_, Option<RecentAlerts>> {
        self.recent.lock().unwrap_or_else(|poisoned| {
            let mut g = poisoned.into_inner();
            *g = None;
            g
        })
    }

    /// Opens (or creates) the database in `dir`.
    pub(super) fn open(dir: &Path) -> Result<Self, StoreError> {
        let db = ::sled::Config::new()
            .path(dir.join("buurtrelay.sled"))
            .mode(::sled::Mode::HighThroughput)
            // sled's default page cache is 1 GiB; the working set here (recent
            // dedup marks, the outbox, recent alerts) is the tails of a few
            // trees. 4 MiB cut the peak RSS under load from 133 to 92 MB;
            // 1 MiB took 2-3 MB more off (72 against 75 MB, mimalloc), with
            // no change seen in the load generator's rates.
            .cache_capacity(1024 * 1024)
            .flush_every_ms(Some(500))
            .open()?;
        Self::from_db(db)
    }

    /// A throw-away database, for unit tests.
    pub(super) fn temporary() -> Result<Self, StoreError> {
        Self::from_db(::sled::Config::new().temporary(true).open()?)
    }

    fn from_db(db: ::sled::Db) -> Result<Self, StoreError> {
        let engine = Self {
            commit: GroupCommit::new(&db)?,
            seen: db.open_tree("seen")?,
            outbox: db.open_tree("outbox")?,
            dead: db.open_tree("dead")?,
            cooldown: db.open_tree("cooldown")?,
            alerts: db.open_tree("alerts")?,
            copies: db.open_tree("copies")?,
            sandbox: db.open_tree("sandbox")?,
            held: db.open_tree("held")?,
            links: db.open_tree("links")?,
            alert_index: db.open_tree("alert_index")?,
            moves: db.open_tree("moves")?,
            index: db.open_tree("index")?,
            recent: Mutex::new(None),
            db,
        };
        engine.build_index()?;
        Ok(engine)
    }
}

/// Group commit: one thread of its own flushes the database, back to back
/// while writes wait, and each flush covers every write made before it
/// started, so many concurrent webhooks share one flush.
///
/// A thread rather than a task on tokio's blocking pool: under alert load
/// the tokio workers are busy with store transactions, and a flush led from
/// a task waited for its turn on them twice (to hand the flush over, and to
/// be told it was done): a flush of the database took 0.3-1 ms, the round
/// trip 7-9 ms, and the ingest rate followed the round trip. Here the thread
/// marks the writes durable itself, and the waiters' wake-ups are the only
/// hop left.
///
/// Also a guard: sled 0.34 deadlocks when many `flush_async` calls fill its
/// I/O thread pool while transactions wait for their lock (seen under load
/// with 64 concurrent webhooks); one flusher at a time never fills it.
struct GroupCommit {
    shared: Arc<Commits>,
    thread: Option<std::thread::JoinHandle<()>>,
}

struct Commits {
    /// Tickets handed out; a caller takes one after its write.
    issued: AtomicU64,
    /// What the flusher has done so far.
    done: watch::Sender<Flushed>,
    /// The flusher's orders: the highest ticket a caller waits for, and
    /// whether to stop.
    asked: Mutex<Asked>,
    wake: std::sync::Condvar,
    /// Where each flush's duration is counted, once the service has said.
    metrics: OnceLock<Arc<crate::telemetry::Metrics>>,
}

#[derive(Clone, Default)]
struct Flushed {
    /// Every ticket up to this value is durable.
    durable: u64,
    /// A flush covering every ticket up to this value failed, with this error.
    failed: Option<(u64, String)>,
}

#[derive(Default)]
struct Asked {
    ticket: u64,
    stop: bool,
}

impl GroupCommit {
    fn new(db: &::sled::Db) -> Result<Self, StoreError> {
        let shared = Arc::new(Commits {
            issued: AtomicU64::new(0),
            done: watch::channel(Flushed::default()).0,
            asked: Mutex::new(Asked::default()),
            wake: std::sync::Condvar::new(),
            metrics: OnceLock::new(),
        });
        let (db, s) = (db.clone(), shared.clone());
        let thread = std::thread::Builder::new()
            .name("store-flusher".into())
            .spawn(move || s.run(&db))
            .map_err(|e| StoreError::Unavailable(format!("flusher thread: {e}")))?;
        Ok(Self {
            shared,
            thread: Some(thread),
        })
    }

    /// Returns once every write made before the call is durable.
    async fn flush(&self) -> Result<(), StoreError> {
        let c = &self.shared;
        let ticket = c.issued.fetch_add(1, Ordering::SeqCst) + 1;
        let mut rx = c.done.subscribe();
        if let Ok(mut a) = c.asked.lock() {
            a.ticket = a.ticket.max(ticket);
        }
        c.wake.notify_one();
        loop {
            {
                let f = rx.borrow_and_update();
                if f.durable >= ticket {
                    return Ok(());
                }
                if let Some((upto, e)) = &f.failed {
                    if *upto >= ticket {
                        return Err(StoreError::Unavailable(format!("flush failed: {e}")));
                    }
                }
            }
            if rx.changed().await.is_err() {
                return Err(StoreError::Unavailable("flusher gone".into()));
            }
        }
    }

    fn stop(&mut self) {
        if let Ok(mut a) = self.shared.asked.lock() {
            a.stop = true;
        }
        self.shared.wake.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Commits {
    /// The flusher thread: waits for a caller, flushes, tells the waiters.
    fn run(&self, db: &::sled::Db) {
        /// However the thread ends (stopped, a poisoned lock, a panic in
        /// sled), a caller waiting now or later gets an error, never a hang.
        struct Gone<'a>(&'a Commits);
        impl Drop for Gone<'_> {
            fn drop(&mut self) {
                self.0.done.send_modify(|f| {
                    f.failed = Some((u64::MAX, "the store's flusher has stopped".into()))
                });
            }
        }
        let _gone = Gone(self);
        let mut flushed = 0;
        let mut slow = SlowFlushes::default();
        loop {
            {
                let Ok(mut a) = self.asked.lock() else {
                    return;
                };
                while a.ticket <= flushed && !a.stop {
                    a = match self.wake.wait(a) {
                        Ok(a) => a,
                        Err(_) => return,
                    };
                }
                if a.stop && a.ticket <= flushed {
                    return;
                }
            }
            // Every ticket issued so far belongs to a finished write.
            let target = self.issued.load(Ordering::SeqCst);
            let started = Instant::now();
            let res = db.flush();
            let took = started.elapsed();
            if let Some(m) = self.metrics.get() {
                m.observe("buurtrelay_store_flush_seconds", &[], took.as_secs_f64());
            }
            slow.note(took, Instant::now());
            // sled frees a retired 512 KiB log buffer through the epoch
            // collector, from the bag of deferred drops of the thread that
            // retired it, and a bag is only handed on when it holds 64. A
            // flush retires one, and this thread does little else: its bag
            // kept up to 54 MB of buffers alive under alert load (peak RSS
            // 105 MB; 75-83 MB with this hand-over).
            crossbeam_epoch::pin().flush();
            flushed = target;
            match res {
                Ok(_) => self.done.send_modify(|f| f.durable = f.durable.max(target)),
                Err(e) => {
                    tracing::error!(error = %e, "the store could not flush its writes to disk");
                    let e = e.to_string();
                    self.done.send_modify(|f| f.failed = Some((target, e)));
                }
            }
        }
    }
}

/// Flushes that kept the webhooks waiting long enough for an operator to
/// hear of it: a warning at most once a minute, with how many there were.
/// Under load a flush takes about a millisecond; a disk that stalls a write
/// for hundreds of milliseconds delays every answer waiting on it.
#[derive(Default)]
struct SlowFlushes {
    count: u64,
    worst: Duration,
    last_warned: Option<Instant>,
}

impl SlowFlushes {
    const SLOW: Duration = Duration::from_secs(1);
    const EVERY: Duration = Duration::from_secs(60);

    /// Counts one flush; true if it was slow and a warning was logged.
    fn note(&mut self, took: Duration, now: Instant) -> bool {
        if took < Self::SLOW {
            return false;
        }
        self.count += 1;
        self.worst = self.worst.max(took);
        if self
            .last_warned
            .is_some_and(|t| now.duration_since(t) < Self::EVERY)
        {
            return false;
        }
        tracing::warn!(
            slow_flushes = self.count,
            worst_ms = self.worst.as_millis() as u64,
            "the disk was slow to write the store's log: {} flush(es) took a second or more (the longest {} ms), and webhook answers waited for them; see buurtrelay_store_flush_seconds",
            self.count,
            self.worst.as_millis()
        );
        self.count = 0;
        self.worst = Duration::ZERO;
        self.last_warned = Some(now);
        true
    }
}

impl Drop for GroupCommit {
    /// Stops the flusher after the flush it is in (it holds the database
    /// open: the store's directory is only free again once it is gone).
    fn drop(&mut self) {
        self.stop();
    }
}

#[derive(Debug)]
enum Abort {
    Duplicate,
    Corrupt(String),
}

impl Engine {
    pub(super) fn commit_ingest(&self, w: &IngestWrite) -> Result<IngestResult, StoreError> {
        // Most messages lead to nothing but their dedup mark: one atomic
        // insert-if-absent, without the transaction's global lock. Either path
        // refuses a key the other wrote before; only two deliveries of one
        // message at the same instant, decided differently, could both pass.
        if w.is_mark_only() {
            let fresh = self
                .seen
                .compare_and_swap(
                    w.dedup_key.as_bytes(),
                    None::<&[u8]>,
                    Some(&w.at_ms.to_be_bytes()[..]),
                )?
                .is_ok();
            return Ok(if fresh {
                IngestResult::Accepted {
                    queued: 0,
                    reminded: false,
                }
            } else {
                IngestResult::Duplicate
            });
        }
        // The key of the alert record an update rewrote (for the cache).
        let updated: std::cell::RefCell<Option<Vec<u8>>> = Default::default();
        let res = (
            &self.seen,
            &self.outbox,
            &self.cooldown,
            &self.alerts,
            &self.held,
            &self.links,
            &self.alert_index,
            &self.index,
        )
            .transaction(
                |(seen, outbox, cooldown, alerts, held, links, alert_index, index)| {
                    updated.replace(None);
                    if seen.get(w.dedup_key.as_bytes())?.is_some() {
                        return Err(ConflictableTransactionError::Abort(Abort::Duplicate));
                    }
                    seen.insert(w.dedup_key.as_bytes(), &w.at_ms.to_be_bytes())?;
                    let mut queued = 0;
                    let mut reminded = false;
                    let mut push =
                        |msg: &Outbound| -> Result<(), ConflictableTransactionError<Abort>> {
                            let id = outbox.generate_id()?;
                            // A copy belongs to its thread (for a forced forward, the
                            // message forwarded, not the command); everything else
                            // to the message that caused it.
                            let origin = match (&msg.thread, msg.kind) {
                                (Some(t), OutboundKind::Forward) => t.clone(),
                                _ => w.dedup_key.clone(),
                            };
                            let entry = OutboxEntry {
                                id,
                                origin,
                                msg: msg.clone(),
                                created_ms: w.at_ms,
                                attempts: 0,
                                next_at_ms: 0,
                                last_error: None,
                            };
                            tx_queue(outbox, index, &entry)?;
                            queued += 1;
                            Ok(())
                        };
                    for msg in &w.outbox {
                        push(msg)?;
                    }
                    if let Some(r) = &w.reminder {
                        let active = cooldown
                            .get(r.cooldown_key.as_bytes())?
                            .and_then(|v| be_u64(&v))
                            .is_some_and(|until| until > r.now_ms);
                        if !active {
                            cooldown
                                .insert(r.cooldown_key.as_bytes(), &r.until_ms.to_be_bytes())?;
                            push(&r.msg)?;
                            reminded = true;
                        }
                    }
                    if let Some(a) = &w.alert {
                        alerts.insert(alert_key(a.at_ms, &a.origin), enc(a))?;
                        alert_index.insert(a.origin.as_bytes(), &a.at_ms.to_be_bytes())?;
                    }
                    if let Some(h) = &w.held {
                        tx_hold(held, index, h)?;
                    }
                    for (key, root) in &w.links {
                        links.insert(key.as_bytes(), root.as_bytes())?;
                    }
                    if let Some(u) = &w.alert_update {
                        if let Some(at) = alert_index
                            .get(u.origin.as_bytes())?
                            .and_then(|v| be_u64(&v))
                        {
                            let key = alert_key(at, &u.origin);
                            if let Some(bytes) = alerts.get(&key)? {
                                let mut a: AlertRecord = dec(&bytes).map_err(|e| {
                                    ConflictableTransactionError::Abort(Abort::Corrupt(
                                        e.to_string(),
                                    ))
                                })?;
                                for c in &u.changes {
                                    apply(&mut a, c);
                                }
                                alerts.insert(key.as_slice(), enc(&a))?;
                                updated.replace(Some(key));
                            }
                        }
                    }
                    if let Some(u) = &w.hold_update {
                        let key = held_key_of(u.until_ms, &u.origin);
                        let current: Option<HeldAlert> = match held.get(&key)? {
                            Some(b) => Some(dec(&b).map_err(|e| {
                                ConflictableTransactionError::Abort(Abort::Corrupt(e.to_string()))
                            })?),
                            None => None,
                        };
                        match (&u.change, current) {
                            (HoldChange::Release(copies), Some(h)) => {
                                tx_unhold(held, index, u.until_ms, &u.origin)?;
                                let msgs = match copies {
                                    Some(c) => with_copies(&h, c),
                                    None => h.outbox.clone(),
                                };
                                for m in &msgs {
                                    push(m)?;
                                }
                            }
                            (HoldChange::Drop, Some(_)) => {
                                tx_unhold(held, index, u.until_ms, &u.origin)?;
                            }
                            (HoldChange::Replace(copies), Some(mut h)) => {
                                h.outbox = with_copies(&h, copies);
                                held.insert(key, enc(&h))?;
                            }
                            (HoldChange::Append(more), Some(mut h)) => {
                                h.outbox.extend(more.iter().cloned());
                                held.insert(key, enc(&h))?;
                            }
                            (HoldChange::Append(more), None) => {
                                for m in more {
                                    push(m)?;
                                }
                            }
                            (
                                HoldChange::Release(_) | HoldChange::Drop | HoldChange::Replace(_),
                                None,
                            ) => {}
                        }
                    }
                    Ok(IngestResult::Accepted { queued, reminded })
                },
            );
        if res.is_ok() {
            let mut touched = Vec::new();
            if let Some(a) = &w.alert {
                touched.push(alert_key(a.at_ms, &a.origin));
            }
            touched.extend(updated.take());
            if !touched.is_empty() {
                self.refresh_recent(&touched);
            }
        }
        match res {
            Ok(r) => Ok(r),
            Err(TransactionError::Abort(Abort::Duplicate)) => Ok(IngestResult::Duplicate),
            Err(TransactionError::Abort(Abort::Corrupt(e))) => Err(StoreError::Corrupt(e)),
            Err(TransactionError::Storage(e)) => Err(e.into()),
        }
    }

    pub(super) async fn flush(&self) -> Result<(), StoreError> {
        self.commit.flush().await
    }

    pub(super) fn count_flushes_in(&self, metrics: Arc<crate::telemetry::Metrics>) {
        let _ = self.commit.shared.metrics.set(metrics);
    }

    pub(super) fn is_seen(&self, dedup_key: &str) -> Result<bool, StoreError> {
        Ok(self.seen.contains_key(dedup_key.as_bytes())?)
    }

    pub(super) fn pending(
        &self,
        account: &AccountId,
        limit: usize,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        self.outbox
            .scan_prefix(prefix(account.as_str()))
            .take(limit)
            .map(|kv| {
                let (_, v) = kv?;
                dec(&v)
            })
            .collect()
    }

    pub(super) fn pending_after(
        &self,
        account: &AccountId,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        let mut out = Vec::new();
        let first = match after {
            None => 0,
            Some(u64::MAX) => return Ok(out),
            Some(a) => a + 1,
        };
        for prio in 0u8..=2 {
            let mut lo = prefix(account.as_str());
            lo.push(prio);
            let mut hi = lo.clone();
            lo.extend_from_slice(&first.to_be_bytes());
            hi.extend_from_slice(&u64::MAX.to_be_bytes());
            for kv in self.outbox.range(lo..=hi) {
                if out.len() >= limit {
                    return Ok(out);
                }
                let (_, v) = kv?;
                out.push(dec(&v)?);
            }
        }
        Ok(out)
    }

    /// One delivered entry: see [`Engine::complete_many`].
    #[cfg(test)]
    pub(super) fn complete(
        &self,
        entry: &OutboxEntry,
        sent: &Sent,
        at_ms: u64,
    ) -> Result<(), StoreError> {
        self.complete_many(&[(entry, sent)], at_ms)
    }

    pub(super) fn complete_many(
        &self,
        done: &[(&OutboxEntry, &Sent)],
        at_ms: u64,
    ) -> Result<(), StoreError> {
        struct Booking {
            copy: Option<(Vec<u8>, Vec<u8>)>,
            link: Option<(String, String)>,
        }
        let mut bookings = Vec::with_capacity(done.len());
        for (entry, sent) in done {
            let msg = &entry.msg;
            // Sent where the chat is now (it may have moved since it was queued).
            let chat = self.chat_now(&msg.chat)?;
            // What the copy is recorded as: a thread's copy in this group, or
            // (entries without a thread, and reminders) its origin's, as before.
            let copy_at = if sent.is_nothing() {
                None
            } else {
                match (msg.kind, &msg.thread) {
                    (OutboundKind::Forward, Some(t)) => Some(copy_key(t, &msg.group)),
                    (OutboundKind::FollowUp, _) => None,
                    _ => Some(copy_key(&entry.origin, &msg.group)),
                }
            };
            let copy = copy_at.map(|k| {
                let rec = CopyRecord {
                    group: msg.group.clone(),
                    account: msg.account.clone(),
                    chat: chat.to_string(),
                    message_id: sent.message_id.clone(),
                    sent_ms: at_ms,
                };
                (k, enc(&rec))
            });
            let link = match &msg.thread {
                Some(t) if !sent.is_nothing() => {
                    Some((crate::message::link_key(&chat, &sent.message_id), t.clone()))
                }
                _ => None,
            };
            bookings.push(Booking { copy, link });
        }
        // In this order: every copy and link first (plain writes), then the
        // entries leave the outbox. sled recovers a prefix of its log, so
        // after a crash an entry that is gone has its copy recorded; one
        // still queued is sent again (at-least-once, as when the crash comes
        // before this write). The copies are not in the transaction: a sled
        // transaction takes the database's global write lock, and the fewer
        // trees and writes in it the shorter it holds it.
        for b in &bookings {
            if let Some((k, rec)) = &b.copy {
                self.copies.insert(k.as_slice(), rec.as_slice())?;
            }
            if let Some((k, root)) = &b.link {
                self.links.insert(k.as_bytes(), root.as_bytes())?;
            }
        }
        // Then the entries leave the outbox, with their index records and
        // counts, in one step (a transaction over the outbox and the index).
        (&self.outbox, &self.index)
            .transaction(|(outbox, index)| {
                for (entry, _) in done {
                    tx_unqueue(outbox, index, entry)?;
                }
                Ok::<_, ConflictableTransactionError<()>>(())
            })
            .map_err(tx_error)
    }

    pub(super) fn reschedule(&self, entry: &OutboxEntry) -> Result<(), StoreError> {
        let key = outbox_key(&entry.msg, entry.id);
        // Only update an entry that is still there (never resurrect one).
        if self.outbox.contains_key(&key)? {
            self.outbox.insert(key, enc(entry))?;
        }
        Ok(())
    }

    pub(super) fn dead_letter(&self, entry: &OutboxEntry) -> Result<(), StoreError> {
        (&self.outbox, &self.dead, &self.index)
            .transaction(|(outbox, dead, index)| {
                tx_unqueue(outbox, index, entry)?;
                tx_bury(dead, index, entry)?;
                Ok::<_, ConflictableTransactionError<()>>(())
            })
            .map_err(tx_error)
    }

    pub(super) fn dead_letters(&self, limit: usize) -> Result<Vec<OutboxEntry>, StoreError> {
        self.dead
            .iter()
            .rev()
            .take(limit)
            .map(|kv| {
                let (_, v) = kv?;
                dec(&v)
            })
            .collect()
    }

    pub(super) fn resend_dead(&self, id: u64, now_ms: u64) -> Result<bool, StoreError> {
        let Some(v) = self.dead.get(id.to_be_bytes())? else {
            return Ok(false);
        };
        // Readable, or left where it is.
        dec::<OutboxEntry>(&v)?;
        (&self.outbox, &self.dead, &self.index)
            .transaction(|(outbox, dead, index)| {
                let Some(mut entry) = tx_unbury(dead, index, id)? else {
                    return Ok(());
                };
                entry.attempts = 0;
                entry.next_at_ms = now_ms;
                entry.created_ms = now_ms;
                entry.last_error = None;
                // A fresh id: the entry queues behind what is waiting now, and
                // the dispatchers, which look for ids above the last they saw,
                // find it at once.
                entry.id = outbox.generate_id()?;
                tx_queue(outbox, index, &entry)
            })
            .map_err(tx_error)?;
        Ok(true)
    }

    /// Each account's depth from its counter, and its oldest entry from the
    /// head of each of its three priorities: a few lookups per account,
    /// whatever the backlog. Entries get their ids in the order they are
    /// accepted, so the oldest head is the oldest entry, to within the few
    /// milliseconds two webhooks taken at once may overlap.
    pub(super) fn queue_stats(&self) -> Result<Vec<QueueStats>, StoreError> {
        /// The one field read of an entry, without building the entry.
        #[derive(serde::Deserialize)]
        struct Created {
            created_ms: u64,
        }
        let mut out = Vec::new();
        for kv in self.index.scan_prefix(DEPTH) {
            let (k, v) = kv?;
            let name = String::from_utf8_lossy(&k[DEPTH.len()..]).into_owned();
            let account = AccountId::parse(&name)
                .map_err(|e| StoreError::Corrupt(format!("queue counter {name:?}: {e}")))?;
            let mut oldest: Option<u64> = None;
            for prio in 0u8..=2 {
                let mut p = prefix(account.as_str());
                p.push(prio);
                if let Some(kv) = self.outbox.scan_prefix(p).next() {
                    let (_, e) = kv?;
                    let c = dec::<Created>(&e)?.created_ms;
                    oldest = Some(oldest.map_or(c, |o| o.min(c)));
                }
            }
            out.push(QueueStats {
                account,
                depth: be_u64(&v).unwrap_or(0) as usize,
                oldest_ms: oldest,
            });
        }
        Ok(out)
    }

    /// How many dead letters there are (a counter).
    pub(super) fn dead_letter_count(&self) -> Result<u64, StoreError> {
        Ok(self
            .index
            .get(DEAD_COUNT)?
            .and_then(|v| be_u64(&v))
            .unwrap_or(0))
    }

    /// The held alert of one thread, by the index.
    pub(super) fn held_of(&self, origin: &str) -> Result<Option<HeldAlert>, StoreError> {
        let Some(until) = self
            .index
            .get(held_index_key(origin))?
            .and_then(|v| be_u64(&v))
        else {
            return Ok(None);
        };
        match self.held.get(held_key_of(until, origin))? {
            Some(v) => Ok(Some(dec(&v)?)),
            None => Ok(None),
        }
    }

    /// The alerts held now whose origin begins with `origin_prefix` (one
    /// chat's: `space|chat|`), by the index.
    pub(super) fn held_in(
        &self,
        origin_prefix: &str,
        limit: usize,
    ) -> Result<Vec<HeldAlert>, StoreError> {
        let mut out = Vec::new();
        for kv in self
            .index
            .scan_prefix(held_index_key(origin_prefix))
            .take(limit)
        {
            let (k, _) = kv?;
            let origin = String::from_utf8_lossy(&k[HELD_BY_ORIGIN.len()..]).into_owned();
            out.extend(self.held_of(&origin)?);
        }
        Ok(out)
    }

    /// Builds the index from the records, when the database has none of
    /// this layout (an older database, or a build cut short by a crash: the
    /// version is written last). Once, at open, before any request.
    fn build_index(&self) -> Result<(), StoreError> {
        if self.index.get(VERSION_KEY)?.and_then(|v| be_u64(&v)) == Some(INDEX_VERSION) {
            return Ok(());
        }
        self.index.clear()?;
        let mut depth: std::collections::HashMap<String, u64> = Default::default();
        let mut lists: std::collections::BTreeMap<String, Vec<Vec<u8>>> = Default::default();
        for kv in self.outbox.iter() {
            let (k, v) = kv?;
            let e: OutboxEntry = dec(&v)?;
            lists.entry(e.origin.clone()).or_default().push(k.to_vec());
            *depth.entry(e.msg.account.to_string()).or_default() += 1;
        }
        for (account, n) in depth {
            self.index.insert(depth_key(&account), &n.to_be_bytes())?;
        }
        let mut dead = 0u64;
        for kv in self.dead.iter() {
            let (_, v) = kv?;
            let e: OutboxEntry = dec(&v)?;
            lists
                .entry(e.origin.clone())
                .or_default()
                .push(outbox_key(&e.msg, e.id));
            dead += 1;
        }
        for (origin, keys) in lists {
            let mut list = Vec::new();
            for k in &keys {
                keys_push(&mut list, k);
            }
            self.index.insert(origin_index_key(&origin), list)?;
        }
        if dead > 0 {
            self.index.insert(DEAD_COUNT, &dead.to_be_bytes())?;
        }
        for kv in self.held.iter() {
            let (_, v) = kv?;
            let h: HeldAlert = dec(&v)?;
            self.index
                .insert(held_index_key(&h.origin), &h.until_ms.to_be_bytes())?;
        }
        self.index
            .insert(VERSION_KEY, &INDEX_VERSION.to_be_bytes())?;
        self.db.flush()?;
        Ok(())
    }

    pub(super) fn ready(&self) -> Result<(), StoreError> {
        if let Some((u64::MAX, e)) = &self.commit.shared.done.borrow().failed {
            return Err(StoreError::Unavailable(e.clone()));
        }
        self.seen.get(b"")?;
        Ok(())
    }

    pub(super) fn copies_of(&self, origin: &str) -> Result<Vec<CopyRecord>, StoreError> {
        self.copies
            .scan_prefix(prefix(origin))
            .map(|kv| {
                let (_, v) = kv?;
                dec(&v)
            })
            .collect()
    }

    pub(super) fn delivery_states(&self, origin: &str) -> Result<Vec<TargetDelivery>, StoreError> {
        let mut out: Vec<TargetDelivery> = Vec::new();
        let mut add = |t: TargetDelivery| {
            if !out.iter().any(|o| o.group == t.group) {
                out.push(t);
            }
        };
        for c in self.copies_of(origin)? {
            add(TargetDelivery {
                group: c.group,
                state: DeliveryState::Delivered,
                attempts: 0,
                last_error: None,
                at_ms: c.sent_ms,
                entry_id: None,
            });
        }
        // The origin's outbox entries and dead letters, by the index: as
        // many lookups as the origin has copies, however long the backlog.
        let mut queued = Vec::new();
        let mut buried = Vec::new();
        if let Some(list) = self.index.get(origin_index_key(origin))? {
            for okey in keys_decode(&list) {
                if let Some(v) = self.outbox.get(okey)? {
                    queued.push(dec::<OutboxEntry>(&v)?);
                } else if let Some(v) = id_of(okey)
                    .map(|id| self.dead.get(id.to_be_bytes()))
                    .transpose()?
                    .flatten()
                {
                    buried.push(dec::<OutboxEntry>(&v)?);
                }
            }
        }
        for e in queued {
            add(TargetDelivery {
                group: e.msg.group.clone(),
                state: if e.attempts == 0 {
                    DeliveryState::Pending
                } else {
                    DeliveryState::Retrying
                },
                attempts: e.attempts,
                last_error: e.last_error.clone(),
                at_ms: e.created_ms,
                entry_id: Some(e.id),
            });
        }
        for e in buried {
            add(TargetDelivery {
                group: e.msg.group.clone(),
                state: DeliveryState::Dead,
                attempts: e.attempts,
                last_error: e.last_error.clone(),
                at_ms: e.created_ms,
                entry_id: Some(e.id),
            });
        }
        if let Some(h) = self.held_of(origin)? {
            for m in &h.outbox {
                add(TargetDelivery {
                    group: m.group.clone(),
                    state: DeliveryState::Held,
                    attempts: 0,
                    last_error: None,
                    at_ms: h.until_ms,
                    entry_id: None,
                });
            }
        }
        Ok(out)
    }

    pub(super) fn recent_alerts(&self, limit: usize) -> Result<Vec<AlertRecord>, StoreError> {
        self.alerts
            .iter()
            .rev()
            .take(limit)
            .map(|kv| {
                let (_, v) = kv?;
                dec(&v)
            })
            .collect()
    }

    pub(super) fn sandbox_append(
        &self,
        chat: &str,
        mut msg: SandboxMessage,
    ) -> Result<SandboxMessage, StoreError> {
        let id = self.db.generate_id()?;
        msg.id = id.to_string();
        let mut key = prefix(chat);
        key.extend_from_slice(&id.to_be_bytes());
        self.sandbox.insert(key, enc(&msg))?;
        Ok(msg)
    }

    pub(super) fn sandbox_list(
        &self,
        chat: &str,
        limit: usize,
    ) -> Result<Vec<SandboxMessage>, StoreError> {
        let mut v: Vec<SandboxMessage> = self
            .sandbox
            .scan_prefix(prefix(chat))
            .rev()
            .take(limit)
            .map(|kv| {
                let (_, v) = kv?;
                dec(&v)
            })
            .collect::<Result<_, _>>()?;
        v.reverse();
        Ok(v)
    }

    pub(super) fn due_held(&self, now_ms: u64, limit: usize) -> Result<Vec<HeldAlert>, StoreError> {
        self.held
            .range(..(now_ms + 1).to_be_bytes().to_vec())
            .take(limit)
            .map(|kv| {
                let (_, v) = kv?;
                dec(&v)
            })
            .collect()
    }

    pub(super) fn release_held(
        &self,
        h: &HeldAlert,
        forward: bool,
        now_ms: u64,
    ) -> Result<usize, StoreError> {
        let res = (&self.held, &self.outbox, &self.index).transaction(|(held, outbox, index)| {
            // Released already (by another path): nothing to do, nothing doubled.
            let Some(current) = tx_unhold(held, index, h.until_ms, &h.origin)? else {
                return Ok(0);
            };
            // The record as it is now: follow-ups may have joined the hold
            // since `h` was read.
            let current: HeldAlert = dec(&current).unwrap_or_else(|_| h.clone());
            let mut n = 0;
            if forward {
                for msg in &current.outbox {
                    let id = outbox.generate_id()?;
                    let origin = match (&msg.thread, msg.kind) {
                        (Some(t), OutboundKind::Forward) => t.clone(),
                        _ => current.origin.clone(),
                    };
                    let entry = OutboxEntry {
                        id,
                        origin,
                        msg: msg.clone(),
                        created_ms: now_ms,
                        attempts: 0,
                        next_at_ms: 0,
                        last_error: None,
                    };
                    tx_queue(outbox, index, &entry)?;
                    n += 1;
                }
            }
            Ok::<_, ConflictableTransactionError<()>>(n)
        });
        res.map_err(tx_error)
    }

    pub(super) fn copy_in(
        &self,
        origin: &str,
        group: &GroupId,
    ) -> Result<Option<CopyRecord>, StoreError> {
        match self.copies.get(copy_key(origin, group))? {
            Some(v) => Ok(Some(dec(&v)?)),
            None => Ok(None),
        }
    }

    pub(super) fn thread_of(&self, link_key: &str) -> Result<Option<AlertRecord>, StoreError> {
        let Some(root) = self.links.get(link_key.as_bytes())? else {
            return Ok(None);
        };
        let root = String::from_utf8_lossy(&root).into_owned();
        self.alert(&root)
    }

    pub(super) fn alert(&self, origin: &str) -> Result<Option<AlertRecord>, StoreError> {
        let Some(at) = self
            .alert_index
            .get(origin.as_bytes())?
            .and_then(|v| be_u64(&v))
        else {
            return Ok(None);
        };
        match self.alerts.get(alert_key(at, origin))? {
            Some(v) => Ok(Some(dec(&v)?)),
            None => Ok(None),
        }
    }

    pub(super) fn alerts_since(
        &self,
        from_ms: u64,
        limit: usize,
    ) -> Result<Vec<Arc<AlertRecord>>, StoreError> {
        let from = from_ms.to_be_bytes();
        let mut guard = self.recent_cache();
        if guard.is_none() {
            let newest = self
                .alerts
                .iter()
                .rev()
                .take(recent::CAPACITY)
                .map(|kv| {
                    let (k, v) = kv?;
                    Ok((k.to_vec(), dec::<AlertRecord>(&v)?))
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            *guard = Some(RecentAlerts::from_newest(newest));
        }
        if let Some(hit) = guard.as_ref().and_then(|c| c.since(&from, limit)) {
            return Ok(hit);
        }
        drop(guard);
        self.alerts
            .range(from.to_vec()..)
            .rev()
            .take(limit)
            .map(|kv| {
                let (_, v) = kv?;
                Ok(Arc::new(dec(&v)?))
            })
            .collect()
    }

    #[cfg(test)]
    pub(super) fn held_alerts(&self, limit: usize) -> Result<Vec<HeldAlert>, StoreError> {
        self.held
            .iter()
            .take(limit)
            .map(|kv| {
                let (_, v) = kv?;
                dec(&v)
            })
            .collect()
    }

    pub(super) fn migrate_chat(
        &self,
        from: &ChatId,
        to: &ChatId,
        at_ms: u64,
    ) -> Result<usize, StoreError> {
        let mut n = 0;
        let mv = ChatMove {
            from: from.clone(),
            to: to.clone(),
            at_ms,
        };
        self.moves.insert(from.as_str().as_bytes(), enc(&mv))?;
        // Entry by entry, each swapped only if unchanged since it was read: a
        // worker that completes an entry meanwhile wins (never resurrected).
        for tree in [&self.outbox, &self.dead] {
            for kv in tree.iter() {
                let (k, v) = kv?;
                let mut e: OutboxEntry = dec(&v)?;
                if e.msg.chat != *from {
                    continue;
                }
                e.msg.chat = to.clone();
                if tree.compare_and_swap(&k, Some(&v), Some(enc(&e)))?.is_ok() {
                    n += 1;
                }
            }
        }
        for kv in self.held.iter() {
            let (k, v) = kv?;
            let mut h: HeldAlert = dec(&v)?;
            if !h.outbox.iter().any(|m| m.chat == *from) {
                continue;
            }
            for m in h.outbox.iter_mut().filter(|m| m.chat == *from) {
                m.chat = to.clone();
            }
            if self
                .held
                .compare_and_swap(&k, Some(&v), Some(enc(&h)))?
                .is_ok()
            {
                n += 1;
            }
        }
        for kv in self.copies.iter() {
            let (k, v) = kv?;
            let mut c: CopyRecord = dec(&v)?;
            if c.chat != from.as_str() {
                continue;
            }
            c.chat = to.to_string();
            self.copies.insert(k, enc(&c))?;
            n += 1;
        }
        // Links keep their old key too: a reply may still name the old chat.
        let old = format!("{from}|");
        for kv in self.links.scan_prefix(old.as_bytes()) {
            let (k, v) = kv?;
            let rest = &k[old.len()..];
            let mut nk = format!("{to}|").into_bytes();
            nk.extend_from_slice(rest);
            self.links.insert(nk, v)?;
            n += 1;
        }
        Ok(n)
    }

    pub(super) fn chat_now(&self, chat: &ChatId) -> Result<ChatId, StoreError> {
        let mut now = chat.clone();
        // A chat may move twice; never loop.
        for _ in 0..4 {
            match self.moves.get(now.as_str().as_bytes())? {
                Some(v) => now = dec::<ChatMove>(&v)?.to,
                None => break,
            }
        }
        Ok(now)
    }

    pub(super) fn chat_moves(&self) -> Result<Vec<ChatMove>, StoreError> {
        let mut v: Vec<ChatMove> = self
            .moves
            .iter()
            .map(|kv| {
                let (_, v) = kv?;
                dec(&v)
            })
            .collect::<Result<_, _>>()?;
        v.sort_by_key(|m| m.at_ms);
        Ok(v)
    }

    pub(super) fn sandbox_get(
        &self,
        chat: &str,
        id: &str,
    ) -> Result<Option<SandboxMessage>, StoreError> {
        let Some(key) = sandbox_key(chat, id) else {
            return Ok(None);
        };
        match self.sandbox.get(key)? {
            Some(v) => Ok(Some(dec(&v)?)),
            None => Ok(None),
        }
    }

    pub(super) fn sandbox_edit(
        &self,
        chat: &str,
        id: &str,
        text: &str,
        at_ms: u64,
    ) -> Result<Option<SandboxMessage>, StoreError> {
        let Some(key) = sandbox_key(chat, id) else {
            return Ok(None);
        };
        let mut out = None;
        let mut failed = None;
        self.sandbox.fetch_and_update(&key, |old| {
            let old = old?;
            match dec::<SandboxMessage>(old) {
                Ok(mut m) => {
                    m.text = text.to_string();
                    m.edited_ms = Some(at_ms);
                    let bytes = enc(&m);
                    out = Some(m);
                    Some(bytes)
                }
                Err(e) => {
                    failed = Some(e);
                    Some(old.to_vec())
                }
            }
        })?;
        match failed {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }

    pub(super) fn sandbox_delete(&self, chat: &str, id: &str) -> Result<bool, StoreError> {
        let Some(key) = sandbox_key(chat, id) else {
            return Ok(false);
        };
        Ok(self.sandbox.remove(key)?.is_some())
    }

    pub(super) fn purge_before(&self, cutoff_ms: u64) -> Result<usize, StoreError> {
        let n = self.purge_records(cutoff_ms);
        // Alert records went (perhaps some, on an error): the cache is
        // loaded afresh when next asked.
        *self.recent_cache() = None;
        n
    }
}

impl Engine {
    /// Removes the dead letters queued before `cutoff_ms`, with their index
    /// records and count, a batch per transaction. Oldest first, up to the
    /// first younger one: dead letters are keyed by their entry's id, which
    /// follows the order entries were queued.
    pub(super) fn expire_dead_letters(&self, cutoff_ms: u64) -> Result<usize, StoreError> {
        #[derive(serde::Deserialize)]
        struct Created {
            created_ms: u64,
        }
        let mut n = 0;
        loop {
            let mut ids = Vec::new();
            let mut more = false;
            for kv in self.dead.iter() {
                let (k, v) = kv?;
                // An unreadable record counts as old: it can only be removed.
                if dec::<Created>(&v).is_ok_and(|c| c.created_ms >= cutoff_ms) {
                    break;
                }
                if ids.len() == 256 {
                    more = true;
                    break;
                }
                ids.extend(be_u64(&k));
            }
            if ids.is_empty() {
                return Ok(n);
            }
            (&self.dead, &self.index)
                .transaction(|(dead, index)| {
                    for id in &ids {
                        tx_unbury(dead, index, *id)?;
                    }
                    Ok::<_, ConflictableTransactionError<()>>(())
                })
                .map_err(tx_error)?;
            n += ids.len();
            if !more {
                return Ok(n);
            }
        }
    }

    /// Removes sandbox messages written before `cutoff_ms`.
    pub(super) fn expire_sandbox(&self, cutoff_ms: u64) -> Result<usize, StoreError> {
        #[derive(serde::Deserialize)]
        struct At {
            at_ms: u64,
        }
        let mut n = 0;
        for kv in self.sandbox.iter() {
            let (k, v) = kv?;
            if dec::<At>(&v).is_ok_and(|m| m.at_ms >= cutoff_ms) {
                continue;
            }
            if self.sandbox.remove(k)?.is_some() {
                n += 1;
            }
        }
        Ok(n)
    }

    /// Removes the chat moves made before `cutoff_ms`, except those of a
    /// chat in `keep` (one the config still names by its old id: the
    /// relay needs the move until the admin changes the config).
    pub(super) fn expire_chat_moves(
        &self,
        cutoff_ms: u64,
        keep: &[ChatId],
    ) -> Result<usize, StoreError> {
        let mut n = 0;
        for kv in self.moves.iter() {
            let (k, v) = kv?;
            let old = match dec::<ChatMove>(&v) {
                Ok(m) if m.at_ms >= cutoff_ms || keep.contains(&m.from) => continue,
                Ok(_) => true,
                Err(_) => true,
            };
            if old && self.moves.remove(k)?.is_some() {
                n += 1;
            }
        }
        Ok(n)
    }

    pub(super) fn purge_records(&self, cutoff_ms: u64) -> Result<usize, StoreError> {
        let mut n = 0;
        for kv in self.seen.iter() {
            let (k, v) = kv?;
            let at = v
                .as_ref()
                .try_into()
                .ok()
                .map(u64::from_be_bytes)
                .unwrap_or(0);
            if at < cutoff_ms {
                self.seen.remove(k)?;
                n += 1;
            }
        }
        for kv in self.cooldown.iter() {
            let (k, v) = kv?;
            let until = v
                .as_ref()
                .try_into()
                .ok()
                .map(u64::from_be_bytes)
                .unwrap_or(0);
            if until < cutoff_ms {
                self.cooldown.remove(k)?;
                n += 1;
            }
        }
        // Alerts are keyed by time: everything before the cutoff goes, with
        // the copies that belong to it.
        for kv in self.alerts.range(..cutoff_ms.to_be_bytes().to_vec()) {
            let (k, v) = kv?;
            if let Ok(a) = dec::<AlertRecord>(&v) {
                for c in self.copies.scan_prefix(prefix(&a.origin)).keys() {
                    self.copies.remove(c?)?;
                }
                self.alert_index.remove(a.origin.as_bytes())?;
            }
            self.alerts.remove(k)?;
            n += 1;
        }
        // Index entries whose record is gone (or older than the cutoff).
        for kv in self.alert_index.iter() {
            let (k, v) = kv?;
            if be_u64(&v).is_none_or(|at| at < cutoff_ms) {
                self.alert_index.remove(k)?;
                n += 1;
            }
        }
        // Thread links live as long as their thread's alert record.
        for kv in self.links.iter() {
            let (k, root) = kv?;
            if !self.alert_index.contains_key(&root)? {
                self.links.remove(k)?;
                n += 1;
            }
        }
        // Lists of an origin's entries (the index) once none of them is
        // queued or a dead letter any more; by compare-and-swap, so a list
        // that gained an entry meanwhile (in a transaction, which sled
        // serialises with it) stays.
        for kv in self.index.scan_prefix(BY_ORIGIN) {
            let (k, list) = kv?;
            let mut live = false;
            for okey in keys_decode(&list) {
                if self.outbox.contains_key(okey)?
                    || id_of(okey)
                        .is_some_and(|id| self.dead.contains_key(id.to_be_bytes()).unwrap_or(true))
                {
                    live = true;
                    break;
                }
            }
            if !live {
                // Only if unchanged since it was read.
                if self
                    .index
                    .compare_and_swap(&k, Some(&list), None::<&[u8]>)?
                    .is_ok()
                {
                    n += 1;
                }
            }
        }
        // Copies of messages that never were an alert (a follow-up's
        // origin; reminders of purged alerts) by their own time.
        for kv in self.copies.iter() {
            let (k, v) = kv?;
            if dec::<CopyRecord>(&v).is_ok_and(|c| c.sent_ms < cutoff_ms) {
                self.copies.remove(k)?;
                n += 1;
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ChatId, GroupId};
    use crate::message::OutboundKind;

    fn msg(group: &str) -> Outbound {
        Outbound::new(
            AccountId::parse("sandbox").unwrap(),
            GroupId::parse(group).unwrap(),
            ChatId::parse(group).unwrap(),
            "[Veulen] test".into(),
            None,
            OutboundKind::Forward,
        )
    }

    fn write(key: &str) -> IngestWrite {
        IngestWrite {
            dedup_key: key.into(),
            at_ms: 1_000,
            outbox: vec![msg("heers"), msg("batsheers")],
            reminder: None,
            alert: None,
            held: None,
            ..IngestWrite::default()
        }
    }

    #[test]
    fn a_message_seen_twice_is_written_once() {
        let s = Engine::temporary().unwrap();
        assert_eq!(
            s.commit_ingest(&write("sandbox|veulen|1")).unwrap(),
            IngestResult::Accepted {
                queued: 2,
                reminded: false
            }
        );
        assert_eq!(
            s.commit_ingest(&write("sandbox|veulen|1")).unwrap(),
            IngestResult::Duplicate
        );
        let acc = AccountId::parse("sandbox").unwrap();
        assert_eq!(s.pending(&acc, 100).unwrap().len(), 2);
    }

    #[test]
    fn chit_chat_seen_twice_is_a_duplicate_too() {
        let s = Engine::temporary().unwrap();
        let mut w = write("chat-1");
        w.outbox.clear();
        assert_eq!(
            s.commit_ingest(&w).unwrap(),
            IngestResult::Accepted {
                queued: 0,
                reminded: false
            }
        );
        assert_eq!(s.commit_ingest(&w).unwrap(), IngestResult::Duplicate);
        // And an alert with the same key after it is a duplicate as well.
        assert_eq!(
            s.commit_ingest(&write("chat-1")).unwrap(),
            IngestResult::Duplicate
        );
    }

    #[test]
    fn a_reminder_inside_the_cooldown_is_not_queued() {
        let s = Engine::temporary().unwrap();
        let rem = |key: &str, now| IngestWrite {
            dedup_key: key.into(),
            at_ms: now,
            outbox: vec![],
            reminder: Some(ReminderWrite {
                cooldown_key: "sandbox:jan".into(),
                now_ms: now,
                until_ms: now + 1_000,
                msg: msg("veulen"),
            }),
            alert: None,
            held: None,
            ..IngestWrite::default()
        };
        assert_eq!(
            s.commit_ingest(&rem("a", 0)).unwrap(),
            IngestResult::Accepted {
                queued: 1,
                reminded: true
            }
        );
        assert_eq!(
            s.commit_ingest(&rem("b", 500)).unwrap(),
            IngestResult::Accepted {
                queued: 0,
                reminded: false
            }
        );
        assert_eq!(
            s.commit_ingest(&rem("c", 1_500)).unwrap(),
            IngestResult::Accepted {
                queued: 1,
                reminded: true
            }
        );
    }

    #[test]
    fn completing_an_entry_removes_it_and_records_the_copy() {
        let s = Engine::temporary().unwrap();
        s.commit_ingest(&write("o1")).unwrap();
        let acc = AccountId::parse("sandbox").unwrap();
        let first = s.pending(&acc, 1).unwrap().remove(0);
        s.complete(
            &first,
            &Sent {
                message_id: "42".into(),
            },
            2_000,
        )
        .unwrap();
        assert_eq!(s.pending(&acc, 100).unwrap().len(), 1);
        let copies = s.copies_of("o1").unwrap();
        assert_eq!(copies.len(), 1);
        assert_eq!(copies[0].message_id, "42");
    }

    #[test]
    fn a_batch_of_deliveries_is_recorded_in_one_step() {
        let s = Engine::temporary().unwrap();
        s.commit_ingest(&write("o1")).unwrap();
        s.commit_ingest(&write("o2")).unwrap();
        let acc = AccountId::parse("sandbox").unwrap();
        let pending = s.pending(&acc, 100).unwrap();
        assert_eq!(pending.len(), 4);
        let sent: Vec<Sent> = (0..3)
            .map(|i| Sent {
                message_id: format!("m{i}"),
            })
            .collect();
        let done: Vec<(&OutboxEntry, &Sent)> = pending.iter().zip(&sent).collect();
        s.complete_many(&done, 2_000).unwrap();
        let left = s.pending(&acc, 100).unwrap();
        assert_eq!(left, [pending[3].clone()]);
        assert_eq!(s.copies_of("o1").unwrap().len(), 2);
        assert_eq!(s.copies_of("o2").unwrap().len(), 1);
        // Booking the same deliveries again changes nothing (a retried batch).
        s.complete_many(&done, 2_000).unwrap();
        assert_eq!(s.pending(&acc, 100).unwrap().len(), 1);
        assert_eq!(s.copies_of("o1").unwrap().len(), 2);
    }

    #[test]
    fn pending_entries_come_in_priority_order_and_after_a_cursor() {
        let s = Engine::temporary().unwrap();
        let mut w = write("o1");
        w.outbox[0].kind = OutboundKind::Reminder;
        s.commit_ingest(&w).unwrap();
        s.commit_ingest(&write("o2")).unwrap();
        let acc = AccountId::parse("sandbox").unwrap();
        let all = s.pending(&acc, 10).unwrap();
        let kinds: Vec<_> = all.iter().map(|e| e.msg.kind).collect();
        assert_eq!(
            kinds,
            [
                OutboundKind::Forward,
                OutboundKind::Forward,
                OutboundKind::Forward,
                OutboundKind::Reminder
            ]
        );
        let first_o2 = all
            .iter()
            .filter(|e| e.origin == "o2")
            .map(|e| e.id)
            .min()
            .unwrap();
        let after = s.pending_after(&acc, Some(first_o2 - 1), 10).unwrap();
        assert_eq!(s.pending_after(&acc, None, 10).unwrap().len(), 4);
        assert!(after.iter().all(|e| e.origin == "o2"));
        assert_eq!(after.len(), 2);
    }

    #[test]
    fn a_dead_letter_can_be_sent_again() {
        let s = Engine::temporary().unwrap();
        s.commit_ingest(&write("o1")).unwrap();
        let acc = AccountId::parse("sandbox").unwrap();
        let first = s.pending(&acc, 1).unwrap().remove(0);
        s.dead_letter(&first).unwrap();
        assert_eq!(s.dead_letters(10).unwrap().len(), 1);
        assert_eq!(s.pending(&acc, 100).unwrap().len(), 1);
        assert!(s.resend_dead(first.id, 5_000).unwrap());
        assert_eq!(s.pending(&acc, 100).unwrap().len(), 2);
        assert!(s.dead_letters(10).unwrap().is_empty());
    }

    #[test]
    fn sled_and_the_group_commit_share_one_epoch_collector() {
        // GroupCommit::flush hands sled's retired log buffers on through
        // crossbeam-epoch's global collector; with two versions of that
        // crate in the build it would hand on an empty bag of its own.
        let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.lock"))
            .expect("Cargo.lock");
        let versions = lock
            .split("[[package]]")
            .filter(|p| p.contains("name = \"crossbeam-epoch\"\n"))
            .count();
        assert_eq!(versions, 1, "crossbeam-epoch must be one version");
    }

    #[test]
    fn the_outbox_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Engine::open(dir.path()).unwrap();
            s.commit_ingest(&write("o1")).unwrap();
            futures_flush(&s);
        }
        let s = Engine::open(dir.path()).unwrap();
        let acc = AccountId::parse("sandbox").unwrap();
        assert_eq!(s.pending(&acc, 100).unwrap().len(), 2);
        assert!(s.is_seen("o1").unwrap());
    }

    #[test]
    fn a_held_alert_is_released_once() {
        let s = Engine::temporary().unwrap();
        let mut w = write("o1");
        let copies = std::mem::take(&mut w.outbox);
        w.held = Some(HeldAlert {
            origin: "o1".into(),
            until_ms: 5_000,
            outbox: copies,
        });
        s.commit_ingest(&w).unwrap();
        let acc = AccountId::parse("sandbox").unwrap();
        assert!(s.pending(&acc, 10).unwrap().is_empty());
        assert!(s.due_held(4_999, 10).unwrap().is_empty());
        let due = s.due_held(5_000, 10).unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(s.release_held(&due[0], true, 5_000).unwrap(), 2);
        assert_eq!(s.release_held(&due[0], true, 5_000).unwrap(), 0);
        assert_eq!(s.pending(&acc, 10).unwrap().len(), 2);
    }

    /// 200 webhooks at once, each writing and flushing: all return (sled's own
    /// `flush_async` deadlocked here), and one fsync serves many of them.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_concurrent_writes_share_flushes_and_never_hang() {
        let dir = tempfile::tempdir().unwrap();
        let s = std::sync::Arc::new(Engine::open(dir.path()).unwrap());
        let mut tasks = Vec::new();
        for i in 0..200 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                s.commit_ingest(&write(&format!("m{i}"))).unwrap();
                s.flush().await.unwrap();
            }));
        }
        let all = async {
            for t in tasks {
                t.await.unwrap();
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(30), all)
            .await
            .expect("no deadlock");
        let acc = AccountId::parse("sandbox").unwrap();
        assert_eq!(s.pending(&acc, 1000).unwrap().len(), 400);
    }

    #[tokio::test]
    async fn a_flush_after_the_flusher_stopped_fails_at_once_instead_of_hanging() {
        let db = ::sled::Config::new().temporary(true).open().unwrap();
        let mut c = GroupCommit::new(&db).unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(30), c.flush())
            .await
            .expect("a running flusher answers")
            .expect("and flushes");
        c.stop();
        let after = tokio::time::timeout(std::time::Duration::from_secs(30), c.flush())
            .await
            .expect("no hang once the flusher is gone");
        assert!(after.is_err());
    }

    #[tokio::test]
    async fn each_flush_is_counted_once_the_store_is_given_a_registry() {
        let s = Engine::temporary().unwrap();
        s.commit_ingest(&write("before")).unwrap();
        s.flush().await.unwrap();
        let m = Arc::new(crate::telemetry::Metrics::default());
        s.count_flushes_in(m.clone());
        for n in 0..3 {
            s.commit_ingest(&write(&format!("o{n}"))).unwrap();
            s.flush().await.unwrap();
        }
        let text = m.render(&[]);
        // One flush per awaited call here (each waited alone), none before
        // the registry was given.
        assert!(
            text.contains("buurtrelay_store_flush_seconds_count 3"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE buurtrelay_store_flush_seconds histogram"),
            "{text}"
        );
    }

    #[test]
    fn queue_stats_count_each_accounts_entries_and_their_oldest() {
        let s = Engine::temporary().unwrap();
        assert!(s.queue_stats().unwrap().is_empty());
        let mut w = write("o1");
        w.at_ms = 2_000;
        let mut other = msg("heers");
        other.account = AccountId::parse("tg").unwrap();
        w.outbox.push(other);
        s.commit_ingest(&w).unwrap();
        let mut w = write("o2");
        w.at_ms = 5_000;
        s.commit_ingest(&w).unwrap();
        let mut stats = s.queue_stats().unwrap();
        stats.sort_by(|a, b| a.account.as_str().cmp(b.account.as_str()));
        let got: Vec<(&str, usize, Option<u64>)> = stats
            .iter()
            .map(|q| (q.account.as_str(), q.depth, q.oldest_ms))
            .collect();
        assert_eq!(
            got,
            vec![("sandbox", 4, Some(2_000)), ("tg", 1, Some(2_000))]
        );
    }

    #[tokio::test]
    async fn the_store_is_not_ready_once_its_flusher_is_gone() {
        let mut s = Engine::temporary().unwrap();
        assert!(s.ready().is_ok());
        s.commit.stop();
        assert!(s.ready().is_err());
        assert!(
            s.flush().await.is_err(),
            "and writes cannot be made durable"
        );
    }

    fn depths(s: &Engine) -> Vec<(String, usize, Option<u64>)> {
        let mut v: Vec<_> = s
            .queue_stats()
            .unwrap()
            .into_iter()
            .map(|q| (q.account.to_string(), q.depth, q.oldest_ms))
            .collect();
        v.sort();
        v
    }

    /// The counters behind `/metrics` follow every way an entry enters or
    /// leaves the outbox and the dead letters, and equal a count of the
    /// trees themselves; a database without the index gets it at open.
    #[test]
    fn queue_and_dead_letter_counters_follow_every_write_and_are_rebuilt_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let acc = AccountId::parse("sandbox").unwrap();
        {
            let s = Engine::open(dir.path()).unwrap();
            let mut w = write("o1");
            w.at_ms = 5_000;
            s.commit_ingest(&w).unwrap(); // 2 copies
            s.commit_ingest(&held_write("o2")).unwrap(); // 2 held, not queued
            assert_eq!(depths(&s), [("sandbox".into(), 2, Some(5_000))]);
            let q = s.pending(&acc, 10).unwrap();
            s.complete(
                &q[0],
                &Sent {
                    message_id: "1".into(),
                },
                6_000,
            )
            .unwrap();
            // Completing twice (a retry of the booking) counts once.
            s.complete(
                &q[0],
                &Sent {
                    message_id: "1".into(),
                },
                6_000,
            )
            .unwrap();
            s.dead_letter(&q[1]).unwrap();
            assert!(depths(&s).is_empty());
            assert_eq!(s.dead_letter_count().unwrap(), 1);
            let due = s.due_held(u64::MAX - 1, 10).unwrap();
            assert_eq!(s.release_held(&due[0], true, 7_000).unwrap(), 2);
            assert_eq!(depths(&s), [("sandbox".into(), 2, Some(7_000))]);
            assert!(s.resend_dead(q[1].id, 8_000).unwrap());
            assert_eq!(s.dead_letter_count().unwrap(), 0);
            assert_eq!(depths(&s), [("sandbox".into(), 3, Some(7_000))]);
            assert_eq!(s.pending(&acc, 10).unwrap().len(), 3);
            // As an older database: no index at all.
            s.index.clear().unwrap();
            s.db.flush().unwrap();
        }
        let s = Engine::open(dir.path()).unwrap();
        assert_eq!(depths(&s), [("sandbox".into(), 3, Some(7_000))]);
        assert_eq!(s.dead_letter_count().unwrap(), 0);
        let states = s.delivery_states("o2").unwrap();
        assert_eq!(states.len(), 2, "found by the rebuilt index: {states:?}");
    }

    #[test]
    fn dead_letters_sandbox_chats_and_chat_moves_expire_and_are_counted() {
        let s = Engine::temporary().unwrap();
        let acc = AccountId::parse("sandbox").unwrap();
        for (key, at) in [("old", 1_000), ("new", 9_000)] {
            let mut w = write(key);
            w.at_ms = at;
            s.commit_ingest(&w).unwrap();
        }
        for e in s.pending(&acc, 10).unwrap() {
            s.dead_letter(&e).unwrap();
        }
        assert_eq!(s.dead_letter_count().unwrap(), 4);
        assert_eq!(s.expire_dead_letters(5_000).unwrap(), 2);
        assert_eq!(s.dead_letter_count().unwrap(), 2);
        assert!(
            s.dead_letters(10)
                .unwrap()
                .iter()
                .all(|e| e.created_ms == 9_000)
        );
        assert!(
            s.delivery_states("old").unwrap().is_empty(),
            "index gone too"
        );
        assert_eq!(s.delivery_states("new").unwrap().len(), 2);
        assert_eq!(s.expire_dead_letters(5_000).unwrap(), 0);
        // The origin's list goes once none of its entries is left.
        s.purge_before(5_000).unwrap();
        assert!(s.index.get(origin_index_key("old")).unwrap().is_none());
        assert!(s.index.get(origin_index_key("new")).unwrap().is_some());

        let m = |at_ms| SandboxMessage {
            id: String::new(),
            sender: "jan".into(),
            sender_name: None,
            text: "hallo".into(),
            reply_to: None,
            from_relay: false,
            at_ms,
            edited_ms: None,
        };
        s.sandbox_append("veulen", m(1_000)).unwrap();
        s.sandbox_append("veulen", m(9_000)).unwrap();
        assert_eq!(s.expire_sandbox(5_000).unwrap(), 1);
        assert_eq!(s.sandbox_list("veulen", 10).unwrap().len(), 1);

        let [a, b, c, d] = ["a", "b", "c", "d"].map(|x| ChatId::parse(x).unwrap());
        s.migrate_chat(&a, &b, 1_000).unwrap();
        s.migrate_chat(&c, &d, 1_000).unwrap();
        s.migrate_chat(&b, &c, 9_000).unwrap();
        // `c` is still in the config: its move stays.
        assert_eq!(
            s.expire_chat_moves(5_000, std::slice::from_ref(&c))
                .unwrap(),
            1
        );
        let left: Vec<_> = s
            .chat_moves()
            .unwrap()
            .into_iter()
            .map(|m| m.from)
            .collect();
        assert_eq!(left, [c, b]);
    }

    #[test]
    fn a_held_alert_is_found_by_its_thread_and_by_its_chat() {
        let s = Engine::temporary().unwrap();
        s.commit_ingest(&held_write("sandbox|veulen|7")).unwrap();
        s.commit_ingest(&held_write("sandbox|heers|8")).unwrap();
        assert_eq!(
            s.held_of("sandbox|veulen|7").unwrap().unwrap().origin,
            "sandbox|veulen|7"
        );
        let veulen = s.held_in("sandbox|veulen|", 10).unwrap();
        assert_eq!(veulen.len(), 1);
        assert_eq!(veulen[0].origin, "sandbox|veulen|7");
        s.commit_ingest(&hold_change("d", "sandbox|veulen|7", HoldChange::Drop))
            .unwrap();
        assert!(s.held_of("sandbox|veulen|7").unwrap().is_none());
        assert!(s.held_in("sandbox|veulen|", 10).unwrap().is_empty());
        assert_eq!(s.held_in("sandbox|", 10).unwrap().len(), 1);
    }

    #[test]
    fn a_slow_flush_is_warned_of_at_most_once_a_minute_with_the_count() {
        let mut slow = SlowFlushes::default();
        let t0 = Instant::now();
        assert!(!slow.note(Duration::from_millis(900), t0), "not slow");
        assert_eq!(slow.count, 0);
        assert!(slow.note(Duration::from_millis(1500), t0), "first slow one");
        assert!(!slow.note(Duration::from_secs(3), t0 + Duration::from_secs(10)));
        assert!(!slow.note(Duration::from_secs(1), t0 + Duration::from_secs(59)));
        assert_eq!((slow.count, slow.worst), (2, Duration::from_secs(3)));
        assert!(slow.note(Duration::from_secs(2), t0 + Duration::from_secs(61)));
        assert_eq!((slow.count, slow.worst), (0, Duration::ZERO), "reset");
    }

    #[test]
    fn the_dashboard_sees_each_copy_delivered_pending_retrying_dead_or_held() {
        let s = Engine::temporary().unwrap();
        let mut w = write("o1");
        w.outbox = vec![
            msg("heers"),
            msg("batsheers"),
            msg("opheers"),
            msg("vechmaal"),
        ];
        s.commit_ingest(&w).unwrap();
        let acc = AccountId::parse("sandbox").unwrap();
        let queued = s.pending(&acc, 10).unwrap();
        // heers: delivered; batsheers: one failed try; opheers: given up;
        // vechmaal: untouched.
        s.complete(
            &queued[0],
            &Sent {
                message_id: "9".into(),
            },
            2_000,
        )
        .unwrap();
        let mut retry = queued[1].clone();
        retry.attempts = 1;
        retry.last_error = Some("HTTP 502".into());
        s.reschedule(&retry).unwrap();
        let mut dead = queued[2].clone();
        dead.attempts = 7;
        s.dead_letter(&dead).unwrap();
        // Another origin, held: not mixed in.
        let mut other = write("o2");
        other.held = Some(HeldAlert {
            origin: "o2".into(),
            until_ms: 9_000,
            outbox: std::mem::take(&mut other.outbox),
        });
        s.commit_ingest(&other).unwrap();

        let states: Vec<(String, DeliveryState, u32)> = s
            .delivery_states("o1")
            .unwrap()
            .into_iter()
            .map(|t| (t.group.to_string(), t.state, t.attempts))
            .collect();
        assert_eq!(
            states,
            [
                ("heers".to_string(), DeliveryState::Delivered, 0),
                ("batsheers".to_string(), DeliveryState::Retrying, 1),
                ("vechmaal".to_string(), DeliveryState::Pending, 0),
                ("opheers".to_string(), DeliveryState::Dead, 7),
            ]
        );
        let held: Vec<DeliveryState> = s
            .delivery_states("o2")
            .unwrap()
            .into_iter()
            .map(|t| t.state)
            .collect();
        assert_eq!(held, [DeliveryState::Held, DeliveryState::Held]);
        assert!(s.delivery_states("nobody").unwrap().is_empty());
    }

    fn alert(origin: &str, at_ms: u64) -> AlertRecord {
        AlertRecord {
            origin: origin.into(),
            group: GroupId::parse("veulen").unwrap(),
            message_id: "7".into(),
            categories: vec![],
            confirmed: true,
            at_ms,
            targets: vec![GroupId::parse("heers").unwrap()],
            text: "Verdachte wagen".into(),
            sender: String::new(),
            retracted: false,
            all_clear: false,
            sightings: vec![],
            forced: false,
            topic: None,
        }
    }

    fn threaded(group: &str, kind: OutboundKind, thread: &str) -> Outbound {
        let mut m = msg(group);
        m.kind = kind;
        m.thread = Some(thread.into());
        m
    }

    #[test]
    fn a_delivered_copy_is_its_threads_copy_and_every_thread_message_is_linked() {
        let s = Engine::temporary().unwrap();
        let root = "sandbox|veulen|7";
        let mut w = write(root);
        w.outbox = vec![threaded("heers", OutboundKind::Forward, root)];
        w.alert = Some(alert(root, 1_000));
        w.links = vec![("veulen|7".into(), root.into())];
        s.commit_ingest(&w).unwrap();
        let acc = AccountId::parse("sandbox").unwrap();
        let copy = s.pending(&acc, 10).unwrap().remove(0);
        assert_eq!(copy.origin, root);
        s.complete(
            &copy,
            &Sent {
                message_id: "100".into(),
            },
            2_000,
        )
        .unwrap();
        let heers = GroupId::parse("heers").unwrap();
        assert_eq!(s.copy_in(root, &heers).unwrap().unwrap().message_id, "100");
        assert_eq!(s.thread_of("heers|100").unwrap().unwrap().origin, root);
        assert_eq!(s.thread_of("veulen|7").unwrap().unwrap().origin, root);

        // A follow-up (from another message) is linked, not recorded as a copy.
        let mut f = write("sandbox|veulen|8");
        f.outbox = vec![threaded("heers", OutboundKind::FollowUp, root)];
        s.commit_ingest(&f).unwrap();
        let fu = s.pending(&acc, 10).unwrap().remove(0);
        assert_eq!(fu.origin, "sandbox|veulen|8");
        s.complete(
            &fu,
            &Sent {
                message_id: "101".into(),
            },
            3_000,
        )
        .unwrap();
        assert_eq!(s.copy_in(root, &heers).unwrap().unwrap().message_id, "100");
        assert_eq!(s.thread_of("heers|101").unwrap().unwrap().origin, root);
        // Nothing sent: nothing recorded.
        let mut n = write("sandbox|veulen|9");
        n.outbox = vec![threaded("heers", OutboundKind::FollowUp, root)];
        s.commit_ingest(&n).unwrap();
        let nu = s.pending(&acc, 10).unwrap().remove(0);
        s.complete(&nu, &Sent::nothing(), 4_000).unwrap();
        assert!(s.pending(&acc, 10).unwrap().is_empty());
    }

    #[test]
    fn alert_changes_apply_to_the_record_as_it_is_then() {
        let s = Engine::temporary().unwrap();
        let root = "sandbox|veulen|7";
        let mut w = write(root);
        w.outbox.clear();
        w.alert = Some(alert(root, 1_000));
        s.commit_ingest(&w).unwrap();
        // Read once before the changes: the newest alerts are then served
        // from memory, which must follow every change.
        assert!(!s.alerts_since(0, 10).unwrap()[0].retracted);
        for (key, change) in [
            ("k1", AlertChange::Sighting(GroupId::parse("heks").unwrap())),
            ("k2", AlertChange::AllClear),
            ("k3", AlertChange::Retracted),
        ] {
            let mut u = write(key);
            u.outbox.clear();
            u.alert_update = Some(AlertUpdate {
                origin: root.into(),
                changes: vec![change],
            });
            s.commit_ingest(&u).unwrap();
        }
        let a = s.alert(root).unwrap().unwrap();
        assert!(a.retracted && a.all_clear);
        assert_eq!(a.sightings, [GroupId::parse("heks").unwrap()]);
        let recent = s.alerts_since(0, 10).unwrap();
        assert_eq!(recent.len(), 1);
        assert_eq!(*recent[0], a, "the cached record is the stored one");
        // A new alert joins the cached ones, newest first.
        let mut w2 = write("sandbox|veulen|8");
        w2.outbox.clear();
        w2.alert = Some(alert("sandbox|veulen|8", 2_000));
        s.commit_ingest(&w2).unwrap();
        let origins: Vec<_> = s
            .alerts_since(0, 10)
            .unwrap()
            .iter()
            .map(|a| a.origin.clone())
            .collect();
        assert_eq!(origins, ["sandbox|veulen|8", root]);
        assert_eq!(s.alerts_since(1_500, 10).unwrap().len(), 1);
        // Purged records leave the cache too.
        s.purge_before(1_500).unwrap();
        assert_eq!(s.alerts_since(0, 10).unwrap().len(), 1);
    }

    fn held_write(root: &str) -> IngestWrite {
        let mut w = write(root);
        let copies = std::mem::take(&mut w.outbox)
            .into_iter()
            .map(|mut m| {
                m.thread = Some(root.into());
                m
            })
            .collect();
        w.held = Some(HeldAlert {
            origin: root.into(),
            until_ms: 5_000,
            outbox: copies,
        });
        w
    }

    fn hold_change(key: &str, root: &str, change: HoldChange) -> IngestWrite {
        let mut w = write(key);
        w.outbox.clear();
        w.hold_update = Some(HoldUpdate {
            origin: root.into(),
            until_ms: 5_000,
            change,
        });
        w
    }

    #[test]
    fn follow_ups_wait_in_a_hold_and_go_out_behind_its_copies() {
        let s = Engine::temporary().unwrap();
        let root = "sandbox|veulen|7";
        s.commit_ingest(&held_write(root)).unwrap();
        let acc = AccountId::parse("sandbox").unwrap();
        let f = threaded("heers", OutboundKind::FollowUp, root);
        s.commit_ingest(&hold_change("f", root, HoldChange::Append(vec![f])))
            .unwrap();
        assert!(s.pending(&acc, 10).unwrap().is_empty(), "still held");
        let mut new_copy = threaded("heers", OutboundKind::Forward, root);
        new_copy.text = "confirmed".into();
        s.commit_ingest(&hold_change(
            "r",
            root,
            HoldChange::Release(Some(vec![new_copy])),
        ))
        .unwrap();
        let queued = s.pending(&acc, 10).unwrap();
        let kinds: Vec<_> = queued
            .iter()
            .map(|e| (e.msg.kind, e.msg.text.as_str()))
            .collect();
        assert_eq!(
            kinds,
            [
                (OutboundKind::Forward, "confirmed"),
                (OutboundKind::FollowUp, "[Veulen] test")
            ]
        );
        assert_eq!(queued[0].origin, root);
        // The hold is over: a second release queues nothing, the timeout
        // finds nothing, and a late follow-up goes straight to the outbox.
        s.commit_ingest(&hold_change("r2", root, HoldChange::Release(None)))
            .unwrap();
        assert!(s.due_held(10_000, 10).unwrap().is_empty());
        assert_eq!(s.pending(&acc, 10).unwrap().len(), 2);
        let late = threaded("batsheers", OutboundKind::FollowUp, root);
        s.commit_ingest(&hold_change("f2", root, HoldChange::Append(vec![late])))
            .unwrap();
        assert_eq!(s.pending(&acc, 10).unwrap().len(), 3);
    }

    #[test]
    fn a_timeout_release_takes_the_follow_ups_that_joined_after_it_was_read() {
        let s = Engine::temporary().unwrap();
        let root = "sandbox|veulen|7";
        s.commit_ingest(&held_write(root)).unwrap();
        let due = s.due_held(5_000, 10).unwrap();
        let f = threaded("heers", OutboundKind::FollowUp, root);
        s.commit_ingest(&hold_change("f", root, HoldChange::Append(vec![f])))
            .unwrap();
        assert_eq!(s.release_held(&due[0], true, 5_000).unwrap(), 3);
    }

    #[test]
    fn a_dropped_hold_queues_nothing_ever() {
        let s = Engine::temporary().unwrap();
        let root = "sandbox|veulen|7";
        s.commit_ingest(&held_write(root)).unwrap();
        s.commit_ingest(&hold_change("d", root, HoldChange::Drop))
            .unwrap();
        assert!(s.held_alerts(10).unwrap().is_empty());
        assert!(s.due_held(u64::MAX - 1, 10).unwrap().is_empty());
        let acc = AccountId::parse("sandbox").unwrap();
        assert!(s.pending(&acc, 10).unwrap().is_empty());
    }

    #[test]
    fn a_moved_chat_takes_its_queued_entries_copies_and_links_along() {
        let s = Engine::temporary().unwrap();
        let root = "telegram|-1|7";
        let mut w = write(root);
        w.outbox = vec![
            threaded("heers", OutboundKind::Forward, root),
            threaded("batsheers", OutboundKind::Forward, root),
        ];
        s.commit_ingest(&w).unwrap();
        let acc = AccountId::parse("sandbox").unwrap();
        let first = s.pending(&acc, 10).unwrap().remove(0);
        s.complete(
            &first,
            &Sent {
                message_id: "5".into(),
            },
            2_000,
        )
        .unwrap();
        let (from, to) = (
            ChatId::parse("batsheers").unwrap(),
            ChatId::parse("new").unwrap(),
        );
        let heers = ChatId::parse("heers").unwrap();
        assert!(s.migrate_chat(&from, &to, 3_000).unwrap() >= 1);
        assert_eq!(s.pending(&acc, 10).unwrap()[0].msg.chat, to);
        assert!(s.migrate_chat(&heers, &to, 3_000).unwrap() >= 2);
        let rec = s
            .copy_in(root, &GroupId::parse("heers").unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(rec.chat, "new");
        assert!(s.links.contains_key("new|5").unwrap());
        assert_eq!(s.chat_moves().unwrap().len(), 2);
        // A copy completed after the move is recorded under the new id.
        let second = s.pending(&acc, 10).unwrap().remove(0);
        s.complete(
            &second,
            &Sent {
                message_id: "6".into(),
            },
            4_000,
        )
        .unwrap();
        assert!(s.links.contains_key("new|6").unwrap());
    }

    #[test]
    fn a_chat_that_moved_twice_is_followed_and_a_cycle_never_loops() {
        let s = Engine::temporary().unwrap();
        let [a, b, c] = ["a", "b", "c"].map(|x| ChatId::parse(x).unwrap());
        assert_eq!(s.chat_now(&a).unwrap(), a);
        s.migrate_chat(&a, &b, 1_000).unwrap();
        s.migrate_chat(&b, &c, 2_000).unwrap();
        assert_eq!(s.chat_now(&a).unwrap(), c);
        assert_eq!(s.chat_now(&b).unwrap(), c);
        assert_eq!(s.chat_now(&c).unwrap(), c);
        // A bad record pointing back: the answer is one of the chats, at once.
        s.migrate_chat(&c, &a, 3_000).unwrap();
        assert!([&a, &b, &c].contains(&&s.chat_now(&a).unwrap()));
    }

    #[test]
    fn purging_removes_the_thread_map_with_its_alert() {
        let s = Engine::temporary().unwrap();
        let root = "sandbox|veulen|7";
        let mut w = write(root);
        w.outbox = vec![threaded("heers", OutboundKind::Forward, root)];
        w.alert = Some(alert(root, 1_000));
        w.links = vec![("veulen|7".into(), root.into())];
        s.commit_ingest(&w).unwrap();
        let acc = AccountId::parse("sandbox").unwrap();
        let e = s.pending(&acc, 1).unwrap().remove(0);
        s.complete(
            &e,
            &Sent {
                message_id: "9".into(),
            },
            1_500,
        )
        .unwrap();
        s.purge_before(1_000).unwrap();
        assert!(
            s.alert(root).unwrap().is_some(),
            "not older than the cutoff"
        );
        s.purge_before(10_000).unwrap();
        assert!(s.alert(root).unwrap().is_none());
        assert!(s.thread_of("veulen|7").unwrap().is_none());
        assert!(s.thread_of("heers|9").unwrap().is_none());
        assert!(s.links.is_empty() && s.alert_index.is_empty() && s.copies.is_empty());
    }

    #[test]
    fn an_outbox_entry_written_before_threads_existed_still_reads() {
        let old = r#"{"id":3,"origin":"sandbox|veulen|1","msg":{"account":"sandbox","group":"heers","chat":"heers","text":"[Veulen] x","reply_to":null,"kind":"forward"},"created_ms":1,"attempts":0,"next_at_ms":0,"last_error":null}"#;
        let e: OutboxEntry = dec(old.as_bytes()).unwrap();
        assert_eq!(e.msg.thread, None);
        assert_eq!(e.msg.op, crate::message::Op::Send);
        // And a plain send is written the old way (no new keys).
        let text = String::from_utf8(enc(&e)).unwrap();
        assert!(
            !text.contains("thread") && !text.contains("\"op\""),
            "{text}"
        );
    }

    fn futures_flush(s: &Engine) {
        s.db.flush().unwrap();
    }
}
