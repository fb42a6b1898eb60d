//! The Wild Rydes domain, shared by every binary of the pipeline.
//!
//! # Layout
//!
//! - [`time`]: `StatusTime`, the workshop's `YYYY-MM-DD HH:MM:SS.mmm` UTC time
//!   held as the table's epoch-millisecond key.
//! - [`name`]: `UnicornName`, the partition key of streams and table.
//! - [`reading`]: `Reading`, a per-second record of the `wildrydes` stream.
//! - [`aggregate`]: `Aggregate`, a per-minute record of `wildrydes-aggregated`.
//! - [`error`]: `ValidationError`, why a record was refused, field by field.
//! - [`item`]: the record-to-item mapping of table `UnicornSensorData`.
//! - [`window`]: `MinuteWindow`, the event-time per-minute aggregation.
//! - [`process`]: `Processor`, the stream processor's batch logic (decode,
//!   validate, map, write), with [`writer`]'s `TableWriter` and its
//!   [`retry`] policy, and [`rejects`], where refused records are kept.
//! - [`aggregation`]: `Aggregator`, the per-minute aggregation's batch logic
//!   (load, fold, emit with [`stream_writer`]'s `StreamWriter`, keep rejects,
//!   save), over [`minute_store`]'s `MinuteStore`, the aggregator's state kept
//!   per unicorn and minute in DynamoDB.
//! - [`resources`]: the default stream and table names.
//! - [`verify`]: the aggregates readings must produce, compared with a table.
//! - [`aws`]: `AwsArgs`, region, profile and endpoint for every binary.
//!
//! Parsing is in a private module (`json`) that turns any bytes into either a
//! record or a typed error, without panicking.
//!
//! This crate knows nothing of Lambda, of shard consumption or of leases: the
//! wrappers in `crates/lambda` and `crates/daemon` adapt their inputs to it.

pub mod aggregate;
pub mod aggregation;
pub mod aws;
pub mod error;
pub mod item;
mod json;
pub mod minute_store;
pub mod name;
pub mod process;
pub mod reading;
pub mod rejects;
pub mod resources;
pub mod retry;
pub mod stream_writer;
pub mod time;
pub mod verify;
pub mod window;
pub mod writer;

pub use aggregate::Aggregate;
pub use error::{Field, ValidationError};
pub use name::UnicornName;
pub use reading::Reading;
pub use time::StatusTime;
pub use window::MinuteWindow;
