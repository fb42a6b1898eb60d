//! Lambda functions of the Wild Rydes pipeline.
//!
//! # Layout
//!
//! - [`stream_processor`]: `WildRydesStreamProcessor`, Kinesis event to
//!   [`wildrydes_core::process::Processor`] to a batch response.
//! - [`aggregator`]: `WildRydesAggregator`, Kinesis batches (and a
//!   schedule, for quiet shards) to core's `Aggregator` over its minute store.
//! - [`alarm`]: `WildRydesAlarm`, Kinesis event to `wildrydes_alarm`'s
//!   `MagicAlarm`, its `AlarmConfig` read from the environment.
//! - [`kinesis`]: Kinesis event records to core's `SourceRecord`s, and the
//!   `batchItemFailures` answer.
//! - [`config`]: settings read from the environment, checked at start-up.
//! - [`telemetry`]: JSON logs, and each invocation's outcome as one log line
//!   and one CloudWatch Embedded Metric Format document, the same way for
//!   the three functions.
//!
//! - [`bootstrap`]: what every binary does around its handler (logs,
//!   configuration, the runtime loop with each invocation's deadline).
//!
//! Binaries in `src/bin` only build clients once and hand the handler to
//! [`bootstrap::serve`]. Nothing here decides what a record means: that is core's.

pub mod aggregator;
pub mod alarm;
pub mod bootstrap;
pub mod config;
pub mod kinesis;
pub mod stream_processor;
pub mod telemetry;
