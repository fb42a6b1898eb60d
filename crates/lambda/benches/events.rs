//! Decoding a Lambda Kinesis event of 1,000 records, as `lambda_runtime`
//! decodes it (serde_json through `serde_path_to_error`), into the types the
//! `bootstrap`s take and into `aws_lambda_events`' types they replaced:
//!
//! - `shard_event` / `kinesis_event`: the stream processor's and the alarm's
//!   event;
//! - `window_event` / `kinesis_time_window_event`: the aggregator's tumbling
//!   window event (the readings stream: 60 times the records of the
//!   aggregates stream).
//!
//! Run: `cargo bench -p wildrydes-lambda --bench events` (or `cargo xtask
//! bench --only handler`). Results land in `target/criterion/decode/`.

#![allow(clippy::unwrap_used)]

use std::hint::black_box;

use aws_lambda_events::event::kinesis::{KinesisEvent, KinesisTimeWindowEvent};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde::de::DeserializeOwned;
use wildrydes_benches::fixture;
use wildrydes_lambda::kinesis::{ShardEvent, WindowEvent};

/// Records per event: a large Lambda batch.
const RECORDS: usize = 1_000;

/// Decodes `body` as `lambda_runtime` 1.5 does.
fn decode<T: DeserializeOwned>(body: &[u8]) -> T {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).unwrap()
}

/// The same event with a tumbling window's properties, as Lambda sends the
/// aggregator (the window's state carried from the previous invocation).
fn window_event(event: &[u8]) -> Vec<u8> {
    let mut value: serde_json::Value = serde_json::from_slice(event).unwrap();
    let state: serde_json::Map<String, serde_json::Value> = (0..50)
        .map(|u| {
            (
                format!("Unicorn-{u:04}"),
                serde_json::json!("1455235200000,3,150,150,200,200,12"),
            )
        })
        .collect();
    for (key, v) in [
        (
            "window",
            serde_json::json!({ "start": "2016-02-12T00:00:00Z", "end": "2016-02-12T00:01:00Z" }),
        ),
        ("state", serde_json::Value::Object(state)),
        ("shardId", serde_json::json!("shardId-000000000000")),
        ("eventSourceARN", serde_json::json!(fixture::STREAM_ARN)),
        ("isFinalInvokeForWindow", serde_json::json!(false)),
        ("isWindowTerminatedEarly", serde_json::json!(false)),
    ] {
        value[key] = v;
    }
    serde_json::to_vec(&value).unwrap()
}

fn decoding(c: &mut Criterion) {
    let event = fixture::kinesis_event(&fixture::aggregates(RECORDS));
    let window = window_event(&event);
    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Elements(RECORDS as u64));
    group.bench_function("shard_event", |b| {
        b.iter(|| black_box(decode::<ShardEvent>(black_box(&event))));
    });
    group.bench_function("kinesis_event", |b| {
        b.iter(|| black_box(decode::<KinesisEvent>(black_box(&event))));
    });
    group.bench_function("window_event", |b| {
        b.iter(|| black_box(decode::<WindowEvent>(black_box(&window))));
    });
    group.bench_function("kinesis_time_window_event", |b| {
        b.iter(|| black_box(decode::<KinesisTimeWindowEvent>(black_box(&window))));
    });
    group.finish();
}

criterion_group!(benches, decoding);
criterion_main!(benches);
