//! A dispatcher's decoded pending entries, one ordered queue per chat.
//!
//! Only the head of a chat's queue may be sent (strict order within a
//! chat), so choosing what to send next looks at one entry per chat, never
//! at the whole backlog: with thousands of entries queued for a few dozen
//! chats, that is the difference between a few dozen and thousands of
//! steps for every finished send.

use std::collections::{BTreeMap, HashMap};

use crate::config::ChatId;
use crate::store::OutboxEntry;

/// An entry's place in the outbox order: (priority, id).
pub(super) type Key = (u8, u64);

fn key_of(e: &OutboxEntry) -> Key {
    (e.msg.kind.priority(), e.id)
}

#[derive(Default)]
pub(super) struct Queue {
    chats: HashMap<ChatId, BTreeMap<Key, OutboxEntry>>,
    len: usize,
}

impl Queue {
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Adds an entry unless one with its key is there already (a decoded
    /// entry may carry a newer retry state than the stored one).
    pub(super) fn insert(&mut self, e: OutboxEntry) {
        let key = key_of(&e);
        let q = self.chats.entry(e.msg.chat.clone()).or_default();
        if let std::collections::btree_map::Entry::Vacant(slot) = q.entry(key) {
            slot.insert(e);
            self.len += 1;
        }
    }

    /// Puts an entry back (after a failed send), replacing what is there.
    pub(super) fn put_back(&mut self, e: OutboxEntry) {
        let key = key_of(&e);
        let q = self.chats.entry(e.msg.chat.clone()).or_default();
        if q.insert(key, e).is_none() {
            self.len += 1;
        }
    }

    pub(super) fn get(&self, chat: &ChatId, key: &Key) -> Option<&OutboxEntry> {
        self.chats.get(chat)?.get(key)
    }

    pub(super) fn remove(&mut self, chat: &ChatId, key: &Key) -> Option<OutboxEntry> {
        let q = self.chats.get_mut(chat)?;
        let e = q.remove(key)?;
        self.len -= 1;
        if q.is_empty() {
            self.chats.remove(chat);
        }
        Some(e)
    }

    /// The first entry of every chat's queue, in outbox order (alerts
    /// first, then by arrival).
    pub(super) fn heads(&self) -> Vec<(Key, &OutboxEntry)> {
        let mut heads: Vec<(Key, &OutboxEntry)> = self
            .chats
            .values()
            .filter_map(|q| q.first_key_value().map(|(k, e)| (*k, e)))
            .collect();
        heads.sort_unstable_by_key(|(k, _)| *k);
        heads
    }

    /// Keeps only the chats `keep` says yes to.
    pub(super) fn retain_chats(&mut self, mut keep: impl FnMut(&ChatId) -> bool) {
        self.chats.retain(|chat, _| keep(chat));
        self.len = self.chats.values().map(BTreeMap::len).sum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AccountId, GroupId};
    use crate::message::{Outbound, OutboundKind};

    fn entry(id: u64, chat: &str, kind: OutboundKind) -> OutboxEntry {
        OutboxEntry {
            id,
            origin: "o".into(),
            msg: Outbound {
                account: AccountId::parse("bot").unwrap(),
                group: GroupId::parse("heers").unwrap(),
                chat: ChatId::parse(chat).unwrap(),
                text: format!("#{id}"),
                reply_to: None,
                kind,
                thread: None,
                op: Default::default(),
                topic: None,
                media: None,
            },
            created_ms: 0,
            attempts: 0,
            next_at_ms: 0,
            last_error: None,
        }
    }

    fn ids(q: &Queue) -> Vec<u64> {
        q.heads().iter().map(|(_, e)| e.id).collect()
    }

    #[test]
    fn heads_are_one_per_chat_in_outbox_order() {
        let mut q = Queue::default();
        q.insert(entry(1, "a", OutboundKind::Reminder));
        q.insert(entry(2, "a", OutboundKind::Forward));
        q.insert(entry(3, "b", OutboundKind::FollowUp));
        q.insert(entry(4, "c", OutboundKind::Forward));
        q.insert(entry(4, "c", OutboundKind::Forward));
        assert_eq!(q.len(), 4, "an entry taken twice counts once");
        // a's head is its alert (2), ahead of its older reminder; alerts of
        // every chat come before c follow-up in b.
        assert_eq!(ids(&q), [2, 4, 3]);
        let a = ChatId::parse("a").unwrap();
        let e = q
            .remove(&a, &(OutboundKind::Forward.priority(), 2))
            .unwrap();
        assert_eq!(ids(&q), [4, 3, 1]);
        q.put_back(e);
        assert_eq!(ids(&q), [2, 4, 3]);
        assert_eq!(q.len(), 4);
        q.retain_chats(|c| c.as_str() == "a");
        assert_eq!(q.len(), 2);
        assert_eq!(ids(&q), [2]);
        assert!(q.get(&a, &(OutboundKind::Reminder.priority(), 1)).is_some());
    }
}
