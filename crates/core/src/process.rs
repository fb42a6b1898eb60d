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
use crate::input::{ShardSource, SourceRecord};
use crate::item::aggregate_to_item;
use crate::name::UnicornName;
use crate::names::{PipelineName, SENSOR_TABLE_KEY};
use crate::rejects::{Reject, RejectStore};
use crate::time::StatusTime;
use crate::writer::TableWriter;

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
const PIPELINE: PipelineName = PipelineName::Process;

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
    use std::collections::HashSet;
    use std::future::Future;
    use std::sync::Mutex;
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    use aws_sdk_dynamodb::Client;
    use serde_json::Value;

    use super::*;
    use crate::retry::RetryPolicy;
    use crate::test_dynamodb::{self, FakeDynamoDb, ok};
    use crate::writer::WriterConfig;

    const FIXTURE: &str = include_str!("../../../tests/fixtures/shadowfax-2016-02-12.json");

    fn records(lines: &[&str]) -> Vec<SourceRecord> {
        lines
            .iter()
            .enumerate()
            .map(|(i, line)| SourceRecord {
                sub_sequence_number: None,
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

    /// The fixture's first `n` lines.
    fn first(n: usize) -> Vec<&'static str> {
        FIXTURE.lines().take(n).collect()
    }

    /// `lines` as one batch through a processor over `client`, bounded.
    async fn process(client: Client, lines: &[&str], deadline: Instant) -> BatchOutcome {
        bounded(processor(client).process(&source(), &records(lines), deadline)).await
    }

    /// Processes the fixture's first `n` lines over `dynamodb` and checks
    /// that every one was written, with `retries` write calls sent again.
    async fn assert_all_written(dynamodb: &FakeDynamoDb, n: usize, retries: u32) {
        let outcome = process(dynamodb.client(), &first(n), deadline()).await;
        assert_eq!(
            (outcome.written, outcome.first_failure, outcome.retries),
            (n, None, retries)
        );
    }

    fn deadline() -> Instant {
        Instant::now() + Duration::from_secs(10)
    }

    /// Runs `work`, failing the test if it has not ended within 30 s.
    async fn bounded<T>(work: impl Future<Output = T>) -> T {
        tokio::time::timeout(Duration::from_secs(30), work)
            .await
            .expect("the test ran for more than 30 s")
    }

    /// The `WriteRequest`s of a BatchWriteItem body for `table`.
    fn puts<'a>(body: &'a Value, table: &str) -> &'a [Value] {
        body["RequestItems"][table]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    fn is_table(body: &Value, table: &str) -> bool {
        body["RequestItems"].get(table).is_some()
    }

    /// Attribute `name` of the item of a put request, with its type
    /// (`"N"`, `"S"`).
    fn attribute<'a>(request: &'a Value, name: &str, kind: &str) -> Option<&'a str> {
        request["PutRequest"]["Item"][name][kind].as_str()
    }

    /// Whether the call holds the item of `minute` ("HH:MM") of the fixture day.
    fn holds_minute(body: &Value, minute: &str) -> bool {
        let ms = StatusTime::parse(&format!("2016-02-12 {minute}:00.000"))
            .unwrap()
            .epoch_millis()
            .to_string();
        puts(body, "UnicornSensorData")
            .iter()
            .any(|w| attribute(w, "StatusTime", "N") == Some(ms.as_str()))
    }

    #[tokio::test]
    async fn a_whole_day_is_written_in_chunks_of_25() {
        let dynamodb = FakeDynamoDb::start(|body| {
            assert!(puts(&body, "UnicornSensorData").len() <= 25);
            ok()
        })
        .await;
        let lines: Vec<_> = FIXTURE.lines().collect();
        let outcome = process(dynamodb.client(), &lines, deadline()).await;
        assert_eq!(outcome.written, 1440);
        assert_eq!(outcome.first_failure, None);
        assert_eq!(dynamodb.calls(), 1440usize.div_ceil(25));
    }

    #[tokio::test]
    async fn unprocessed_items_are_retried_until_written() {
        // The first call of each chunk leaves all its items unprocessed.
        let seen = Mutex::new(HashSet::new());
        let dynamodb = FakeDynamoDb::start(move |body| {
            let requests = puts(&body, "UnicornSensorData");
            let first = attribute(&requests[0], "StatusTime", "N")
                .unwrap()
                .to_owned();
            if seen.lock().unwrap().insert(first) {
                test_dynamodb::unprocessed("UnicornSensorData", requests.into())
            } else {
                ok()
            }
        })
        .await;
        assert_all_written(&dynamodb, 60, 3).await;
    }

    #[tokio::test]
    async fn throttling_errors_and_server_errors_are_retried() {
        // The chunk of minute 00:00 is throttled, then meets a 500, then is
        // written; every other call succeeds.
        let (dynamodb, throttled) = FakeDynamoDb::start_counting(|body, throttled| {
            if !holds_minute(&body, "00:00") {
                return ok();
            }
            match throttled.fetch_add(1, Ordering::SeqCst) {
                0 => test_dynamodb::error("ProvisionedThroughputExceededException", "slow down"),
                1 => test_dynamodb::status(500),
                _ => ok(),
            }
        })
        .await;
        assert_all_written(&dynamodb, 50, 2).await;
        assert_eq!(throttled.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_chunk_that_keeps_failing_is_where_the_batch_resumes() {
        // The second chunk (minutes 00:25..00:49) fails for good; the others succeed.
        let (dynamodb, missing) = FakeDynamoDb::start_counting(|body, missing| {
            if holds_minute(&body, "00:30") {
                missing.fetch_add(1, Ordering::SeqCst);
                test_dynamodb::error("ResourceNotFoundException", "no table")
            } else {
                ok()
            }
        })
        .await;
        let outcome = process(dynamodb.client(), &first(75), deadline()).await;
        assert_eq!(outcome.first_failure, Some(25));
        assert_eq!(outcome.written, 50);
        assert_eq!(
            missing.load(Ordering::SeqCst),
            1,
            "a permanent error is not retried"
        );
        assert!(outcome.error.unwrap().contains("no table"));
    }

    #[tokio::test]
    async fn duplicates_are_folded_and_the_last_one_wins() {
        let dynamodb = FakeDynamoDb::start(|body| {
            let requests = puts(&body, "UnicornSensorData");
            assert_eq!(requests.len(), 2, "one item per key");
            assert_eq!(attribute(&requests[0], "Distance", "N"), Some("999"));
            ok()
        })
        .await;
        let first = FIXTURE.lines().next().unwrap();
        let corrected = first.replace("\"Distance\":1317", "\"Distance\":999");
        let second = FIXTURE.lines().nth(1).unwrap();
        let lines = [first, second, first, &corrected, second];
        let outcome = process(dynamodb.client(), &lines, deadline()).await;
        assert_eq!(
            (outcome.written, outcome.duplicates, outcome.first_failure),
            (2, 3, None)
        );
        assert_eq!(dynamodb.calls(), 1);
    }

    #[tokio::test]
    async fn bad_records_become_rejects_and_good_ones_are_written() {
        let (dynamodb, items) = FakeDynamoDb::start_counting(|body, items| {
            if is_table(&body, "UnicornSensorData") {
                items.fetch_add(1, Ordering::SeqCst);
                return ok();
            }
            let reasons: Vec<_> = puts(&body, "UnicornSensorDataRejects")
                .iter()
                .map(|w| attribute(w, "Reason", "S").unwrap().to_owned())
                .collect();
            assert_eq!(reasons.len(), 2);
            assert!(reasons[0].starts_with("record is not JSON"), "{reasons:?}");
            assert_eq!(reasons[1], "field Name is missing");
            ok()
        })
        .await;
        let good = FIXTURE.lines().next().unwrap();
        let lines = [
            "\u{1}garbage",
            good,
            r#"{"StatusTime":"2016-02-12 00:00:00.000"}"#,
        ];
        let outcome = process(dynamodb.client(), &lines, deadline()).await;
        assert_eq!(
            (outcome.written, outcome.rejected, outcome.first_failure),
            (1, 2, None)
        );
        let items = items.load(Ordering::SeqCst);
        assert_eq!(
            (items, dynamodb.calls() - items),
            (1, 1),
            "one call to the table, one to the rejects"
        );
    }

    #[tokio::test]
    async fn a_reject_that_cannot_be_stored_is_a_failure() {
        let (dynamodb, rejects) = FakeDynamoDb::start_counting(|body, rejects| {
            if is_table(&body, "UnicornSensorData") {
                ok()
            } else {
                rejects.fetch_add(1, Ordering::SeqCst);
                test_dynamodb::status(503)
            }
        })
        .await;
        let good = FIXTURE.lines().next().unwrap();
        let lines = [good, "not json", good];
        let outcome = process(dynamodb.client(), &lines, deadline()).await;
        assert_eq!(outcome.first_failure, Some(1));
        assert_eq!(
            rejects.load(Ordering::SeqCst),
            5,
            "transient failures are retried up to max_attempts"
        );
    }

    #[tokio::test]
    async fn a_table_that_never_answers_times_out_and_loses_nothing() {
        let dynamodb = FakeDynamoDb::never_answering().await;
        let config = dynamodb
            .config()
            .timeout_config(
                aws_sdk_dynamodb::config::timeout::TimeoutConfig::builder()
                    .operation_attempt_timeout(Duration::from_millis(50))
                    .build(),
            )
            .build();
        let client = Client::from_conf(config);
        let lines = first(30);
        let deadline = Instant::now() + Duration::from_secs(2);
        let outcome = process(client, &lines, deadline).await;
        assert_eq!((outcome.written, outcome.first_failure), (0, Some(0)));
        assert!(outcome.retries >= 2, "timeouts are transient: {outcome:?}");
        assert!(outcome.error.unwrap().contains("timeout"));
    }
}
