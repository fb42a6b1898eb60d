//! `cargo xtask demo`: the whole pipeline on the embedded backend, proven
//! correct. The real binaries run as their users run them: a producer fleet
//! (one unicorn on the magic-drain scenario) writing a ledger, and the
//! daemon's aggregate, process and alarm pipelines; at the end the table is
//! compared, item by item, with the aggregates the ledger implies.
//!
//! With `faults`, the same run under trouble: Kinesis enforces its shard
//! write limits, shard iterators expire after a second (the processing
//! daemon polls slower than that when idle), one BatchWriteItem call in two
//! is throttled (left unprocessed or refused, by `fault_proxy`), the
//! readings stream is split in two and merged back while data flows, a
//! late device uploads half an hour of backlog alongside the live fleet,
//! and the aggregating and processing daemons are killed with SIGKILL in
//! turn and restarted every few seconds.
//!
//! With `aggregate`, the producers pack readings into KPL aggregated
//! records (as a fleet of more than about 1,000 unicorns per shard must) and
//! every consumer deaggregates; the report counts the Kinesis records that
//! carried the readings.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::aggregates::{self, Key, Verification};
use anyhow::Context as _;
use aws_sdk_kinesis::types::ShardIteratorType;
use tokio::io::AsyncBufReadExt as _;
use tokio::process::{Child, Command};
use wildrydes_core::Aggregate;
use wildrydes_core::input::{SourceRecord, user_records};
use wildrydes_local_aws::{LocalAws, LocalAwsOptions, workshop};

use crate::verify::ledger_readings;

/// The device of `--faults` that uploads a backlog: its own clock, half an
/// hour behind the fleet's.
const LATE_DEVICE: &str = "Latecomer";

/// What to run.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Unicorns in the fleet; the first drains its magic.
    pub unicorns: usize,
    /// Simulated seconds of readings.
    pub duration_secs: u64,
    /// Simulated seconds per real second.
    pub time_scale: u32,
    /// Run under injected faults.
    pub faults: bool,
    /// The producers (the fleet's and, under faults, the late device's)
    /// pack readings into KPL aggregated records (`producer --aggregate`).
    pub aggregate: bool,
    /// Where the ledger and the daemons' logs go.
    pub work_dir: PathBuf,
    /// Where the `producer` and `wildrydes-daemon` binaries are.
    pub bin_dir: PathBuf,
    /// Print progress lines.
    pub progress: bool,
    /// Longest wait for the table to match the ledger once the producer is
    /// done ([`DemoOptions::settle_timeout_for`] scales it with the fleet).
    pub settle_timeout: Duration,
    /// Also start the operators' console (`wildrydes-daemon console`),
    /// print its URL, and after the verification keep everything running
    /// until Ctrl-C.
    pub console: bool,
}

impl DemoOptions {
    /// A settle timeout that grows with the readings: 90 s, plus 10 s per
    /// 100,000 readings (4.5 minutes for 5,000 unicorns over the default six
    /// simulated minutes). On one shard the daemons keep up with the
    /// producer (measured with `--aggregate`: 1,000 and 5,000 unicorns, the
    /// table matched at the first look after the producer ended); the
    /// margin is for `--faults`, where each restarted daemon re-reads from
    /// its checkpoint and reloads every unicorn it meets, and one write in
    /// two is throttled.
    pub fn settle_timeout_for(unicorns: usize, duration_secs: u64) -> Duration {
        let readings = u64::try_from(unicorns)
            .unwrap_or(u64::MAX)
            .saturating_mul(duration_secs);
        Duration::from_secs(90_u64.saturating_add(readings / 100_000 * 10))
    }
}

/// The Kinesis records on the readings stream, and the readings (user
/// records) they carried: one each, or many per KPL aggregate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordCount {
    /// Kinesis records, on every shard (closed ones after a reshard too).
    pub records: u64,
    /// Readings they carried, after deaggregation.
    pub readings: u64,
}

/// What the demo saw.
#[derive(Debug, Clone)]
pub struct DemoReport {
    /// Readings Kinesis acknowledged (the ledger's lines).
    pub expected: BTreeMap<Key, Aggregate>,
    /// The table against the ledger.
    pub verification: Verification,
    /// Alarm notifications, as the console notifier printed them.
    pub notifications: Vec<serde_json::Value>,
    /// Records kept as rejects.
    pub rejects: usize,
    /// Times a daemon (processing or aggregating) was killed and restarted.
    pub restarts: usize,
    /// Reshards of the readings stream (a split, then a merge).
    pub reshards: usize,
    /// BatchWriteItem calls the fault proxy throttled.
    pub throttled_writes: u64,
    /// What the readings stream held at the end; `None` if it could not be
    /// read back (said in the progress lines).
    pub readings_stream: Option<RecordCount>,
}

/// Runs the demo.
pub async fn run(opts: &DemoOptions) -> anyhow::Result<DemoReport> {
    std::fs::create_dir_all(&opts.work_dir)
        .with_context(|| format!("cannot create {}", opts.work_dir.display()))?;
    let say = |line: String| {
        if opts.progress {
            eprintln!("demo: {line}");
        }
    };
    let local = LocalAws::start(LocalAwsOptions {
        enforce_limits: opts.faults,
        iterator_ttl_seconds: if opts.faults { 1 } else { 300 },
        ..LocalAwsOptions::default()
    })
    .await
    .context("cannot start the embedded Kinesis and DynamoDB")?;
    workshop::ensure_workshop_resources(&local).await?;
    for old in [
        "daemon-aggregate.log",
        "daemon-process.log",
        "daemon-alarm.log",
    ] {
        let _ = std::fs::remove_file(opts.work_dir.join(old));
    }
    let mut env = local.env_vars();
    let mut faults = None;
    if opts.faults {
        let (url, counts) =
            wildrydes_local_aws::fault_proxy::start(&local.dynamodb_endpoint(), 2).await?;
        for (name, value) in &mut env {
            if *name == "AWS_ENDPOINT_URL_DYNAMODB" {
                value.clone_from(&url);
            }
        }
        faults = Some(counts);
    }
    say(format!(
        "embedded backend up: Kinesis {}, DynamoDB {}",
        local.kinesis_endpoint(),
        local.dynamodb_endpoint()
    ));

    let notifications = Arc::new(Mutex::new(Vec::new()));
    // Under faults the daemons are killed every few seconds: checkpoint
    // often enough that each life moves its checkpoint.
    let aggregate_extra: &[&str] = if opts.faults {
        &["--idle-flush-after", "2s", "--checkpoint-interval", "1s"]
    } else {
        &["--idle-flush-after", "2s"]
    };
    // With the console, each pipeline's /metrics on a port of its own for
    // the console to read (a restarted daemon takes its port again).
    let metrics: BTreeMap<&str, String> = ["aggregate", "process", "alarm"]
        .into_iter()
        .map(|p| {
            let port = if opts.console { free_port()? } else { 0 };
            Ok((p, format!("127.0.0.1:{port}")))
        })
        .collect::<anyhow::Result<_>>()?;
    let daemon = |pipeline: &str, worker: &str, extra: &[&str]| {
        daemon(opts, &env, pipeline, worker, &metrics[pipeline], extra)
    };
    let mut aggregate = daemon("aggregate", "demo-aggregate-0", aggregate_extra)?;
    let mut alarm = daemon("alarm", "demo-alarm", &["--console"])?;
    collect_notifications(&mut alarm, notifications.clone());
    let process_extra: &[&str] = if opts.faults {
        &["--idle-poll-interval", "1500ms"]
    } else {
        &[]
    };
    let mut process = daemon("process", "demo-process-0", process_extra)?;
    say("daemons started: aggregate, process, alarm".into());
    let mut console = if opts.console {
        let urls: Vec<String> = metrics
            .values()
            .map(|addr| format!("http://{addr}/metrics"))
            .collect();
        let (child, url) = start_console(opts, &env, &urls.join(",")).await?;
        say(format!("console: {url} (open it in a browser)"));
        Some((child, url))
    } else {
        None
    };

    let ledger = opts.work_dir.join("ledger.jsonl");
    let mut producer = Command::new(opts.bin_dir.join("producer"));
    producer
        .env_clear()
        .envs(local.env_vars())
        .args([
            "--count",
            &opts.unicorns.to_string(),
            "--scenario",
            "magic-drain",
            "--drain-start",
            "30s",
        ])
        .args([
            "--time-scale",
            &opts.time_scale.to_string(),
            "--duration",
            &format!("{}s", opts.duration_secs),
        ])
        .args(["--seed", "42", "--quiet", "--ledger"])
        .arg(&ledger)
        .args(opts.aggregate.then_some("--aggregate"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(opts.work_dir.join("producer.log"))?)
        .kill_on_drop(true);
    let mut producer = producer
        .spawn()
        .context("cannot start the producer: build it with cargo build -p wildrydes-producer")?;
    say(format!(
        "producer: {} unicorns, {} simulated seconds at x{}{}",
        opts.unicorns,
        opts.duration_secs,
        opts.time_scale,
        if opts.aggregate {
            ", in KPL aggregated records"
        } else {
            ""
        }
    ));

    let mut late = None;
    let resharding = if opts.faults {
        late = Some(late_device(opts, &local)?);
        say(format!(
            "fault: {LATE_DEVICE} uploads a backlog half an hour behind the fleet"
        ));
        Some(tokio::spawn(split_then_merge(local.kinesis_client())))
    } else {
        None
    };

    // The producer runs for `duration / time-scale` of real time: under
    // faults a daemon is killed every third of that (every 3 s at most), so
    // that both are killed at least once however short the run.
    let producing = Duration::from_secs_f64(
        f64::from(u32::try_from(opts.duration_secs).unwrap_or(u32::MAX))
            / f64::from(opts.time_scale.max(1)),
    );
    let kill_every = (producing / 3).clamp(Duration::from_millis(500), Duration::from_secs(3));
    let mut restarts = 0;
    let status = loop {
        let wait = if opts.faults {
            kill_every
        } else {
            Duration::from_secs(3600)
        };
        match tokio::time::timeout(wait, producer.wait()).await {
            Ok(status) => break status?,
            Err(_) => {
                restarts += 1;
                // In turn: the processing daemon, then the aggregating one.
                let (child, pipeline, extra) = if restarts % 2 == 1 {
                    (&mut process, "process", process_extra)
                } else {
                    (&mut aggregate, "aggregate", aggregate_extra)
                };
                child.kill().await?;
                say(format!(
                    "fault: {pipeline} daemon killed with SIGKILL, restarting ({restarts})"
                ));
                *child = daemon(pipeline, &format!("demo-{pipeline}-{restarts}"), extra)?;
            }
        }
    };
    anyhow::ensure!(
        status.success(),
        "the producer failed ({status}); see {}",
        opts.work_dir.join("producer.log").display()
    );
    if let Some(mut late) = late {
        let status = late.wait().await?;
        anyhow::ensure!(
            status.success(),
            "the late device's producer failed ({status}); see {}",
            opts.work_dir.join("late-producer.log").display()
        );
    }
    let reshards = match resharding {
        Some(task) => task.await.context("the resharding task panicked")??,
        None => 0,
    };
    if reshards > 0 {
        say(format!(
            "fault: {reshards} reshards of the readings stream (split, merge)"
        ));
    }
    say("producer done; waiting for the pipeline to catch up".into());

    let dynamodb = local.dynamodb_client();
    let deadline = tokio::time::Instant::now() + opts.settle_timeout;
    // The ledgers are read once: a large fleet's run a million lines.
    let late_ledger = opts.work_dir.join("late-ledger.jsonl");
    let mut readings = ledger_readings(&ledger)?;
    if opts.faults {
        readings.extend(ledger_readings(&late_ledger)?);
    }
    let expected = aggregates::expected_aggregates(&readings);
    drop(readings);
    let mut said = (usize::MAX, tokio::time::Instant::now());
    let verification = loop {
        let (found, unreadable) = aggregates::table_aggregates(&dynamodb, workshop::SENSOR_TABLE)
            .await
            .map_err(anyhow::Error::msg)?;
        let mut verification = aggregates::compare(&expected, &found);
        verification.unreadable = unreadable;
        if verification.passed() || tokio::time::Instant::now() >= deadline {
            break verification;
        }
        // A line when the count moved, at most every two seconds.
        if said.0 == usize::MAX
            || (verification.matching != said.0 && said.1.elapsed() >= Duration::from_secs(2))
        {
            say(format!(
                "{} of {} aggregates in the table",
                verification.matching,
                expected.len()
            ));
            said = (verification.matching, tokio::time::Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    if let Some((_, url)) = &console {
        say(format!(
            "verification {}: {} of {} aggregates match; the console stays up at {url} until Ctrl-C",
            if verification.passed() {
                "PASSED"
            } else {
                "FAILED"
            },
            verification.matching,
            expected.len()
        ));
        if let Err(e) = wildrydes_cli::stop_requested().await {
            say(format!("cannot listen for Ctrl-C ({e}); stopping now"));
        }
    }
    if let Some((child, _)) = &mut console {
        stop(child).await;
    }
    for child in [&mut aggregate, &mut process, &mut alarm] {
        stop(child).await;
    }
    let readings_stream = match count_records(&local.kinesis_client()).await {
        Ok(count) => Some(count),
        Err(e) => {
            say(format!("cannot count the readings stream's records: {e:#}"));
            None
        }
    };
    let rejects = crate::rejects::list_rejects(&dynamodb, workshop::REJECTS_TABLE)
        .await
        .map(|r| r.len())
        .unwrap_or_default();
    let notifications = notifications.lock().map(|n| n.clone()).unwrap_or_default();
    if let Some(c) = &faults {
        say(format!(
            "fault proxy: {} BatchWriteItem calls, {} left unprocessed, {} refused as throttled",
            c.batch_writes.load(std::sync::atomic::Ordering::Relaxed),
            c.unprocessed.load(std::sync::atomic::Ordering::Relaxed),
            c.throttled.load(std::sync::atomic::Ordering::Relaxed)
        ));
    }
    let throttled_writes = faults.map_or(0, |c| {
        c.unprocessed.load(std::sync::atomic::Ordering::Relaxed)
            + c.throttled.load(std::sync::atomic::Ordering::Relaxed)
    });
    local.shutdown().await?;
    Ok(DemoReport {
        expected,
        verification,
        notifications,
        rejects,
        restarts,
        reshards,
        throttled_writes,
        readings_stream,
    })
}

/// Reads the readings stream back from the oldest record of every shard
/// (closed ones too) and counts its Kinesis records and the readings they
/// carry. A failed read (throttled, or its iterator expired: they live 1 s
/// under faults) is tried again with a new iterator after the last record
/// counted.
async fn count_records(kinesis: &aws_sdk_kinesis::Client) -> anyhow::Result<RecordCount> {
    use aws_sdk_kinesis::error::ProvideErrorMetadata as _;
    let stream = workshop::READINGS_STREAM;
    let shards = kinesis
        .list_shards()
        .stream_name(stream)
        .send()
        .await
        .context("cannot list the shards of the readings stream")?;
    let mut count = RecordCount {
        records: 0,
        readings: 0,
    };
    for shard in shards.shards() {
        let mut last: Option<String> = None;
        let mut iterator: Option<String> = None;
        // Failed reads in a row; empty pages in a row (an open shard has no
        // end: empty and caught up, or empty five times, is its end).
        let (mut failures, mut empty) = (0, 0);
        loop {
            let it = match iterator.take() {
                Some(it) => Ok(it),
                None => {
                    let request = kinesis
                        .get_shard_iterator()
                        .stream_name(stream)
                        .shard_id(shard.shard_id());
                    let request = match &last {
                        Some(sequence) => request
                            .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                            .starting_sequence_number(sequence),
                        None => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
                    };
                    match request.send().await {
                        Ok(out) => out
                            .shard_iterator
                            .ok_or_else(|| "no shard iterator".to_owned()),
                        Err(e) => Err(format!(
                            "GetShardIterator: {}",
                            e.message().or(e.code()).unwrap_or("failed")
                        )),
                    }
                }
            };
            let page = match it {
                Ok(it) => kinesis
                    .get_records()
                    .shard_iterator(it)
                    .limit(10_000)
                    .send()
                    .await
                    .map_err(|e| {
                        format!(
                            "GetRecords: {}",
                            e.message().or(e.code()).unwrap_or("failed")
                        )
                    }),
                Err(e) => Err(e),
            };
            let page = match page {
                Ok(page) => page,
                Err(_) if failures < 40 => {
                    failures += 1;
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
                Err(e) => anyhow::bail!("{e} (shard {})", shard.shard_id()),
            };
            failures = 0;
            let records = page.records();
            empty = if records.is_empty() { empty + 1 } else { 0 };
            if let Some(r) = records.last() {
                last = Some(r.sequence_number().to_owned());
            }
            count.records += u64::try_from(records.len()).unwrap_or(u64::MAX);
            let readings = user_records(records.iter().map(SourceRecord::from)).len();
            count.readings += u64::try_from(readings).unwrap_or(u64::MAX);
            let caught_up = empty > 0 && page.millis_behind_latest() == Some(0);
            match page.next_shard_iterator {
                Some(next) if !caught_up && empty < 5 => iterator = Some(next),
                _ => break,
            }
        }
    }
    Ok(count)
}

/// The late device: one unicorn whose readings start half an hour before
/// the fleet's and are uploaded twenty times faster than they were made,
/// while the fleet sends live.
fn late_device(opts: &DemoOptions, local: &LocalAws) -> anyhow::Result<Child> {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .context("the system clock is before 1970")?;
    let start = wildrydes_core::StatusTime::from_epoch_millis(now_ms - 30 * 60_000)
        .context("the system clock is outside the years the workshop's times cover")?;
    let mut late = Command::new(opts.bin_dir.join("producer"));
    late.env_clear()
        .envs(local.env_vars())
        .args(["--name", LATE_DEVICE, "--seed", "7", "--quiet"])
        .args(["--start-time", &start.to_string()])
        .args(["--duration", &format!("{}s", opts.duration_secs)])
        .args(["--time-scale", &(opts.time_scale * 20).to_string()])
        .arg("--ledger")
        .arg(opts.work_dir.join("late-ledger.jsonl"))
        .args(opts.aggregate.then_some("--aggregate"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(
            opts.work_dir.join("late-producer.log"),
        )?)
        .kill_on_drop(true);
    late.spawn().context(
        "cannot start the late device's producer: build it with cargo build -p wildrydes-producer",
    )
}

/// Splits the readings stream's shard in two while data flows, then merges
/// the children back: every consumer must read parents before children and
/// carry each unicorn's open minutes across. Returns the reshards done.
async fn split_then_merge(kinesis: aws_sdk_kinesis::Client) -> anyhow::Result<usize> {
    let stream = workshop::READINGS_STREAM;
    let open_shards = || async {
        let listed = kinesis
            .list_shards()
            .stream_name(stream)
            .send()
            .await
            .context("cannot list the shards of the readings stream")?;
        let open: Vec<_> = listed
            .shards()
            .iter()
            .filter(|s| {
                s.sequence_number_range()
                    .and_then(|r| r.ending_sequence_number())
                    .is_none()
            })
            .map(|s| s.shard_id().to_owned())
            .collect();
        anyhow::Ok(open)
    };
    let active = || async {
        for _ in 0..100 {
            let summary = kinesis
                .describe_stream_summary()
                .stream_name(stream)
                .send()
                .await?;
            if summary
                .stream_description_summary()
                .is_some_and(|s| s.stream_status() == &aws_sdk_kinesis::types::StreamStatus::Active)
            {
                return anyhow::Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        anyhow::bail!("stream {stream} did not become ACTIVE after a reshard")
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    let parent = open_shards().await?;
    anyhow::ensure!(
        parent.len() == 1,
        "expected one open shard, found {parent:?}"
    );
    kinesis
        .split_shard()
        .stream_name(stream)
        .shard_to_split(&parent[0])
        .new_starting_hash_key((1u128 << 127).to_string())
        .send()
        .await
        .context("cannot split the readings stream")?;
    active().await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let children = open_shards().await?;
    anyhow::ensure!(
        children.len() == 2,
        "expected two children, found {children:?}"
    );
    kinesis
        .merge_shards()
        .stream_name(stream)
        .shard_to_merge(&children[0])
        .adjacent_shard_to_merge(&children[1])
        .send()
        .await
        .context("cannot merge the readings stream's two shards")?;
    active().await?;
    Ok(2)
}

/// Starts one daemon pipeline against `local`, logging to the work folder.
/// A port free on 127.0.0.1 now.
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// `wildrydes-daemon console` on a free port, reading the daemons'
/// `metrics`; gives it and its URL once it serves.
async fn start_console(
    opts: &DemoOptions,
    env: &[(&'static str, String)],
    metrics: &str,
) -> anyhow::Result<(Child, String)> {
    use tokio::io::AsyncBufReadExt as _;
    let log = std::fs::File::create(opts.work_dir.join("console.log"))?;
    let mut child = Command::new(opts.bin_dir.join("wildrydes-daemon"))
        .env_clear()
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("RUST_LOG", "info")
        .args(["console", "--addr", "127.0.0.1:0", "--metrics", metrics])
        .stdout(Stdio::piped())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .context(
            "cannot start wildrydes-daemon console: build it with cargo build -p wildrydes-daemon",
        )?;
    let stdout = child
        .stdout
        .take()
        .context("the console's standard output")?;
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let url = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await? {
            if let Some(url) = line.strip_prefix("console: ") {
                return Ok(url.to_owned());
            }
        }
        anyhow::bail!("the console stopped before serving")
    })
    .await
    .with_context(|| {
        format!(
            "the console did not start within 30 s; see {}",
            opts.work_dir.join("console.log").display()
        )
    })??;
    Ok((child, url))
}

fn daemon(
    opts: &DemoOptions,
    env: &[(&'static str, String)],
    pipeline: &str,
    worker: &str,
    metrics_addr: &str,
    extra: &[&str],
) -> anyhow::Result<Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(opts.work_dir.join(format!("daemon-{pipeline}.log")))?;
    Command::new(opts.bin_dir.join("wildrydes-daemon"))
        .env_clear()
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("RUST_LOG", "info")
        .args([
            pipeline,
            "--worker-id",
            worker,
            "--lease-duration",
            "3s",
            "--metrics-addr",
            metrics_addr,
        ])
        .args(if extra.contains(&"--idle-poll-interval") {
            &[][..]
        } else {
            &["--idle-poll-interval", "200ms"][..]
        })
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .context("cannot start wildrydes-daemon: build it with cargo build -p wildrydes-daemon")
}

/// Keeps the alarm's console notifications as they are printed.
fn collect_notifications(alarm: &mut Child, into: Arc<Mutex<Vec<serde_json::Value>>>) {
    let Some(stdout) = alarm.stdout.take() else {
        return;
    };
    tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                && v["notification"] == "wildrydes-alarm"
                && let Ok(mut all) = into.lock()
            {
                all.push(v);
            }
        }
    });
}

/// SIGTERM, then SIGKILL if it does not stop within 20 s.
async fn stop(child: &mut Child) {
    if let Some(pid) = child.id() {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
    }
    if tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .is_err()
    {
        let _ = child.kill().await;
    }
}

/// The report as a person reads it.
pub fn describe(report: &DemoReport) -> String {
    let mut out = String::from("\nPer unicorn, in UnicornSensorData:\n");
    let mut per: BTreeMap<&str, (usize, i64, i16)> = BTreeMap::new();
    for ((_, name), a) in &report.expected {
        let e = per.entry(name).or_insert((0, 0, i16::MAX));
        e.0 += 1;
        e.1 += i64::from(a.distance);
        e.2 = e.2.min(a.min_magic_points);
    }
    out.push_str(&format!(
        "  {:<14} {:>8} {:>12} {:>10}\n",
        "unicorn", "minutes", "distance m", "min magic"
    ));
    for (name, (minutes, distance, magic)) in &per {
        out.push_str(&format!(
            "  {name:<14} {minutes:>8} {distance:>12} {magic:>10}\n"
        ));
    }
    out.push_str("\nAlarms:\n");
    if report.notifications.is_empty() {
        out.push_str("  none\n");
    }
    for n in &report.notifications {
        out.push_str(&format!(
            "  {} {:<5} magic {} at {}\n",
            n["unicorn"].as_str().unwrap_or_default(),
            n["state"].as_str().unwrap_or_default(),
            n["magicPoints"],
            n["statusTime"].as_str().unwrap_or_default()
        ));
    }
    out.push_str(&format!("\nRejects: {}\n", report.rejects));
    if let Some(c) = report.readings_stream {
        let per_record = if c.records == 0 {
            0.0
        } else {
            c.readings as f64 / c.records as f64
        };
        out.push_str(&format!(
            "Readings stream: {} readings in {} Kinesis records ({per_record:.1} per record)\n",
            c.readings, c.records
        ));
    }
    if report.throttled_writes > 0 {
        out.push_str(&format!(
            "BatchWriteItem calls throttled by the fault proxy: {}\n",
            report.throttled_writes
        ));
    }
    if report.restarts > 0 {
        out.push_str(&format!(
            "Daemons (processing, aggregating in turn) killed and restarted: {} times\n",
            report.restarts
        ));
    }
    if report.reshards > 0 {
        out.push_str(&format!(
            "Reshards of the readings stream (split, then merge): {}\n",
            report.reshards
        ));
    }
    out.push_str(&format!(
        "\nVerification against the producer's ledger: {}",
        crate::verify::describe(&report.verification, 5)
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_settle_timeout_grows_with_the_readings() {
        // The default fleet keeps the 90 s the demo always had.
        assert_eq!(
            DemoOptions::settle_timeout_for(5, 360),
            Duration::from_secs(90)
        );
        // 5,000 unicorns for six minutes: 1.8 million readings.
        assert_eq!(
            DemoOptions::settle_timeout_for(5_000, 360),
            Duration::from_secs(270)
        );
    }
}
