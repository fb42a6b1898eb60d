//! `KinesisStream`: the [`RecordSink`] over the AWS SDK, with the start-up
//! checks (credentials, DescribeStreamSummary) that turn the SDK's nested
//! errors into one line an operator can act on.

use std::error::Error as StdError;

use aws_config::SdkConfig;
use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::config::ProvideCredentials as _;
use aws_sdk_kinesis::config::http::HttpResponse;
use aws_sdk_kinesis::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, StreamStatus};
use aws_types::service_config::ServiceConfigKey;

use crate::sender::{CallError, EntryOutcome, PutEntry, RecordSink, Retry};
use crate::shards::{ShardMap, ShardRange};

/// Where requests go, for messages: a failure names the region and endpoint
/// so the operator sees at once whether the producer talked to the right place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The region requests are signed for.
    pub region: String,
    /// The Kinesis endpoint URL requests are sent to.
    pub endpoint: String,
}

impl Target {
    /// The region and Kinesis endpoint a client built from `sdk` uses: an
    /// explicit `--endpoint-url` first, then `AWS_ENDPOINT_URL_KINESIS` (or
    /// the profile's `endpoint_url` for kinesis), then `AWS_ENDPOINT_URL`,
    /// then the public endpoint of the region. This mirrors the SDK's order.
    pub fn of(sdk: &SdkConfig) -> Self {
        let region = sdk
            .region()
            .map_or_else(|| "no region".to_owned(), ToString::to_string);
        let explicit = sdk
            .get_origin("endpoint_url")
            .is_client_config()
            .then(|| sdk.endpoint_url().map(str::to_owned))
            .flatten();
        let endpoint = explicit
            .or_else(|| {
                let key = ServiceConfigKey::builder()
                    .service_id("Kinesis")
                    .env("AWS_ENDPOINT_URL")
                    .profile("endpoint_url")
                    .build()
                    .ok()?;
                sdk.service_config()?.load_config(key)
            })
            .or_else(|| sdk.endpoint_url().map(str::to_owned))
            .unwrap_or_else(|| format!("https://kinesis.{region}.amazonaws.com"));
        Self { region, endpoint }
    }
}

/// Why the producer could not start on its stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KinesisError {
    /// The credential chain found nothing.
    #[error(
        "no AWS credentials found ({profile}): set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, run `aws configure` or `aws sso login`, or pass --profile"
    )]
    NoCredentials {
        /// Which profile was looked at, for the operator.
        profile: String,
    },
    /// DescribeStreamSummary said there is no such stream.
    #[error(
        "stream {stream} not found in {region} at {endpoint}: create it (cargo xtask local does) or pass --stream"
    )]
    StreamNotFound {
        /// The stream asked for.
        stream: String,
        /// The region asked in.
        region: String,
        /// The endpoint asked.
        endpoint: String,
    },
    /// The stream exists but cannot take writes yet (or any more).
    #[error(
        "stream {stream} in {region} is {status}, not ACTIVE: wait until it is ACTIVE and start again, or pass another --stream"
    )]
    StreamNotActive {
        /// The stream.
        stream: String,
        /// Its region.
        region: String,
        /// Its status, e.g. CREATING or DELETING.
        status: String,
    },
    /// Nothing answered at the endpoint.
    #[error(
        "cannot reach kinesis at {endpoint} (region {region}): {detail}; check --endpoint-url, that the service is running, and the network"
    )]
    Unreachable {
        /// The endpoint tried.
        endpoint: String,
        /// The region.
        region: String,
        /// The innermost cause, e.g. "Connection refused (os error 111)".
        detail: String,
    },
    /// The service refused the call.
    #[error(
        "kinesis {operation} on stream {stream} in {region} at {endpoint} failed: {code}: {message}; {hint}"
    )]
    Refused {
        /// The API operation.
        operation: &'static str,
        /// The stream.
        stream: String,
        /// The region.
        region: String,
        /// The endpoint.
        endpoint: String,
        /// The service's error code.
        code: String,
        /// The service's message.
        message: String,
        /// What to do about it.
        hint: &'static str,
    },
}

/// The stream as DescribeStreamSummary reports it at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSummary {
    /// Open shards: each takes 1,000 records/s.
    pub open_shards: i32,
}

/// One Kinesis stream, written through the SDK.
#[derive(Debug, Clone)]
pub struct KinesisStream {
    /// The SDK client (shares its connection pool across calls).
    client: Client,
    /// The stream's name.
    stream: String,
    /// Where the client sends requests, for messages.
    target: Target,
}

impl KinesisStream {
    /// A stream named `stream`, reached with the SDK configuration `sdk`.
    pub fn new(sdk: &SdkConfig, stream: &str) -> Self {
        Self {
            client: Client::new(sdk),
            stream: stream.to_owned(),
            target: Target::of(sdk),
        }
    }

    /// The stream's name.
    pub fn name(&self) -> &str {
        &self.stream
    }

    /// Where requests go.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Checks that the stream exists and takes writes (ACTIVE or UPDATING).
    pub async fn check(&self) -> Result<StreamSummary, KinesisError> {
        let answer = self
            .client
            .describe_stream_summary()
            .stream_name(&self.stream)
            .send()
            .await;
        let summary = match answer {
            Ok(summary) => summary,
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                return Err(KinesisError::StreamNotFound {
                    stream: self.stream.clone(),
                    region: self.target.region.clone(),
                    endpoint: self.target.endpoint.clone(),
                });
            }
            Err(err) => return Err(self.startup_error("DescribeStreamSummary", &err)),
        };
        let Some(summary) = summary.stream_description_summary() else {
            return Ok(StreamSummary { open_shards: 0 });
        };
        match summary.stream_status() {
            StreamStatus::Active | StreamStatus::Updating => Ok(StreamSummary {
                open_shards: summary.open_shard_count(),
            }),
            other => Err(KinesisError::StreamNotActive {
                stream: self.stream.clone(),
                region: self.target.region.clone(),
                status: other.as_str().to_owned(),
            }),
        }
    }

    /// A start-up failure as one actionable line.
    fn startup_error<E>(
        &self,
        operation: &'static str,
        err: &SdkError<E, HttpResponse>,
    ) -> KinesisError
    where
        E: ProvideErrorMetadata + StdError + 'static,
    {
        match failure(err) {
            Failure::Unreachable(detail) => KinesisError::Unreachable {
                endpoint: self.target.endpoint.clone(),
                region: self.target.region.clone(),
                detail,
            },
            Failure::Service { code, message } | Failure::Other { code, message } => {
                KinesisError::Refused {
                    operation,
                    stream: self.stream.clone(),
                    region: self.target.region.clone(),
                    endpoint: self.target.endpoint.clone(),
                    hint: hint(&code),
                    code,
                    message,
                }
            }
        }
    }

    /// A failed call during the run, classified for the retry loop.
    fn call_error<E>(&self, operation: &'static str, err: &SdkError<E, HttpResponse>) -> CallError
    where
        E: ProvideErrorMetadata + StdError + 'static,
    {
        // One classification for every SDK call of the pipeline: the core's.
        let retry = wildrydes_core::retry::classify_sdk(err, false);
        CallError {
            retry,
            message: self.startup_error(operation, err).to_string(),
        }
    }
}

impl RecordSink for KinesisStream {
    async fn put_records(&self, entries: Vec<PutEntry>) -> Result<Vec<EntryOutcome>, CallError> {
        let records = entries
            .into_iter()
            .map(|e| {
                PutRecordsRequestEntry::builder()
                    .partition_key(e.partition_key)
                    .data(Blob::new(e.data))
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| CallError {
                retry: Retry::Permanent,
                message: format!(
                    "cannot build a PutRecords entry: {err}; this is a bug, please report it"
                ),
            })?;
        let sent = records.len();
        let answer = self
            .client
            .put_records()
            .stream_name(&self.stream)
            .set_records(Some(records))
            .send()
            .await
            .map_err(|err| self.call_error("PutRecords", &err))?;
        let outcomes: Vec<EntryOutcome> = answer
            .records()
            .iter()
            .map(
                |r| match (r.error_code(), r.shard_id(), r.sequence_number()) {
                    (None, Some(shard_id), Some(sequence_number)) => EntryOutcome::Written {
                        shard_id: shard_id.to_owned(),
                        sequence_number: sequence_number.to_owned(),
                    },
                    (code, _, _) => EntryOutcome::Failed {
                        code: code.unwrap_or("InternalFailure").to_owned(),
                        message: r.error_message().unwrap_or_default().to_owned(),
                    },
                },
            )
            .collect();
        if outcomes.len() != sent {
            return Err(CallError {
                retry: Retry::Transient,
                message: format!(
                    "kinesis PutRecords answered {} results for {sent} records; sending them again",
                    outcomes.len()
                ),
            });
        }
        Ok(outcomes)
    }

    async fn list_shards(&self) -> Result<Vec<ShardRange>, CallError> {
        let mut shards = Vec::new();
        let mut next_token: Option<String> = None;
        loop {
            let request = match &next_token {
                Some(token) => self.client.list_shards().next_token(token),
                None => self.client.list_shards().stream_name(&self.stream),
            };
            let page = request
                .send()
                .await
                .map_err(|err| self.call_error("ListShards", &err))?;
            for shard in page.shards() {
                let closed = shard
                    .sequence_number_range()
                    .is_some_and(|r| r.ending_sequence_number().is_some());
                let Some(range) = shard.hash_key_range() else {
                    continue;
                };
                if closed {
                    continue;
                }
                let id = shard.shard_id();
                let parse = |v| {
                    ShardMap::parse_hash_key(id, v).map_err(|err| CallError {
                        retry: Retry::Permanent,
                        message: format!("kinesis ListShards on stream {}: {err}", self.stream),
                    })
                };
                shards.push(ShardRange {
                    shard_id: id.to_owned(),
                    start: parse(range.starting_hash_key())?,
                    end: parse(range.ending_hash_key())?,
                });
            }
            match page.next_token() {
                Some(token) if !page.shards().is_empty() => next_token = Some(token.to_owned()),
                _ => return Ok(shards),
            }
        }
    }
}

/// Asks the credential chain of `sdk` for credentials once, so that "none
/// found" is reported as such rather than as a failed request.
pub async fn check_credentials(sdk: &SdkConfig, profile: Option<&str>) -> Result<(), KinesisError> {
    let described = match profile {
        Some(p) => format!("profile {p}"),
        None => std::env::var("AWS_PROFILE")
            .map(|p| format!("profile {p} from AWS_PROFILE"))
            .unwrap_or_else(|_| {
                "environment, default profile, SSO, container and instance role".to_owned()
            }),
    };
    let Some(provider) = sdk.credentials_provider() else {
        return Err(KinesisError::NoCredentials { profile: described });
    };
    match provider.provide_credentials().await {
        Ok(_) => Ok(()),
        Err(err) => {
            tracing::debug!(error = %aws_sdk_kinesis::error::DisplayErrorContext(&err), "credential chain failed");
            Err(KinesisError::NoCredentials { profile: described })
        }
    }
}

/// An SDK error, reduced to what the operator and the retry loop need.
enum Failure {
    /// No HTTP answer: connection refused, DNS, TLS, timeout.
    Unreachable(String),
    /// The service answered with an error.
    Service {
        /// Error code, e.g. `AccessDeniedException`.
        code: String,
        /// Error message.
        message: String,
    },
    /// Anything else (a request that could not be built, an unreadable answer).
    Other {
        /// A short label.
        code: String,
        /// The innermost cause.
        message: String,
    },
}

/// Sorts an SDK error into what the operator needs to read.
fn failure<E>(err: &SdkError<E, HttpResponse>) -> Failure
where
    E: ProvideErrorMetadata + StdError + 'static,
{
    match err {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => {
            Failure::Unreachable(innermost(err))
        }
        SdkError::ServiceError(service) => Failure::Service {
            code: err.code().unwrap_or("UnknownError").to_owned(),
            message: err
                .message()
                .map_or_else(|| innermost(service.err()), str::to_owned),
        },
        SdkError::ResponseError(_) => Failure::Other {
            code: "ResponseError".to_owned(),
            message: innermost(err),
        },
        _ => Failure::Other {
            code: "RequestError".to_owned(),
            message: innermost(err),
        },
    }
}

/// The deepest cause of an error: the part that says what actually happened
/// ("Connection refused (os error 111)") without the SDK's layers.
fn innermost(err: &(dyn StdError + 'static)) -> String {
    let mut current = err;
    while let Some(source) = current.source() {
        current = source;
    }
    current.to_string()
}

/// What to do about a refused call, by error code.
fn hint(code: &str) -> &'static str {
    match code {
        "AccessDeniedException" | "AccessDenied" => {
            "grant kinesis:DescribeStreamSummary, kinesis:ListShards and kinesis:PutRecords on the stream to these credentials"
        }
        "UnrecognizedClientException" | "InvalidSignatureException" | "ExpiredTokenException" => {
            "the credentials are not valid here: refresh them, or check --profile and --region"
        }
        "ResourceNotFoundException" => "create the stream or pass --stream",
        c if c.starts_with("KMS") => "check the stream's KMS key and the permission to use it",
        _ => "check the stream and try again",
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_kinesis::config::{Credentials, Region, SharedCredentialsProvider};

    use super::*;

    #[test]
    fn an_explicit_endpoint_wins_and_the_region_default_is_public() {
        let base = || {
            SdkConfig::builder()
                .region(Region::new("us-west-2"))
                .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
                    "id", "secret", None, None, "test",
                )))
        };
        let public = Target::of(&base().build());
        assert_eq!(public.endpoint, "https://kinesis.us-west-2.amazonaws.com");
        assert_eq!(public.region, "us-west-2");
        let local = Target::of(&base().endpoint_url("http://127.0.0.1:4567").build());
        assert_eq!(local.endpoint, "http://127.0.0.1:4567");
    }

    #[test]
    fn innermost_finds_the_root_cause() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let outer = std::io::Error::other(io);
        assert_eq!(innermost(&outer), "refused");
    }
}
