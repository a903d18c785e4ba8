//! The embedded sled store, off the async runtime.
//!
//! The guarantee: no sled call runs on a tokio worker. The database
//! ([`engine::Engine`], visible nowhere else) is used only by the store's
//! own threads, which take requests from one bounded queue; an async method
//! sends its request and awaits the answer. The group commit's flusher is a
//! thread of its own too. So when the disk stalls a write (this VM's disk
//! has stalled sled's log writes for 100-420 ms), sled's locks hold up the
//! store threads and the answers that wait for them, and the tokio workers
//! go on with everything else: timers, `/healthz`, sends in flight, the
//! webhooks of chit-chat waiting on nothing but a queue slot. A full queue
//! makes callers wait their turn (asynchronously), it never blocks a worker.
//!
//! Durability is the engine's: a write is in sled's log when its answer
//! arrives, and [`Store::flush`] returns once every write answered before
//! it is on disk.

mod engine;
mod recent;

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

use async_trait::async_trait;
use tokio::sync::{mpsc, oneshot};

use super::*;
use engine::Engine;

/// How many threads work on the database. sled runs reads and single-tree
/// writes in parallel, and a multi-tree transaction takes a global lock:
/// a few threads let reads and the dispatchers' bookings go on while a
/// transaction waits, without a thread per waiting request.
const THREADS: usize = 4;
/// Requests waiting for a store thread, at most; more wait to be queued.
const QUEUE: usize = 1024;

type Job = Box<dyn FnOnce(&Engine) + Send>;

pub struct SledStore {
    /// Also reached directly for what never touches sled on the caller's
    /// thread: the flush (a wait for the flusher) and its metrics.
    engine: Arc<Engine>,
    /// `None` once the store is shutting down.
    jobs: Option<mpsc::Sender<Job>>,
    threads: Vec<std::thread::JoinHandle<()>>,
    /// The chat moves as stored (old id → move), read for every message
    /// and every send, changed a few times in a network's life. This store
    /// is the only writer of its database, so the copy is exact: it is
    /// loaded at open and changed after each write of a move.
    moves: RwLock<HashMap<ChatId, ChatMove>>,
}

impl SledStore {
    /// Opens (or creates) the database in `dir` and starts its threads.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        Self::start(Engine::open(dir)?)
    }

    /// A throw-away database, for tests.
    pub fn temporary() -> Result<Self, StoreError> {
        Self::start(Engine::temporary()?)
    }

    fn start(engine: Engine) -> Result<Self, StoreError> {
        let moves = engine
            .chat_moves()?
            .into_iter()
            .map(|m| (m.from.clone(), m))
            .collect();
        let engine = Arc::new(engine);
        let (tx, rx) = mpsc::channel::<Job>(QUEUE);
        let rx = Arc::new(Mutex::new(rx));
        let mut store = SledStore {
            engine: engine.clone(),
            jobs: Some(tx),
            threads: Vec::with_capacity(THREADS),
            moves: RwLock::new(moves),
        };
        for i in 0..THREADS {
            let (engine, rx) = (engine.clone(), rx.clone());
            let t = std::thread::Builder::new()
                .name(format!("store-{i}"))
                .spawn(move || work(&engine, &rx))
                .map_err(|e| StoreError::Unavailable(format!("store thread: {e}")))?;
            store.threads.push(t);
        }
        Ok(store)
    }

    /// Runs `f` on a store thread and returns its answer.
    async fn call<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&Engine) -> Result<R, StoreError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |engine| {
            let _ = tx.send(f(engine));
        });
        let jobs = self.jobs.as_ref().ok_or_else(stopped)?;
        jobs.send(job).await.map_err(|_| stopped())?;
        // The sender is dropped unanswered only if the job panicked.
        rx.await
            .map_err(|_| StoreError::Unavailable("a store request failed (see the log)".into()))?
    }
}

impl SledStore {
    /// The moves, read (a lock poisoned by a panic elsewhere still holds
    /// the last complete map: every change is one insert or one swap).
    fn moves(&self) -> std::sync::RwLockReadGuard<'_, HashMap<ChatId, ChatMove>> {
        self.moves.read().unwrap_or_else(|p| p.into_inner())
    }

    fn moves_mut(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<ChatId, ChatMove>> {
        self.moves.write().unwrap_or_else(|p| p.into_inner())
    }
}

fn stopped() -> StoreError {
    StoreError::Unavailable("the store has stopped".into())
}

/// A store thread: takes one request at a time until the queue is closed.
fn work(engine: &Engine, rx: &Mutex<mpsc::Receiver<Job>>) {
    loop {
        // One thread waits in `blocking_recv` holding the lock, the others
        // for the lock: the next request goes to whoever holds it.
        let job = match rx.lock() {
            Ok(mut rx) => rx.blocking_recv(),
            Err(_) => return,
        };
        let Some(job) = job else {
            return;
        };
        // A bug in one request answers it with an error (its answer channel
        // is dropped) and leaves the thread serving the others.
        if std::panic::catch_unwind(AssertUnwindSafe(|| job(engine))).is_err() {
            tracing::error!("a store request panicked");
        }
    }
}

impl Drop for SledStore {
    /// Closes the queue and waits for the threads to finish the requests
    /// they took; the database closes (and the flusher stops) with the last
    /// reference to the engine.
    fn drop(&mut self) {
        self.jobs = None;
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

#[async_trait]
impl Store for SledStore {
    async fn commit_ingest(&self, w: &IngestWrite) -> Result<IngestResult, StoreError> {
        let w = w.clone();
        self.call(move |e| e.commit_ingest(&w)).await
    }

    async fn flush(&self) -> Result<(), StoreError> {
        // A wait for the flusher thread; no sled call here.
        self.engine.flush().await
    }

    fn count_flushes_in(&self, metrics: Arc<crate::telemetry::Metrics>) {
        self.engine.count_flushes_in(metrics)
    }

    async fn is_seen(&self, dedup_key: &str) -> Result<bool, StoreError> {
        let k = dedup_key.to_string();
        self.call(move |e| e.is_seen(&k)).await
    }

    async fn pending(
        &self,
        account: &AccountId,
        limit: usize,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        let a = account.clone();
        self.call(move |e| e.pending(&a, limit)).await
    }

    async fn pending_after(
        &self,
        account: &AccountId,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        let a = account.clone();
        self.call(move |e| e.pending_after(&a, after, limit)).await
    }

    async fn complete_many(
        &self,
        done: &[(&OutboxEntry, &Sent)],
        at_ms: u64,
    ) -> Result<(), StoreError> {
        let owned: Vec<(OutboxEntry, Sent)> = done
            .iter()
            .map(|(e, s)| ((*e).clone(), (*s).clone()))
            .collect();
        self.call(move |e| {
            let refs: Vec<(&OutboxEntry, &Sent)> = owned.iter().map(|(e, s)| (e, s)).collect();
            e.complete_many(&refs, at_ms)
        })
        .await
    }

    async fn reschedule(&self, entry: &OutboxEntry) -> Result<(), StoreError> {
        let entry = entry.clone();
        self.call(move |e| e.reschedule(&entry)).await
    }

    async fn dead_letter(&self, entry: &OutboxEntry) -> Result<(), StoreError> {
        let entry = entry.clone();
        self.call(move |e| e.dead_letter(&entry)).await
    }

    async fn dead_letters(&self, limit: usize) -> Result<Vec<OutboxEntry>, StoreError> {
        self.call(move |e| e.dead_letters(limit)).await
    }

    async fn dead_letter_count(&self) -> Result<u64, StoreError> {
        self.call(|e| e.dead_letter_count()).await
    }

    async fn resend_dead(&self, id: u64, now_ms: u64) -> Result<bool, StoreError> {
        self.call(move |e| e.resend_dead(id, now_ms)).await
    }

    async fn queue_stats(&self) -> Result<Vec<QueueStats>, StoreError> {
        self.call(|e| e.queue_stats()).await
    }

    async fn ready(&self) -> Result<(), StoreError> {
        self.call(|e| e.ready()).await
    }

    async fn copy_in(
        &self,
        origin: &str,
        group: &GroupId,
    ) -> Result<Option<CopyRecord>, StoreError> {
        let (o, g) = (origin.to_string(), group.clone());
        self.call(move |e| e.copy_in(&o, &g)).await
    }

    async fn thread_of(&self, link_key: &str) -> Result<Option<AlertRecord>, StoreError> {
        let k = link_key.to_string();
        self.call(move |e| e.thread_of(&k)).await
    }

    async fn alert(&self, origin: &str) -> Result<Option<AlertRecord>, StoreError> {
        let o = origin.to_string();
        self.call(move |e| e.alert(&o)).await
    }

    async fn alerts_since(
        &self,
        from_ms: u64,
        limit: usize,
    ) -> Result<Vec<Arc<AlertRecord>>, StoreError> {
        self.call(move |e| e.alerts_since(from_ms, limit)).await
    }

    async fn held_of(&self, origin: &str) -> Result<Option<HeldAlert>, StoreError> {
        let o = origin.to_string();
        self.call(move |e| e.held_of(&o)).await
    }

    async fn held_in(
        &self,
        origin_prefix: &str,
        limit: usize,
    ) -> Result<Vec<HeldAlert>, StoreError> {
        let p = origin_prefix.to_string();
        self.call(move |e| e.held_in(&p, limit)).await
    }

    async fn migrate_chat(
        &self,
        from: &ChatId,
        to: &ChatId,
        at_ms: u64,
    ) -> Result<usize, StoreError> {
        let (f, t) = (from.clone(), to.clone());
        let n = self.call(move |e| e.migrate_chat(&f, &t, at_ms)).await?;
        let mv = ChatMove {
            from: from.clone(),
            to: to.clone(),
            at_ms,
        };
        self.moves_mut().insert(from.clone(), mv);
        Ok(n)
    }

    /// From memory (see [`SledStore::moves`]).
    async fn chat_moves(&self) -> Result<Vec<ChatMove>, StoreError> {
        let mut v: Vec<ChatMove> = self.moves().values().cloned().collect();
        v.sort_by_key(|m| m.at_ms);
        Ok(v)
    }

    /// From memory, as the engine's `chat_now` follows them on disk.
    async fn chat_now(&self, chat: &ChatId) -> Result<ChatId, StoreError> {
        let moves = self.moves();
        let mut now = chat;
        // A chat may move twice; never loop.
        for _ in 0..4 {
            match moves.get(now) {
                Some(m) => now = &m.to,
                None => break,
            }
        }
        Ok(now.clone())
    }

    async fn delivery_states(&self, origin: &str) -> Result<Vec<TargetDelivery>, StoreError> {
        let o = origin.to_string();
        self.call(move |e| e.delivery_states(&o)).await
    }

    async fn recent_alerts(&self, limit: usize) -> Result<Vec<AlertRecord>, StoreError> {
        self.call(move |e| e.recent_alerts(limit)).await
    }

    async fn due_held(&self, now_ms: u64, limit: usize) -> Result<Vec<HeldAlert>, StoreError> {
        self.call(move |e| e.due_held(now_ms, limit)).await
    }

    async fn release_held(
        &self,
        held: &HeldAlert,
        forward: bool,
        now_ms: u64,
    ) -> Result<usize, StoreError> {
        let h = held.clone();
        self.call(move |e| e.release_held(&h, forward, now_ms))
            .await
    }

    async fn purge_before(&self, cutoff_ms: u64) -> Result<usize, StoreError> {
        self.call(move |e| e.purge_before(cutoff_ms)).await
    }

    async fn expire_dead_letters(&self, cutoff_ms: u64) -> Result<usize, StoreError> {
        self.call(move |e| e.expire_dead_letters(cutoff_ms)).await
    }

    async fn expire_chat_moves(
        &self,
        cutoff_ms: u64,
        keep: &[ChatId],
    ) -> Result<usize, StoreError> {
        let keep = keep.to_vec();
        let (n, left) = self
            .call(move |e| Ok((e.expire_chat_moves(cutoff_ms, &keep)?, e.chat_moves()?)))
            .await?;
        *self.moves_mut() = left.into_iter().map(|m| (m.from.clone(), m)).collect();
        Ok(n)
    }
}

#[async_trait]
impl SandboxChats for SledStore {
    async fn append(&self, chat: &str, msg: SandboxMessage) -> Result<SandboxMessage, StoreError> {
        let c = chat.to_string();
        self.call(move |e| e.sandbox_append(&c, msg)).await
    }

    async fn list(&self, chat: &str, limit: usize) -> Result<Vec<SandboxMessage>, StoreError> {
        let c = chat.to_string();
        self.call(move |e| e.sandbox_list(&c, limit)).await
    }

    async fn get(&self, chat: &str, id: &str) -> Result<Option<SandboxMessage>, StoreError> {
        let (c, i) = (chat.to_string(), id.to_string());
        self.call(move |e| e.sandbox_get(&c, &i)).await
    }

    async fn edit(
        &self,
        chat: &str,
        id: &str,
        text: &str,
        at_ms: u64,
    ) -> Result<Option<SandboxMessage>, StoreError> {
        let (c, i, t) = (chat.to_string(), id.to_string(), text.to_string());
        self.call(move |e| e.sandbox_edit(&c, &i, &t, at_ms)).await
    }

    async fn delete(&self, chat: &str, id: &str) -> Result<bool, StoreError> {
        let (c, i) = (chat.to_string(), id.to_string());
        self.call(move |e| e.sandbox_delete(&c, &i)).await
    }

    async fn expire_before(&self, cutoff_ms: u64) -> Result<usize, StoreError> {
        self.call(move |e| e.expire_sandbox(cutoff_ms)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(key: &str) -> IngestWrite {
        IngestWrite {
            dedup_key: key.into(),
            at_ms: 1_000,
            ..IngestWrite::default()
        }
    }

    /// The freeze the vendored sled patch used to fight: a disk that does
    /// not answer holds up every store thread. Here the store's threads are
    /// all stuck (as in a stalled log write), and the runtime goes on:
    /// timers fire, tasks on both workers run; the store call waiting
    /// behind the stall answers once the disk does.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stalled_disk_holds_up_store_calls_and_never_the_runtime() {
        let s = Arc::new(SledStore::temporary().unwrap());
        let gate = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
        let (started_tx, mut started) = mpsc::unbounded_channel();
        let mut stalls = Vec::new();
        for _ in 0..THREADS {
            let (s, gate, started_tx) = (s.clone(), gate.clone(), started_tx.clone());
            stalls.push(tokio::spawn(async move {
                s.call(move |_| {
                    let _ = started_tx.send(());
                    let (open, cv) = &*gate;
                    let mut g = open.lock().unwrap();
                    while !*g {
                        g = cv.wait(g).unwrap();
                    }
                    Ok(())
                })
                .await
            }));
        }
        for _ in 0..THREADS {
            started.recv().await.unwrap();
        }
        // Every store thread is stuck now. A webhook's write waits...
        let blocked = {
            let s = s.clone();
            tokio::spawn(async move { s.commit_ingest(&write("k")).await })
        };
        // ... and the runtime does not: a timer fires and tasks run, on
        // every worker, many times over.
        for _ in 0..20 {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            let mut ran = Vec::new();
            for i in 0..4 {
                ran.push(tokio::spawn(async move { i }));
            }
            for (i, t) in ran.into_iter().enumerate() {
                assert_eq!(t.await.unwrap(), i);
            }
        }
        assert!(!blocked.is_finished(), "the write waits for the disk");
        {
            let (open, cv) = &*gate;
            *open.lock().unwrap() = true;
            cv.notify_all();
        }
        for t in stalls {
            t.await.unwrap().unwrap();
        }
        assert!(matches!(
            blocked.await.unwrap().unwrap(),
            IngestResult::Accepted { .. }
        ));
        assert!(s.is_seen("k").await.unwrap());
    }

    /// Chat moves are answered from memory: the same answers as the
    /// engine's, across a reopen and an expiry.
    #[tokio::test]
    async fn chat_moves_are_followed_from_memory_as_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let [a, b, c] = ["a", "b", "c"].map(|x| ChatId::parse(x).unwrap());
        {
            let s = SledStore::open(dir.path()).unwrap();
            s.migrate_chat(&a, &b, 1_000).await.unwrap();
            s.migrate_chat(&b, &c, 2_000).await.unwrap();
            assert_eq!(s.chat_now(&a).await.unwrap(), c);
            assert_eq!(s.engine.chat_now(&a).unwrap(), c);
        }
        let s = SledStore::open(dir.path()).unwrap();
        assert_eq!(s.chat_now(&a).await.unwrap(), c, "loaded at open");
        assert_eq!(s.chat_moves().await.unwrap().len(), 2);
        assert_eq!(s.expire_chat_moves(1_500, &[]).await.unwrap(), 1);
        assert_eq!(s.chat_now(&a).await.unwrap(), a);
        assert_eq!(s.chat_now(&b).await.unwrap(), c);
    }

    #[tokio::test]
    async fn a_request_that_panics_fails_alone_and_the_threads_go_on() {
        let s = SledStore::temporary().unwrap();
        let r: Result<(), StoreError> = s.call(|_| panic!("a bug")).await;
        assert!(matches!(r, Err(StoreError::Unavailable(_))));
        for i in 0..THREADS * 2 {
            s.commit_ingest(&write(&format!("m{i}"))).await.unwrap();
        }
        s.flush().await.unwrap();
    }

    #[tokio::test]
    async fn sandbox_chats_keep_their_messages_apart_from_the_relay_state() {
        let s = SledStore::temporary().unwrap();
        let m = SandboxMessage {
            id: String::new(),
            sender: "jan".into(),
            sender_name: None,
            text: "hallo".into(),
            reply_to: None,
            from_relay: false,
            at_ms: 1,
            edited_ms: None,
        };
        let stored = s.append("veulen", m).await.unwrap();
        assert_eq!(
            s.list("veulen", 10).await.unwrap(),
            std::slice::from_ref(&stored)
        );
        assert!(s.list("heers", 10).await.unwrap().is_empty());
        let edited = s.edit("veulen", &stored.id, "dag", 2).await.unwrap();
        assert_eq!(edited.unwrap().text, "dag");
        assert!(s.delete("veulen", &stored.id).await.unwrap());
        assert!(s.get("veulen", &stored.id).await.unwrap().is_none());
    }
}
