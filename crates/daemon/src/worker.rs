//! `Worker`: one daemon process's share of a stream. It keeps a lease per
//! shard in the lease table, renews the ones it holds, takes expired ones,
//! balances with the other workers, and runs a `ShardConsumer` per lease.
//!
//! The protocol is the Kinesis Client Library's:
//! - a lease is expired when its `leaseCounter` has not changed for the
//!   failover time, judged by this worker's own clock (no clock is compared
//!   between hosts);
//! - a worker takes expired or free leases up to its fair share,
//!   ceil(leases / live workers); when none is expired or free it steals
//!   one: by load ([`crate::balance`]: the loads each owner publishes in
//!   the lease, `throughputKBps`), or by count from the worker holding
//!   most (with `Balance::Count`, or while the stream is idle);
//! - a child shard's lease is created only once every parent checkpointed
//!   SHARD_END (or is gone from the stream and the table), and starts at
//!   TRIM_HORIZON.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_kinesis::error::DisplayErrorContext;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use wildrydes_core::input::ShardSource;

use crate::balance::{Balance, Owned};
use crate::consumer::{ConsumerConfig, Counter, Ended, ShardConsumer};
use crate::lease::{Checkpoint, Lease, LeaseTable};
use crate::metrics::Metrics;
use crate::pipeline::Pipeline;
use crate::reader::{ReadMode, ensure_consumer};

/// How this worker's consumers read the stream.
#[derive(Debug)]
struct Shards {
    stream_arn: String,
    mode: ReadMode,
}

/// How a worker behaves.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// This worker's id in the lease table (unique per process).
    pub worker_id: String,
    /// The stream consumed.
    pub stream: String,
    /// Failover time: a lease not renewed for this long is taken over.
    pub lease_duration: Duration,
    /// Where a new root shard starts.
    pub initial_position: Checkpoint,
    /// How long a stop may take: consumers finish their batch and
    /// checkpoint within it, then leases are released.
    pub shutdown_timeout: Duration,
    /// How each shard is read.
    pub consumer: ConsumerConfig,
    /// Read through this enhanced fan-out consumer (registered if missing,
    /// reused if there) instead of polling.
    pub enhanced_fan_out: Option<String>,
    /// What workers balance: leases or load.
    pub balance: Balance,
}

/// Longest wait for a newly registered fan-out consumer to become ACTIVE
/// (AWS takes seconds).
const CONSUMER_ACTIVE_TIMEOUT: Duration = Duration::from_secs(120);

/// A lease this worker holds, with its consumer.
#[derive(Debug)]
struct Held {
    counter: Counter,
    stop: CancellationToken,
    task: JoinHandle<Ended>,
    load: Load,
}

/// A held shard's load, measured from the bytes its consumer read.
#[derive(Debug)]
struct Load {
    /// The consumer's byte count at the last measurement, and when.
    bytes: f64,
    at: Instant,
    /// KB/s, smoothed over measurements; at first the last owner's
    /// published figure, `None` if it had none.
    kbps: Option<f64>,
}

/// A shard's load is averaged over about this many lease durations (an
/// exponential average in time): long enough that the reads' pacing does
/// not show, short enough to follow a change of traffic.
const LOAD_WINDOW: u32 = 3;

/// Rounds in a row the same lease must be the one to take before a worker
/// takes it: a measurement's blip moves nothing.
const STEAL_AFTER_ROUNDS: u32 = 3;

/// Lease durations a worker waits after taking a lease for load, so that
/// the loads published since reflect the move.
const SETTLE_LEASES: u32 = 3;

/// A worker's memory of balancing by load, between rounds.
#[derive(Debug, Default)]
struct Balancing {
    /// When it last took a lease for load.
    last_steal: Option<Instant>,
    /// The lease it would take, and for how many rounds in a row.
    proposed: Option<(String, u32)>,
}

/// One worker of one pipeline.
#[derive(Debug)]
pub struct Worker {
    kinesis: aws_sdk_kinesis::Client,
    leases: LeaseTable,
    pipeline: Arc<Pipeline>,
    metrics: Arc<Metrics>,
    config: WorkerConfig,
}

impl Worker {
    /// A worker over these clients.
    pub fn new(
        kinesis: aws_sdk_kinesis::Client,
        leases: LeaseTable,
        pipeline: Arc<Pipeline>,
        metrics: Arc<Metrics>,
        config: WorkerConfig,
    ) -> Self {
        Self {
            kinesis,
            leases,
            pipeline,
            metrics,
            config,
        }
    }

    /// Runs until `shutdown` resolves, then lets the consumers checkpoint,
    /// releases the leases and returns.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) -> anyhow::Result<()> {
        let consumer = &self.config.consumer;
        anyhow::ensure!(
            consumer.stuck_after > consumer.checkpoint_interval,
            "--stuck-after ({}) is not longer than --checkpoint-interval ({}): every busy shard would look stuck between two checkpoints; raise --stuck-after",
            humantime::format_duration(consumer.stuck_after),
            humantime::format_duration(consumer.checkpoint_interval)
        );
        self.leases.ensure().await?;
        let summary = self
            .kinesis
            .describe_stream_summary()
            .stream_name(&self.config.stream)
            .send()
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot describe stream {}: {}",
                    self.config.stream,
                    DisplayErrorContext(&e)
                )
            })?;
        let stream_arn = summary
            .stream_description_summary()
            .map(|s| s.stream_arn().to_owned())
            .unwrap_or_default();
        let mode = match &self.config.enhanced_fan_out {
            Some(name) => ReadMode::FanOut(
                ensure_consumer(&self.kinesis, &stream_arn, name, CONSUMER_ACTIVE_TIMEOUT)
                    .await
                    .map_err(anyhow::Error::msg)?,
            ),
            None => ReadMode::Polling,
        };
        let shards = Shards { stream_arn, mode };
        let mut held: HashMap<String, Held> = HashMap::new();
        // Per lease: the counter last seen and when this worker first saw it.
        let mut seen: HashMap<String, (i64, Instant)> = HashMap::new();
        let mut balancing = Balancing::default();
        let tick = self.config.lease_duration / 3;
        let mut shutdown = std::pin::pin!(shutdown);
        tracing::info!(worker = %self.config.worker_id, stream = %self.config.stream, pipeline = %self.pipeline.name(), "worker started");
        loop {
            if let Err(e) = self.sync_shards().await {
                tracing::warn!(error = %e, "cannot sync shards with leases");
            }
            self.renew(&mut held).await;
            match self.leases.list().await {
                Ok(leases) => {
                    self.balance(&leases, &mut held, &mut seen, &shards, &mut balancing)
                        .await;
                }
                Err(e) => tracing::warn!(error = %e, "cannot list leases"),
            }
            #[allow(clippy::cast_precision_loss)]
            self.metrics.set(
                "wildrydes_leases_held",
                self.pipeline.name().as_str(),
                "",
                held.len() as f64,
            );
            tokio::select! {
                () = &mut shutdown => break,
                () = tokio::time::sleep(tick) => {}
            }
        }
        self.stop(held).await;
        Ok(())
    }

    /// Creates the leases of shards that have none and may start now.
    async fn sync_shards(&self) -> anyhow::Result<()> {
        let mut shards = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let request = match &token {
                Some(t) => self.kinesis.list_shards().next_token(t),
                None => self.kinesis.list_shards().stream_name(&self.config.stream),
            };
            let page = request
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("ListShards: {}", DisplayErrorContext(&e)))?;
            shards.extend(page.shards().iter().cloned());
            match page.next_token {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        let leases: HashMap<String, Lease> = self
            .leases
            .list()
            .await?
            .into_iter()
            .map(|l| (l.shard_id.clone(), l))
            .collect();
        let listed: HashSet<&str> = shards.iter().map(|s| s.shard_id()).collect();
        for shard in &shards {
            if leases.contains_key(shard.shard_id()) {
                continue;
            }
            let parents: Vec<String> = [shard.parent_shard_id(), shard.adjacent_parent_shard_id()]
                .into_iter()
                .flatten()
                .map(str::to_owned)
                .collect();
            let parents_done = parents.iter().all(|p| match leases.get(p) {
                Some(lease) => lease.checkpoint == Checkpoint::ShardEnd,
                None => !listed.contains(p.as_str()),
            });
            if !parents_done {
                continue;
            }
            let start = if parents.iter().any(|p| leases.contains_key(p)) {
                Checkpoint::TrimHorizon
            } else {
                self.config.initial_position.clone()
            };
            if self
                .leases
                .create(shard.shard_id(), &parents, &start)
                .await?
            {
                tracing::info!(shard = shard.shard_id(), ?parents, "lease created");
            }
        }
        Ok(())
    }

    /// Renews every held lease; drops the ones lost or finished.
    async fn renew(&self, held: &mut HashMap<String, Held>) {
        let finished: Vec<String> = held
            .iter()
            .filter(|(_, h)| h.task.is_finished())
            .map(|(k, _)| k.clone())
            .collect();
        for shard in finished {
            if let Some(h) = held.remove(&shard) {
                let ended = h.task.await.unwrap_or(Ended::Lost);
                tracing::info!(shard, ?ended, "consumer ended");
                // Its consumer did so, unless it panicked.
                self.metrics
                    .forget_shard(self.pipeline.name().as_str(), &shard);
                if ended == Ended::ShardEnd {
                    let counter = *h.counter.lock().await;
                    let _ = self
                        .leases
                        .release(&shard, &self.config.worker_id, counter)
                        .await;
                }
            }
        }
        for (shard, h) in held.iter_mut() {
            let kbps = self.measure(shard, &mut h.load);
            let mut counter = h.counter.lock().await;
            match self
                .leases
                .renew(shard, &self.config.worker_id, *counter, kbps)
                .await
            {
                Ok(next) => *counter = next,
                Err(crate::lease::LeaseError::Lost { .. }) => {
                    tracing::warn!(shard, "lease lost to another worker; stopping its consumer");
                    h.stop.cancel();
                    // Not ours to judge any more, even while the consumer
                    // finishes its batch.
                    self.metrics
                        .forget_shard(self.pipeline.name().as_str(), shard);
                }
                Err(e) => tracing::warn!(shard, error = %e, "cannot renew lease; will try again"),
            }
        }
    }

    /// The bytes this worker's consumers have read from `shard` so far.
    fn bytes_read(&self, shard: &str) -> f64 {
        self.metrics.get(
            "wildrydes_bytes_read_total",
            self.pipeline.name().as_str(),
            shard,
        )
    }

    /// The load of a held shard since the last measurement, smoothed.
    fn measure(&self, shard: &str, load: &mut Load) -> Option<f64> {
        let bytes = self.bytes_read(shard);
        let elapsed = load.at.elapsed().as_secs_f64();
        if elapsed <= 0.0 {
            return load.kbps;
        }
        let kbps = (bytes - load.bytes).max(0.0) / 1024.0 / elapsed;
        let window = (self.config.lease_duration * LOAD_WINDOW).as_secs_f64();
        let weight = 1.0 - (-elapsed / window.max(f64::EPSILON)).exp();
        load.kbps = Some(match load.kbps {
            Some(before) => before + weight * (kbps - before),
            None => kbps,
        });
        load.bytes = bytes;
        load.at = Instant::now();
        load.kbps
    }

    /// Takes expired or free leases up to the fair share, stealing one when
    /// none is free and this worker carries less than its share.
    async fn balance(
        &self,
        leases: &[Lease],
        held: &mut HashMap<String, Held>,
        seen: &mut HashMap<String, (i64, Instant)>,
        shards: &Shards,
        balancing: &mut Balancing,
    ) {
        let now = Instant::now();
        let me = self.config.worker_id.as_str();
        let mut expired = Vec::new();
        let mut live_owners: HashMap<&str, usize> = HashMap::new();
        let mut owned: Vec<Owned<'_>> = Vec::new();
        let mut active: usize = 0;
        for lease in leases {
            let entry = seen
                .entry(lease.shard_id.clone())
                .or_insert((lease.counter, now));
            if entry.0 != lease.counter {
                *entry = (lease.counter, now);
            }
            if lease.checkpoint == Checkpoint::ShardEnd {
                continue;
            }
            active += 1;
            let stale = now.duration_since(entry.1) >= self.config.lease_duration;
            let published = lease.throughput_kbps.unwrap_or(0.0);
            match lease.owner.as_deref() {
                Some(owner) if owner == me => {
                    if let Some(h) = held.get(&lease.shard_id) {
                        owned.push(Owned {
                            shard: &lease.shard_id,
                            owner,
                            kbps: h.load.kbps.unwrap_or(published),
                        });
                    }
                }
                Some(owner) if !stale => {
                    *live_owners.entry(owner).or_default() += 1;
                    owned.push(Owned {
                        shard: &lease.shard_id,
                        owner,
                        kbps: published,
                    });
                }
                _ => expired.push(lease.clone()),
            }
        }
        let workers = live_owners.len() + 1;
        let target = active.div_ceil(workers);
        let mut mine = held.len();
        // Our own leases that we do not run (after a restart with the same id) count as free.
        let orphaned: Vec<Lease> = leases
            .iter()
            .filter(|l| {
                l.owner.as_deref() == Some(me)
                    && !held.contains_key(&l.shard_id)
                    && l.checkpoint != Checkpoint::ShardEnd
            })
            .cloned()
            .collect();
        for lease in orphaned.iter().chain(expired.iter()) {
            if mine >= target.max(1) {
                break;
            }
            if held.contains_key(&lease.shard_id) {
                continue;
            }
            if self.take(lease, held, shards).await {
                mine += 1;
            }
        }
        if !expired.is_empty() {
            return;
        }
        if self.config.balance == Balance::Load && crate::balance::loaded(&owned) {
            // A closed shard's lease (a parent of another) ends soon: never
            // moved for load.
            let parents: HashSet<&str> = leases
                .iter()
                .flat_map(|l| l.parents.iter().map(String::as_str))
                .collect();
            owned.retain(|o| o.owner == me || !parents.contains(o.shard));
            let proposal = crate::balance::lease_to_steal(me, &owned);
            let rounds = match (&proposal, &balancing.proposed) {
                (Some(p), Some((shard, n))) if p.shard == shard => n + 1,
                (Some(_), _) => 1,
                (None, _) => 0,
            };
            balancing.proposed = proposal.map(|p| (p.shard.to_owned(), rounds));
            let settled = balancing
                .last_steal
                .is_none_or(|at| at.elapsed() >= self.config.lease_duration * SETTLE_LEASES);
            if settled
                && rounds >= STEAL_AFTER_ROUNDS
                && let Some(steal) = proposal
                && let Some(lease) = leases.iter().find(|l| l.shard_id == steal.shard)
            {
                tracing::info!(shard = %lease.shard_id, from = steal.owner, kbps = steal.kbps, "stealing a lease to balance load");
                if self.take(lease, held, shards).await {
                    balancing.last_steal = Some(Instant::now());
                    balancing.proposed = None;
                }
            }
            return;
        }
        if mine < target
            && let Some((victim, count)) = live_owners.iter().max_by_key(|(_, c)| **c)
            && *count > target
            && let Some(lease) = leases.iter().find(|l| {
                l.owner.as_deref() == Some(*victim) && l.checkpoint != Checkpoint::ShardEnd
            })
        {
            tracing::info!(shard = %lease.shard_id, from = victim, "stealing a lease to balance");
            self.take(lease, held, shards).await;
        }
    }

    /// Takes one lease and starts its consumer; whether it worked.
    async fn take(&self, lease: &Lease, held: &mut HashMap<String, Held>, shards: &Shards) -> bool {
        let taken = match self.leases.take(lease, &self.config.worker_id).await {
            Ok(taken) => taken,
            Err(e) => {
                tracing::debug!(shard = %lease.shard_id, error = %e, "could not take lease");
                return false;
            }
        };
        tracing::info!(shard = %taken.shard_id, checkpoint = taken.checkpoint.as_str(), from = ?lease.owner, "lease taken");
        let counter: Counter = Arc::new(tokio::sync::Mutex::new(taken.counter));
        let stop = CancellationToken::new();
        let consumer = ShardConsumer {
            kinesis: self.kinesis.clone(),
            stream: self.config.stream.clone(),
            source: ShardSource {
                stream_arn: shards.stream_arn.clone(),
                shard_id: taken.shard_id.clone(),
            },
            leases: self.leases.clone(),
            worker_id: self.config.worker_id.clone(),
            pipeline: self.pipeline.clone(),
            metrics: self.metrics.clone(),
            config: self.config.consumer.clone(),
            mode: shards.mode.clone(),
        };
        let state = self.pipeline.resume();
        let task = tokio::spawn(consumer.run(
            counter.clone(),
            taken.checkpoint.clone(),
            state,
            stop.clone(),
        ));
        let bytes = self.bytes_read(&taken.shard_id);
        held.insert(
            taken.shard_id,
            Held {
                counter,
                stop,
                task,
                // Its last owner's measure, until this worker's own.
                load: Load {
                    bytes,
                    at: Instant::now(),
                    kbps: taken.throughput_kbps,
                },
            },
        );
        true
    }

    /// Asks every consumer to stop, waits for them (bounded), then releases
    /// the leases so other workers take over at once.
    async fn stop(&self, held: HashMap<String, Held>) {
        for h in held.values() {
            h.stop.cancel();
        }
        let deadline = Instant::now() + self.config.shutdown_timeout;
        for (shard, h) in held {
            let ended = tokio::time::timeout_at(deadline, h.task).await;
            if ended.is_err() {
                tracing::warn!(
                    shard,
                    "consumer did not stop in time; its lease will expire instead"
                );
                self.metrics
                    .forget_shard(self.pipeline.name().as_str(), &shard);
                continue;
            }
            let counter = *h.counter.lock().await;
            match self
                .leases
                .release(&shard, &self.config.worker_id, counter)
                .await
            {
                Ok(()) => tracing::info!(shard, "lease released"),
                Err(e) => tracing::warn!(shard, error = %e, "cannot release lease"),
            }
        }
        tracing::info!(worker = %self.config.worker_id, "worker stopped");
    }
}
