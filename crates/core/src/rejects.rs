//! `Reject`: a record that failed validation, kept with its raw bytes, where it
//! came from, why, and when, in a DynamoDB table an operator can list and
//! re-drive from. Keyed by stream, shard and sequence number, so a replayed
//! reject is stored once.

use std::collections::HashMap;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, SecondsFormat, Utc};
use tokio::time::Instant;

use crate::input::{ShardSource, SourceRecord};
use crate::item::Item;
use crate::names::{PipelineName, REJECTS_TABLE_KEY};
use crate::writer::{TableWriter, WriteReport};

/// Most bytes of a record kept in a reject: DynamoDB items stop at 400 KB and
/// Kinesis records go to 1 MB. The full size is kept beside the bytes.
pub const MAX_KEPT_BYTES: usize = 256 * 1024;

/// A record refused by validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    /// The stream the record was read from.
    pub stream_arn: String,
    /// Its shard.
    pub shard_id: String,
    /// Its sequence number in the shard.
    pub sequence_number: String,
    /// Its place in its KPL aggregate; `None` for a plain record.
    pub sub_sequence_number: Option<u64>,
    /// Its partition key, for putting it back.
    pub partition_key: String,
    /// Its bytes, cut at [`MAX_KEPT_BYTES`].
    pub data: Vec<u8>,
    /// Its size before any cut.
    pub size: usize,
    /// Why it was refused.
    pub reason: String,
    /// Which pipeline refused it.
    pub pipeline: PipelineName,
    /// When it was refused.
    pub rejected_at: DateTime<Utc>,
}

/// Why a stored reject could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum RejectError {
    /// An attribute is missing or of the wrong type.
    #[error(
        "reject item {id:?} has no valid {attribute} attribute: was it written by another program?"
    )]
    BadItem {
        /// The item's RecordId, if it has one.
        id: String,
        /// The attribute.
        attribute: &'static str,
    },
    /// The table could not be read or written.
    #[error("cannot {action} rejects table {table}: {message}")]
    Table {
        /// What was being done.
        action: &'static str,
        /// The table.
        table: String,
        /// The SDK's account.
        message: String,
    },
}

impl Reject {
    /// The reject of `record` of `source`, refused by `pipeline` for
    /// `reason`, now.
    pub fn new(
        pipeline: PipelineName,
        source: &ShardSource,
        record: &SourceRecord,
        reason: String,
    ) -> Self {
        Self {
            stream_arn: source.stream_arn.clone(),
            shard_id: source.shard_id.clone(),
            sequence_number: record.sequence_number.clone(),
            sub_sequence_number: record.sub_sequence_number,
            partition_key: record.partition_key.clone(),
            data: record.data[..record.data.len().min(MAX_KEPT_BYTES)].to_vec(),
            size: record.data.len(),
            reason,
            pipeline,
            rejected_at: Utc::now(),
        }
    }

    /// The table key: one item per record of a stream, however often
    /// replayed; a user record of an aggregate adds its place.
    pub fn record_id(&self) -> String {
        let stream = self
            .stream_arn
            .rsplit('/')
            .next()
            .unwrap_or(&self.stream_arn);
        match self.sub_sequence_number {
            None => format!("{stream}/{}/{}", self.shard_id, self.sequence_number),
            Some(sub) => format!("{stream}/{}/{}/{sub}", self.shard_id, self.sequence_number),
        }
    }

    /// The reject as a table item.
    pub fn to_item(&self) -> Item {
        let s = |v: &str| AttributeValue::S(v.to_owned());
        let mut item = HashMap::from([
            ("RecordId".to_owned(), s(&self.record_id())),
            ("StreamArn".to_owned(), s(&self.stream_arn)),
            ("ShardId".to_owned(), s(&self.shard_id)),
            ("SequenceNumber".to_owned(), s(&self.sequence_number)),
            ("PartitionKey".to_owned(), s(&self.partition_key)),
            (
                "Data".to_owned(),
                AttributeValue::B(Blob::new(self.data.clone())),
            ),
            ("Size".to_owned(), AttributeValue::N(self.size.to_string())),
            ("Reason".to_owned(), s(&self.reason)),
            ("Pipeline".to_owned(), s(self.pipeline.as_str())),
            (
                "RejectedAt".to_owned(),
                s(&self
                    .rejected_at
                    .to_rfc3339_opts(SecondsFormat::Millis, true)),
            ),
        ]);
        if let Some(sub) = self.sub_sequence_number {
            item.insert(
                "SubSequenceNumber".to_owned(),
                AttributeValue::N(sub.to_string()),
            );
        }
        item
    }

    /// Reads a reject back from its table item.
    pub fn from_item(item: &Item) -> Result<Self, RejectError> {
        let id = item
            .get("RecordId")
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_default();
        let bad = |attribute| RejectError::BadItem {
            id: id.clone(),
            attribute,
        };
        let s = |attribute: &'static str| {
            item.get(attribute)
                .and_then(|v| v.as_s().ok())
                .cloned()
                .ok_or_else(|| bad(attribute))
        };
        let data = item
            .get("Data")
            .and_then(|v| v.as_b().ok())
            .map(|b| b.as_ref().to_vec())
            .ok_or_else(|| bad("Data"))?;
        let size = item
            .get("Size")
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| bad("Size"))?;
        let rejected_at = DateTime::parse_from_rfc3339(&s("RejectedAt")?)
            .map_err(|_| bad("RejectedAt"))?
            .with_timezone(&Utc);
        Ok(Self {
            stream_arn: s("StreamArn")?,
            shard_id: s("ShardId")?,
            sequence_number: s("SequenceNumber")?,
            sub_sequence_number: match item.get("SubSequenceNumber") {
                None => None,
                Some(v) => Some(
                    v.as_n()
                        .ok()
                        .and_then(|n| n.parse().ok())
                        .ok_or_else(|| bad("SubSequenceNumber"))?,
                ),
            },
            partition_key: s("PartitionKey")?,
            data,
            size,
            reason: s("Reason")?,
            pipeline: s("Pipeline")?.parse().map_err(|_| bad("Pipeline"))?,
            rejected_at,
        })
    }
}

/// The rejects table.
#[derive(Debug, Clone)]
pub struct RejectStore {
    writer: TableWriter,
}

impl RejectStore {
    /// The store kept in the table `writer` writes to.
    pub fn new(writer: TableWriter) -> Self {
        Self { writer }
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        self.writer.table()
    }

    /// Stores every reject, retrying until `deadline`; reports per reject
    /// whether it is stored.
    pub async fn put_all(&self, rejects: &[Reject], deadline: Instant) -> WriteReport {
        self.writer
            .put_all(rejects, Reject::to_item, &REJECTS_TABLE_KEY, deadline)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reject_round_trips_through_its_item() {
        let reject = Reject {
            stream_arn: "arn:aws:kinesis:us-east-1:000000000000:stream/wildrydes-aggregated".into(),
            shard_id: "shardId-000000000000".into(),
            sequence_number: "49590338271490256608559692538361571095921575989136588898".into(),
            sub_sequence_number: None,
            partition_key: "Shadowfax".into(),
            data: b"\xff not json".to_vec(),
            size: 10,
            reason: "record is not JSON".into(),
            pipeline: PipelineName::Process,
            rejected_at: DateTime::parse_from_rfc3339("2026-11-28T14:00:00.123Z")
                .unwrap()
                .with_timezone(&Utc),
        };
        assert_eq!(
            reject.record_id(),
            "wildrydes-aggregated/shardId-000000000000/49590338271490256608559692538361571095921575989136588898"
        );
        assert_eq!(Reject::from_item(&reject.to_item()).unwrap(), reject);

        // A user record of an aggregate: its place is in the key and kept.
        let user = Reject {
            sub_sequence_number: Some(7),
            ..reject.clone()
        };
        assert_eq!(user.record_id(), format!("{}/7", reject.record_id()));
        assert_eq!(Reject::from_item(&user.to_item()).unwrap(), user);
    }
}
