//! Test support for every crate of the workspace: the one place that starts
//! backends, finds tools and binaries, and reads streams for a test.
//!
//! - [`start_local_aws`]: the embedded Kinesis and DynamoDB
//!   ([`wildrydes_local_aws::LocalAws`]) on random ports.
//! - [`moto`]: moto's server (CloudFormation, IAM, Lambda, S3, SNS, SQS) on
//!   a free port, with its SDK configuration.
//! - [`lambda_runtime`]: a real Lambda binary under cargo-lambda's runtime
//!   API emulator.
//! - [`tools`]: where cargo-lambda and moto are (`cargo xtask tools`
//!   installs them), found without any variable set by xtask.
//! - [`binaries`]: another package's binary, built now and located by
//!   cargo, never a stale file in `target/debug`.
//! - [`browser`]: headless Chromium over the DevTools protocol, for the
//!   console's page.
//! - [`fleet`]: seeded fleets of readings with their arithmetic oracle.
//! - [`h2c`]: an SDK client that speaks only HTTP/2, as AWS does to
//!   enhanced fan-out consumers.
//! - [`free_port`], [`read_stream`], [`scan_table`], [`bounded`],
//!   [`readings_of_minute`], [`WORKSHOP_DAY`].
//!
//! The rules tests follow: each starts its own backend on random ports (so
//! tests run in parallel), is bounded in time with [`bounded`], and never
//! sleeps to wait for something: it polls the API or awaits a result.

pub mod binaries;
pub mod browser;
pub mod fleet;
pub mod h2c;
pub mod lambda_runtime;
pub mod moto;
pub mod tools;

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;

use wildrydes_core::input::SourceRecord;
use wildrydes_core::{Aggregate, Reading, StatusTime};
use wildrydes_local_aws::{LocalAws, LocalAwsOptions};

/// Longest a test may run. Most take well under a second; moto's start
/// takes a few. The limit turns a hang into a failure instead of a stuck run.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(90);

/// Runs `test`, panicking if it takes longer than [`TEST_TIMEOUT`].
pub async fn bounded<F: Future>(test: F) -> F::Output {
    match tokio::time::timeout(TEST_TIMEOUT, test).await {
        Ok(output) => output,
        Err(_) => panic!("test did not finish within {TEST_TIMEOUT:?}"),
    }
}

/// A port free on 127.0.0.1 right now, for a server that takes a port
/// number rather than a listener (moto, cargo-lambda). Another process may
/// take it before the server binds it; the servers then fail to start, loudly.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port on 127.0.0.1")
        .port()
}

/// A plain HTTP/1.1 GET of `path` on 127.0.0.1:`port`: the status code and
/// the body, or `None` while nothing answers.
pub async fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some((status, body.to_owned()))
}

/// Waits until something accepts connections on 127.0.0.1:`port`, polling.
pub async fn until_listening(port: u16) {
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Starts an in-memory backend on random ports with the default options.
///
/// Panics if it cannot start: without a backend no test can run, and the
/// panic message says why.
pub async fn start_local_aws() -> LocalAws {
    match LocalAws::start(LocalAwsOptions::default()).await {
        Ok(local) => local,
        Err(err) => panic!("could not start the local backend: {err}"),
    }
}

/// Sixty readings, one per second of `aggregate`'s minute (at `offset_ms`
/// past each second), whose sum, minimums and maximums give `aggregate`
/// back: how the workshop's aggregates are turned into input for golden tests.
pub fn readings_of_minute(aggregate: &Aggregate, offset_ms: i64) -> Vec<Reading> {
    let distance = i32::from(aggregate.distance);
    let (share, extra) = (distance / 60, distance % 60);
    (0..60)
        .map(|second| {
            let pick = |min: i16, max: i16| if second == 1 { max } else { min };
            let ms = aggregate.status_time.epoch_millis() + second * 1000 + offset_ms;
            Reading {
                name: aggregate.name.clone(),
                status_time: StatusTime::from_epoch_millis(ms).expect("within the minute"),
                latitude: 40.749167,
                longitude: -73.985184,
                distance: i16::try_from(share + i32::from(second < i64::from(extra)))
                    .expect("a share of a SMALLINT"),
                magic_points: pick(aggregate.min_magic_points, aggregate.max_magic_points),
                health_points: pick(aggregate.min_health_points, aggregate.max_health_points),
            }
        })
        .collect()
}

/// Every item of `table`, page by page: a Scan, fine for a test's tables.
pub async fn scan_table(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Vec<HashMap<String, AttributeValue>> {
    dynamodb
        .scan()
        .table_name(table)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<_, _>>()
        .await
        .unwrap_or_else(|e| panic!("cannot scan {table}: {e:?}"))
}

/// The workshop's day of Shadowfax aggregates (1440 lines), as text.
pub const WORKSHOP_DAY: &str = include_str!("../../../tests/fixtures/shadowfax-2016-02-12.json");

/// Every record of `stream`, shard by shard, from the start, as core's
/// `SourceRecord`s.
pub async fn read_stream(kinesis: &aws_sdk_kinesis::Client, stream: &str) -> Vec<SourceRecord> {
    let shards = kinesis
        .list_shards()
        .stream_name(stream)
        .send()
        .await
        .expect("ListShards on the local backend");
    let mut out = Vec::new();
    for shard in shards.shards() {
        let mut iterator = kinesis
            .get_shard_iterator()
            .stream_name(stream)
            .shard_id(shard.shard_id())
            .shard_iterator_type(aws_sdk_kinesis::types::ShardIteratorType::TrimHorizon)
            .send()
            .await
            .expect("GetShardIterator on the local backend")
            .shard_iterator
            .expect("an iterator");
        loop {
            let page = kinesis
                .get_records()
                .shard_iterator(&iterator)
                .send()
                .await
                .expect("GetRecords on the local backend");
            out.extend(page.records().iter().map(SourceRecord::from));
            match page.next_shard_iterator {
                Some(next) if !page.records.is_empty() => iterator = next,
                _ => break,
            }
        }
    }
    out
}
