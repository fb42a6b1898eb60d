//! `RetryPolicy`: which failures of a DynamoDB write are worth trying again,
//! and how long to wait before the next try.
//!
//! The SDK already retries a throttled or failed call a few times. This policy
//! sits above it: it retries the `UnprocessedItems` that a successful call hands
//! back (the SDK does not) and a call that failed even after the SDK's tries,
//! with exponential backoff and full jitter, within the caller's deadline.

use std::time::Duration;

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemError;
use rand::Rng as _;

/// When and how often to retry a write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Calls per chunk, the first included; past this the chunk is reported as failed.
    pub max_attempts: u32,
    /// Ceiling of the first backoff; doubles on each attempt.
    pub base_delay: Duration,
    /// Ceiling of any one backoff.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// Ten attempts from 50 ms up to 5 s: rides out a throttling burst of a
    /// few seconds, which is what on-demand tables produce while they scale.
    fn default() -> Self {
        Self {
            max_attempts: 10,
            base_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(5),
        }
    }
}

/// Whether a failed call may succeed if sent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Throttling, a server error, a timeout or a broken connection.
    Transient,
    /// The request itself is wrong (validation, missing table, access denied):
    /// sending it again gives the same answer.
    Permanent,
}

/// Error codes DynamoDB and Kinesis use (for a whole call or one entry of
/// PutRecords) for a request that is fine but was not served now.
const TRANSIENT_CODES: [&str; 10] = [
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "ThrottlingException",
    "Throttling",
    "InternalServerError",
    "InternalFailure",
    "ServiceUnavailable",
    "TransactionInProgressException",
    "KMSThrottlingException",
    "LimitExceededException",
];

impl RetryPolicy {
    /// How long to wait before attempt `attempt` (1 is the first retry):
    /// uniform in zero to the doubled ceiling ("full jitter"), so writers that
    /// were throttled together do not come back together.
    pub fn delay(&self, attempt: u32) -> Duration {
        let ceiling = self
            .base_delay
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20))
            .min(self.max_delay);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(rand::rng().random_range(0..=nanos))
    }

    /// Classifies a failed BatchWriteItem call.
    pub fn classify(error: &SdkError<BatchWriteItemError, HttpResponse>) -> Retry {
        let modeled = matches!(
            error.as_service_error(),
            Some(
                BatchWriteItemError::ProvisionedThroughputExceededException(_)
                    | BatchWriteItemError::RequestLimitExceeded(_)
                    | BatchWriteItemError::ThrottlingException(_)
                    | BatchWriteItemError::InternalServerError(_)
            )
        );
        classify_sdk(error, modeled)
    }
}

/// Classifies any failed SDK call; `modeled_transient` says whether the
/// operation's own error type already names a transient error.
pub fn classify_sdk<E: ProvideErrorMetadata>(
    error: &SdkError<E, HttpResponse>,
    modeled_transient: bool,
) -> Retry {
    match error {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            Retry::Transient
        }
        SdkError::ServiceError(e) => {
            let transient_code = e.err().code().is_some_and(is_transient_code);
            if modeled_transient || transient_code || e.raw().status().is_server_error() {
                Retry::Transient
            } else {
                Retry::Permanent
            }
        }
        _ => Retry::Permanent,
    }
}

/// Whether an AWS error code names a request that was fine but not served now.
pub fn is_transient_code(code: &str) -> bool {
    TRANSIENT_CODES.contains(&code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_but_stay_under_the_ceiling() {
        let policy = RetryPolicy::default();
        for attempt in 1..40 {
            let ceiling =
                (policy.base_delay * 2u32.pow((attempt - 1).min(20))).min(policy.max_delay);
            assert!(policy.delay(attempt) <= ceiling, "attempt {attempt}");
        }
    }
}
