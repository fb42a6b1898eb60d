//! Helpers shared by the producer's integration tests, on top of the
//! testkit's (bounded tests, the embedded backend, reading a stream back):
//! a bounded test on a backend with its streams, settings for fast seeded
//! runs, and what a run must have put on a stream.

#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use wildrydes_core::input::SourceRecord;
use wildrydes_core::{Reading, StatusTime, UnicornName};
use wildrydes_local_aws::{LocalAws, LocalAwsOptions, ensure_stream};
use wildrydes_producer::kinesis::KinesisStream;
use wildrydes_producer::sender::{CallError, EntryOutcome, PutEntry, RecordSink};
use wildrydes_producer::shards::ShardRange;
use wildrydes_producer::{Settings, Summary, produce};
use wildrydes_testkit::bounded;

/// StatusTime of the first reading of every test run.
pub const START: &str = "2017-06-05 09:00:00.000";

/// Whether the backend refuses writes beyond a shard's limits, as Kinesis does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limits {
    /// Every write is taken.
    Off,
    /// Writes beyond a shard's limits are throttled.
    Enforced,
}

/// Runs `test`, bounded in time, on a backend of its own on random ports
/// holding `streams` (name, shards), and stops the backend after it.
pub async fn on_backend(
    limits: Limits,
    streams: &[(&str, i32)],
    test: impl AsyncFnOnce(&LocalAws),
) {
    bounded(async {
        let local = LocalAws::start(LocalAwsOptions {
            enforce_limits: limits == Limits::Enforced,
            ..LocalAwsOptions::default()
        })
        .await
        .expect("the local backend starts");
        for &(name, shards) in streams {
            ensure_stream(&local.kinesis_client(), name, shards)
                .await
                .expect("the stream is created");
        }
        test(&local).await;
        local.shutdown().await.expect("the local backend stops");
    })
    .await;
}

/// Unicorn names from strings.
pub fn names(names: &[&str]) -> Vec<UnicornName> {
    names
        .iter()
        .map(|n| UnicornName::new(n).expect("a valid name"))
        .collect()
}

/// `n` generated names, Unicorn-0001 onwards.
pub fn fleet(n: usize) -> Vec<UnicornName> {
    (1..=n)
        .map(|i| UnicornName::new(&format!("Unicorn-{i:04}")).expect("a valid name"))
        .collect()
}

/// Settings for a fast, seeded, quiet run of `seconds` simulated seconds.
pub fn settings(unicorns: Vec<UnicornName>, stream: &str, seed: u64, seconds: u64) -> Settings {
    let mut s = Settings::new(
        unicorns,
        stream,
        seed,
        StatusTime::parse(START).expect("a valid time"),
    );
    s.time_scale = 1_000_000.0;
    s.seconds = Some(seconds);
    s
}

/// Runs the producer into `sink` to completion, within ten minutes of
/// tokio's clock (tests on a paused clock take no real time).
pub async fn run_into<S: RecordSink>(settings: &Settings, sink: &S) -> Summary {
    tokio::time::timeout(
        Duration::from_secs(600),
        produce(settings, sink, std::future::pending()),
    )
    .await
    .expect("finishes")
    .expect("the run starts")
}

/// Runs the producer on `local` to completion.
pub async fn run(local: &LocalAws, settings: &Settings) -> Summary {
    run_into(
        settings,
        &KinesisStream::new(local.sdk_config(), &settings.stream),
    )
    .await
}

/// Every record of `stream` on `local`, shard by shard, from TRIM_HORIZON.
pub async fn stream_records(local: &LocalAws, stream: &str) -> Vec<SourceRecord> {
    wildrydes_testkit::read_stream(&local.kinesis_client(), stream).await
}

/// One shard of a stream as ListShards describes it, with its records.
pub struct ShardRecords {
    /// Its id.
    pub shard_id: String,
    /// Its hash key range, inclusive, as ListShards gives it.
    pub hash_keys: std::ops::RangeInclusive<u128>,
    /// Its records from TRIM_HORIZON, in order.
    pub records: Vec<SourceRecord>,
}

/// Every record of `stream` on `local`, shard by shard, from TRIM_HORIZON,
/// with each shard's hash key range: which shard holds a record, read from
/// the stream rather than computed.
pub async fn records_by_shard(local: &LocalAws, stream: &str) -> Vec<ShardRecords> {
    use aws_sdk_kinesis::types::ShardIteratorType;
    let kinesis = local.kinesis_client();
    let listed = kinesis
        .list_shards()
        .stream_name(stream)
        .send()
        .await
        .expect("ListShards");
    let mut shards = Vec::new();
    for shard in listed.shards() {
        let range = shard.hash_key_range().expect("a hash key range");
        let start: u128 = range.starting_hash_key().parse().expect("a hash key");
        let end: u128 = range.ending_hash_key().parse().expect("a hash key");
        let mut iterator = kinesis
            .get_shard_iterator()
            .stream_name(stream)
            .shard_id(shard.shard_id())
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .expect("GetShardIterator")
            .shard_iterator
            .expect("an iterator");
        let mut records = Vec::new();
        loop {
            let page = kinesis
                .get_records()
                .shard_iterator(&iterator)
                .send()
                .await
                .expect("GetRecords");
            records.extend(page.records().iter().map(SourceRecord::from));
            match page.next_shard_iterator {
                Some(next) if !page.records.is_empty() => iterator = next,
                _ => break,
            }
        }
        shards.push(ShardRecords {
            shard_id: shard.shard_id().to_owned(),
            hash_keys: start..=end,
            records,
        });
    }
    shards
}

/// The text of a record's data.
pub fn text(record: &SourceRecord) -> &str {
    std::str::from_utf8(&record.data).expect("UTF-8 data")
}

/// The reading a record holds.
pub fn reading(record: &SourceRecord) -> Reading {
    Reading::from_json(&record.data).expect("a valid reading")
}

/// The readings of `records` grouped per unicorn, in stream order.
pub fn per_unicorn(records: &[SourceRecord]) -> BTreeMap<String, Vec<Reading>> {
    let mut map = BTreeMap::<String, Vec<Reading>>::new();
    for r in records {
        map.entry(r.partition_key.clone())
            .or_default()
            .push(reading(r));
    }
    map
}

/// Asserts that each unicorn's readings are exactly seconds `0..seconds` of
/// the run, in order: nothing lost, duplicated or reordered.
pub fn assert_complete_and_ordered(records: &[SourceRecord], unicorns: usize, seconds: u64) {
    assert_readings_complete_and_ordered(
        records
            .iter()
            .map(|r| (r.partition_key.as_str(), r.data.as_slice())),
        unicorns,
        seconds,
    );
}

/// [`assert_complete_and_ordered`] for (partition key, data) pairs in
/// stream order, such as the user records of aggregates.
pub fn assert_readings_complete_and_ordered<'a>(
    readings: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    unicorns: usize,
    seconds: u64,
) {
    let start = StatusTime::parse(START).expect("a valid time");
    let mut groups = BTreeMap::<String, Vec<Reading>>::new();
    for (key, data) in readings {
        groups
            .entry(key.to_owned())
            .or_default()
            .push(Reading::from_json(data).expect("a valid reading"));
    }
    assert_eq!(groups.len(), unicorns, "unicorns on the stream");
    for (name, readings) in groups {
        let times: Vec<i64> = readings
            .iter()
            .map(|r| r.status_time.epoch_millis())
            .collect();
        let expected: Vec<i64> = (0..seconds)
            .map(|s| start.epoch_millis() + i64::try_from(s).expect("small") * 1000)
            .collect();
        assert_eq!(times, expected, "readings of {name}");
    }
}

/// A sink that passes calls to another and records what each call carried.
pub struct Recording<S> {
    /// The real sink.
    pub inner: S,
    /// Per call: the entries' partition keys and the call's size in bytes.
    pub calls: Mutex<Vec<(Vec<String>, usize)>>,
    /// After this many calls, `stop` is sent (once).
    pub stop_after: Option<(usize, Mutex<Option<tokio::sync::oneshot::Sender<()>>>)>,
}

impl<S> Recording<S> {
    /// Records calls to `inner`.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            calls: Mutex::new(Vec::new()),
            stop_after: None,
        }
    }
}

impl<S: RecordSink> RecordSink for Recording<S> {
    async fn put_records(&self, entries: Vec<PutEntry>) -> Result<Vec<EntryOutcome>, CallError> {
        let keys = entries.iter().map(|e| e.partition_key.clone()).collect();
        let bytes = entries.iter().map(PutEntry::size).sum();
        let calls = {
            let mut calls = self.calls.lock().expect("not poisoned");
            calls.push((keys, bytes));
            calls.len()
        };
        let answer = self.inner.put_records(entries).await;
        if let Some((after, stop)) = &self.stop_after
            && calls >= *after
            && let Some(stop) = stop.lock().expect("not poisoned").take()
        {
            let _ = stop.send(());
        }
        answer
    }

    async fn list_shards(&self) -> Result<Vec<ShardRange>, CallError> {
        self.inner.list_shards().await
    }
}

/// Two shards splitting the hash key space in halves, as a 2-shard stream
/// is created.
pub fn two_shards() -> Vec<ShardRange> {
    let half = u128::MAX / 2;
    let range = |i: usize, start, end| ShardRange {
        shard_id: format!("shardId-{i:012}"),
        start,
        end,
    };
    vec![range(0, 0, half), range(1, half + 1, u128::MAX)]
}
