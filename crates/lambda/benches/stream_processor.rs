//! The stream processor's cost per record: CPU time and peak memory of a
//! process that runs the real handler (`stream_processor::handle`, built by
//! `Config::processor` over an SDK client from `aws_config`, as the
//! `bootstrap` does) on Kinesis events built from the workshop's fixture,
//! batches of 100, 1,000 and 10,000 records.
//!
//! Each measurement is a process of its own, started by this program with
//! the arguments `measure BATCH RECORDS OUT`, so that its CPU time
//! (`/proc/self/stat`, as `getrusage(RUSAGE_SELF)`) and peak memory
//! (`VmHWM`) are of that batch size alone. The backend is another process:
//!
//! - `noop`: a DynamoDB that answers every BatchWriteItem at once with
//!   `{"UnprocessedItems":{}}`: the CPU time is our own (event decoding,
//!   validation, mapping, SDK request building and signing, HTTP, logs);
//! - `embedded`: `wildrydes-local-aws`'s DynamoDB (dynoxide), whose own CPU
//!   time per record is reported beside.
//!
//! Each loop decodes the event from the runtime API's JSON exactly as
//! `lambda_runtime` 1.5 does (serde_json through `serde_path_to_error`) into
//! the `bootstrap`'s event type (`ShardEvent`), then calls the handler; the
//! decoding alone is timed too, so the handler's share can be told apart,
//! and so is decoding into `aws_lambda_events`' `KinesisEvent`, for
//! comparison. Logs are JSON on standard output (sent to /dev/null), as in
//! the `bootstrap`. The runtime is a current-thread one, as in the
//! `bootstrap`; one extra row runs batch 1,000 on `#[tokio::main]`'s
//! multi-thread runtime, to show what that choice saves.
//!
//! Run: `cargo bench -p wildrydes-lambda --bench stream_processor [-- --quick]`
//! (or `cargo xtask bench`). Results: `target/bench/stream-processor.{json,md}`.
//! Under `cargo test --benches` (no `--bench` argument) it only checks that
//! one small batch goes through.

#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use aws_lambda_events::event::kinesis::KinesisEvent;
use serde_json::{Value, json};
use wildrydes_benches::backend::{self, Backend, Kind};
use wildrydes_benches::report::{self, f};
use wildrydes_benches::{fixture, usage};
use wildrydes_lambda::kinesis::ShardEvent;
use wildrydes_lambda::stream_processor::{Config, handle};

/// Batch sizes measured: Lambda's default Kinesis batch is 100, its largest
/// 10,000.
const BATCHES: [usize; 3] = [100, 1_000, 10_000];

/// Records per measurement: enough for a second or more of CPU time, so the
/// 10 ms clock tick stays below a percent.
fn records_for(kind: Kind, quick: bool) -> usize {
    match (kind, quick) {
        (_, true) => 20_000,
        (Kind::Noop, false) => 200_000,
        (Kind::Embedded, false) => 100_000,
    }
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or_default();
    match arg(0) {
        "backend" => return backend::serve(Kind::parse(arg(1))?, &[]),
        "measure" => {
            return measure(
                arg(1).parse()?,
                arg(2).parse()?,
                Path::new(arg(3)),
                arg(4) == CURRENT_THREAD,
            );
        }
        _ => {}
    }
    let quick = args.iter().any(|a| a == "--quick");
    if !args.iter().any(|a| a == "--bench") {
        // `cargo test --benches`: one small run, to show it works.
        let row = run(&start_backend(Kind::Noop)?, 100, 100, CURRENT_THREAD)?;
        println!("stream_processor: smoke run ok ({row})");
        return Ok(());
    }
    let mut rows = Vec::new();
    for kind in [Kind::Noop, Kind::Embedded] {
        let backend = start_backend(kind)?;
        for batch in BATCHES {
            let row = run(&backend, batch, records_for(kind, quick), CURRENT_THREAD)?;
            eprintln!("stream_processor: {row}");
            rows.push(row);
        }
        let row = run(&backend, 1_000, records_for(kind, quick), MULTI_THREAD)?;
        eprintln!("stream_processor: {row}");
        rows.push(row);
    }
    let table = report::rows_table(
        &[
            "backend",
            "runtime",
            "batch",
            "records",
            "CPU µs/record (process)",
            "of which event decode (as lambda_runtime)",
            "decoding into KinesisEvent instead",
            "handler µs/record",
            "records/s (wall)",
            "peak RSS MiB",
            "backend CPU µs/record",
        ],
        &rows,
        |r| {
            vec![
                r.text("backend"),
                r.text("runtime"),
                r.text("batch"),
                r.text("records"),
                r.fixed("cpu_us_per_record", 2),
                r.fixed("decode_us_per_record", 2),
                r.fixed("kinesis_event_decode_us_per_record", 2),
                f(
                    r.number("cpu_us_per_record") - r.number("decode_us_per_record"),
                    2,
                ),
                r.fixed("records_per_s_wall", 0),
                r.fixed("peak_rss_mib", 1),
                r.fixed("backend_cpu_us_per_record", 2),
            ]
        },
    );
    let command = format!(
        "cargo bench -p wildrydes-lambda --bench stream_processor{}",
        if quick { " -- --quick" } else { "" }
    );
    report::write(
        "stream-processor",
        "Stream processor: the real handler, per record",
        &command,
        &Value::Array(rows),
        &table,
    )?;
    Ok(())
}

/// `#[tokio::main]`'s runtime.
const MULTI_THREAD: &str = "multi-thread";
/// The runtime of the `bootstrap`: `#[tokio::main(flavor = "current_thread")]`.
const CURRENT_THREAD: &str = "current-thread";

fn start_backend(kind: Kind) -> anyhow::Result<Backend> {
    let mut command = Command::new(std::env::current_exe()?);
    command.args(["backend", kind.name()]);
    Backend::start(kind, command)
}

/// One measurement process: `records` records in batches of `batch`, on a
/// `runtime` tokio runtime.
fn run(backend: &Backend, batch: usize, records: usize, runtime: &str) -> anyhow::Result<Value> {
    let out = report::dir()?.join(format!("measure-{}-{batch}.json", backend.kind().name()));
    let before = backend.usage()?;
    let status = Command::new(std::env::current_exe()?)
        .args(["measure", &batch.to_string(), &records.to_string()])
        .arg(&out)
        .arg(runtime)
        .env_clear()
        .envs(backend.env().iter().map(|(k, v)| (k, v)))
        .env("TABLE_NAME", "UnicornSensorData")
        .env("AWS_LAMBDA_FUNCTION_NAME", "wildrydes-stream-processor")
        .stdout(Stdio::null())
        .status()?;
    anyhow::ensure!(status.success(), "the measurement process failed: {status}");
    let backend_cpu = backend.usage()?.cpu.saturating_sub(before.cpu);
    let mut row: Value = serde_json::from_slice(&std::fs::read(&out)?)?;
    std::fs::remove_file(&out)?;
    let measured = row["records"].as_f64().unwrap_or(1.0);
    // The backend also served the warm-up batch.
    let served = measured + batch as f64;
    row["backend"] = json!(backend.kind().name());
    row["backend_cpu_us_per_record"] = json!(backend_cpu.as_secs_f64() * 1e6 / served);
    Ok(row)
}

/// The event, decoded as `lambda_runtime` decodes it for the `bootstrap`.
fn decode(body: &[u8]) -> anyhow::Result<ShardEvent> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    Ok(serde_path_to_error::deserialize(de)?)
}

/// The measurement process: decodes and handles `records` records in
/// batches of `batch`, then writes what it cost to `out`.
fn measure(batch: usize, records: usize, out: &Path, current_thread: bool) -> anyhow::Result<()> {
    wildrydes_lambda::telemetry::init_json_logs();
    let event = fixture::kinesis_event(&fixture::aggregates(batch));
    let iterations = (records / batch).max(1);
    let runtime = if current_thread {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Runtime::new()?
    };
    let row = runtime.block_on(async {
        let config = Config::from_env()?;
        let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let processor = config.processor(aws_sdk_dynamodb::Client::new(&aws));
        let invoke = || async {
            let event = decode(&event)?;
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            let response = handle(&processor, event, deadline).await;
            anyhow::ensure!(
                response.batch_item_failures.is_empty(),
                "the handler reported a failure: {response:?}"
            );
            Ok(())
        };
        // Connections, credentials, lazy statics: what a warm function has.
        invoke().await?;

        let start = usage::of_self()?;
        for _ in 0..iterations {
            black_box(decode(&event)?);
        }
        let decoding = usage::of_self()?.cpu.saturating_sub(start.cpu);
        let start = usage::of_self()?;
        for _ in 0..iterations {
            let de = &mut serde_json::Deserializer::from_slice(&event);
            black_box(serde_path_to_error::deserialize::<_, KinesisEvent>(de)?);
        }
        let kinesis_event_decoding = usage::of_self()?.cpu.saturating_sub(start.cpu);

        let start = usage::of_self()?;
        let clock = Instant::now();
        for _ in 0..iterations {
            invoke().await?;
        }
        let wall = clock.elapsed();
        let end = usage::of_self()?;
        let cpu = end.cpu.saturating_sub(start.cpu);
        let n = (iterations * batch) as f64;
        anyhow::Ok(json!({
            "batch": batch,
            "iterations": iterations,
            "records": iterations * batch,
            "event_bytes": event.len(),
            "wall_s": wall.as_secs_f64(),
            "cpu_s": cpu.as_secs_f64(),
            "cpu_us_per_record": cpu.as_secs_f64() * 1e6 / n,
            "decode_us_per_record": decoding.as_secs_f64() * 1e6 / n,
            "kinesis_event_decode_us_per_record": kinesis_event_decoding.as_secs_f64() * 1e6 / n,
            "runtime": if current_thread { CURRENT_THREAD } else { MULTI_THREAD },
            "records_per_s_wall": n / wall.as_secs_f64(),
            "peak_rss_mib": usage::mib(end.peak_rss_kib),
            "rss_mib": usage::mib(end.rss_kib),
        }))
    })?;
    std::fs::write(out, row.to_string())
        .with_context(|| format!("cannot write {}", out.display()))?;
    Ok(())
}
