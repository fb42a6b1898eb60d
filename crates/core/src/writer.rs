//! `TableWriter`: puts items into a DynamoDB table with BatchWriteItem, the way
//! the workshop's function should have.
//!
//! - Chunks of at most 25 puts, several chunks in flight at once (bounded).
//! - `UnprocessedItems` are retried with backoff and jitter until the deadline;
//!   the original dropped them.
//! - The caller gets, per item, whether it is durably written, so it can tell
//!   Lambda or its checkpoint exactly where to resume.
//!
//! Items must have distinct keys (DynamoDB refuses a whole call otherwise):
//! [`crate::process`] dedupes before calling.
//!
//! The writer takes the records and the function that maps one to its item,
//! not the items: each attempt maps the records it sends and moves the items
//! into the request (the SDK takes them by value), so the first attempt, the
//! one that nearly always succeeds, maps each record once and clones nothing.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU32, Ordering};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
use futures::StreamExt as _;
use tokio::time::Instant;

use crate::item::Item;
use crate::retry::{Retry, RetryPolicy};

/// Most puts DynamoDB takes in one BatchWriteItem call.
pub const MAX_BATCH_PUTS: usize = 25;

/// Chunks in flight at once by default: enough to hide the round trip,
/// few enough not to throttle a fresh on-demand table.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 8;

/// How a table writer behaves.
#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// BatchWriteItem calls in flight at once.
    pub max_in_flight: usize,
    /// Retries of unprocessed items and failed calls.
    pub retry: RetryPolicy,
}

impl Default for WriterConfig {
    fn default() -> Self {
        Self {
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            retry: RetryPolicy::default(),
        }
    }
}

/// What a [`TableWriter::put_all`] call achieved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteReport {
    /// Per item given, in order: whether DynamoDB acknowledged it.
    pub written: Vec<bool>,
    /// Calls sent again (unprocessed items or a transient failure).
    pub retries: u32,
    /// The last failure seen, for the log, if any item is not written.
    pub last_error: Option<String>,
}

impl WriteReport {
    /// How many items are written.
    pub fn written_count(&self) -> usize {
        self.written.iter().filter(|w| **w).count()
    }
}

/// Writes items to one table.
#[derive(Debug, Clone)]
pub struct TableWriter {
    client: Client,
    table: String,
    config: WriterConfig,
}

/// The records of one chunk still to be written, by their index in the call.
type Pending = Vec<usize>;

impl TableWriter {
    /// A writer of `table` through `client`.
    pub fn new(client: Client, table: impl Into<String>, config: WriterConfig) -> Self {
        Self {
            client,
            table: table.into(),
            config,
        }
    }

    /// The table written to.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Puts the item of every record (`to_item` maps one), retrying what
    /// DynamoDB does not take until `deadline` (no backoff is started that
    /// would end after it). `key_names` are the table's key attributes, used
    /// to match unprocessed items to their record.
    pub async fn put_all<T: Sync>(
        &self,
        records: &[T],
        to_item: impl Fn(&T) -> Item + Sync,
        key_names: &[&str],
        deadline: Instant,
    ) -> WriteReport {
        let count = records.len();
        let retries = AtomicU32::new(0);
        let chunks = (0..count)
            .step_by(MAX_BATCH_PUTS)
            .map(|start| (start..count.min(start + MAX_BATCH_PUTS)).collect::<Pending>());
        let call = Call {
            records,
            to_item: &to_item,
            key_names,
            deadline,
            retries: &retries,
        };
        let results: Vec<_> = futures::stream::iter(chunks)
            .map(|pending| self.put_chunk(&call, pending))
            .buffer_unordered(self.config.max_in_flight.max(1))
            .collect()
            .await;
        let mut report = WriteReport {
            written: vec![false; count],
            retries: retries.into_inner(),
            last_error: None,
        };
        for (done, error) in results {
            for i in done {
                report.written[i] = true;
            }
            if error.is_some() {
                report.last_error = error;
            }
        }
        report
    }

    /// Writes one chunk (`pending`, indexes into `call.records`); returns
    /// the indexes written and the last error.
    async fn put_chunk<T, F: Fn(&T) -> Item>(
        &self,
        call: &Call<'_, T, F>,
        mut pending: Pending,
    ) -> (Vec<usize>, Option<String>) {
        let Call {
            records,
            to_item,
            key_names,
            deadline,
            retries,
        } = *call;
        let mut done = Vec::with_capacity(pending.len());
        let mut last_error = None;
        let policy = &self.config.retry;
        let mut attempts = 0;
        loop {
            if attempts > 0 {
                if !policy.backoff(attempts, deadline).await {
                    last_error.get_or_insert_with(|| {
                        "deadline reached before all items were written".to_owned()
                    });
                    break;
                }
                retries.fetch_add(1, Ordering::Relaxed);
            }
            attempts += 1;
            let requests = pending
                .iter()
                .map(|&i| {
                    let put = PutRequest::builder()
                        .set_item(Some(to_item(&records[i])))
                        .build();
                    put.map(|p| WriteRequest::builder().put_request(p).build())
                })
                .collect::<Result<Vec<_>, _>>();
            let requests = match requests {
                Ok(r) => r,
                Err(e) => return (done, Some(format!("cannot build a put request: {e}"))),
            };
            let send = self
                .client
                .batch_write_item()
                .request_items(&self.table, requests)
                .send();
            let output = match tokio::time::timeout_at(deadline, send).await {
                Err(_) => {
                    last_error = Some("deadline reached during a BatchWriteItem call".to_owned());
                    break;
                }
                Ok(Err(e)) => {
                    let retry = RetryPolicy::classify(&e);
                    let message = format!(
                        "BatchWriteItem on table {} failed: {}",
                        self.table,
                        aws_sdk_dynamodb::error::DisplayErrorContext(&e)
                    );
                    tracing::warn!(table = %self.table, ?retry, error = %message, "write failed");
                    last_error = Some(message);
                    if retry == Retry::Permanent {
                        break;
                    }
                    continue;
                }
                Ok(Ok(output)) => output,
            };
            let unprocessed: Vec<Item> = output
                .unprocessed_items
                .and_then(|mut by_table| by_table.remove(&self.table))
                .unwrap_or_default()
                .into_iter()
                .filter_map(|w| w.put_request.map(|p| p.item))
                .collect();
            if unprocessed.is_empty() {
                done.extend(pending);
                return (done, None);
            }
            let left: HashSet<Vec<String>> = unprocessed
                .iter()
                .map(|item| key_of(item, key_names))
                .collect();
            let (still, written): (Pending, Pending) = pending
                .into_iter()
                .partition(|&i| left.contains(&key_of(&to_item(&records[i]), key_names)));
            done.extend(written);
            pending = still;
            last_error = Some(format!(
                "{} items left unprocessed by DynamoDB (throttled)",
                pending.len()
            ));
        }
        (done, last_error)
    }
}

/// One [`TableWriter::put_all`] call: what all its chunks share.
struct Call<'a, T, F> {
    records: &'a [T],
    to_item: &'a F,
    key_names: &'a [&'a str],
    deadline: Instant,
    retries: &'a AtomicU32,
}

impl<T, F> Clone for Call<'_, T, F> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T, F> Copy for Call<'_, T, F> {}

/// An item's key, as text, for matching unprocessed items to ours.
fn key_of(item: &Item, key_names: &[&str]) -> Vec<String> {
    key_names
        .iter()
        .map(|k| item.get(*k).map(|v| format!("{v:?}")).unwrap_or_default())
        .collect()
}
