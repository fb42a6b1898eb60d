//! Helpers shared by the producer's integration tests: a bounded test body,
//! the embedded backend, settings for fast seeded runs, and reading a stream
//! back from TRIM_HORIZON.

#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use aws_sdk_kinesis::types::ShardIteratorType;
use wildrydes_core::{Reading, StatusTime, UnicornName};
use wildrydes_local_aws::{LocalAws, LocalAwsOptions, ensure_stream};
use wildrydes_producer::kinesis::KinesisStream;
use wildrydes_producer::sender::{CallError, EntryOutcome, PutEntry, RecordSink};
use wildrydes_producer::shards::ShardRange;
use wildrydes_producer::{Settings, Summary, produce};

/// Longest any producer test may take; they take seconds.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(120);

/// StatusTime of the first reading of every test run.
pub const START: &str = "2017-06-05 09:00:00.000";

/// Runs `test`, failing if it takes longer than [`TEST_TIMEOUT`].
pub async fn bounded<F: Future>(test: F) -> F::Output {
    match tokio::time::timeout(TEST_TIMEOUT, test).await {
        Ok(output) => output,
        Err(_) => panic!("test did not finish within {TEST_TIMEOUT:?}"),
    }
}

/// A backend on random ports, optionally throttling like Kinesis.
pub async fn local_aws(enforce_limits: bool) -> LocalAws {
    LocalAws::start(LocalAwsOptions {
        enforce_limits,
        ..LocalAwsOptions::default()
    })
    .await
    .expect("the local backend starts")
}

/// Creates `stream` with `shards` shards on `local`.
pub async fn stream(local: &LocalAws, name: &str, shards: i32) {
    ensure_stream(&local.kinesis_client(), name, shards)
        .await
        .expect("the stream is created");
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

/// One record read back from a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamRecord {
    /// Its shard.
    pub shard_id: String,
    /// Its sequence number.
    pub sequence_number: String,
    /// Its partition key.
    pub partition_key: String,
    /// Its data, as text.
    pub data: String,
}

impl StreamRecord {
    /// The reading it holds.
    pub fn reading(&self) -> Reading {
        Reading::from_json(self.data.as_bytes()).expect("a valid reading")
    }
}

/// Every record of `stream`, shard by shard (in ListShards order), each
/// shard in sequence order, from TRIM_HORIZON.
pub async fn read_stream(local: &LocalAws, stream: &str) -> Vec<StreamRecord> {
    let kinesis = local.kinesis_client();
    let shards = kinesis
        .list_shards()
        .stream_name(stream)
        .send()
        .await
        .expect("ListShards");
    let mut out = Vec::new();
    for shard in shards.shards() {
        let mut iterator = kinesis
            .get_shard_iterator()
            .stream_name(stream)
            .shard_id(shard.shard_id())
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .expect("GetShardIterator")
            .shard_iterator()
            .map(str::to_owned);
        while let Some(it) = iterator {
            let page = kinesis
                .get_records()
                .shard_iterator(it)
                .limit(10_000)
                .send()
                .await
                .expect("GetRecords");
            if page.records().is_empty() {
                break;
            }
            for r in page.records() {
                out.push(StreamRecord {
                    shard_id: shard.shard_id().to_owned(),
                    sequence_number: r.sequence_number().to_owned(),
                    partition_key: r.partition_key().unwrap_or_default().to_owned(),
                    data: String::from_utf8(r.data().as_ref().to_vec()).expect("UTF-8 data"),
                });
            }
            iterator = page.next_shard_iterator().map(str::to_owned);
        }
    }
    out
}

/// The records of `stream` grouped per unicorn, in stream order.
pub fn per_unicorn(records: &[StreamRecord]) -> std::collections::BTreeMap<String, Vec<Reading>> {
    let mut map = std::collections::BTreeMap::<String, Vec<Reading>>::new();
    for r in records {
        map.entry(r.partition_key.clone())
            .or_default()
            .push(r.reading());
    }
    map
}

/// Asserts that each unicorn's readings are exactly seconds `0..seconds` of
/// the run, in order: nothing lost, duplicated or reordered.
pub fn assert_complete_and_ordered(records: &[StreamRecord], unicorns: usize, seconds: u64) {
    let start = StatusTime::parse(START).expect("a valid time");
    let groups = per_unicorn(records);
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
