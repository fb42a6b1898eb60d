//! PutRecords batching: picks which pending readings go into the next call,
//! within the service's limits (500 records and 5 MiB of data plus partition
//! keys per call) and the shard pacer's.
//!
//! Each candidate is the oldest unsent reading of one unicorn, so a call never
//! carries two readings of the same unicorn: if one entry fails, nothing newer
//! of that unicorn can overtake it. Candidates come oldest first, so retried
//! readings go before fresh ones and no unicorn starves.

/// Most records one PutRecords call may carry.
pub const MAX_RECORDS_PER_CALL: usize = 500;
/// Most bytes (data plus partition keys) one PutRecords call may carry: 5 MiB.
pub const MAX_BYTES_PER_CALL: usize = 5 * 1024 * 1024;

/// Limits of one PutRecords call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// Most records per call.
    pub records: usize,
    /// Most bytes (data plus partition keys) per call.
    pub bytes: usize,
}

impl Default for BatchLimits {
    /// The service's limits.
    fn default() -> Self {
        Self {
            records: MAX_RECORDS_PER_CALL,
            bytes: MAX_BYTES_PER_CALL,
        }
    }
}

/// A reading that could go into the next call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    /// Index of the unicorn in the fleet.
    pub unicorn: usize,
    /// Index of the shard its partition key maps to.
    pub shard: usize,
    /// Its size as the service counts it: data plus partition key.
    pub bytes: usize,
}

/// Chooses the next call's entries from `candidates` (oldest first): takes
/// each in turn while the call has room and `admit` (the shard pacer) agrees;
/// a candidate whose shard is full is skipped, the others still go. Returns
/// the chosen unicorns in order.
///
/// `admit` is asked only about candidates that fit the call, and counts what
/// it admits, so it must be asked exactly once per chosen entry.
pub fn plan(
    candidates: impl IntoIterator<Item = Candidate>,
    limits: BatchLimits,
    mut admit: impl FnMut(&Candidate) -> bool,
) -> Vec<usize> {
    let mut chosen = Vec::new();
    let mut bytes = 0usize;
    for candidate in candidates {
        if chosen.len() >= limits.records {
            break;
        }
        if bytes + candidate.bytes > limits.bytes {
            // Readings are small and alike; the next ones would not fit either.
            break;
        }
        if admit(&candidate) {
            bytes += candidate.bytes;
            chosen.push(candidate.unicorn);
        }
    }
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidates(n: usize, bytes: usize, shards: usize) -> Vec<Candidate> {
        (0..n)
            .map(|unicorn| Candidate {
                unicorn,
                shard: unicorn % shards,
                bytes,
            })
            .collect()
    }

    #[test]
    fn a_call_carries_at_most_500_records() {
        let chosen = plan(candidates(1_200, 180, 1), BatchLimits::default(), |_| true);
        assert_eq!(chosen.len(), 500);
        assert_eq!(chosen, (0..500).collect::<Vec<_>>());
    }

    #[test]
    fn a_call_carries_at_most_5_mib() {
        let big = 100 * 1024;
        let chosen = plan(candidates(100, big, 1), BatchLimits::default(), |_| true);
        assert_eq!(chosen.len(), MAX_BYTES_PER_CALL / big);
        assert!(chosen.len() * big <= MAX_BYTES_PER_CALL);
    }

    #[test]
    fn a_full_shard_is_skipped_and_others_still_go() {
        let mut per_shard = [0usize; 2];
        let chosen = plan(candidates(10, 100, 2), BatchLimits::default(), |c| {
            if c.shard == 0 && per_shard[0] == 2 {
                return false;
            }
            per_shard[c.shard] += 1;
            true
        });
        assert_eq!(chosen, [0, 1, 2, 3, 5, 7, 9]);
    }

    #[test]
    fn the_pacer_is_asked_once_per_entry_that_fits() {
        let mut asked = 0;
        let limits = BatchLimits {
            records: 3,
            bytes: 1_000,
        };
        let chosen = plan(candidates(10, 100, 1), limits, |_| {
            asked += 1;
            true
        });
        assert_eq!(chosen.len(), 3);
        assert_eq!(asked, 3);
    }
}
