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
//! - [`batch`]: PutRecords batching within the service's call limits.
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
//! Invariants: a unicorn's readings reach the stream in `StatusTime` order,
//! one PutRecords call in flight at a time with at most one reading per
//! unicorn; no shard is sent more than 1,000 records or 1 MiB in any second
//! (unless pacing is turned off in [`settings::Settings`]); a reading is
//! either acknowledged, or counted as failed and logged, never dropped
//! silently; the same seed, start time and names give the same bytes.

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
