//! `Processor`: the stream processor's batch logic, shared by the Lambda
//! function and the daemon: decode, validate, map, write.
//!
//! Compared with the workshop's function:
//! - a record that fails validation is kept in the rejects table with its
//!   bytes and reason, and the good records beside it are written;
//! - records with the same table key are folded (the last one in stream order
//!   wins, as it would have had they been written one by one), so a duplicate
//!   never makes DynamoDB refuse a whole call;
//! - unprocessed items are retried; whatever is still not written by the
//!   deadline is reported as the first record to resume from, so nothing
//!   after a failure is checkpointed past.

use std::collections::HashMap;

use tokio::time::Instant;

use crate::aggregate::Aggregate;
use crate::item::aggregate_to_item;
use crate::name::UnicornName;
use crate::rejects::{Reject, RejectStore};
use crate::resources::SENSOR_TABLE_KEY;
use crate::time::StatusTime;
use crate::writer::TableWriter;

/// One record of a shard, whatever read it (a Lambda event, GetRecords).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceRecord {
    /// Its sequence number: where a retry resumes.
    pub sequence_number: String,
    /// Its partition key.
    pub partition_key: String,
    /// Its payload.
    pub data: Vec<u8>,
}

/// The shard a batch comes from: one batch is always of one shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardSource {
    /// The stream's ARN.
    pub stream_arn: String,
    /// The shard's id.
    pub shard_id: String,
}

/// What became of a batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Records in the batch.
    pub records: usize,
    /// Distinct items written to the table.
    pub written: usize,
    /// Records folded into a later record with the same key.
    pub duplicates: usize,
    /// Records refused by validation and stored as rejects.
    pub rejected: usize,
    /// Write calls sent again.
    pub retries: u32,
    /// The first record (index into the batch) not durably handled: written,
    /// or stored as a reject. Everything from it on must be delivered again.
    pub first_failure: Option<usize>,
    /// Why that record failed, for the log.
    pub error: Option<String>,
}

/// The stream processor: `wildrydes-aggregated` records into `UnicornSensorData`.
#[derive(Debug, Clone)]
pub struct Processor {
    table: TableWriter,
    rejects: RejectStore,
}

/// The name under which this pipeline stores its rejects.
const PIPELINE: &str = "processor";

impl Processor {
    /// A processor writing aggregates with `table` and rejects to `rejects`.
    pub fn new(table: TableWriter, rejects: RejectStore) -> Self {
        Self { table, rejects }
    }

    /// Handles one batch of one shard, in stream order, until `deadline`.
    pub async fn process(
        &self,
        source: &ShardSource,
        records: &[SourceRecord],
        deadline: Instant,
    ) -> BatchOutcome {
        // Per record: which item (index into `aggregates`) or reject it became.
        let mut fate = Vec::with_capacity(records.len());
        let mut aggregates: Vec<Aggregate> = Vec::with_capacity(records.len());
        let mut by_key: HashMap<(UnicornName, StatusTime), usize> = HashMap::new();
        let mut rejects = Vec::new();
        for record in records {
            match Aggregate::from_json(&record.data) {
                Ok(aggregate) => {
                    let key = (aggregate.name.clone(), aggregate.status_time);
                    let slot = *by_key.entry(key).or_insert(aggregates.len());
                    if slot == aggregates.len() {
                        aggregates.push(aggregate);
                    } else {
                        aggregates[slot] = aggregate;
                    }
                    fate.push(Fate::Item(slot));
                }
                Err(reason) => {
                    fate.push(Fate::Reject(rejects.len()));
                    rejects.push(reject(source, record, reason.to_string()));
                }
            }
        }
        let (items_report, rejects_report) = tokio::join!(
            self.table
                .put_all(&aggregates, aggregate_to_item, &SENSOR_TABLE_KEY, deadline),
            self.rejects.put_all(&rejects, deadline),
        );
        for (r, stored) in rejects.iter().zip(&rejects_report.written) {
            if *stored {
                tracing::warn!(record = %r.record_id(), reason = %r.reason, "record rejected");
            }
        }
        let first_failure = fate.iter().position(|f| match *f {
            Fate::Item(i) => !items_report.written[i],
            Fate::Reject(i) => !rejects_report.written[i],
        });
        let error = first_failure.map(|i| match fate[i] {
            Fate::Item(_) => items_report.last_error.clone().unwrap_or_default(),
            Fate::Reject(_) => format!(
                "cannot store reject in table {}: {}",
                self.rejects.table(),
                rejects_report.last_error.clone().unwrap_or_default()
            ),
        });
        BatchOutcome {
            records: records.len(),
            written: items_report.written_count(),
            duplicates: records.len() - rejects.len() - aggregates.len(),
            rejected: rejects_report.written_count(),
            retries: items_report.retries + rejects_report.retries,
            first_failure,
            error,
        }
    }
}

/// What one record of a batch became.
#[derive(Debug, Clone, Copy)]
enum Fate {
    /// The item at this index of the batch's items.
    Item(usize),
    /// The reject at this index of the batch's rejects.
    Reject(usize),
}

/// The reject for `record`, refused by the processor for `reason`.
pub fn reject(source: &ShardSource, record: &SourceRecord, reason: String) -> Reject {
    Reject::new(PIPELINE, source, record, reason)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use aws_sdk_dynamodb::Client;
    use aws_sdk_dynamodb::config::retry::RetryConfig;
    use aws_sdk_dynamodb::operation::batch_write_item::{
        BatchWriteItemError, BatchWriteItemInput, BatchWriteItemOutput,
    };
    use aws_sdk_dynamodb::types::WriteRequest;
    use aws_sdk_dynamodb::types::error::{
        ProvisionedThroughputExceededException, ResourceNotFoundException,
    };
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    use super::*;
    use crate::retry::RetryPolicy;
    use crate::writer::WriterConfig;

    const FIXTURE: &str = include_str!("../../../tests/fixtures/shadowfax-2016-02-12.json");

    fn records(lines: &[&str]) -> Vec<SourceRecord> {
        lines
            .iter()
            .enumerate()
            .map(|(i, line)| SourceRecord {
                sequence_number: format!("{:056}", i + 1),
                partition_key: "Shadowfax".into(),
                data: line.as_bytes().to_vec(),
            })
            .collect()
    }

    fn source() -> ShardSource {
        ShardSource {
            stream_arn: "arn:aws:kinesis:us-east-1:000000000000:stream/wildrydes-aggregated".into(),
            shard_id: "shardId-000000000000".into(),
        }
    }

    fn processor(client: Client) -> Processor {
        let config = WriterConfig {
            max_in_flight: 4,
            retry: RetryPolicy {
                max_attempts: 5,
                base_delay: Duration::from_millis(1),
                max_delay: Duration::from_millis(5),
            },
        };
        Processor::new(
            TableWriter::new(client.clone(), "UnicornSensorData", config.clone()),
            RejectStore::new(TableWriter::new(client, "UnicornSensorDataRejects", config)),
        )
    }

    fn deadline() -> Instant {
        Instant::now() + Duration::from_secs(10)
    }

    fn puts(input: &BatchWriteItemInput, table: &str) -> Vec<WriteRequest> {
        input
            .request_items()
            .and_then(|r| r.get(table))
            .cloned()
            .unwrap_or_default()
    }

    fn is_table(input: &BatchWriteItemInput, table: &str) -> bool {
        input.request_items().is_some_and(|r| r.contains_key(table))
    }

    /// Whether the call holds the item of `minute` ("HH:MM") of the fixture day.
    fn holds_minute(input: &BatchWriteItemInput, minute: &str) -> bool {
        let ms = StatusTime::parse(&format!("2016-02-12 {minute}:00.000"))
            .unwrap()
            .epoch_millis()
            .to_string();
        puts(input, "UnicornSensorData").iter().any(|w| {
            w.put_request()
                .and_then(|p| p.item().get("StatusTime"))
                .and_then(|v| v.as_n().ok())
                == Some(&ms)
        })
    }

    fn ok() -> BatchWriteItemOutput {
        BatchWriteItemOutput::builder().build()
    }

    fn no_retry(c: aws_sdk_dynamodb::config::Builder) -> aws_sdk_dynamodb::config::Builder {
        c.retry_config(RetryConfig::disabled())
    }

    #[tokio::test]
    async fn a_whole_day_is_written_in_chunks_of_25() {
        let rule = mock!(Client::batch_write_item)
            .match_requests(|i| {
                assert!(puts(i, "UnicornSensorData").len() <= 25);
                true
            })
            .then_output(ok);
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&rule], no_retry);
        let lines: Vec<_> = FIXTURE.lines().collect();
        let outcome = processor(client)
            .process(&source(), &records(&lines), deadline())
            .await;
        assert_eq!(outcome.written, 1440);
        assert_eq!(outcome.first_failure, None);
        assert_eq!(rule.num_calls(), 1440usize.div_ceil(25));
    }

    #[tokio::test]
    async fn unprocessed_items_are_retried_until_written() {
        // The first call of each chunk leaves all its items unprocessed.
        let seen = std::sync::Mutex::new(std::collections::HashSet::new());
        let rule = mock!(Client::batch_write_item).then_compute_output(move |i| {
            let requests = puts(i, "UnicornSensorData");
            let first = requests[0].put_request().unwrap().item()["StatusTime"]
                .as_n()
                .unwrap()
                .clone();
            if seen.lock().unwrap().insert(first) {
                BatchWriteItemOutput::builder()
                    .unprocessed_items("UnicornSensorData", requests)
                    .build()
            } else {
                ok()
            }
        });
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&rule], no_retry);
        let lines: Vec<_> = FIXTURE.lines().take(60).collect();
        let outcome = processor(client)
            .process(&source(), &records(&lines), deadline())
            .await;
        assert_eq!(
            (outcome.written, outcome.first_failure, outcome.retries),
            (60, None, 3)
        );
    }

    #[tokio::test]
    async fn throttling_errors_and_server_errors_are_retried() {
        let throttled = mock!(Client::batch_write_item)
            .match_requests(|i| holds_minute(i, "00:00"))
            .sequence()
            .error(|| {
                BatchWriteItemError::ProvisionedThroughputExceededException(
                    ProvisionedThroughputExceededException::builder()
                        .message("slow down")
                        .build(),
                )
            })
            .http_status(500, None)
            .output(ok)
            .build();
        let others = mock!(Client::batch_write_item).then_output(ok);
        let client = mock_client!(
            aws_sdk_dynamodb,
            RuleMode::MatchAny,
            [&throttled, &others],
            no_retry
        );
        let lines: Vec<_> = FIXTURE.lines().take(50).collect();
        let outcome = processor(client)
            .process(&source(), &records(&lines), deadline())
            .await;
        assert_eq!(
            (outcome.written, outcome.first_failure, outcome.retries),
            (50, None, 2)
        );
        assert_eq!(throttled.num_calls(), 3);
    }

    #[tokio::test]
    async fn a_chunk_that_keeps_failing_is_where_the_batch_resumes() {
        // The second chunk (minutes 00:25..00:49) fails for good; the others succeed.
        let missing = mock!(Client::batch_write_item)
            .match_requests(|i| holds_minute(i, "00:30"))
            .then_error(|| {
                BatchWriteItemError::ResourceNotFoundException(
                    ResourceNotFoundException::builder()
                        .message("no table")
                        .build(),
                )
            });
        let others = mock!(Client::batch_write_item).then_output(ok);
        let client = mock_client!(
            aws_sdk_dynamodb,
            RuleMode::MatchAny,
            [&missing, &others],
            no_retry
        );
        let lines: Vec<_> = FIXTURE.lines().take(75).collect();
        let outcome = processor(client)
            .process(&source(), &records(&lines), deadline())
            .await;
        assert_eq!(outcome.first_failure, Some(25));
        assert_eq!(outcome.written, 50);
        assert_eq!(missing.num_calls(), 1, "a permanent error is not retried");
        assert!(outcome.error.unwrap().contains("no table"));
    }

    #[tokio::test]
    async fn duplicates_are_folded_and_the_last_one_wins() {
        let rule = mock!(Client::batch_write_item)
            .match_requests(|i| {
                let requests = puts(i, "UnicornSensorData");
                assert_eq!(requests.len(), 2, "one item per key");
                let distance = requests[0].put_request().unwrap().item()["Distance"]
                    .as_n()
                    .unwrap()
                    .clone();
                assert_eq!(distance, "999");
                true
            })
            .then_output(ok);
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&rule], no_retry);
        let first = FIXTURE.lines().next().unwrap();
        let corrected = first.replace("\"Distance\":1317", "\"Distance\":999");
        let second = FIXTURE.lines().nth(1).unwrap();
        let lines = [first, second, first, &corrected, second];
        let outcome = processor(client)
            .process(&source(), &records(&lines), deadline())
            .await;
        assert_eq!(
            (outcome.written, outcome.duplicates, outcome.first_failure),
            (2, 3, None)
        );
        assert_eq!(rule.num_calls(), 1);
    }

    #[tokio::test]
    async fn bad_records_become_rejects_and_good_ones_are_written() {
        let items = mock!(Client::batch_write_item)
            .match_requests(|i| is_table(i, "UnicornSensorData"))
            .then_output(ok);
        let rejects = mock!(Client::batch_write_item)
            .match_requests(|i| {
                let requests = puts(i, "UnicornSensorDataRejects");
                let reasons: Vec<_> = requests
                    .iter()
                    .map(|w| {
                        w.put_request().unwrap().item()["Reason"]
                            .as_s()
                            .unwrap()
                            .clone()
                    })
                    .collect();
                assert_eq!(reasons.len(), 2);
                assert!(reasons[0].starts_with("record is not JSON"), "{reasons:?}");
                assert_eq!(reasons[1], "field Name is missing");
                true
            })
            .then_output(ok);
        let client = mock_client!(
            aws_sdk_dynamodb,
            RuleMode::MatchAny,
            [&items, &rejects],
            no_retry
        );
        let good = FIXTURE.lines().next().unwrap();
        let lines = [
            "\u{1}garbage",
            good,
            r#"{"StatusTime":"2016-02-12 00:00:00.000"}"#,
        ];
        let outcome = processor(client)
            .process(&source(), &records(&lines), deadline())
            .await;
        assert_eq!(
            (outcome.written, outcome.rejected, outcome.first_failure),
            (1, 2, None)
        );
        assert_eq!((items.num_calls(), rejects.num_calls()), (1, 1));
    }

    #[tokio::test]
    async fn a_reject_that_cannot_be_stored_is_a_failure() {
        let items = mock!(Client::batch_write_item)
            .match_requests(|i| is_table(i, "UnicornSensorData"))
            .then_output(ok);
        let rejects = mock!(Client::batch_write_item).then_http_response(|| {
            aws_smithy_runtime_api::http::Response::new(
                aws_smithy_runtime_api::http::StatusCode::try_from(503).unwrap(),
                aws_smithy_types::body::SdkBody::from("unavailable"),
            )
        });
        let client = mock_client!(
            aws_sdk_dynamodb,
            RuleMode::MatchAny,
            [&items, &rejects],
            no_retry
        );
        let good = FIXTURE.lines().next().unwrap();
        let lines = [good, "not json", good];
        let outcome = processor(client)
            .process(&source(), &records(&lines), deadline())
            .await;
        assert_eq!(outcome.first_failure, Some(1));
        assert_eq!(
            rejects.num_calls(),
            5,
            "transient failures are retried up to max_attempts"
        );
    }

    #[tokio::test]
    async fn a_table_that_never_answers_times_out_and_loses_nothing() {
        // A listener that accepts connections and never responds.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let hold = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version_latest()
            .endpoint_url(endpoint)
            .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::for_tests())
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                aws_sdk_dynamodb::config::timeout::TimeoutConfig::builder()
                    .operation_attempt_timeout(Duration::from_millis(50))
                    .build(),
            )
            .build();
        let client = Client::from_conf(config);
        let lines: Vec<_> = FIXTURE.lines().take(30).collect();
        let deadline = Instant::now() + Duration::from_secs(2);
        let outcome = processor(client)
            .process(&source(), &records(&lines), deadline)
            .await;
        assert_eq!((outcome.written, outcome.first_failure), (0, Some(0)));
        assert!(outcome.retries >= 2, "timeouts are transient: {outcome:?}");
        assert!(outcome.error.unwrap().contains("timeout"));
        hold.abort();
    }
}
