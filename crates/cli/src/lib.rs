//! What every command-line binary of the pipeline shares (the producer, the
//! daemon, the operations): the same AWS flags, the same logs, the same way
//! of stopping. Lambda functions use none of it.
//!
//! - [`aws`]: `AwsArgs`, `--region`, `--profile` and `--endpoint-url` over
//!   the SDK's provider chain.
//! - [`logging`]: stderr logs, human or JSON, with the SDK's credential-chain
//!   chatter kept out unless asked for.
//! - [`signal`]: Ctrl-C and SIGTERM.

pub mod aws;
pub mod logging;
pub mod signal;

pub use aws::AwsArgs;
pub use logging::LogFormat;
pub use signal::{Stop, stop_requested};
