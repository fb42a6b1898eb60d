//! `ShardPacer`: keeps each shard under its write limits (1,000 records and
//! 1 MiB per second) before anything is sent, so that a large fleet or a
//! high `--time-scale` slows the producer down instead of provoking a storm
//! of throttled writes.
//!
//! The limit is enforced over a sliding window: at every instant, the records
//! admitted for a shard during the preceding second stay within the limits.
//! That also bounds every fixed one-second window, however the service aligns
//! its own. A record is admitted when its call is planned, then charged at
//! the instant the call returns ([`ShardPacer::settle`]): the latest moment
//! the service can have counted it. So a fast call after a slow one cannot
//! land two seconds' worth of records in one of the service's windows.
//! Time is tokio's, so tests can run it paused.
//!
//! A KPL aggregated record (`--aggregate`) is one record to the service
//! however many readings it carries, and its full size (data plus partition
//! key) in bytes: it is admitted like any record, its size chosen beforehand
//! to fit the shard's [`ShardPacer::room`].

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// Per-shard write limits of Kinesis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardLimits {
    /// Records a shard accepts per second.
    pub records_per_second: u32,
    /// Bytes (data plus partition key) a shard accepts per second.
    pub bytes_per_second: u64,
}

impl Default for ShardLimits {
    /// The limits of a provisioned shard: 1,000 records/s and 1 MiB/s.
    fn default() -> Self {
        Self {
            records_per_second: 1_000,
            bytes_per_second: 1024 * 1024,
        }
    }
}

/// The width of the window the limits apply to.
const WINDOW: Duration = Duration::from_secs(1);

/// What was admitted for one shard during the last second.
#[derive(Debug, Clone, Default)]
struct ShardWindow {
    /// Admissions, oldest first: when, how many records, how many bytes.
    /// Admissions at the same instant share one entry.
    admitted: VecDeque<(Instant, u32, u64)>,
    /// Sum of records in `admitted`.
    records: u32,
    /// Sum of bytes in `admitted`.
    bytes: u64,
}

impl ShardWindow {
    /// Forgets admissions that left the window by `now`.
    fn expire(&mut self, now: Instant) {
        while let Some(&(at, records, bytes)) = self.admitted.front() {
            if at + WINDOW > now {
                break;
            }
            self.admitted.pop_front();
            self.records -= records;
            self.bytes -= bytes;
        }
    }

    /// Counts one record of `bytes` admitted at `now`.
    fn count(&mut self, bytes: u64, now: Instant) {
        match self.admitted.back_mut() {
            Some((at, records, total)) if *at == now => {
                *records += 1;
                *total += bytes;
            }
            _ => self.admitted.push_back((now, 1, bytes)),
        }
        self.records += 1;
        self.bytes += bytes;
    }

    /// Whether one more record of `bytes` fits.
    fn fits(&self, limits: &ShardLimits, bytes: u64) -> bool {
        self.records < limits.records_per_second
            && self.bytes.saturating_add(bytes) <= limits.bytes_per_second
    }
}

/// Sliding-window admission control, one window per shard.
#[derive(Debug, Clone)]
pub struct ShardPacer {
    /// The limits every shard gets.
    limits: ShardLimits,
    /// One window per shard, indexed like the [`crate::shards::ShardMap`].
    windows: Vec<ShardWindow>,
}

impl ShardPacer {
    /// A pacer for `shards` shards, nothing admitted yet.
    pub fn new(limits: ShardLimits, shards: usize) -> Self {
        Self {
            limits,
            windows: vec![ShardWindow::default(); shards],
        }
    }

    /// The limits applied.
    pub fn limits(&self) -> ShardLimits {
        self.limits
    }

    /// Admits one record of `bytes` for `shard` at `now` if it fits in the
    /// shard's window, and counts it; returns whether it was admitted.
    /// A shard index out of range is admitted (its window is created).
    pub fn try_admit(&mut self, shard: usize, bytes: u64, now: Instant) -> bool {
        if shard >= self.windows.len() {
            self.windows.resize_with(shard + 1, ShardWindow::default);
        }
        let window = &mut self.windows[shard];
        window.expire(now);
        // An empty window takes any record, so one larger than the byte
        // limit still goes (and the service decides) instead of waiting forever.
        if window.records > 0 && !window.fits(&self.limits, bytes) {
            return false;
        }
        window.count(bytes, now);
        true
    }

    /// The bytes one more record for `shard` may have at `now`, or `None`
    /// when the shard takes no record now (its records or bytes are used up).
    /// An empty window takes a record of any size (as [`try_admit`](Self::try_admit)
    /// does): `u64::MAX`. The aggregated planner fills an aggregate up to
    /// this and then [`charge`](Self::charge)s it.
    pub fn room(&mut self, shard: usize, now: Instant) -> Option<u64> {
        let Some(window) = self.windows.get_mut(shard) else {
            return Some(u64::MAX);
        };
        window.expire(now);
        if window.records == 0 {
            return Some(u64::MAX);
        }
        if window.records >= self.limits.records_per_second {
            return None;
        }
        self.limits
            .bytes_per_second
            .checked_sub(window.bytes)
            .filter(|&left| left > 0)
    }

    /// Counts one record of `bytes` for `shard` at `now`, whether or not it
    /// fits: for a record sized to [`room`](Self::room), which does.
    pub fn charge(&mut self, shard: usize, bytes: u64, now: Instant) {
        if shard >= self.windows.len() {
            self.windows.resize_with(shard + 1, ShardWindow::default);
        }
        let window = &mut self.windows[shard];
        window.expire(now);
        window.count(bytes, now);
    }

    /// The earliest instant, not before `now`, at which a record of `bytes`
    /// would be admitted for `shard`.
    pub fn next_free(&self, shard: usize, bytes: u64, now: Instant) -> Instant {
        let Some(window) = self.windows.get(shard) else {
            return now;
        };
        let mut records = window.records;
        let mut total = window.bytes;
        let fits = |records: u32, total: u64| {
            records < self.limits.records_per_second
                && total.saturating_add(bytes) <= self.limits.bytes_per_second
        };
        if fits(records, total) {
            return now;
        }
        // Oldest first: the record fits once enough admissions have left.
        for &(at, r, b) in &window.admitted {
            records -= r;
            total -= b;
            if fits(records, total) {
                return (at + WINDOW).max(now);
            }
        }
        now
    }

    /// Moves the charges made at `admitted_at` (the call being planned) to
    /// `returned_at` (when its answer came back), for every shard.
    pub fn settle(&mut self, admitted_at: Instant, returned_at: Instant) {
        for window in &mut self.windows {
            if let Some((at, _, _)) = window.admitted.back_mut()
                && *at == admitted_at
            {
                *at = returned_at.max(admitted_at);
            }
        }
    }

    /// Carries the windows of shards that still exist over to a new shard
    /// list (after resharding): `old_ids` and `new_ids` list shard ids by index.
    pub fn remap(&mut self, old_ids: &[String], new_ids: &[String]) {
        let windows = new_ids
            .iter()
            .map(|id| {
                old_ids
                    .iter()
                    .position(|old| old == id)
                    .and_then(|i| self.windows.get(i).cloned())
                    .unwrap_or_default()
            })
            .collect();
        self.windows = windows;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(records: u32, bytes: u64) -> ShardLimits {
        ShardLimits {
            records_per_second: records,
            bytes_per_second: bytes,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_shard_takes_its_limit_then_waits_a_second() {
        let mut pacer = ShardPacer::new(limits(3, 1_000), 2);
        let t0 = Instant::now();
        assert!((0..3).all(|_| pacer.try_admit(0, 10, t0)));
        assert!(!pacer.try_admit(0, 10, t0));
        // Other shards are independent.
        assert!(pacer.try_admit(1, 10, t0));
        assert_eq!(pacer.next_free(0, 10, t0), t0 + WINDOW);
        tokio::time::advance(Duration::from_millis(999)).await;
        assert!(!pacer.try_admit(0, 10, Instant::now()));
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(pacer.try_admit(0, 10, Instant::now()));
    }

    #[tokio::test(start_paused = true)]
    async fn bytes_are_limited_too() {
        let mut pacer = ShardPacer::new(limits(1_000, 100), 1);
        let t0 = Instant::now();
        assert!(pacer.try_admit(0, 60, t0));
        let t1 = t0 + Duration::from_millis(300);
        assert!(pacer.try_admit(0, 40, t1));
        assert!(!pacer.try_admit(0, 1, t1));
        // The first 60 bytes leave at t0 + 1 s; that frees room for 50.
        assert_eq!(pacer.next_free(0, 50, t1), t0 + WINDOW);
        // 70 bytes need the second admission gone too.
        assert_eq!(pacer.next_free(0, 70, t1), t1 + WINDOW);
        assert!(pacer.try_admit(0, 50, t0 + WINDOW));
    }

    #[tokio::test(start_paused = true)]
    async fn no_one_second_window_exceeds_the_limit() {
        // Greedy admission at irregular instants for 5 s; then check every
        // window that starts at an admission.
        let mut pacer = ShardPacer::new(ShardLimits::default(), 1);
        let start = Instant::now();
        let mut admitted = Vec::new();
        let mut t = start;
        while t < start + Duration::from_secs(5) {
            while pacer.try_admit(0, 170, t) {
                admitted.push(t);
            }
            t = pacer
                .next_free(0, 170, t)
                .max(t + Duration::from_micros(1_337));
        }
        assert!(admitted.len() >= 4_000, "{}", admitted.len());
        for (i, &at) in admitted.iter().enumerate() {
            let in_window = admitted[i..]
                .iter()
                .take_while(|&&x| x < at + WINDOW)
                .count();
            assert!(
                in_window <= 1_000,
                "{in_window} records in the second from {i}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn records_are_charged_when_their_call_returns() {
        let mut pacer = ShardPacer::new(limits(2, 1_000), 1);
        let planned = Instant::now();
        assert!(pacer.try_admit(0, 1, planned));
        assert!(pacer.try_admit(0, 1, planned));
        let returned = planned + Duration::from_millis(30);
        pacer.settle(planned, returned);
        assert_eq!(pacer.next_free(0, 1, planned), returned + WINDOW);
        assert!(!pacer.try_admit(0, 1, planned + WINDOW));
        assert!(pacer.try_admit(0, 1, returned + WINDOW));
    }

    #[tokio::test(start_paused = true)]
    async fn room_is_what_one_more_record_may_take() {
        let mut pacer = ShardPacer::new(limits(3, 1_000), 1);
        let t0 = Instant::now();
        assert_eq!(
            pacer.room(0, t0),
            Some(u64::MAX),
            "an empty window takes anything"
        );
        pacer.charge(0, 600, t0);
        assert_eq!(pacer.room(0, t0), Some(400));
        assert_eq!(pacer.next_free(0, 400, t0), t0);
        assert!(pacer.next_free(0, 401, t0) > t0);
        pacer.charge(0, 400, t0);
        assert_eq!(pacer.room(0, t0), None, "no byte left");
        let t1 = t0 + WINDOW;
        assert_eq!(pacer.room(0, t1), Some(u64::MAX));
        for _ in 0..3 {
            pacer.charge(0, 1, t1);
        }
        assert_eq!(pacer.room(0, t1), None, "no record left");
        assert_eq!(pacer.room(7, t1), Some(u64::MAX), "an unknown shard");
    }

    #[test]
    fn remapping_keeps_surviving_shards() {
        let mut pacer = ShardPacer::new(limits(1, 1_000), 2);
        let now = Instant::now();
        assert!(pacer.try_admit(1, 1, now));
        pacer.remap(
            &["a".to_owned(), "b".to_owned()],
            &["b".to_owned(), "c".to_owned()],
        );
        assert!(!pacer.try_admit(0, 1, now), "b kept its window");
        assert!(pacer.try_admit(1, 1, now), "c is new");
    }
}
