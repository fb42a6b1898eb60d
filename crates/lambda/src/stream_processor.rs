//! `WildRydesStreamProcessor`: `wildrydes-aggregated` records into
//! `UnicornSensorData`, answering Lambda with `batchItemFailures` (the trigger
//! must be configured with `ReportBatchItemFailures`).
//!
//! Environment:
//! - `TABLE_NAME` (required): the table of aggregates, `UnicornSensorData` in the workshop.
//! - `REJECTS_TABLE_NAME` (default `UnicornSensorDataRejects`): where records
//!   that fail validation are kept for an operator.
//! - `MAX_IN_FLIGHT` (default 8): BatchWriteItem calls in flight at once.
//! - `DEADLINE_MARGIN_MS` (default 1000): time kept back from the invocation's
//!   deadline to answer Lambda; retries stop before it.

use std::time::{Duration, Instant as StdInstant};

use aws_lambda_events::event::streams::KinesisEventResponse;
use tokio::time::Instant;
use wildrydes_core::names::{PipelineName, REJECTS_TABLE};
use wildrydes_core::process::{BatchOutcome, Processor};
use wildrydes_core::rejects::RejectStore;
use wildrydes_core::writer::{DEFAULT_MAX_IN_FLIGHT, TableWriter, WriterConfig};

use crate::config::{self, ConfigError};
use crate::kinesis::{self, ShardEvent};
use crate::telemetry::{self, Ending, Failure, Figure, Report};

/// The function's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Table of aggregates.
    pub table_name: String,
    /// Table of rejects.
    pub rejects_table_name: String,
    /// BatchWriteItem calls in flight at once.
    pub max_in_flight: usize,
    /// Time kept back from the deadline to answer.
    pub deadline_margin: Duration,
}

impl Config {
    /// Reads the settings from the environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            table_name: config::required(
                "TABLE_NAME",
                "the DynamoDB table that receives the aggregates (UnicornSensorData in the workshop)",
            )?,
            rejects_table_name: config::optional("REJECTS_TABLE_NAME", REJECTS_TABLE),
            max_in_flight: usize::try_from(config::number(
                "MAX_IN_FLIGHT",
                DEFAULT_MAX_IN_FLIGHT as u64,
                "a positive number of concurrent BatchWriteItem calls",
            )?)
            .unwrap_or(DEFAULT_MAX_IN_FLIGHT),
            deadline_margin: config::millis(
                "DEADLINE_MARGIN_MS",
                Duration::from_secs(1),
                "a positive number of milliseconds",
            )?,
        })
    }

    /// The processor these settings describe, over `client`.
    pub fn processor(&self, client: aws_sdk_dynamodb::Client) -> Processor {
        let writer = WriterConfig {
            max_in_flight: self.max_in_flight,
            ..WriterConfig::default()
        };
        Processor::new(
            TableWriter::new(client.clone(), &self.table_name, writer.clone()),
            RejectStore::new(TableWriter::new(client, &self.rejects_table_name, writer)),
        )
    }
}

/// Handles one invocation: processes the batch until `deadline` and names
/// the first record Lambda must deliver again, if any.
pub async fn handle(
    processor: &Processor,
    event: ShardEvent,
    deadline: Instant,
) -> KinesisEventResponse {
    let started = StdInstant::now();
    let (source, records) = event.into_records();
    let outcome = processor.process(&source, &records, deadline).await;
    let failed = outcome
        .first_failure
        .map(|i| records[i].sequence_number.as_str());
    let time_left = deadline.saturating_duration_since(Instant::now());
    log_outcome(
        &source.shard_id,
        &outcome,
        failed,
        started.elapsed(),
        time_left,
    );
    kinesis::response(failed)
}

/// One log line and one metrics document per invocation.
fn log_outcome(
    shard_id: &str,
    outcome: &BatchOutcome,
    failed: Option<&str>,
    took: Duration,
    time_left: Duration,
) {
    telemetry::report(&Report {
        function: PipelineName::Process,
        shard_id,
        message: "batch delivered",
        figures: &[
            Figure::count("records_in", outcome.records).metric("RecordsIn"),
            Figure::count("written", outcome.written).metric("ItemsWritten"),
            Figure::count("duplicates", outcome.duplicates).metric("Duplicates"),
            Figure::count("rejected", outcome.rejected).metric("Rejected"),
            Figure::count("retries", outcome.retries).metric("Retries"),
            Figure::millis("time_left_ms", time_left),
        ],
        took,
        ending: failed.map_or(Ending::Complete, |resume_at| {
            Ending::Partial(Failure {
                resume_at,
                error: outcome.error.as_deref().unwrap_or_default(),
                message: "batch partly delivered: Lambda will retry from resume_at",
            })
        }),
    });
}
