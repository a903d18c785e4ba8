//! The newest alert records, decoded, in memory.
//!
//! Every new alert is compared with up to a hundred recent ones (is it a
//! second report of the same incident?). Reading and decoding those from
//! sled for each alert was most of the cost of taking an alert in; this
//! cache serves them instead. The store stays the truth: the cache holds
//! exactly the stored records whose key is at or above its `floor` (all of
//! them when there is no floor), and is refreshed from the store after each
//! write that touches an alert record, under its lock, so a refresh that
//! reads later also writes later.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::AlertRecord;

/// How many records the cache keeps.
pub(super) const CAPACITY: usize = 256;

pub(super) struct RecentAlerts {
    by_key: BTreeMap<Vec<u8>, Arc<AlertRecord>>,
    /// Every stored record with a key at or above this one is cached;
    /// `None`: every stored record is.
    floor: Option<Vec<u8>>,
}

impl RecentAlerts {
    /// From the newest stored records, newest first, as many as
    /// [`CAPACITY`] or all there are.
    pub(super) fn from_newest(newest_first: Vec<(Vec<u8>, AlertRecord)>) -> Self {
        let floor = (newest_first.len() >= CAPACITY)
            .then(|| newest_first.last().map(|(k, _)| k.clone()))
            .flatten();
        Self {
            by_key: newest_first
                .into_iter()
                .map(|(k, a)| (k, Arc::new(a)))
                .collect(),
            floor,
        }
    }

    /// The stored record under `key` is now `record` (`None`: removed).
    pub(super) fn set(&mut self, key: Vec<u8>, record: Option<AlertRecord>) {
        if self.floor.as_ref().is_some_and(|f| key < *f) {
            // Older than what the cache holds; it was never asked for.
            return;
        }
        match record {
            Some(a) => {
                self.by_key.insert(key, Arc::new(a));
            }
            None => {
                self.by_key.remove(&key);
            }
        }
        while self.by_key.len() > CAPACITY {
            self.by_key.pop_first();
            // Everything from the new oldest entry on is still here.
            self.floor = self.by_key.keys().next().cloned();
        }
    }

    /// The newest `limit` records with a key at or above `from`, newest
    /// first, or `None` when the cache cannot tell (some may be older than
    /// what it holds).
    pub(super) fn since(&self, from: &[u8], limit: usize) -> Option<Vec<Arc<AlertRecord>>> {
        let out: Vec<Arc<AlertRecord>> = self
            .by_key
            .range(from.to_vec()..)
            .rev()
            .take(limit)
            .map(|(_, a)| a.clone())
            .collect();
        let covered = match &self.floor {
            None => true,
            Some(f) => f.as_slice() <= from || out.len() >= limit,
        };
        covered.then_some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::GroupId;

    fn rec(at: u64) -> (Vec<u8>, AlertRecord) {
        let a = AlertRecord {
            origin: format!("o{at}"),
            group: GroupId::parse("veulen").unwrap(),
            message_id: at.to_string(),
            categories: vec![],
            confirmed: true,
            at_ms: at,
            targets: vec![],
            text: String::new(),
            sender: String::new(),
            retracted: false,
            all_clear: false,
            sightings: vec![],
            forced: false,
            topic: None,
        };
        (at.to_be_bytes().to_vec(), a)
    }

    fn ats(v: &[Arc<AlertRecord>]) -> Vec<u64> {
        v.iter().map(|a| a.at_ms).collect()
    }

    #[test]
    fn a_cache_of_everything_answers_every_range() {
        let c = RecentAlerts::from_newest(vec![rec(30), rec(20), rec(10)]);
        assert_eq!(
            ats(&c.since(&0u64.to_be_bytes(), 10).unwrap()),
            [30, 20, 10]
        );
        assert_eq!(ats(&c.since(&15u64.to_be_bytes(), 10).unwrap()), [30, 20]);
        assert_eq!(ats(&c.since(&0u64.to_be_bytes(), 2).unwrap()), [30, 20]);
    }

    #[test]
    fn a_full_cache_declines_a_range_it_may_not_hold_whole() {
        let newest: Vec<_> = (0..CAPACITY as u64).rev().map(|i| rec(1000 + i)).collect();
        let mut c = RecentAlerts::from_newest(newest);
        // Older records may exist in the store below the floor (1000).
        assert!(c.since(&0u64.to_be_bytes(), CAPACITY + 1).is_none());
        // ... but the newest 5 are the newest 5 whatever lies below.
        assert_eq!(c.since(&0u64.to_be_bytes(), 5).unwrap().len(), 5);
        assert_eq!(
            c.since(&1000u64.to_be_bytes(), 1000).unwrap().len(),
            CAPACITY
        );
        // A new record pushes the oldest out and raises the floor.
        let (k, a) = rec(5000);
        c.set(k, Some(a));
        assert!(c.since(&1000u64.to_be_bytes(), 1000).is_none());
        assert_eq!(
            c.since(&1001u64.to_be_bytes(), 1000).unwrap().len(),
            CAPACITY
        );
        // A record older than the floor is not taken in.
        let (k, a) = rec(3);
        c.set(k, Some(a));
        assert_eq!(
            c.since(&1001u64.to_be_bytes(), 1000).unwrap().len(),
            CAPACITY
        );
    }

    #[test]
    fn a_changed_or_removed_record_is_seen_so() {
        let mut c = RecentAlerts::from_newest(vec![rec(20), rec(10)]);
        let (k, mut a) = rec(20);
        a.retracted = true;
        c.set(k, Some(a));
        assert!(c.since(&0u64.to_be_bytes(), 10).unwrap()[0].retracted);
        c.set(10u64.to_be_bytes().to_vec(), None);
        assert_eq!(ats(&c.since(&0u64.to_be_bytes(), 10).unwrap()), [20]);
    }
}
