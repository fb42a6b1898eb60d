//! `ShardConsumer`: reads one leased shard from its checkpoint to its end,
//! hands each batch to the pipeline, and moves the checkpoint only past
//! records the pipeline reports durably handled.
//!
//! It respects the service: when polling, at least 200 ms between
//! GetRecords calls on the shard (5 per second); backoff on throttling and
//! errors, and a fresh iterator or subscription from the checkpoint after
//! one ([`crate::reader`]). A lost lease stops it without a checkpoint;
//! a stop request lets the batch in hand finish and be checkpointed first.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::error::DisplayErrorContext;
use tokio::sync::Mutex;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use wildrydes_core::input::{ShardSource, SourceRecord};
use wildrydes_core::retry::RetryPolicy;

use crate::lease::{Checkpoint, LeaseError, LeaseTable};
use crate::metrics::Metrics;
use crate::pipeline::{Pipeline, ShardState};
use crate::reader::{Cursor, ReadError, ReadMode, ShardReader};

/// How a consumer reads.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// Shortest time between two GetRecords calls on one shard: the service
    /// allows 5 per second per shard, shared by every consumer.
    pub min_poll_interval: Duration,
    /// Wait after an empty read before reading again.
    pub idle_poll_interval: Duration,
    /// After this long without records, the pipeline closes what is open
    /// (the aggregator emits its open minutes).
    pub idle_flush_after: Duration,
    /// Longest time between checkpoints while records are handled: each
    /// checkpoint first saves the pipeline's state (the aggregator's changed
    /// minutes), so a longer interval writes less and replays more after a
    /// crash. Zero checkpoints after every batch.
    pub checkpoint_interval: Duration,
    /// Most records per GetRecords call.
    pub max_records: i32,
    /// Time a batch may take to be handled, retries included.
    pub batch_timeout: Duration,
    /// Backoff after a failed read or a batch not fully handled.
    pub retry: RetryPolicy,
    /// Records waiting longer than this without progress (the checkpoint
    /// moving, or the shard read to its tip) make the consumer stuck, and
    /// `/healthz` unhealthy ([`crate::metrics::Health`]). Longer than
    /// `checkpoint_interval`, which progress waits for.
    pub stuck_after: Duration,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        Self {
            min_poll_interval: Duration::from_millis(200),
            idle_poll_interval: Duration::from_secs(1),
            idle_flush_after: Duration::from_secs(30),
            checkpoint_interval: Duration::ZERO,
            max_records: 10_000,
            batch_timeout: Duration::from_secs(30),
            retry: RetryPolicy {
                max_attempts: u32::MAX,
                base_delay: Duration::from_millis(100),
                max_delay: Duration::from_secs(10),
            },
            stuck_after: Duration::from_secs(60),
        }
    }
}

/// Checkpoint calls made before a table that does not answer fails the
/// commit (with the backoff of [`ConsumerConfig::retry`] between them).
const CHECKPOINT_ATTEMPTS: u32 = 6;

/// Why a consumer stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The shard is closed and fully processed; SHARD_END is checkpointed.
    ShardEnd,
    /// Another worker took the lease: nothing more was checkpointed.
    Lost,
    /// Asked to stop; everything handled is checkpointed.
    Stopped,
}

/// A held lease's fencing counter, shared by the consumer (checkpoints) and
/// the worker (renewals), which take turns through the lock.
pub type Counter = Arc<Mutex<i64>>;

/// Reads one shard.
#[derive(Debug, Clone)]
pub struct ShardConsumer {
    /// Kinesis.
    pub kinesis: Client,
    /// The stream's name.
    pub stream: String,
    /// Where the shard comes from, for rejects.
    pub source: ShardSource,
    /// The lease table.
    pub leases: LeaseTable,
    /// This worker's id.
    pub worker_id: String,
    /// What to do with records.
    pub pipeline: Arc<Pipeline>,
    /// Where to count.
    pub metrics: Arc<Metrics>,
    /// How to read.
    pub config: ConsumerConfig,
    /// Polling or enhanced fan-out.
    pub mode: ReadMode,
}

impl ShardConsumer {
    /// Consumes from `checkpoint` with `state` until the shard ends, the
    /// lease is lost or `stop` is cancelled.
    ///
    /// The checkpoint moves only after the pipeline made what it handled
    /// durable ([`Pipeline::save`]), at most every `checkpoint_interval`; a
    /// batch that fails, or a save that fails, reads the shard again from
    /// the last checkpoint (replays are duplicates the pipelines drop).
    ///
    /// While it runs, the shard's progress is in [`Metrics::health`]; when
    /// it ends, the shard's gauges and health go ([`Metrics::forget_shard`]).
    pub async fn run(
        self,
        counter: Counter,
        committed: Checkpoint,
        state: ShardState,
        stop: CancellationToken,
    ) -> Ended {
        let pipeline = self.pipeline.name().as_str();
        let shard = self.source.shard_id.as_str();
        self.metrics
            .health()
            .watch(pipeline, shard, self.config.stuck_after);
        let ended = self.consume(counter, committed, state, stop).await;
        self.metrics.forget_shard(pipeline, shard);
        ended
    }

    /// [`Self::run`]'s loop.
    async fn consume(
        &self,
        counter: Counter,
        mut committed: Checkpoint,
        mut state: ShardState,
        stop: CancellationToken,
    ) -> Ended {
        let shard = self.source.shard_id.clone();
        let pipeline = self.pipeline.name().as_str();
        let health = self.metrics.health();
        let reader = ShardReader {
            kinesis: self.kinesis.clone(),
            stream: self.stream.clone(),
            shard_id: shard.clone(),
            mode: self.mode.clone(),
        };
        let fan_out = matches!(self.mode, ReadMode::FanOut(_));
        let mut cursor: Option<Cursor> = None;
        let mut last_call = Instant::now() - self.config.min_poll_interval;
        let mut failures = 0u32;
        let mut idle_since = Instant::now();
        // Handled, but not yet checkpointed.
        let mut uncommitted: Option<Checkpoint> = None;
        let mut committed_at = Instant::now();
        let mut hash_range = None;
        let mut adopted_at: Option<Instant> = None;
        // An iterator from a checkpoint starts at its record: the user
        // records up to the checkpoint's are handled already.
        let mut skip: Option<(String, u64)> = None;
        loop {
            let keeps_state = matches!(*self.pipeline, Pipeline::Aggregate(..));
            if keeps_state
                && adopted_at.is_none_or(|at| at.elapsed() >= self.config.idle_flush_after)
            {
                if hash_range.is_none() {
                    hash_range = self.hash_range().await;
                }
                if let Some(range) = &hash_range {
                    let mine = |name: &wildrydes_core::UnicornName| {
                        range.contains(&wildrydes_core::input::hash_key(name.as_str()))
                    };
                    let deadline = Instant::now() + self.config.batch_timeout;
                    match self
                        .pipeline
                        .adopt_pending(&mut state, mine, deadline)
                        .await
                    {
                        Some(Ok(n)) if n > 0 => {
                            tracing::info!(shard, unicorns = n, "adopted minutes left pending");
                        }
                        Some(Err(error)) => {
                            tracing::warn!(shard, error, "cannot look for minutes left pending");
                        }
                        _ => {}
                    }
                    adopted_at = Some(Instant::now());
                }
            }
            if stop.is_cancelled() {
                if let Some(to) = uncommitted.take() {
                    match self.commit(&counter, &mut state, to, None).await {
                        Err(Commit::Lost) => return Ended::Lost,
                        // Not saved: the next owner reads it again.
                        Err(Commit::Replay) | Ok(()) => {}
                    }
                }
                return Ended::Stopped;
            }
            if failures > 0 {
                let wait = self.config.retry.delay(failures);
                if pause(&stop, wait).await {
                    continue;
                }
            }
            let current = match cursor.take() {
                Some(it) => it,
                None => {
                    // Reading again from the checkpoint: what was handled
                    // since is handled again.
                    uncommitted = None;
                    match reader.open(&committed).await {
                        Ok(Some(it)) => {
                            skip = match &committed {
                                Checkpoint::After(seq, sub) => Some((seq.clone(), *sub)),
                                _ => None,
                            };
                            it
                        }
                        Ok(None) => return Ended::ShardEnd,
                        Err(e) => {
                            tracing::warn!(shard, error = %e, "cannot read the shard from its checkpoint");
                            failures += 1;
                            continue;
                        }
                    }
                }
            };
            // A subscription is pushed to: only polling is paced.
            let since = last_call.elapsed();
            if !fan_out
                && since < self.config.min_poll_interval
                && pause(&stop, self.config.min_poll_interval - since).await
            {
                cursor = Some(current);
                continue;
            }
            last_call = Instant::now();
            let read = tokio::select! {
                read = reader.read(current, self.config.max_records, self.config.idle_poll_interval) => read,
                // A subscription waits for records: a stop does not.
                () = stop.cancelled() => continue,
            };
            let page = match read {
                Ok(page) => page,
                Err(ReadError::Expired) => {
                    tracing::info!(
                        shard,
                        "shard iterator expired; resuming from the checkpoint"
                    );
                    continue;
                }
                Err(ReadError::Failed(error)) => {
                    tracing::warn!(shard, error, "read failed; resuming from the checkpoint");
                    failures += 1;
                    continue;
                }
            };
            failures = 0;
            // The tip is ahead: records wait even if this page had none.
            let tip_ahead = page.millis_behind.is_some_and(|ms| ms > 0);
            if let Some(behind) = page.millis_behind {
                #[allow(clippy::cast_precision_loss)]
                self.metrics.set(
                    "wildrydes_millis_behind_latest",
                    pipeline,
                    &shard,
                    behind as f64,
                );
            }
            let bytes: usize = page.records.iter().map(|r| r.data().as_ref().len()).sum();
            #[allow(clippy::cast_precision_loss)]
            self.metrics
                .add("wildrydes_bytes_read_total", pipeline, &shard, bytes as f64);
            let mut records: Vec<SourceRecord> =
                wildrydes_core::input::user_records(page.records.iter().map(SourceRecord::from));
            if let Some((seq, sub)) = &skip {
                records.retain(|r| r.sequence_number != *seq || r.position().1 > *sub);
                // The checkpoint's record comes first: once a page has
                // records, nothing more can be at or before it.
                if !page.records.is_empty() {
                    skip = None;
                }
            }
            let now = Instant::now();
            if tip_ahead || !records.is_empty() {
                health.waiting(pipeline, &shard, now);
            } else if uncommitted.is_none() {
                // At the tip, everything read is durable: nothing waits.
                health.progressed(pipeline, &shard, now, false);
            }
            let next = page.next;
            // No records on a shard still open: the pipeline emits what fell
            // silent (with `flush_all`, everything: the shard fell silent).
            let idle = records.is_empty() && next.is_some();
            let flush_all = idle && idle_since.elapsed() >= self.config.idle_flush_after;
            let mut flushed = false;
            let mut handled_all = true;
            if idle {
                let deadline = Instant::now() + self.config.batch_timeout;
                let flush = self
                    .pipeline
                    .flush_idle(&mut state, &self.source, flush_all, deadline)
                    .await;
                if let Some(handled) = &flush {
                    self.count(handled, 0);
                    if let Some(error) = &handled.error {
                        tracing::warn!(shard, error, "idle flush failed; will try again");
                    }
                }
                flushed = flush.is_some();
            } else if !records.is_empty() {
                idle_since = Instant::now();
                let started = Instant::now();
                let handled = self
                    .pipeline
                    .handle(
                        &mut state,
                        &self.source,
                        &records,
                        started + self.config.batch_timeout,
                    )
                    .await;
                self.metrics.add(
                    "wildrydes_batch_seconds_sum",
                    pipeline,
                    &shard,
                    started.elapsed().as_secs_f64(),
                );
                self.metrics
                    .add("wildrydes_batch_seconds_count", pipeline, &shard, 1.0);
                self.count(&handled, records.len());
                if handled.done > 0 {
                    let (seq, sub) = records[handled.done - 1].position();
                    uncommitted = Some(Checkpoint::After(seq.to_owned(), sub));
                }
                if handled.done < records.len() {
                    tracing::warn!(
                        shard,
                        done = handled.done,
                        of = records.len(),
                        error = handled.error.as_deref().unwrap_or_default(),
                        "batch not fully handled; retrying from the checkpoint"
                    );
                    handled_all = false;
                }
            }
            if next.is_none() && handled_all {
                // The shard is closed and every record handled: emit every
                // minute still open (its unicorns go on in the child shards,
                // which emit them again, complete, as their readings come),
                // save, and only then let the children start.
                let deadline = Instant::now() + self.config.batch_timeout;
                if let Some(handled) = self
                    .pipeline
                    .flush_idle(&mut state, &self.source, true, deadline)
                    .await
                {
                    self.count(&handled, 0);
                    if let Some(error) = &handled.error {
                        tracing::warn!(
                            shard,
                            error,
                            "cannot emit the open minutes at the shard's end; retrying"
                        );
                        failures += 1;
                        continue;
                    }
                }
                match self
                    .commit(&counter, &mut state, Checkpoint::ShardEnd, None)
                    .await
                {
                    Ok(()) => return Ended::ShardEnd,
                    Err(Commit::Lost) => return Ended::Lost,
                    Err(Commit::Replay) => {
                        failures += 1;
                        continue;
                    }
                }
            }
            // Saved and checkpointed at most every `checkpoint_interval`,
            // and before a failed batch is read again; after a flush, even
            // with no record handled since the last checkpoint.
            let due = committed_at.elapsed() >= self.config.checkpoint_interval || !handled_all;
            let to = uncommitted
                .take_if(|_| due)
                .or_else(|| (flushed && due).then(|| committed.clone()));
            if let Some(to) = to {
                let moved = to != committed;
                let progress = (&mut committed, &mut committed_at);
                match self.commit(&counter, &mut state, to, Some(progress)).await {
                    // Durable progress; what is left of a failed batch, or
                    // ahead of this page, waits from now.
                    Ok(()) if moved => {
                        health.progressed(
                            pipeline,
                            &shard,
                            Instant::now(),
                            tip_ahead || !handled_all,
                        );
                    }
                    Ok(()) => {}
                    Err(Commit::Lost) => return Ended::Lost,
                    Err(Commit::Replay) => {
                        failures += 1;
                        continue;
                    }
                }
            }
            if !handled_all {
                failures += 1;
                continue;
            }
            if flush_all {
                idle_since = Instant::now();
            }
            cursor = next;
            // A subscription waits for the next event itself.
            if idle && !fan_out {
                pause(&stop, self.config.idle_poll_interval).await;
            }
        }
    }

    /// The hash keys of this shard (the partition keys it receives), from
    /// ListShards; `None` if they cannot be read now (tried again later).
    async fn hash_range(&self) -> Option<std::ops::RangeInclusive<u128>> {
        let mut token: Option<String> = None;
        loop {
            let request = match &token {
                Some(t) => self.kinesis.list_shards().next_token(t),
                None => self.kinesis.list_shards().stream_name(&self.stream),
            };
            let page = match request.send().await {
                Ok(page) => page,
                Err(e) => {
                    tracing::warn!(shard = %self.source.shard_id, error = %DisplayErrorContext(&e), "ListShards failed");
                    return None;
                }
            };
            if let Some(range) = page
                .shards()
                .iter()
                .find(|s| s.shard_id() == self.source.shard_id)
                .and_then(|s| s.hash_key_range())
            {
                let start = range.starting_hash_key().parse().ok()?;
                let end = range.ending_hash_key().parse().ok()?;
                return Some(start..=end);
            }
            token = Some(page.next_token?);
        }
    }

    /// Makes what was handled durable (the pipeline's save), then moves the
    /// checkpoint to `to`; on success records it, and when, in `progress`.
    async fn commit(
        &self,
        counter: &Counter,
        state: &mut ShardState,
        to: Checkpoint,
        progress: Option<(&mut Checkpoint, &mut Instant)>,
    ) -> Result<(), Commit> {
        let deadline = Instant::now() + self.config.batch_timeout;
        if let Err(error) = self.pipeline.save(state, deadline).await {
            tracing::warn!(shard = %self.source.shard_id, error, "cannot save the state; reading again from the checkpoint");
            return Err(Commit::Replay);
        }
        if let Err(e) = self.checkpoint(counter, &to).await {
            tracing::warn!(shard = %self.source.shard_id, error = %e, "checkpoint refused: lease lost");
            return Err(Commit::Lost);
        }
        if let Some((committed, at)) = progress {
            *committed = to;
            *at = Instant::now();
        }
        Ok(())
    }

    fn count(&self, handled: &crate::pipeline::Handled, records: usize) {
        let (pipeline, shard) = (self.pipeline.name().as_str(), self.source.shard_id.as_str());
        #[allow(clippy::cast_precision_loss)]
        {
            self.metrics.add(
                "wildrydes_records_in_total",
                pipeline,
                shard,
                records as f64,
            );
            self.metrics.add(
                "wildrydes_records_written_total",
                pipeline,
                shard,
                handled.written as f64,
            );
            self.metrics.add(
                "wildrydes_records_rejected_total",
                pipeline,
                shard,
                handled.rejected as f64,
            );
            self.metrics.add(
                "wildrydes_write_retries_total",
                pipeline,
                shard,
                f64::from(handled.retries),
            );
        }
    }

    /// Moves the checkpoint, retrying a table that does not answer; a lost
    /// lease is final.
    async fn checkpoint(
        &self,
        counter: &Counter,
        checkpoint: &Checkpoint,
    ) -> Result<(), LeaseError> {
        let mut held = counter.lock().await;
        let policy = RetryPolicy {
            max_attempts: CHECKPOINT_ATTEMPTS,
            ..self.config.retry
        };
        let mut attempts = 0;
        loop {
            attempts += 1;
            match self
                .leases
                .checkpoint(&self.source.shard_id, &self.worker_id, *held, checkpoint)
                .await
            {
                Ok(next) => {
                    *held = next;
                    return Ok(());
                }
                Err(e @ LeaseError::Lost { .. }) => return Err(e),
                Err(e) if !policy.may_retry(attempts) => return Err(e),
                Err(e) => {
                    tracing::warn!(shard = %self.source.shard_id, error = %e, "checkpoint failed; retrying");
                    tokio::time::sleep(policy.delay(attempts)).await;
                }
            }
        }
    }
}

/// Why a commit did not happen.
enum Commit {
    /// The state could not be saved: read again from the checkpoint.
    Replay,
    /// The lease is gone: stop without a checkpoint.
    Lost,
}

/// Waits `d` unless `stop` comes first; returns whether it did.
async fn pause(stop: &CancellationToken, d: Duration) -> bool {
    tokio::select! {
        () = stop.cancelled() => true,
        () = tokio::time::sleep(d) => false,
    }
}
