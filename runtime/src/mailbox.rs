//! Bounded mailboxes owned by a pid.
//!
//! The mailbox outlives any one wasm instance (a hot swap replaces the instance
//! under the same pid), so it lives in the process entry, not in the store.
//! Signals turned into messages (EXIT, DOWN) bypass the bound: a signal must
//! never be lost because a mailbox is full.

use crate::reason::Msg;
use parking_lot::Mutex;
use std::collections::VecDeque;
use tokio::sync::Notify;
use tokio::time::Instant;

/// The send failed because the receiver's mailbox holds its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MailboxFull;

pub struct Mailbox {
    queue: Mutex<VecDeque<Msg>>,
    notify: Notify,
    capacity: usize,
    /// Messages queued so far; written under the queue's lock only.
    received: std::sync::atomic::AtomicU64,
    /// Whether to count them (`NodeConfig::metrics`).
    count: bool,
}

impl Mailbox {
    #[cfg(test)]
    pub fn new(capacity: usize) -> Self {
        Self::counted(capacity, true)
    }

    /// A mailbox that counts what it queues when `count` is set.
    pub fn counted(capacity: usize, count: bool) -> Self {
        Mailbox {
            queue: Mutex::new(VecDeque::new()),
            notify: Notify::new(),
            capacity,
            received: std::sync::atomic::AtomicU64::new(0),
            count,
        }
    }

    /// Messages queued so far (the observer's "messages in").
    pub fn received(&self) -> u64 {
        self.received.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Queue a message; `system` messages (signals) ignore the bound.
    pub fn push(&self, msg: Msg, system: bool) -> Result<(), MailboxFull> {
        {
            let mut q = self.queue.lock();
            if !system && q.len() >= self.capacity {
                return Err(MailboxFull);
            }
            q.push_back(msg);
            if self.count {
                // Under the lock: one writer at a time, no locked add.
                crate::stats::bump(&self.received);
            }
        }
        // One waiter at most (the owner); a stored permit covers the race
        // between its emptiness check and its wait.
        self.notify.notify_one();
        Ok(())
    }

    /// Queue a system message ahead of everything else (hot-swap requests:
    /// they must not wait behind a backlog, and nothing queued is lost).
    pub fn push_front(&self, msg: Msg) {
        self.queue.lock().push_front(msg);
        self.notify.notify_one();
    }

    /// Messages waiting (the observer's queue length, least-loaded routing).
    pub fn len(&self) -> usize {
        self.queue.lock().len()
    }

    /// Take the oldest message, or with `reference` the oldest one matching
    /// it, skipping the first `skip` entries already known not to match.
    fn take_from(&self, reference: Option<u64>, skip: &mut usize) -> Option<Msg> {
        let mut q = self.queue.lock();
        match reference {
            None => q.pop_front(),
            Some(r) => {
                let start = (*skip).min(q.len());
                let found = q.iter().skip(start).position(|m| m.matches_ref(r));
                match found {
                    Some(i) => q.remove(start + i),
                    None => {
                        *skip = q.len();
                        None
                    }
                }
            }
        }
    }

    /// Take without waiting.
    pub fn try_take(&self, reference: Option<u64>) -> Option<Msg> {
        self.take_from(reference, &mut 0)
    }

    /// Wait for a message until `deadline`. The deadline is fixed: messages
    /// that do not match a selective receive do not extend it.
    pub async fn take(&self, reference: Option<u64>, deadline: Option<Instant>) -> Option<Msg> {
        let mut skip = 0;
        if let Some(m) = self.take_from(reference, &mut skip) {
            return Some(m);
        }
        let Some(d) = deadline else {
            loop {
                self.notify.notified().await;
                if let Some(m) = self.take_from(reference, &mut skip) {
                    return Some(m);
                }
            }
        };
        // One timer for the whole wait, however many messages pass by.
        let timer = tokio::time::sleep_until(d);
        tokio::pin!(timer);
        loop {
            tokio::select! {
                biased;
                _ = self.notify.notified() => {
                    if let Some(m) = self.take_from(reference, &mut skip) {
                        return Some(m);
                    }
                }
                _ = &mut timer => return self.take_from(reference, &mut skip),
            }
        }
    }

    /// Remove a queued DOWN for `reference` (demonitor with flush).
    pub fn remove_down(&self, reference: u64) {
        self.queue
            .lock()
            .retain(|m| !matches!(m, Msg::Down { reference: r, .. } if *r == reference));
    }

    /// Drain everything (used when a process ends, so payloads are freed
    /// now), handing back the HTTP requests it never received.
    #[allow(clippy::vec_box)] // each box goes back to its listener as it is
    pub fn clear(&self) -> Vec<Box<crate::http::HttpRequest>> {
        self.queue
            .lock()
            .drain(..)
            .filter_map(|m| match m {
                Msg::Http(r) => Some(r),
                _ => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pid::{NodeId, Pid};
    use crate::reason::ExitReason;
    use std::time::Duration;

    fn pid() -> Pid {
        Pid {
            node: NodeId([0; 32]),
            seq: 1,
        }
    }

    #[test]
    fn bound_applies_to_data_but_not_signals() {
        let mb = Mailbox::new(1);
        mb.push(Msg::Data(vec![1]), false).unwrap();
        assert_eq!(mb.push(Msg::Data(vec![2]), false), Err(MailboxFull));
        let down = Msg::Down {
            sender: pid(),
            reference: 1,
            reason: ExitReason::Normal,
        };
        mb.push(down, true).unwrap();
        assert_eq!(mb.len(), 2);
    }

    #[test]
    fn selective_take_keeps_order_of_the_rest() {
        let mb = Mailbox::new(10);
        mb.push(Msg::Data(vec![1]), false).unwrap();
        let tagged = Msg::Tagged {
            sender: pid(),
            reference: 7,
            payload: vec![9],
        };
        mb.push(tagged.clone(), false).unwrap();
        mb.push(Msg::Data(vec![2]), false).unwrap();
        assert_eq!(mb.try_take(Some(7)), Some(tagged));
        assert_eq!(mb.try_take(None), Some(Msg::Data(vec![1])));
        assert_eq!(mb.try_take(None), Some(Msg::Data(vec![2])));
    }

    #[tokio::test(start_paused = true)]
    async fn deadline_is_not_reset_by_non_matching_messages() {
        let mb = std::sync::Arc::new(Mailbox::new(100));
        let feeder = mb.clone();
        tokio::spawn(async move {
            for i in 0..20u8 {
                tokio::time::sleep(Duration::from_millis(10)).await;
                feeder.push(Msg::Data(vec![i]), false).unwrap();
            }
        });
        let start = Instant::now();
        let got = mb
            .take(Some(99), Some(start + Duration::from_millis(50)))
            .await;
        assert_eq!(got, None);
        let waited = start.elapsed();
        assert!(waited >= Duration::from_millis(50) && waited < Duration::from_millis(60));
        assert_eq!(mb.len(), 4);
    }
}
