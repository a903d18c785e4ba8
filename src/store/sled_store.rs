//! The embedded sled store (sled 0.34): one database under `data_dir`, one
//! tree per kind of record, multi-tree transactions for atomic writes.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};
use tokio::sync::watch;

use super::*;

pub struct SledStore {
    db: sled::Db,
    commit: GroupCommit,
    seen: sled::Tree,
    outbox: sled::Tree,
    dead: sled::Tree,
    cooldown: sled::Tree,
    alerts: sled::Tree,
    copies: sled::Tree,
    sandbox: sled::Tree,
    held: sled::Tree,
}

fn enc<T: Serialize>(v: &T) -> Vec<u8> {
    // Serialising our own plain structs to JSON cannot fail.
    serde_json::to_vec(v).unwrap_or_default()
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
    let mut k = h.until_ms.to_be_bytes().to_vec();
    k.extend_from_slice(h.origin.as_bytes());
    k
}

fn prefix(s: &str) -> Vec<u8> {
    let mut k = s.as_bytes().to_vec();
    k.push(0);
    k
}

impl SledStore {
    /// Opens (or creates) the database in `dir`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let db = sled::Config::new()
            .path(dir.join("buurtrelay.sled"))
            .mode(sled::Mode::HighThroughput)
            // sled's default page cache is 1 GiB; the working set here (recent
            // dedup marks, the outbox, recent alerts) fits in a few MiB.
            .cache_capacity(16 * 1024 * 1024)
            .flush_every_ms(Some(500))
            .open()?;
        Self::from_db(db)
    }

    /// A throw-away database, for unit tests.
    pub fn temporary() -> Result<Self, StoreError> {
        Self::from_db(sled::Config::new().temporary(true).open()?)
    }

    fn from_db(db: sled::Db) -> Result<Self, StoreError> {
        Ok(Self {
            commit: GroupCommit::new(),
            seen: db.open_tree("seen")?,
            outbox: db.open_tree("outbox")?,
            dead: db.open_tree("dead")?,
            cooldown: db.open_tree("cooldown")?,
            alerts: db.open_tree("alerts")?,
            copies: db.open_tree("copies")?,
            sandbox: db.open_tree("sandbox")?,
            held: db.open_tree("held")?,
            db,
        })
    }
}

/// Group commit: at most one `flush` of the database runs at a time, and
/// each covers every write made before it started, so many concurrent
/// webhooks share one fsync.
///
/// Also a guard: sled 0.34 deadlocks when many `flush_async` calls fill its
/// I/O thread pool while transactions wait for their lock (seen under load
/// with 64 concurrent webhooks); one flusher at a time never fills it.
struct GroupCommit {
    /// Tickets handed out; a caller takes one after its write.
    issued: AtomicU64,
    /// Every ticket up to this value is durable.
    durable: watch::Sender<u64>,
    running: Mutex<bool>,
}

impl GroupCommit {
    fn new() -> Self {
        Self {
            issued: AtomicU64::new(0),
            durable: watch::channel(0).0,
            running: Mutex::new(false),
        }
    }

    async fn flush(&self, db: &sled::Db) -> Result<(), StoreError> {
        let ticket = self.issued.fetch_add(1, Ordering::SeqCst) + 1;
        let mut rx = self.durable.subscribe();
        loop {
            if *rx.borrow_and_update() >= ticket {
                return Ok(());
            }
            let lead = match self.running.lock() {
                Ok(mut r) if !*r => {
                    *r = true;
                    true
                }
                _ => false,
            };
            if lead {
                // Every ticket issued so far belongs to a finished write.
                let target = self.issued.load(Ordering::SeqCst);
                let db = db.clone();
                let res = tokio::task::spawn_blocking(move || db.flush()).await;
                if let Ok(mut r) = self.running.lock() {
                    *r = false;
                }
                match res {
                    Ok(Ok(_)) => {
                        self.durable.send_modify(|d| *d = (*d).max(target));
                    }
                    Ok(Err(e)) => {
                        // Let a waiting caller lead the next attempt.
                        self.durable.send_modify(|_| {});
                        return Err(e.into());
                    }
                    Err(join) => {
                        self.durable.send_modify(|_| {});
                        return Err(StoreError::Corrupt(format!("flush task: {join}")));
                    }
                }
                continue;
            }
            if rx.changed().await.is_err() {
                return Err(StoreError::Corrupt("flusher gone".into()));
            }
        }
    }
}

#[derive(Debug)]
enum Abort {
    Duplicate,
}

#[async_trait]
impl Store for SledStore {
    fn commit_ingest(&self, w: &IngestWrite) -> Result<IngestResult, StoreError> {
        // Most messages lead to nothing but their dedup mark: one atomic
        // insert-if-absent, without the transaction's global lock. (A given
        // message always takes the same path: whether it leads to anything is
        // decided by its text, so the two paths never race on one key.)
        if w.outbox.is_empty() && w.reminder.is_none() && w.alert.is_none() && w.held.is_none() {
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
        let res = (
            &self.seen,
            &self.outbox,
            &self.cooldown,
            &self.alerts,
            &self.held,
        )
            .transaction(|(seen, outbox, cooldown, alerts, held)| {
                if seen.get(w.dedup_key.as_bytes())?.is_some() {
                    return Err(ConflictableTransactionError::Abort(Abort::Duplicate));
                }
                seen.insert(w.dedup_key.as_bytes(), &w.at_ms.to_be_bytes())?;
                let mut queued = 0;
                let mut reminded = false;
                let mut push = |msg: &Outbound| -> Result<(), ConflictableTransactionError<Abort>> {
                    let id = outbox.generate_id()?;
                    let entry = OutboxEntry {
                        id,
                        origin: w.dedup_key.clone(),
                        msg: msg.clone(),
                        created_ms: w.at_ms,
                        attempts: 0,
                        next_at_ms: 0,
                        last_error: None,
                    };
                    outbox.insert(outbox_key(msg, id), enc(&entry))?;
                    queued += 1;
                    Ok(())
                };
                for msg in &w.outbox {
                    push(msg)?;
                }
                if let Some(r) = &w.reminder {
                    let active = cooldown
                        .get(r.cooldown_key.as_bytes())?
                        .and_then(|v| v.as_ref().try_into().ok().map(u64::from_be_bytes))
                        .is_some_and(|until| until > r.now_ms);
                    if !active {
                        cooldown.insert(r.cooldown_key.as_bytes(), &r.until_ms.to_be_bytes())?;
                        push(&r.msg)?;
                        reminded = true;
                    }
                }
                if let Some(a) = &w.alert {
                    let mut key = a.at_ms.to_be_bytes().to_vec();
                    key.extend_from_slice(a.origin.as_bytes());
                    alerts.insert(key, enc(a))?;
                }
                if let Some(h) = &w.held {
                    held.insert(held_key(h), enc(h))?;
                }
                Ok(IngestResult::Accepted { queued, reminded })
            });
        match res {
            Ok(r) => Ok(r),
            Err(TransactionError::Abort(Abort::Duplicate)) => Ok(IngestResult::Duplicate),
            Err(TransactionError::Storage(e)) => Err(e.into()),
        }
    }

    async fn flush(&self) -> Result<(), StoreError> {
        self.commit.flush(&self.db).await
    }

    fn is_seen(&self, dedup_key: &str) -> Result<bool, StoreError> {
        Ok(self.seen.contains_key(dedup_key.as_bytes())?)
    }

    fn cooldown_until(&self, key: &str) -> Result<Option<u64>, StoreError> {
        Ok(self
            .cooldown
            .get(key.as_bytes())?
            .and_then(|v| v.as_ref().try_into().ok().map(u64::from_be_bytes)))
    }

    fn pending(&self, account: &AccountId, limit: usize) -> Result<Vec<OutboxEntry>, StoreError> {
        self.outbox
            .scan_prefix(prefix(account.as_str()))
            .take(limit)
            .map(|kv| {
                let (_, v) = kv?;
                dec(&v)
            })
            .collect()
    }

    fn pending_after(
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

    fn complete(&self, entry: &OutboxEntry, sent: &Sent, at_ms: u64) -> Result<(), StoreError> {
        let rec = CopyRecord {
            group: entry.msg.group.clone(),
            account: entry.msg.account.clone(),
            chat: entry.msg.chat.to_string(),
            message_id: sent.message_id.clone(),
            sent_ms: at_ms,
        };
        let mut ckey = prefix(&entry.origin);
        ckey.extend_from_slice(entry.msg.group.as_str().as_bytes());
        let okey = outbox_key(&entry.msg, entry.id);
        (&self.outbox, &self.copies)
            .transaction(|(outbox, copies)| {
                outbox.remove(okey.as_slice())?;
                copies.insert(ckey.as_slice(), enc(&rec))?;
                Ok::<_, ConflictableTransactionError<()>>(())
            })
            .map_err(|e| match e {
                TransactionError::Storage(e) => StoreError::Db(e),
                TransactionError::Abort(()) => StoreError::Corrupt("aborted".into()),
            })
    }

    fn reschedule(&self, entry: &OutboxEntry) -> Result<(), StoreError> {
        let key = outbox_key(&entry.msg, entry.id);
        // Only update an entry that is still there (never resurrect one).
        if self.outbox.contains_key(&key)? {
            self.outbox.insert(key, enc(entry))?;
        }
        Ok(())
    }

    fn dead_letter(&self, entry: &OutboxEntry) -> Result<(), StoreError> {
        let okey = outbox_key(&entry.msg, entry.id);
        let dkey = entry.id.to_be_bytes();
        (&self.outbox, &self.dead)
            .transaction(|(outbox, dead)| {
                outbox.remove(okey.as_slice())?;
                dead.insert(&dkey, enc(entry))?;
                Ok::<_, ConflictableTransactionError<()>>(())
            })
            .map_err(|e| match e {
                TransactionError::Storage(e) => StoreError::Db(e),
                TransactionError::Abort(()) => StoreError::Corrupt("aborted".into()),
            })
    }

    fn dead_letters(&self, limit: usize) -> Result<Vec<OutboxEntry>, StoreError> {
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

    fn resend_dead(&self, id: u64, now_ms: u64) -> Result<bool, StoreError> {
        let dkey = id.to_be_bytes();
        let Some(v) = self.dead.get(dkey)? else {
            return Ok(false);
        };
        let mut entry: OutboxEntry = dec(&v)?;
        entry.attempts = 0;
        entry.next_at_ms = now_ms;
        entry.created_ms = now_ms;
        entry.last_error = None;
        (&self.outbox, &self.dead)
            .transaction(|(outbox, dead)| {
                if dead.remove(&dkey)?.is_none() {
                    return Ok(());
                }
                // A fresh id: the entry queues behind what is waiting now, and
                // the dispatchers, which look for ids above the last they saw,
                // find it at once.
                let mut entry = entry.clone();
                entry.id = outbox.generate_id()?;
                outbox.insert(outbox_key(&entry.msg, entry.id), enc(&entry))?;
                Ok::<_, ConflictableTransactionError<()>>(())
            })
            .map_err(|e| match e {
                TransactionError::Storage(e) => StoreError::Db(e),
                TransactionError::Abort(()) => StoreError::Corrupt("aborted".into()),
            })?;
        Ok(true)
    }

    fn queue_stats(&self) -> Result<Vec<QueueStats>, StoreError> {
        let mut out: Vec<QueueStats> = Vec::new();
        for kv in self.outbox.iter() {
            let (_, v) = kv?;
            let e: OutboxEntry = dec(&v)?;
            match out.iter_mut().find(|s| s.account == e.msg.account) {
                Some(s) => {
                    s.depth += 1;
                    s.oldest_ms = Some(s.oldest_ms.map_or(e.created_ms, |o| o.min(e.created_ms)));
                }
                None => out.push(QueueStats {
                    account: e.msg.account.clone(),
                    depth: 1,
                    oldest_ms: Some(e.created_ms),
                }),
            }
        }
        Ok(out)
    }

    fn copies_of(&self, origin: &str) -> Result<Vec<CopyRecord>, StoreError> {
        self.copies
            .scan_prefix(prefix(origin))
            .map(|kv| {
                let (_, v) = kv?;
                dec(&v)
            })
            .collect()
    }

    fn delivery_states(&self, origin: &str) -> Result<Vec<TargetDelivery>, StoreError> {
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
        // The outbox and the dead letters are keyed by account and id, not by
        // origin: a scan. Both stay small (a healthy outbox is nearly empty);
        // a shared database would index `origin`.
        let queued = |tree: &sled::Tree| -> Result<Vec<OutboxEntry>, StoreError> {
            let mut v = Vec::new();
            for kv in tree.iter() {
                let (_, bytes) = kv?;
                let e: OutboxEntry = dec(&bytes)?;
                if e.origin == origin {
                    v.push(e);
                }
            }
            Ok(v)
        };
        for e in queued(&self.outbox)? {
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
        for e in queued(&self.dead)? {
            add(TargetDelivery {
                group: e.msg.group.clone(),
                state: DeliveryState::Dead,
                attempts: e.attempts,
                last_error: e.last_error.clone(),
                at_ms: e.created_ms,
                entry_id: Some(e.id),
            });
        }
        for kv in self.held.iter() {
            let (_, bytes) = kv?;
            let h: HeldAlert = dec(&bytes)?;
            if h.origin != origin {
                continue;
            }
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

    fn recent_alerts(&self, limit: usize) -> Result<Vec<AlertRecord>, StoreError> {
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

    fn sandbox_append(
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

    fn sandbox_list(&self, chat: &str, limit: usize) -> Result<Vec<SandboxMessage>, StoreError> {
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

    fn due_held(&self, now_ms: u64, limit: usize) -> Result<Vec<HeldAlert>, StoreError> {
        self.held
            .range(..(now_ms + 1).to_be_bytes().to_vec())
            .take(limit)
            .map(|kv| {
                let (_, v) = kv?;
                dec(&v)
            })
            .collect()
    }

    fn release_held(&self, h: &HeldAlert, forward: bool, now_ms: u64) -> Result<usize, StoreError> {
        let key = held_key(h);
        let res = (&self.held, &self.outbox).transaction(|(held, outbox)| {
            // Released already (by another path): nothing to do, nothing doubled.
            if held.remove(key.as_slice())?.is_none() {
                return Ok(0);
            }
            let mut n = 0;
            if forward {
                for msg in &h.outbox {
                    let id = outbox.generate_id()?;
                    let entry = OutboxEntry {
                        id,
                        origin: h.origin.clone(),
                        msg: msg.clone(),
                        created_ms: now_ms,
                        attempts: 0,
                        next_at_ms: 0,
                        last_error: None,
                    };
                    outbox.insert(outbox_key(msg, id), enc(&entry))?;
                    n += 1;
                }
            }
            Ok::<_, ConflictableTransactionError<()>>(n)
        });
        res.map_err(|e| match e {
            TransactionError::Storage(e) => StoreError::Db(e),
            TransactionError::Abort(()) => StoreError::Corrupt("aborted".into()),
        })
    }

    fn purge_before(&self, cutoff_ms: u64) -> Result<usize, StoreError> {
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
            }
            self.alerts.remove(k)?;
            n += 1;
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
        Outbound {
            account: AccountId::parse("sandbox").unwrap(),
            group: GroupId::parse(group).unwrap(),
            chat: ChatId::parse(group).unwrap(),
            text: "[Veulen] test".into(),
            reply_to: None,
            kind: OutboundKind::Forward,
        }
    }

    fn write(key: &str) -> IngestWrite {
        IngestWrite {
            dedup_key: key.into(),
            at_ms: 1_000,
            outbox: vec![msg("heers"), msg("batsheers")],
            reminder: None,
            alert: None,
            held: None,
        }
    }

    #[test]
    fn a_message_seen_twice_is_written_once() {
        let s = SledStore::temporary().unwrap();
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
        let s = SledStore::temporary().unwrap();
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
        let s = SledStore::temporary().unwrap();
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
        let s = SledStore::temporary().unwrap();
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
    fn pending_entries_come_in_priority_order_and_after_a_cursor() {
        let s = SledStore::temporary().unwrap();
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
        let s = SledStore::temporary().unwrap();
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
    fn the_outbox_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = SledStore::open(dir.path()).unwrap();
            s.commit_ingest(&write("o1")).unwrap();
            futures_flush(&s);
        }
        let s = SledStore::open(dir.path()).unwrap();
        let acc = AccountId::parse("sandbox").unwrap();
        assert_eq!(s.pending(&acc, 100).unwrap().len(), 2);
        assert!(s.is_seen("o1").unwrap());
    }

    #[test]
    fn a_held_alert_is_released_once() {
        let s = SledStore::temporary().unwrap();
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
        let s = std::sync::Arc::new(SledStore::open(dir.path()).unwrap());
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

    #[test]
    fn the_dashboard_sees_each_copy_delivered_pending_retrying_dead_or_held() {
        let s = SledStore::temporary().unwrap();
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

    fn futures_flush(s: &SledStore) {
        s.db.flush().unwrap();
    }
}
