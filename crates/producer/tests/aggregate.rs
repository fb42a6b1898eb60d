//! `--aggregate`: readings packed into KPL aggregated records. Read back
//! from the stream, every record is an aggregate whose readings all belong
//! to the shard holding it, and together they are exactly the ledger's;
//! failed aggregates come back reading by reading, in order; and a shard
//! takes a fleet aggregated that it throttles one reading per record.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{
    Limits, assert_readings_complete_and_ordered, fleet, on_backend, records_by_shard, run,
    settings, stream_records, two_shards,
};
use md5::{Digest as _, Md5};
use wildrydes_core::Reading;
use wildrydes_core::input::SourceRecord;
use wildrydes_core::kpl;
use wildrydes_core::retry::RetryPolicy;
use wildrydes_producer::Summary;
use wildrydes_producer::ledger::LedgerEntry;
use wildrydes_producer::sender::{CallError, EntryOutcome, PutEntry, RecordSink};
use wildrydes_producer::shards::ShardRange;

/// The hash key Kinesis gives a partition key, computed here on its own:
/// the MD5 of the key, read as a big-endian number.
fn md5_hash_key(key: &str) -> u128 {
    u128::from_be_bytes(Md5::digest(key.as_bytes()).into())
}

/// The user records of aggregated `records`, in stream order.
fn deaggregated(records: &[SourceRecord]) -> Vec<kpl::UserRecord> {
    records
        .iter()
        .flat_map(|r| kpl::deaggregate(&r.data).expect("an aggregate"))
        .collect()
}

/// Asserts that `users` (in stream order) are each unicorn's readings of
/// seconds `0..seconds`, in order: nothing lost, duplicated or reordered.
fn assert_users_complete_and_ordered(users: &[kpl::UserRecord], unicorns: usize, seconds: u64) {
    assert_readings_complete_and_ordered(
        users
            .iter()
            .map(|u| (u.partition_key.as_str(), u.data.as_slice())),
        unicorns,
        seconds,
    );
}

/// A ledger line, or a user record read back, as one comparable row:
/// shard, sequence number, sub-sequence number, partition key, data.
type Row = (String, String, u64, String, String);

#[tokio::test]
async fn aggregated_records_hold_the_ledgers_readings_each_on_its_shard() {
    on_backend(Limits::Off, &[("packed", 2)], async |local| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.jsonl");
        let (unicorns, seconds) = (300, 40);
        let mut s = settings(fleet(unicorns), "packed", 21, seconds);
        s.aggregate = true;
        s.ledger = Some(path.clone());
        let summary = run(local, &s).await;
        assert!(summary.is_complete(), "{summary}");

        let shards = records_by_shard(local, "packed").await;
        assert_eq!(shards.len(), 2);
        let mut stream: Vec<Row> = Vec::new();
        let mut in_order = Vec::new();
        let mut records = 0;
        for shard in &shards {
            assert!(!shard.records.is_empty(), "{} is empty", shard.shard_id);
            for record in &shard.records {
                records += 1;
                assert!(kpl::is_aggregated(&record.data), "a plain record");
                let users = kpl::deaggregate(&record.data).expect("a valid aggregate");
                assert!(!users.is_empty());
                assert_eq!(record.partition_key, users[0].partition_key);
                for (index, user) in users.iter().enumerate() {
                    // On the shard its own key maps to, by ListShards' range.
                    let hash = md5_hash_key(&user.partition_key);
                    assert!(
                        shard.hash_keys.contains(&hash),
                        "{} of an aggregate on {} belongs elsewhere",
                        user.partition_key,
                        shard.shard_id
                    );
                    assert!(user.explicit_hash_key.is_none());
                    let reading = Reading::from_json(&user.data).expect("a reading");
                    assert_eq!(reading.name.as_str(), user.partition_key);
                    assert_eq!(reading.to_json().as_bytes(), &user.data[..]);
                    stream.push((
                        shard.shard_id.clone(),
                        record.sequence_number.clone(),
                        index as u64,
                        user.partition_key.clone(),
                        String::from_utf8(user.data.clone()).unwrap(),
                    ));
                }
            }
            in_order.extend(deaggregated(&shard.records));
        }
        let readings = unicorns as u64 * seconds;
        // Each reading once, every unicorn's in order (each unicorn has one
        // shard, so its readings are in that shard's order).
        assert_users_complete_and_ordered(&in_order, unicorns, seconds);
        assert_eq!(stream.len() as u64, readings);
        assert!(
            records * 20 <= readings,
            "{records} Kinesis records for {readings} readings"
        );
        assert_eq!(summary.aggregated_records, Some(records));
        let text = summary.to_string();
        assert!(
            text.contains(&format!(
                "aggregated: {readings} readings in {records} Kinesis records"
            )),
            "{text}"
        );

        // The ledger holds exactly those readings, each where it is.
        let mut ledger: Vec<Row> = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(|line| {
                let e = LedgerEntry::parse(line).unwrap();
                let sub = e.sub_sequence_number.expect("a sub-sequence number");
                let data = e.data.get().to_owned();
                (e.shard_id, e.sequence_number, sub, e.partition_key, data)
            })
            .collect();
        // Per unicorn, the ledger is in StatusTime order too.
        let mut last = BTreeMap::<String, i64>::new();
        for (.., key, data) in &ledger {
            let at = Reading::from_json(data.as_bytes())
                .unwrap()
                .status_time
                .epoch_millis();
            let previous = last.insert(key.clone(), at);
            assert!(previous.is_none_or(|p| p < at), "{key} out of order");
        }
        assert_eq!(ledger.len() as u64, readings);
        // Sequence numbers are decimal strings: order them by length, then digits.
        let key = |r: &Row| (r.0.clone(), r.1.len(), r.1.clone(), r.2);
        ledger.sort_by_key(key);
        stream.sort_by_key(key);
        assert_eq!(ledger, stream);
    })
    .await;
}

/// An in-memory stream of two shards that fails every third entry as
/// throttled, checks each aggregate's readings against its shard, and
/// notes any unicorn sent while one of its readings was in flight.
struct Flaky {
    shards: Vec<ShardRange>,
    entries: AtomicUsize,
    /// Readings accepted, in order, with their record's sequence number.
    written: Mutex<Vec<(String, kpl::UserRecord)>>,
    keys_in_flight: Mutex<HashSet<String>>,
    overtaking: AtomicUsize,
}

impl Flaky {
    fn new() -> Self {
        Self {
            shards: two_shards(),
            entries: AtomicUsize::new(0),
            written: Mutex::new(Vec::new()),
            keys_in_flight: Mutex::new(HashSet::new()),
            overtaking: AtomicUsize::new(0),
        }
    }

    fn shard_of(&self, key: &str) -> usize {
        let hash = md5_hash_key(key);
        self.shards
            .iter()
            .position(|s| (s.start..=s.end).contains(&hash))
            .expect("the two shards cover every key")
    }
}

impl RecordSink for Flaky {
    async fn put_records(&self, entries: Vec<PutEntry>) -> Result<Vec<EntryOutcome>, CallError> {
        let users: Vec<Vec<kpl::UserRecord>> = entries
            .iter()
            .map(|e| kpl::deaggregate(&e.data).expect("an aggregate"))
            .collect();
        for user in users.iter().flatten() {
            let mut keys = self.keys_in_flight.lock().expect("not poisoned");
            if !keys.insert(user.partition_key.clone()) {
                self.overtaking.fetch_add(1, Ordering::SeqCst);
            }
        }
        // Answer on a later poll, so that calls sent together overlap.
        tokio::task::yield_now().await;
        let mut written = self.written.lock().expect("not poisoned");
        let outcomes = entries
            .into_iter()
            .zip(users)
            .map(|(entry, users)| {
                let shard = self.shard_of(&entry.partition_key);
                assert_eq!(entry.partition_key, users[0].partition_key);
                for user in &users {
                    assert_eq!(self.shard_of(&user.partition_key), shard, "one shard");
                    self.keys_in_flight
                        .lock()
                        .expect("not poisoned")
                        .remove(&user.partition_key);
                }
                let n = self.entries.fetch_add(1, Ordering::SeqCst);
                if n % 3 == 1 {
                    return EntryOutcome::Failed {
                        code: "ProvisionedThroughputExceededException".to_owned(),
                        message: "scripted".to_owned(),
                    };
                }
                let sequence_number = n.to_string();
                written.extend(users.into_iter().map(|u| (sequence_number.clone(), u)));
                EntryOutcome::Written {
                    shard_id: self.shards[shard].shard_id.clone(),
                    sequence_number,
                }
            })
            .collect();
        Ok(outcomes)
    }

    async fn list_shards(&self) -> Result<Vec<ShardRange>, CallError> {
        Ok(self.shards.clone())
    }
}

#[tokio::test(start_paused = true)]
async fn failed_aggregates_come_back_reading_by_reading_in_order() {
    // Small aggregates (about 20 readings), a third of them refused: every
    // reading of a refused one goes again, with nothing newer of its
    // unicorn overtaking it, and none of them twice.
    let sink = Flaky::new();
    let (unicorns, seconds) = (400, 20);
    let mut s = settings(fleet(unicorns), "flaky", 3, seconds);
    s.aggregate = true;
    s.aggregate_bytes = 4_000;
    s.retry = RetryPolicy {
        max_attempts: 100,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(100),
    };
    let summary = common::run_into(&s, &sink).await;
    assert!(summary.is_complete(), "{summary}");
    let (generated, sent, retried, ..) = summary.total();
    assert_eq!((generated, sent), (8_000, 8_000));
    assert!(retried >= 1_000, "{summary}");
    assert_eq!(
        sink.overtaking.load(Ordering::SeqCst),
        0,
        "a unicorn in flight twice"
    );
    let written = sink.written.lock().expect("not poisoned");
    assert_readings_complete_and_ordered(
        written
            .iter()
            .map(|(_, u)| (u.partition_key.as_str(), u.data.as_slice())),
        unicorns,
        seconds,
    );
    let records: HashSet<&str> = written.iter().map(|(seq, _)| seq.as_str()).collect();
    assert_eq!(summary.aggregated_records, Some(records.len() as u64));
    assert!(
        records.len() * 5 < written.len(),
        "{} records",
        records.len()
    );
}

/// Runs 1,500 unicorns in real time for 3 s onto `stream` of `local`, one
/// shard: 1,500 readings a second, where a shard takes 1,000 records.
async fn fifteen_hundred_unicorns(
    local: &wildrydes_local_aws::LocalAws,
    stream: &str,
    aggregate: bool,
    paced: bool,
) -> Summary {
    let mut s = settings(fleet(1_500), stream, 4, 3);
    s.time_scale = 1.0;
    s.aggregate = aggregate;
    if !paced {
        s.pacing = None;
    }
    s.retry = RetryPolicy {
        max_attempts: 100,
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(500),
    };
    let summary = run(local, &s).await;
    assert!(summary.is_complete(), "{summary}");
    assert_eq!(summary.total().1, 4_500, "{summary}");
    summary
}

#[tokio::test]
async fn aggregated_a_shard_takes_1500_unicorns_without_throttling() {
    // Kinesis throttling on, pacing off: one reading per record the shard
    // refuses a third of each second's readings; aggregated, each second's
    // are 300 KB in 6 records, well within 1 MiB and 1,000 records.
    let streams = [("plain", 1), ("packed", 1)];
    on_backend(Limits::Enforced, &streams, async |local| {
        let plain = fifteen_hundred_unicorns(local, "plain", false, false).await;
        let (.., retried, _, _) = plain.total();
        assert!(retried > 0, "the shard never throttled: {plain}");

        let packed = fifteen_hundred_unicorns(local, "packed", true, false).await;
        let (.., retried, _, _) = packed.total();
        assert_eq!(retried, 0, "throttled: {packed}");
        let records = stream_records(local, "packed").await;
        assert!(records.iter().all(|r| kpl::is_aggregated(&r.data)));
        assert_eq!(packed.aggregated_records, Some(records.len() as u64));
        assert!(records.len() <= 30, "{} records", records.len());
        assert_users_complete_and_ordered(&deaggregated(&records), 1_500, 3);
    })
    .await;
}

#[tokio::test]
async fn aggregated_a_paced_shard_keeps_up_with_1500_unicorns() {
    // The same fleet, paced as by default: one reading per record the pacer
    // holds the shard to 1,000 a second and the run falls behind; aggregated
    // it keeps up.
    let streams = [("plain", 1), ("packed", 1)];
    on_backend(Limits::Enforced, &streams, async |local| {
        let plain = fifteen_hundred_unicorns(local, "plain", false, true).await;
        assert!(
            plain.max_behind >= Duration::from_secs(1),
            "did not fall behind: {plain}"
        );
        let packed = fifteen_hundred_unicorns(local, "packed", true, true).await;
        let (.., retried, _, _) = packed.total();
        assert_eq!(retried, 0, "throttled: {packed}");
        assert!(
            packed.max_behind < Duration::from_secs(1),
            "fell behind: {packed}"
        );
    })
    .await;
}
