//! Decoding a Lambda Kinesis event of 1,000 records, as `lambda_runtime`
//! decodes it (serde_json through `serde_path_to_error`), into the types the
//! `bootstrap`s take and into `aws_lambda_events`' types they replaced:
//!
//! - `shard_event` / `kinesis_event`: the stream processor's and the alarm's
//!   event;
//! - `aggregator_event`: the aggregator's event, a batch of `wildrydes`
//!   (readings) decoded as `AggregatorEvent`, the untagged enum that tells
//!   it from the schedule's event (serde buffers the event once to try both);
//! - `scheduled_event`: the schedule's EventBridge event (one, no records),
//!   as the same type.
//!
//! Run: `cargo bench -p wildrydes-lambda --bench events` (or `cargo xtask
//! bench --only handler`). Results land in `target/criterion/decode/`.

#![allow(clippy::unwrap_used)]

use std::hint::black_box;

use aws_lambda_events::event::kinesis::KinesisEvent;
use base64::Engine as _;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde::de::DeserializeOwned;
use wildrydes_benches::fixture;
use wildrydes_lambda::kinesis::{AggregatorEvent, ShardEvent};
use wildrydes_testkit::readings_of_minute;

/// Records per event: a large Lambda batch.
const RECORDS: usize = 1_000;

/// Decodes `body` as `lambda_runtime` 1.5 does.
fn decode<T: DeserializeOwned>(body: &[u8]) -> T {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).unwrap()
}

/// `event` with readings in place of its records' data (and partition
/// keys): a batch of `wildrydes` as Lambda sends the aggregator.
fn readings_event(event: &[u8]) -> Vec<u8> {
    let mut value: serde_json::Value = serde_json::from_slice(event).unwrap();
    let readings = fixture::aggregates(RECORDS.div_ceil(60))
        .iter()
        .flat_map(|a| readings_of_minute(a, 250))
        .collect::<Vec<_>>();
    let records = value["Records"].as_array_mut().unwrap();
    assert!(readings.len() >= records.len());
    for (record, reading) in records.iter_mut().zip(&readings) {
        let data = base64::engine::general_purpose::STANDARD.encode(reading.to_json());
        record["kinesis"]["data"] = serde_json::json!(data);
        record["kinesis"]["partitionKey"] = serde_json::json!(reading.name.as_str());
    }
    serde_json::to_vec(&value).unwrap()
}

/// The event of the aggregator's `rate(1 minute)` EventBridge rule.
fn scheduled_event() -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "version": "0",
        "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": "2026-12-02T10:00:00Z",
        "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/WildRydesAggregatorFlush"],
        "detail": {}
    }))
    .unwrap()
}

fn decoding(c: &mut Criterion) {
    let event = fixture::kinesis_event(&fixture::aggregates(RECORDS));
    let readings = readings_event(&event);
    let scheduled = scheduled_event();
    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Elements(RECORDS as u64));
    group.bench_function("shard_event", |b| {
        b.iter(|| black_box(decode::<ShardEvent>(black_box(&event))));
    });
    group.bench_function("kinesis_event", |b| {
        b.iter(|| black_box(decode::<KinesisEvent>(black_box(&event))));
    });
    group.bench_function("aggregator_event", |b| {
        b.iter(|| black_box(decode::<AggregatorEvent>(black_box(&readings))));
    });
    // One event, not a batch: its throughput counts events.
    group.throughput(Throughput::Elements(1));
    group.bench_function("scheduled_event", |b| {
        b.iter(|| black_box(decode::<AggregatorEvent>(black_box(&scheduled))));
    });
    group.finish();
}

criterion_group!(benches, decoding);
criterion_main!(benches);
