//! `WildRydesAggregator`: the per-minute aggregation that replaces the
//! workshop's Kinesis Data Analytics application. Triggered by `wildrydes`
//! with a 60 s tumbling window; puts aggregates on `wildrydes-aggregated`.
//!
//! Within a Lambda window the open minutes travel in the `state` Lambda
//! carries between invocations. Lambda drops that state after the window's
//! final invocation, while minutes follow event time and routinely straddle
//! two windows: so the final invocation saves the open minutes in the
//! `WindowStore` table, and the first invocation of the next window (which
//! arrives with an empty state) loads them. Each minute is emitted once,
//! complete, when the readings show it is over (or its unicorn fell silent).
//!
//! Environment:
//! - `OUTPUT_STREAM` (default `wildrydes-aggregated`): where aggregates go.
//! - `STATE_TABLE_NAME` (default `WildRydesAggregatorState`): open minutes
//!   between windows (hash key `ShardKey` S).
//! - `REJECTS_TABLE_NAME` (default `UnicornSensorDataRejects`): bad and late readings.
//! - `ALLOWED_LATENESS_MS` (default 10000): how far behind its unicorn's
//!   latest reading a reading may arrive and still count.
//! - `IDLE_AFTER_MS` (default 120000): event time after which a silent
//!   unicorn's open minutes are closed anyway.
//! - `DEADLINE_MARGIN_MS` (default 1000): time kept back to answer Lambda.

use std::collections::HashMap;
use std::time::{Duration, Instant as StdInstant};

use aws_lambda_events::event::streams::KinesisBatchItemFailure;
use serde::Serialize;
use tokio::time::Instant;
use wildrydes_core::aggregation::{
    AggregateError, AggregateOutcome, Aggregator, DEFAULT_IDLE_AFTER,
};
use wildrydes_core::rejects::RejectStore;
use wildrydes_core::resources::{AGGREGATES_STREAM, AGGREGATOR_STATE_TABLE, REJECTS_TABLE};
use wildrydes_core::retry::RetryPolicy;
use wildrydes_core::stream_writer::StreamWriter;
use wildrydes_core::window::{DEFAULT_ALLOWED_LATENESS, MinuteWindow};
use wildrydes_core::window_store::{Saved, WindowStore, WindowStoreError};
use wildrydes_core::writer::{TableWriter, WriterConfig};

use crate::config::{self, ConfigError};
use crate::kinesis::WindowEvent;
use crate::telemetry;

/// The function's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Stream the aggregates are put on.
    pub output_stream: String,
    /// Table of open minutes between windows.
    pub state_table_name: String,
    /// Table of rejects.
    pub rejects_table_name: String,
    /// Lateness allowed to a reading.
    pub allowed_lateness: Duration,
    /// Event time after which a silent unicorn's minutes close.
    pub idle_after: Duration,
    /// Time kept back from the deadline to answer.
    pub deadline_margin: Duration,
}

impl Config {
    /// Reads the settings from the environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        let ms = "a positive number of milliseconds";
        Ok(Self {
            output_stream: config::optional("OUTPUT_STREAM", AGGREGATES_STREAM),
            state_table_name: config::optional("STATE_TABLE_NAME", AGGREGATOR_STATE_TABLE),
            rejects_table_name: config::optional("REJECTS_TABLE_NAME", REJECTS_TABLE),
            allowed_lateness: config::millis("ALLOWED_LATENESS_MS", DEFAULT_ALLOWED_LATENESS, ms)?,
            idle_after: config::millis("IDLE_AFTER_MS", DEFAULT_IDLE_AFTER, ms)?,
            deadline_margin: config::millis("DEADLINE_MARGIN_MS", Duration::from_secs(1), ms)?,
        })
    }
}

/// The aggregator function: its batch logic, its state store and lateness.
#[derive(Debug, Clone)]
pub struct AggregatorFunction {
    aggregator: Aggregator,
    store: WindowStore,
    allowed_lateness: Duration,
}

impl AggregatorFunction {
    /// The function these settings describe, over the given clients.
    pub fn new(
        config: &Config,
        kinesis: aws_sdk_kinesis::Client,
        dynamodb: aws_sdk_dynamodb::Client,
    ) -> Self {
        let rejects = TableWriter::new(
            dynamodb.clone(),
            &config.rejects_table_name,
            WriterConfig::default(),
        );
        Self {
            aggregator: Aggregator::new(
                StreamWriter::new(kinesis, &config.output_stream, RetryPolicy::default()),
                RejectStore::new(rejects),
                config.idle_after,
            ),
            store: WindowStore::new(dynamodb, &config.state_table_name),
            allowed_lateness: config.allowed_lateness,
        }
    }
}

/// The answer to a tumbling-window invocation: the state Lambda carries to
/// the next invocation of the window, and (always empty: a failed batch is
/// retried whole) the batch item failures.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WindowResponse {
    /// The window's open minutes, as `MinuteWindow::to_state` writes them.
    pub state: HashMap<String, String>,
    /// Records to deliver again; empty on success.
    pub batch_item_failures: Vec<KinesisBatchItemFailure>,
}

/// Why an invocation failed; Lambda then retries the batch with the state
/// it had before it.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// Emitting or storing rejects failed.
    #[error(transparent)]
    Aggregate(#[from] AggregateError),
    /// Loading or saving the open minutes failed.
    #[error(transparent)]
    Store(#[from] WindowStoreError),
}

/// Handles one invocation of the tumbling window.
pub async fn handle(
    function: &AggregatorFunction,
    mut event: WindowEvent,
    deadline: Instant,
) -> Result<WindowResponse, HandlerError> {
    let started = StdInstant::now();
    let is_final = event.is_final_invoke_for_window || event.is_window_terminated_early;
    let (source, records) = event.records();
    let shard_key = WindowStore::shard_key(&source.stream_arn, &source.shard_id);
    let window = if event.state.is_empty() {
        // The first invocation of a window: the open minutes of the last one.
        function
            .store
            .load(&shard_key, function.allowed_lateness)
            .await?
    } else {
        MinuteWindow::from_state(&event.state, function.allowed_lateness).map_err(|source| {
            WindowStoreError::Corrupt {
                shard_key: shard_key.clone(),
                table: "(Lambda window state)".into(),
                source,
            }
        })?
    };
    let (window, outcome) = function
        .aggregator
        .run(window, &source, &records, deadline)
        .await?;
    let state = window.to_state();
    if is_final {
        let start_ms = event.window.start.timestamp_millis();
        if function.store.save(&shard_key, &window, start_ms).await? == Saved::Stale {
            tracing::warn!(
                shard_key,
                "a newer window's state is already saved; this window's was not"
            );
        }
    }
    log_outcome(&shard_key, &outcome, &state, is_final, started.elapsed());
    Ok(WindowResponse {
        state,
        batch_item_failures: Vec::new(),
    })
}

fn log_outcome(
    shard_key: &str,
    outcome: &AggregateOutcome,
    state: &HashMap<String, String>,
    is_final: bool,
    took: Duration,
) {
    let state_bytes: usize = state.iter().map(|(k, v)| k.len() + v.len()).sum();
    let duration_ms = took.as_secs_f64() * 1000.0;
    tracing::info!(
        shard_key,
        records_in = outcome.records,
        accepted = outcome.accepted,
        duplicates = outcome.duplicates,
        late = outcome.late,
        rejected = outcome.rejected,
        emitted = outcome.emitted.len(),
        open_minutes = outcome.open_minutes,
        state_bytes,
        is_final,
        retries = outcome.retries,
        duration_ms,
        "window batch aggregated"
    );
    #[allow(clippy::cast_precision_loss)]
    let counts = [
        ("RecordsIn", "Count", outcome.records as f64),
        ("Duplicates", "Count", outcome.duplicates as f64),
        ("LateReadings", "Count", outcome.late as f64),
        ("Rejected", "Count", outcome.rejected as f64),
        ("AggregatesEmitted", "Count", outcome.emitted.len() as f64),
        ("OpenMinutes", "Count", outcome.open_minutes as f64),
        ("StateBytes", "Bytes", state_bytes as f64),
        ("DurationMs", "Milliseconds", duration_ms),
    ];
    telemetry::emit_metrics("wildrydes-aggregator", &counts);
}
