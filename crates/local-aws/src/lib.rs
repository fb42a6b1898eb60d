//! Kinesis and DynamoDB served inside the calling process, on 127.0.0.1, for
//! tests and local runs.
//!
//! The workshop needs two AWS data planes: Kinesis (the sensor stream and the
//! aggregated stream) and DynamoDB (the sensor table). This crate runs real
//! implementations of both wire protocols in the caller's tokio runtime, so the
//! official SDK, the aws CLI and our binaries talk to them exactly as they
//! would to AWS, with no Docker, no JVM and no network.
//!
//! # Layout
//!
//! - [`LocalAws`] (in `emulators.rs`) starts both servers and stops them; it
//!   hands out endpoints, SDK configuration, clients and environment
//!   variables that point at them.
//! - [`LocalAwsOptions`] (in `options.rs`) is what a test or `cargo xtask
//!   local` can choose: in memory or file-backed, pinned ports, and the
//!   Kinesis knobs tests need (iterator expiry, throttling, shard limit).
//! - `sdk.rs` builds the [`aws_config::SdkConfig`]: static credentials, a fixed
//!   region and per-service endpoints, so an SDK client built from it never
//!   looks at the host environment.
//! - [`ensure_stream`] and [`ensure_table`] (in `provision.rs`) create a
//!   resource if it is missing and wait, briefly, until it is ACTIVE.
//! - [`workshop`] names the workshop's streams and table and creates them all.
//! - [`fault_proxy`] stands between a client and DynamoDB and throttles
//!   every n-th BatchWriteItem call (the demo's and the tests' faults).
//! - [`LocalAwsError`] (in `error.rs`) is the one error type.
//!
//! # Example
//!
//! ```no_run
//! # async fn demo() -> Result<(), wildrydes_local_aws::LocalAwsError> {
//! use wildrydes_local_aws::{LocalAws, LocalAwsOptions, workshop};
//!
//! let local = LocalAws::start(LocalAwsOptions::default()).await?;
//! workshop::ensure_workshop_resources(&local).await?;
//! let streams = local.kinesis_client().list_streams().send().await;
//! local.shutdown().await?;
//! # Ok(()) }
//! ```

mod emulators;
mod error;
pub mod fault_proxy;
mod options;
mod provision;
mod sdk;
#[cfg(test)]
mod testing;
pub mod workshop;

pub use emulators::LocalAws;
pub use error::LocalAwsError;
pub use options::LocalAwsOptions;
pub use provision::{
    IndexSpec, KeyAttribute, PROVISION_TIMEOUT, TableSpec, ensure_stream, ensure_table,
};
pub use sdk::{ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY, static_sdk_config};
