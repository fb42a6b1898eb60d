//! The Wild Rydes domain, shared by every binary of the pipeline: bytes,
//! records and deadlines in; outcomes out.
//!
//! # Layout
//!
//! - [`input`]: `SourceRecord` and `ShardSource`, what every batch is made
//!   of, with the one conversion from the SDK's Kinesis record.
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
//! - [`names`]: every stream and table name, and `PipelineName`, the one
//!   enum of the three pipelines.
//! - [`kpl`]: the KPL's aggregated record (many user records in one Kinesis
//!   record): `deaggregate` and `AggregateBuilder`.
//!
//! Parsing is in a private module (`json`) that turns any bytes into either a
//! record or a typed error, without panicking.
//!
//! This crate knows nothing of Lambda, of the command line, of shard
//! consumption or of leases, and depends on no other crate of ours: the
//! wrappers in `crates/lambda` and `crates/daemon` adapt their inputs to it
//! (`tests/tests/tidy.rs` keeps it so).

pub mod aggregate;
pub mod aggregation;
pub mod error;
pub mod input;
pub mod item;
mod json;
pub mod kpl;
pub mod minute_store;
pub mod name;
pub mod names;
pub mod process;
pub mod reading;
pub mod rejects;
pub mod retry;
pub mod stream_writer;
#[cfg(test)]
mod test_dynamodb;
pub mod time;
pub mod window;
pub mod writer;

pub use aggregate::Aggregate;
pub use error::{Field, ValidationError};
pub use input::{ShardSource, SourceRecord};
pub use name::UnicornName;
pub use reading::Reading;
pub use time::StatusTime;
pub use window::MinuteWindow;
