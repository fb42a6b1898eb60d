//! `cargo xtask demo`: the whole pipeline on the embedded backend, proven
//! correct. The real binaries run as their users run them: a producer fleet
//! (one unicorn on the magic-drain scenario) writing a ledger, and the
//! daemon's aggregate, process and alarm pipelines; at the end the table is
//! compared, item by item, with the aggregates the ledger implies.
//!
//! With `faults`, the same run under trouble: Kinesis enforces its shard
//! write limits, shard iterators expire after a second (the processing
//! daemon polls slower than that when idle), one BatchWriteItem call in two
//! is throttled (left unprocessed or refused, by `fault_proxy`), and the
//! processing daemon is killed with SIGKILL and restarted several times
//! while data flows.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use tokio::io::AsyncBufReadExt as _;
use tokio::process::{Child, Command};
use wildrydes_core::Aggregate;
use wildrydes_core::verify::{Key, Verification};
use wildrydes_local_aws::{LocalAws, LocalAwsOptions, workshop};

use crate::verify::verify_ledger;

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
    /// Times the processing daemon was killed and restarted.
    pub restarts: usize,
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
        let (url, counts) = crate::fault_proxy::start(&local.dynamodb_endpoint(), 2).await?;
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
    let mut aggregate = daemon(
        opts,
        &env,
        "aggregate",
        "demo-aggregate",
        &["--idle-flush-after", "2s"],
    )?;
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

    let mut restarts = 0;
    let status = loop {
        let wait = if opts.faults {
            Duration::from_secs(3)
        } else {
            Duration::from_secs(3600)
        };
        match tokio::time::timeout(wait, producer.wait()).await {
            Ok(status) => break status?,
            Err(_) => {
                process.kill().await?;
                restarts += 1;
                say(format!(
                    "fault: processing daemon killed with SIGKILL, restarting ({restarts})"
                ));
                process = daemon(
                    opts,
                    &env,
                    "process",
                    &format!("demo-process-{restarts}"),
                    process_extra,
                )?;
            }
        }
    };
    anyhow::ensure!(
        status.success(),
        "the producer failed ({status}); see {}",
        opts.work_dir.join("producer.log").display()
    );
    say("producer done; waiting for the pipeline to catch up".into());

    let dynamodb = local.dynamodb_client();
    let deadline = tokio::time::Instant::now() + opts.settle_timeout;
    let (expected, verification) = loop {
        let (expected, verification) =
            verify_ledger(&ledger, &dynamodb, workshop::SENSOR_TABLE).await?;
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
    let rejects = wildrydes_core::rejects::list_rejects(&dynamodb, workshop::REJECTS_TABLE)
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
        throttled_writes,
    })
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
            "Processing daemon killed and restarted: {} times\n",
            report.restarts
        ));
    }
    out.push_str(&format!(
        "\nVerification against the producer's ledger: {}",
        crate::verify::describe(&report.verification, 5)
    ));
    out
}
