//! `WildRydesAggregator`: the per-minute aggregation that replaces the
//! workshop's Kinesis Data Analytics application. Triggered by `wildrydes`
//! (plain batches, no tumbling window); puts aggregates on
//! `wildrydes-aggregated`.
//!
//! Each invocation loads the minutes of the unicorns its batch names from
//! the minute store (one Query per unicorn), folds the readings in, emits
//! the minutes that are due, and writes the changed minutes back before it
//! answers, so the next invocation (of this shard, of a child shard after a
//! split or a merge, in any container) finds them. Nothing is cached
//! between invocations: another container may have handled the shard
//! since, and the store's conditional writes would refuse a stale copy
//! anyway.
//!
//! Invocations come only with records, so the same function also runs on
//! a schedule (an EventBridge rule, every minute in `infra/`): it finds the
//! minutes that are still not emitted and have had no reading for
//! `IDLE_AFTER_MS` through the store's pending index, and emits them. A
//! quiet shard's minutes reach the table at most `IDLE_AFTER_MS` plus one
//! schedule period after their last reading.
//!
//! Environment:
//! - `OUTPUT_STREAM` (default `wildrydes-aggregated`): where aggregates go.
//! - `STATE_TABLE_NAME` (default `WildRydesAggregatorMinutes`): the minute store.
//! - `REJECTS_TABLE_NAME` (default `UnicornSensorDataRejects`): bad readings,
//!   and readings beyond the horizon.
//! - `ALLOWED_LATENESS_MS` (default 10000): how far its unicorn's clock must
//!   pass a minute's end before the minute is first emitted.
//! - `HORIZON_MS` (default 3600000): how far behind its unicorn's newest
//!   reading a reading still counts.
//! - `IDLE_AFTER_MS` (default 30000): wall time without a reading after
//!   which a minute is emitted anyway.
//! - `DEADLINE_MARGIN_MS` (default 1000): time kept back to answer Lambda.

use std::time::{Duration, Instant as StdInstant};

use aws_lambda_events::event::streams::KinesisEventResponse;
use tokio::time::Instant;
use wildrydes_core::aggregation::{AggregateError, AggregateOutcome, Aggregator};
use wildrydes_core::input::ShardSource;
use wildrydes_core::minute_store::MinuteStore;
use wildrydes_core::names::{
    AGGREGATES_STREAM, AGGREGATOR_STATE_TABLE, PipelineName, REJECTS_TABLE,
};
use wildrydes_core::rejects::RejectStore;
use wildrydes_core::retry::RetryPolicy;
use wildrydes_core::stream_writer::StreamWriter;
use wildrydes_core::window::{
    DEFAULT_ALLOWED_LATENESS, DEFAULT_HORIZON, DEFAULT_IDLE_AFTER, MinuteWindow, WindowRules,
};
use wildrydes_core::writer::{TableWriter, WriterConfig};

use crate::config::{self, ConfigError};
use crate::kinesis::{self, AggregatorEvent, ScheduledEvent, ShardEvent};
use crate::telemetry::{self, Ending, Figure, Report};

/// Most unicorns one scheduled flush loads; the rest wait for the next.
const MAX_FLUSHED_UNICORNS: usize = 2_000;

/// The function's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Stream the aggregates are put on.
    pub output_stream: String,
    /// The minute store.
    pub state_table_name: String,
    /// Table of rejects.
    pub rejects_table_name: String,
    /// When minutes are emitted and forgotten.
    pub rules: WindowRules,
    /// Time kept back from the deadline to answer.
    pub deadline_margin: Duration,
}

impl Config {
    /// Reads the settings from the environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        let ms = "a positive number of milliseconds";
        let rules = WindowRules {
            allowed_lateness: config::millis("ALLOWED_LATENESS_MS", DEFAULT_ALLOWED_LATENESS, ms)?,
            horizon: config::millis("HORIZON_MS", DEFAULT_HORIZON, ms)?,
            idle_after: config::millis("IDLE_AFTER_MS", DEFAULT_IDLE_AFTER, ms)?,
        };
        if rules.horizon < rules.allowed_lateness {
            return Err(ConfigError::Invalid {
                name: "HORIZON_MS",
                value: rules.horizon.as_millis().to_string(),
                what: "at least ALLOWED_LATENESS_MS: minutes would be forgotten before they are emitted",
            });
        }
        Ok(Self {
            output_stream: config::optional("OUTPUT_STREAM", AGGREGATES_STREAM),
            state_table_name: config::optional("STATE_TABLE_NAME", AGGREGATOR_STATE_TABLE),
            rejects_table_name: config::optional("REJECTS_TABLE_NAME", REJECTS_TABLE),
            rules,
            deadline_margin: config::millis("DEADLINE_MARGIN_MS", Duration::from_secs(1), ms)?,
        })
    }
}

/// The aggregator function: its batch logic and its rules.
#[derive(Debug, Clone)]
pub struct AggregatorFunction {
    aggregator: Aggregator,
    rules: WindowRules,
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
        let store = MinuteStore::new(dynamodb, &config.state_table_name, config.rules.horizon);
        Self {
            aggregator: Aggregator::new(
                StreamWriter::new(kinesis, &config.output_stream, RetryPolicy::default()),
                RejectStore::new(rejects),
                store,
            ),
            rules: config.rules,
        }
    }
}

/// Why an invocation failed; Lambda then retries the batch.
pub type HandlerError = AggregateError;

/// Wall time as the minute window takes it.
fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Handles one invocation: a batch, or the schedule.
pub async fn handle(
    function: &AggregatorFunction,
    event: AggregatorEvent,
    deadline: Instant,
) -> Result<KinesisEventResponse, HandlerError> {
    // Boxed: the two futures nest the store's, the stream writer's and the
    // SDK's deeply enough to overflow the compiler's layout query depth.
    match event {
        AggregatorEvent::Shard(event) => Box::pin(handle_batch(function, event, deadline)).await,
        AggregatorEvent::Scheduled(event) => {
            Box::pin(flush_quiet(function, &event, deadline)).await?;
            Ok(KinesisEventResponse::default())
        }
    }
}

/// A batch of one shard: load, fold, emit, save, then answer. A failure
/// fails the whole batch (Lambda retries it; replays are dropped as
/// duplicates), so that the checkpoint never passes readings whose minutes
/// are not stored.
async fn handle_batch(
    function: &AggregatorFunction,
    event: ShardEvent,
    deadline: Instant,
) -> Result<KinesisEventResponse, HandlerError> {
    let started = StdInstant::now();
    let (source, records) = event.into_records();
    let mut window = MinuteWindow::new(function.rules);
    let now = now_ms();
    let outcome = function
        .aggregator
        .run(&mut window, &source, &records, now, deadline)
        .await?;
    let saved = function.aggregator.save(&mut window, now, deadline).await?;
    log_outcome(&source.shard_id, &outcome, saved.stored, started.elapsed());
    Ok(kinesis::response(None))
}

/// The schedule: emit the minutes no reading came for in `idle_after`.
async fn flush_quiet(
    function: &AggregatorFunction,
    event: &ScheduledEvent,
    deadline: Instant,
) -> Result<(), HandlerError> {
    let started = StdInstant::now();
    let now = now_ms();
    let idle = i64::try_from(function.rules.idle_after.as_millis()).unwrap_or(i64::MAX);
    let store = function.aggregator.store();
    let mut names = store.pending(now - idle, deadline).await?;
    names.truncate(MAX_FLUSHED_UNICORNS);
    let mut window = MinuteWindow::new(function.rules);
    function
        .aggregator
        .load(&mut window, &names, deadline)
        .await?;
    let source = ShardSource {
        stream_arn: event.resources.first().cloned().unwrap_or_default(),
        shard_id: "scheduled-flush".into(),
    };
    let outcome = function
        .aggregator
        .flush(&mut window, &source, false, now, deadline)
        .await?;
    let stored = match function.aggregator.save(&mut window, now, deadline).await {
        Ok(saved) => saved.stored,
        // A batch of the unicorn's shard wrote first: that invocation emits it.
        Err(AggregateError::Conflict { names }) => {
            tracing::info!(?names, "minutes changed by a batch meanwhile; left to it");
            0
        }
        Err(e) => return Err(e),
    };
    log_outcome("scheduled-flush", &outcome, stored, started.elapsed());
    Ok(())
}

/// One log line and one metrics document per invocation.
fn log_outcome(shard_id: &str, outcome: &AggregateOutcome, stored: usize, took: Duration) {
    telemetry::report(&Report {
        function: PipelineName::Aggregate,
        shard_id,
        message: "batch aggregated",
        figures: &[
            Figure::count("records_in", outcome.records).metric("RecordsIn"),
            Figure::count("loaded", outcome.loaded).metric("UnicornsLoaded"),
            Figure::count("accepted", outcome.accepted),
            Figure::count("duplicates", outcome.duplicates).metric("Duplicates"),
            Figure::count("corrected", outcome.corrected).metric("CorrectedReadings"),
            Figure::count("beyond_horizon", outcome.beyond_horizon).metric("BeyondHorizon"),
            Figure::count("rejected", outcome.rejected).metric("Rejected"),
            Figure::count("emitted", outcome.emitted.len()).metric("AggregatesEmitted"),
            Figure::count("minutes_stored", stored).metric("MinutesStored"),
            Figure::count("open_minutes", outcome.open_minutes).metric("OpenMinutes"),
            Figure::count("retries", outcome.retries),
        ],
        took,
        // A failure is the handler's error: the bootstrap logs it, Lambda retries.
        ending: Ending::Whole,
    });
}
