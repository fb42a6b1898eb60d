//! `StreamWriter`: puts records on a Kinesis stream with PutRecords, losing
//! none: entries the service refuses (throttling, internal failures) are sent
//! again with backoff and jitter until the deadline, and the caller learns
//! which records are acknowledged.
//!
//! Calls stay within the service limits: at most 500 records and 5 MiB each.

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::operation::put_records::PutRecordsError;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use tokio::time::Instant;

use crate::retry::{Retry, RetryPolicy, classify_sdk, is_transient_code};

/// Most records in one PutRecords call.
pub const MAX_PUT_RECORDS: usize = 500;
/// Most bytes (data plus partition keys) in one PutRecords call.
pub const MAX_PUT_BYTES: usize = 5 * 1024 * 1024;

/// A record to put: its partition key and data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutRecord {
    /// Partition key: the unicorn's name, so its records stay in one shard, in order.
    pub partition_key: String,
    /// The payload.
    pub data: Vec<u8>,
}

/// What became of one record put.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acknowledged {
    /// The shard it landed in.
    pub shard_id: String,
    /// Its sequence number there.
    pub sequence_number: String,
}

/// What a [`StreamWriter::put_all`] call achieved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PutReport {
    /// Per record given, in order: where it landed, or `None` if it did not.
    pub acknowledged: Vec<Option<Acknowledged>>,
    /// Entries or calls sent again.
    pub retries: u32,
    /// The last failure seen, if any record is not acknowledged.
    pub last_error: Option<String>,
}

impl PutReport {
    /// Whether every record is acknowledged.
    pub fn complete(&self) -> bool {
        self.acknowledged.iter().all(Option::is_some)
    }
}

/// Puts records on one stream.
#[derive(Debug, Clone)]
pub struct StreamWriter {
    client: Client,
    stream: String,
    retry: RetryPolicy,
}

impl StreamWriter {
    /// A writer to `stream` (a name or an ARN) through `client`.
    pub fn new(client: Client, stream: impl Into<String>, retry: RetryPolicy) -> Self {
        Self {
            client,
            stream: stream.into(),
            retry,
        }
    }

    /// The stream written to.
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// Puts every record, in calls within the service limits, retrying what
    /// is refused until `deadline`.
    pub async fn put_all(&self, records: &[OutRecord], deadline: Instant) -> PutReport {
        let mut report = PutReport {
            acknowledged: vec![None; records.len()],
            ..PutReport::default()
        };
        let mut pending: Vec<usize> = (0..records.len()).collect();
        let mut attempts = 0;
        while !pending.is_empty() {
            if attempts > 0 {
                if !self.retry.backoff(attempts, deadline).await {
                    report.last_error.get_or_insert_with(|| {
                        "deadline reached before all records were put".into()
                    });
                    break;
                }
                report.retries += 1;
            }
            attempts += 1;
            let mut still = Vec::new();
            for call in calls(records, &pending) {
                match self.put_call(records, &call, deadline, &mut report).await {
                    Ok(refused) => still.extend(refused),
                    Err(Retry::Transient) => still.extend(call),
                    Err(Retry::Permanent) => return report,
                }
            }
            pending = still;
        }
        report
    }

    /// One PutRecords call; returns the indexes refused, or how the whole call failed.
    async fn put_call(
        &self,
        records: &[OutRecord],
        call: &[usize],
        deadline: Instant,
        report: &mut PutReport,
    ) -> Result<Vec<usize>, Retry> {
        let entries = call
            .iter()
            .map(|&i| {
                PutRecordsRequestEntry::builder()
                    .partition_key(&records[i].partition_key)
                    .data(Blob::new(records[i].data.clone()))
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| {
                report.last_error = Some(format!("cannot build a PutRecords entry: {e}"));
                Retry::Permanent
            })?;
        let mut request = self.client.put_records().set_records(Some(entries));
        request = if self.stream.starts_with("arn:") {
            request.stream_arn(&self.stream)
        } else {
            request.stream_name(&self.stream)
        };
        let output = match tokio::time::timeout_at(deadline, request.send()).await {
            Err(_) => {
                report.last_error = Some("deadline reached during a PutRecords call".into());
                return Err(Retry::Permanent);
            }
            Ok(Err(e)) => {
                let modeled = matches!(
                    e.as_service_error(),
                    Some(
                        PutRecordsError::ProvisionedThroughputExceededException(_)
                            | PutRecordsError::KmsThrottlingException(_)
                    )
                );
                let retry = classify_sdk(&e, modeled);
                let message = format!(
                    "PutRecords to stream {} failed: {}",
                    self.stream,
                    aws_sdk_kinesis::error::DisplayErrorContext(&e)
                );
                tracing::warn!(stream = %self.stream, ?retry, error = %message, "put failed");
                report.last_error = Some(message);
                return Err(retry);
            }
            Ok(Ok(output)) => output,
        };
        let mut refused = Vec::new();
        for (&i, entry) in call.iter().zip(output.records()) {
            match (
                entry.shard_id(),
                entry.sequence_number(),
                entry.error_code(),
            ) {
                (Some(shard_id), Some(sequence_number), None) => {
                    report.acknowledged[i] = Some(Acknowledged {
                        shard_id: shard_id.to_owned(),
                        sequence_number: sequence_number.to_owned(),
                    });
                }
                (_, _, code) => {
                    let code = code.unwrap_or("no sequence number");
                    report.last_error = Some(format!(
                        "stream {} refused a record: {code}: {}",
                        self.stream,
                        entry.error_message().unwrap_or_default()
                    ));
                    if !is_transient_code(code) && code != "no sequence number" {
                        tracing::warn!(stream = %self.stream, code, "record refused for good");
                        continue;
                    }
                    refused.push(i);
                }
            }
        }
        Ok(refused)
    }
}

/// Splits the pending record indexes into calls within the service limits.
fn calls(records: &[OutRecord], pending: &[usize]) -> Vec<Vec<usize>> {
    let mut calls = Vec::new();
    let mut call = Vec::new();
    let mut bytes = 0;
    for &i in pending {
        let size = records[i].data.len() + records[i].partition_key.len();
        if !call.is_empty() && (call.len() == MAX_PUT_RECORDS || bytes + size > MAX_PUT_BYTES) {
            calls.push(std::mem::take(&mut call));
            bytes = 0;
        }
        call.push(i);
        bytes += size;
    }
    if !call.is_empty() {
        calls.push(call);
    }
    calls
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(key: &str, size: usize) -> OutRecord {
        OutRecord {
            partition_key: key.into(),
            data: vec![b'x'; size],
        }
    }

    #[test]
    fn calls_stay_within_count_and_size_limits() {
        let records: Vec<_> = (0..1201).map(|i| record(&format!("u{i}"), 100)).collect();
        let all: Vec<_> = (0..records.len()).collect();
        let sizes: Vec<_> = calls(&records, &all).iter().map(Vec::len).collect();
        assert_eq!(sizes, [500, 500, 201]);

        let big: Vec<_> = (0..12).map(|_| record("k", 1024 * 1024 - 1)).collect();
        let all: Vec<_> = (0..big.len()).collect();
        let split = calls(&big, &all);
        assert!(
            split
                .iter()
                .all(|c| c.iter().map(|&i| big[i].data.len() + 1).sum::<usize>() <= MAX_PUT_BYTES)
        );
        assert_eq!(split.concat(), all, "order kept");
    }
}
