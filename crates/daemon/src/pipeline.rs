//! `Pipeline`: what the daemon does with a shard's records. Each variant is
//! the exact core logic its Lambda function runs; only the way records
//! arrive and progress is kept differs.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;
use wildrydes_core::aggregation::Aggregator;
use wildrydes_core::process::{Processor, ShardSource, SourceRecord};
use wildrydes_core::window::MinuteWindow;

/// A pipeline of the daemon.
#[derive(Debug, Clone)]
pub enum Pipeline {
    /// `wildrydes-aggregated` to the table: the stream processor.
    Process(Processor),
    /// `wildrydes` to `wildrydes-aggregated`: the aggregator, with the
    /// lateness its windows allow.
    Aggregate(Aggregator, Duration),
    /// `wildrydes` (or `wildrydes-aggregated`) to operators: the low-magic alarm.
    Alarm(std::sync::Arc<wildrydes_alarm::alarm::MagicAlarm>),
}

/// What a pipeline keeps per shard between batches.
#[derive(Debug, Clone)]
pub enum ShardState {
    /// Nothing: every batch stands alone.
    Stateless,
    /// The aggregator's open minutes.
    Window(MinuteWindow),
}

/// What became of a batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Handled {
    /// How many records, from the start of the batch, are durably handled:
    /// the checkpoint may move past exactly these.
    pub done: usize,
    /// State to save with that checkpoint.
    pub state: Option<String>,
    /// Why the rest was not handled.
    pub error: Option<String>,
    /// Records refused by validation (kept as rejects).
    pub rejected: usize,
    /// Items or aggregates written.
    pub written: usize,
    /// Write calls retried.
    pub retries: u32,
}

impl Pipeline {
    /// The name of the pipeline, as in metrics and lease table names.
    pub fn name(&self) -> &'static str {
        match self {
            Pipeline::Process(_) => "process",
            Pipeline::Aggregate(..) => "aggregate",
            Pipeline::Alarm(_) => "alarm",
        }
    }

    /// The state a shard resumes with, from what its lease saved.
    pub fn resume(&self, saved: Option<&str>) -> ShardState {
        match self {
            Pipeline::Process(_) | Pipeline::Alarm(_) => ShardState::Stateless,
            Pipeline::Aggregate(_, lateness) => {
                let map: HashMap<String, String> = saved
                    .and_then(|s| serde_json::from_str(s).ok())
                    .unwrap_or_default();
                let window = MinuteWindow::from_state(&map, *lateness).unwrap_or_else(|e| {
                    tracing::error!(error = %e, "saved window state is unreadable; starting with no open minutes");
                    MinuteWindow::new(*lateness)
                });
                ShardState::Window(window)
            }
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
                    done: outcome.first_failure.unwrap_or(records.len()),
                    state: None,
                    error: outcome.error,
                    rejected: outcome.rejected,
                    written: outcome.written,
                    retries: outcome.retries,
                }
            }
            (Pipeline::Alarm(alarm), _) => {
                let outcome = alarm.process(source, records, deadline).await;
                Handled {
                    done: outcome.first_failure.unwrap_or(records.len()),
                    state: None,
                    error: outcome.error,
                    rejected: outcome.rejected,
                    written: outcome.notified.len(),
                    retries: outcome.notify_retries,
                }
            }
            (Pipeline::Aggregate(aggregator, _), ShardState::Window(window)) => {
                match aggregator
                    .run(window.clone(), source, records, deadline)
                    .await
                {
                    Ok((next, outcome)) => {
                        *window = next;
                        Handled {
                            done: records.len(),
                            state: Some(window_json(window)),
                            error: None,
                            rejected: outcome.rejected,
                            written: outcome.emitted.len(),
                            retries: outcome.retries,
                        }
                    }
                    Err(e) => Handled {
                        error: Some(e.to_string()),
                        ..Handled::default()
                    },
                }
            }
            (Pipeline::Aggregate(..), ShardState::Stateless) => Handled {
                error: Some("aggregate pipeline started without its window state".into()),
                ..Handled::default()
            },
        }
    }

    /// Closes what is still open because no record arrived for a while (the
    /// producers stopped): the aggregator emits every open minute. `None`
    /// when there was nothing to do.
    pub async fn flush_idle(
        &self,
        state: &mut ShardState,
        source: &ShardSource,
        deadline: Instant,
    ) -> Option<Handled> {
        let ShardState::Window(window) = state else {
            return None;
        };
        if window.open_minutes() == 0 {
            return None;
        }
        let mut flushed = window.clone();
        flushed.flush_all();
        let mut candidate = ShardState::Window(flushed);
        let handled = self.handle(&mut candidate, source, &[], deadline).await;
        if handled.error.is_none() {
            *state = candidate;
        }
        Some(handled)
    }
}

fn window_json(window: &MinuteWindow) -> String {
    serde_json::to_string(&window.to_state()).unwrap_or_default()
}
