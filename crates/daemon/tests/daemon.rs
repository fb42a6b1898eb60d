//! The daemon binary against the embedded backend: several workers sharing
//! shards, a worker killed with SIGKILL, a restart, a shard split, expired
//! iterators. In every case the table must end with exactly the expected
//! items.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use tokio::process::{Child, Command};
use wildrydes_core::item::aggregate_to_item;
use wildrydes_core::{Aggregate, UnicornName};
use wildrydes_local_aws::{LocalAws, LocalAwsOptions, ensure_stream, workshop};
use wildrydes_tests::WORKSHOP_DAY;

type Item = std::collections::HashMap<String, AttributeValue>;

const STREAM: &str = "daemon-aggregates";
const LEASES: &str = "daemon-test-leases";

/// `count` aggregates: the workshop's minutes, spread over 20 unicorns.
fn aggregates(from: usize, count: usize) -> Vec<Aggregate> {
    WORKSHOP_DAY
        .lines()
        .cycle()
        .enumerate()
        .skip(from)
        .take(count)
        .map(|(i, line)| {
            let mut a = Aggregate::from_json(line.as_bytes()).unwrap();
            a.name = UnicornName::new(&format!("Unicorn-{:02}", (i / 1440) * 20 + i % 20)).unwrap();
            a
        })
        .collect()
}

async fn put(local: &LocalAws, stream: &str, aggregates: &[Aggregate]) {
    put_json(
        local,
        stream,
        aggregates.iter().map(|a| (a.name.to_string(), a.to_json())),
    )
    .await;
}

/// Puts (partition key, JSON) records on `stream`, 500 per call, all accepted.
async fn put_json(local: &LocalAws, stream: &str, records: impl Iterator<Item = (String, String)>) {
    let kinesis = local.kinesis_client();
    let entries: Vec<_> = records
        .map(|(key, json)| {
            PutRecordsRequestEntry::builder()
                .partition_key(key)
                .data(Blob::new(json))
                .build()
                .unwrap()
        })
        .collect();
    for chunk in entries.chunks(500) {
        let out = kinesis
            .put_records()
            .stream_name(stream)
            .set_records(Some(chunk.to_vec()))
            .send()
            .await
            .unwrap();
        assert_eq!(out.failed_record_count(), Some(0));
    }
}

fn key(item: &Item) -> (String, String) {
    (
        item["Name"].as_s().unwrap().clone(),
        item["StatusTime"].as_n().unwrap().clone(),
    )
}

async fn table(local: &LocalAws) -> BTreeMap<(String, String), Item> {
    let items: Vec<Item> = local
        .dynamodb_client()
        .scan()
        .table_name(workshop::SENSOR_TABLE)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<_, _>>()
        .await
        .unwrap();
    items.into_iter().map(|i| (key(&i), i)).collect()
}

fn expected(aggregates: &[Aggregate]) -> BTreeMap<(String, String), Item> {
    aggregates
        .iter()
        .map(aggregate_to_item)
        .map(|i| (key(&i), i))
        .collect()
}

/// Polls `check` until it holds; the test's own timeout bounds it.
async fn until<F: std::future::Future<Output = bool>>(mut check: impl FnMut() -> F) {
    while !check().await {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Owner of every lease of the test's lease table.
async fn owners(local: &LocalAws) -> BTreeMap<String, Option<String>> {
    let leases = wildrydes_daemon::lease::LeaseTable::new(local.dynamodb_client(), LEASES);
    leases
        .list()
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|l| (l.shard_id, l.owner))
        .collect()
}

fn daemon(local: &LocalAws, worker: &str, extra: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_wildrydes-daemon"))
        .env_clear()
        .envs(local.env_vars())
        .env("RUST_LOG", "info")
        .args([
            "process",
            "--stream",
            STREAM,
            "--lease-table",
            LEASES,
            "--worker-id",
            worker,
        ])
        .args(["--lease-duration", "2s"])
        .args(if extra.contains(&"--metrics-addr") {
            &[][..]
        } else {
            &["--metrics-addr", "127.0.0.1:0"][..]
        })
        .args(if extra.contains(&"--idle-poll-interval") {
            &[][..]
        } else {
            &["--idle-poll-interval", "200ms"][..]
        })
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

async fn setup(shards: i32, ttl: u64) -> LocalAws {
    let local = LocalAws::start(LocalAwsOptions {
        iterator_ttl_seconds: ttl,
        ..LocalAwsOptions::default()
    })
    .await
    .unwrap();
    workshop::ensure_workshop_resources(&local).await.unwrap();
    ensure_stream(&local.kinesis_client(), STREAM, shards)
        .await
        .unwrap();
    local
}

async fn bounded<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(180), f)
        .await
        .expect("test timed out")
}

async fn sigterm(child: &mut Child) -> std::process::ExitStatus {
    let pid = child.id().unwrap().to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("daemon did not stop on SIGTERM")
        .unwrap()
}

#[tokio::test]
async fn two_workers_share_four_shards_and_one_takes_over_from_a_killed_one() {
    bounded(async {
        let local = setup(4, 300).await;
        let first = aggregates(0, 400);
        put(&local, STREAM, &first).await;
        let mut a = daemon(&local, "worker-a", &[]);
        let mut b = daemon(&local, "worker-b", &[]);
        let want = expected(&first);
        until(|| async { table(&local).await.len() == want.len() }).await;
        // Balanced: two leases each.
        until(|| async {
            let o = owners(&local).await;
            let on = |w: &str| o.values().filter(|v| v.as_deref() == Some(w)).count();
            o.len() == 4 && on("worker-a") == 2 && on("worker-b") == 2
        })
        .await;

        a.kill().await.unwrap(); // SIGKILL: no release, no checkpoint.
        let second = aggregates(400, 400);
        put(&local, STREAM, &second).await;
        let all: Vec<_> = first.iter().chain(&second).cloned().collect();
        let want = expected(&all);
        until(|| async {
            owners(&local)
                .await
                .values()
                .all(|o| o.as_deref() == Some("worker-b"))
        })
        .await;
        until(|| async { table(&local).await.len() == want.len() }).await;
        assert_eq!(table(&local).await, want, "every item, every attribute");

        let status = sigterm(&mut b).await;
        assert!(status.success(), "SIGTERM exits 0: {status}");
        assert!(
            owners(&local).await.values().all(Option::is_none),
            "leases released on stop"
        );
    })
    .await;
}

#[tokio::test]
async fn a_worker_killed_mid_batch_and_restarted_loses_nothing() {
    bounded(async {
        let local = setup(2, 300).await;
        let all = aggregates(0, 3000);
        put(&local, STREAM, &all).await;
        let want = expected(&all);
        for round in 0..3 {
            let mut d = daemon(&local, &format!("worker-{round}"), &[]);
            let before = table(&local).await.len();
            until(|| async { table(&local).await.len() > before || before == want.len() }).await;
            d.kill().await.unwrap();
        }
        let mut d = daemon(&local, "worker-final", &[]);
        until(|| async { table(&local).await.len() == want.len() }).await;
        assert_eq!(table(&local).await, want);
        assert!(sigterm(&mut d).await.success());
    })
    .await;
}

#[tokio::test]
async fn children_of_a_split_shard_are_read_after_their_parent() {
    bounded(async {
        let local = setup(1, 300).await;
        let first = aggregates(0, 300);
        put(&local, STREAM, &first).await;
        let mut d = daemon(&local, "worker-split", &[]);
        until(|| async { table(&local).await.len() == first.len() }).await;
        local
            .kinesis_client()
            .split_shard()
            .stream_name(STREAM)
            .shard_to_split("shardId-000000000000")
            .new_starting_hash_key("170141183460469231731687303715884105728")
            .send()
            .await
            .unwrap();
        until(|| async {
            let s = local
                .kinesis_client()
                .describe_stream_summary()
                .stream_name(STREAM)
                .send()
                .await
                .unwrap();
            s.stream_description_summary().unwrap().stream_status()
                == &aws_sdk_kinesis::types::StreamStatus::Active
        })
        .await;
        let second = aggregates(300, 300);
        put(&local, STREAM, &second).await;
        let all: Vec<_> = first.iter().chain(&second).cloned().collect();
        let want = expected(&all);
        until(|| async { table(&local).await.len() == want.len() }).await;
        assert_eq!(table(&local).await, want);
        let leases = wildrydes_daemon::lease::LeaseTable::new(local.dynamodb_client(), LEASES)
            .list()
            .await
            .unwrap();
        assert_eq!(leases.len(), 3);
        let parent = leases
            .iter()
            .find(|l| l.shard_id == "shardId-000000000000")
            .unwrap();
        assert_eq!(
            parent.checkpoint,
            wildrydes_daemon::lease::Checkpoint::ShardEnd
        );
        for child in leases
            .iter()
            .filter(|l| l.shard_id != "shardId-000000000000")
        {
            assert_eq!(child.parents, ["shardId-000000000000"]);
        }
        assert!(sigterm(&mut d).await.success());
    })
    .await;
}

#[tokio::test]
async fn expired_iterators_resume_from_the_checkpoint() {
    bounded(async {
        // Iterators live 1 s; the daemon waits 1.5 s between idle reads.
        let local = setup(1, 1).await;
        let mut d = daemon(&local, "worker-ttl", &["--idle-poll-interval", "1500ms"]);
        let mut all = Vec::new();
        for round in 0..3 {
            let batch = aggregates(round * 100, 100);
            put(&local, STREAM, &batch).await;
            all.extend(batch);
            let want = all.len();
            let done = tokio::time::timeout(
                Duration::from_secs(30),
                until(|| async { table(&local).await.len() == want }),
            )
            .await;
            if done.is_err() {
                d.kill().await.unwrap();
                let mut logs = String::new();
                use tokio::io::AsyncReadExt as _;
                d.stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut logs)
                    .await
                    .unwrap();
                panic!(
                    "round {round}: {} of {want} items; daemon logged:\n{logs}",
                    table(&local).await.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(1600)).await; // let the iterator expire
        }
        assert_eq!(table(&local).await, expected(&all));
        assert!(sigterm(&mut d).await.success());
        let mut logs = String::new();
        use tokio::io::AsyncReadExt as _;
        d.stderr
            .take()
            .unwrap()
            .read_to_string(&mut logs)
            .await
            .unwrap();
        assert!(logs.contains("shard iterator expired"), "{logs}");
    })
    .await;
}

const READINGS: &str = "daemon-readings";
const OUTPUT: &str = "daemon-output";

fn pipeline_daemon(local: &LocalAws, pipeline: &str, worker: &str, extra: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_wildrydes-daemon"))
        .env_clear()
        .envs(local.env_vars())
        .env("RUST_LOG", "info")
        .args([
            pipeline,
            "--stream",
            READINGS,
            "--lease-table",
            &format!("leases-{pipeline}"),
            "--worker-id",
            worker,
        ])
        .args([
            "--lease-duration",
            "2s",
            "--idle-poll-interval",
            "200ms",
            "--metrics-addr",
            "127.0.0.1:0",
        ])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

async fn put_readings(local: &LocalAws, readings: &[wildrydes_core::Reading]) {
    put_json(
        local,
        READINGS,
        readings.iter().map(|r| (r.name.to_string(), r.to_json())),
    )
    .await;
}

#[tokio::test]
async fn aggregates_stay_complete_across_a_kill_and_restart() {
    bounded(async {
        let local = setup(1, 300).await;
        ensure_stream(&local.kinesis_client(), READINGS, 2)
            .await
            .unwrap();
        ensure_stream(&local.kinesis_client(), OUTPUT, 1)
            .await
            .unwrap();
        // Ten minutes of five unicorns, in time order.
        let mut minutes = Vec::new();
        for line in WORKSHOP_DAY.lines().take(10) {
            for u in 0..5 {
                let mut a = Aggregate::from_json(line.as_bytes()).unwrap();
                a.name = UnicornName::new(&format!("Unicorn-{u}")).unwrap();
                a.distance += i16::try_from(u).unwrap();
                minutes.push(a);
            }
        }
        let mut readings: Vec<_> = minutes
            .iter()
            .flat_map(|a| wildrydes_tests::readings_of_minute(a, 500))
            .collect();
        readings.sort_by(|a, b| (a.status_time, &a.name).cmp(&(b.status_time, &b.name)));
        let (first, rest) = readings.split_at(readings.len() / 2);
        put_readings(&local, first).await;
        let args = ["--output-stream", OUTPUT, "--idle-flush-after", "1s"];
        let mut d = pipeline_daemon(&local, "aggregate", "agg-1", &args);
        // Some minutes are out: the daemon is mid-stream with minutes open.
        until(|| async {
            !wildrydes_tests::read_stream(&local.kinesis_client(), OUTPUT)
                .await
                .is_empty()
        })
        .await;
        d.kill().await.unwrap();
        put_readings(&local, rest).await;
        let mut d = pipeline_daemon(&local, "aggregate", "agg-2", &args);
        let want: BTreeMap<(i64, String), Aggregate> = minutes
            .iter()
            .map(|a| {
                (
                    (a.status_time.epoch_millis(), a.name.to_string()),
                    a.clone(),
                )
            })
            .collect();
        until(|| async {
            let out = wildrydes_tests::read_stream(&local.kinesis_client(), OUTPUT).await;
            let keys: std::collections::BTreeSet<_> = out
                .iter()
                .map(|r| Aggregate::from_json(&r.data).unwrap())
                .map(|a| (a.status_time.epoch_millis(), a.name.to_string()))
                .collect();
            keys.len() == want.len()
        })
        .await;
        // Every minute complete and right; a re-emitted one has identical figures.
        for record in wildrydes_tests::read_stream(&local.kinesis_client(), OUTPUT).await {
            let a = Aggregate::from_json(&record.data).unwrap();
            assert_eq!(
                &a,
                &want[&(a.status_time.epoch_millis(), a.name.to_string())]
            );
        }
        assert!(sigterm(&mut d).await.success());
    })
    .await;
}

#[tokio::test]
async fn the_alarm_pipeline_warns_once_when_magic_drops() {
    bounded(async {
        let local = setup(1, 300).await;
        ensure_stream(&local.kinesis_client(), READINGS, 1)
            .await
            .unwrap();
        let base = Aggregate::from_json(WORKSHOP_DAY.lines().next().unwrap().as_bytes()).unwrap();
        let mut readings = wildrydes_tests::readings_of_minute(&base, 0);
        for (i, r) in readings.iter_mut().enumerate() {
            r.magic_points = 80 - i16::try_from(i).unwrap(); // 80 down to 21: crosses 50 once
        }
        put_readings(&local, &readings).await;
        let mut d = pipeline_daemon(&local, "alarm", "alarm-1", &["--console"]);
        let mut stdout = tokio::io::BufReader::new(d.stdout.take().unwrap());
        let mut line = String::new();
        use tokio::io::AsyncBufReadExt as _;
        loop {
            line.clear();
            assert!(
                stdout.read_line(&mut line).await.unwrap() > 0,
                "daemon closed stdout"
            );
            if line.contains("ALARM") {
                break;
            }
        }
        assert!(line.contains("Shadowfax"), "{line}");
        assert!(sigterm(&mut d).await.success());
        let mut rest = String::new();
        use tokio::io::AsyncReadExt as _;
        stdout.read_to_string(&mut rest).await.unwrap();
        assert!(
            !rest.contains("ALARM"),
            "one notification per transition: {rest}"
        );
    })
    .await;
}

/// A plain HTTP/1.1 GET on 127.0.0.1.
async fn http_get(port: u16, path: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    Some(response)
}

#[tokio::test]
async fn metrics_and_health_are_served() {
    bounded(async {
        let local = setup(1, 300).await;
        let all = aggregates(0, 50);
        put(&local, STREAM, &all).await;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let mut d = daemon(
            &local,
            "worker-metrics",
            &["--metrics-addr", &addr, "--log-format", "json"],
        );
        until(|| async { table(&local).await.len() == all.len() }).await;
        let health = loop {
            if let Some(r) = http_get(port, "/healthz").await {
                break r;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert!(health.starts_with("HTTP/1.1 200"), "{health}");
        let metrics = http_get(port, "/metrics").await.unwrap();
        let shard = "pipeline=\"process\",shard=\"shardId-000000000000\"";
        assert!(
            metrics.contains(&format!("wildrydes_records_in_total{{{shard}}} 50")),
            "{metrics}"
        );
        assert!(
            metrics.contains(&format!("wildrydes_records_written_total{{{shard}}} 50")),
            "{metrics}"
        );
        assert!(
            metrics.contains("wildrydes_leases_held{pipeline=\"process\"} 1"),
            "{metrics}"
        );
        assert!(
            metrics.contains("# TYPE wildrydes_millis_behind_latest gauge"),
            "{metrics}"
        );
        assert!(sigterm(&mut d).await.success());
        let mut logs = String::new();
        use tokio::io::AsyncReadExt as _;
        d.stderr
            .take()
            .unwrap()
            .read_to_string(&mut logs)
            .await
            .unwrap();
        assert!(
            logs.lines()
                .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()),
            "JSON logs: {logs}"
        );
    })
    .await;
}
