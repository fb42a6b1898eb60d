//! The aggregator function's contract, against the embedded backend: each
//! invocation loads the minutes of its batch's unicorns from the minute
//! store, folds the readings in, emits what is due and saves; a schedule
//! emits what quiet shards left open. Whatever the batches, the shards, the
//! redeliveries and the crashes, the last aggregate of every minute on
//! `wildrydes-aggregated`, and the item the stream processor makes of it,
//! must be exactly the sum, minimums and maximums of that minute's readings,
//! each (unicorn, millisecond) counted once.
//!
//! Events are built as the event source mapping builds them (base64 data,
//! `eventID` = shard and sequence number, the stream's ARN) and decoded as
//! the `bootstrap` decodes them, into `AggregatorEvent`. Expected aggregates
//! are computed here by plain arithmetic ([`expected`]), never by the
//! window under test.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use tokio::time::Instant;
use wildrydes_core::aggregation::{AggregateError, Aggregator};
use wildrydes_core::input::{ShardSource, SourceRecord};
use wildrydes_core::minute_store::MinuteStore;
use wildrydes_core::names::{AGGREGATOR_STATE_TABLE, PipelineName};
use wildrydes_core::rejects::RejectStore;
use wildrydes_core::retry::RetryPolicy;
use wildrydes_core::stream_writer::StreamWriter;
use wildrydes_core::window::{MinuteWindow, WindowRules};
use wildrydes_core::writer::{TableWriter, WriterConfig};
use wildrydes_core::{Aggregate, Reading, StatusTime, UnicornName};
use wildrydes_lambda::aggregator::{AggregatorFunction, Config, handle};
use wildrydes_lambda::kinesis::AggregatorEvent;
use wildrydes_local_aws::workshop::{
    self, AGGREGATES_STREAM, READINGS_STREAM, REJECTS_TABLE, SENSOR_TABLE,
};
use wildrydes_local_aws::{LocalAws, LocalAwsOptions};
use wildrydes_ops::rejects::{list_rejects, redrive};
use wildrydes_testkit::fleet::expected;
use wildrydes_testkit::{bounded, read_stream};

/// An aggregate's key: its minute (epoch ms) and its unicorn.
type Key = (i64, String);

/// 2016-02-12 10:00:00 UTC, in epoch ms: where the tests' readings start.
const T0: i64 = 1_455_271_200_000;

/// A minute, in ms.
const MINUTE: i64 = 60_000;

/// The one shard of `wildrydes` before any resharding.
const SHARD0: &str = "shardId-000000000000";

/// The rules the function runs with here: the default lateness and
/// horizon, and an idle time no test reaches, so that only event time
/// closes minutes unless a test runs the schedule on purpose.
fn rules() -> WindowRules {
    WindowRules {
        allowed_lateness: Duration::from_secs(10),
        horizon: Duration::from_secs(3600),
        idle_after: Duration::from_secs(3600),
    }
}

/// The function's settings over the workshop's tables, with `rules`.
fn config(rules: WindowRules) -> Config {
    Config {
        output_stream: AGGREGATES_STREAM.into(),
        state_table_name: AGGREGATOR_STATE_TABLE.into(),
        rejects_table_name: REJECTS_TABLE.into(),
        rules,
        deadline_margin: Duration::from_secs(1),
    }
}

/// A small deterministic generator (an LCG): the tests need varied and
/// repeatable figures and cuts, not an RNG crate.
struct Lcg(u64);

impl Lcg {
    /// A number in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }

    /// A number in `0..n`, as an `i16`.
    fn below_i16(&mut self, n: u64) -> i16 {
        i16::try_from(self.below(n)).unwrap()
    }
}

/// `count` readings of `name`, one every `every_s` seconds from `from_ms`,
/// each at a random millisecond of its second, walking as the workshop's
/// producer does (a base distance plus up to 19 m, vitals moving by -1, 0
/// or +1 each step); `seed` makes each walk its own.
fn walk(name: &str, from_ms: i64, every_s: i64, count: i64, seed: u64) -> Vec<Reading> {
    let mut rng = Lcg(seed);
    let base = 100 + rng.below_i16(100);
    let (mut magic, mut health) = (150_i16, 150_i16);
    (0..count)
        .map(|i| {
            magic += rng.below_i16(3) - 1;
            health += rng.below_i16(3) - 1;
            let jitter = i64::try_from(rng.below(1000)).unwrap();
            Reading {
                name: UnicornName::new(name).unwrap(),
                status_time: StatusTime::from_epoch_millis(from_ms + i * every_s * 1000 + jitter)
                    .unwrap(),
                latitude: 40.749167,
                longitude: -73.985184,
                distance: base + rng.below_i16(20),
                magic_points: magic,
                health_points: health,
            }
        })
        .collect()
}

/// The walks of `names` over the same `seconds` from `from_ms`, merged in
/// time order: what one shard carries for a fleet.
fn fleet(names: &[&str], from_ms: i64, seconds: i64, seed: u64) -> Vec<Reading> {
    let mut all: Vec<Reading> = (0_u64..)
        .zip(names)
        .flat_map(|(i, name)| walk(name, from_ms, 1, seconds, seed * 100 + i))
        .collect();
    in_time_order(&mut all);
    all
}

fn in_time_order(readings: &mut [Reading]) {
    readings.sort_by(|a, b| (a.status_time, &a.name).cmp(&(b.status_time, &b.name)));
}

/// `readings` cut into consecutive batches of 1 to `max` readings.
fn cuts<'a>(readings: &'a [Reading], rng: &mut Lcg, max: u64) -> Vec<&'a [Reading]> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < readings.len() {
        let len = usize::try_from(1 + rng.below(max)).unwrap();
        let end = (at + len).min(readings.len());
        out.push(&readings[at..end]);
        at = end;
    }
    out
}

/// Asserts that `got` holds exactly `want`, naming every minute that differs.
fn assert_same(what: &str, want: &BTreeMap<Key, Aggregate>, got: &BTreeMap<Key, Aggregate>) {
    let mut wrong = Vec::new();
    for (key, w) in want {
        match got.get(key) {
            None => wrong.push(format!("missing {}", w.to_json())),
            Some(g) if g != w => wrong.push(format!("{} instead of {}", g.to_json(), w.to_json())),
            Some(_) => {}
        }
    }
    for (key, g) in got {
        if !want.contains_key(key) {
            wrong.push(format!("unexpected {}", g.to_json()));
        }
    }
    assert!(
        wrong.is_empty(),
        "{what}: {} of {} minutes wrong:\n{}",
        wrong.len(),
        want.len(),
        wrong.join("\n")
    );
}

/// The EventBridge event of the function's `rate(1 minute)` rule.
fn scheduled_event() -> serde_json::Value {
    serde_json::json!({
        "version": "0",
        "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "000000000000",
        "time": "2026-12-02T10:00:00Z",
        "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:000000000000:rule/WildRydesAggregatorFlush"],
        "detail": {}
    })
}

/// One backend with the workshop's resources, the function over it, and
/// the event source mapping's bookkeeping.
struct Harness {
    local: LocalAws,
    function: AggregatorFunction,
    /// The readings stream's ARN, as events name it (a re-drive puts
    /// rejects back there).
    stream_arn: String,
    /// The last sequence number given, per shard.
    sequences: HashMap<String, u64>,
}

impl Harness {
    async fn new() -> Self {
        let local = LocalAws::start(LocalAwsOptions::default()).await.unwrap();
        workshop::ensure_workshop_resources(&local).await.unwrap();
        let summary = local
            .kinesis_client()
            .describe_stream_summary()
            .stream_name(READINGS_STREAM)
            .send()
            .await
            .unwrap();
        let stream_arn = summary
            .stream_description_summary()
            .unwrap()
            .stream_arn()
            .to_owned();
        let function = AggregatorFunction::new(
            &config(rules()),
            local.kinesis_client(),
            local.dynamodb_client(),
        );
        Self {
            local,
            function,
            stream_arn,
            sequences: HashMap::new(),
        }
    }

    /// The function with other settings, over the same backend.
    fn function_with(&self, config: &Config) -> AggregatorFunction {
        AggregatorFunction::new(
            config,
            self.local.kinesis_client(),
            self.local.dynamodb_client(),
        )
    }

    /// `batch` as records of `shard`, numbered after that shard's last.
    fn records(&mut self, shard: &str, batch: &[Reading]) -> Vec<SourceRecord> {
        let sequence = self.sequences.entry(shard.to_owned()).or_default();
        batch
            .iter()
            .map(|r| {
                *sequence += 1;
                SourceRecord {
                    sub_sequence_number: None,
                    sequence_number: format!("4959{:052}", *sequence),
                    partition_key: r.name.to_string(),
                    data: r.to_json().into_bytes(),
                }
            })
            .collect()
    }

    /// `groups` of readings as Kinesis records of `shard`, as a KPL
    /// producer puts them: a group of one as a plain record, a larger one as
    /// the KPL aggregate of its readings; numbered after that shard's last.
    fn packed(&mut self, shard: &str, groups: &[&[Reading]]) -> Vec<SourceRecord> {
        let sequence = self.sequences.entry(shard.to_owned()).or_default();
        groups
            .iter()
            .map(|group| {
                *sequence += 1;
                let data = match group {
                    [one] => one.to_json().into_bytes(),
                    many => common::kpl(many.iter().map(|r| (r.name.to_string(), r.to_json()))),
                };
                SourceRecord::plain(
                    format!("4959{:052}", *sequence),
                    group[0].name.as_str(),
                    data,
                )
            })
            .collect()
    }

    /// The event the event source mapping makes of `records` of `shard`.
    fn event(&self, shard: &str, records: &[SourceRecord]) -> serde_json::Value {
        common::kinesis_event(&self.stream_arn, shard, records)
    }

    /// `batch` of `shard` as one event.
    fn batch(&mut self, shard: &str, batch: &[Reading]) -> serde_json::Value {
        let records = self.records(shard, batch);
        self.event(shard, &records)
    }

    /// One invocation of the function with `event`, which must succeed.
    /// Invokes with `event` as a troubled stream makes Lambda do: first
    /// `broken`, if given, whose invocation fails when it has something to
    /// emit (Lambda then sends the same batch again); then for real; then
    /// once more if `answer_lost` (all duplicates). Whether `broken` failed.
    async fn invoke_roughly(
        &self,
        event: &serde_json::Value,
        broken: Option<&AggregatorFunction>,
        answer_lost: bool,
    ) -> bool {
        let mut failed = false;
        if let Some(broken) = broken {
            failed = self
                .invoke_with(broken, event, Duration::from_secs(3))
                .await
                .is_err();
        }
        self.invoke(event).await;
        if answer_lost {
            self.invoke(event).await;
        }
        failed
    }

    async fn invoke(&self, event: &serde_json::Value) {
        self.invoke_with(&self.function, event, Duration::from_secs(20))
            .await
            .unwrap();
    }

    /// One invocation of `function` with `event`, decoded as the
    /// `bootstrap` decodes it, within `time`. A success must answer the
    /// empty batch response: the function fails a batch whole or not at all.
    async fn invoke_with(
        &self,
        function: &AggregatorFunction,
        event: &serde_json::Value,
        time: Duration,
    ) -> Result<(), AggregateError> {
        let event: AggregatorEvent = serde_json::from_value(event.clone()).unwrap();
        let response = handle(function, event, Instant::now() + time).await?;
        assert!(
            response.batch_item_failures.is_empty(),
            "{:?}",
            response.batch_item_failures
        );
        Ok(())
    }

    /// The schedule's invocation of `function`.
    async fn schedule(&self, function: &AggregatorFunction) {
        self.invoke_with(function, &scheduled_event(), Duration::from_secs(20))
            .await
            .unwrap();
    }

    /// The schedule once every open minute has been idle long enough: the
    /// function with an idle time of 0 (wall time cannot be moved on).
    async fn schedule_after_idle_time(&self) {
        let idle = self.function_with(&config(WindowRules {
            idle_after: Duration::ZERO,
            ..rules()
        }));
        self.schedule(&idle).await;
    }

    /// Every aggregate on `wildrydes-aggregated`, in stream order.
    async fn emitted(&self) -> Vec<Aggregate> {
        read_stream(&self.local.kinesis_client(), AGGREGATES_STREAM)
            .await
            .iter()
            .map(|r| Aggregate::from_json(&r.data).unwrap())
            .collect()
    }

    /// The last aggregate of every minute on the output stream.
    async fn last_emitted(&self) -> BTreeMap<Key, Aggregate> {
        self.emitted()
            .await
            .into_iter()
            .map(|a| ((a.status_time.epoch_millis(), a.name.to_string()), a))
            .collect()
    }

    /// Runs the stream processor over the whole output stream, in order,
    /// and returns what `UnicornSensorData` then holds.
    async fn table(&self) -> BTreeMap<Key, Aggregate> {
        let kinesis = self.local.kinesis_client();
        let dynamodb = self.local.dynamodb_client();
        let aggregated = read_stream(&kinesis, AGGREGATES_STREAM).await;
        let processor = wildrydes_lambda::stream_processor::Config {
            table_name: SENSOR_TABLE.into(),
            rejects_table_name: REJECTS_TABLE.into(),
            max_in_flight: 4,
            deadline_margin: Duration::from_secs(1),
        }
        .processor(dynamodb.clone());
        let source = ShardSource {
            stream_arn: "arn:aws:kinesis:us-east-1:000000000000:stream/wildrydes-aggregated".into(),
            shard_id: SHARD0.into(),
        };
        for batch in aggregated.chunks(100) {
            let outcome = processor
                .process(&source, batch, Instant::now() + Duration::from_secs(20))
                .await;
            assert_eq!(outcome.first_failure, None, "{:?}", outcome.error);
        }
        let (found, unreadable) =
            wildrydes_ops::aggregates::table_aggregates(&dynamodb, SENSOR_TABLE)
                .await
                .unwrap();
        assert!(unreadable.is_empty(), "{unreadable:?}");
        found
    }

    /// Asserts that the last aggregate of every minute on the output stream,
    /// and the table the stream processor makes of them, are exactly `want`.
    async fn assert_exact(&self, want: &BTreeMap<Key, Aggregate>) {
        assert_same("wildrydes-aggregated", want, &self.last_emitted().await);
        assert_same(SENSOR_TABLE, want, &self.table().await);
    }

    /// Runs the schedule once the idle time has passed, then asserts the
    /// output is exactly the aggregates of `readings`.
    async fn assert_exact_after_idle(&self, readings: &[Reading]) {
        self.schedule_after_idle_time().await;
        self.assert_exact(&expected(readings)).await;
    }

    /// Asserts that no record was refused.
    async fn assert_no_rejects(&self) {
        let rejects = list_rejects(&self.local.dynamodb_client(), REJECTS_TABLE)
            .await
            .unwrap();
        assert!(rejects.is_empty(), "{rejects:?}");
    }

    /// Minutes the store still holds as not emitted (the pending index's
    /// entries).
    async fn pending_minutes(&self) -> i32 {
        self.local
            .dynamodb_client()
            .scan()
            .table_name(AGGREGATOR_STATE_TABLE)
            .filter_expression("attribute_exists(Pending)")
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .count()
    }
}

#[tokio::test]
async fn many_small_batches_of_interleaved_unicorns_with_redeliveries_are_exact() {
    bounded(async {
        let mut h = Harness::new().await;
        let readings = fleet(&FOUR, T0, 6 * 60, 1);
        // Its output stream does not exist: an invocation that has
        // something to emit fails, as one whose PutRecords kept failing.
        let broken = h.function_with(&Config {
            output_stream: "wildrydes-nowhere".into(),
            ..config(rules())
        });
        let mut rng = Lcg(7);
        let mut failed = 0;
        for (i, batch) in cuts(&readings, &mut rng, 40).into_iter().enumerate() {
            let event = h.batch(SHARD0, batch);
            let broken = (i % 4 == 1).then_some(&broken);
            if h.invoke_roughly(&event, broken, i % 3 == 0).await {
                failed += 1;
            }
        }
        assert!(failed > 0, "no invocation failed: the test tested nothing");
        h.assert_exact_after_idle(&readings).await;
        h.assert_no_rejects().await;
    })
    .await;
}

#[tokio::test]
async fn a_late_uploading_device_is_folded_in_exactly_without_rejects() {
    bounded(async {
        let mut h = Harness::new().await;
        let live = fleet(&["Shadowfax", "Rocinante", "Bucephalus"], T0, 6 * 60, 2);
        // Bucephalus was in a tunnel from 50 to 10 minutes before T0: back
        // in coverage, its device uploads what it recorded there (one
        // reading every 5 s, oldest first) along with its live readings,
        // 10 to 56 minutes behind its newest: within the hour's horizon.
        let backlog = walk("Bucephalus", T0 - 50 * MINUTE, 5, 40 * 12, 99);
        let mut rng = Lcg(11);
        let live_batches = cuts(&live, &mut rng, 30);
        let per_batch = backlog.len().div_ceil(live_batches.len());
        let mut backlog_batches = backlog.chunks(per_batch);
        for batch in live_batches {
            let event = h.batch(SHARD0, batch);
            h.invoke(&event).await;
            if let Some(old) = backlog_batches.next() {
                let event = h.batch(SHARD0, old);
                h.invoke(&event).await;
            }
        }
        assert!(backlog_batches.next().is_none());
        h.schedule_after_idle_time().await;
        let mut all = live.clone();
        all.extend(backlog.iter().cloned());
        let want = expected(&all);
        assert_eq!(want.len(), 3 * 6 + 40, "every minute of both");
        h.assert_exact(&want).await;
        h.assert_no_rejects().await;
    })
    .await;
}

/// Four unicorns: the interleaved and resharded fleets.
const FOUR: [&str; 4] = ["Shadowfax", "Rocinante", "Bucephalus", "Pegasus"];

/// Sends five minutes of [`FOUR`] (fleet seed `seed`) through `parents` up
/// to 10:02:30 and through `children` from then on (minute 10:02 straddles
/// the reshard for every unicorn), each shard carrying the unicorns it
/// lists, in small batches taken from the shards in turn (Lambda reads
/// sibling shards in parallel, and a child only once its parents are done);
/// then runs the schedule and checks the output is exact.
async fn reshard(seed: u64, parents: &[(&str, &[&str])], children: &[(&str, &[&str])]) {
    let mut h = Harness::new().await;
    let readings = &fleet(&FOUR, T0, 5 * 60, seed);
    let at = T0 + 2 * MINUTE + 30_000;
    let mut rng = Lcg(at.unsigned_abs());
    for (shards, before) in [(parents, true), (children, false)] {
        let routed: Vec<(&str, Vec<Reading>)> = shards
            .iter()
            .map(|(shard, names)| {
                let mine = readings
                    .iter()
                    .filter(|r| (r.status_time.epoch_millis() < at) == before)
                    .filter(|r| names.contains(&r.name.as_str()))
                    .cloned()
                    .collect();
                (*shard, mine)
            })
            .collect();
        let batches: Vec<(&str, Vec<&[Reading]>)> = routed
            .iter()
            .map(|(shard, mine)| (*shard, cuts(mine, &mut rng, 25)))
            .collect();
        let turns = batches.iter().map(|(_, b)| b.len()).max().unwrap_or(0);
        for turn in 0..turns {
            for (shard, shard_batches) in &batches {
                if let Some(batch) = shard_batches.get(turn) {
                    let event = h.batch(shard, batch);
                    h.invoke(&event).await;
                }
            }
        }
    }
    h.assert_exact_after_idle(readings).await;
}

#[tokio::test]
async fn a_split_shards_minutes_are_completed_by_its_children_exactly() {
    bounded(reshard(
        3,
        &[(SHARD0, &FOUR)],
        &[
            ("shardId-000000000001", &["Shadowfax", "Bucephalus"]),
            ("shardId-000000000002", &["Rocinante", "Pegasus"]),
        ],
    ))
    .await;
}

#[tokio::test]
async fn merged_shards_minutes_are_completed_by_their_child_exactly() {
    bounded(reshard(
        4,
        &[
            ("shardId-000000000003", &["Shadowfax", "Rocinante"]),
            ("shardId-000000000004", &["Bucephalus", "Pegasus"]),
        ],
        &[("shardId-000000000005", &FOUR)],
    ))
    .await;
}

#[tokio::test]
async fn a_reading_beyond_the_horizon_is_a_reject_and_its_redrive_changes_nothing() {
    bounded(async {
        let mut h = Harness::new().await;
        // Three minutes at 10:00, then three at 11:10.
        let mut readings = walk("Shadowfax", T0, 1, 180, 5);
        readings.extend(walk("Shadowfax", T0 + 70 * MINUTE, 1, 180, 6));
        let mut rng = Lcg(13);
        for batch in cuts(&readings, &mut rng, 60) {
            let event = h.batch(SHARD0, batch);
            h.invoke(&event).await;
        }
        h.schedule_after_idle_time().await;
        let want = expected(&readings);
        assert_eq!(want.len(), 6);
        h.assert_exact(&want).await;
        let emitted = h.emitted().await.len();

        // A reading of minute 10:01 now: 70 minutes behind Shadowfax's
        // newest, more than the hour's horizon.
        let straggler = Reading {
            status_time: StatusTime::from_epoch_millis(T0 + MINUTE + 30_001).unwrap(),
            distance: 1,
            magic_points: 1,
            health_points: 1,
            ..readings[0].clone()
        };
        assert!(
            readings
                .iter()
                .all(|r| r.status_time != straggler.status_time)
        );
        let event = h.batch(SHARD0, std::slice::from_ref(&straggler));
        h.invoke(&event).await;
        let dynamodb = h.local.dynamodb_client();
        let rejects = list_rejects(&dynamodb, REJECTS_TABLE).await.unwrap();
        assert_eq!(rejects.len(), 1, "{rejects:?}");
        assert_eq!(rejects[0].pipeline, PipelineName::Aggregate);
        assert_eq!(rejects[0].data, straggler.to_json().into_bytes());
        assert!(
            rejects[0].reason.starts_with("beyond the horizon"),
            "{}",
            rejects[0].reason
        );
        assert_eq!(h.emitted().await.len(), emitted, "something was emitted");
        h.assert_exact(&want).await;

        // An operator re-drives it: back on wildrydes, read again, refused
        // again; the complete minute is left as it is.
        let kinesis = h.local.kinesis_client();
        let report = redrive(&dynamodb, &kinesis, REJECTS_TABLE, |_| true)
            .await
            .unwrap();
        assert_eq!(report.redriven.len(), 1, "{:?}", report.skipped);
        let back = read_stream(&kinesis, READINGS_STREAM).await;
        assert_eq!(back.len(), 1);
        let event = h.event(SHARD0, &back);
        h.invoke(&event).await;
        let rejects = list_rejects(&dynamodb, REJECTS_TABLE).await.unwrap();
        assert_eq!(rejects.len(), 1, "{rejects:?}");
        assert_eq!(rejects[0].sequence_number, back[0].sequence_number);
        assert!(rejects[0].reason.starts_with("beyond the horizon"));
        assert_eq!(h.emitted().await.len(), emitted, "something was emitted");
        h.assert_exact(&want).await;
    })
    .await;
}

#[tokio::test]
async fn the_schedule_emits_a_quiet_shards_open_minutes_once() {
    bounded(async {
        let mut h = Harness::new().await;
        // Two and a half minutes, then the shard falls quiet: minute 10:02
        // of each unicorn has no later reading to close it.
        let readings = fleet(&["Shadowfax", "Rocinante"], T0, 150, 6);
        let mut rng = Lcg(17);
        for batch in cuts(&readings, &mut rng, 30) {
            let event = h.batch(SHARD0, batch);
            h.invoke(&event).await;
        }
        let want = expected(&readings);
        let last_minute = T0 + 2 * MINUTE;
        let closed: BTreeMap<Key, Aggregate> = want
            .iter()
            .filter(|((minute, _), _)| *minute < last_minute)
            .map(|(k, a)| (k.clone(), a.clone()))
            .collect();
        assert_same("before the schedule", &closed, &h.last_emitted().await);
        assert_eq!(h.pending_minutes().await, 2);

        // Within the idle time, the schedule leaves them open.
        let before = h.emitted().await.len();
        h.schedule(&h.function).await;
        assert_eq!(h.emitted().await.len(), before);

        // Past it, the schedule emits them, once.
        h.schedule_after_idle_time().await;
        assert_eq!(h.emitted().await.len(), before + 2);
        h.assert_exact(&want).await;
        assert_eq!(h.pending_minutes().await, 0);
        h.schedule_after_idle_time().await;
        assert_eq!(h.emitted().await.len(), before + 2, "emitted twice");
    })
    .await;
}

#[tokio::test]
async fn a_crash_between_emit_and_save_or_before_the_answer_replays_exactly() {
    bounded(async {
        let mut h = Harness::new().await;
        let names = ["Shadowfax", "Rocinante", "Bucephalus"];
        let readings = fleet(&names, T0, 4 * 60, 7);
        // The function's own parts, to stop it between emitting and saving.
        let dynamodb = h.local.dynamodb_client();
        let crashing = Aggregator::new(
            StreamWriter::new(
                h.local.kinesis_client(),
                AGGREGATES_STREAM,
                RetryPolicy::default(),
            ),
            RejectStore::new(TableWriter::new(
                dynamodb.clone(),
                REJECTS_TABLE,
                WriterConfig::default(),
            )),
            MinuteStore::new(dynamodb, AGGREGATOR_STATE_TABLE, rules().horizon),
        );
        let source = ShardSource {
            stream_arn: h.stream_arn.clone(),
            shard_id: SHARD0.into(),
        };
        let mut rng = Lcg(19);
        let mut emitted_by_crashes = 0;
        for (i, batch) in cuts(&readings, &mut rng, 40).into_iter().enumerate() {
            let records = h.records(SHARD0, batch);
            let event = h.event(SHARD0, &records);
            if i % 3 == 0 {
                // Emitted, then the process died: nothing saved, no answer.
                let mut window = MinuteWindow::new(rules());
                let now = chrono::Utc::now().timestamp_millis();
                let deadline = Instant::now() + Duration::from_secs(20);
                let outcome = crashing
                    .run(&mut window, &source, &records, now, deadline)
                    .await
                    .unwrap();
                emitted_by_crashes += outcome.emitted.len();
            }
            h.invoke(&event).await;
            if i % 5 == 2 {
                // Saved, then the process died before answering.
                h.invoke(&event).await;
            }
        }
        assert!(emitted_by_crashes > 0, "no crash emitted anything");
        h.assert_exact_after_idle(&readings).await;
    })
    .await;
}

/// `readings` as a KPL producer sends them: runs of 1 to 12 readings (of
/// every unicorn), each one Kinesis record, and the records in batches of
/// 1 to 5.
fn kpl_batches<'a>(readings: &'a [Reading], rng: &mut Lcg) -> Vec<Vec<&'a [Reading]>> {
    let groups = cuts(readings, rng, 12);
    let mut out = Vec::new();
    let mut at = 0;
    while at < groups.len() {
        let len = usize::try_from(1 + rng.below(5)).unwrap();
        let end = (at + len).min(groups.len());
        out.push(groups[at..end].to_vec());
        at = end;
    }
    out
}

#[tokio::test]
async fn kpl_aggregates_in_small_batches_of_interleaved_unicorns_with_redeliveries_are_exact() {
    bounded(async {
        let mut h = Harness::new().await;
        let readings = fleet(&FOUR, T0, 6 * 60, 8);
        let broken = h.function_with(&Config {
            output_stream: "wildrydes-nowhere".into(),
            ..config(rules())
        });
        let mut rng = Lcg(23);
        let batches = kpl_batches(&readings, &mut rng);
        assert!(batches.len() > 20, "{} batches", batches.len());
        let (mut aggregates, mut failed) = (0, 0);
        for (i, groups) in batches.iter().enumerate() {
            let records = h.packed(SHARD0, groups);
            aggregates += records
                .iter()
                .filter(|r| wildrydes_core::kpl::is_aggregated(&r.data))
                .count();
            let event = h.event(SHARD0, &records);
            let broken = (i % 2 == 1).then_some(&broken);
            if h.invoke_roughly(&event, broken, i % 3 == 0).await {
                failed += 1;
            }
        }
        assert!(aggregates > 2 * batches.len(), "{aggregates} aggregates");
        assert!(failed > 0, "no invocation failed: the test tested nothing");
        h.assert_exact_after_idle(&readings).await;
        h.assert_no_rejects().await;
    })
    .await;
}

#[tokio::test]
async fn a_corrupt_aggregate_is_one_reject_and_the_readings_beside_it_are_exact() {
    bounded(async {
        let mut h = Harness::new().await;
        let readings = fleet(&["Shadowfax", "Rocinante", "Bucephalus"], T0, 4 * 60, 9);
        let mut rng = Lcg(29);
        let batches = kpl_batches(&readings, &mut rng);
        // One aggregate in the middle of the run arrives with a bad MD5.
        let (at, which) = batches
            .iter()
            .enumerate()
            .skip(batches.len() / 2)
            .find_map(|(i, groups)| Some((i, groups.iter().position(|g| g.len() > 3)?)))
            .unwrap();
        let lost: &[Reading] = batches[at][which];
        let mut bad = None;
        for (i, groups) in batches.iter().enumerate() {
            let mut records = h.packed(SHARD0, groups);
            if i == at {
                records[which] = common::corrupt(records[which].clone());
                bad = Some(records[which].clone());
            }
            let event = h.event(SHARD0, &records);
            h.invoke(&event).await;
        }
        let bad = bad.unwrap();
        let kept: Vec<Reading> = readings
            .iter()
            .filter(|r| !lost.contains(r))
            .cloned()
            .collect();
        assert_eq!(kept.len(), readings.len() - lost.len());
        h.assert_exact_after_idle(&kept).await;
        let rejects = list_rejects(&h.local.dynamodb_client(), REJECTS_TABLE)
            .await
            .unwrap();
        common::assert_the_corrupt_aggregate_is_the_one_reject(
            &rejects,
            PipelineName::Aggregate,
            &bad,
        );
    })
    .await;
}
