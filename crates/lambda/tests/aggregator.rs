//! The aggregator's tumbling-window contract, against the embedded backend:
//! Lambda's windows follow arrival time and forget their state after the
//! final invocation; minutes follow event time. Whatever the split into
//! windows and batches, each minute must come out once, complete.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use tokio::time::Instant;
use wildrydes_core::process::SourceRecord;
use wildrydes_core::rejects::{Reject, list_rejects};
use wildrydes_core::{Aggregate, Reading};
use wildrydes_lambda::aggregator::{AggregatorFunction, Config, WindowResponse, handle};
use wildrydes_lambda::kinesis::WindowEvent;
use wildrydes_local_aws::workshop::{self, AGGREGATE_STREAM, REJECTS_TABLE};
use wildrydes_local_aws::{LocalAws, LocalAwsOptions};
use wildrydes_tests::{WORKSHOP_DAY, bounded, read_stream, readings_of_minute};

const STREAM_ARN: &str = "arn:aws:kinesis:us-east-1:000000000000:stream/wildrydes";

/// Six minutes of Shadowfax from the workshop day, and the same figures for
/// Rocinante, as readings in time order.
fn input() -> (Vec<Aggregate>, Vec<Reading>) {
    let mut minutes = Vec::new();
    for line in WORKSHOP_DAY.lines().take(6) {
        let a = Aggregate::from_json(line.as_bytes()).unwrap();
        let mut b = a.clone();
        b.name = wildrydes_core::UnicornName::new("Rocinante").unwrap();
        minutes.extend([a, b]);
    }
    let mut readings: Vec<_> = minutes
        .iter()
        .flat_map(|a| readings_of_minute(a, 250))
        .collect();
    readings.sort_by(|a, b| (a.status_time, &a.name).cmp(&(b.status_time, &b.name)));
    (minutes, readings)
}

struct Harness {
    local: LocalAws,
    function: AggregatorFunction,
    sequence: u64,
    window_start: DateTime<Utc>,
}

impl Harness {
    async fn new() -> Self {
        let local = LocalAws::start(LocalAwsOptions::default()).await.unwrap();
        workshop::ensure_workshop_resources(&local).await.unwrap();
        let config = Config {
            output_stream: AGGREGATE_STREAM.into(),
            state_table_name: wildrydes_core::resources::AGGREGATOR_STATE_TABLE.into(),
            rejects_table_name: REJECTS_TABLE.into(),
            allowed_lateness: Duration::from_secs(10),
            idle_after: Duration::from_secs(120),
            deadline_margin: Duration::from_secs(1),
        };
        let function =
            AggregatorFunction::new(&config, local.kinesis_client(), local.dynamodb_client());
        Self {
            local,
            function,
            sequence: 0,
            window_start: "2026-11-28T12:00:00Z".parse().unwrap(),
        }
    }

    /// Readings as records with made-up sequence numbers.
    fn records(&mut self, batch: &[Reading]) -> Vec<SourceRecord> {
        batch
            .iter()
            .map(|r| {
                self.sequence += 1;
                SourceRecord {
                    sequence_number: format!("{:056}", self.sequence),
                    partition_key: r.name.to_string(),
                    data: r.to_json().into_bytes(),
                }
            })
            .collect()
    }

    /// One invocation, as Lambda would make it.
    async fn invoke(
        &mut self,
        state: HashMap<String, String>,
        batch: &[Reading],
        is_final: bool,
    ) -> WindowResponse {
        let records = self.records(batch);
        self.invoke_records(state, &records, is_final).await
    }

    /// One invocation with these records.
    async fn invoke_records(
        &mut self,
        state: HashMap<String, String>,
        batch: &[SourceRecord],
        is_final: bool,
    ) -> WindowResponse {
        let records: Vec<_> = batch
            .iter()
            .map(|r| {
                let seq = &r.sequence_number;
                serde_json::json!({
                    "kinesis": {
                        "kinesisSchemaVersion": "1.0",
                        "partitionKey": r.partition_key,
                        "sequenceNumber": seq,
                        "data": base64::engine::general_purpose::STANDARD.encode(&r.data),
                        "approximateArrivalTimestamp": 1_795_000_000.0,
                    },
                    "eventSource": "aws:kinesis",
                    "eventID": format!("shardId-000000000000:{seq}"),
                    "eventSourceARN": STREAM_ARN,
                })
            })
            .collect();
        let end = self.window_start + chrono::Duration::seconds(60);
        let event: WindowEvent = serde_json::from_value(serde_json::json!({
            "Records": records,
            "window": { "start": self.window_start, "end": end },
            "state": state,
            "shardId": "shardId-000000000000",
            "eventSourceARN": STREAM_ARN,
            "isFinalInvokeForWindow": is_final,
            "isWindowTerminatedEarly": false,
        }))
        .unwrap();
        let response = handle(
            &self.function,
            event,
            Instant::now() + Duration::from_secs(20),
        )
        .await
        .unwrap();
        assert!(
            response.state.contains_key("meta"),
            "every response carries the state"
        );
        assert!(response.batch_item_failures.is_empty());
        response
    }

    /// Runs one Lambda window of `batches`, then its final invocation.
    async fn window(&mut self, batches: &[&[Reading]]) {
        let mut state = HashMap::new();
        for batch in batches {
            state = self.invoke(state, batch, false).await.state;
        }
        self.invoke(state, &[], true).await;
        self.window_start += chrono::Duration::seconds(60);
    }

    /// Every aggregate on the output stream, by key, failing on a key seen twice
    /// with different figures.
    async fn output(&self) -> (usize, BTreeMap<(i64, String), Aggregate>) {
        let records = read_stream(&self.local.kinesis_client(), AGGREGATE_STREAM).await;
        let mut by_key = BTreeMap::new();
        for r in &records {
            let a = Aggregate::from_json(&r.data).unwrap();
            let key = (a.status_time.epoch_millis(), a.name.to_string());
            if let Some(before) = by_key.insert(key, a.clone()) {
                assert_eq!(
                    before, a,
                    "a minute was emitted twice with different figures"
                );
            }
        }
        (records.len(), by_key)
    }
}

/// The aggregates that must have come out: every minute but the last, which
/// no later reading has closed yet.
fn expected(minutes: &[Aggregate]) -> BTreeMap<(i64, String), Aggregate> {
    let last = minutes.iter().map(|a| a.status_time).max().unwrap();
    minutes
        .iter()
        .filter(|a| a.status_time < last)
        .map(|a| {
            (
                (a.status_time.epoch_millis(), a.name.to_string()),
                a.clone(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_minute_straddling_two_windows_is_emitted_once_complete() {
    bounded(async {
        let (minutes, readings) = input();
        let mut h = Harness::new().await;
        // Window 1 ends just before 00:00:59; 00:00:59 arrives in window 2.
        let cut = readings
            .iter()
            .position(|r| r.status_time.to_string() == "2016-02-12 00:00:59.250")
            .unwrap();
        let (first, rest) = readings.split_at(cut);
        h.window(&[first]).await;
        let (count, out) = h.output().await;
        assert_eq!(count, 0, "nothing is complete after window 1");
        h.window(&[&rest[..50], &rest[50..]]).await;
        let (count, out2) = h.output().await;
        assert_eq!(out2, expected(&minutes));
        assert_eq!(count, out2.len(), "each minute emitted exactly once");
        assert!(out.is_empty());
    })
    .await;
}

#[tokio::test]
async fn any_split_into_windows_and_batches_gives_the_same_aggregates() {
    bounded(async {
        let (minutes, readings) = input();
        // A few deterministic pseudo-random splits (a small LCG: no RNG crate needed).
        let mut seed = 0x2545_f491_u64;
        let mut next = |n: usize| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            usize::try_from(seed >> 33).unwrap() % n
        };
        for _ in 0..4 {
            let mut h = Harness::new().await;
            let mut at = 0;
            while at < readings.len() {
                let window_len = 1 + next(250);
                let end = (at + window_len).min(readings.len());
                let mut batches = Vec::new();
                let mut b = at;
                while b < end {
                    let batch_end = (b + 1 + next(60)).min(end);
                    batches.push(&readings[b..batch_end]);
                    b = batch_end;
                }
                h.window(&batches).await;
                at = end;
            }
            let (count, out) = h.output().await;
            assert_eq!(out, expected(&minutes));
            assert_eq!(count, out.len());
        }
    })
    .await;
}

#[tokio::test]
async fn redelivered_readings_do_not_double_the_distance_and_late_ones_are_kept() {
    bounded(async {
        let (minutes, readings) = input();
        let mut h = Harness::new().await;
        let (first, rest) = readings.split_at(100);
        h.window(&[first]).await;
        // At-least-once: the tail of window 1 arrives again in window 2.
        let mut again = first[60..].to_vec();
        again.extend_from_slice(rest);
        // And a straggler of minute 00:00 far too late, after everything.
        let straggler = Reading {
            status_time: wildrydes_core::StatusTime::parse("2016-02-12 00:00:30.999").unwrap(),
            ..readings[0].clone()
        };
        again.push(straggler);
        h.window(&[&again]).await;
        let (count, out) = h.output().await;
        assert_eq!(out, expected(&minutes));
        assert_eq!(count, out.len());
        let rejects: Vec<Reject> = list_rejects(&h.local.dynamodb_client(), REJECTS_TABLE).await.unwrap();
        assert_eq!(rejects.len(), 1);
        assert_eq!(rejects[0].pipeline, "aggregator");
        assert!(
            rejects[0].reason.starts_with("late: reading of Rocinante at 2016-02-12 00:00:30.999 arrived after its minute 2016-02-12 00:00:00.000 was emitted"),
            "{}",
            rejects[0].reason
        );
    })
    .await;
}

#[tokio::test]
async fn readings_put_on_wildrydes_come_out_on_wildrydes_aggregated_and_in_the_table() {
    bounded(async {
        let (minutes, readings) = input();
        let mut h = Harness::new().await;
        let kinesis = h.local.kinesis_client();
        for chunk in readings.chunks(500) {
            let entries = chunk
                .iter()
                .map(|r| {
                    aws_sdk_kinesis::types::PutRecordsRequestEntry::builder()
                        .partition_key(r.name.as_str())
                        .data(aws_sdk_kinesis::primitives::Blob::new(r.to_json()))
                        .build()
                        .unwrap()
                })
                .collect::<Vec<_>>();
            let put = kinesis
                .put_records()
                .stream_name(workshop::SENSOR_STREAM)
                .set_records(Some(entries))
                .send()
                .await
                .unwrap();
            assert_eq!(put.failed_record_count(), Some(0));
        }
        // The event source mapping: the stream's records, in windows of 100.
        let sent = read_stream(&kinesis, workshop::SENSOR_STREAM).await;
        assert_eq!(sent.len(), readings.len());
        for window in sent.chunks(100) {
            let state = h.invoke_records(HashMap::new(), window, false).await.state;
            h.invoke_records(state, &[], true).await;
            h.window_start += chrono::Duration::seconds(60);
        }
        let (count, out) = h.output().await;
        assert_eq!(out, expected(&minutes));
        assert_eq!(count, out.len());

        // And the stream processor takes them into the table.
        let aggregated = read_stream(&kinesis, AGGREGATE_STREAM).await;
        let processor = wildrydes_lambda::stream_processor::Config {
            table_name: workshop::SENSOR_TABLE.into(),
            rejects_table_name: REJECTS_TABLE.into(),
            max_in_flight: 4,
            deadline_margin: Duration::from_secs(1),
        }
        .processor(h.local.dynamodb_client());
        let source = wildrydes_core::process::ShardSource {
            stream_arn: "arn:aws:kinesis:us-east-1:000000000000:stream/wildrydes-aggregated".into(),
            shard_id: "shardId-000000000000".into(),
        };
        let outcome = processor
            .process(
                &source,
                &aggregated,
                Instant::now() + Duration::from_secs(10),
            )
            .await;
        assert_eq!((outcome.written, outcome.first_failure), (out.len(), None));
        let items = h
            .local
            .dynamodb_client()
            .scan()
            .table_name(workshop::SENSOR_TABLE)
            .send()
            .await
            .unwrap();
        let mut stored: Vec<_> = items
            .items()
            .iter()
            .map(|i| wildrydes_core::item::item_to_aggregate(i).unwrap())
            .collect();
        stored.sort_by(|a, b| (a.status_time, &a.name).cmp(&(b.status_time, &b.name)));
        let want: Vec<_> = expected(&minutes).into_values().collect();
        let mut want = want;
        want.sort_by(|a, b| (a.status_time, &a.name).cmp(&(b.status_time, &b.name)));
        assert_eq!(stored, want);
    })
    .await;
}
