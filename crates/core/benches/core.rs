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
//!
//! Run: `cargo bench -p wildrydes-core --bench core` (or `cargo xtask bench`).
//! Results land in `target/criterion/`.

#![allow(clippy::unwrap_used)]

use std::hint::black_box;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};
use wildrydes_core::item::aggregate_to_item;
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
/// delivers them in), with values that move like the producer's walk.
fn readings() -> Vec<Reading> {
    let start = StatusTime::parse("2016-02-12 00:00:00.000")
        .unwrap()
        .epoch_millis();
    let names: Vec<_> = (0..UNICORNS)
        .map(|u| UnicornName::new(&format!("Unicorn-{u:04}")).unwrap())
        .collect();
    let mut out = Vec::with_capacity(UNICORNS * SECONDS);
    for second in 0..SECONDS {
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

criterion_group!(benches, aggregates, reading_parse, window_push);
criterion_main!(benches);
