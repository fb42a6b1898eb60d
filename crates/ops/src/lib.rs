//! The operations a user of the pipeline runs, as a library: the
//! `wildrydes-ops` binary (`main.rs`) parses flags and calls them, `cargo
//! xtask <operation>` builds and runs that binary, and tests drive them
//! in-process against moto and the embedded backend, asserting on typed
//! reports instead of printed lines.
//!
//! - [`deploy`]: zips, bucket, change set, progress, outputs.
//! - [`destroy`]: the stack, and the kept tables with `--delete-data`.
//! - [`demo`]: the whole pipeline on the embedded backend with the real
//!   binaries, under faults if asked, and its proof.
//! - [`local`]: the embedded Kinesis and DynamoDB in the foreground.
//! - [`verify`]: producer ledgers against the table; [`aggregates`]: the
//!   aggregates readings must produce (plain arithmetic) and the comparison.
//! - [`tail`]: a stream's records as they arrive.
//! - [`rejects`]: listing and re-driving refused records.
//! - [`stack`]: CloudFormation: change sets, stack events, waiting.
//! - [`artifacts`]: the Lambda zips: building with cargo-lambda, hashing,
//!   uploading to S3 under content-addressed keys.
//! - [`aws_error`]: SDK errors as one line that says what to do.
//! - [`template`]: `infra/wildrydes.yaml` and the names fixed in it.
//!
//! `deploy`, `destroy` and their modules (`stack`, `artifacts`,
//! `aws_error`) are behind the default feature `deploy`: the CloudFormation
//! and S3 SDKs are a third of a clean build, which the demo does without.

pub mod aggregates;
#[cfg(feature = "deploy")]
pub mod artifacts;
#[cfg(feature = "deploy")]
pub mod aws_error;
pub mod demo;
#[cfg(feature = "deploy")]
pub mod deploy;
#[cfg(feature = "deploy")]
pub mod destroy;
pub mod local;
pub mod rejects;
#[cfg(feature = "deploy")]
pub mod stack;
pub mod tail;
pub mod template;
pub mod verify;

/// Runs an operation's body to its end on a runtime of its own, on this
/// thread: each operation is one run of the program.
pub fn block_on<T>(operation: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    use anyhow::Context as _;
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?
        .block_on(operation)
}
