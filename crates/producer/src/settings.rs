//! `Settings`: everything a run needs, typed and validated once (by
//! [`crate::cli::Cli::settings`] for the binary); tests build or adjust one
//! directly, including the knobs the command line does not expose.

use std::path::PathBuf;

use wildrydes_core::retry::RetryPolicy;
use wildrydes_core::{StatusTime, UnicornName};

use crate::batch::BatchLimits;
use crate::pacing::ShardLimits;
use crate::progress::OutputMode;
use crate::scenario::Scenario;
use crate::sender::PRODUCER_RETRY;

/// Readings held unacknowledged before generation pauses: bounds memory
/// (about 200 bytes each) when Kinesis cannot keep up.
pub const DEFAULT_BUFFER: usize = 20_000;

/// PutRecords calls in flight at once by default: one call carries at most
/// 500 readings, so one in flight caps a process at 500 readings per round
/// trip (about 15,000/s at AWS's ~30 ms); four lift that fourfold.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 4;

/// Largest KPL aggregated record (data plus partition key) built with
/// `--aggregate`: the KPL's own default (`AggregationMaxSize`), about 250
/// readings. A shard's 1,000 records/s then never bind before its 1 MiB/s
/// (20 such records fill it), a failed record sends a few hundred readings
/// back rather than thousands, and consumers get the records they would
/// get from the KPL.
pub const DEFAULT_AGGREGATE_BYTES: usize = 51_200;

/// A validated producer configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The unicorns, in fleet order; each name is also its partition key.
    pub names: Vec<UnicornName>,
    /// The stream to write to.
    pub stream: String,
    /// Seed of every unicorn's random stream; printed in the summary so a
    /// run can be replayed.
    pub seed: u64,
    /// `StatusTime` of the first reading.
    pub start_time: StatusTime,
    /// Simulated seconds per real second.
    pub time_scale: f64,
    /// Simulated seconds to produce (one reading per unicorn each), or
    /// `None` to run until stopped.
    pub seconds: Option<u64>,
    /// Scripted behaviour on top of the random walk.
    pub scenario: Scenario,
    /// Where to write the ledger of acknowledged readings, if anywhere.
    pub ledger: Option<PathBuf>,
    /// How progress is shown.
    pub output: OutputMode,
    /// Retries of failed entries ([`PRODUCER_RETRY`] by default).
    pub retry: RetryPolicy,
    /// Per-shard write limits to pace to; `None` sends as fast as calls
    /// return (only tests want that, to provoke throttling).
    pub pacing: Option<ShardLimits>,
    /// Limits of one PutRecords call.
    pub batch: BatchLimits,
    /// PutRecords calls in flight at once (at least 1); a unicorn has at
    /// most one reading in flight, so its readings stay in order.
    pub max_in_flight: usize,
    /// Readings held unacknowledged before generation pauses (at least two
    /// seconds' worth of the fleet is always allowed).
    pub buffer: usize,
    /// Whether readings go packed into KPL aggregated records (`--aggregate`)
    /// rather than one per record: many readings of one shard per record,
    /// each under its own partition key.
    pub aggregate: bool,
    /// Largest aggregated record, data plus partition key
    /// ([`DEFAULT_AGGREGATE_BYTES`]); above
    /// [`MAX_RECORD_BYTES`](wildrydes_core::kpl::MAX_RECORD_BYTES) it is
    /// taken as that.
    pub aggregate_bytes: usize,
}

impl Settings {
    /// Settings for `names` on `stream` with the given seed and start time,
    /// and defaults elsewhere: real time, until stopped, no scenario, no
    /// ledger, quiet, paced to the service's limits, one reading per record.
    pub fn new(names: Vec<UnicornName>, stream: &str, seed: u64, start_time: StatusTime) -> Self {
        Self {
            names,
            stream: stream.to_owned(),
            seed,
            start_time,
            time_scale: 1.0,
            seconds: None,
            scenario: Scenario::Walk,
            ledger: None,
            output: OutputMode::Quiet,
            retry: PRODUCER_RETRY,
            pacing: Some(ShardLimits::default()),
            batch: BatchLimits::default(),
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            buffer: DEFAULT_BUFFER,
            aggregate: false,
            aggregate_bytes: DEFAULT_AGGREGATE_BYTES,
        }
    }
}
