//! The long-running consumer of the Wild Rydes pipeline, for users who
//! outgrow Lambda: the same core logic as the functions, spread over many
//! workers with the Kinesis Client Library's lease protocol.
//!
//! # Layout
//!
//! - [`lease`]: `LeaseTable`, one lease per shard with KCL's attributes,
//!   every change fenced by `leaseCounter`.
//! - [`worker`]: `Worker`, lease discovery, renewal, takeover, balancing, and
//!   a consumer per held lease; `run(shutdown)` stops cleanly.
//! - [`balance`]: which lease to take so workers carry the same load (or
//!   the same number of leases), with dampening.
//! - [`consumer`]: `ShardConsumer`, the pipeline per batch, checkpoints
//!   only past durable work.
//! - [`reader`]: `ShardReader`, GetRecords within the service's limits or
//!   an enhanced fan-out subscription renewed as it ends.
//! - [`pipeline`]: `Pipeline`, the core logic per subcommand.
//! - [`metrics`]: `/metrics` (Prometheus) and `/healthz`.
//! - [`console`]: `wildrydes-daemon console`, the operators' live web page
//!   (read only).

pub mod balance;
pub mod console;
pub mod consumer;
pub mod lease;
pub mod metrics;
pub mod pipeline;
pub mod reader;
pub mod worker;
