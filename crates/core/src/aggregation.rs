//! `Aggregator`: the batch logic that replaces the workshop's Kinesis Data
//! Analytics application, shared by the Lambda function and the daemon:
//! load the unicorns a batch names from the [`MinuteStore`], fold the
//! readings into the [`MinuteWindow`], put the minutes that are due on
//! `wildrydes-aggregated`, keep what cannot be folded as rejects, and
//! (in [`Aggregator::save`]) write back the minutes that changed.
//!
//! A minute is emitted again whenever a reading is folded into it after it
//! went out, so the last aggregate of every minute is complete: the table
//! converges to the exact figures of every reading within the horizon,
//! whatever the order of arrival, the batches, the shards or the crashes.
//!
//! Order of durability, which is what makes replays safe: the aggregates a
//! batch makes due are on the output stream before the minutes are marked
//! emitted; the minutes are stored before the caller moves its checkpoint
//! (the daemon every checkpoint interval, Lambda at every invocation). A
//! crash anywhere replays records whose readings the stored minutes either
//! hold (duplicates, dropped) or do not (folded again): either way each
//! reading counts once. A failed batch leaves the window consistent
//! (readings folded, their minutes not marked emitted), so the caller
//! retries it as it is.

use std::collections::BTreeSet;

use tokio::time::Instant;

use crate::aggregate::Aggregate;
use crate::input::{ShardSource, SourceRecord};
use crate::minute_store::{MinuteStore, MinuteStoreError};
use crate::name::UnicornName;
use crate::names::PipelineName;
use crate::reading::Reading;
use crate::rejects::{Reject, RejectStore};
use crate::stream_writer::{OutRecord, StreamWriter};
use crate::window::{DueMinute, MinuteWindow, Push};

/// The name under which this pipeline stores its rejects.
const PIPELINE: PipelineName = PipelineName::Aggregate;

/// What one batch (or flush) did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AggregateOutcome {
    /// Records in the batch.
    pub records: usize,
    /// Unicorns whose minutes were loaded from the store.
    pub loaded: usize,
    /// Readings folded into a minute.
    pub accepted: usize,
    /// Of those, readings folded into a minute already emitted (which goes
    /// out again, complete).
    pub corrected: usize,
    /// Readings already folded (at-least-once delivery).
    pub duplicates: usize,
    /// Readings older than their unicorn's newest by more than the horizon,
    /// kept as rejects.
    pub beyond_horizon: usize,
    /// Records kept as rejects (those beyond the horizon included).
    pub rejected: usize,
    /// Aggregates put on the output stream.
    pub emitted: Vec<Aggregate>,
    /// Minutes not emitted as they stand, after the batch.
    pub open_minutes: usize,
    /// Calls sent again.
    pub retries: u32,
}

/// What a save did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SaveOutcome {
    /// Minutes written.
    pub stored: usize,
    /// Calls sent again.
    pub retries: u32,
}

/// Why a batch or a save must be retried.
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
    /// The minute store could not be read or written.
    #[error(transparent)]
    Store(#[from] MinuteStoreError),
    /// Another consumer stored newer minutes of these unicorns: they were
    /// forgotten, and the records since the last checkpoint must be read
    /// again.
    #[error(
        "unicorns {names:?} were written by another consumer since they were loaded; reading their records again"
    )]
    Conflict {
        /// The unicorns.
        names: Vec<UnicornName>,
    },
}

/// Folds readings into minutes, emits them and keeps them.
#[derive(Debug, Clone)]
pub struct Aggregator {
    output: StreamWriter,
    rejects: RejectStore,
    store: MinuteStore,
}

impl Aggregator {
    /// An aggregator putting aggregates with `output`, rejects to `rejects`,
    /// and keeping its minutes in `store`.
    pub fn new(output: StreamWriter, rejects: RejectStore, store: MinuteStore) -> Self {
        Self {
            output,
            rejects,
            store,
        }
    }

    /// The minute store.
    pub fn store(&self) -> &MinuteStore {
        &self.store
    }

    /// Folds `records` of `source` into `window` at wall time `now_ms`
    /// (loading the unicorns the window does not know yet), emits the
    /// minutes that are due and stores the rejects, all before `deadline`.
    /// Does not write the minutes back: [`Aggregator::save`] does.
    pub async fn run(
        &self,
        window: &mut MinuteWindow,
        source: &ShardSource,
        records: &[SourceRecord],
        now_ms: i64,
        deadline: Instant,
    ) -> Result<AggregateOutcome, AggregateError> {
        let mut outcome = AggregateOutcome {
            records: records.len(),
            ..AggregateOutcome::default()
        };
        let mut rejects = Vec::new();
        let mut readings = Vec::with_capacity(records.len());
        for record in records {
            match Reading::from_json(&record.data) {
                Ok(r) => readings.push((r, record)),
                Err(e) => rejects.push(Reject::new(PIPELINE, source, record, e.to_string())),
            }
        }
        let unknown: BTreeSet<&UnicornName> = readings
            .iter()
            .map(|(r, _)| &r.name)
            .filter(|n| !window.knows(n))
            .collect();
        if !unknown.is_empty() {
            let unknown: Vec<UnicornName> = unknown.into_iter().cloned().collect();
            for (name, minutes) in self.store.load(&unknown, deadline).await? {
                window.restore(name, minutes);
            }
            outcome.loaded = unknown.len();
        }
        for (reading, record) in &readings {
            match window.push(reading, now_ms) {
                Push::Accepted => outcome.accepted += 1,
                Push::Corrected => {
                    outcome.accepted += 1;
                    outcome.corrected += 1;
                }
                Push::Duplicate => outcome.duplicates += 1,
                Push::BeyondHorizon { newest } => {
                    outcome.beyond_horizon += 1;
                    let reason = format!(
                        "beyond the horizon: reading of {} at {} is more than {} older than its newest reading ({}); minute {} was left as it is",
                        reading.name,
                        reading.status_time,
                        humanize(window.rules().horizon),
                        newest,
                        reading.status_time.minute()
                    );
                    rejects.push(Reject::new(PIPELINE, source, record, reason));
                }
            }
        }
        let due = window.due(now_ms);
        self.emit(window, source, due, rejects, &mut outcome, deadline)
            .await?;
        Ok(outcome)
    }

    /// Emits what is due at wall time `now_ms` without new records (the
    /// idle rule), or with `all` every minute not emitted as it stands
    /// (a shard or a fleet fallen silent).
    pub async fn flush(
        &self,
        window: &mut MinuteWindow,
        source: &ShardSource,
        all: bool,
        now_ms: i64,
        deadline: Instant,
    ) -> Result<AggregateOutcome, AggregateError> {
        let due = if all {
            window.due_all()
        } else {
            window.due(now_ms)
        };
        let mut outcome = AggregateOutcome::default();
        self.emit(window, source, due, Vec::new(), &mut outcome, deadline)
            .await?;
        Ok(outcome)
    }

    /// Loads `names` into `window` (replacing what it held of them): the
    /// scheduled flush, which finds pending unicorns in the store.
    pub async fn load(
        &self,
        window: &mut MinuteWindow,
        names: &[UnicornName],
        deadline: Instant,
    ) -> Result<(), AggregateError> {
        for (name, minutes) in self.store.load(names, deadline).await? {
            window.restore(name, minutes);
        }
        Ok(())
    }

    /// Loads into `window` the unicorns that have minutes not emitted as
    /// they stand in the store, that the window does not hold yet, and that
    /// `mine` says this consumer reads: minutes left pending by a consumer
    /// that died, or by a parent shard, whose unicorns may never send
    /// again. Once loaded, the idle rule emits them. Returns how many
    /// unicorns were adopted.
    pub async fn adopt_pending(
        &self,
        window: &mut MinuteWindow,
        mine: impl Fn(&UnicornName) -> bool,
        deadline: Instant,
    ) -> Result<usize, AggregateError> {
        let names: Vec<UnicornName> = self
            .store
            .pending(i64::MAX, deadline)
            .await?
            .into_iter()
            .filter(|n| !window.knows(n) && mine(n))
            .collect();
        self.load(window, &names, deadline).await?;
        Ok(names.len())
    }

    /// Writes the minutes that changed back to the store at wall time
    /// `now_ms`. On a conflict the unicorns concerned are forgotten and the
    /// caller must read its records again from its last checkpoint.
    pub async fn save(
        &self,
        window: &mut MinuteWindow,
        now_ms: i64,
        deadline: Instant,
    ) -> Result<SaveOutcome, AggregateError> {
        let dirty = window.dirty();
        if dirty.is_empty() {
            return Ok(SaveOutcome::default());
        }
        let saved = self.store.save(dirty, now_ms, deadline).await;
        window.stored(&saved.stored);
        for name in &saved.conflicts {
            window.forget(name);
        }
        if let Some(e) = saved.error {
            return Err(e.into());
        }
        if !saved.conflicts.is_empty() {
            return Err(AggregateError::Conflict {
                names: saved.conflicts,
            });
        }
        Ok(SaveOutcome {
            stored: saved.stored.len(),
            retries: saved.retries,
        })
    }

    /// Puts `due` on the output stream and `rejects` (plus the due minutes
    /// whose figures are no aggregate) in the rejects table, then marks
    /// the minutes emitted.
    async fn emit(
        &self,
        window: &mut MinuteWindow,
        source: &ShardSource,
        due: Vec<DueMinute>,
        mut rejects: Vec<Reject>,
        outcome: &mut AggregateOutcome,
        deadline: Instant,
    ) -> Result<(), AggregateError> {
        let mut out = Vec::with_capacity(due.len());
        for minute in &due {
            match &minute.aggregate {
                Ok(aggregate) => {
                    out.push(OutRecord {
                        partition_key: aggregate.name.to_string(),
                        data: aggregate.to_json().into_bytes(),
                    });
                    outcome.emitted.push(aggregate.clone());
                }
                Err(e) => {
                    let record = SourceRecord {
                        sub_sequence_number: None,
                        sequence_number: format!("minute-{}-{}", e.minute.epoch_millis(), e.name),
                        partition_key: e.name.to_string(),
                        data: Vec::new(),
                    };
                    rejects.push(Reject::new(PIPELINE, source, &record, e.to_string()));
                }
            }
        }
        let (put, stored) = tokio::join!(
            self.output.put_all(&out, deadline),
            self.rejects.put_all(&rejects, deadline)
        );
        outcome.retries += put.retries + stored.retries;
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
        window.emitted(due.iter().map(|d| (&d.name, d.minute_ms)));
        outcome.open_minutes = window.open_minutes();
        Ok(())
    }
}

/// A horizon as an operator wrote it (`1h`, `90m`, `45s`).
fn humanize(d: std::time::Duration) -> String {
    let s = d.as_secs();
    if s.is_multiple_of(3600) {
        format!("{}h", s / 3600)
    } else if s.is_multiple_of(60) {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}
