//! PutRecords batching: picks which pending readings go into the next call,
//! within the service's limits (500 records and 5 MiB of data plus partition
//! keys per call) and the shard pacer's.
//!
//! Each candidate is the oldest unsent reading of one unicorn, so a call never
//! carries two readings of the same unicorn: if one entry fails, nothing newer
//! of that unicorn can overtake it. Candidates come oldest first, so retried
//! readings go before fresh ones and no unicorn starves.
//!
//! [`plan`] puts each reading in a record of its own. [`plan_aggregated`]
//! (`--aggregate`) packs them into KPL aggregated records instead
//! ([`wildrydes_core::kpl`]): one open aggregate per shard, so an aggregate
//! only holds readings whose partition keys map to one shard; each filled
//! up to the record size asked for, never past [`MAX_RECORD_BYTES`] (data
//! plus the Kinesis record's partition key, the first reading's), nor past
//! what the shard's pacer has room for, nor past the call's limits, where
//! an aggregate is one entry of its full size.

use tokio::time::Instant;
use wildrydes_core::kpl::{AggregateBuilder, MAX_RECORD_BYTES, UserRecord};

use crate::pacing::ShardPacer;

/// Most records one PutRecords call may carry.
pub const MAX_RECORDS_PER_CALL: usize = 500;
/// Most bytes (data plus partition keys) one PutRecords call may carry: 5 MiB.
pub const MAX_BYTES_PER_CALL: usize = 5 * 1024 * 1024;

/// Limits of one PutRecords call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// Most records per call.
    pub records: usize,
    /// Most bytes (data plus partition keys) per call.
    pub bytes: usize,
}

impl Default for BatchLimits {
    /// The service's limits.
    fn default() -> Self {
        Self {
            records: MAX_RECORDS_PER_CALL,
            bytes: MAX_BYTES_PER_CALL,
        }
    }
}

/// A reading that could go into the next call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    /// Index of the unicorn in the fleet.
    pub unicorn: usize,
    /// Index of the shard its partition key maps to.
    pub shard: usize,
    /// Its size as the service counts it: data plus partition key.
    pub bytes: usize,
}

/// Chooses the next call's entries from `candidates` (oldest first): takes
/// each in turn while the call has room and `admit` (the shard pacer) agrees;
/// a candidate whose shard is full is skipped, the others still go. Returns
/// the chosen unicorns in order.
///
/// `admit` is asked only about candidates that fit the call, and counts what
/// it admits, so it must be asked exactly once per chosen entry.
pub fn plan(
    candidates: impl IntoIterator<Item = Candidate>,
    limits: BatchLimits,
    mut admit: impl FnMut(&Candidate) -> bool,
) -> Vec<usize> {
    let mut chosen = Vec::new();
    let mut bytes = 0usize;
    for candidate in candidates {
        if chosen.len() >= limits.records {
            break;
        }
        if bytes + candidate.bytes > limits.bytes {
            // Readings are small and alike; the next ones would not fit either.
            break;
        }
        if admit(&candidate) {
            bytes += candidate.bytes;
            chosen.push(candidate.unicorn);
        }
    }
    chosen
}

/// A reading that could go into one of the next call's aggregates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserCandidate<'a> {
    /// Index of the unicorn in the fleet.
    pub unicorn: usize,
    /// Index of the shard its partition key maps to.
    pub shard: usize,
    /// Its partition key, kept in the aggregate.
    pub partition_key: &'a str,
    /// Its data: the reading's JSON.
    pub data: &'a [u8],
}

/// One KPL aggregated record planned for the next call.
#[derive(Debug)]
pub struct PlannedAggregate {
    /// The shard every reading's partition key maps to, and so (by the
    /// first one's key) the record's.
    pub shard: usize,
    /// The unicorns whose readings it carries, in the aggregate's order:
    /// index `i` is sub-sequence number `i`.
    pub unicorns: Vec<usize>,
    /// The aggregate itself.
    pub builder: AggregateBuilder,
}

impl PlannedAggregate {
    /// An empty aggregate for `shard`.
    fn new(shard: usize) -> Self {
        Self {
            shard,
            unicorns: Vec::new(),
            builder: AggregateBuilder::new(),
        }
    }

    /// Its size as the service counts it: data plus the record's partition
    /// key (the first reading's); 0 while empty, when it is not sent.
    pub fn size(&self) -> usize {
        match self.builder.partition_key() {
            Some(key) => self.builder.size() + key.len(),
            None => 0,
        }
    }

    /// Its [`size`](Self::size) with `candidate` added.
    fn size_with(&self, candidate: &UserCandidate<'_>) -> usize {
        let key = self
            .builder
            .partition_key()
            .unwrap_or(candidate.partition_key);
        self.builder
            .size_with(candidate.partition_key, None, candidate.data.len())
            + key.len()
    }

    /// Adds `candidate`'s reading after those it holds.
    fn push(&mut self, candidate: &UserCandidate<'_>) {
        self.builder.push(UserRecord {
            partition_key: candidate.partition_key.to_owned(),
            explicit_hash_key: None,
            data: candidate.data.to_vec(),
        });
        self.unicorns.push(candidate.unicorn);
    }

    /// The Kinesis record's partition key and data.
    pub fn finish(self) -> (String, Vec<u8>) {
        let key = self.builder.partition_key().unwrap_or_default().to_owned();
        (key, self.builder.finish())
    }
}

/// The exact size (data plus partition key) of an aggregate holding only a
/// reading of `data_len` bytes under `partition_key`: what a shard must have
/// room for before the reading can go, aggregated.
pub fn lone_aggregate_size(partition_key: &str, data_len: usize) -> usize {
    AggregateBuilder::new().size_with(partition_key, None, data_len) + partition_key.len()
}

/// An aggregate being filled, with what its shard's pacer allows it.
#[derive(Debug)]
struct Open {
    /// The aggregate.
    aggregate: PlannedAggregate,
    /// Most bytes the shard's pacer takes for it (`u64::MAX`: any).
    room: u64,
}

/// Chooses the next call's aggregated records from `candidates` (oldest
/// first). Each candidate goes into the open aggregate of its shard if it
/// still fits there: `record_bytes` (at most [`MAX_RECORD_BYTES`]), the
/// shard's room in `pacer` (none without pacing), and the call's `limits`
/// (every aggregate one entry of its full size). When it does not, that
/// aggregate is closed, charged to the pacer, and a new one opened if the
/// shard and the call have room; otherwise the candidate waits for a later
/// call, and the others still go. A reading too large for `record_bytes`
/// alone goes in an aggregate of its own when the shard's room allows, so
/// nothing waits forever (readings are a few hundred bytes: only a
/// `record_bytes` set below that makes it happen).
///
/// Returns the aggregates in the order they were closed; every aggregate
/// holds at least one reading, and no unicorn is in two.
pub fn plan_aggregated<'a>(
    candidates: impl IntoIterator<Item = UserCandidate<'a>>,
    limits: BatchLimits,
    record_bytes: usize,
    mut pacer: Option<&mut ShardPacer>,
    now: Instant,
) -> Vec<PlannedAggregate> {
    let record_bytes = record_bytes.min(MAX_RECORD_BYTES) as u64;
    let mut closed: Vec<PlannedAggregate> = Vec::new();
    let mut open: Vec<Open> = Vec::new();
    // Bytes of the closed and open aggregates together.
    let mut call_bytes = 0usize;
    let close = |pacer: Option<&mut ShardPacer>, closed: &mut Vec<PlannedAggregate>, full: Open| {
        if let Some(pacer) = pacer {
            pacer.charge(full.aggregate.shard, full.aggregate.size() as u64, now);
        }
        closed.push(full.aggregate);
    };
    for candidate in candidates {
        // At most twice: into the shard's open aggregate, then, if that was
        // full, into a new one.
        loop {
            let i = match open
                .iter()
                .position(|o| o.aggregate.shard == candidate.shard)
            {
                Some(i) => i,
                None => {
                    if closed.len() + open.len() >= limits.records {
                        break;
                    }
                    let room = match pacer.as_deref_mut() {
                        Some(pacer) => match pacer.room(candidate.shard, now) {
                            Some(room) => room,
                            None => break,
                        },
                        None => u64::MAX,
                    };
                    open.push(Open {
                        aggregate: PlannedAggregate::new(candidate.shard),
                        room,
                    });
                    open.len() - 1
                }
            };
            let o = &mut open[i];
            let empty = o.aggregate.unicorns.is_empty();
            let before = o.aggregate.size();
            let after = o.aggregate.size_with(&candidate);
            let cap = if empty {
                o.room
            } else {
                o.room.min(record_bytes)
            };
            let call_fits =
                call_bytes - before + after <= limits.bytes || (empty && call_bytes == 0);
            if after as u64 <= cap && call_fits {
                o.aggregate.push(&candidate);
                call_bytes = call_bytes - before + after;
                if empty && after as u64 > record_bytes {
                    // Alone over the size asked for: nothing joins it.
                    let full = open.swap_remove(i);
                    close(pacer.as_deref_mut(), &mut closed, full);
                }
                break;
            }
            let full = open.swap_remove(i);
            if empty {
                // The shard or the call has no room for this reading now.
                break;
            }
            close(pacer.as_deref_mut(), &mut closed, full);
        }
    }
    for o in open {
        close(pacer.as_deref_mut(), &mut closed, o);
    }
    closed
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::pacing::ShardLimits;

    fn candidates(n: usize, bytes: usize, shards: usize) -> Vec<Candidate> {
        (0..n)
            .map(|unicorn| Candidate {
                unicorn,
                shard: unicorn % shards,
                bytes,
            })
            .collect()
    }

    #[test]
    fn a_call_carries_at_most_500_records() {
        let chosen = plan(candidates(1_200, 180, 1), BatchLimits::default(), |_| true);
        assert_eq!(chosen.len(), 500);
        assert_eq!(chosen, (0..500).collect::<Vec<_>>());
    }

    #[test]
    fn a_call_carries_at_most_5_mib() {
        let big = 100 * 1024;
        let chosen = plan(candidates(100, big, 1), BatchLimits::default(), |_| true);
        assert_eq!(chosen.len(), MAX_BYTES_PER_CALL / big);
        assert!(chosen.len() * big <= MAX_BYTES_PER_CALL);
    }

    #[test]
    fn a_full_shard_is_skipped_and_others_still_go() {
        let mut per_shard = [0usize; 2];
        let chosen = plan(candidates(10, 100, 2), BatchLimits::default(), |c| {
            if c.shard == 0 && per_shard[0] == 2 {
                return false;
            }
            per_shard[c.shard] += 1;
            true
        });
        assert_eq!(chosen, [0, 1, 2, 3, 5, 7, 9]);
    }

    #[test]
    fn the_pacer_is_asked_once_per_entry_that_fits() {
        let mut asked = 0;
        let limits = BatchLimits {
            records: 3,
            bytes: 1_000,
        };
        let chosen = plan(candidates(10, 100, 1), limits, |_| {
            asked += 1;
            true
        });
        assert_eq!(chosen.len(), 3);
        assert_eq!(asked, 3);
    }

    /// Readings of some fleet for the aggregated planner: keys, data and
    /// shards, owned, so candidates can borrow them.
    struct Readings {
        keys: Vec<String>,
        data: Vec<Vec<u8>>,
        shards: Vec<usize>,
    }

    impl Readings {
        /// `n` readings, the `i`th of `size(i)` bytes on shard `i % shards`.
        fn new(n: usize, shards: usize, size: impl Fn(usize) -> usize) -> Self {
            Self {
                keys: (0..n)
                    .map(|i| format!("Unicorn-{i:04}{}", "x".repeat(i % 21)))
                    .collect(),
                data: (0..n).map(|i| vec![b'{'; size(i)]).collect(),
                shards: (0..n).map(|i| i % shards).collect(),
            }
        }

        /// Real readings of a fleet of `n` unicorns, one second's worth.
        fn fleet(n: usize, shards: usize) -> Self {
            let names: Vec<_> = (1..=n)
                .map(|i| wildrydes_core::UnicornName::new(&format!("Unicorn-{i:04}")).unwrap())
                .collect();
            let mut fleet =
                crate::simulation::Fleet::new(&names, 7, &crate::scenario::Scenario::Walk).unwrap();
            let at = wildrydes_core::StatusTime::parse("2017-06-05 09:17:08.189").unwrap();
            Self {
                keys: names.iter().map(ToString::to_string).collect(),
                data: fleet
                    .tick(0, at)
                    .iter()
                    .map(|r| r.to_json().into_bytes())
                    .collect(),
                shards: (0..n).map(|i| i % shards).collect(),
            }
        }

        /// The candidates among `unicorns`, in that order.
        fn candidates<'a>(
            &'a self,
            unicorns: &'a [usize],
        ) -> impl Iterator<Item = UserCandidate<'a>> {
            unicorns.iter().map(|&u| UserCandidate {
                unicorn: u,
                shard: self.shards[u],
                partition_key: &self.keys[u],
                data: &self.data[u],
            })
        }
    }

    /// Plans calls over `readings` until every reading went, as the loop
    /// does (the ones left over come first in the next call), checking
    /// every aggregate and every call on the way; returns the calls'
    /// records as (shard, partition key, data).
    fn plan_all(
        readings: &Readings,
        limits: BatchLimits,
        record_bytes: usize,
    ) -> Vec<Vec<(usize, String, Vec<u8>)>> {
        let now = Instant::now();
        let mut left: Vec<usize> = (0..readings.keys.len()).collect();
        let mut calls = Vec::new();
        while !left.is_empty() {
            let planned =
                plan_aggregated(readings.candidates(&left), limits, record_bytes, None, now);
            assert!(!planned.is_empty(), "{} readings never go", left.len());
            assert!(planned.len() <= limits.records);
            let mut call = Vec::new();
            let mut call_bytes = 0;
            let mut taken = std::collections::HashSet::new();
            let rank: std::collections::HashMap<usize, usize> =
                left.iter().enumerate().map(|(i, &u)| (u, i)).collect();
            for aggregate in planned {
                assert!(!aggregate.unicorns.is_empty());
                let size = aggregate.size();
                let unicorns = aggregate.unicorns.clone();
                let shard = aggregate.shard;
                let (key, data) = aggregate.finish();
                assert_eq!(data.len() + key.len(), size, "size() is exact");
                assert!(size <= MAX_RECORD_BYTES, "{size} bytes");
                assert!(
                    size <= record_bytes.min(MAX_RECORD_BYTES) || unicorns.len() == 1,
                    "{size} bytes for {} readings",
                    unicorns.len()
                );
                assert_eq!(key, readings.keys[unicorns[0]], "the first reading's key");
                let records = wildrydes_core::kpl::deaggregate(&data).unwrap();
                assert_eq!(records.len(), unicorns.len());
                for (record, &u) in records.iter().zip(&unicorns) {
                    assert_eq!(readings.shards[u], shard, "one shard per aggregate");
                    assert_eq!(record.partition_key, readings.keys[u], "its own key");
                    assert_eq!(record.data, readings.data[u]);
                    assert!(taken.insert(u), "unicorn {u} twice in a call");
                }
                // Oldest first within an aggregate.
                let positions: Vec<usize> = unicorns.iter().map(|u| rank[u]).collect();
                assert!(positions.windows(2).all(|w| w[0] < w[1]));
                call_bytes += size;
                call.push((shard, key, data));
            }
            assert!(call_bytes <= limits.bytes, "{call_bytes} bytes in a call");
            left.retain(|u| !taken.contains(u));
            calls.push(call);
        }
        calls
    }

    #[test]
    fn aggregates_never_exceed_a_kinesis_record_whatever_the_payloads() {
        // Payloads from 1 byte to 400 KB among small ones, keys of 13 to 33
        // bytes, three shards; asked for records as large as can be.
        let size = |i: usize| match i % 5 {
            0 => (i * 7_919) % 400_000 + 1,
            1 => (i * 104_729) % 40_000,
            _ => 150 + i % 90,
        };
        let readings = Readings::new(1_000, 3, size);
        for record_bytes in [usize::MAX, MAX_RECORD_BYTES, 300_000, 51_200] {
            let calls = plan_all(&readings, BatchLimits::default(), record_bytes);
            let records: usize = calls.iter().map(Vec::len).sum();
            assert!(records < 500, "{records} records for {record_bytes}");
        }
        // Many small readings fill records to the brim, and no further.
        let readings = Readings::new(20_000, 1, |i| 150 + i % 90);
        let calls = plan_all(&readings, BatchLimits::default(), usize::MAX);
        let sizes: Vec<usize> = calls
            .iter()
            .flatten()
            .map(|(_, key, data)| key.len() + data.len())
            .collect();
        assert!(sizes.len() >= 4, "{sizes:?}");
        for size in &sizes[..sizes.len() - 1] {
            assert!(*size > MAX_RECORD_BYTES - 300, "{sizes:?}");
        }
    }

    #[test]
    fn aggregated_calls_keep_to_500_records_and_5_mib() {
        // 500 records: small aggregates of two readings each.
        let readings = Readings::new(3_000, 2, |_| 180);
        let two = lone_aggregate_size("Unicorn-0000xxxxxxxxxxxxxxxxxxxx", 180) * 2;
        let calls = plan_all(&readings, BatchLimits::default(), two);
        assert_eq!(calls[0].len(), MAX_RECORDS_PER_CALL);
        // 5 MiB: unpaced, 30,000 readings make more than one call.
        let readings = Readings::new(30_000, 2, |_| 190);
        let calls = plan_all(&readings, BatchLimits::default(), usize::MAX);
        assert!(calls.len() >= 2, "{} calls", calls.len());
        let first: usize = calls[0].iter().map(|(_, k, d)| k.len() + d.len()).sum();
        assert!(
            first > MAX_BYTES_PER_CALL - MAX_RECORD_BYTES,
            "{first} bytes"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_paced_shard_takes_five_times_the_unicorns_aggregated() {
        // 6,000 unicorns on one shard, one real reading each, all ready at
        // once: what the pacer lets through in one second, one reading per
        // record and then aggregated.
        let readings = Readings::fleet(6_000, 1);
        let all: Vec<usize> = (0..6_000).collect();
        let now = Instant::now();

        let mut pacer = ShardPacer::new(ShardLimits::default(), 1);
        let mut plain = 0;
        for call in all.chunks(MAX_RECORDS_PER_CALL) {
            let candidates = call.iter().map(|&u| Candidate {
                unicorn: u,
                shard: 0,
                bytes: readings.data[u].len() + readings.keys[u].len(),
            });
            plain += plan(candidates, BatchLimits::default(), |c| {
                pacer.try_admit(c.shard, c.bytes as u64, now)
            })
            .len();
        }
        assert_eq!(plain, 1_000, "the record limit binds");

        let mut pacer = ShardPacer::new(ShardLimits::default(), 1);
        let (mut readings_sent, mut records, mut bytes) = (0, 0, 0);
        let mut left = all.clone();
        loop {
            let planned = plan_aggregated(
                readings.candidates(&left),
                BatchLimits::default(),
                crate::settings::DEFAULT_AGGREGATE_BYTES,
                Some(&mut pacer),
                now,
            );
            if planned.is_empty() {
                break;
            }
            for aggregate in &planned {
                readings_sent += aggregate.unicorns.len();
                records += 1;
                bytes += aggregate.size();
                left.retain(|u| !aggregate.unicorns.contains(u));
            }
        }
        // The byte limit binds instead: ~5,000 readings in ~20 records.
        assert!(bytes <= 1024 * 1024, "{bytes} bytes");
        assert!(
            bytes > 1024 * 1024 - 2 * 1_024,
            "{bytes} bytes: room wasted"
        );
        assert!(records <= 25, "{records} records");
        assert!(
            (4_500..6_000).contains(&readings_sent),
            "{readings_sent} readings in {records} records"
        );
        assert!(readings_sent >= 4 * plain);
        // Nothing more this second; the next second takes as much again.
        let later = now + Duration::from_secs(1);
        let next = plan_aggregated(
            readings.candidates(&left),
            BatchLimits::default(),
            crate::settings::DEFAULT_AGGREGATE_BYTES,
            Some(&mut pacer),
            later,
        );
        let next_readings: usize = next.iter().map(|a| a.unicorns.len()).sum();
        assert!(!left.is_empty());
        assert_eq!(next_readings, left.len(), "the rest go a second later");
    }

    #[tokio::test(start_paused = true)]
    async fn a_reading_too_large_for_the_size_asked_goes_alone_when_its_shard_has_room() {
        let readings = Readings::new(3, 1, |i| if i == 1 { 2_000 } else { 100 });
        let now = Instant::now();
        let mut pacer = ShardPacer::new(ShardLimits::default(), 1);
        let planned = plan_aggregated(
            readings.candidates(&[1, 0, 2]),
            BatchLimits::default(),
            1_000,
            Some(&mut pacer),
            now,
        );
        let unicorns: Vec<Vec<usize>> = planned.iter().map(|a| a.unicorns.clone()).collect();
        assert_eq!(unicorns, [vec![1], vec![0, 2]]);
        // With less room left on its shard than it needs, it waits.
        let mut pacer = ShardPacer::new(
            ShardLimits {
                records_per_second: 1_000,
                bytes_per_second: 2_100,
            },
            1,
        );
        pacer.charge(0, 500, now);
        let planned = plan_aggregated(
            readings.candidates(&[1, 0]),
            BatchLimits::default(),
            1_000,
            Some(&mut pacer),
            now,
        );
        let unicorns: Vec<Vec<usize>> = planned.iter().map(|a| a.unicorns.clone()).collect();
        assert_eq!(unicorns, [vec![0]]);
    }
}
