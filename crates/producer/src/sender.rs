//! What the producer needs from Kinesis ([`RecordSink`]: PutRecords and
//! ListShards behind a small trait, so tests can count or fake calls), and
//! the retry policy for what comes back failed.
//!
//! A PutRecords call can succeed while some of its entries fail
//! (`ProvisionedThroughputExceededException`, `InternalFailure`); the SDK does
//! not retry those. Core's [`RetryPolicy`], with the producer's
//! [`PRODUCER_RETRY`] by default, decides which entries are worth sending
//! again (core's classification of their error codes) and how long to wait:
//! exponential backoff with full jitter, a bounded number of attempts, after
//! which the reading is reported as failed.

use std::future::Future;
use std::time::Duration;

use wildrydes_core::retry::RetryPolicy;

use crate::shards::ShardRange;

/// One entry of a PutRecords call: one Kinesis record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutEntry {
    /// The partition key: the unicorn's name (with `--aggregate`, the first
    /// reading's unicorn's, whose shard all the others map to).
    pub partition_key: String,
    /// The record's data: the reading's JSON, or with `--aggregate` a KPL
    /// aggregated record of readings ([`wildrydes_core::kpl`]).
    pub data: Vec<u8>,
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

/// Whether a failure may go away if the same thing is sent again: core's
/// classification, the one every retry of the workspace uses.
pub use wildrydes_core::retry::Retry;

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

/// How often and how patiently failed entries are sent again: ten attempts
/// from 100 ms up to 5 s, about half a minute of patience, enough to ride out
/// a shard that is throttled for a few seconds. Which entries go again is
/// core's [`classify_code`](wildrydes_core::retry::classify_code) of their
/// error code.
pub const PRODUCER_RETRY: RetryPolicy =
    RetryPolicy::new(10, Duration::from_millis(100), Duration::from_secs(5));

#[cfg(test)]
mod tests {
    use wildrydes_core::retry::classify_code;

    use super::*;

    #[test]
    fn attempts_are_bounded() {
        let policy = PRODUCER_RETRY;
        assert!(policy.may_retry(1));
        assert!(policy.may_retry(9));
        assert!(!policy.may_retry(10));
        assert_eq!(policy.ceiling(1), Duration::from_millis(100));
        assert_eq!(policy.ceiling(40), Duration::from_secs(5));
    }

    #[test]
    fn throttling_and_internal_failures_are_transient() {
        for code in ["ProvisionedThroughputExceededException", "InternalFailure"] {
            assert_eq!(classify_code(code), Retry::Transient);
        }
        for code in [
            "KMSAccessDeniedException",
            "KMSDisabledException",
            "Whatever",
        ] {
            assert_eq!(classify_code(code), Retry::Permanent);
        }
    }
}
