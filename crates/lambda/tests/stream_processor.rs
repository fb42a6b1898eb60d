//! The stream processor's handler, called with real Kinesis event files built
//! from the workshop's data, against the embedded DynamoDB.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;
use wildrydes_core::Aggregate;
use wildrydes_core::item::{Item, aggregate_to_item};
use wildrydes_core::rejects::Reject;
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
    let processor = setup.config.processor(setup.local.dynamodb_client());
    let response = handle(&processor, event, Instant::now() + Duration::from_secs(20)).await;
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
