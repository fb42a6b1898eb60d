//! Kinesis Lambda events in, batch responses out.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lambda_events::event::kinesis::{KinesisEvent, KinesisEventRecord};
use aws_lambda_events::event::streams::{KinesisBatchItemFailure, KinesisEventResponse};
use tokio::time::Instant;
use wildrydes_core::process::{ShardSource, SourceRecord};

/// The shard and the records of a Lambda Kinesis event. Lambda gives one
/// shard per batch; the first record names it.
pub fn records_of(event: KinesisEvent) -> (ShardSource, Vec<SourceRecord>) {
    let source = event.records.first().map(source_of).unwrap_or(ShardSource {
        stream_arn: String::new(),
        shard_id: String::new(),
    });
    let records = event
        .records
        .into_iter()
        .map(|r| SourceRecord {
            sequence_number: r.kinesis.sequence_number,
            partition_key: r.kinesis.partition_key,
            data: r.kinesis.data.0,
        })
        .collect();
    (source, records)
}

/// The stream and shard of one record: the shard id is the part of the
/// `eventID` before the colon (`shardId-000000000000:4959...`).
fn source_of(record: &KinesisEventRecord) -> ShardSource {
    let event_id = record.event_id.as_deref().unwrap_or_default();
    ShardSource {
        stream_arn: record.event_source_arn.clone().unwrap_or_default(),
        shard_id: event_id.split(':').next().unwrap_or_default().to_owned(),
    }
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

/// The instant by which the handler must have answered: the invocation's
/// deadline (epoch milliseconds, from the runtime) less `margin`, kept for
/// answering Lambda and writing the logs.
pub fn deadline(invocation_deadline_ms: u64, margin: Duration) -> Instant {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or_default();
    let remaining = Duration::from_millis(invocation_deadline_ms.saturating_sub(now_ms));
    Instant::now() + remaining.saturating_sub(margin)
}
