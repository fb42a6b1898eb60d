//! What a caller can choose when starting the local backend.

use std::path::PathBuf;
use std::time::Duration;

/// How to start [`crate::LocalAws`].
///
/// `LocalAwsOptions::default()` is what most tests want: everything in memory,
/// random ports, no artificial delays. Override single fields with
/// `LocalAwsOptions { data_dir: Some(dir), ..Default::default() }`.
#[derive(Debug, Clone)]
pub struct LocalAwsOptions {
    /// Where to keep state across restarts; `None` keeps everything in memory.
    ///
    /// Tests want a clean slate and no disk I/O, so they leave this `None`.
    /// `cargo xtask local` sets it so that streams, records and items survive
    /// a restart of the developer's session. Kinesis state goes to
    /// `DIR/kinesis/` (a write-ahead log plus snapshots) and DynamoDB state to
    /// `DIR/dynamodb.sqlite`. The directory is locked while in use, because
    /// two processes writing the same log would corrupt it.
    ///
    /// On disk, Kinesis rewrites all retained records on every change, so
    /// writes slow down as records pile up (measured: about 450 single-record
    /// puts/s on an empty stream, 80/s with 2,000 records retained). Fine for
    /// a workshop session; for volume, use memory.
    pub data_dir: Option<PathBuf>,

    /// TCP port for the Kinesis API on 127.0.0.1; 0 picks a free one.
    ///
    /// Tests use 0 so that they can run in parallel. A developer pins a port
    /// so that endpoint URLs in a shell or a config file stay valid across
    /// restarts.
    pub kinesis_port: u16,

    /// TCP port for the DynamoDB API on 127.0.0.1; 0 picks a free one.
    ///
    /// Same reasons as [`Self::kinesis_port`].
    pub dynamodb_port: u16,

    /// How long a Kinesis shard iterator stays valid, in whole seconds.
    ///
    /// AWS uses 300 s. A test of the consumer's "iterator expired, get a new
    /// one" path sets 1 so that expiry happens within the test. The emulator
    /// counts in seconds, hence the unit.
    pub iterator_ttl_seconds: u64,

    /// Whether Kinesis throttles writes like AWS: per shard, 1 MiB/s and
    /// 1,000 records/s over a one-second window.
    ///
    /// Off by default so that bulk test setup is not throttled; on for tests
    /// of the producer's retry of `ProvisionedThroughputExceededException`.
    pub enforce_limits: bool,

    /// Most open shards Kinesis allows across all streams.
    ///
    /// The emulator defaults to AWS's historical 10, which tests that
    /// reshard or create many streams hit quickly; 50 leaves room.
    pub shard_limit: u32,

    /// How long a Kinesis stream stays CREATING, DELETING or UPDATING.
    ///
    /// AWS takes seconds; the emulator defaults to 500 ms. Zero keeps tests
    /// fast; a test of code that waits for ACTIVE sets a visible delay.
    pub stream_transition_delay: Duration,

    /// How long one `SubscribeToShard` subscription lasts before the
    /// service ends it and the consumer must subscribe again.
    ///
    /// AWS ends each after 5 minutes, the default; a test of an enhanced
    /// fan-out consumer's renewal sets a second or two so that renewals
    /// happen within the test.
    pub subscription_length: Duration,
}

impl Default for LocalAwsOptions {
    fn default() -> Self {
        Self {
            data_dir: None,
            kinesis_port: 0,
            dynamodb_port: 0,
            iterator_ttl_seconds: 300,
            enforce_limits: false,
            shard_limit: 50,
            stream_transition_delay: Duration::ZERO,
            subscription_length: Duration::from_secs(300),
        }
    }
}
