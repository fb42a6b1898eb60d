//! `cargo xtask bench`: measures the pipeline, every part the same way each
//! time, and says where the figures went. Not part of `cargo xtask test`:
//! benchmarks are not tests, and their figures depend on the machine.
//!
//! - `core`: criterion benches of core's per-record work
//!   (`crates/core/benches/core.rs`), records per second on one core, and
//!   the keyed state's cost on a full shard (`crates/core/benches/state.rs`).
//! - `handler`: the stream processor's handler, CPU time and peak memory
//!   per record in a process of its own, against a no-op DynamoDB and the
//!   embedded one (`crates/lambda/benches/stream_processor.rs`); decoding
//!   Lambda events into the bootstraps' types and `aws_lambda_events`'
//!   (`crates/lambda/benches/events.rs`, criterion).
//! - `lambda`, `daemon`, `producer`: whole release binaries, measured by
//!   `wildrydes-bench` (`benches/`): the Lambda binary's cold start and
//!   warm cost under cargo-lambda's runtime API, the daemon's records/s on
//!   one shard, the largest fleet one producer keeps up with.
//! - `shard`: the producer on a stream of one shard whose write limits the
//!   embedded Kinesis enforces, with and without `--aggregate`: the largest
//!   fleet one shard carries each way, CPU per reading (`wildrydes-bench`).
//! - `alarm`: the alarm daemon's reading-to-notification latency, polling
//!   and with enhanced fan-out, p50 and p99 (`wildrydes-bench`).
//!
//! Each part writes `target/bench/PART.md` (the command and a table) and
//! `PART.json`; this task gathers them, with the machine they ran on, into
//! `target/bench/summary.md`. `BENCHMARKS.md` at the root records the figures
//! and what they mean.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use xshell::{Shell, cmd};

use crate::tools;

/// Flags of `cargo xtask bench`.
#[derive(Debug, Args)]
pub(crate) struct Flags {
    /// A short run (a few minutes): fewer records and repetitions
    #[arg(long)]
    quick: bool,
    /// Measure only these parts (repeat the flag) [default: all]
    #[arg(long, value_enum)]
    only: Vec<Part>,
}

/// What can be measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Part {
    /// Core's parse, validate, map, reading parse, window push, KPL
    /// aggregation and deaggregation (criterion)
    Core,
    /// The stream processor's handler per record, no-op and embedded
    /// DynamoDB; decoding Lambda events (criterion)
    Handler,
    /// The Lambda binary: cold start, warm CPU time per record, memory
    Lambda,
    /// `wildrydes-daemon process`: records/s on one shard, per core
    Daemon,
    /// `producer`: the largest fleet one process keeps up with
    Producer,
    /// `producer` on one shard, limits enforced, with and without
    /// `--aggregate`: the largest fleet one shard carries
    Shard,
    /// `wildrydes-daemon alarm`: PutRecords to notification, polling and
    /// enhanced fan-out, p50 and p99
    Alarm,
}

const ALL: [Part; 7] = [
    Part::Core,
    Part::Handler,
    Part::Lambda,
    Part::Daemon,
    Part::Producer,
    Part::Shard,
    Part::Alarm,
];

/// A criterion bench target and the benchmarks of it reported.
struct CriterionBench {
    /// The report's name in `target/bench/`.
    part: &'static str,
    /// The report's heading.
    title: &'static str,
    /// `cargo bench -p PACKAGE --bench TARGET`.
    package: &'static str,
    target: &'static str,
    /// Criterion's benchmark ids, in report order.
    benches: &'static [&'static str],
}

/// `crates/core/benches/core.rs`.
const CORE: CriterionBench = CriterionBench {
    part: "core",
    title: "Core, one core (criterion)",
    package: "wildrydes-core",
    target: "core",
    benches: &[
        "aggregate/parse_validate_map",
        "aggregate/parse_validate",
        "aggregate/map",
        "reading/parse",
        "window/push",
        "kpl/plain_records",
        "kpl/aggregate",
        "kpl/user_records_plain",
        "kpl/user_records_aggregated",
        "kpl/md5",
    ],
};

/// `crates/lambda/benches/events.rs`.
const EVENTS: CriterionBench = CriterionBench {
    part: "events",
    title: "Decoding a 1,000-record Lambda event, one core (criterion)",
    package: "wildrydes-lambda",
    target: "events",
    benches: &[
        "decode/shard_event",
        "decode/kinesis_event",
        "decode/aggregator_event",
        "decode/scheduled_event",
    ],
};

/// Runs the parts `flags` asks for, from the workspace root (`sh` is there).
pub(crate) fn run(sh: &Shell, flags: &Flags) -> anyhow::Result<()> {
    let root = sh.current_dir();
    let out = root.join("target/bench");
    sh.create_dir(&out)?;
    let _dir = sh.push_env("WILDRYDES_BENCH_DIR", &out);
    let parts: &[Part] = if flags.only.is_empty() {
        &ALL
    } else {
        &flags.only
    };
    let quick = flags.quick.then_some("--quick");
    let mut done = Vec::new();

    if parts.contains(&Part::Core) {
        run_criterion(sh, &out, &CORE, flags.quick)?;
        done.push(CORE.part);
        // The keyed state's cost on a full shard: its own table.
        let table = cmd!(sh, "cargo bench -p wildrydes-core --bench state").read()?;
        let report = format!(
            "### The aggregator's keyed state, one full shard\n\n`cargo bench -p wildrydes-core --bench state`\n\n{table}\n"
        );
        std::fs::write(out.join("state.md"), &report)?;
        println!("{report}");
        done.push("state");
    }
    if parts.contains(&Part::Handler) {
        cmd!(
            sh,
            "cargo bench -p wildrydes-lambda --bench stream_processor -- {quick...}"
        )
        .run()?;
        done.push("stream-processor");
        run_criterion(sh, &out, &EVENTS, flags.quick)?;
        done.push(EVENTS.part);
    }
    // `--bins`, not `--bin NAME`: that would apply to every package named.
    let binaries = [
        Part::Lambda,
        Part::Daemon,
        Part::Producer,
        Part::Shard,
        Part::Alarm,
    ];
    if parts.iter().any(|p| binaries.contains(p)) {
        cmd!(
            sh,
            "cargo build --release --bins -p wildrydes-lambda -p wildrydes-daemon -p wildrydes-producer -p wildrydes-benches"
        )
        .run()?;
    }
    let bench = root.join("target/release/wildrydes-bench");
    if parts.contains(&Part::Lambda) {
        let cargo_lambda = tools::ensure_venv(sh)?.bin.join("cargo-lambda");
        cmd!(
            sh,
            "{bench} lambda --cargo-lambda {cargo_lambda} {quick...}"
        )
        .run()?;
        done.push("lambda-binary");
    }
    if parts.contains(&Part::Daemon) {
        cmd!(sh, "{bench} daemon {quick...}").run()?;
        done.push("daemon");
    }
    if parts.contains(&Part::Producer) {
        cmd!(sh, "{bench} producer {quick...}").run()?;
        done.push("producer");
    }
    if parts.contains(&Part::Shard) {
        cmd!(sh, "{bench} shard {quick...}").run()?;
        done.push("shard");
    }
    if parts.contains(&Part::Alarm) {
        cmd!(sh, "{bench} alarm {quick...}").run()?;
        done.push("alarm");
    }

    let summary = write_summary(&out, &done)?;
    println!("\nxtask bench: results in {}", out.display());
    println!("  summary:   {}", summary.display());
    if done.contains(&CORE.part) || done.contains(&EVENTS.part) {
        println!(
            "  criterion: {} (per benchmark: new/estimates.json)",
            root.join("target/criterion").display()
        );
    }
    Ok(())
}

/// Runs the criterion bench `bench` (shorter with `quick`) and turns its
/// estimates into `target/bench/PART.md`: records per second on one core.
fn run_criterion(
    sh: &Shell,
    out: &Path,
    bench: &CriterionBench,
    quick: bool,
) -> anyhow::Result<()> {
    let CriterionBench {
        part,
        title,
        package,
        target,
        ..
    } = bench;
    let short: &[&str] = if quick {
        &["--warm-up-time", "1", "--measurement-time", "2"]
    } else {
        &[]
    };
    cmd!(
        sh,
        "cargo bench -p {package} --bench {target} -- {short...}"
    )
    .run()?;
    let root = sh.current_dir();
    let mut rows = String::new();
    for name in bench.benches {
        let dir = root.join("target/criterion").join(name);
        let read = |file: &str| -> anyhow::Result<serde_json::Value> {
            let path = dir.join(file);
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            Ok(serde_json::from_str(&text)?)
        };
        let estimates = read("new/estimates.json")?;
        let benchmark = read("new/benchmark.json")?;
        let elements = benchmark["throughput"]["Elements"].as_f64().unwrap_or(1.0);
        let ns = |stat: &str| {
            estimates[stat]["point_estimate"]
                .as_f64()
                .unwrap_or(f64::NAN)
        };
        let per_record = ns("mean") / elements;
        rows.push_str(&format!(
            "| {name} | {elements} | {per_record:.0} | {:.2} | {:.2} |\n",
            1e3 / per_record,
            1e3 / (ns("median") / elements),
        ));
    }
    let short = if quick {
        format!(" -- {}", short.join(" "))
    } else {
        String::new()
    };
    let text = format!(
        "### {title}\n\n`cargo bench -p {package} --bench {target}{short}`\n\n\
         | benchmark | records per iteration | ns/record (mean) | million records/s (mean) | million records/s (median) |\n\
         |---|---|---|---|---|\n{rows}"
    );
    std::fs::write(out.join(format!("{part}.md")), &text)?;
    println!("\n{text}");
    Ok(())
}

/// `target/bench/summary.md`: the machine, then each part's table.
fn write_summary(out: &Path, parts: &[&str]) -> anyhow::Result<PathBuf> {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")?
                .split_once(':')
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let date = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let mut text = format!(
        "## Benchmarks, {date}\n\nMachine: {cores} cores ({cpu}), release builds. \
         Other work may have shared the machine: compare figures from the same run.\n\n"
    );
    for part in parts {
        let md = out.join(format!("{part}.md"));
        text.push_str(&std::fs::read_to_string(&md).unwrap_or_default());
        text.push('\n');
    }
    let path = out.join("summary.md");
    std::fs::write(&path, text)?;
    Ok(path)
}
