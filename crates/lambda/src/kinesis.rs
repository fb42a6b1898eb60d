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
