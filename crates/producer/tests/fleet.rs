//! Fleets: PutRecords batches within the service limits, per-shard pacing
//! (checked on tokio's paused clock), throttled writes retried without loss
//! or reordering, and a stop request that flushes what is buffered.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use common::{
    Limits, Recording, assert_complete_and_ordered, fleet, on_backend, settings, stream_records,
    two_shards,
};
use tokio::time::Instant;
use wildrydes_core::retry::RetryPolicy;
use wildrydes_producer::batch::{MAX_BYTES_PER_CALL, MAX_RECORDS_PER_CALL};
use wildrydes_producer::kinesis::KinesisStream;
use wildrydes_producer::produce;
use wildrydes_producer::sender::{CallError, EntryOutcome, PutEntry, RecordSink};
use wildrydes_producer::shards::{ShardRange, hash_key};

#[tokio::test]
async fn fleet_calls_respect_the_batch_limits() {
    on_backend(Limits::Off, &[("fleet", 2)], async |local| {
        let s = settings(fleet(1_200), "fleet", 5, 3);
        let sink = Recording::new(KinesisStream::new(local.sdk_config(), "fleet"));
        let summary = produce(&s, &sink, std::future::pending()).await.unwrap();
        assert!(summary.is_complete(), "{summary}");

        let calls = sink.calls.lock().unwrap().clone();
        assert_eq!(
            calls.iter().map(|(keys, _)| keys.len()).sum::<usize>(),
            3_600
        );
        assert_eq!(calls[0].0.len(), MAX_RECORDS_PER_CALL, "calls are filled");
        for (keys, bytes) in &calls {
            assert!(keys.len() <= MAX_RECORDS_PER_CALL);
            assert!(*bytes <= MAX_BYTES_PER_CALL);
            let distinct: HashSet<_> = keys.iter().collect();
            assert_eq!(
                distinct.len(),
                keys.len(),
                "one reading per unicorn per call"
            );
        }
        assert_eq!(summary.calls, calls.len() as u64);
        assert_complete_and_ordered(&stream_records(local, "fleet").await, 1_200, 3);
    })
    .await;
}

/// An in-memory stream of two shards that notes when each record arrived,
/// and how many calls it had in flight at most.
struct Clocked {
    shards: Vec<ShardRange>,
    arrivals: Mutex<Vec<(usize, Instant, String)>>,
    sequence: AtomicU64,
    in_flight: AtomicUsize,
    most_in_flight: AtomicUsize,
    /// Unicorns in calls not answered yet, and how often one was sent again
    /// while in flight (which would let its readings overtake each other).
    keys_in_flight: Mutex<HashSet<String>>,
    overtaking: AtomicUsize,
}

impl Clocked {
    fn two_shards() -> Self {
        Self {
            shards: two_shards(),
            arrivals: Mutex::new(Vec::new()),
            sequence: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            most_in_flight: AtomicUsize::new(0),
            keys_in_flight: Mutex::new(HashSet::new()),
            overtaking: AtomicUsize::new(0),
        }
    }
}

impl Clocked {
    fn keys(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.keys_in_flight.lock().expect("not poisoned")
    }
}

impl RecordSink for Clocked {
    async fn put_records(&self, entries: Vec<PutEntry>) -> Result<Vec<EntryOutcome>, CallError> {
        // Answer on a later poll, so that calls sent together overlap.
        let in_flight = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_in_flight.fetch_max(in_flight, Ordering::SeqCst);
        for e in &entries {
            if !self.keys().insert(e.partition_key.clone()) {
                self.overtaking.fetch_add(1, Ordering::SeqCst);
            }
        }
        tokio::task::yield_now().await;
        for e in &entries {
            self.keys().remove(&e.partition_key);
        }
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        let now = Instant::now();
        let mut arrivals = self.arrivals.lock().expect("not poisoned");
        Ok(entries
            .into_iter()
            .map(|e| {
                let key = hash_key(&e.partition_key);
                let shard = self
                    .shards
                    .iter()
                    .position(|s| s.start <= key && key <= s.end)
                    .expect("the two shards cover every key");
                arrivals.push((shard, now, e.partition_key));
                EntryOutcome::Written {
                    shard_id: self.shards[shard].shard_id.clone(),
                    sequence_number: self.sequence.fetch_add(1, Ordering::Relaxed).to_string(),
                }
            })
            .collect())
    }

    async fn list_shards(&self) -> Result<Vec<ShardRange>, CallError> {
        Ok(self.shards.clone())
    }
}

#[tokio::test(start_paused = true)]
async fn calls_overlap_up_to_max_in_flight_with_each_unicorn_in_one() {
    for max_in_flight in [1, 4] {
        // 3,000 unicorns, unpaced: six full calls a second, at most
        // `max_in_flight` of them at once.
        let sink = Clocked::two_shards();
        let mut s = settings(fleet(3_000), "overlap", 2, 3);
        s.pacing = None;
        s.max_in_flight = max_in_flight;
        let summary = common::run_into(&s, &sink).await;
        assert!(summary.is_complete(), "{summary}");
        assert_eq!(sink.most_in_flight.load(Ordering::SeqCst), max_in_flight);
        assert_eq!(
            sink.overtaking.load(Ordering::SeqCst),
            0,
            "a unicorn was in two calls at once"
        );
        assert_eq!(sink.arrivals.lock().unwrap().len(), 9_000);
    }
}

#[tokio::test(start_paused = true)]
async fn pacing_keeps_every_shard_under_1000_records_per_second() {
    // 3,000 unicorns in real time need ~1,500 records/s per shard: more than
    // a shard takes, so the pacer must hold back. Paused time makes the
    // check exact and instant.
    let sink = Clocked::two_shards();
    let mut s = settings(fleet(3_000), "paced", 9, 5);
    s.time_scale = 1.0;
    let started = Instant::now();
    let summary = common::run_into(&s, &sink).await;
    assert!(summary.is_complete(), "{summary}");
    let elapsed = started.elapsed();

    let arrivals = sink.arrivals.lock().unwrap();
    assert_eq!(arrivals.len(), 15_000);
    let mut per_shard: HashMap<usize, Vec<Instant>> = HashMap::new();
    for (shard, at, _) in arrivals.iter() {
        per_shard.entry(*shard).or_default().push(*at);
    }
    let busiest = per_shard.values().map(Vec::len).max().unwrap();
    for (shard, times) in &per_shard {
        // Sorted already (a round's calls share an instant); any 1,001 consecutive records
        // must span at least a second.
        for pair in times.windows(1_001) {
            let span = pair[1_000] - pair[0];
            assert!(
                span >= Duration::from_secs(1),
                "shard {shard}: 1,001 records in {span:?}"
            );
        }
    }
    // And the pacer does not waste the shards' capacity.
    let needed = Duration::from_secs((busiest as u64).div_ceil(1_000));
    assert!(
        elapsed <= needed + Duration::from_secs(1),
        "{elapsed:?} for {busiest} records on one shard"
    );
    // Falling behind real time is reported.
    assert!(
        summary.max_behind >= Duration::from_secs(1),
        "{:?}",
        summary.max_behind
    );
}

#[tokio::test]
async fn throttled_writes_are_retried_in_order_and_nothing_is_lost() {
    // Kinesis throttling on, pacing off: 6,000 records at once on a shard
    // that takes 1,000 per second.
    on_backend(Limits::Enforced, &[("throttled", 1)], async |local| {
        let mut s = settings(fleet(1_500), "throttled", 4, 4);
        s.pacing = None;
        s.retry = RetryPolicy {
            max_attempts: 100,
            base_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(500),
        };
        let summary = common::run(local, &s).await;
        let (generated, sent, retried, failed, unsent) = summary.total();
        assert_eq!(
            (generated, sent, failed, unsent),
            (6_000, 6_000, 0, 0),
            "{summary}"
        );
        assert!(retried > 0, "the shard never throttled: {summary}");
        assert_complete_and_ordered(&stream_records(local, "throttled").await, 1_500, 4);
    })
    .await;
}

#[tokio::test]
async fn paced_writes_stay_under_the_real_limits() {
    // The same throttling backend, with pacing on: throttles are rare (only
    // clock jitter between producer and service), losses none.
    on_backend(Limits::Enforced, &[("paced", 1)], async |local| {
        let s = settings(fleet(1_500), "paced", 4, 3);
        let summary = common::run(local, &s).await;
        let (_, sent, retried, _, _) = summary.total();
        assert!(summary.is_complete(), "{summary}");
        assert_eq!(sent, 4_500);
        assert!(
            retried * 20 < sent,
            "{retried} retries: pacing did not hold back"
        );
        assert_complete_and_ordered(&stream_records(local, "paced").await, 1_500, 3);
    })
    .await;
}

#[tokio::test]
async fn a_stop_request_flushes_what_is_buffered() {
    on_backend(Limits::Off, &[("stopped", 1)], async |local| {
        let mut s = settings(fleet(5), "stopped", 6, 0);
        s.seconds = None; // until stopped
        s.time_scale = 50.0;
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let mut sink = Recording::new(KinesisStream::new(local.sdk_config(), "stopped"));
        sink.stop_after = Some((3, Mutex::new(Some(stop))));
        let summary = produce(&s, &sink, async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
        assert!(summary.interrupted);
        assert!(summary.is_complete(), "{summary}");
        let (generated, sent, ..) = summary.total();
        assert_eq!(generated, sent);
        assert!(sent >= 15, "{summary}");
        let records = stream_records(local, "stopped").await;
        assert_eq!(records.len() as u64, sent);
        assert_complete_and_ordered(&records, 5, sent / 5);
    })
    .await;
}
