//! `wildrydes-bench`: measures whole processes of the pipeline, release
//! builds, each against a backend in a process of its own.
//!
//! - `lambda`: the `wildrydes-stream-processor` binary under cargo-lambda's
//!   runtime API emulator: cold start (process start to first response,
//!   median of several) and, warm, its CPU time per record and peak memory.
//! - `daemon`: `wildrydes-daemon process` draining a one-shard stream of N
//!   aggregates into the table: records/s per shard and per core.
//! - `producer`: `producer --count N --time-scale 1` for fleets of growing
//!   size: whether one process keeps up with 1 reading/s per unicorn.
//! - `shard`: the same on a stream of one shard whose limits are enforced
//!   (1,000 records/s, 1 MiB/s), once one reading per record and once with
//!   `--aggregate`: the largest fleet one shard carries each way, and the
//!   producer's CPU per reading.
//! - `alarm`: `wildrydes-daemon alarm --console`, polling and with
//!   `--enhanced-fan-out`: the time from PutRecords of a low-magic reading
//!   to its notification, p50 and p99.
//!
//! The binaries are found beside this one (`target/release/`); `cargo xtask
//! bench` builds them all first. Results go to `target/bench/`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use aws_sdk_kinesis::config::Credentials;
use aws_sdk_kinesis::config::SharedCredentialsProvider;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use clap::{Parser, Subcommand, ValueEnum};
use serde_json::{Value, json};
use tokio::process::{Child, Command};
use wildrydes_benches::backend::{self, Backend, Kind};
use wildrydes_benches::fixture;
use wildrydes_benches::http::{self, free_port};
use wildrydes_benches::report::{self, f};
use wildrydes_benches::usage::{self, mib};
use wildrydes_testkit::lambda_runtime::RuntimeApi;

/// Measures whole processes of the Wild Rydes pipeline (release builds,
/// found beside this program). Results go to target/bench/.
#[derive(Debug, Parser)]
#[command(name = "wildrydes-bench")]
struct Cli {
    #[command(subcommand)]
    task: Task,
    /// Fewer repetitions and records: a run of a minute or two
    #[arg(long, global = true)]
    quick: bool,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Cold start and warm per-record cost of the Lambda binary under
    /// cargo-lambda's runtime API
    Lambda {
        /// The cargo-lambda program [default: $WILDRYDES_TOOLS_BIN/cargo-lambda]
        #[arg(long)]
        cargo_lambda: Option<PathBuf>,
    },
    /// Sustained throughput of `wildrydes-daemon process` on one shard
    Daemon {
        /// Aggregates to put on the stream and drain [default: 100000, 20000 with --quick]
        #[arg(long)]
        records: Option<usize>,
    },
    /// The largest fleet one producer keeps up with at 1 reading/s per unicorn
    Producer {
        /// Fleet sizes to try [default: 1000,10000,25000,50000,100000; 1000,10000 with --quick]
        #[arg(long, value_delimiter = ',')]
        fleets: Vec<u32>,
        /// Simulated (= real) time each fleet runs
        #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
        duration: Duration,
    },
    /// The largest fleet one shard carries, with and without `--aggregate`,
    /// its write limits enforced
    Shard {
        /// Fleet sizes to try [default: 500,1000,2000,3000,5000,7000; 1000,5000 with --quick]
        #[arg(long, value_delimiter = ',')]
        fleets: Vec<u32>,
        /// Simulated (= real) time each fleet runs
        #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
        duration: Duration,
        /// How readings go into Kinesis records (repeat the flag) [default: both]
        #[arg(long = "mode", value_enum)]
        modes: Vec<Mode>,
    },
    /// Reading-to-notification latency of the alarm daemon, polling and
    /// with enhanced fan-out
    Alarm {
        /// Healthy unicorns putting 1 reading/s beside the trials (0: an idle stream) [default: 0,1000]
        #[arg(long, value_delimiter = ',')]
        fleets: Vec<usize>,
        /// Low-magic readings timed per run [default: 100, 20 with --quick]
        #[arg(long)]
        trials: Option<usize>,
        /// How the daemon reads (repeat the flag) [default: both]
        #[arg(long = "read", value_enum)]
        reads: Vec<Read>,
    },
    /// (internal) Serve a backend until standard input closes
    #[command(hide = true)]
    Backend {
        kind: String,
        /// Extra Kinesis streams, as NAME:SHARDS
        #[arg(long = "stream")]
        streams: Vec<String>,
        /// Throttle Kinesis writes as AWS does (per shard, 1,000 records/s, 1 MiB/s)
        #[arg(long)]
        enforce_limits: bool,
    },
}

/// How the producer puts readings into Kinesis records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// One reading per record
    Plain,
    /// KPL aggregated records (`producer --aggregate`)
    Aggregated,
}

impl Mode {
    /// Its name in reports.
    fn name(self) -> &'static str {
        match self {
            Mode::Plain => "plain",
            Mode::Aggregated => "aggregated",
        }
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Task::Backend {
        kind,
        streams,
        enforce_limits,
    } = &cli.task
    {
        let streams = streams
            .iter()
            .map(|s| {
                let (name, shards) = s.split_once(':').context("--stream NAME:SHARDS")?;
                Ok((name.to_owned(), shards.parse()?))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        return backend::serve_with(Kind::parse(kind)?, &streams, *enforce_limits);
    }
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        match cli.task {
            Task::Lambda { cargo_lambda } => lambda(cargo_lambda, cli.quick).await,
            Task::Daemon { records } => {
                daemon(records.unwrap_or(if cli.quick { 20_000 } else { 100_000 })).await
            }
            Task::Producer { fleets, duration } => {
                let fleets = match (fleets.is_empty(), cli.quick) {
                    (false, _) => fleets,
                    (true, true) => vec![1_000, 10_000],
                    (true, false) => vec![1_000, 10_000, 25_000, 50_000, 100_000],
                };
                producer(&fleets, duration, cli.quick).await
            }
            Task::Shard {
                fleets,
                duration,
                modes,
            } => {
                let fleets = match (fleets.is_empty(), cli.quick) {
                    (false, _) => fleets,
                    (true, true) => vec![1_000, 5_000],
                    (true, false) => vec![500, 1_000, 2_000, 3_000, 5_000, 7_000],
                };
                let modes = if modes.is_empty() {
                    vec![Mode::Plain, Mode::Aggregated]
                } else {
                    modes
                };
                shard(&fleets, &modes, duration, cli.quick).await
            }
            Task::Alarm {
                fleets,
                trials,
                reads,
            } => {
                let fleets = if fleets.is_empty() {
                    vec![0, 1_000]
                } else {
                    fleets
                };
                let reads = if reads.is_empty() {
                    vec![Read::Polling, Read::FanOut]
                } else {
                    reads
                };
                let trials = trials.unwrap_or(if cli.quick { 20 } else { 100 });
                alarm(&reads, &fleets, trials, cli.quick).await
            }
            Task::Backend { .. } => Ok(()),
        }
    })
}

/// A program beside this one (`target/release/NAME`).
fn sibling(name: &str) -> anyhow::Result<PathBuf> {
    let path = std::env::current_exe()?.with_file_name(name);
    anyhow::ensure!(
        path.exists(),
        "{} is missing: build it with `cargo build --release` (cargo xtask bench does)",
        path.display()
    );
    Ok(path)
}

/// A backend process (this program, `backend KIND`), with extra streams.
fn start_backend(kind: Kind, streams: &[(&str, usize)]) -> anyhow::Result<Backend> {
    start_backend_with(kind, streams, false)
}

/// [`start_backend`], Kinesis throttling writes as AWS does when
/// `enforce_limits`.
fn start_backend_with(
    kind: Kind,
    streams: &[(&str, usize)],
    enforce_limits: bool,
) -> anyhow::Result<Backend> {
    let mut command = std::process::Command::new(std::env::current_exe()?);
    command.args(["backend", kind.name()]);
    for (name, shards) in streams {
        command.args(["--stream", &format!("{name}:{shards}")]);
    }
    if enforce_limits {
        command.arg("--enforce-limits");
    }
    Backend::start(kind, command)
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    match xs.len() {
        0 => 0.0,
        n if n % 2 == 1 => xs[n / 2],
        n => (xs[n / 2 - 1] + xs[n / 2]) / 2.0,
    }
}

fn pid(child: &Child) -> anyhow::Result<u32> {
    child.id().context("the process has already exited")
}

/// SIGTERM, as an operator or a container runtime stops a process.
async fn terminate(child: &mut Child) -> anyhow::Result<()> {
    let pid = pid(child)?.to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()?;
    tokio::time::timeout(Duration::from_secs(30), child.wait()).await??;
    Ok(())
}

// ---------------------------------------------------------------------------
// lambda

/// Records per warm measurement of the binary: a second of CPU time or
/// more, so that the 10 ms accounting tick stays near 1 %.
fn binary_records(quick: bool) -> usize {
    if quick { 5_000 } else { 100_000 }
}

/// cargo-lambda's runtime API emulator and one function process under it.
struct Function {
    /// The emulator's port: runtime API under `/.rt`, Invoke API beside it.
    port: u16,
    /// The emulator, stopped when dropped.
    api: RuntimeApi,
    process: Child,
    /// When the function process was started.
    started: Instant,
}

impl Function {
    async fn start(cargo_lambda: &Path, backend: &Backend) -> anyhow::Result<Self> {
        let api = tokio::time::timeout(
            Duration::from_secs(30),
            RuntimeApi::start_with(cargo_lambda),
        )
        .await
        .context("cargo lambda watch did not start listening")?;
        let port = api.port;
        let binary = sibling("wildrydes-stream-processor")?;
        let started = Instant::now();
        let process = Command::new(binary)
            .env_clear()
            .envs(backend.env().iter().map(|(k, v)| (k, v)))
            .env(
                "AWS_LAMBDA_RUNTIME_API",
                format!("http://127.0.0.1:{port}/.rt"),
            )
            .env("AWS_LAMBDA_FUNCTION_NAME", "_")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("TABLE_NAME", "UnicornSensorData")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        Ok(Self {
            port,
            api,
            process,
            started,
        })
    }

    /// Invokes the function with `event` (what `cargo lambda invoke` sends)
    /// and checks that it answered with no batch item failure.
    async fn invoke(&self, event: &[u8]) -> anyhow::Result<()> {
        let answer = http::call(
            self.port,
            "POST",
            "/2015-03-31/functions/_/invocations",
            event,
        )
        .await?;
        anyhow::ensure!(
            answer.status == 200 && answer.body.contains(r#""batchItemFailures":[]"#),
            "the function answered {}: {}",
            answer.status,
            answer.body
        );
        Ok(())
    }

    fn usage(&self) -> anyhow::Result<usage::Usage> {
        Ok(usage::of_process(pid(&self.process)?)?)
    }

    async fn stop(mut self) -> anyhow::Result<()> {
        self.process.kill().await?;
        drop(self.api);
        Ok(())
    }
}

async fn lambda(cargo_lambda: Option<PathBuf>, quick: bool) -> anyhow::Result<()> {
    let cargo_lambda =
        match cargo_lambda {
            Some(p) => p,
            None => PathBuf::from(std::env::var_os("WILDRYDES_TOOLS_BIN").context(
                "pass --cargo-lambda or set WILDRYDES_TOOLS_BIN (cargo xtask bench does)",
            )?)
            .join("cargo-lambda"),
        };
    let embedded = start_backend(Kind::Embedded, &[])?;
    let noop = start_backend(Kind::Noop, &[])?;

    // Cold start: a fresh emulator and a fresh process each time; the clock
    // runs from spawning the process to the first answer reaching us.
    let runs = if quick { 3 } else { 9 };
    let one = fixture::kinesis_event(&fixture::aggregates(1));
    let hundred = fixture::kinesis_event(&fixture::aggregates(100));
    let mut cold_rows = Vec::new();
    for (label, event) in [("1 record", &one), ("100 records", &hundred)] {
        let (mut cold, mut warm, mut init_cpu, mut peak) = (vec![], vec![], vec![], vec![]);
        for _ in 0..runs {
            let function = Function::start(&cargo_lambda, &embedded).await?;
            function.invoke(event).await?;
            cold.push(function.started.elapsed().as_secs_f64() * 1e3);
            let u = function.usage()?;
            init_cpu.push(u.threads_cpu.as_secs_f64() * 1e3);
            peak.push(mib(u.peak_rss_kib));
            let clock = Instant::now();
            function.invoke(event).await?;
            warm.push(clock.elapsed().as_secs_f64() * 1e3);
            function.stop().await?;
        }
        eprintln!("lambda cold start, first event of {label}: {cold:.1?} ms");
        cold_rows.push(json!({
            "first_event": label,
            "runs": runs,
            "cold_start_ms_median": median(cold.clone()),
            "cold_start_ms": cold,
            "cpu_to_first_answer_ms_median": median(init_cpu),
            "warm_round_trip_ms_median": median(warm),
            "peak_rss_mib_median": median(peak),
        }));
    }

    // Warm: CPU time of the function process per record and its peak memory,
    // batch after batch, as a long-lived Lambda execution environment.
    let mut warm_rows = Vec::new();
    for backend in [&noop, &embedded] {
        for batch in [100usize, 1_000] {
            let event = fixture::kinesis_event(&fixture::aggregates(batch));
            let iterations = (binary_records(quick) / batch).max(1);
            let function = Function::start(&cargo_lambda, backend).await?;
            function.invoke(&event).await?;
            let before = function.usage()?;
            let backend_before = backend.usage()?;
            let clock = Instant::now();
            for _ in 0..iterations {
                function.invoke(&event).await?;
            }
            let wall = clock.elapsed();
            let after = function.usage()?;
            let backend_cpu = backend.usage()?.cpu.saturating_sub(backend_before.cpu);
            function.stop().await?;
            let n = (iterations * batch) as f64;
            let cpu = after.cpu.saturating_sub(before.cpu).as_secs_f64();
            let row = json!({
                "backend": backend.kind().name(),
                "batch": batch,
                "records": iterations * batch,
                "event_bytes": event.len(),
                "cpu_us_per_record": cpu * 1e6 / n,
                "records_per_s_wall": n / wall.as_secs_f64(),
                "peak_rss_mib": mib(after.peak_rss_kib),
                "backend_cpu_us_per_record": backend_cpu.as_secs_f64() * 1e6 / n,
            });
            eprintln!("lambda warm: {row}");
            warm_rows.push(row);
        }
    }

    let cold_table = report::rows_table(
        &[
            "first event",
            "runs",
            "cold start ms (median)",
            "all runs ms",
            "CPU to first answer ms",
            "warm round trip ms",
            "peak RSS MiB",
        ],
        &cold_rows,
        |r| {
            let all: Vec<String> = r.0["cold_start_ms"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|x| f(x.as_f64().unwrap_or_default(), 1))
                .collect();
            vec![
                r.text("first_event"),
                r.text("runs"),
                r.fixed("cold_start_ms_median", 1),
                all.join(", "),
                r.fixed("cpu_to_first_answer_ms_median", 1),
                r.fixed("warm_round_trip_ms_median", 1),
                r.fixed("peak_rss_mib_median", 1),
            ]
        },
    );
    let warm_table = report::rows_table(
        &[
            "backend",
            "batch",
            "records",
            "CPU µs/record (whole process)",
            "records/s (wall, emulator included)",
            "peak RSS MiB",
            "backend CPU µs/record",
        ],
        &warm_rows,
        |r| {
            vec![
                r.text("backend"),
                r.text("batch"),
                r.text("records"),
                r.fixed("cpu_us_per_record", 2),
                r.fixed("records_per_s_wall", 0),
                r.fixed("peak_rss_mib", 1),
                r.fixed("backend_cpu_us_per_record", 2),
            ]
        },
    );
    report::write(
        "lambda-binary",
        "Lambda binary under cargo-lambda's runtime API",
        &format!(
            "target/release/wildrydes-bench lambda{}",
            if quick { " --quick" } else { "" }
        ),
        &json!({ "cold_start": cold_rows, "warm": warm_rows }),
        &format!("Cold start:\n\n{cold_table}\nWarm, batch after batch:\n\n{warm_table}"),
    )?;
    Ok(())
}

// ---------------------------------------------------------------------------
// daemon

const DAEMON_STREAM: &str = "bench-aggregates";

async fn daemon(records: usize) -> anyhow::Result<()> {
    let backend = start_backend(Kind::Embedded, &[(DAEMON_STREAM, 1)])?;
    let kinesis = kinesis_client(&backend);
    let dynamodb = dynamodb_client(&backend);
    let aggregates = fixture::aggregates(records);
    for chunk in aggregates.chunks(500) {
        let entries = chunk
            .iter()
            .map(|a| {
                PutRecordsRequestEntry::builder()
                    .partition_key(a.name.as_str())
                    .data(Blob::new(a.to_json()))
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()?;
        let out = kinesis
            .put_records()
            .stream_name(DAEMON_STREAM)
            .set_records(Some(entries))
            .send()
            .await?;
        anyhow::ensure!(out.failed_record_count() == Some(0), "PutRecords failed");
    }
    eprintln!("daemon: {records} aggregates on {DAEMON_STREAM} (1 shard)");

    let metrics_port = free_port()?;
    let backend_before = backend.usage()?;
    let started = Instant::now();
    let mut daemon = Command::new(sibling("wildrydes-daemon")?)
        .env_clear()
        .envs(backend.env().iter().map(|(k, v)| (k, v)))
        .args(["process", "--stream", DAEMON_STREAM])
        .args([
            "--lease-table",
            "bench-daemon-leases",
            "--worker-id",
            "bench",
        ])
        .args(["--metrics-addr", &format!("127.0.0.1:{metrics_port}")])
        .args(["--idle-poll-interval", "200ms"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let pid = pid(&daemon)?;
    let mut first: Option<(Duration, f64)> = None;
    let deadline = Duration::from_secs(600);
    let (done_at, cpu, peak) = loop {
        anyhow::ensure!(
            started.elapsed() < deadline,
            "the daemon did not drain the stream in {deadline:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        let Ok(answer) = http::call(metrics_port, "GET", "/metrics", b"").await else {
            continue;
        };
        let written = metric(&answer.body, "wildrydes_records_written_total");
        if written > 0.0 && first.is_none() {
            first = Some((started.elapsed(), written));
        }
        if written >= records as f64 {
            let u = usage::of_process(pid)?;
            break (started.elapsed(), u.cpu, u.peak_rss_kib);
        }
    };
    let backend_cpu = backend.usage()?.cpu.saturating_sub(backend_before.cpu);
    terminate(&mut daemon).await?;
    let in_table = count(&dynamodb, "UnicornSensorData").await?;
    anyhow::ensure!(
        in_table == records,
        "the table holds {in_table} items, not {records}"
    );

    let (first_at, first_written) = first.unwrap_or((Duration::ZERO, 0.0));
    let n = records as f64;
    let steady = (done_at - first_at).as_secs_f64();
    let row = json!({
        "records": records,
        "shards": 1,
        "wall_s": done_at.as_secs_f64(),
        "first_write_s": first_at.as_secs_f64(),
        "records_per_s": n / done_at.as_secs_f64(),
        "records_per_s_after_first_write": (n - first_written) / steady.max(1e-9),
        "cpu_s": cpu.as_secs_f64(),
        "cpu_us_per_record": cpu.as_secs_f64() * 1e6 / n,
        "records_per_cpu_s": n / cpu.as_secs_f64().max(1e-9),
        "peak_rss_mib": mib(peak),
        "backend_cpu_us_per_record": backend_cpu.as_secs_f64() * 1e6 / n,
    });
    let r = |k: &str| row[k].as_f64().unwrap_or_default();
    let table = report::table(
        &[
            "records",
            "shards",
            "wall s (start to all written)",
            "records/s per shard",
            "records/s after first write",
            "daemon CPU µs/record",
            "records per CPU-second (per core)",
            "peak RSS MiB",
            "backend CPU µs/record",
        ],
        &[vec![
            records.to_string(),
            "1".to_owned(),
            f(r("wall_s"), 2),
            f(r("records_per_s"), 0),
            f(r("records_per_s_after_first_write"), 0),
            f(r("cpu_us_per_record"), 2),
            f(r("records_per_cpu_s"), 0),
            f(r("peak_rss_mib"), 1),
            f(r("backend_cpu_us_per_record"), 2),
        ]],
    );
    report::write(
        "daemon",
        "Daemon: `wildrydes-daemon process`, one shard, embedded backend",
        &format!("target/release/wildrydes-bench daemon --records {records}"),
        &row,
        &table,
    )?;
    Ok(())
}

/// The sum of every series of `name` in Prometheus text.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit_once(' ')?.1.trim().parse::<f64>().ok())
        .sum()
}

/// What every client of `backend` shares: its region and credentials.
fn sdk_config(backend: &Backend) -> aws_config::SdkConfig {
    let var = |k: &str| backend.var(k).unwrap_or_default().to_owned();
    aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(var("AWS_REGION")))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            var("AWS_ACCESS_KEY_ID"),
            var("AWS_SECRET_ACCESS_KEY"),
            None,
            None,
            "bench",
        )))
        .build()
}

/// A Kinesis client for `backend`.
fn kinesis_client(backend: &Backend) -> aws_sdk_kinesis::Client {
    let config = aws_sdk_kinesis::config::Builder::from(&sdk_config(backend))
        .endpoint_url(backend.var("AWS_ENDPOINT_URL_KINESIS").unwrap_or_default())
        .build();
    aws_sdk_kinesis::Client::from_conf(config)
}

/// A DynamoDB client for `backend`.
fn dynamodb_client(backend: &Backend) -> aws_sdk_dynamodb::Client {
    let config = aws_sdk_dynamodb::config::Builder::from(&sdk_config(backend))
        .endpoint_url(backend.var("AWS_ENDPOINT_URL_DYNAMODB").unwrap_or_default())
        .build();
    aws_sdk_dynamodb::Client::from_conf(config)
}

/// Items in `table`, by a paginated COUNT scan.
async fn count(client: &aws_sdk_dynamodb::Client, table: &str) -> anyhow::Result<usize> {
    let mut total = 0usize;
    let mut start = None;
    loop {
        let page = client
            .scan()
            .table_name(table)
            .select(aws_sdk_dynamodb::types::Select::Count)
            .set_exclusive_start_key(start)
            .send()
            .await?;
        total += usize::try_from(page.count()).unwrap_or_default();
        start = page.last_evaluated_key;
        if start.is_none() {
            return Ok(total);
        }
    }
}

// ---------------------------------------------------------------------------
// producer

const PRODUCER_STREAM: &str = "bench-readings";

async fn producer(fleets: &[u32], duration: Duration, quick: bool) -> anyhow::Result<()> {
    let binary = sibling("producer")?;
    let mut rows = Vec::new();
    for &fleet in fleets {
        // Two shards per thousand unicorns: hashing never fills one past its
        // 1,000 records/s, so pacing is not what limits the producer.
        let shards = (fleet as usize).div_ceil(500).max(1);
        let backend = start_backend(Kind::Embedded, &[(PRODUCER_STREAM, shards)])?;
        let ProducerRun {
            status,
            wall,
            cpu,
            peak,
            backend_cpu,
            summary,
        } = run_producer(&binary, &backend, fleet, duration, &[]).await?;
        drop(backend);
        let sent = number_after(&summary, ", sent ").unwrap_or_default();
        let expected = f64::from(fleet) * duration.as_secs_f64();
        let behind = number_after(&summary, "fell behind simulated time by up to ").unwrap_or(0.0);
        let kept_up = status.success() && sent >= expected && behind < 2.0;
        let row = json!({
            "fleet": fleet,
            "shards": shards,
            "duration_s": duration.as_secs(),
            "expected": expected,
            "sent": sent,
            "wall_s": wall.as_secs_f64(),
            "behind_s": behind,
            "kept_up": kept_up,
            "exit": status.code(),
            "cpu_s": cpu.as_secs_f64(),
            "cpu_us_per_record": cpu.as_secs_f64() * 1e6 / sent.max(1.0),
            "cpu_share_of_one_core": cpu.as_secs_f64() / wall.as_secs_f64(),
            "peak_rss_mib": mib(peak),
            "backend_cpu_us_per_record": backend_cpu.as_secs_f64() * 1e6 / sent.max(1.0),
            "summary": summary.lines().filter(|l| !l.trim().is_empty()).take(3).collect::<Vec<_>>().join(" / "),
        });
        eprintln!("producer: {row}");
        rows.push(row);
    }
    let table = report::rows_table(
        &[
            "fleet",
            "shards",
            "readings expected",
            "sent",
            "wall s",
            "behind s",
            "kept up",
            "producer CPU µs/reading",
            "producer cores used",
            "peak RSS MiB",
            "backend CPU µs/reading",
        ],
        &rows,
        |r| {
            vec![
                r.text("fleet"),
                r.text("shards"),
                r.fixed("expected", 0),
                r.fixed("sent", 0),
                r.fixed("wall_s", 1),
                r.fixed("behind_s", 1),
                r.yes_no("kept_up"),
                r.fixed("cpu_us_per_record", 2),
                r.fixed("cpu_share_of_one_core", 2),
                r.fixed("peak_rss_mib", 1),
                r.fixed("backend_cpu_us_per_record", 2),
            ]
        },
    );
    let fleets: Vec<String> = fleets.iter().map(ToString::to_string).collect();
    report::write(
        "producer",
        "Producer: one process, 1 reading/s per unicorn, embedded Kinesis",
        &format!(
            "target/release/wildrydes-bench producer --fleets {} --duration {}s{}",
            fleets.join(","),
            duration.as_secs(),
            if quick { " --quick" } else { "" }
        ),
        &Value::Array(rows),
        &table,
    )?;
    Ok(())
}

/// One run of the producer binary, as measured from outside.
struct ProducerRun {
    status: std::process::ExitStatus,
    /// Start to exit.
    wall: Duration,
    /// User + system time, read around its `wait`.
    cpu: Duration,
    /// Peak resident memory seen, in KiB.
    peak: u64,
    /// The backend's CPU time over the run.
    backend_cpu: Duration,
    /// Its standard error: the summary, and any log lines.
    summary: String,
}

/// Runs `producer --stream PRODUCER_STREAM --count FLEET --time-scale 1
/// --seed 1 --quiet --duration DURATION` (and `extra`) against `backend`
/// until it exits by itself.
async fn run_producer(
    binary: &Path,
    backend: &Backend,
    fleet: u32,
    duration: Duration,
    extra: &[&str],
) -> anyhow::Result<ProducerRun> {
    let backend_before = backend.usage()?;
    let children_before = usage::of_waited_children()?;
    let started = Instant::now();
    let mut child = Command::new(binary)
        .env_clear()
        .envs(backend.env().iter().map(|(k, v)| (k, v)))
        .args(["--stream", PRODUCER_STREAM, "--count", &fleet.to_string()])
        .args(["--time-scale", "1", "--seed", "1", "--quiet"])
        .args(["--duration", &format!("{}s", duration.as_secs())])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let pid = pid(&child)?;
    let mut peak = 0;
    let mut stderr = child.stderr.take().context("no stderr")?;
    let summary = tokio::spawn(async move {
        let mut text = String::new();
        let _ = tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut text).await;
        text
    });
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if let Ok(u) = usage::of_process(pid) {
            peak = peak.max(u.peak_rss_kib);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let wall = started.elapsed();
    let cpu = usage::of_waited_children()?.saturating_sub(children_before);
    let backend_cpu = backend.usage()?.cpu.saturating_sub(backend_before.cpu);
    let summary = summary.await?;
    Ok(ProducerRun {
        status,
        wall,
        cpu,
        peak,
        backend_cpu,
        summary,
    })
}

// ---------------------------------------------------------------------------
// shard

/// `fleets` on a stream of one shard whose limits the embedded Kinesis
/// enforces, each fleet once per mode of `modes`, each run against a fresh
/// backend: whether one producer keeps up at 1 reading/s per unicorn, and
/// what it costs per reading.
async fn shard(
    fleets: &[u32],
    modes: &[Mode],
    duration: Duration,
    quick: bool,
) -> anyhow::Result<()> {
    let binary = sibling("producer")?;
    let mut rows = Vec::new();
    for &fleet in fleets {
        for &mode in modes {
            let backend = start_backend_with(Kind::Embedded, &[(PRODUCER_STREAM, 1)], true)?;
            let extra: &[&str] = match mode {
                Mode::Plain => &[],
                Mode::Aggregated => &["--aggregate"],
            };
            let run = run_producer(&binary, &backend, fleet, duration, extra).await?;
            drop(backend);
            let summary = &run.summary;
            let sent = number_after(summary, ", sent ").unwrap_or_default();
            let records = match mode {
                Mode::Plain => Some(sent),
                Mode::Aggregated => number_after(summary, " readings in "),
            };
            let expected = f64::from(fleet) * duration.as_secs_f64();
            let behind =
                number_after(summary, "fell behind simulated time by up to ").unwrap_or(0.0);
            let kept_up = run.status.success() && sent >= expected && behind < 2.0;
            let row = json!({
                "fleet": fleet,
                "mode": mode.name(),
                "shards": 1,
                "duration_s": duration.as_secs(),
                "expected": expected,
                "sent": sent,
                "kinesis_records": records,
                "readings_per_record": records.map(|r| sent / r.max(1.0)),
                "calls": summary
                    .find(", unsent ")
                    .and_then(|i| number_after(&summary[i..], "; ")),
                "retried": number_after(summary, ", retried "),
                "failed": number_after(summary, ", failed "),
                "unsent": number_after(summary, ", unsent "),
                "wall_s": run.wall.as_secs_f64(),
                "behind_s": behind,
                "kept_up": kept_up,
                "exit": run.status.code(),
                "cpu_s": run.cpu.as_secs_f64(),
                "cpu_us_per_reading": run.cpu.as_secs_f64() * 1e6 / sent.max(1.0),
                "cpu_share_of_one_core": run.cpu.as_secs_f64() / run.wall.as_secs_f64(),
                "peak_rss_mib": mib(run.peak),
                "backend_cpu_us_per_reading": run.backend_cpu.as_secs_f64() * 1e6 / sent.max(1.0),
                "summary": summary.lines().filter(|l| !l.trim().is_empty()).take(4).collect::<Vec<_>>().join(" / "),
            });
            eprintln!("shard: {row}");
            rows.push(row);
        }
    }
    // The largest fleet each mode kept up with, of those tried.
    let reach: Vec<Value> = modes
        .iter()
        .map(|mode| {
            let largest = rows
                .iter()
                .filter(|r| r["mode"] == mode.name() && r["kept_up"] == true)
                .filter_map(|r| r["fleet"].as_u64())
                .max();
            json!({ "mode": mode.name(), "largest_fleet_kept_up": largest })
        })
        .collect();
    let table = report::rows_table(
        &[
            "fleet",
            "mode",
            "readings expected",
            "sent",
            "Kinesis records put",
            "readings/record",
            "PutRecords calls",
            "retried",
            "failed",
            "wall s",
            "behind s",
            "kept up",
            "producer CPU s",
            "producer CPU µs/reading",
            "producer cores used",
        ],
        &rows,
        |r| {
            vec![
                r.text("fleet"),
                r.text("mode"),
                r.fixed("expected", 0),
                r.fixed("sent", 0),
                r.fixed("kinesis_records", 0),
                r.fixed("readings_per_record", 1),
                r.fixed("calls", 0),
                r.fixed("retried", 0),
                r.fixed("failed", 0),
                r.fixed("wall_s", 1),
                r.fixed("behind_s", 1),
                r.yes_no("kept_up"),
                r.fixed("cpu_s", 2),
                r.fixed("cpu_us_per_reading", 2),
                r.fixed("cpu_share_of_one_core", 3),
            ]
        },
    );
    let reach_lines: String = reach
        .iter()
        .map(|r| {
            let largest = r["largest_fleet_kept_up"].as_u64().map_or_else(
                || "none of those tried".to_owned(),
                |n| format!("{n} unicorns"),
            );
            format!("- {}: {largest}\n", r["mode"].as_str().unwrap_or_default())
        })
        .collect();
    let fleets: Vec<String> = fleets.iter().map(ToString::to_string).collect();
    let mode_flags = flags_unless_all(modes, 2, "--mode", |m| m.name());
    report::write(
        "shard",
        "One shard, limits enforced: producer with and without `--aggregate`, embedded Kinesis",
        &format!(
            "target/release/wildrydes-bench shard --fleets {} --duration {}s{mode_flags}{}",
            fleets.join(","),
            duration.as_secs(),
            if quick { " --quick" } else { "" }
        ),
        &json!({ "runs": rows, "largest_fleet_kept_up": reach }),
        &format!("{table}\nLargest fleet kept up (of those tried):\n\n{reach_lines}"),
    )?;
    Ok(())
}

/// The command line's ` FLAG VALUE` for each of `chosen`, or nothing when
/// all `of` the values were chosen (the default).
fn flags_unless_all<T>(chosen: &[T], of: usize, flag: &str, name: impl Fn(&T) -> &str) -> String {
    if chosen.len() == of {
        return String::new();
    }
    chosen
        .iter()
        .map(|c| format!(" {flag} {}", name(c)))
        .collect()
}

/// The number written right after `label` in `text` (commas and a trailing
/// unit allowed), if any.
fn number_after(text: &str, label: &str) -> Option<f64> {
    let rest = &text[text.find(label)? + label.len()..];
    let digits: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ',')
        .filter(|c| *c != ',')
        .collect();
    digits.trim_end_matches('.').parse().ok()
}

// ---------------------------------------------------------------------------
// alarm

/// How the alarm daemon reads `wildrydes` in a latency run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Read {
    /// GetRecords polling, the daemon's defaults (1 s after an empty read,
    /// 200 ms between reads while records flow)
    Polling,
    /// `--enhanced-fan-out` (SubscribeToShard)
    FanOut,
}

impl Read {
    fn name(self) -> &'static str {
        match self {
            Read::Polling => "polling",
            Read::FanOut => "fan-out",
        }
    }
}

/// A reading of `name` with `magic` points (the workshop's first minute
/// otherwise), as a PutRecords entry under its name.
fn reading(name: &str, magic: i16) -> anyhow::Result<PutRecordsRequestEntry> {
    let base = wildrydes_core::Aggregate::from_json(
        fixture::DAY
            .lines()
            .next()
            .context("the workshop's day")?
            .as_bytes(),
    )?;
    let mut reading = wildrydes_testkit::readings_of_minute(&base, 0).remove(0);
    reading.name = wildrydes_core::UnicornName::new(name)?;
    reading.magic_points = magic;
    Ok(PutRecordsRequestEntry::builder()
        .partition_key(name)
        .data(Blob::new(reading.to_json()))
        .build()?)
}

/// One low-magic reading of `name`, which has no alarm state yet: the
/// alarm's first reading of it below 50 notifies.
fn low_magic(name: &str) -> anyhow::Result<PutRecordsRequestEntry> {
    reading(name, 20)
}

/// The readings of `fleet` healthy unicorns for one tenth of a second of
/// a 1 reading/s fleet, the `tick`th.
fn healthy(fleet: usize, tick: usize) -> anyhow::Result<Vec<PutRecordsRequestEntry>> {
    (0..fleet)
        .filter(|u| u % 10 == tick % 10)
        .map(|u| reading(&format!("Healthy-{u:04}"), 100))
        .collect()
}

/// Percentile `p` (0 to 100) of `xs`, nearest rank.
fn percentile(xs: &[f64], p: f64) -> f64 {
    let mut sorted = xs.to_vec();
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() {
        return 0.0;
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Reading-to-notification latency of `wildrydes-daemon alarm --console`:
/// for each trial a fresh unicorn's reading below 50 magic points is put
/// on `wildrydes` (one shard), and the time runs until its ALARM line is
/// on the daemon's standard output. Trials are spaced by a drawn 0 to 1 s
/// so that they fall anywhere in the polling cycle; `fleets` gives the
/// healthy unicorns putting 1 reading/s beside them (0: an idle stream).
async fn alarm(reads: &[Read], fleets: &[usize], trials: usize, quick: bool) -> anyhow::Result<()> {
    use tokio::io::AsyncBufReadExt as _;
    let daemon = sibling("wildrydes-daemon")?;
    let mut rows = Vec::new();
    let mut draws = wildrydes_testkit::fleet::Draws::new(7);
    for &fleet in fleets {
        for &read in reads {
            let backend = start_backend(Kind::Embedded, &[])?;
            let kinesis = kinesis_client(&backend);
            let mut command = Command::new(&daemon);
            command
                .env_clear()
                .envs(backend.env().iter().map(|(k, v)| (k, v)))
                .env("RUST_LOG", "warn")
                .args(["alarm", "--console", "--metrics-addr", "127.0.0.1:0"])
                .args(["--lease-table", &format!("bench-alarm-{}", read.name())])
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .kill_on_drop(true);
            if read == Read::FanOut {
                command.arg("--enhanced-fan-out");
            }
            let mut child = command.spawn()?;
            let mut lines =
                tokio::io::BufReader::new(child.stdout.take().context("no stdout")?).lines();
            let background = {
                let kinesis = kinesis.clone();
                tokio::spawn(async move {
                    let mut tick = tokio::time::interval(Duration::from_millis(100));
                    for n in 0.. {
                        tick.tick().await;
                        let Ok(entries) = healthy(fleet, n) else {
                            break;
                        };
                        if entries.is_empty() {
                            continue;
                        }
                        let _ = kinesis
                            .put_records()
                            .stream_name(wildrydes_core::names::READINGS_STREAM)
                            .set_records(Some(entries))
                            .send()
                            .await;
                    }
                })
            };
            let mut latencies = Vec::new();
            // The first trial waits for the daemon to take its lease (and
            // register its consumer); it is not counted.
            for trial in 0..=trials {
                if trial > 0 {
                    tokio::time::sleep(Duration::from_millis(draws.below(1000))).await;
                }
                let name = format!("Latency-{trial:04}");
                let started = Instant::now();
                kinesis
                    .put_records()
                    .stream_name(wildrydes_core::names::READINGS_STREAM)
                    .records(low_magic(&name)?)
                    .send()
                    .await
                    .context("cannot put a trial reading")?;
                let wait = if trial == 0 { 60 } else { 20 };
                let seen = tokio::time::timeout(Duration::from_secs(wait), async {
                    while let Some(line) = lines.next_line().await? {
                        if line.contains(&name) && line.contains("ALARM") {
                            return Ok(());
                        }
                    }
                    anyhow::bail!("the alarm daemon closed its standard output")
                })
                .await
                .with_context(|| {
                    format!("no ALARM for {name} within {wait} s ({})", read.name())
                })?;
                seen?;
                if trial > 0 {
                    latencies.push(started.elapsed().as_secs_f64() * 1000.0);
                }
            }
            background.abort();
            terminate(&mut child).await?;
            drop(backend);
            let row = json!({
                "read": read.name(),
                "healthy_unicorns": fleet,
                "trials": latencies.len(),
                "p50_ms": percentile(&latencies, 50.0),
                "p99_ms": percentile(&latencies, 99.0),
                "max_ms": percentile(&latencies, 100.0),
                "latencies_ms": latencies,
            });
            eprintln!(
                "alarm: {} {} unicorns: p50 {:.0} ms, p99 {:.0} ms",
                read.name(),
                fleet,
                row["p50_ms"].as_f64().unwrap_or_default(),
                row["p99_ms"].as_f64().unwrap_or_default()
            );
            rows.push(row);
        }
    }
    let table = report::rows_table(
        &[
            "read",
            "healthy unicorns beside",
            "trials",
            "p50 ms",
            "p99 ms",
            "max ms",
        ],
        &rows,
        |r| {
            vec![
                r.text("read"),
                r.text("healthy_unicorns"),
                r.text("trials"),
                r.fixed("p50_ms", 0),
                r.fixed("p99_ms", 0),
                r.fixed("max_ms", 0),
            ]
        },
    );
    let fleets: Vec<String> = fleets.iter().map(ToString::to_string).collect();
    let read_flags = flags_unless_all(reads, 2, "--read", |r| r.name());
    report::write(
        "alarm",
        "Alarm latency, PutRecords to the console notification, one shard, embedded Kinesis",
        &format!(
            "target/release/wildrydes-bench alarm --fleets {} --trials {trials}{read_flags}{}",
            fleets.join(","),
            if quick { " --quick" } else { "" }
        ),
        &json!({ "runs": rows }),
        &table,
    )?;
    Ok(())
}
