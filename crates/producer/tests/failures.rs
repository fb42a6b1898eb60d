//! What the producer does when Kinesis keeps refusing: entries retried a
//! bounded number of times and then reported, permanent refusals reported at
//! once, failed calls retried, and a refused call that can never succeed
//! stopping the run with everything unsent counted. A scripted sink on
//! tokio's paused clock makes the backoffs instant.

mod common;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use common::{fleet, settings};
use wildrydes_core::Reading;
use wildrydes_core::retry::RetryPolicy;
use wildrydes_producer::app::{EXIT_ERROR, EXIT_LOST, exit_status};
use wildrydes_producer::sender::{CallError, EntryOutcome, PutEntry, RecordSink, Retry};
use wildrydes_producer::shards::ShardRange;

/// A one-shard stream that refuses some unicorns' entries with a fixed code,
/// and fails the first few calls outright.
struct Scripted {
    /// Partition key to the error code its entries always get.
    refuse: HashMap<String, &'static str>,
    /// Calls still to fail as a whole, and how.
    failing_calls: Mutex<Vec<CallError>>,
    /// Data accepted, in order.
    written: Mutex<Vec<(String, Vec<u8>)>>,
}

impl Scripted {
    fn new(refuse: &[(&str, &'static str)], failing_calls: Vec<CallError>) -> Self {
        Self {
            refuse: refuse.iter().map(|(k, c)| ((*k).to_owned(), *c)).collect(),
            failing_calls: Mutex::new(failing_calls),
            written: Mutex::new(Vec::new()),
        }
    }
}

impl RecordSink for Scripted {
    async fn put_records(&self, entries: Vec<PutEntry>) -> Result<Vec<EntryOutcome>, CallError> {
        if let Some(err) = self.failing_calls.lock().expect("not poisoned").pop() {
            return Err(err);
        }
        let mut written = self.written.lock().expect("not poisoned");
        Ok(entries
            .into_iter()
            .map(|e| match self.refuse.get(&e.partition_key) {
                Some(code) => EntryOutcome::Failed {
                    code: (*code).to_owned(),
                    message: "scripted".to_owned(),
                },
                None => {
                    written.push((e.partition_key, e.data));
                    EntryOutcome::Written {
                        shard_id: "shardId-000000000000".to_owned(),
                        sequence_number: written.len().to_string(),
                    }
                }
            })
            .collect())
    }

    async fn list_shards(&self) -> Result<Vec<ShardRange>, CallError> {
        Ok(vec![ShardRange {
            shard_id: "shardId-000000000000".to_owned(),
            start: 0,
            end: u128::MAX,
        }])
    }
}

fn quick_retries() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(100),
    }
}

#[tokio::test(start_paused = true)]
async fn refused_entries_are_retried_then_reported_and_the_rest_goes_on() {
    let transient = CallError {
        retry: Retry::Transient,
        message: "scripted connection reset".to_owned(),
    };
    let sink = Scripted::new(
        &[
            ("Unicorn-0002", "ProvisionedThroughputExceededException"),
            ("Unicorn-0003", "KMSAccessDeniedException"),
        ],
        vec![transient.clone(), transient],
    );
    let mut s = settings(fleet(4), "scripted", 1, 5);
    s.retry = quick_retries();
    let summary = common::run_into(&s, &sink).await;

    let by_name: HashMap<&str, _> = summary
        .unicorns
        .iter()
        .map(|u| (u.name.as_str(), u))
        .collect();
    // Throttled every time: three attempts each, then reported.
    let throttled = by_name["Unicorn-0002"];
    assert_eq!((throttled.sent, throttled.failed), (0, 5));
    // Refused for good: reported at once (the two failed calls were retried).
    let refused = by_name["Unicorn-0003"];
    assert_eq!((refused.sent, refused.failed), (0, 5));
    assert!(refused.retried <= 2, "{summary}");
    // The others lost nothing, despite the two failed calls.
    for name in ["Unicorn-0001", "Unicorn-0004"] {
        let u = by_name[name];
        assert_eq!((u.generated, u.sent, u.failed), (5, 5, 0), "{summary}");
    }
    // The failed calls were retried: each carried the unicorns whose
    // backoff had run out (jitter decides which), at most both calls each.
    let call_retries = by_name["Unicorn-0001"].retried + by_name["Unicorn-0004"].retried;
    assert!((1..=4).contains(&call_retries), "{summary}");
    assert!(!summary.is_complete());
    assert_eq!(exit_status(&summary), EXIT_LOST);
    assert!(summary.to_string().contains("failed 10"), "{summary}");

    // What was accepted is in order per unicorn.
    let written = sink.written.lock().unwrap();
    for name in ["Unicorn-0001", "Unicorn-0004"] {
        let times: Vec<i64> = written
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, d)| Reading::from_json(d).unwrap().status_time.epoch_millis())
            .collect();
        assert_eq!(times.len(), 5);
        assert!(
            times.windows(2).all(|w| w[0] + 1000 == w[1]),
            "{name}: {times:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_call_refused_for_good_stops_the_run_and_counts_what_was_not_sent() {
    let sink = Scripted::new(
        &[],
        vec![CallError {
            retry: Retry::Permanent,
            message: "kinesis PutRecords on stream scripted failed: AccessDeniedException: no"
                .to_owned(),
        }],
    );
    let s = settings(fleet(3), "scripted", 1, 10);
    let summary = common::run_into(&s, &sink).await;
    assert_eq!(
        summary.aborted.as_deref(),
        Some("kinesis PutRecords on stream scripted failed: AccessDeniedException: no")
    );
    let (generated, sent, _, failed, unsent) = summary.total();
    assert_eq!(sent, 0);
    assert_eq!(failed, 0);
    assert_eq!(unsent, generated);
    assert!(generated >= 3);
    assert_eq!(exit_status(&summary), EXIT_ERROR);
}
