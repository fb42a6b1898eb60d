//! Core's per-record costs, in records per second on one core (criterion's
//! `Throughput::Elements`): what every Lambda invocation and every daemon
//! batch pays before any network call.
//!
//! - `aggregate/parse_validate_map`: `Aggregate::from_json` then
//!   `aggregate_to_item`, over the workshop's day (1,440 lines of
//!   `tests/fixtures/shadowfax-2016-02-12.json`): the stream processor's
//!   work per record. Target: more than 1,000,000 records/s/core.
//! - `aggregate/parse_validate` and `aggregate/map`: the two halves.
//! - `reading/parse`: `Reading::from_json` of per-second readings.
//! - `window/push`: `MinuteWindow::push` of one reading per second per
//!   unicorn, 10 unicorns for an hour, in arrival order (closing minutes as
//!   the clocks pass them).
//! - `kpl/*`: what KPL aggregation adds per reading, over 1,000 readings
//!   of 1,000 unicorns (one second of a fleet on one shard, each reading
//!   under its own partition key, as `producer --aggregate` packs them):
//!   `plain_records` builds one `PutRecordsRequestEntry` per reading;
//!   `aggregate` packs them into `AggregateBuilder`s of at most 50 KiB (data
//!   plus partition key, the producer's default) and builds one entry per
//!   aggregate; `user_records_plain` and `user_records_aggregated` are what
//!   a consumer does with what it read (`input::user_records`), over the
//!   plain records and over the aggregates. `md5` is the MD5 of those
//!   aggregates' protobufs alone, which packing computes and unpacking
//!   checks: the share of both that the checksum takes.
//!
//! Run: `cargo bench -p wildrydes-core --bench core` (or `cargo xtask bench`).
//! Results land in `target/criterion/`.

#![allow(clippy::unwrap_used)]

use std::hint::black_box;

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use criterion::measurement::WallTime;
use criterion::{
    BatchSize, BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main,
};
use md5::{Digest as _, Md5};
use wildrydes_core::input::{self, SourceRecord};
use wildrydes_core::item::aggregate_to_item;
use wildrydes_core::kpl::{AggregateBuilder, UserRecord};
use wildrydes_core::window::WindowRules;
use wildrydes_core::{Aggregate, MinuteWindow, Reading, StatusTime, UnicornName};

/// The workshop's day of aggregates, one JSON object per line.
const DAY: &str = include_str!("../../../tests/fixtures/shadowfax-2016-02-12.json");

/// Unicorns sending readings in the reading and window benchmarks.
const UNICORNS: usize = 10;
/// Seconds of readings per unicorn: an hour, 60 minutes closed per unicorn.
const SECONDS: usize = 3600;

/// The fixture's lines, as the bytes a Kinesis record carries.
fn fixture_lines() -> Vec<Vec<u8>> {
    DAY.lines().map(|l| l.as_bytes().to_vec()).collect()
}

/// One reading per second per unicorn, second by second (the order a shard
/// delivers them in), with values that move like the producer's walk:
/// [`UNICORNS`] unicorns for [`SECONDS`].
fn readings() -> Vec<Reading> {
    fleet_readings(UNICORNS, SECONDS)
}

/// [`readings`] of `unicorns` unicorns for `seconds`.
fn fleet_readings(unicorns: usize, seconds: usize) -> Vec<Reading> {
    let start = StatusTime::parse("2016-02-12 00:00:00.000")
        .unwrap()
        .epoch_millis();
    let names: Vec<_> = (0..unicorns)
        .map(|u| UnicornName::new(&format!("Unicorn-{u:04}")).unwrap())
        .collect();
    let mut out = Vec::with_capacity(unicorns * seconds);
    for second in 0..seconds {
        for (u, name) in names.iter().enumerate() {
            let wobble = i16::try_from((second * 7 + u * 13) % 5).unwrap() - 2;
            let ms = start + i64::try_from(second * 1000 + u * 37).unwrap();
            out.push(Reading {
                name: name.clone(),
                status_time: StatusTime::from_epoch_millis(ms).unwrap(),
                latitude: 40.749167 + second as f64 * 1e-5,
                longitude: -73.985184 - u as f64 * 1e-5,
                distance: 100 + i16::try_from((second * 31 + u) % 119).unwrap(),
                magic_points: 150 + wobble,
                health_points: 150 - wobble,
            });
        }
    }
    out
}

/// A group named `name` whose throughput is `records` records an iteration.
fn group<'a>(c: &'a mut Criterion, name: &str, records: usize) -> BenchmarkGroup<'a, WallTime> {
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(records as u64));
    group
}

/// Benchmark `name` of `group`: `each` over every one of `records`, an
/// iteration.
fn per_record<T>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    records: &[T],
    each: impl Fn(&T),
) {
    group.bench_function(name, |b| {
        b.iter(|| {
            for record in records {
                each(black_box(record));
            }
        });
    });
}

fn aggregates(c: &mut Criterion) {
    let lines = fixture_lines();
    let parsed: Vec<Aggregate> = lines
        .iter()
        .map(|l| Aggregate::from_json(l).unwrap())
        .collect();
    let mut group = group(c, "aggregate", lines.len());
    per_record(&mut group, "parse_validate_map", &lines, |line| {
        let aggregate = Aggregate::from_json(line).unwrap();
        black_box(aggregate_to_item(&aggregate));
    });
    per_record(&mut group, "parse_validate", &lines, |line| {
        black_box(Aggregate::from_json(line).unwrap());
    });
    per_record(&mut group, "map", &parsed, |aggregate| {
        black_box(aggregate_to_item(aggregate));
    });
    group.finish();
}

fn reading_parse(c: &mut Criterion) {
    let json: Vec<Vec<u8>> = readings()
        .iter()
        .take(UNICORNS * 600)
        .map(|r| r.to_json().into_bytes())
        .collect();
    let mut group = group(c, "reading", json.len());
    per_record(&mut group, "parse", &json, |line| {
        black_box(Reading::from_json(line).unwrap());
    });
    group.finish();
}

fn window_push(c: &mut Criterion) {
    let readings = readings();
    let mut group = group(c, "window", readings.len());
    group.bench_function("push", |b| {
        b.iter(|| {
            let mut window = MinuteWindow::new(WindowRules::default());
            for (i, reading) in readings.iter().enumerate() {
                black_box(window.push(black_box(reading), i as i64));
            }
            // What a consumer does once per batch: emit what is due, and
            // take what must be stored.
            let due = window.due(readings.len() as i64);
            window.emitted(due.iter().map(|d| (&d.name, d.minute_ms)));
            black_box(window.dirty())
        });
    });
    group.finish();
}

/// Readings packed per iteration of the `kpl` group: a second of a fleet of
/// 1,000 unicorns, all on one shard.
const KPL_READINGS: usize = 1_000;
/// Largest aggregate, data plus the Kinesis record's partition key:
/// `producer --aggregate`'s default (`DEFAULT_AGGREGATE_BYTES`).
const AGGREGATE_BYTES: usize = 51_200;

/// `readings` (partition key, JSON) as one Kinesis record each, as the
/// producer puts them without `--aggregate`.
fn plain_entries(readings: &[(String, String)]) -> Vec<PutRecordsRequestEntry> {
    readings
        .iter()
        .map(|(key, json)| {
            PutRecordsRequestEntry::builder()
                .partition_key(key)
                .data(Blob::new(json.as_bytes()))
                .build()
                .unwrap()
        })
        .collect()
}

/// `readings` packed in order into aggregates of at most
/// [`AGGREGATE_BYTES`], each a Kinesis record under its first reading's
/// key, as `producer --aggregate` puts them (the size checked before each
/// push, as the producer's planner does).
fn aggregated_entries(readings: &[(String, String)]) -> Vec<PutRecordsRequestEntry> {
    let mut entries = Vec::new();
    let mut builder = AggregateBuilder::new();
    let close = |builder: AggregateBuilder, entries: &mut Vec<PutRecordsRequestEntry>| {
        let key = builder.partition_key().unwrap_or_default().to_owned();
        entries.push(
            PutRecordsRequestEntry::builder()
                .partition_key(key)
                .data(Blob::new(builder.finish()))
                .build()
                .unwrap(),
        );
    };
    for (key, json) in readings {
        let record_key = builder.partition_key().unwrap_or(key);
        let size = builder.size_with(key, None, json.len()) + record_key.len();
        if size > AGGREGATE_BYTES && !builder.is_empty() {
            close(std::mem::take(&mut builder), &mut entries);
        }
        builder.push(UserRecord {
            partition_key: key.clone(),
            explicit_hash_key: None,
            data: json.as_bytes().to_vec(),
        });
    }
    if !builder.is_empty() {
        close(builder, &mut entries);
    }
    entries
}

/// `entries` as a consumer reads them from the shard.
fn source_records(entries: &[PutRecordsRequestEntry]) -> Vec<SourceRecord> {
    entries
        .iter()
        .zip(0u64..)
        .map(|(e, i)| {
            SourceRecord::plain(
                format!("4959033827149025660855969253836157109592157598913658{i:04}"),
                e.partition_key().unwrap(),
                e.data().as_ref(),
            )
        })
        .collect()
}

fn kpl(c: &mut Criterion) {
    let readings: Vec<(String, String)> = fleet_readings(KPL_READINGS, 1)
        .iter()
        .map(|r| (r.name.as_str().to_owned(), r.to_json()))
        .collect();
    let plain = source_records(&plain_entries(&readings));
    let aggregated = source_records(&aggregated_entries(&readings));
    assert_eq!(input::user_records(aggregated.clone()).len(), KPL_READINGS);
    let mut group = group(c, "kpl", KPL_READINGS);
    group.bench_function("plain_records", |b| {
        b.iter(|| black_box(plain_entries(black_box(&readings))));
    });
    group.bench_function("aggregate", |b| {
        b.iter(|| black_box(aggregated_entries(black_box(&readings))));
    });
    group.bench_function("md5", |b| {
        b.iter(|| {
            for record in &aggregated {
                // Between the magic bytes and the digest: the protobuf.
                let data = &record.data;
                black_box(Md5::digest(black_box(&data[4..data.len() - 16])));
            }
        });
    });
    // The records are moved into `user_records`: cloning them is setup.
    for (name, records) in [
        ("user_records_plain", &plain),
        ("user_records_aggregated", &aggregated),
    ] {
        group.bench_function(name, |b| {
            b.iter_batched(
                || records.clone(),
                |records| black_box(input::user_records(records)),
                BatchSize::SmallInput,
            );
        });
    }
    group.finish();
}

criterion_group!(benches, aggregates, reading_parse, window_push, kpl);
criterion_main!(benches);
