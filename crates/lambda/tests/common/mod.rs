//! What the functions' tests share: the Kinesis events a producer that
//! packs its records with the KPL makes a shard deliver, built as the event
//! source mapping builds them (base64 data, `eventID` = shard and sequence
//! number, the stream's ARN), and a DynamoDB client whose writes holding a
//! chosen item fail. Each test file uses some of it.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextMut;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use base64::Engine as _;
use serde::de::DeserializeOwned;
use wildrydes_core::input::SourceRecord;
use wildrydes_core::kpl::{AggregateBuilder, UserRecord};

/// One shard of a stream, numbering the Kinesis records put on it.
#[derive(Debug, Clone)]
pub struct Shard {
    /// The stream's ARN, as events name it.
    pub stream_arn: String,
    /// The shard's id.
    pub shard_id: String,
    /// The last sequence number given.
    last: u64,
}

impl Shard {
    /// The first shard of `stream` (a name).
    pub fn of(stream: &str) -> Self {
        Self {
            stream_arn: format!("arn:aws:kinesis:us-east-1:000000000000:stream/{stream}"),
            shard_id: "shardId-000000000000".into(),
            last: 0,
        }
    }

    /// The next sequence number of the shard: 56 digits, rising.
    fn next_sequence(&mut self) -> String {
        self.last += 1;
        format!("4959{:052}", self.last)
    }

    /// A plain Kinesis record: one payload.
    pub fn plain(&mut self, partition_key: &str, data: impl Into<Vec<u8>>) -> SourceRecord {
        SourceRecord::plain(self.next_sequence(), partition_key, data)
    }

    /// A Kinesis record that is the KPL aggregate of `users` (partition key,
    /// payload), in order; its own partition key is the first user record's,
    /// as the KPL makes it.
    pub fn aggregate<K: Into<String>, D: Into<Vec<u8>>>(
        &mut self,
        users: impl IntoIterator<Item = (K, D)>,
    ) -> SourceRecord {
        let bytes = kpl(users);
        let key = wildrydes_core::kpl::deaggregate(&bytes).unwrap()[0]
            .partition_key
            .clone();
        SourceRecord::plain(self.next_sequence(), key, bytes)
    }

    /// The event the event source mapping makes of `records` of this shard.
    pub fn event(&self, records: &[SourceRecord]) -> serde_json::Value {
        kinesis_event(&self.stream_arn, &self.shard_id, records)
    }

    /// [`Shard::event`], decoded as the `bootstrap` decodes events.
    pub fn decoded<T: DeserializeOwned>(&self, records: &[SourceRecord]) -> T {
        serde_json::from_value(self.event(records)).unwrap()
    }
}

/// The KPL aggregate of `users` (partition key, payload), in order.
pub fn kpl<K: Into<String>, D: Into<Vec<u8>>>(users: impl IntoIterator<Item = (K, D)>) -> Vec<u8> {
    let mut builder = AggregateBuilder::new();
    for (key, data) in users {
        builder.push(UserRecord {
            partition_key: key.into(),
            explicit_hash_key: None,
            data: data.into(),
        });
    }
    assert!(!builder.is_empty(), "an aggregate of nothing");
    builder.finish()
}

/// `record` with the last byte of its aggregate's MD5 flipped: the magic
/// bytes and the protobuf are intact, the digest no longer matches.
pub fn corrupt(mut record: SourceRecord) -> SourceRecord {
    assert!(wildrydes_core::kpl::is_aggregated(&record.data));
    let last = record.data.len() - 1;
    record.data[last] ^= 0xFF;
    assert!(wildrydes_core::kpl::deaggregate(&record.data).is_err());
    record
}

/// `records` cut into consecutive batches: the `i`-th of at most
/// `sizes[i % sizes.len()]` records, as a shard's records come in batches.
pub fn batches<T>(records: &[T], sizes: &[usize]) -> Vec<Vec<T>>
where
    T: Clone,
{
    let mut out = Vec::new();
    let mut at = 0;
    while at < records.len() {
        let end = (at + sizes[out.len() % sizes.len()]).min(records.len());
        out.push(records[at..end].to_vec());
        at = end;
    }
    out
}

/// A DynamoDB interceptor that makes a BatchWriteItem call to `table` fail
/// for good when it holds the item of (`name`, `status_time_ms`), for as
/// many calls as it is armed for: it sends the call to a table that does
/// not exist, the missing-table failure the other tests use, so nothing of
/// that call is written and the SDK does not retry it.
#[derive(Debug, Clone)]
pub struct FailingWrites {
    /// The table whose writes fail.
    pub table: String,
    /// The unicorn of the item that makes a call fail.
    pub name: String,
    /// Its minute, in epoch ms.
    pub status_time_ms: i64,
    /// Calls still to fail.
    pub armed: Arc<AtomicU32>,
    /// Calls failed so far.
    pub failed: Arc<AtomicU32>,
}

impl FailingWrites {
    /// Fails the next `calls` calls holding the item.
    pub fn new(table: &str, name: &str, status_time_ms: i64, calls: u32) -> Self {
        Self {
            table: table.to_owned(),
            name: name.to_owned(),
            status_time_ms,
            armed: Arc::new(AtomicU32::new(calls)),
            failed: Arc::new(AtomicU32::new(0)),
        }
    }

    /// A client like `client` whose calls pass through this interceptor.
    pub fn client(&self, client: &aws_sdk_dynamodb::Client) -> aws_sdk_dynamodb::Client {
        let config = client
            .config()
            .to_builder()
            .interceptor(self.clone())
            .build();
        aws_sdk_dynamodb::Client::from_conf(config)
    }

    /// Whether the BatchWriteItem body `body` puts the item.
    fn holds_item(&self, body: &serde_json::Value) -> bool {
        let minute = self.status_time_ms.to_string();
        body["RequestItems"][&self.table]
            .as_array()
            .into_iter()
            .flatten()
            .any(|w| {
                let item = &w["PutRequest"]["Item"];
                item["Name"]["S"] == self.name.as_str()
                    && item["StatusTime"]["N"] == minute.as_str()
            })
    }
}

/// A table no test creates.
const MISSING_TABLE: &str = "NoSuchTable";

impl Intercept for FailingWrites {
    fn name(&self) -> &'static str {
        "FailingWrites"
    }

    fn modify_before_signing(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let request = context.request_mut();
        let is_batch_write = request
            .headers()
            .get("x-amz-target")
            .is_some_and(|t| t.ends_with(".BatchWriteItem"));
        if !is_batch_write {
            return Ok(());
        }
        let Some(bytes) = request.body().bytes() else {
            return Ok(());
        };
        let mut body: serde_json::Value = serde_json::from_slice(bytes)?;
        if !self.holds_item(&body) {
            return Ok(());
        }
        let armed = self
            .armed
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        if armed.is_err() {
            return Ok(());
        }
        self.failed.fetch_add(1, Ordering::SeqCst);
        let items = body["RequestItems"]
            .as_object_mut()
            .unwrap()
            .remove(&self.table)
            .unwrap();
        body["RequestItems"][MISSING_TABLE] = items;
        let text = body.to_string();
        request
            .headers_mut()
            .insert("content-length", text.len().to_string());
        *request.body_mut() = text.into();
        Ok(())
    }
}

/// Delivers `records` of `shard` as the event source mapping does, in
/// batches of at most `batch_size` Kinesis records from its checkpoint, to
/// `invoke`, which answers with the sequence number of the `batchItemFailures`
/// entry, if any. An answer naming a record moves the checkpoint to it (the
/// next batch starts there, as Lambda's retry does); no failure moves it
/// past the batch. Returns every answer, in order.
pub async fn deliver(
    shard: &Shard,
    records: &[SourceRecord],
    batch_size: usize,
    mut invoke: impl AsyncFnMut(serde_json::Value) -> Option<String>,
) -> Vec<Option<String>> {
    let mut answers = Vec::new();
    let mut at = 0;
    while at < records.len() {
        let batch = &records[at..(at + batch_size).min(records.len())];
        let answer = invoke(shard.event(batch)).await;
        at += match &answer {
            None => batch.len(),
            Some(sequence) => batch
                .iter()
                .position(|r| &r.sequence_number == sequence)
                .unwrap_or_else(|| panic!("{sequence} is no record of the batch")),
        };
        answers.push(answer);
        assert!(
            answers.len() <= 10 * records.len(),
            "no progress: {answers:?}"
        );
    }
    answers
}

/// The event the event source mapping makes of `records` read from shard
/// `shard_id` of the stream `stream_arn`.
pub fn kinesis_event(
    stream_arn: &str,
    shard_id: &str,
    records: &[SourceRecord],
) -> serde_json::Value {
    let records: Vec<_> = records
        .iter()
        .map(|r| {
            serde_json::json!({
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": r.partition_key,
                    "sequenceNumber": r.sequence_number,
                    "data": base64::engine::general_purpose::STANDARD.encode(&r.data),
                    "approximateArrivalTimestamp": 1_795_000_000.25,
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": format!("{shard_id}:{}", r.sequence_number),
                "eventName": "aws:kinesis:record",
                "invokeIdentityArn": "arn:aws:iam::000000000000:role/WildRydesFunctionRole",
                "awsRegion": "us-east-1",
                "eventSourceARN": stream_arn,
            })
        })
        .collect();
    serde_json::json!({ "Records": records })
}

/// Asserts that the rejects are exactly one, of `pipeline`, for the corrupt
/// aggregate `bad`: kept whole under its sequence number, with the reason.
pub fn assert_the_corrupt_aggregate_is_the_one_reject(
    rejects: &[wildrydes_core::rejects::Reject],
    pipeline: wildrydes_core::names::PipelineName,
    bad: &SourceRecord,
) {
    assert_eq!(rejects.len(), 1, "{rejects:?}");
    let reject = &rejects[0];
    assert_eq!(reject.pipeline, pipeline);
    assert!(
        reject
            .reason
            .starts_with("record is a KPL aggregate that cannot be read"),
        "{}",
        reject.reason
    );
    assert_eq!(
        (&reject.sequence_number, reject.sub_sequence_number),
        (&bad.sequence_number, None)
    );
    assert_eq!(reject.data, bad.data, "kept whole");
}
