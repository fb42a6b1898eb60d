//! The one error type of this crate.

use std::path::PathBuf;
use std::time::Duration;

/// Errors from starting, stopping or provisioning the local backend.
///
/// Each message says what failed and what to do about it; the underlying
/// cause, when there is one, is the error's `source()` (print the chain, for
/// example with anyhow's `{:#}`, to see it).
#[derive(Debug, thiserror::Error)]
pub enum LocalAwsError {
    /// A listening socket could not be opened, usually because a pinned port
    /// is already taken.
    #[error(
        "could not listen on 127.0.0.1:{port} for the {service} emulator; choose another port, or 0 for a free one"
    )]
    Bind {
        /// "kinesis" or "dynamodb", to tell the user which port to change.
        service: &'static str,
        /// The port that was requested (0 means any).
        port: u16,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },

    /// The data directory or its lock file could not be created.
    #[error("could not prepare data directory {path}; check that it is writable")]
    DataDir {
        /// The directory (or the file inside it) that failed.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },

    /// Another live instance holds the data directory.
    #[error(
        "data directory {path} is in use by another local AWS instance; stop that one or choose another data directory"
    )]
    DataDirLocked {
        /// The contested directory.
        path: PathBuf,
    },

    /// Kinesis could not restore its state from disk.
    #[error(
        "the kinesis emulator could not load its state from {path} ({detail}); delete that directory to start empty"
    )]
    KinesisState {
        /// The Kinesis state directory.
        path: PathBuf,
        /// The emulator's own description; it has no error type to chain.
        detail: String,
    },

    /// DynamoDB could not open its database.
    #[error(
        "the dynamodb emulator could not open {path} ({detail}); delete that file to start empty"
    )]
    DynamoDbState {
        /// The SQLite file, or `:memory:`.
        path: PathBuf,
        /// The emulator's description of the failure.
        detail: String,
    },

    /// A Kinesis API call made while provisioning failed.
    #[error(
        "kinesis {operation} for stream `{stream}` failed; check that the kinesis endpoint is up and the name is valid"
    )]
    Kinesis {
        /// The API operation, e.g. "CreateStream".
        operation: &'static str,
        /// The stream it was about.
        stream: String,
        /// The SDK error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// A DynamoDB API call made while provisioning failed.
    #[error(
        "dynamodb {operation} for table `{table}` failed; check that the dynamodb endpoint is up and the table definition is valid"
    )]
    DynamoDb {
        /// The API operation, e.g. "CreateTable".
        operation: &'static str,
        /// The table it was about.
        table: String,
        /// The SDK error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// A stream or table did not become ACTIVE in time.
    #[error(
        "{resource} was still {status} after {waited:?}; it may be stuck (e.g. being deleted), restart the local backend"
    )]
    NotActive {
        /// E.g. "kinesis stream `wildrydes`".
        resource: String,
        /// The last status seen.
        status: String,
        /// How long we waited.
        waited: Duration,
    },

    /// A server stopped with an error or panicked instead of shutting down.
    #[error("the {service} emulator failed while serving ({detail}); restart the local backend")]
    Serve {
        /// "kinesis" or "dynamodb".
        service: &'static str,
        /// What went wrong.
        detail: String,
    },
}
