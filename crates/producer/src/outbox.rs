//! `Outbox`: readings generated but not yet acknowledged, one queue per
//! unicorn, oldest first.
//!
//! Only the head of a queue is ever sent. A head that failed waits out its
//! backoff at the front of its queue, so a unicorn's later readings never
//! overtake an earlier one; other unicorns carry on meanwhile.

use std::collections::VecDeque;

use tokio::time::Instant;

/// One reading waiting for Kinesis to acknowledge it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// Second of the run it belongs to (0 is the first): its age.
    pub second: u64,
    /// The reading's JSON, exactly as it is sent and written to the ledger.
    pub data: String,
    /// Calls that carried it so far.
    pub attempts: u32,
}

/// One unicorn's queue and its backoff.
#[derive(Debug, Clone, Default)]
struct Queue {
    /// Its readings, oldest first.
    pending: VecDeque<Pending>,
    /// The head may not be sent before this instant (set after a failure).
    not_before: Option<Instant>,
}

/// Per-unicorn queues of unacknowledged readings.
#[derive(Debug, Clone)]
pub struct Outbox {
    /// One queue per unicorn, indexed like the fleet.
    queues: Vec<Queue>,
    /// Total readings queued, to bound memory without scanning.
    len: usize,
}

impl Outbox {
    /// An empty outbox for `unicorns` unicorns.
    pub fn new(unicorns: usize) -> Self {
        Self {
            queues: vec![Queue::default(); unicorns],
            len: 0,
        }
    }

    /// Readings queued, all unicorns together.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Queues a new reading of `unicorn`, behind its older ones.
    pub fn push(&mut self, unicorn: usize, second: u64, data: String) {
        self.queues[unicorn].pending.push_back(Pending {
            second,
            data,
            attempts: 0,
        });
        self.len += 1;
    }

    /// The oldest reading of `unicorn`.
    pub fn head(&self, unicorn: usize) -> Option<&Pending> {
        self.queues.get(unicorn).and_then(|q| q.pending.front())
    }

    /// Unicorns whose head may be sent at `now`, oldest head first (ties by
    /// fleet order).
    pub fn ready(&self, now: Instant) -> Vec<usize> {
        let mut ready: Vec<(u64, usize)> = self
            .queues
            .iter()
            .enumerate()
            .filter(|(_, q)| q.not_before.is_none_or(|t| t <= now))
            .filter_map(|(i, q)| q.pending.front().map(|p| (p.second, i)))
            .collect();
        ready.sort_unstable();
        ready.into_iter().map(|(_, i)| i).collect()
    }

    /// The second of the oldest reading waiting, if any.
    pub fn oldest_second(&self) -> Option<u64> {
        self.queues
            .iter()
            .filter_map(|q| q.pending.front().map(|p| p.second))
            .min()
    }

    /// Counts a call carrying `unicorn`'s head.
    pub fn attempted(&mut self, unicorn: usize) {
        if let Some(head) = self.queues[unicorn].pending.front_mut() {
            head.attempts += 1;
        }
    }

    /// Removes `unicorn`'s head, which was acknowledged or given up on.
    pub fn pop(&mut self, unicorn: usize) -> Option<Pending> {
        let queue = &mut self.queues[unicorn];
        queue.not_before = None;
        let head = queue.pending.pop_front();
        if head.is_some() {
            self.len -= 1;
        }
        head
    }

    /// Holds `unicorn`'s head (and so its whole queue) back until `until`.
    pub fn defer(&mut self, unicorn: usize, until: Instant) {
        self.queues[unicorn].not_before = Some(until);
    }

    /// The earliest instant after `now` at which a held-back head becomes
    /// sendable, if any is held back.
    pub fn next_release(&self, now: Instant) -> Option<Instant> {
        self.queues
            .iter()
            .filter(|q| !q.pending.is_empty())
            .filter_map(|q| q.not_before)
            .filter(|&t| t > now)
            .min()
    }

    /// Empties every queue, returning how many readings each unicorn lost:
    /// used when the run must stop without sending them.
    pub fn abandon(&mut self) -> Vec<u64> {
        self.len = 0;
        self.queues
            .iter_mut()
            .map(|q| {
                let n = q.pending.len() as u64;
                q.pending.clear();
                q.not_before = None;
                n
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn heads_come_oldest_first_and_held_back_ones_wait() {
        let now = Instant::now();
        let mut outbox = Outbox::new(3);
        outbox.push(0, 5, "a5".into());
        outbox.push(1, 3, "b3".into());
        outbox.push(1, 4, "b4".into());
        outbox.push(2, 4, "c4".into());
        assert_eq!(outbox.len(), 4);
        assert_eq!(outbox.ready(now), [1, 2, 0]);
        assert_eq!(outbox.oldest_second(), Some(3));

        outbox.attempted(1);
        outbox.defer(1, now + Duration::from_millis(100));
        assert_eq!(outbox.ready(now), [2, 0]);
        assert_eq!(
            outbox.next_release(now),
            Some(now + Duration::from_millis(100))
        );
        let later = now + Duration::from_millis(100);
        assert_eq!(outbox.ready(later), [1, 2, 0]);
        assert_eq!(outbox.head(1).unwrap().attempts, 1);
        assert_eq!(outbox.head(1).unwrap().data, "b3");

        assert_eq!(outbox.pop(1).unwrap().data, "b3");
        assert_eq!(outbox.head(1).unwrap().data, "b4");
        assert_eq!(outbox.next_release(now), None);
        assert_eq!(outbox.abandon(), [1, 1, 1]);
        assert!(outbox.is_empty());
    }
}
