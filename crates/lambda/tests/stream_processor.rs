//! The stream processor's handler, called with real Kinesis event files built
//! from the workshop's data, and with events of KPL aggregates as a shard
//! delivers them, against the embedded DynamoDB.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use common::{FailingWrites, Shard, batches, corrupt, deliver};
use serde_json::Value;
use tokio::time::Instant;
use wildrydes_core::Aggregate;
use wildrydes_core::input::SourceRecord;
use wildrydes_core::item::{Item, aggregate_to_item};
use wildrydes_core::process::Processor;
use wildrydes_core::rejects::Reject;
use wildrydes_core::writer::MAX_BATCH_PUTS;
use wildrydes_lambda::kinesis::ShardEvent;
use wildrydes_lambda::stream_processor::{Config, handle};
use wildrydes_local_aws::{LocalAws, LocalAwsOptions, workshop};
use wildrydes_testkit::{bounded, scan_table};

const DAY: &str = include_str!("../../../tests/fixtures/shadowfax-2016-02-12.json");

fn event(name: &str) -> ShardEvent {
    let path = format!(
        "{}/../../tests/fixtures/events/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The items the table must hold for these fixture lines.
fn items_of<'a>(lines: impl Iterator<Item = &'a str>) -> Vec<Item> {
    let mut items: Vec<_> = lines
        .map(|l| aggregate_to_item(&Aggregate::from_json(l.as_bytes()).unwrap()))
        .collect();
    sort(&mut items);
    items
}

fn sort(items: &mut [Item]) {
    items.sort_by_key(|i| {
        (
            i["Name"].as_s().unwrap().clone(),
            i["StatusTime"].as_n().unwrap().parse::<i64>().unwrap(),
        )
    });
}

struct Setup {
    local: LocalAws,
    config: Config,
}

impl Setup {
    /// What the sensor table holds, sorted as [`items_of`] sorts.
    async fn table(&self) -> Vec<Item> {
        let mut items = scan_table(&self.local.dynamodb_client(), workshop::SENSOR_TABLE).await;
        sort(&mut items);
        items
    }

    /// What the rejects table holds.
    async fn rejects(&self) -> Vec<Reject> {
        scan_table(&self.local.dynamodb_client(), workshop::REJECTS_TABLE)
            .await
            .iter()
            .map(|i| Reject::from_item(i).unwrap())
            .collect()
    }
}

async fn setup() -> Setup {
    let local = LocalAws::start(LocalAwsOptions::default()).await.unwrap();
    workshop::ensure_workshop_resources(&local).await.unwrap();
    let config = Config {
        table_name: workshop::SENSOR_TABLE.into(),
        rejects_table_name: workshop::REJECTS_TABLE.into(),
        max_in_flight: 4,
        deadline_margin: Duration::from_secs(1),
    };
    Setup { local, config }
}

/// Runs `event` through the handler; returns the sequence number Lambda is
/// told to resume at, if any.
async fn invoke(setup: &Setup, event: ShardEvent) -> Option<String> {
    answer(
        &setup.config.processor(setup.local.dynamodb_client()),
        event,
    )
    .await
}

/// Runs `event` through the handler over `processor`; returns the sequence
/// number Lambda is told to resume at, if any.
async fn answer(processor: &Processor, event: ShardEvent) -> Option<String> {
    let response = handle(processor, event, Instant::now() + Duration::from_secs(20)).await;
    assert!(response.batch_item_failures.len() <= 1);
    response
        .batch_item_failures
        .first()
        .map(|f| f.item_identifier.clone().unwrap_or_default())
}

#[tokio::test]
async fn all_good_records_land_as_the_workshop_stored_them() {
    bounded(async {
        let s = setup().await;
        assert_eq!(invoke(&s, event("all-good.json")).await, None);
        assert_eq!(s.table().await, items_of(DAY.lines().take(100)));
        assert!(s.rejects().await.is_empty());
        // Delivered again (at-least-once): same table, no failure.
        assert_eq!(invoke(&s, event("all-good.json")).await, None);
        assert_eq!(s.table().await, items_of(DAY.lines().take(100)));
    })
    .await;
}

#[tokio::test]
async fn a_whole_day_in_one_event() {
    bounded(async {
        let s = setup().await;
        assert_eq!(invoke(&s, event("whole-day.json")).await, None);
        let items = s.table().await;
        assert_eq!(items.len(), 1440);
        assert_eq!(items, items_of(DAY.lines()));
    })
    .await;
}

#[tokio::test]
async fn duplicates_land_once_and_the_last_delivery_wins() {
    bounded(async {
        let s = setup().await;
        assert_eq!(invoke(&s, event("duplicates.json")).await, None);
        let mut expected = items_of(DAY.lines().take(3));
        // The batch delivered minute 00:00 again, corrected, after its first copy.
        expected[0].insert(
            "Distance".into(),
            aws_sdk_dynamodb::types::AttributeValue::N("1400".into()),
        );
        assert_eq!(s.table().await, expected);
    })
    .await;
}

#[tokio::test]
async fn garbage_is_rejected_with_its_bytes_and_good_records_beside_it_are_written() {
    bounded(async {
        let s = setup().await;
        let sent = event("garbage.json");
        assert_eq!(invoke(&s, sent.clone()).await, None);
        assert_eq!(s.table().await, items_of(DAY.lines().take(3)));
        let mut rejects = s.rejects().await;
        rejects.sort_by(|a, b| a.sequence_number.cmp(&b.sequence_number));
        let bad: Vec<_> = [1, 3, 4].iter().map(|&i| &sent.records[i]).collect();
        assert_eq!(rejects.len(), 3);
        for (reject, record) in rejects.iter().zip(bad) {
            assert_eq!(reject.data, record.kinesis.data, "raw bytes kept");
            assert_eq!(&reject.sequence_number, &record.kinesis.sequence_number);
            assert_eq!(reject.shard_id, "shardId-000000000000");
            assert_eq!(reject.stream_arn, record.event_source_arn.clone().unwrap());
            assert_eq!(
                reject.pipeline,
                wildrydes_core::names::PipelineName::Process
            );
            assert!(
                reject.reason.starts_with("record is not JSON"),
                "{}",
                reject.reason
            );
        }
        // A replay stores each reject once.
        assert_eq!(invoke(&s, sent).await, None);
        assert_eq!(s.rejects().await.len(), 3);
    })
    .await;
}

#[tokio::test]
async fn every_validation_failure_is_kept_with_its_reason() {
    bounded(async {
        let s = setup().await;
        let sent = event("invalid.json");
        assert_eq!(invoke(&s, sent.clone()).await, None);
        assert_eq!(s.table().await, items_of(DAY.lines().take(12)));
        let by_sequence: HashMap<String, String> = s
            .rejects()
            .await
            .into_iter()
            .map(|r| (r.sequence_number, r.reason))
            .collect();
        let expected = [
            "record is a JSON array, expected an object",
            "field MaxHealthPoints is missing",
            "field Distance must be an integer, found \"far\"",
            "field Distance is 40000, outside 0..=32767",
            "record is not JSON (number out of range",
            "MinMagicPoints 150 is above MaxMagicPoints 149",
            "field Name is empty",
            "field Name has 33 characters, more than the 32 allowed",
            "field Name contains control characters: \"Shadow\\u{7}fax\"",
            "field StatusTime \"12/02/2016 00:00\" is not a time",
            "field StatusTime 2016-02-12 00:00:30.000 of an aggregate must be the start of a minute",
            "record is 20033 bytes, more than the 16384 accepted",
        ];
        assert_eq!(by_sequence.len(), expected.len());
        for (i, prefix) in expected.iter().enumerate() {
            let record = &sent.records[2 * i + 1];
            let reason = &by_sequence[&record.kinesis.sequence_number];
            assert!(reason.starts_with(prefix), "record {}: {reason:?} should start with {prefix:?}", 2 * i + 1);
        }
    })
    .await;
}

#[tokio::test]
async fn a_missing_table_fails_the_batch_at_its_first_record() {
    bounded(async {
        let mut s = setup().await;
        s.config.table_name = "NoSuchTable".into();
        let sent = event("all-good.json");
        let first = sent.records[0].kinesis.sequence_number.clone();
        assert_eq!(invoke(&s, sent).await, Some(first));
    })
    .await;
}

#[test]
fn a_missing_table_name_is_a_clear_startup_error() {
    // SAFETY of the test: this binary's other tests never read TABLE_NAME.
    let error = temp_env_unset("TABLE_NAME", Config::from_env).unwrap_err();
    assert_eq!(
        error.to_string(),
        "environment variable TABLE_NAME is not set: set it to the DynamoDB table that receives the aggregates (UnicornSensorData in the workshop)"
    );
}

fn temp_env_unset<T>(name: &str, f: impl FnOnce() -> T) -> T {
    assert!(
        std::env::var_os(name).is_none(),
        "{name} is set in the test environment"
    );
    f()
}

// KPL aggregates: each user record is one aggregate of wildrydes-aggregated.

/// The unicorns of the fleet, and what each adds to the workshop's
/// distance, so that each has figures of its own.
const FLEET: [(&str, i64); 3] = [("Shadowfax", 0), ("Rocinante", 1), ("Bucephalus", 2)];

/// The workshop's first `minutes` minutes for each unicorn of [`FLEET`],
/// interleaved minute by minute, as one shard carries a fleet's aggregates.
fn fleet_minutes(minutes: usize) -> Vec<Value> {
    DAY.lines()
        .take(minutes)
        .flat_map(|line| {
            let shadowfax: Value = serde_json::from_str(line).unwrap();
            FLEET.map(|(name, more)| {
                let mut a = shadowfax.clone();
                a["Name"] = name.into();
                a["Distance"] = (a["Distance"].as_i64().unwrap() + more).into();
                a
            })
        })
        .collect()
}

/// The item `aggregate` (its JSON) must be, by hand: the name, the minute
/// in epoch milliseconds, the five figures as numbers.
fn item_of(aggregate: &Value) -> Item {
    let time = aggregate["StatusTime"].as_str().unwrap();
    let ms = chrono::NaiveDateTime::parse_from_str(time, "%Y-%m-%d %H:%M:%S%.3f")
        .unwrap()
        .and_utc()
        .timestamp_millis();
    let mut item = Item::from([
        (
            "Name".to_owned(),
            AttributeValue::S(aggregate["Name"].as_str().unwrap().to_owned()),
        ),
        ("StatusTime".to_owned(), AttributeValue::N(ms.to_string())),
    ]);
    for figure in [
        "Distance",
        "MinMagicPoints",
        "MaxMagicPoints",
        "MinHealthPoints",
        "MaxHealthPoints",
    ] {
        let n = aggregate[figure].as_i64().unwrap();
        item.insert(figure.to_owned(), AttributeValue::N(n.to_string()));
    }
    item
}

/// The items of `aggregates`, sorted as the table is.
fn items_of_json<'a>(aggregates: impl IntoIterator<Item = &'a Value>) -> Vec<Item> {
    let mut items: Vec<Item> = aggregates.into_iter().map(item_of).collect();
    sort(&mut items);
    items
}

/// A user record (or plain record) of `aggregate`: its unicorn, its JSON.
fn payload(aggregate: &Value) -> (String, Vec<u8>) {
    (
        aggregate["Name"].as_str().unwrap().to_owned(),
        aggregate.to_string().into_bytes(),
    )
}

/// `aggregates` packed as a KPL producer packs them: consecutive runs of
/// `sizes[i % len]` user records per Kinesis record, a size of 0 meaning
/// one plain record (producers mix both).
fn pack(shard: &mut Shard, aggregates: &[Value], sizes: &[usize]) -> Vec<SourceRecord> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < aggregates.len() {
        let size = sizes[out.len() % sizes.len()];
        if size == 0 {
            let (key, data) = payload(&aggregates[at]);
            out.push(shard.plain(&key, data));
            at += 1;
        } else {
            let end = (at + size).min(aggregates.len());
            out.push(shard.aggregate(aggregates[at..end].iter().map(payload)));
            at = end;
        }
    }
    out
}

#[tokio::test]
async fn kpl_aggregates_in_small_batches_of_interleaved_unicorns_land_exactly() {
    bounded(async {
        let s = setup().await;
        let mut shard = Shard::of("wildrydes-aggregated");
        let aggregates = fleet_minutes(40);
        let records = pack(&mut shard, &aggregates, &[4, 0, 7, 3, 0, 9, 2, 5]);
        let events = batches(&records, &[3, 2, 4, 1, 5]);
        assert!(events.len() >= 5, "several batches");
        assert!(
            events.iter().any(|e| e
                .iter()
                .filter(|r| wildrydes_core::kpl::is_aggregated(&r.data))
                .count()
                >= 3),
            "several aggregates in one event"
        );
        for event in &events {
            assert_eq!(invoke(&s, shard.decoded(event)).await, None);
        }
        let want = items_of_json(&aggregates);
        assert_eq!(want.len(), 120);
        assert_eq!(s.table().await, want);
        assert!(s.rejects().await.is_empty(), "{:?}", s.rejects().await);
        // A batch delivered again (at-least-once): the same table.
        assert_eq!(invoke(&s, shard.decoded(&events[2])).await, None);
        assert_eq!(s.table().await, want);
    })
    .await;
}

#[tokio::test]
async fn a_corrupt_aggregate_is_one_reject_and_the_records_beside_it_are_written() {
    bounded(async {
        let s = setup().await;
        let mut shard = Shard::of("wildrydes-aggregated");
        let aggregates = fleet_minutes(5);
        let [first, good @ .., last] = &aggregates[..] else {
            unreachable!()
        };
        let (key, data) = payload(first);
        let before = shard.plain(&key, data);
        let good_aggregate = shard.aggregate(good[..4].iter().map(payload));
        let bad = corrupt(shard.aggregate(good[4..9].iter().map(payload)));
        let after_aggregate = shard.aggregate(good[9..].iter().map(payload));
        let (key, data) = payload(last);
        let after = shard.plain(&key, data);
        let sent = [before, good_aggregate, bad.clone(), after_aggregate, after];
        assert_eq!(invoke(&s, shard.decoded(&sent)).await, None);

        let written: Vec<&Value> = [first]
            .into_iter()
            .chain(&good[..4])
            .chain(&good[9..])
            .chain([last])
            .collect();
        assert_eq!(s.table().await, items_of_json(written.iter().copied()));
        let rejects = s.rejects().await;
        common::assert_the_corrupt_aggregate_is_the_one_reject(
            &rejects,
            wildrydes_core::names::PipelineName::Process,
            &bad,
        );
        assert_eq!(
            rejects[0].record_id(),
            format!(
                "wildrydes-aggregated/shardId-000000000000/{}",
                bad.sequence_number
            )
        );
        // Delivered again: the same one reject, the same table.
        assert_eq!(invoke(&s, shard.decoded(&sent)).await, None);
        assert_eq!(s.rejects().await.len(), 1);
        assert_eq!(s.table().await, items_of_json(written.iter().copied()));
    })
    .await;
}

#[tokio::test]
async fn a_corrupt_aggregate_as_large_as_producers_fill_them_is_said_to_be_one() {
    bounded(async {
        let s = setup().await;
        let mut shard = Shard::of("wildrydes-aggregated");
        // 300 minutes of the fleet in one record: about 45 KB, far below
        // the 1 MiB a producer fills a record to, far above one aggregate.
        let aggregates = fleet_minutes(100);
        let bad = corrupt(shard.aggregate(aggregates.iter().map(payload)));
        assert!(bad.data.len() > 16_384, "{} bytes", bad.data.len());
        let (key, data) = payload(&aggregates[0]);
        let good = shard.plain(&key, data);
        assert_eq!(invoke(&s, shard.decoded(&[bad.clone(), good])).await, None);
        assert_eq!(s.table().await, items_of_json(&aggregates[..1]));
        let rejects = s.rejects().await;
        assert_eq!(rejects.len(), 1, "{rejects:?}");
        assert_eq!(rejects[0].sequence_number, bad.sequence_number);
        assert!(
            rejects[0]
                .reason
                .starts_with("record is a KPL aggregate that cannot be read"),
            "{}",
            rejects[0].reason
        );
    })
    .await;
}

#[tokio::test]
async fn a_bad_user_record_is_a_reject_named_by_its_place_in_the_aggregate() {
    bounded(async {
        let s = setup().await;
        let mut shard = Shard::of("wildrydes-aggregated");
        let aggregates = fleet_minutes(2);
        let mut users: Vec<(String, Vec<u8>)> = aggregates.iter().map(payload).collect();
        users.insert(2, ("Rocinante".into(), br#"{"Name":"Rocinante"}"#.to_vec()));
        let sent = [shard.aggregate(users)];
        assert_eq!(invoke(&s, shard.decoded(&sent)).await, None);
        assert_eq!(s.table().await, items_of_json(&aggregates));
        let rejects = s.rejects().await;
        assert_eq!(rejects.len(), 1, "{rejects:?}");
        let reject = &rejects[0];
        assert!(reject.reason.ends_with(" is missing"), "{}", reject.reason);
        assert_eq!(reject.data, br#"{"Name":"Rocinante"}"#);
        assert_eq!(reject.partition_key, "Rocinante");
        assert_eq!(
            (reject.sequence_number.as_str(), reject.sub_sequence_number),
            (sent[0].sequence_number.as_str(), Some(2))
        );
        assert_eq!(
            reject.record_id(),
            format!(
                "wildrydes-aggregated/shardId-000000000000/{}/2",
                sent[0].sequence_number
            )
        );
    })
    .await;
}

#[tokio::test]
async fn a_write_failing_in_the_middle_of_an_aggregate_resumes_at_that_aggregate() {
    bounded(async {
        let s = setup().await;
        let mut shard = Shard::of("wildrydes-aggregated");
        let aggregates = fleet_minutes(40);
        // A (10 user records), B (60), C (plain), D (12), E (20), F (plain),
        // G (16): 120 user records, delivered 4 Kinesis records at a time.
        let records = pack(&mut shard, &aggregates, &[10, 60, 0, 12, 20, 0, 16]);
        assert_eq!(records.len(), 7);
        let b = &records[1];
        // The first batch's items go in calls of 25, in order: the call
        // holding B's 31st user record (item 40) starts at item 25, B's
        // 16th user record. It fails once, for good.
        let poisoned = &aggregates[10 + 30];
        let minute = item_of(poisoned)["StatusTime"]
            .as_n()
            .unwrap()
            .parse()
            .unwrap();
        let name = poisoned["Name"].as_str().unwrap();
        let failing = FailingWrites::new(workshop::SENSOR_TABLE, name, minute, 1);
        let processor = s
            .config
            .processor(failing.client(&s.local.dynamodb_client()));
        assert_eq!(MAX_BATCH_PUTS, 25, "the calls this test cuts B by");

        let mut tables = Vec::new();
        let answers = deliver(&shard, &records, 4, async |event| {
            let answer = answer(&processor, serde_json::from_value(event).unwrap()).await;
            tables.push(s.table().await);
            answer
        })
        .await;
        assert_eq!(failing.failed.load(Ordering::SeqCst), 1);
        assert_eq!(
            answers,
            [Some(b.sequence_number.clone()), None, None],
            "the retry resumes at B"
        );
        // After the failed invocation, B stood half written: its first
        // user records in the table, the failed call's not.
        let after_failure = &tables[0];
        assert!(after_failure.contains(&item_of(&aggregates[10])));
        assert!(!after_failure.contains(&item_of(poisoned)));
        assert!(after_failure.len() < 83);
        // Lambda's retry from B: every reading's item, exactly.
        assert_eq!(s.table().await, items_of_json(&aggregates));
        assert!(s.rejects().await.is_empty());
    })
    .await;
}
