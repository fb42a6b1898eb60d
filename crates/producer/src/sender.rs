//! What the producer needs from Kinesis ([`RecordSink`]: PutRecords and
//! ListShards behind a small trait, so tests can count or fake calls), and
//! the retry policy for what comes back failed.
//!
//! A PutRecords call can succeed while some of its entries fail
//! (`ProvisionedThroughputExceededException`, `InternalFailure`); the SDK does
//! not retry those. [`RetryPolicy`] decides which entries are worth sending
//! again and how long to wait: exponential backoff with full jitter, a bounded
//! number of attempts, after which the reading is reported as failed.

use std::future::Future;
use std::time::Duration;

use rand::Rng as _;

use crate::shards::ShardRange;

/// One entry of a PutRecords call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutEntry {
    /// The partition key: the unicorn's name.
    pub partition_key: String,
    /// The record's data: the reading's JSON.
    pub data: String,
}

impl PutEntry {
    /// Size as the service counts it against its limits: data plus key.
    pub fn size(&self) -> usize {
        self.data.len() + self.partition_key.len()
    }
}

/// What happened to one entry of a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryOutcome {
    /// Stored: where and under which sequence number.
    Written {
        /// The shard it went to.
        shard_id: String,
        /// Its sequence number in that shard.
        sequence_number: String,
    },
    /// Refused for this call.
    Failed {
        /// The service's error code, e.g. `ProvisionedThroughputExceededException`.
        code: String,
        /// The service's explanation.
        message: String,
    },
}

/// Whether a failure may go away if the same thing is sent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Throttling, an internal failure, a timeout, a dropped connection.
    Transient,
    /// The request itself is refused (missing stream, no permission, a
    /// disabled KMS key): sending it again gives the same answer.
    Permanent,
}

/// A whole PutRecords or ListShards call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CallError {
    /// Whether to try the call again.
    pub retry: Retry,
    /// One line for the operator: what failed, why, and what to do.
    pub message: String,
}

/// The Kinesis operations the producer's loop uses, on one stream.
pub trait RecordSink: Send + Sync {
    /// Sends one PutRecords call; on success returns one outcome per entry,
    /// in order.
    fn put_records(
        &self,
        entries: Vec<PutEntry>,
    ) -> impl Future<Output = Result<Vec<EntryOutcome>, CallError>> + Send;

    /// Lists the stream's open shards with their hash key ranges.
    fn list_shards(&self) -> impl Future<Output = Result<Vec<ShardRange>, CallError>> + Send;
}

/// Entry error codes that mean "not now" rather than "never".
const TRANSIENT_ENTRY_CODES: [&str; 4] = [
    "ProvisionedThroughputExceededException",
    "InternalFailure",
    "KMSThrottlingException",
    "ServiceUnavailable",
];

/// How often and how patiently failed entries are sent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Calls that may carry one reading, the first included; after that the
    /// reading is reported as failed.
    pub max_attempts: u32,
    /// Ceiling of the first backoff; doubles with each attempt.
    pub base_delay: Duration,
    /// Ceiling of any backoff.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// Ten attempts from 100 ms up to 5 s: about half a minute of patience,
    /// enough to ride out a shard that is throttled for a few seconds.
    fn default() -> Self {
        Self {
            max_attempts: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// How long to wait after the `attempt`-th failed attempt (1 for the
    /// first): uniform between zero and `base · 2^(attempt-1)`, capped ("full
    /// jitter"), so unicorns throttled together do not come back together.
    pub fn delay(&self, attempt: u32) -> Duration {
        let ceiling = self
            .base_delay
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20))
            .min(self.max_delay);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(rand::rng().random_range(0..=nanos))
    }

    /// Whether a reading that has been attempted `attempts` times may go again.
    pub fn may_retry(&self, attempts: u32) -> bool {
        attempts < self.max_attempts
    }

    /// Classifies the error code of a failed entry.
    pub fn classify_entry(code: &str) -> Retry {
        if TRANSIENT_ENTRY_CODES.contains(&code) {
            Retry::Transient
        } else {
            Retry::Permanent
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_stay_under_their_ceiling() {
        let policy = RetryPolicy::default();
        for attempt in 1..40 {
            let ceiling =
                (policy.base_delay * 2u32.pow((attempt - 1).min(20))).min(policy.max_delay);
            for _ in 0..20 {
                assert!(policy.delay(attempt) <= ceiling, "attempt {attempt}");
            }
        }
        // Jitter: not every delay is the ceiling.
        let delays: std::collections::HashSet<_> = (0..20).map(|_| policy.delay(3)).collect();
        assert!(delays.len() > 1);
    }

    #[test]
    fn attempts_are_bounded() {
        let policy = RetryPolicy::default();
        assert!(policy.may_retry(1));
        assert!(policy.may_retry(9));
        assert!(!policy.may_retry(10));
    }

    #[test]
    fn throttling_and_internal_failures_are_transient() {
        for code in ["ProvisionedThroughputExceededException", "InternalFailure"] {
            assert_eq!(RetryPolicy::classify_entry(code), Retry::Transient);
        }
        for code in [
            "KMSAccessDeniedException",
            "KMSDisabledException",
            "Whatever",
        ] {
            assert_eq!(RetryPolicy::classify_entry(code), Retry::Permanent);
        }
    }
}
