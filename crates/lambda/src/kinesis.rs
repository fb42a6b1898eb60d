//! Kinesis Lambda events in, batch responses out.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lambda_events::event::streams::{KinesisBatchItemFailure, KinesisEventResponse};
use base64::Engine as _;
use serde::{Deserialize, Deserializer};
use tokio::time::Instant;
use wildrydes_core::input::{ShardSource, SourceRecord};

/// A Lambda Kinesis event, decoded for the stream processor: only the fields
/// it reads. `aws_lambda_events`' `KinesisEvent` decodes every field of every
/// record (its `approximateArrivalTimestamp` builds and drops a serde error
/// per record) and copies `data` through a `String`; this type skips what it
/// does not read and decodes `data` straight from the event's bytes, which
/// halves the cost of decoding an event (BENCHMARKS.md). The JSON is the
/// same: any Kinesis event `KinesisEvent` reads, this reads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ShardEvent {
    /// The batch, in shard order.
    #[serde(rename = "Records", default)]
    pub records: Vec<ShardEventRecord>,
}

/// One record of a [`ShardEvent`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ShardEventRecord {
    /// `shardId-000000000000:4959...`: the shard, then the sequence number.
    #[serde(rename = "eventID", default)]
    pub event_id: Option<String>,
    /// The stream's ARN.
    #[serde(rename = "eventSourceARN", default)]
    pub event_source_arn: Option<String>,
    /// The Kinesis record itself.
    pub kinesis: ShardEventPayload,
}

/// The Kinesis part of a [`ShardEventRecord`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShardEventPayload {
    /// The record's sequence number.
    pub sequence_number: String,
    /// The record's partition key.
    pub partition_key: String,
    /// The record's bytes (base64 in the event).
    #[serde(deserialize_with = "base64_bytes")]
    pub data: Vec<u8>,
}

/// Decodes a base64 string, borrowed from the input when it can be.
fn base64_bytes<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
    struct Visitor;
    impl serde::de::Visitor<'_> for Visitor {
        type Value = Vec<u8>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a base64 string")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Vec<u8>, E> {
            base64::engine::general_purpose::STANDARD
                .decode(v)
                .map_err(|e| E::custom(format!("data is not base64: {e}")))
        }
    }
    deserializer.deserialize_str(Visitor)
}

impl ShardEvent {
    /// The shard and the records of this event. Lambda gives one shard per
    /// batch; the first record names it.
    pub fn into_records(self) -> (ShardSource, Vec<SourceRecord>) {
        // The shard id is the part of the `eventID` before the colon
        // (`shardId-000000000000:4959...`).
        let source = ShardSource {
            stream_arn: self
                .records
                .first()
                .and_then(|r| r.event_source_arn.clone())
                .unwrap_or_default(),
            shard_id: self
                .records
                .first()
                .and_then(|r| r.event_id.as_deref()?.split(':').next())
                .unwrap_or_default()
                .to_owned(),
        };
        let records = self
            .records
            .into_iter()
            .map(|r| SourceRecord {
                sub_sequence_number: None,
                sequence_number: r.kinesis.sequence_number,
                partition_key: r.kinesis.partition_key,
                data: r.kinesis.data,
            })
            .flat_map(SourceRecord::user_records)
            .collect();
        (source, records)
    }
}

/// What invokes the aggregator: a batch of its trigger on `wildrydes`, or
/// the schedule (an EventBridge rule) that emits the minutes of shards that
/// fell quiet, which no batch would ever bring up again.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum AggregatorEvent {
    /// An EventBridge scheduled event (`"detail-type": "Scheduled Event"`).
    Scheduled(ScheduledEvent),
    /// A batch of one shard.
    Shard(ShardEvent),
}

/// The fields of an EventBridge scheduled event the aggregator reads.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ScheduledEvent {
    /// `Scheduled Event`.
    #[serde(rename = "detail-type")]
    pub detail_type: String,
    /// The rule's ARN, for the log.
    #[serde(default)]
    pub resources: Vec<String>,
}

/// The response that tells Lambda to resume at `failed` (a sequence number),
/// or that the whole batch succeeded.
pub fn response(failed: Option<&str>) -> KinesisEventResponse {
    let mut response = KinesisEventResponse::default();
    if let Some(sequence_number) = failed {
        let mut failure = KinesisBatchItemFailure::default();
        failure.item_identifier = Some(sequence_number.to_owned());
        response.batch_item_failures.push(failure);
    }
    response
}

/// Lambda's longest timeout, 15 minutes, in milliseconds.
const MAX_LAMBDA_TIMEOUT_MS: u64 = 900_000;

/// The instant by which the handler must have answered: the invocation's
/// deadline (epoch milliseconds, from the runtime) less `margin`, kept for
/// answering Lambda and writing the logs.
///
/// Local emulators (cargo-lambda's among them) send the timeout itself
/// instead of an epoch time; a value no larger than Lambda's longest timeout
/// is read that way rather than as a deadline in January 1970.
pub fn deadline(invocation_deadline_ms: u64, margin: Duration) -> Instant {
    let remaining_ms = if invocation_deadline_ms <= MAX_LAMBDA_TIMEOUT_MS {
        invocation_deadline_ms
    } else {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or_default();
        invocation_deadline_ms.saturating_sub(now_ms)
    };
    Instant::now() + Duration::from_millis(remaining_ms).saturating_sub(margin)
}

#[cfg(test)]
mod tests {
    use super::*;

    use aws_lambda_events::event::kinesis::KinesisEvent;

    /// The records of `aws_lambda_events`' type, as the processor takes them.
    fn full_records(event: KinesisEvent) -> Vec<SourceRecord> {
        event
            .records
            .into_iter()
            .map(|r| SourceRecord {
                sub_sequence_number: None,
                sequence_number: r.kinesis.sequence_number,
                partition_key: r.kinesis.partition_key,
                data: r.kinesis.data.0,
            })
            .collect()
    }

    #[test]
    fn shard_events_read_what_the_full_event_type_reads() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/events");
        for name in ["all-good", "duplicates", "garbage", "invalid", "whole-day"] {
            let path = format!("{dir}/{name}.json");
            let text = std::fs::read_to_string(&path).unwrap();
            let full: KinesisEvent = serde_json::from_str(&text).unwrap();
            let first = full.records[0].clone();
            let slim: ShardEvent = serde_json::from_str(&text).unwrap();
            let (source, records) = slim.into_records();
            assert_eq!(records, full_records(full), "{path}");
            assert_eq!(Some(&source.stream_arn), first.event_source_arn.as_ref());
            let event_id = first.event_id.unwrap();
            assert!(event_id.starts_with(&format!("{}:", source.shard_id)));
        }
    }

    #[test]
    fn the_aggregator_tells_a_schedule_from_a_batch() {
        let scheduled: AggregatorEvent = serde_json::from_value(serde_json::json!({
            "version": "0", "id": "1", "detail-type": "Scheduled Event", "source": "aws.events",
            "account": "123456789012", "time": "2026-12-02T10:00:00Z", "region": "us-east-1",
            "resources": ["arn:aws:events:us-east-1:123456789012:rule/flush"], "detail": {}
        }))
        .unwrap();
        assert!(
            matches!(scheduled, AggregatorEvent::Scheduled(e) if e.detail_type == "Scheduled Event")
        );
        let batch: AggregatorEvent =
            serde_json::from_str(include_str!("../../../tests/fixtures/events/all-good.json"))
                .unwrap();
        assert!(matches!(batch, AggregatorEvent::Shard(e) if !e.records.is_empty()));
    }

    #[test]
    fn data_that_is_not_base64_is_refused_with_the_reason() {
        let event =
            r#"{"Records":[{"kinesis":{"sequenceNumber":"1","partitionKey":"k","data":"%%%"}}]}"#;
        let error = serde_json::from_str::<ShardEvent>(event).unwrap_err();
        assert!(error.to_string().contains("data is not base64"), "{error}");
        let empty: ShardEvent = serde_json::from_str("{}").unwrap();
        assert_eq!(empty.into_records().1, Vec::new());
    }

    #[test]
    fn deadlines_are_epoch_times_or_emulator_timeouts() {
        let margin = Duration::from_secs(1);
        let now_ms = u64::try_from(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_millis(),
        )
        .unwrap();
        let left = |d: Instant| d.saturating_duration_since(Instant::now()).as_secs_f64();
        let real = left(deadline(now_ms + 30_000, margin));
        assert!((28.0..=29.0).contains(&real), "{real}");
        let emulator = left(deadline(600_000, margin));
        assert!((598.0..=599.0).contains(&emulator), "{emulator}");
        assert_eq!(
            left(deadline(now_ms - 5_000, margin)),
            0.0,
            "a past deadline leaves no time"
        );
    }

    #[test]
    fn the_answer_names_the_first_failed_record_only() {
        let ok = serde_json::to_value(response(None)).unwrap();
        assert_eq!(ok, serde_json::json!({ "batchItemFailures": [] }));
        let failed = serde_json::to_value(response(Some("4959"))).unwrap();
        assert_eq!(
            failed,
            serde_json::json!({ "batchItemFailures": [{ "itemIdentifier": "4959" }] })
        );
    }
}
