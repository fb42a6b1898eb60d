//! The daemon binary's `/healthz` and stream-wide gauges against the
//! embedded backend: a consumer whose writes all fail is reported stuck,
//! naming its shard; a daemon on an idle stream, and then a busy one, stays
//! healthy.

#![allow(clippy::unwrap_used)]

use std::process::Stdio;
use std::time::Duration;

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use tokio::process::{Child, Command};
use wildrydes_core::{Aggregate, UnicornName};
use wildrydes_local_aws::{LocalAws, LocalAwsOptions, ensure_stream, workshop};
use wildrydes_testkit::{WORKSHOP_DAY, scan_table};

/// The tests' stream of aggregates (one shard), and their lease table.
const STREAM: &str = "health-aggregates";
const LEASES: &str = "health-leases";
const SHARD: &str = "shardId-000000000000";

/// `count` aggregates: the workshop's minutes, spread over 20 unicorns.
fn aggregates(count: usize) -> Vec<Aggregate> {
    WORKSHOP_DAY
        .lines()
        .take(count)
        .enumerate()
        .map(|(i, line)| {
            let mut a = Aggregate::from_json(line.as_bytes()).unwrap();
            a.name = UnicornName::new(&format!("Unicorn-{:02}", i % 20)).unwrap();
            a
        })
        .collect()
}

/// Puts `aggregates` on `STREAM`, all accepted.
async fn put(local: &LocalAws, aggregates: &[Aggregate]) {
    let entries: Vec<_> = aggregates
        .iter()
        .map(|a| {
            PutRecordsRequestEntry::builder()
                .partition_key(a.name.to_string())
                .data(Blob::new(a.to_json()))
                .build()
                .unwrap()
        })
        .collect();
    let out = local
        .kinesis_client()
        .put_records()
        .stream_name(STREAM)
        .set_records(Some(entries))
        .send()
        .await
        .unwrap();
    assert_eq!(out.failed_record_count(), Some(0));
}

/// A fresh backend with the workshop's resources and `STREAM`.
async fn backend() -> LocalAws {
    let local = LocalAws::start(LocalAwsOptions::default()).await.unwrap();
    workshop::ensure_workshop_resources(&local).await.unwrap();
    ensure_stream(&local.kinesis_client(), STREAM, 1)
        .await
        .unwrap();
    local
}

async fn bounded<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(120), f)
        .await
        .expect("test timed out")
}

/// A process daemon on `STREAM` with short leases, idle polls and
/// `--stuck-after`, its metrics on `port`, DynamoDB at `dynamodb`.
fn daemon(local: &LocalAws, port: u16, dynamodb: &str, stuck_after: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_wildrydes-daemon"))
        .env_clear()
        .envs(local.env_vars())
        .env("AWS_ENDPOINT_URL_DYNAMODB", dynamodb)
        .env("RUST_LOG", "info")
        .args(["process", "--stream", STREAM, "--lease-table", LEASES])
        .args(["--metrics-addr", &format!("127.0.0.1:{port}")])
        .args(["--stuck-after", stuck_after])
        .args(["--lease-duration", "2s", "--idle-poll-interval", "200ms"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

use wildrydes_testkit::http_get;

/// Polls `path` until `check` holds for its answer; the test's own timeout
/// bounds it. Gives back the answer.
async fn until_answer(port: u16, path: &str, check: impl Fn(u16, &str) -> bool) -> (u16, String) {
    loop {
        if let Some((status, body)) = http_get(port, path).await
            && check(status, &body)
        {
            return (status, body);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_consumer_whose_writes_all_fail_is_reported_stuck() {
    bounded(async {
        let local = backend().await;
        put(&local, &aggregates(20)).await;
        // Every BatchWriteItem throttled; the lease table's calls (GetItem,
        // PutItem, UpdateItem, Scan) go through.
        let (proxy, counts) =
            wildrydes_local_aws::fault_proxy::start(&local.dynamodb_endpoint(), 1)
                .await
                .unwrap();
        let port = wildrydes_testkit::free_port();
        let _d = daemon(&local, port, &proxy, "2s");

        let (_, body) = until_answer(port, "/healthz", |status, _| status == 503).await;
        assert!(
            body.starts_with(&format!("stuck: {SHARD} (process) no progress for ")),
            "{body}"
        );
        assert!(body.trim_end().ends_with("s while records wait"), "{body}");
        let (_, metrics) = until_answer(port, "/metrics", |_, _| true).await;
        assert!(
            metrics.contains("wildrydes_stuck_shards{pipeline=\"process\"} 1\n"),
            "{metrics}"
        );
        assert!(
            metrics.contains("wildrydes_leases_held{pipeline=\"process\"} 1\n"),
            "the lease is held all along: {metrics}"
        );
        assert!(
            metrics.contains("# TYPE wildrydes_stream_millis_behind_latest gauge\n")
                && metrics.contains("wildrydes_stream_millis_behind_latest{pipeline=\"process\"} "),
            "{metrics}"
        );
        let faulted = counts.throttled.load(std::sync::atomic::Ordering::Relaxed)
            + counts
                .unprocessed
                .load(std::sync::atomic::Ordering::Relaxed);
        assert!(faulted > 0, "the writes were refused");
        let items = scan_table(&local.dynamodb_client(), workshop::SENSOR_TABLE).await;
        assert!(items.is_empty(), "nothing written: {}", items.len());
    })
    .await;
}

#[tokio::test]
async fn a_healthy_daemon_stays_healthy_idle_and_busy() {
    bounded(async {
        let local = backend().await;
        let port = wildrydes_testkit::free_port();
        let _d = daemon(&local, port, &local.dynamodb_endpoint(), "2s");
        // Reading the idle shard: its lag is known, the stream's too.
        let shard_lag =
            format!("wildrydes_millis_behind_latest{{pipeline=\"process\",shard=\"{SHARD}\"}} 0\n");
        let (_, metrics) =
            until_answer(port, "/metrics", |_, body| body.contains(&shard_lag)).await;
        assert!(
            metrics.contains("wildrydes_stream_millis_behind_latest{pipeline=\"process\"} 0\n"),
            "{metrics}"
        );
        // Idle for twice --stuck-after: healthy throughout.
        let idle = tokio::time::Instant::now();
        while idle.elapsed() < Duration::from_secs(4) {
            assert_eq!(
                http_get(port, "/healthz").await,
                Some((200, "ok\n".to_owned()))
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // Busy, then idle again: every record written, still healthy.
        let all = aggregates(200);
        put(&local, &all).await;
        loop {
            let items = scan_table(&local.dynamodb_client(), workshop::SENSOR_TABLE).await;
            if items.len() == all.len() {
                break;
            }
            assert_eq!(
                http_get(port, "/healthz").await,
                Some((200, "ok\n".to_owned()))
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (_, metrics) = until_answer(port, "/metrics", |_, _| true).await;
        assert!(
            metrics.contains("wildrydes_stuck_shards{pipeline=\"process\"} 0\n"),
            "{metrics}"
        );
        assert_eq!(
            http_get(port, "/healthz").await,
            Some((200, "ok\n".to_owned()))
        );
    })
    .await;
}
