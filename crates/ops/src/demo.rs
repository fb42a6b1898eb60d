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

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::aggregates::{Key, Verification};
use anyhow::Context as _;
use tokio::io::AsyncBufReadExt as _;
use tokio::process::{Child, Command};
use wildrydes_core::Aggregate;
use wildrydes_local_aws::{LocalAws, LocalAwsOptions, workshop};

use crate::verify::verify_ledgers;

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
    /// Where the ledger and the daemons' logs go.
    pub work_dir: PathBuf,
    /// Where the `producer` and `wildrydes-daemon` binaries are.
    pub bin_dir: PathBuf,
    /// Print progress lines.
    pub progress: bool,
    /// Longest wait for the table to match the ledger once the producer is done.
    pub settle_timeout: Duration,
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
    let mut aggregate = daemon(opts, &env, "aggregate", "demo-aggregate-0", aggregate_extra)?;
    let mut alarm = daemon(opts, &env, "alarm", "demo-alarm", &["--console"])?;
    collect_notifications(&mut alarm, notifications.clone());
    let process_extra: &[&str] = if opts.faults {
        &["--idle-poll-interval", "1500ms"]
    } else {
        &[]
    };
    let mut process = daemon(opts, &env, "process", "demo-process-0", process_extra)?;
    say("daemons started: aggregate, process, alarm".into());

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
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(opts.work_dir.join("producer.log"))?)
        .kill_on_drop(true);
    let mut producer = producer
        .spawn()
        .context("cannot start the producer: build it with cargo build -p wildrydes-producer")?;
    say(format!(
        "producer: {} unicorns, {} simulated seconds at x{}",
        opts.unicorns, opts.duration_secs, opts.time_scale
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
                *child = daemon(
                    opts,
                    &env,
                    pipeline,
                    &format!("demo-{pipeline}-{restarts}"),
                    extra,
                )?;
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
    let (expected, verification) = loop {
        let late_ledger = opts.work_dir.join("late-ledger.jsonl");
        let mut ledgers = vec![ledger.as_path()];
        if opts.faults {
            ledgers.push(&late_ledger);
        }
        let (expected, verification) =
            verify_ledgers(&ledgers, &dynamodb, workshop::SENSOR_TABLE).await?;
        if verification.passed() || tokio::time::Instant::now() >= deadline {
            break (expected, verification);
        }
        say(format!(
            "{} of {} aggregates in the table",
            verification.matching,
            expected.len()
        ));
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    for child in [&mut aggregate, &mut process, &mut alarm] {
        stop(child).await;
    }
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
    })
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
fn daemon(
    opts: &DemoOptions,
    env: &[(&'static str, String)],
    pipeline: &str,
    worker: &str,
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
            "127.0.0.1:0",
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
