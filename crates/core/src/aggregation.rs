//! `Aggregator`: the batch logic that replaces the workshop's Kinesis Data
//! Analytics application, shared by the Lambda function and the daemon:
//! fold a batch of readings into the [`MinuteWindow`], put the minutes it
//! closes on `wildrydes-aggregated`, keep what cannot be folded as rejects.
//!
//! Late readings (their minute was already emitted) are kept as rejects with
//! the reason, not folded into a correction: a correction would need the
//! emitted figures, which the window no longer holds, and a partial
//! correction would overwrite a complete aggregate with a wrong one.
//!
//! A batch either succeeds as a whole or changes nothing: [`Aggregator::run`]
//! takes the window by value and hands back the new one only on success, so
//! a caller that retries the batch retries it from the state it had.
//! Re-emitting the same minutes on a retry is harmless: same key, same figures.

use std::time::Duration;

use tokio::time::Instant;

use crate::aggregate::Aggregate;
use crate::process::{ShardSource, SourceRecord};
use crate::reading::Reading;
use crate::rejects::{Reject, RejectStore};
use crate::stream_writer::{OutRecord, StreamWriter};
use crate::window::{MinuteWindow, Push};

/// The name under which this pipeline stores its rejects.
const PIPELINE: &str = "aggregator";

/// How long a unicorn may stay silent, in event time, before its open
/// minutes are closed anyway: long enough for a producer's retries, short
/// enough that a unicorn that stopped still gets its last minute.
pub const DEFAULT_IDLE_AFTER: Duration = Duration::from_secs(120);

/// What one batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AggregateOutcome {
    /// Records in the batch.
    pub records: usize,
    /// Readings folded into an open minute.
    pub accepted: usize,
    /// Readings already folded (at-least-once delivery).
    pub duplicates: usize,
    /// Readings whose minute was already emitted, kept as rejects.
    pub late: usize,
    /// Records kept as rejects (late ones included).
    pub rejected: usize,
    /// Aggregates put on the output stream.
    pub emitted: Vec<Aggregate>,
    /// Minutes still open after the batch.
    pub open_minutes: usize,
    /// Put calls sent again.
    pub retries: u32,
}

/// Why a batch must be retried.
#[derive(Debug, thiserror::Error)]
pub enum AggregateError {
    /// Some aggregates could not be put on the output stream.
    #[error("cannot put {missing} of {total} aggregates on stream {stream}: {reason}")]
    Emit {
        /// The stream.
        stream: String,
        /// How many were not put.
        missing: usize,
        /// How many there were.
        total: usize,
        /// The last failure.
        reason: String,
    },
    /// Some rejects could not be stored.
    #[error("cannot store {missing} rejects in table {table}: {reason}")]
    Rejects {
        /// The table.
        table: String,
        /// How many were not stored.
        missing: usize,
        /// The last failure.
        reason: String,
    },
}

/// Folds readings into minutes and emits them.
#[derive(Debug, Clone)]
pub struct Aggregator {
    output: StreamWriter,
    rejects: RejectStore,
    idle_after: Duration,
}

impl Aggregator {
    /// An aggregator putting aggregates with `output`, rejects to `rejects`,
    /// closing the minutes of unicorns silent for `idle_after`.
    pub fn new(output: StreamWriter, rejects: RejectStore, idle_after: Duration) -> Self {
        Self {
            output,
            rejects,
            idle_after,
        }
    }

    /// Folds `records` of `source` into `window`, emits the minutes that
    /// close, and stores the rejects, all before `deadline`. Returns the new
    /// window, or an error after which the batch must be retried from the
    /// window as it was.
    pub async fn run(
        &self,
        mut window: MinuteWindow,
        source: &ShardSource,
        records: &[SourceRecord],
        deadline: Instant,
    ) -> Result<(MinuteWindow, AggregateOutcome), AggregateError> {
        let mut outcome = AggregateOutcome {
            records: records.len(),
            ..AggregateOutcome::default()
        };
        let mut rejects = Vec::new();
        for record in records {
            let reading = match Reading::from_json(&record.data) {
                Ok(r) => r,
                Err(e) => {
                    rejects.push(Reject::new(PIPELINE, source, record, e.to_string()));
                    continue;
                }
            };
            match window.push(&reading) {
                Push::Accepted => outcome.accepted += 1,
                Push::Duplicate => outcome.duplicates += 1,
                Push::Late => {
                    outcome.late += 1;
                    let reason = format!(
                        "late: reading of {} at {} arrived after its minute {} was emitted; it is not in that aggregate",
                        reading.name,
                        reading.status_time,
                        reading.status_time.minute()
                    );
                    rejects.push(Reject::new(PIPELINE, source, record, reason));
                }
            }
        }
        window.flush_idle(self.idle_after);
        for closed in window.take_closed() {
            match closed {
                Ok(aggregate) => outcome.emitted.push(aggregate),
                Err(e) => {
                    let record = SourceRecord {
                        sequence_number: format!("minute-{}-{}", e.minute.epoch_millis(), e.name),
                        partition_key: e.name.to_string(),
                        data: Vec::new(),
                    };
                    rejects.push(Reject::new(PIPELINE, source, &record, e.to_string()));
                }
            }
        }
        outcome
            .emitted
            .sort_by(|a, b| (a.status_time, &a.name).cmp(&(b.status_time, &b.name)));
        outcome.open_minutes = window.open_minutes();

        let out: Vec<_> = outcome
            .emitted
            .iter()
            .map(|a| OutRecord {
                partition_key: a.name.to_string(),
                data: a.to_json().into_bytes(),
            })
            .collect();
        let (put, stored) = tokio::join!(
            self.output.put_all(&out, deadline),
            self.rejects.put_all(&rejects, deadline)
        );
        outcome.retries = put.retries + stored.retries;
        outcome.rejected = stored.written_count();
        if !put.complete() {
            return Err(AggregateError::Emit {
                stream: self.output.stream().to_owned(),
                missing: put.acknowledged.iter().filter(|a| a.is_none()).count(),
                total: out.len(),
                reason: put.last_error.unwrap_or_default(),
            });
        }
        if outcome.rejected < rejects.len() {
            return Err(AggregateError::Rejects {
                table: self.rejects.table().to_owned(),
                missing: rejects.len() - outcome.rejected,
                reason: stored.last_error.unwrap_or_default(),
            });
        }
        Ok((window, outcome))
    }
}
