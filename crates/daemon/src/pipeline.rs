//! `Pipeline`: what the daemon does with a shard's records. Each variant is
//! the exact core logic its Lambda function runs; only the way records
//! arrive and progress is kept differs.

use std::time::Duration;

use tokio::time::Instant;
use wildrydes_core::aggregation::Aggregator;
use wildrydes_core::input::{ShardSource, SourceRecord};
use wildrydes_core::names::PipelineName;
use wildrydes_core::process::Processor;
use wildrydes_core::window::{MinuteWindow, WindowRules};

/// How long a unicorn may go unseen before a shard's consumer drops it from
/// its cache (it is loaded again from the minute store if it comes back).
const CACHE_QUIET_AFTER: Duration = Duration::from_secs(600);

/// A pipeline of the daemon.
#[derive(Debug, Clone)]
pub enum Pipeline {
    /// `wildrydes-aggregated` to the table: the stream processor.
    Process(Processor),
    /// `wildrydes` to `wildrydes-aggregated`: the aggregator, with the
    /// rules its windows close and forget minutes by.
    Aggregate(Aggregator, WindowRules),
    /// `wildrydes` (or `wildrydes-aggregated`) to operators: the low-magic alarm.
    Alarm(std::sync::Arc<wildrydes_alarm::alarm::MagicAlarm>),
}

/// What a pipeline keeps per shard between batches.
#[derive(Debug, Clone)]
pub enum ShardState {
    /// Nothing: every batch stands alone.
    Stateless,
    /// The aggregator's cache of the minute store: the minutes of the
    /// unicorns this shard carries.
    Window(MinuteWindow),
}

/// What became of a batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Handled {
    /// How many records, from the start of the batch, are handled: the
    /// checkpoint may move past exactly these (once the state is saved).
    pub done: usize,
    /// Why the rest was not handled.
    pub error: Option<String>,
    /// Records refused by validation (kept as rejects).
    pub rejected: usize,
    /// Items or aggregates written.
    pub written: usize,
    /// Write calls retried.
    pub retries: u32,
}

impl Handled {
    /// A batch of `records` records handled up to `first_failure`, the
    /// first record not handled (all of them if none), for `error`.
    fn up_to(first_failure: Option<usize>, records: usize, error: Option<String>) -> Self {
        Handled {
            done: first_failure.unwrap_or(records),
            error,
            ..Handled::default()
        }
    }
}

/// What an aggregator run or flush of `records` records became.
fn aggregated(
    result: Result<
        wildrydes_core::aggregation::AggregateOutcome,
        wildrydes_core::aggregation::AggregateError,
    >,
    records: usize,
) -> Handled {
    match result {
        Ok(outcome) => Handled {
            done: records,
            error: None,
            rejected: outcome.rejected,
            written: outcome.emitted.len(),
            retries: outcome.retries,
        },
        Err(e) => Handled {
            error: Some(e.to_string()),
            ..Handled::default()
        },
    }
}

/// Wall time as the minute window takes it.
fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Pipeline {
    /// The name of the pipeline, as in metrics, rejects and lease table names.
    pub fn name(&self) -> PipelineName {
        match self {
            Pipeline::Process(_) => PipelineName::Process,
            Pipeline::Aggregate(..) => PipelineName::Aggregate,
            Pipeline::Alarm(_) => PipelineName::Alarm,
        }
    }

    /// The state a shard's consumer starts with. The aggregator's minutes
    /// live in its minute store, keyed by unicorn, and are loaded as the
    /// shard's records name them: nothing comes from the lease.
    pub fn resume(&self) -> ShardState {
        match self {
            Pipeline::Process(_) | Pipeline::Alarm(_) => ShardState::Stateless,
            Pipeline::Aggregate(_, rules) => ShardState::Window(MinuteWindow::new(*rules)),
        }
    }

    /// Handles a batch, in order, before `deadline`.
    pub async fn handle(
        &self,
        state: &mut ShardState,
        source: &ShardSource,
        records: &[SourceRecord],
        deadline: Instant,
    ) -> Handled {
        match (self, state) {
            (Pipeline::Process(processor), _) => {
                let outcome = processor.process(source, records, deadline).await;
                Handled {
                    rejected: outcome.rejected,
                    written: outcome.written,
                    retries: outcome.retries,
                    ..Handled::up_to(outcome.first_failure, records.len(), outcome.error)
                }
            }
            (Pipeline::Alarm(alarm), _) => {
                let outcome = alarm.process(source, records, deadline).await;
                Handled {
                    rejected: outcome.rejected,
                    written: outcome.notified.len(),
                    retries: outcome.notify_retries,
                    ..Handled::up_to(outcome.first_failure, records.len(), outcome.error)
                }
            }
            (Pipeline::Aggregate(aggregator, _), ShardState::Window(window)) => {
                let result = aggregator
                    .run(window, source, records, now_ms(), deadline)
                    .await;
                aggregated(result, records.len())
            }
            (Pipeline::Aggregate(..), ShardState::Stateless) => Handled {
                error: Some("aggregate pipeline started without its window".into()),
                ..Handled::default()
            },
        }
    }

    /// Emits what is due although no record arrived (the minutes whose
    /// unicorns fell silent); with `all`, every minute not emitted as it
    /// stands (the shard fell silent). `None` when there was nothing to do.
    pub async fn flush_idle(
        &self,
        state: &mut ShardState,
        source: &ShardSource,
        all: bool,
        deadline: Instant,
    ) -> Option<Handled> {
        let (Pipeline::Aggregate(aggregator, _), ShardState::Window(window)) = (self, state) else {
            return None;
        };
        if window.open_minutes() == 0 {
            return None;
        }
        let result = aggregator
            .flush(window, source, all, now_ms(), deadline)
            .await;
        Some(aggregated(result, 0))
    }

    /// Adopts the unicorns `mine` accepts that have minutes left pending in
    /// the aggregator's store by a consumer that died or by a parent shard
    /// (they may never send again, so no record would bring them up).
    /// `None` for pipelines with no such state.
    pub async fn adopt_pending(
        &self,
        state: &mut ShardState,
        mine: impl Fn(&wildrydes_core::UnicornName) -> bool,
        deadline: Instant,
    ) -> Option<Result<usize, String>> {
        let (Pipeline::Aggregate(aggregator, _), ShardState::Window(window)) = (self, state) else {
            return None;
        };
        Some(
            aggregator
                .adopt_pending(window, mine, deadline)
                .await
                .map_err(|e| e.to_string()),
        )
    }

    /// Makes what was handled durable before the checkpoint moves past it:
    /// the aggregator writes the minutes that changed to its store. An
    /// error means the checkpoint must not move, and the records since the
    /// last one must be read again.
    pub async fn save(&self, state: &mut ShardState, deadline: Instant) -> Result<usize, String> {
        let (Pipeline::Aggregate(aggregator, _), ShardState::Window(window)) = (self, state) else {
            return Ok(0);
        };
        let now = now_ms();
        let saved = aggregator
            .save(window, now, deadline)
            .await
            .map_err(|e| e.to_string())?;
        let quiet = i64::try_from(CACHE_QUIET_AFTER.as_millis()).unwrap_or(i64::MAX);
        window.evict_quiet(now - quiet);
        Ok(saved.stored)
    }
}
