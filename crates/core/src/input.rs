//! What every batch is made of, whatever delivered it: a Lambda event,
//! GetRecords, a test. Near the leaf of the crate: it names only [`kpl`],
//! the record format producers may pack readings in.
//!
//! A Kinesis record is either plain (one payload) or a KPL aggregate of
//! user records. Every consumer turns what it read into user records first
//! ([`SourceRecord::user_records`]), so that the pipelines only ever see
//! payloads; a user record keeps the aggregate's sequence number and its
//! own place in it, which is how checkpoints and rejects name it.
//!
//! [`kpl`]: crate::kpl

/// One record of a shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceRecord {
    /// Its sequence number: where a retry resumes. The user records of an
    /// aggregate share the aggregate's.
    pub sequence_number: String,
    /// Its place among the user records of a KPL aggregate (0 for the
    /// first), as KCL's `subSequenceNumber`; `None` for a plain record.
    pub sub_sequence_number: Option<u64>,
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

impl SourceRecord {
    /// A plain record: one Kinesis record, one payload.
    pub fn plain(
        sequence_number: impl Into<String>,
        partition_key: impl Into<String>,
        data: impl Into<Vec<u8>>,
    ) -> Self {
        Self {
            sequence_number: sequence_number.into(),
            sub_sequence_number: None,
            partition_key: partition_key.into(),
            data: data.into(),
        }
    }

    /// The user records this Kinesis record carries, in order: itself when
    /// plain; each user record of a KPL aggregate, with the aggregate's
    /// sequence number and its own place. A corrupt aggregate (bad MD5,
    /// truncated protobuf) stays whole: validation refuses it as one
    /// reject that says why, and the records beside it go on.
    pub fn user_records(self) -> Vec<SourceRecord> {
        if !kpl::is_aggregated(&self.data) {
            return vec![self];
        }
        match kpl::deaggregate(&self.data) {
            Ok(users) => users
                .into_iter()
                .zip(0u64..)
                .map(|(user, i)| SourceRecord {
                    sequence_number: self.sequence_number.clone(),
                    sub_sequence_number: Some(i),
                    partition_key: user.partition_key,
                    data: user.data,
                })
                .collect(),
            Err(_) => vec![self],
        }
    }

    /// Where it stands in its shard, as KCL orders records: its sequence
    /// number, then its place in its aggregate (0 for a plain record).
    pub fn position(&self) -> (&str, u64) {
        (&self.sequence_number, self.sub_sequence_number.unwrap_or(0))
    }
}

/// Every user record of `records`, in order (see
/// [`SourceRecord::user_records`]).
pub fn user_records(records: impl IntoIterator<Item = SourceRecord>) -> Vec<SourceRecord> {
    records
        .into_iter()
        .flat_map(SourceRecord::user_records)
        .collect()
}

impl From<&aws_sdk_kinesis::types::Record> for SourceRecord {
    /// A record as GetRecords returns it (the daemon's consumer, tests,
    /// benches): the one conversion from the SDK's type.
    fn from(record: &aws_sdk_kinesis::types::Record) -> Self {
        Self {
            sequence_number: record.sequence_number().to_owned(),
            sub_sequence_number: None,
            partition_key: record.partition_key().unwrap_or_default().to_owned(),
            data: record.data().as_ref().to_vec(),
        }
    }
}

use crate::kpl;

/// The hash key Kinesis routes a record by: the MD5 digest of its
/// partition key's UTF-8 bytes, read as a big-endian 128-bit number. A
/// shard receives the keys of its hash key range.
pub fn hash_key(partition_key: &str) -> u128 {
    use md5::Digest as _;
    u128::from_be_bytes(md5::Md5::digest(partition_key.as_bytes()).into())
}

#[cfg(test)]
mod tests {
    #[test]
    fn hash_keys_are_md5_big_endian() {
        // Checked against `printf Shadowfax | md5sum`.
        assert_eq!(
            super::hash_key("Shadowfax"),
            0x5cf8_4da7_bde1_37a9_4d6b_151b_b105_0ede
        );
        assert_eq!(
            super::hash_key(""),
            0xd41d_8cd9_8f00_b204_e980_0998_ecf8_427e
        );
    }

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
                sub_sequence_number: None,
                partition_key: "Shadowfax".into(),
                data: b"{\"Name\":\"Shadowfax\"}".to_vec(),
            }
        );
    }

    fn reading(name: &str, second: u32) -> Vec<u8> {
        format!(
            "{{\"Name\":\"{name}\",\"StatusTime\":\"2017-06-05 09:17:{second:02}.189\",\"Latitude\":40.749,\"Longitude\":-73.985,\"Distance\":12,\"HealthPoints\":150,\"MagicPoints\":100}}"
        )
        .into_bytes()
    }

    #[test]
    fn an_aggregate_becomes_its_user_records_in_order_with_their_places() {
        let mut builder = kpl::AggregateBuilder::new();
        let users = [("Shadowfax", 1), ("Rocinante", 1), ("Shadowfax", 2)];
        for (name, second) in users {
            builder.push(kpl::UserRecord {
                partition_key: name.to_owned(),
                explicit_hash_key: None,
                data: reading(name, second),
            });
        }
        let aggregate = SourceRecord::plain("4959", "Shadowfax", builder.finish());
        let plain = SourceRecord::plain("4960", "Bucephalus", reading("Bucephalus", 1));
        let got = user_records([aggregate, plain.clone()]);
        let want: Vec<SourceRecord> = users
            .iter()
            .zip(0u64..)
            .map(|((name, second), i)| SourceRecord {
                sequence_number: "4959".into(),
                sub_sequence_number: Some(i),
                partition_key: (*name).to_owned(),
                data: reading(name, *second),
            })
            .chain([plain])
            .collect();
        assert_eq!(got, want);
        assert_eq!(got[2].position(), ("4959", 2));
        assert_eq!(got[3].position(), ("4960", 0));
    }

    #[test]
    fn a_corrupt_aggregate_stays_whole() {
        let mut builder = kpl::AggregateBuilder::new();
        builder.push(kpl::UserRecord {
            partition_key: "Shadowfax".into(),
            explicit_hash_key: None,
            data: reading("Shadowfax", 1),
        });
        let mut bytes = builder.finish();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xFF;
        let corrupt = SourceRecord::plain("4959", "Shadowfax", bytes);
        assert_eq!(corrupt.clone().user_records(), [corrupt]);
    }
}
