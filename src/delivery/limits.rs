//! Send limits, per chat and per account.
//!
//! Each limit "N sends per period" is kept as a sliding window of the last N
//! send times: a send is allowed when fewer than N sends happened in the last
//! period. This is stricter than a token bucket with continuous refill (which
//! would allow a 21st message 3 s after 20 quick ones under "20/1m") and is how
//! platforms count, so a network that follows these limits gets no 429s.

use std::collections::{HashMap, VecDeque};

use crate::config::{ChatId, Limits, Window};

#[derive(Debug, Clone)]
struct SlidingLog {
    window: Window,
    sent: VecDeque<u64>,
}

impl SlidingLog {
    fn new(window: Window) -> Self {
        Self {
            window,
            sent: VecDeque::with_capacity(window.count as usize),
        }
    }

    /// The earliest time (ms) at which one more send fits.
    fn ready_at(&self, now: u64) -> u64 {
        if (self.sent.len() as u32) < self.window.count {
            return now;
        }
        // The oldest of the last N sends must leave the window first.
        let oldest = self.sent.front().copied().unwrap_or(0);
        (oldest + self.window.period.as_millis() as u64).max(now)
    }

    fn record(&mut self, at: u64) {
        if self.sent.len() as u32 >= self.window.count {
            self.sent.pop_front();
        }
        self.sent.push_back(at);
    }
}

/// The limits of one account, with the state of each of its chats.
#[derive(Debug)]
pub struct Limiter {
    limits: Limits,
    account: Vec<SlidingLog>,
    chats: HashMap<ChatId, Vec<SlidingLog>>,
    paused_chat: HashMap<ChatId, u64>,
    paused_account: u64,
}

impl Limiter {
    pub fn new(limits: Limits) -> Self {
        Self {
            account: limits
                .per_account
                .iter()
                .copied()
                .map(SlidingLog::new)
                .collect(),
            limits,
            chats: HashMap::new(),
            paused_chat: HashMap::new(),
            paused_account: 0,
        }
    }

    /// Follows a config reload, keeping what was sent (so a reload is not a
    /// way around the limits).
    pub fn update(&mut self, limits: &Limits) {
        if &self.limits == limits {
            return;
        }
        let keep_account: Vec<u64> = self
            .account
            .iter()
            .flat_map(|l| l.sent.iter().copied())
            .collect();
        *self = Limiter {
            paused_chat: std::mem::take(&mut self.paused_chat),
            paused_account: self.paused_account,
            ..Limiter::new(limits.clone())
        };
        let mut times = keep_account;
        times.sort_unstable();
        times.dedup();
        for t in times {
            for l in &mut self.account {
                l.record(t);
            }
        }
    }

    pub fn max_in_flight(&self) -> usize {
        self.limits.max_in_flight
    }

    /// The earliest time (ms) at which a send to `chat` is allowed.
    pub fn ready_at(&self, chat: &ChatId, now: u64) -> u64 {
        let mut t = now.max(self.paused_account);
        if let Some(p) = self.paused_chat.get(chat) {
            t = t.max(*p);
        }
        for l in &self.account {
            t = t.max(l.ready_at(now));
        }
        if let Some(logs) = self.chats.get(chat) {
            for l in logs {
                t = t.max(l.ready_at(now));
            }
        }
        t
    }

    /// Counts a send to `chat` at `at` (call when the send starts).
    pub fn record(&mut self, chat: &ChatId, at: u64) {
        for l in &mut self.account {
            l.record(at);
        }
        let per_chat = &self.limits.per_chat;
        let logs = self
            .chats
            .entry(chat.clone())
            .or_insert_with(|| per_chat.iter().copied().map(SlidingLog::new).collect());
        for l in logs {
            l.record(at);
        }
    }

    /// The platform said "wait" for this chat.
    pub fn pause_chat(&mut self, chat: &ChatId, until: u64) {
        let p = self.paused_chat.entry(chat.clone()).or_insert(0);
        *p = (*p).max(until);
    }

    /// The platform said "wait" for the whole account.
    pub fn pause_account(&mut self, until: u64) {
        self.paused_account = self.paused_account.max(until);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn telegram() -> Limiter {
        Limiter::new(Limits {
            per_chat: vec![
                Window::parse("1/1s").unwrap(),
                Window::parse("20/1m").unwrap(),
            ],
            per_account: vec![Window::parse("30/1s").unwrap()],
            max_in_flight: 4,
        })
    }

    #[test]
    fn one_message_per_second_in_a_chat() {
        let mut l = telegram();
        let chat = ChatId::parse("-100").unwrap();
        assert_eq!(l.ready_at(&chat, 0), 0);
        l.record(&chat, 0);
        assert_eq!(l.ready_at(&chat, 10), 1_000);
        let other = ChatId::parse("-200").unwrap();
        assert_eq!(l.ready_at(&other, 10), 10, "other chats are not held back");
    }

    #[test]
    fn the_21st_message_in_a_minute_waits_for_the_first_to_leave_the_window() {
        let mut l = telegram();
        let chat = ChatId::parse("-100").unwrap();
        let mut t = 0;
        for _ in 0..20 {
            t = l.ready_at(&chat, t);
            l.record(&chat, t);
        }
        assert_eq!(t, 19_000);
        assert_eq!(l.ready_at(&chat, 20_000), 60_000);
    }

    #[test]
    fn a_pause_holds_the_chat_exactly_until_then() {
        let mut l = telegram();
        let chat = ChatId::parse("-100").unwrap();
        l.pause_chat(&chat, 5_000);
        assert_eq!(l.ready_at(&chat, 0), 5_000);
        l.pause_account(7_000);
        assert_eq!(l.ready_at(&ChatId::parse("-9").unwrap(), 0), 7_000);
    }

    #[test]
    fn a_window_parses_counts_and_periods() {
        assert_eq!(
            Window::parse("20/1m").unwrap(),
            Window {
                count: 20,
                period: Duration::from_secs(60)
            }
        );
        assert_eq!(
            Window::parse("30/s").unwrap().period,
            Duration::from_secs(1)
        );
        assert!(Window::parse("0/1s").is_err());
        assert!(Window::parse("20").is_err());
    }
}
