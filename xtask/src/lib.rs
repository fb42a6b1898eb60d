//! The parts of `cargo xtask` that tests drive in-process: putting the
//! pipeline on AWS (`deploy`) and taking it down (`destroy`).
//!
//! The binary (`main.rs`) parses flags and calls [`deploy::run`] and
//! [`destroy::run`]; `tests/tests/deploy.rs` calls [`deploy::deploy`] and
//! [`destroy::destroy`] against a moto server with its own SDK
//! configuration. A library rather than running the binary from the tests:
//! no nested `cargo` (which would resolve features for xtask alone and build
//! a second copy of the SDK stack), and the tests assert on typed reports
//! instead of parsing printed lines.
//!
//! - [`deploy`]: `cargo xtask deploy`: zips, bucket, change set, progress,
//!   outputs.
//! - [`destroy`]: `cargo xtask destroy`: the stack, and the kept tables with
//!   `--delete-data`.
//! - [`stack`]: CloudFormation: change sets, stack events, waiting.
//! - [`artifacts`]: the Lambda zips: building with cargo-lambda, hashing,
//!   uploading to S3 under content-addressed keys.
//! - [`aws_error`]: SDK errors as one line that says what to do.
//! - [`template`]: `infra/wildrydes.yaml` and the names fixed in it.

pub mod artifacts;
pub mod aws_error;
pub mod demo;
pub mod deploy;
pub mod destroy;
pub mod fault_proxy;
pub mod stack;
pub mod tail;
pub mod template;
pub mod verify;
