//! `RetryPolicy`: the one retry policy of the workspace. Which failures are
//! worth trying again ([`Retry`]: of an SDK call, an error code of a call or
//! of one entry, an HTTP status), and how long to wait before the next try
//! (exponential backoff with full jitter, bounded in attempts and by the
//! caller's deadline).
//!
//! The SDK already retries a throttled or failed call a few times. This policy
//! sits above it: it retries what a successful call hands back refused (the
//! `UnprocessedItems` of BatchWriteItem, the failed entries of PutRecords),
//! which the SDK does not, and a call that failed even after the SDK's tries.
//! Its users: the table writer, the stream writer, the minute store, the
//! producer, the alarm (its notifiers, its state table, its claim polls) and
//! the daemon's consumer.
//!
//! Attempts are counted from 1: after the `n`-th failed attempt the caller
//! asks [`RetryPolicy::wait`] (or [`RetryPolicy::backoff`], which also
//! sleeps) with `n`; it says no once `n` attempts are all the policy allows
//! or when the wait would not end before the deadline.

use std::time::Duration;

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemError;
use rand::Rng as _;
use tokio::time::Instant;

/// When and how often to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included; past this the work is reported
    /// as failed. `u32::MAX` leaves only the deadline to bound them.
    pub max_attempts: u32,
    /// Ceiling of the first backoff; doubles on each attempt.
    pub base_delay: Duration,
    /// Ceiling of any one backoff.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// [`RetryPolicy::DEFAULT`].
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Whether a failed call may succeed if sent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Throttling, a server error, a timeout or a broken connection.
    Transient,
    /// The request itself is wrong (validation, missing table or stream,
    /// access denied, a disabled KMS key): sending it again gives the same
    /// answer.
    Permanent,
}

impl Retry {
    /// Whether this is [`Retry::Transient`].
    pub fn is_transient(self) -> bool {
        self == Self::Transient
    }

    /// [`Retry::Transient`] if `transient`, else [`Retry::Permanent`].
    pub fn transient_if(transient: bool) -> Self {
        if transient {
            Self::Transient
        } else {
            Self::Permanent
        }
    }
}

/// Error codes DynamoDB and Kinesis use, for a whole call or for one entry of
/// PutRecords, for a request that is fine but was not served now.
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
    /// Ten attempts from 50 ms up to 5 s: rides out a throttling burst of a
    /// few seconds, which is what on-demand tables produce while they scale.
    pub const DEFAULT: Self = Self::new(10, Duration::from_millis(50), Duration::from_secs(5));

    /// A policy of `max_attempts` attempts, backing off from `base_delay` up
    /// to `max_delay`; `const`, so each user can keep its own as a constant.
    pub const fn new(max_attempts: u32, base_delay: Duration, max_delay: Duration) -> Self {
        Self {
            max_attempts,
            base_delay,
            max_delay,
        }
    }

    /// The longest [`RetryPolicy::delay`] can be after `attempt` failed
    /// attempts: `base_delay · 2^(attempt-1)`, capped at `max_delay`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        self.base_delay
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20))
            .min(self.max_delay)
    }

    /// How long to wait after the `attempt`-th failed attempt (1 for the
    /// first): uniform between zero and [`RetryPolicy::ceiling`] ("full
    /// jitter"), so callers that failed together do not come back together.
    pub fn delay(&self, attempt: u32) -> Duration {
        let nanos = u64::try_from(self.ceiling(attempt).as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(rand::rng().random_range(0..=nanos))
    }

    /// Whether work that has been attempted `attempts` times may go again.
    pub fn may_retry(&self, attempts: u32) -> bool {
        attempts < self.max_attempts
    }

    /// The wait before trying again after the `attempt`-th failed attempt,
    /// or `None` when the policy allows no more attempts or the wait would
    /// not end before `deadline` (then the caller gives up now rather than
    /// sleep into its deadline).
    pub fn wait(&self, attempt: u32, deadline: Instant) -> Option<Duration> {
        if !self.may_retry(attempt) {
            return None;
        }
        let wait = self.delay(attempt);
        (Instant::now() + wait < deadline).then_some(wait)
    }

    /// Sleeps out [`RetryPolicy::wait`] and returns `true`, or returns
    /// `false` at once when it is `None`: `if !policy.backoff(n, deadline).await
    /// { give up }`.
    pub async fn backoff(&self, attempt: u32, deadline: Instant) -> bool {
        match self.wait(attempt, deadline) {
            Some(wait) => {
                tokio::time::sleep(wait).await;
                true
            }
            None => false,
        }
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

/// Classifies any failed SDK call (DynamoDB, Kinesis, SNS: every SDK shares
/// the error type); `modeled_transient` says whether the operation's own
/// error type already names a transient error. Timeouts, dispatch and
/// response failures, [transient codes](is_transient_code) and 5xx answers
/// are transient.
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
            Retry::transient_if(
                modeled_transient || transient_code || e.raw().status().is_server_error(),
            )
        }
        _ => Retry::Permanent,
    }
}

/// Classifies an AWS error code, of a whole call or of one entry of a call
/// (PutRecords' `ErrorCode`).
pub fn classify_code(code: &str) -> Retry {
    Retry::transient_if(is_transient_code(code))
}

/// Whether an AWS error code (DynamoDB or Kinesis, of a call or of one
/// entry) names a request that was fine but not served now.
pub fn is_transient_code(code: &str) -> bool {
    TRANSIENT_CODES.contains(&code)
}

/// Classifies an HTTP answer that is not a success: 408 (request timeout),
/// 429 (too many requests) and 5xx are transient; any other (a 404 from a
/// deleted webhook, a 403, a 400) is permanent.
pub fn classify_status(status: u16) -> Retry {
    Retry::transient_if(matches!(status, 408 | 429 | 500..=599))
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use aws_sdk_dynamodb::operation::get_item::GetItemError;

    use super::*;

    #[test]
    fn delays_grow_and_stay_under_their_ceiling() {
        for policy in [
            RetryPolicy::default(),
            RetryPolicy::new(10, Duration::from_millis(100), Duration::from_secs(5)),
        ] {
            for attempt in 1..40 {
                let ceiling =
                    (policy.base_delay * 2u32.pow((attempt - 1).min(20))).min(policy.max_delay);
                assert_eq!(policy.ceiling(attempt), ceiling, "attempt {attempt}");
                for _ in 0..20 {
                    assert!(policy.delay(attempt) <= ceiling, "attempt {attempt}");
                }
            }
            // Jitter: not every delay is the ceiling.
            let delays: HashSet<_> = (0..20).map(|_| policy.delay(3)).collect();
            assert!(delays.len() > 1);
        }
    }

    #[test]
    fn attempts_are_bounded() {
        let policy = RetryPolicy::default();
        assert!(policy.may_retry(1));
        assert!(policy.may_retry(9));
        assert!(!policy.may_retry(10));
        let deadline = Instant::now() + Duration::from_secs(3600);
        assert!(policy.wait(9, deadline).is_some());
        assert_eq!(policy.wait(10, deadline), None);
        // No attempt allowed still means one call, never a retry.
        let none = RetryPolicy {
            max_attempts: 0,
            ..policy
        };
        assert_eq!(none.wait(1, deadline), None);
        let endless = RetryPolicy {
            max_attempts: u32::MAX,
            ..policy
        };
        assert!(endless.wait(1_000_000, deadline).is_some());
    }

    #[test]
    fn no_wait_ends_past_the_deadline() {
        let policy = RetryPolicy::new(10, Duration::from_secs(1), Duration::from_secs(1));
        let far = Instant::now() + Duration::from_secs(3600);
        for attempt in 1..10 {
            let wait = policy.wait(attempt, far).expect("far deadline");
            assert!(wait <= policy.ceiling(attempt));
        }
        // A deadline already reached (or reached by any wait) allows none.
        assert_eq!(policy.wait(1, Instant::now()), None);
    }

    #[tokio::test(start_paused = true)]
    async fn backoff_sleeps_only_when_it_retries() {
        let policy = RetryPolicy::new(3, Duration::from_millis(100), Duration::from_millis(100));
        let start = Instant::now();
        assert!(policy.backoff(1, start + Duration::from_secs(1)).await);
        assert!(start.elapsed() <= Duration::from_millis(100));
        let before = Instant::now();
        assert!(!policy.backoff(3, start + Duration::from_secs(60)).await);
        assert!(!policy.backoff(1, before).await);
        assert_eq!(Instant::now(), before);
    }

    #[test]
    fn throttling_and_internal_failures_are_transient() {
        // DynamoDB calls, Kinesis calls and PutRecords entries.
        for code in [
            "ProvisionedThroughputExceededException",
            "RequestLimitExceeded",
            "ThrottlingException",
            "InternalServerError",
            "InternalFailure",
            "ServiceUnavailable",
            "KMSThrottlingException",
            "LimitExceededException",
        ] {
            assert_eq!(classify_code(code), Retry::Transient, "{code}");
            assert!(is_transient_code(code), "{code}");
        }
        for code in [
            "ValidationException",
            "ResourceNotFoundException",
            "AccessDeniedException",
            "KMSAccessDeniedException",
            "KMSDisabledException",
            "Whatever",
        ] {
            assert_eq!(classify_code(code), Retry::Permanent, "{code}");
        }
    }

    #[test]
    fn http_statuses_are_transient_when_throttled_timed_out_or_failed() {
        for status in [408, 429, 500, 502, 503, 504, 599] {
            assert_eq!(classify_status(status), Retry::Transient, "{status}");
        }
        for status in [300, 400, 401, 403, 404, 410, 413, 422, 600] {
            assert_eq!(classify_status(status), Retry::Permanent, "{status}");
        }
    }

    #[test]
    fn sdk_errors_are_transient_when_the_call_never_got_an_answer() {
        let timeout: SdkError<GetItemError, HttpResponse> =
            SdkError::timeout_error("attempt timed out");
        assert_eq!(classify_sdk(&timeout, false), Retry::Transient);
        let unbuildable: SdkError<GetItemError, HttpResponse> =
            SdkError::construction_failure("missing table name");
        assert_eq!(classify_sdk(&unbuildable, true), Retry::Permanent);
        assert!(Retry::Transient.is_transient());
        assert!(!Retry::Permanent.is_transient());
    }
}
