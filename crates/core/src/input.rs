//! What every batch is made of, whatever delivered it: a Lambda event,
//! GetRecords, a test. The leaf of the crate: it names no other module.

/// One record of a shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceRecord {
    /// Its sequence number: where a retry resumes.
    pub sequence_number: String,
    /// Its partition key.
    pub partition_key: String,
    /// Its payload.
    pub data: Vec<u8>,
}

/// The shard a batch comes from: one batch is always of one shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardSource {
    /// The stream's ARN.
    pub stream_arn: String,
    /// The shard's id.
    pub shard_id: String,
}

impl From<&aws_sdk_kinesis::types::Record> for SourceRecord {
    /// A record as GetRecords returns it (the daemon's consumer, tests,
    /// benches): the one conversion from the SDK's type.
    fn from(record: &aws_sdk_kinesis::types::Record) -> Self {
        Self {
            sequence_number: record.sequence_number().to_owned(),
            partition_key: record.partition_key().unwrap_or_default().to_owned(),
            data: record.data().as_ref().to_vec(),
        }
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_kinesis::primitives::Blob;
    use aws_sdk_kinesis::types::Record;

    use super::*;

    #[test]
    fn an_sdk_record_keeps_its_key_sequence_and_bytes() {
        let record = Record::builder()
            .sequence_number("49590338271490256608559692538361571095921575989136588898")
            .partition_key("Shadowfax")
            .data(Blob::new(b"{\"Name\":\"Shadowfax\"}".to_vec()))
            .build()
            .unwrap();
        assert_eq!(
            SourceRecord::from(&record),
            SourceRecord {
                sequence_number: "49590338271490256608559692538361571095921575989136588898".into(),
                partition_key: "Shadowfax".into(),
                data: b"{\"Name\":\"Shadowfax\"}".to_vec(),
            }
        );
    }
}
