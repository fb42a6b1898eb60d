//! The Wild Rydes unicorn sensor simulator: the workshop's `producer`,
//! grown into a fleet simulator with scenarios, time control and a ledger.
//!
//! # Layout
//!
//! - [`cli`]: `Cli`, the command line, checked into [`settings::Settings`].
//! - [`simulation`]: `Unicorn` and `Fleet`, the seeded random walk of the workshop.
//! - [`scenario`]: `Scenario`, scripted behaviour such as `magic-drain`.
//! - [`producer`]: `produce`, the loop that simulates each second when due,
//!   batches, paces, sends and retries, and stops cleanly.
//! - [`outbox`]: `Outbox`, per-unicorn queues of unacknowledged readings.
//! - [`batch`]: PutRecords batching within the service's call limits: one
//!   reading per record, or (`--aggregate`) readings packed into KPL
//!   aggregated records ([`wildrydes_core::kpl`]), one shard's per record.
//! - [`shards`]: `ShardMap`, partition key to shard (MD5 hash key ranges).
//! - [`pacing`]: `ShardPacer`, per-shard write limits enforced before sending.
//! - [`sender`]: `RecordSink` (the Kinesis calls behind a trait) and
//!   `PRODUCER_RETRY`, the core `RetryPolicy` the producer sends with.
//! - [`kinesis`]: `KinesisStream`, the SDK-backed sink, and the start-up checks.
//! - [`ledger`]: `Ledger`, JSON lines of every acknowledged reading.
//! - [`progress`]: the progress line, the dots, or nothing.
//! - [`summary`]: `Summary`, per-unicorn counts printed at the end.
//! - [`app`]: the binary's start-up (SDK configuration, checks, exit status).
//!
//! The binary (`src/bin/producer.rs`) only parses flags, installs logging and
//! the Ctrl-C handler, and calls [`app::start`]. Tests drive [`app::start`] or
//! [`producer::produce`] in-process against the embedded Kinesis.
//!
//! Invariants:
//! - a unicorn has at most one reading in flight (in one entry of one of
//!   the PutRecords calls in flight), so its readings reach the stream in
//!   `StatusTime` order, failed entries included;
//! - no shard is sent more than 1,000 records or 1 MiB in any second
//!   (unless pacing is turned off in [`settings::Settings`]); an aggregated
//!   record counts once against the records and by its full size (data
//!   plus partition key) against the bytes;
//! - no call carries more than 500 records or 5 MiB;
//! - with `--aggregate` every record is a KPL aggregate of at most
//!   [`wildrydes_core::kpl::MAX_RECORD_BYTES`] (data plus partition key),
//!   put under its first reading's partition key, whose readings each keep
//!   their unicorn's key and all map to one shard by the [`shards`] map
//!   (the record's, unless the stream was resharded since the map was
//!   loaded); its acknowledgement acknowledges each of its readings, its
//!   failure returns each to the front of its unicorn's queue;
//! - a reading is either acknowledged, or counted as failed and logged,
//!   never dropped silently;
//! - the same seed, start time and names give the same readings; without
//!   `--aggregate`, the same bytes on the stream.

pub mod app;
pub mod batch;
pub mod cli;
pub mod kinesis;
pub mod ledger;
pub mod outbox;
pub mod pacing;
pub mod producer;
pub mod progress;
pub mod scenario;
pub mod sender;
pub mod settings;
pub mod shards;
pub mod simulation;
pub mod summary;

pub use cli::Cli;
pub use producer::produce;
pub use settings::Settings;
pub use summary::Summary;
