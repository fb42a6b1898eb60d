//! Start-up of the `producer` binary, kept in the library so tests run it
//! in-process: build the SDK configuration from the flags, check the
//! credentials and the stream, run the producer, and map the outcome to an
//! exit status.

use std::future::Future;
use std::time::Duration;

use aws_config::SdkConfig;
use aws_config::timeout::TimeoutConfig;
use wildrydes_cli::AwsArgs;

use crate::kinesis::{KinesisError, KinesisStream, check_credentials};
use crate::producer::{ProducerError, produce};
use crate::settings::Settings;
use crate::summary::Summary;

/// How long to wait for a TCP connection: an endpoint that does not answer
/// within this is reported as unreachable rather than waited on.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long one attempt of a call may take, so a stalled connection cannot
/// hang the producer (and its Ctrl-C flush) forever.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// Exit status when every reading generated was delivered.
pub const EXIT_OK: u8 = 0;
/// Exit status when the producer could not start, or stopped on an error.
pub const EXIT_ERROR: u8 = 1;
/// Exit status for bad arguments (clap uses it too).
pub const EXIT_USAGE: u8 = 2;
/// Exit status when the run finished but some readings were finally not delivered.
pub const EXIT_LOST: u8 = 3;

/// Why the producer could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Credentials, stream or endpoint.
    #[error(transparent)]
    Kinesis(#[from] KinesisError),
    /// Fleet, ledger or shard list.
    #[error(transparent)]
    Producer(#[from] ProducerError),
}

/// The SDK configuration for the flags (core's [`AwsArgs::sdk_config`]: the
/// provider chain with `--profile`, `--region` and `--endpoint-url` on top,
/// us-east-1 as the last resort), with timeouts so that an endpoint that
/// does not answer is reported instead of waited on.
pub async fn load_sdk_config(aws: &AwsArgs) -> SdkConfig {
    aws.sdk_config()
        .await
        .into_builder()
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                .build(),
        )
        .build()
}

/// Checks credentials and the stream, then produces until done or until
/// `shutdown` resolves. `profile` only names the profile in messages.
pub async fn start(
    settings: &Settings,
    sdk: &SdkConfig,
    profile: Option<&str>,
    shutdown: impl Future<Output = ()>,
) -> Result<Summary, StartError> {
    check_credentials(sdk, profile).await?;
    let stream = KinesisStream::new(sdk, &settings.stream);
    let described = stream.check().await?;
    tracing::debug!(
        stream = stream.name(),
        region = %stream.target().region,
        endpoint = %stream.target().endpoint,
        open_shards = described.open_shards,
        "stream ready"
    );
    Ok(produce(settings, &stream, shutdown).await?)
}

/// The exit status for a finished run.
pub fn exit_status(summary: &Summary) -> u8 {
    if summary.aborted.is_some() {
        EXIT_ERROR
    } else if summary.is_complete() {
        EXIT_OK
    } else {
        EXIT_LOST
    }
}
