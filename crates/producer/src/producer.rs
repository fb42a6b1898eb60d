//! The producer's loop: simulate each second when it is due, send what the
//! shards can take, retry what failed, stop cleanly when asked.
//!
//! Up to `max_in_flight` PutRecords calls go out at once, each carrying at
//! most one reading per unicorn (see [`crate::batch`]) and no unicorn in two
//! of them: a unicorn's next reading leaves only after the previous one is
//! acknowledged or failed, which is what keeps each unicorn's readings in
//! order on the stream even when entries fail. Simulated second
//! `k` of the run is stamped `start + k s` and becomes due `k / time_scale`
//! real seconds after the start; when sending cannot keep up, generation
//! falls behind real time but the readings themselves do not change.
//!
//! With `--aggregate` an entry is a KPL aggregated record carrying the heads
//! of many unicorns of one shard (still one reading per unicorn in flight).
//! The entry's outcome is each of its readings': written, every reading is
//! acknowledged (ledger lines in sub-sequence order, under the record's
//! shard and sequence number); failed, every reading stays at the front of
//! its unicorn's queue with its own backoff, or is given up on, exactly as
//! a reading in a record of its own. Retried readings are packed afresh
//! with whatever else is ready.

use std::future::Future;
use std::pin::pin;
use std::time::Duration;

use futures::FutureExt as _;
use tokio::time::{Instant, sleep_until};
use wildrydes_core::StatusTime;
use wildrydes_core::retry::classify_code;

use crate::batch::{self, Candidate, UserCandidate};
use crate::ledger::{Ledger, LedgerError};
use crate::pacing::ShardPacer;
use crate::progress::{Progress, Snapshot};
use crate::sender::{CallError, EntryOutcome, PutEntry, RecordSink, Retry};
use crate::settings::Settings;
use crate::shards::{ShardMap, ShardMapError};
use crate::simulation::{Fleet, FleetError};
use crate::summary::{Summary, UnicornTally};

/// Lag behind simulated time worth a warning: past this the operator should
/// know that the requested rate is not being achieved.
const BEHIND_WARNING: Duration = Duration::from_secs(5);
/// Least time between two ListShards calls prompted by records landing on
/// unexpected shards (resharding), so a persistent mismatch cannot flood it.
const SHARD_REFRESH_INTERVAL: Duration = Duration::from_secs(10);
/// Far enough in the future to mean "never" for a deadline.
const FAR_FUTURE: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum ProducerError {
    /// The fleet or scenario is inconsistent.
    #[error(transparent)]
    Fleet(#[from] FleetError),
    /// The ledger file could not be created.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// ListShards failed.
    #[error(transparent)]
    ListShards(#[from] CallError),
    /// The shard list is unusable.
    #[error("stream {stream}: {source}")]
    Shards {
        /// The stream.
        stream: String,
        /// What is wrong with its shards.
        #[source]
        source: ShardMapError,
    },
}

/// Runs the producer described by `settings` against `sink` until its
/// duration is produced or `shutdown` resolves, then flushes what is buffered
/// and returns the summary.
///
/// Errors only if the run cannot start (fleet, ledger, shard list); failures
/// during the run are retried, or counted and described in the summary.
pub async fn produce<S: RecordSink>(
    settings: &Settings,
    sink: &S,
    shutdown: impl Future<Output = ()>,
) -> Result<Summary, ProducerError> {
    let fleet = Fleet::new(&settings.names, settings.seed, &settings.scenario)?;
    let ledger = settings.ledger.as_deref().map(Ledger::create).transpose()?;
    let shards =
        ShardMap::new(sink.list_shards().await?).map_err(|source| ProducerError::Shards {
            stream: settings.stream.clone(),
            source,
        })?;
    let progress = Progress::stdout(settings.output);
    let run = Run::new(settings, sink, fleet, shards, ledger, progress);
    Ok(run.run(shutdown).await)
}

/// Maps simulated seconds to `StatusTime` and to the real instant they are due.
#[derive(Debug, Clone, Copy)]
struct SimClock {
    /// Real instant at which second 0 is due.
    origin: Instant,
    /// `StatusTime` of second 0.
    start: StatusTime,
    /// Simulated seconds per real second.
    scale: f64,
}

impl SimClock {
    /// The real instant at which simulated second `second` is due.
    fn due(&self, second: u64) -> Instant {
        let offset = Duration::try_from_secs_f64(second as f64 / self.scale).unwrap_or(FAR_FUTURE);
        self.origin
            .checked_add(offset.min(FAR_FUTURE))
            .unwrap_or(self.origin)
    }

    /// The `StatusTime` of simulated second `second`.
    fn status_time(&self, second: u64) -> StatusTime {
        let ms = i64::try_from(second)
            .unwrap_or(i64::MAX)
            .saturating_mul(1000);
        self.start.plus_millis(ms)
    }
}

/// One entry planned for a call: the record, and whose heads it carries.
#[derive(Debug)]
struct Planned {
    /// The unicorns whose heads it carries: one, or with `--aggregate` the
    /// aggregate's, in sub-sequence order.
    unicorns: Vec<usize>,
    /// The shard their partition keys map to.
    shard: usize,
    /// Whether the record is a KPL aggregate.
    aggregated: bool,
    /// The record.
    entry: PutEntry,
}

/// What one entry of a call carried, kept to file its outcome: the record
/// has gone to the sink.
#[derive(Debug)]
struct Load {
    /// As [`Planned::unicorns`].
    unicorns: Vec<usize>,
    /// As [`Planned::shard`].
    shard: usize,
    /// As [`Planned::aggregated`].
    aggregated: bool,
}

/// The state of one run.
struct Run<'a, S> {
    /// What to produce and how.
    settings: &'a Settings,
    /// Where records go.
    sink: &'a S,
    /// The simulated unicorns.
    fleet: Fleet,
    /// Partition key of each unicorn: its name.
    keys: Vec<String>,
    /// The stream's open shards, for pacing.
    shards: ShardMap,
    /// The shard each unicorn's key maps to, by index into `shards`.
    shard_of: Vec<usize>,
    /// Per-shard admission control; `None` when pacing is off.
    pacer: Option<ShardPacer>,
    /// Readings generated and not yet acknowledged or given up on.
    outbox: crate::outbox::Outbox,
    /// Where acknowledged readings are recorded, if asked.
    ledger: Option<Ledger>,
    /// The progress display.
    progress: Progress,
    /// Per-unicorn counts for the summary.
    tallies: Vec<UnicornTally>,
    /// Simulated second to `StatusTime` and due instant.
    clock: SimClock,
    /// The next simulated second to generate.
    next_second: u64,
    /// Readings that may be buffered before generation pauses.
    buffer_cap: usize,
    /// Largest delivery lag seen, for the summary.
    max_behind: Duration,
    /// Whether the lag warning was logged (once per run is enough).
    warned_behind: bool,
    /// A record landed on a shard other than the one computed: reshard.
    shards_stale: bool,
    /// When the shard list was last loaded, to rate-limit reloading.
    last_shard_refresh: Instant,
    /// PutRecords calls made, for the summary.
    calls: u64,
    /// Kinesis records acknowledged (with `--aggregate`, fewer than the
    /// readings they carried), for the summary and the progress line.
    records: u64,
    /// Whether a stop was requested, for the summary.
    interrupted: bool,
}

impl<'a, S: RecordSink> Run<'a, S> {
    fn new(
        settings: &'a Settings,
        sink: &'a S,
        fleet: Fleet,
        shards: ShardMap,
        ledger: Option<Ledger>,
        progress: Progress,
    ) -> Self {
        let keys: Vec<String> = settings.names.iter().map(ToString::to_string).collect();
        let shard_of = keys.iter().map(|k| shards.shard_for(k)).collect();
        let now = Instant::now();
        Self {
            settings,
            sink,
            keys,
            pacer: settings
                .pacing
                .map(|limits| ShardPacer::new(limits, shards.len())),
            shards,
            shard_of,
            outbox: crate::outbox::Outbox::new(fleet.len()),
            ledger,
            progress,
            tallies: settings
                .names
                .iter()
                .cloned()
                .map(UnicornTally::new)
                .collect(),
            clock: SimClock {
                origin: now,
                start: settings.start_time,
                scale: settings.time_scale,
            },
            next_second: 0,
            buffer_cap: settings.buffer.max(2 * fleet.len()),
            fleet,
            max_behind: Duration::ZERO,
            warned_behind: false,
            shards_stale: false,
            last_shard_refresh: now,
            calls: 0,
            records: 0,
            interrupted: false,
        }
    }

    async fn run(mut self, shutdown: impl Future<Output = ()>) -> Summary {
        tracing::info!(
            stream = %self.settings.stream,
            unicorns = self.fleet.len(),
            shards = self.shards.len(),
            seed = self.settings.seed,
            start = %self.settings.start_time,
            time_scale = self.settings.time_scale,
            "producing"
        );
        if self.settings.aggregate {
            tracing::info!(
                max_record_bytes = self
                    .settings
                    .aggregate_bytes
                    .min(wildrydes_core::kpl::MAX_RECORD_BYTES),
                "packing readings into KPL aggregated records, one shard's each"
            );
        }
        let started = Instant::now();
        let mut shutdown = pin!(shutdown);
        let mut stopping = false;
        let mut aborted = None;
        loop {
            if !stopping && shutdown.as_mut().now_or_never().is_some() {
                stopping = self.stop_requested();
            }
            let now = Instant::now();
            if !stopping {
                self.generate(now);
            }
            let generating = !stopping && !self.all_generated();
            if !generating && self.outbox.is_empty() {
                break;
            }
            if self.shards_stale && now >= self.last_shard_refresh + SHARD_REFRESH_INTERVAL {
                self.refresh_shards().await;
            }
            let ready = self.outbox.ready(now);
            let calls = self.plan_calls(&ready, now);
            if !calls.is_empty() {
                let sent = self.send(calls).await;
                let returned = Instant::now();
                if let Some(pacer) = &mut self.pacer {
                    pacer.settle(now, returned);
                }
                if let Err(reason) = sent {
                    tracing::error!(%reason, "stopping: cannot go on");
                    aborted = Some(reason);
                    break;
                }
                self.show(returned, generating);
                continue;
            }
            self.show(now, generating);
            let wake = self.next_wake(&ready, generating, now);
            tokio::select! {
                () = sleep_until(wake) => {}
                () = shutdown.as_mut(), if !stopping => stopping = self.stop_requested(),
            }
        }
        if aborted.is_some() {
            for (tally, lost) in self.tallies.iter_mut().zip(self.outbox.abandon()) {
                tally.unsent += lost;
            }
        }
        if let Some(Err(err)) = self.ledger.as_mut().map(Ledger::flush) {
            aborted.get_or_insert_with(|| err.to_string());
        }
        self.progress.finish(&self.snapshot(false, Instant::now()));
        let simulated = self
            .next_second
            .checked_sub(1)
            .map(|last| (self.clock.status_time(0), self.clock.status_time(last)));
        Summary {
            stream: self.settings.stream.clone(),
            seed: self.settings.seed,
            unicorns: self.tallies,
            simulated,
            calls: self.calls,
            aggregated_records: self.settings.aggregate.then_some(self.records),
            elapsed: started.elapsed(),
            max_behind: self.max_behind,
            shards: self.shards.len(),
            interrupted: self.interrupted,
            aborted,
        }
    }

    fn stop_requested(&mut self) -> bool {
        self.interrupted = true;
        tracing::info!(
            buffered = self.outbox.len(),
            "stop requested: no new readings; sending the buffered ones"
        );
        true
    }

    fn all_generated(&self) -> bool {
        self.settings
            .seconds
            .is_some_and(|seconds| self.next_second >= seconds)
    }

    fn may_generate(&self) -> bool {
        self.outbox.len() + self.fleet.len() <= self.buffer_cap
    }

    /// Simulates every second that is due by `now`, as far as the buffer allows.
    fn generate(&mut self, now: Instant) {
        while !self.all_generated() && self.may_generate() {
            let second = self.next_second;
            if self.clock.due(second) > now {
                break;
            }
            let at = self.clock.status_time(second);
            for (unicorn, reading) in self.fleet.tick(second, at).into_iter().enumerate() {
                self.outbox.push(unicorn, second, reading.to_json());
                self.tallies[unicorn].generated += 1;
            }
            self.next_second += 1;
        }
    }

    /// Chooses the next round's calls among the `ready` unicorns: up to
    /// `max_in_flight` calls, no unicorn in two of them.
    fn plan_calls(&mut self, ready: &[usize], now: Instant) -> Vec<Vec<Planned>> {
        let mut calls = Vec::new();
        let mut left = ready.to_vec();
        while calls.len() < self.settings.max_in_flight.max(1) && !left.is_empty() {
            let chosen = self.plan(&left, now);
            if chosen.is_empty() {
                break;
            }
            let taken: std::collections::HashSet<usize> = chosen
                .iter()
                .flat_map(|p| p.unicorns.iter().copied())
                .collect();
            left.retain(|u| !taken.contains(u));
            calls.push(chosen);
        }
        calls
    }

    /// Chooses one call's entries among the `ready` unicorns' heads: one
    /// reading per record, or with `--aggregate` readings packed into
    /// aggregated records per shard.
    fn plan(&mut self, ready: &[usize], now: Instant) -> Vec<Planned> {
        if self.settings.aggregate {
            return self.plan_aggregated(ready, now);
        }
        let outbox = &self.outbox;
        let keys = &self.keys;
        let shard_of = &self.shard_of;
        let candidates = ready.iter().filter_map(|&unicorn| {
            let head = outbox.head(unicorn)?;
            Some(Candidate {
                unicorn,
                shard: shard_of[unicorn],
                bytes: head.data.len() + keys[unicorn].len(),
            })
        });
        let pacer = &mut self.pacer;
        let chosen = batch::plan(candidates, self.settings.batch, |c| {
            pacer
                .as_mut()
                .is_none_or(|p| p.try_admit(c.shard, c.bytes as u64, now))
        });
        chosen
            .into_iter()
            .filter_map(|u| {
                let head = self.outbox.head(u)?;
                Some(Planned {
                    unicorns: vec![u],
                    shard: self.shard_of[u],
                    aggregated: false,
                    entry: PutEntry {
                        partition_key: self.keys[u].clone(),
                        data: head.data.clone().into_bytes(),
                    },
                })
            })
            .collect()
    }

    /// [`Self::plan`] with `--aggregate`: the heads packed into KPL
    /// aggregated records, each of one shard (see [`batch::plan_aggregated`]).
    fn plan_aggregated(&mut self, ready: &[usize], now: Instant) -> Vec<Planned> {
        let outbox = &self.outbox;
        let keys = &self.keys;
        let shard_of = &self.shard_of;
        let candidates = ready.iter().filter_map(|&unicorn| {
            let head = outbox.head(unicorn)?;
            Some(UserCandidate {
                unicorn,
                shard: shard_of[unicorn],
                partition_key: &keys[unicorn],
                data: head.data.as_bytes(),
            })
        });
        batch::plan_aggregated(
            candidates,
            self.settings.batch,
            self.settings.aggregate_bytes,
            self.pacer.as_mut(),
            now,
        )
        .into_iter()
        .map(|aggregate| {
            let shard = aggregate.shard;
            let unicorns = aggregate.unicorns.clone();
            let (partition_key, data) = aggregate.finish();
            Planned {
                unicorns,
                shard,
                aggregated: true,
                entry: PutEntry {
                    partition_key,
                    data,
                },
            }
        })
        .collect()
    }

    /// Sends the `calls` at once and files every outcome. Errs with a
    /// reason when the run cannot go on (after filing what the other calls
    /// achieved).
    async fn send(&mut self, calls: Vec<Vec<Planned>>) -> Result<(), String> {
        let mut requests = Vec::with_capacity(calls.len());
        let mut carried = Vec::with_capacity(calls.len());
        for call in calls {
            let mut entries = Vec::with_capacity(call.len());
            let mut loads = Vec::with_capacity(call.len());
            for planned in call {
                for &u in &planned.unicorns {
                    self.outbox.attempted(u);
                }
                entries.push(planned.entry);
                loads.push(Load {
                    unicorns: planned.unicorns,
                    shard: planned.shard,
                    aggregated: planned.aggregated,
                });
            }
            requests.push(entries);
            carried.push(loads);
        }
        self.calls += requests.len() as u64;
        let sink = &self.sink;
        let answers =
            futures::future::join_all(requests.into_iter().map(|e| sink.put_records(e))).await;
        let now = Instant::now();
        let mut result = Ok(());
        for (loads, answer) in carried.iter().zip(answers) {
            let filed = self.file(loads, answer, now);
            if result.is_ok() {
                result = filed;
            }
        }
        result
    }

    /// Files the outcomes of one call, whose entries carried `loads`.
    fn file(
        &mut self,
        loads: &[Load],
        answer: Result<Vec<EntryOutcome>, CallError>,
        now: Instant,
    ) -> Result<(), String> {
        match answer {
            Ok(outcomes) => {
                let mut acknowledged = 0;
                for (load, outcome) in loads.iter().zip(outcomes) {
                    match outcome {
                        EntryOutcome::Written {
                            shard_id,
                            sequence_number,
                        } => {
                            if load.aggregated {
                                self.landed(load, &shard_id);
                            }
                            for (index, &u) in load.unicorns.iter().enumerate() {
                                let sub = load.aggregated.then_some(index);
                                self.written(u, &shard_id, &sequence_number, sub)
                                    .map_err(|e| e.to_string())?;
                            }
                            self.records += 1;
                            acknowledged += load.unicorns.len();
                        }
                        EntryOutcome::Failed { code, message } => {
                            let retry = classify_code(&code);
                            self.entry_failed(load, retry, &code, &message, now);
                        }
                    }
                }
                if let Some(ledger) = &mut self.ledger {
                    ledger.flush().map_err(|e| e.to_string())?;
                }
                self.progress.acknowledged(acknowledged);
                Ok(())
            }
            Err(err) if err.retry == Retry::Transient => {
                let records: usize = loads.iter().map(|l| l.unicorns.len()).sum();
                tracing::warn!(error = %err, records, "PutRecords call failed; its records will be sent again");
                for load in loads {
                    self.entry_failed(load, Retry::Transient, "CallFailed", &err.message, now);
                }
                Ok(())
            }
            Err(err) => Err(err.message),
        }
    }

    /// Notes where an aggregated record landed: on another shard than its
    /// readings map to only when the shard list is stale (resharding). Its
    /// readings are stored there all the same, and acknowledged (the
    /// ledger names that shard); the list is reloaded before long.
    fn landed(&self, load: &Load, shard_id: &str) {
        let expected = self.shards.shard(load.shard).map(|s| s.shard_id.as_str());
        if expected != Some(shard_id) && !self.shards_stale {
            tracing::warn!(
                expected = expected.unwrap_or("none"),
                landed = shard_id,
                readings = load.unicorns.len(),
                "an aggregated record landed on another shard than its readings map to (resharding?); reloading the shard list"
            );
        }
    }

    /// Files an acknowledged head; `sub_sequence_number` is its index in
    /// the aggregated record that carried it, if any.
    fn written(
        &mut self,
        u: usize,
        shard_id: &str,
        sequence_number: &str,
        sub_sequence_number: Option<usize>,
    ) -> Result<(), LedgerError> {
        let Some(pending) = self.outbox.pop(u) else {
            return Ok(());
        };
        self.tallies[u].sent += 1;
        if self
            .shards
            .shard(self.shard_of[u])
            .is_none_or(|s| s.shard_id != shard_id)
        {
            self.shards_stale = true;
        }
        match &mut self.ledger {
            Some(ledger) => ledger.record(
                shard_id,
                sequence_number,
                sub_sequence_number,
                &self.keys[u],
                &pending.data,
            ),
            None => Ok(()),
        }
    }

    /// Files a failed entry: each of its heads is scheduled again (at the
    /// front of its unicorn's queue, so nothing newer overtakes it), or
    /// given up on. The heads of an aggregated record wait out one backoff
    /// (its most tried reading's), so they come back together and are
    /// packed together again; its give-ups are logged once.
    fn entry_failed(&mut self, load: &Load, retry: Retry, code: &str, message: &str, now: Instant) {
        let policy = &self.settings.retry;
        let most_attempts = load
            .unicorns
            .iter()
            .filter_map(|&u| self.outbox.head(u).map(|p| p.attempts))
            .max()
            .unwrap_or(0);
        let mut delay = None;
        let mut given_up = Vec::new();
        for &u in &load.unicorns {
            let attempts = self.outbox.head(u).map_or(0, |p| p.attempts);
            if retry == Retry::Transient && policy.may_retry(attempts) {
                let delay = *delay.get_or_insert_with(|| policy.delay(most_attempts));
                self.outbox.defer(u, now + delay);
                self.tallies[u].retried += 1;
                if !load.aggregated {
                    tracing::debug!(unicorn = %self.keys[u], attempts, code, message, "entry failed; will retry");
                }
                continue;
            }
            if let Some(pending) = self.outbox.pop(u) {
                self.tallies[u].failed += 1;
                given_up.push((u, pending.second, attempts));
            }
        }
        if load.aggregated {
            let retried = load.unicorns.len() - given_up.len();
            if retried > 0 {
                tracing::debug!(
                    readings = retried,
                    code,
                    message,
                    "aggregated record failed; its readings will be sent again"
                );
            }
            if let Some(&(u, second, attempts)) = given_up.first() {
                tracing::error!(
                    readings = given_up.len(),
                    first_unicorn = %self.keys[u],
                    status_time = %self.clock.status_time(second),
                    attempts,
                    code,
                    message,
                    "aggregated record not delivered; giving up on its readings"
                );
            }
            return;
        }
        for (u, second, attempts) in given_up {
            tracing::error!(
                unicorn = %self.keys[u],
                status_time = %self.clock.status_time(second),
                attempts,
                code,
                message,
                "reading not delivered; giving up on it"
            );
        }
    }

    /// When to look again: the next second due, the next retry released,
    /// or the next room on a shard that has readings waiting.
    fn next_wake(&self, ready: &[usize], generating: bool, now: Instant) -> Instant {
        let mut wake: Option<Instant> = None;
        let mut consider = |t: Instant| wake = Some(wake.map_or(t, |w| w.min(t)));
        if generating && self.may_generate() {
            consider(self.clock.due(self.next_second));
        }
        if let Some(t) = self.outbox.next_release(now) {
            consider(t);
        }
        if let Some(pacer) = &self.pacer {
            for &u in ready {
                let bytes = self.outbox.head(u).map_or(0, |p| {
                    if self.settings.aggregate {
                        // What the aggregated planner needs room for.
                        batch::lone_aggregate_size(&self.keys[u], p.data.len())
                    } else {
                        p.data.len() + self.keys[u].len()
                    }
                });
                consider(pacer.next_free(self.shard_of[u], bytes as u64, now));
            }
        }
        // Never spin: with nothing to wait for, look again shortly.
        wake.unwrap_or(now + Duration::from_millis(10)).max(now)
    }

    /// Reloads the shard list after records landed on unexpected shards.
    async fn refresh_shards(&mut self) {
        self.shards_stale = false;
        self.last_shard_refresh = Instant::now();
        let map = match self.sink.list_shards().await {
            Ok(ranges) => ShardMap::new(ranges).map_err(|e| e.to_string()),
            Err(err) => Err(err.to_string()),
        };
        match map {
            Ok(map) => {
                let ids = |m: &ShardMap| -> Vec<String> {
                    (0..m.len())
                        .filter_map(|i| m.shard(i).map(|s| s.shard_id.clone()))
                        .collect()
                };
                if let Some(pacer) = &mut self.pacer {
                    pacer.remap(&ids(&self.shards), &ids(&map));
                }
                self.shard_of = self.keys.iter().map(|k| map.shard_for(k)).collect();
                tracing::info!(
                    shards = map.len(),
                    "shard list changed; pacing to the new shards"
                );
                self.shards = map;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot reload the shard list; pacing to the old one")
            }
        }
    }

    fn snapshot(&self, generating: bool, now: Instant) -> Snapshot {
        let (mut sent, mut retried, mut failed) = (0, 0, 0);
        for t in &self.tallies {
            sent += t.sent;
            retried += t.retried;
            failed += t.failed;
        }
        // How late the oldest reading not yet delivered is (or, with none
        // waiting, the next one still to generate).
        let behind = match self.outbox.oldest_second() {
            Some(second) => now.saturating_duration_since(self.clock.due(second)),
            None if generating => now.saturating_duration_since(self.clock.due(self.next_second)),
            None => Duration::ZERO,
        };
        Snapshot {
            sent,
            retried,
            failed,
            buffered: self.outbox.len(),
            records: self.settings.aggregate.then_some(self.records),
            simulated: self
                .next_second
                .checked_sub(1)
                .map(|s| self.clock.status_time(s)),
            behind,
        }
    }

    /// Updates the progress display and the lag statistics.
    fn show(&mut self, now: Instant, generating: bool) {
        let snapshot = self.snapshot(generating, now);
        self.max_behind = self.max_behind.max(snapshot.behind);
        if snapshot.behind >= BEHIND_WARNING && !self.warned_behind && self.settings.aggregate {
            self.warned_behind = true;
            tracing::warn!(
                behind_seconds = snapshot.behind.as_secs(),
                shards = self.shards.len(),
                "falling behind simulated time: readings go out more than 5 s after they are due (each shard takes 1 MiB/s, about 5,000 aggregated readings; throttling and call latency add to it); they keep their simulated times"
            );
        }
        if snapshot.behind >= BEHIND_WARNING && !self.warned_behind {
            self.warned_behind = true;
            tracing::warn!(
                behind_seconds = snapshot.behind.as_secs(),
                shards = self.shards.len(),
                "falling behind simulated time: readings go out more than 5 s after they are due (each shard takes 1,000 records/s; throttling and call latency add to it); they keep their simulated times"
            );
        }
        self.progress.update(&snapshot, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_map_to_status_times_and_due_instants() {
        let origin = Instant::now();
        let clock = SimClock {
            origin,
            start: StatusTime::parse("2017-06-05 09:17:08.189").unwrap(),
            scale: 60.0,
        };
        assert_eq!(clock.status_time(61).to_string(), "2017-06-05 09:18:09.189");
        assert_eq!(clock.due(0), origin);
        assert_eq!(clock.due(60), origin + Duration::from_secs(1));
        assert_eq!(clock.due(90), origin + Duration::from_millis(1500));
    }
}
