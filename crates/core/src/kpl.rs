//! The Kinesis Producer Library's aggregated record, the format every KPL,
//! KCL and Firehose speaks: many user records in one Kinesis record, so that
//! small readings share a record's per-put cost and its 1 MiB.
//!
//! A Kinesis record's data is then the 4 magic bytes [`MAGIC`], a protobuf
//! (proto2) `AggregatedRecord`, and the 16-byte MD5 of that protobuf
//! (awslabs/amazon-kinesis-producer, `aggregation-format.md`). The
//! partition keys and explicit hash keys of the user records are kept once
//! each, in two tables; each user record names its keys by index. The
//! Kinesis record's own partition key routes the whole aggregate to one
//! shard; consumers address a user record by the Kinesis record's sequence
//! number and its index in the aggregate, the sub-sequence number.
//!
//! [`deaggregate`] reads one and [`AggregateBuilder`] writes one, with its
//! exact size known before each push, so a producer can fill a record to
//! [`MAX_RECORD_BYTES`] and no further. The protobuf is prost's, from the
//! message declarations below: no generated code, no protoc.

use std::collections::HashMap;

use md5::{Digest, Md5};
use prost::Message;
use prost::encoding::{encoded_len_varint, key_len};

/// The first 4 bytes of an aggregated record's data. A record without them
/// is a plain record.
pub const MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];

/// Largest data + partition key of one Kinesis record: 1 MiB.
///
/// An aggregate's `size()` plus the Kinesis record's partition key (the
/// first user record's, [`AggregateBuilder::partition_key`]) must stay
/// within it. (Not [`crate::error::MAX_RECORD_BYTES`], the largest reading
/// or aggregate the pipeline parses.)
pub const MAX_RECORD_BYTES: usize = 1_048_576;

/// Length of the MD5 that closes an aggregate.
const DIGEST_BYTES: usize = 16;

/// Protobuf field numbers of the format, shared by the messages below and
/// the size arithmetic of [`AggregateBuilder`].
const PARTITION_KEY_TABLE: u32 = 1;
const EXPLICIT_HASH_KEY_TABLE: u32 = 2;
const RECORDS: u32 = 3;
const RECORD_PARTITION_KEY_INDEX: u32 = 1;
const RECORD_EXPLICIT_HASH_KEY_INDEX: u32 = 2;
const RECORD_DATA: u32 = 3;

/// One record a producer put, as it was before aggregation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// Its own partition key (for a reading, the unicorn's name).
    pub partition_key: String,
    /// Its explicit hash key, a decimal 128-bit number, when the producer
    /// chose its shard by hash rather than by partition key.
    pub explicit_hash_key: Option<String>,
    /// Its payload.
    pub data: Vec<u8>,
}

/// Why bytes are not a valid aggregate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KplError {
    /// The data does not start with [`MAGIC`]: a plain record (the KCL
    /// hands such a record over as it is).
    #[error(
        "record does not start with the KPL magic bytes F3 89 9A C2: it is a plain record, not an aggregate"
    )]
    NotAggregated,
    /// The data starts with [`MAGIC`] but has no room for the MD5.
    #[error(
        "KPL aggregate is {len} bytes, shorter than its 4 magic bytes and 16-byte MD5: the record is truncated"
    )]
    Truncated {
        /// The data's length.
        len: usize,
    },
    /// The MD5 is not that of the protobuf. (The KCL takes such a record
    /// for a plain one that happens to start with the magic bytes.)
    #[error("KPL aggregate's MD5 does not match its content: the record is corrupt")]
    Checksum,
    /// The MD5 matches but the protobuf is not an `AggregatedRecord`.
    #[error(
        "KPL aggregate's protobuf does not decode ({message}): it was written by a faulty aggregator"
    )]
    Decode {
        /// prost's account.
        message: String,
    },
    /// A user record names a partition key beyond the table.
    #[error(
        "KPL aggregate's user record {record} names partition key {index}, but the table holds {table_len}: it was written by a faulty aggregator"
    )]
    PartitionKeyIndex {
        /// The user record's index in the aggregate (its sub-sequence number).
        record: usize,
        /// The index it names.
        index: u64,
        /// How many partition keys the table holds.
        table_len: usize,
    },
    /// A user record names an explicit hash key beyond the table.
    #[error(
        "KPL aggregate's user record {record} names explicit hash key {index}, but the table holds {table_len}: it was written by a faulty aggregator"
    )]
    ExplicitHashKeyIndex {
        /// The user record's index in the aggregate (its sub-sequence number).
        record: usize,
        /// The index it names.
        index: u64,
        /// How many explicit hash keys the table holds.
        table_len: usize,
    },
}

/// The format's protobuf messages, declared by hand for prost's derive.
mod proto {
    /// The whole aggregate: the key tables, then the user records.
    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct AggregatedRecord {
        /// Each distinct partition key, in order of first use.
        #[prost(string, repeated, tag = "1")]
        pub(super) partition_key_table: Vec<String>,
        /// Each distinct explicit hash key, in order of first use.
        #[prost(string, repeated, tag = "2")]
        pub(super) explicit_hash_key_table: Vec<String>,
        /// The user records, in order: index i is sub-sequence number i.
        #[prost(message, repeated, tag = "3")]
        pub(super) records: Vec<Record>,
    }

    /// One user record.
    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct Record {
        /// Its partition key's index in `partition_key_table`.
        #[prost(uint64, required, tag = "1")]
        pub(super) partition_key_index: u64,
        /// Its explicit hash key's index in `explicit_hash_key_table`.
        #[prost(uint64, optional, tag = "2")]
        pub(super) explicit_hash_key_index: Option<u64>,
        /// Its payload.
        #[prost(bytes = "vec", required, tag = "3")]
        pub(super) data: Vec<u8>,
        /// The format's tags: read past, never written.
        #[prost(message, repeated, tag = "4")]
        pub(super) tags: Vec<Tag>,
    }

    /// A tag of a user record (the KPL's, unused by Kinesis itself).
    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct Tag {
        /// Its key.
        #[prost(string, required, tag = "1")]
        pub(super) key: String,
        /// Its value.
        #[prost(string, optional, tag = "2")]
        pub(super) value: Option<String>,
    }
}

/// Whether a Kinesis record's data is an aggregate: it starts with
/// [`MAGIC`] and is long enough for the magic bytes and the MD5. (Whether
/// the MD5 matches is for [`deaggregate`] to say.)
pub fn is_aggregated(data: &[u8]) -> bool {
    data.len() >= MAGIC.len() + DIGEST_BYTES && data.starts_with(&MAGIC)
}

/// The user records of an aggregate, in order: index i is the user record's
/// sub-sequence number. Any bytes give records or an error, never a panic.
pub fn deaggregate(data: &[u8]) -> Result<Vec<UserRecord>, KplError> {
    let Some(rest) = data.strip_prefix(&MAGIC[..]) else {
        return Err(KplError::NotAggregated);
    };
    let Some(message_len) = rest.len().checked_sub(DIGEST_BYTES) else {
        return Err(KplError::Truncated { len: data.len() });
    };
    let (message, digest) = rest.split_at(message_len);
    if Md5::digest(message).as_slice() != digest {
        return Err(KplError::Checksum);
    }
    let proto::AggregatedRecord {
        partition_key_table,
        explicit_hash_key_table,
        records,
    } = proto::AggregatedRecord::decode(message).map_err(|error| KplError::Decode {
        message: error.to_string(),
    })?;
    records
        .into_iter()
        .enumerate()
        .map(|(i, record)| {
            let partition_key = table_entry(&partition_key_table, record.partition_key_index)
                .ok_or(KplError::PartitionKeyIndex {
                    record: i,
                    index: record.partition_key_index,
                    table_len: partition_key_table.len(),
                })?;
            let explicit_hash_key = record
                .explicit_hash_key_index
                .map(|index| {
                    table_entry(&explicit_hash_key_table, index).ok_or(
                        KplError::ExplicitHashKeyIndex {
                            record: i,
                            index,
                            table_len: explicit_hash_key_table.len(),
                        },
                    )
                })
                .transpose()?;
            Ok(UserRecord {
                partition_key: partition_key.to_owned(),
                explicit_hash_key: explicit_hash_key.map(str::to_owned),
                data: record.data,
            })
        })
        .collect()
}

/// The table's entry at a protobuf index, if it has one.
fn table_entry(table: &[String], index: u64) -> Option<&str> {
    let index = usize::try_from(index).ok()?;
    table.get(index).map(String::as_str)
}

/// One aggregate being filled, user record by user record.
///
/// Its size is kept exact as records are pushed, so that
/// [`size_with`](Self::size_with) tells in constant time whether one more
/// fits; the caller decides when the aggregate is full and calls
/// [`finish`](Self::finish).
#[derive(Debug, Default)]
pub struct AggregateBuilder {
    /// What `finish` encodes.
    message: proto::AggregatedRecord,
    /// Each partition key's index in `message.partition_key_table`.
    partition_keys: HashMap<String, u64>,
    /// Each explicit hash key's index in `message.explicit_hash_key_table`.
    explicit_hash_keys: HashMap<String, u64>,
    /// The protobuf's encoded length, kept as records are pushed (the tests
    /// check it against prost's `encoded_len`).
    message_len: usize,
}

impl AggregateBuilder {
    /// An empty aggregate.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many user records it holds.
    pub fn len(&self) -> usize {
        self.message.records.len()
    }

    /// Whether it holds no user record.
    pub fn is_empty(&self) -> bool {
        self.message.records.is_empty()
    }

    /// The exact length of what [`finish`](Self::finish) would return: magic
    /// bytes, protobuf and MD5.
    pub fn size(&self) -> usize {
        MAGIC.len() + self.message_len + DIGEST_BYTES
    }

    /// The exact [`size`](Self::size) after pushing a user record with these
    /// keys and `data_len` bytes of data. A key already in its table costs
    /// only its index.
    pub fn size_with(
        &self,
        partition_key: &str,
        explicit_hash_key: Option<&str>,
        data_len: usize,
    ) -> usize {
        let (partition_key_index, partition_key_cost) =
            Self::index_and_cost(&self.partition_keys, PARTITION_KEY_TABLE, partition_key);
        let (explicit_hash_key_index, explicit_hash_key_cost) = match explicit_hash_key {
            Some(key) => {
                let (index, cost) =
                    Self::index_and_cost(&self.explicit_hash_keys, EXPLICIT_HASH_KEY_TABLE, key);
                (Some(index), cost)
            }
            None => (None, 0),
        };
        self.size()
            + partition_key_cost
            + explicit_hash_key_cost
            + record_len(partition_key_index, explicit_hash_key_index, data_len)
    }

    /// Adds a user record after those it holds; its keys join their tables
    /// unless already there.
    pub fn push(&mut self, record: UserRecord) {
        let UserRecord {
            partition_key,
            explicit_hash_key,
            data,
        } = record;
        let partition_key_index = Self::intern(
            &mut self.partition_keys,
            &mut self.message.partition_key_table,
            &mut self.message_len,
            PARTITION_KEY_TABLE,
            partition_key,
        );
        let explicit_hash_key_index = explicit_hash_key.map(|key| {
            Self::intern(
                &mut self.explicit_hash_keys,
                &mut self.message.explicit_hash_key_table,
                &mut self.message_len,
                EXPLICIT_HASH_KEY_TABLE,
                key,
            )
        });
        self.message_len += record_len(partition_key_index, explicit_hash_key_index, data.len());
        self.message.records.push(proto::Record {
            partition_key_index,
            explicit_hash_key_index,
            data,
            tags: Vec::new(),
        });
    }

    /// The first user record's partition key, which the Kinesis record of
    /// the aggregate is put with; `None` while empty.
    pub fn partition_key(&self) -> Option<&str> {
        // The first record's key is always the table's first entry.
        self.message.partition_key_table.first().map(String::as_str)
    }

    /// The first user record's explicit hash key, which the Kinesis record
    /// of the aggregate is put with (as the KPL and aws-kinesis-agg do), so
    /// that the aggregate lands on that record's shard.
    pub fn explicit_hash_key(&self) -> Option<&str> {
        let first = self.message.records.first()?;
        table_entry(
            &self.message.explicit_hash_key_table,
            first.explicit_hash_key_index?,
        )
    }

    /// The aggregate's bytes: magic bytes, protobuf, MD5 of the protobuf.
    pub fn finish(self) -> Vec<u8> {
        let message = self.message.encode_to_vec();
        let mut data = Vec::with_capacity(MAGIC.len() + message.len() + DIGEST_BYTES);
        data.extend_from_slice(&MAGIC);
        data.extend_from_slice(&message);
        data.extend_from_slice(&Md5::digest(&message));
        data
    }

    /// A key's index in its table, and what adding it to the table costs (0
    /// when it is there already).
    fn index_and_cost(keys: &HashMap<String, u64>, tag: u32, key: &str) -> (u64, usize) {
        match keys.get(key) {
            Some(&index) => (index, 0),
            None => (keys.len() as u64, table_entry_len(tag, key)),
        }
    }

    /// A key's index in its table, adding it (and its length) first if new.
    fn intern(
        keys: &mut HashMap<String, u64>,
        table: &mut Vec<String>,
        message_len: &mut usize,
        tag: u32,
        key: String,
    ) -> u64 {
        if let Some(&index) = keys.get(&key) {
            return index;
        }
        let index = table.len() as u64;
        *message_len += table_entry_len(tag, &key);
        keys.insert(key.clone(), index);
        table.push(key);
        index
    }
}

/// Encoded length of one entry of a key table: key, length, bytes.
fn table_entry_len(tag: u32, key: &str) -> usize {
    key_len(tag) + encoded_len_varint(key.len() as u64) + key.len()
}

/// Encoded length of one user record within `records`, its framing included.
fn record_len(
    partition_key_index: u64,
    explicit_hash_key_index: Option<u64>,
    data_len: usize,
) -> usize {
    let body = key_len(RECORD_PARTITION_KEY_INDEX)
        + encoded_len_varint(partition_key_index)
        + explicit_hash_key_index.map_or(0, |index| {
            key_len(RECORD_EXPLICIT_HASH_KEY_INDEX) + encoded_len_varint(index)
        })
        + key_len(RECORD_DATA)
        + encoded_len_varint(data_len as u64)
        + data_len;
    key_len(RECORDS) + encoded_len_varint(body as u64) + body
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The inputs aws-kinesis-agg aggregated (tests/fixtures/kpl/make_fixture.py).
    const AWS_FIXTURE_JSON: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/kpl/aws-kinesis-agg.json"
    ));
    /// What aws-kinesis-agg made of them.
    const AWS_FIXTURE_BIN: &[u8] = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/kpl/aws-kinesis-agg.bin"
    ));

    const READING: &str = r#"{"Name":"Shadowfax","StatusTime":"2017-06-05 09:17:08.189","Latitude":42.264444250051326,"Longitude":-71.97582884770408,"Distance":175,"MagicPoints":110,"HealthPoints":150}"#;

    fn record(key: &str, hash_key: Option<&str>, data: &[u8]) -> UserRecord {
        UserRecord {
            partition_key: key.into(),
            explicit_hash_key: hash_key.map(Into::into),
            data: data.to_vec(),
        }
    }

    /// Pushes each record, checking that `size_with` foretold the size and
    /// that the kept length is prost's; then checks `size` against `finish`.
    fn aggregate(records: &[UserRecord]) -> Vec<u8> {
        let mut builder = AggregateBuilder::new();
        for r in records {
            let predicted = builder.size_with(
                &r.partition_key,
                r.explicit_hash_key.as_deref(),
                r.data.len(),
            );
            builder.push(r.clone());
            assert_eq!(builder.size(), predicted, "size_with before {r:?}");
            assert_eq!(builder.message_len, builder.message.encoded_len());
        }
        assert_eq!(builder.len(), records.len());
        let size = builder.size();
        let data = builder.finish();
        assert_eq!(data.len(), size);
        data
    }

    /// Magic bytes + these protobuf bytes + their MD5: an aggregate whose
    /// checksum holds whatever the protobuf says.
    fn wrap(message: &[u8]) -> Vec<u8> {
        let mut data = MAGIC.to_vec();
        data.extend_from_slice(message);
        data.extend_from_slice(&Md5::digest(message));
        data
    }

    #[test]
    fn readings_round_trip_with_keys_shared_in_their_tables() {
        let records = vec![
            record("Shadowfax", None, READING.as_bytes()),
            record("Rocinante", Some("42"), b"second"),
            record("Shadowfax", Some("42"), b""),
            record("Bucephalus", None, b"\x00\xff binary"),
        ];
        let data = aggregate(&records);
        assert!(is_aggregated(&data));
        assert_eq!(deaggregate(&data), Ok(records));

        let message = proto::AggregatedRecord::decode(&data[4..data.len() - 16]).unwrap();
        assert_eq!(
            message.partition_key_table,
            ["Shadowfax", "Rocinante", "Bucephalus"]
        );
        assert_eq!(message.explicit_hash_key_table, ["42"]);
        let indexes: Vec<_> = message
            .records
            .iter()
            .map(|r| (r.partition_key_index, r.explicit_hash_key_index))
            .collect();
        assert_eq!(indexes, [(0, None), (1, Some(0)), (0, Some(0)), (2, None)]);
    }

    #[test]
    fn the_aggregate_is_put_with_its_first_records_keys() {
        let mut builder = AggregateBuilder::new();
        assert_eq!(builder.partition_key(), None);
        assert_eq!(builder.explicit_hash_key(), None);
        assert!(builder.is_empty());
        builder.push(record("Rocinante", None, b"1"));
        builder.push(record("Shadowfax", Some("7"), b"2"));
        assert_eq!(builder.partition_key(), Some("Rocinante"));
        assert_eq!(builder.explicit_hash_key(), None);
        assert_eq!((builder.len(), builder.is_empty()), (2, false));

        let mut builder = AggregateBuilder::new();
        builder.push(record("Shadowfax", Some("7"), b"2"));
        builder.push(record("Rocinante", None, b"1"));
        assert_eq!(builder.explicit_hash_key(), Some("7"));
    }

    #[test]
    fn an_empty_aggregate_is_magic_and_the_md5_of_nothing() {
        let builder = AggregateBuilder::new();
        assert_eq!(builder.size(), 20);
        let data = builder.finish();
        assert_eq!(data, wrap(b""));
        assert!(is_aggregated(&data));
        assert_eq!(deaggregate(&data), Ok(vec![]));
    }

    #[test]
    fn sizes_stay_exact_across_varint_boundaries() {
        // Indexes past 127 and 16383, lengths past 127 and 16383: two- and
        // three-byte varints everywhere.
        let mut records = Vec::new();
        for i in 0..300 {
            let key = format!("unicorn-{i}-{}", "k".repeat(i % 130));
            let hash_key = (i % 3 == 0).then(|| (u128::MAX - i as u128).to_string());
            let data = vec![i as u8; [0, 1, 127, 128, 300, 16_383, 16_384][i % 7]];
            records.push(UserRecord {
                partition_key: key,
                explicit_hash_key: hash_key,
                data,
            });
        }
        records.push(record("unicorn-0-", Some(&u128::MAX.to_string()), b"again"));
        let data = aggregate(&records);
        assert_eq!(deaggregate(&data), Ok(records));
    }

    #[test]
    fn a_full_aggregate_stays_within_a_kinesis_record() {
        let mut builder = AggregateBuilder::new();
        let mut pushed = 0;
        loop {
            let key = format!("unicorn-{}", pushed % 50);
            if builder.size_with(&key, None, READING.len()) + key.len() > MAX_RECORD_BYTES {
                break;
            }
            builder.push(record(&key, None, READING.as_bytes()));
            pushed += 1;
        }
        let key_len = builder.partition_key().map_or(0, str::len);
        let data = builder.finish();
        assert!(data.len() + key_len <= MAX_RECORD_BYTES);
        assert!(data.len() > MAX_RECORD_BYTES - 300, "{} bytes", data.len());
        assert_eq!(deaggregate(&data).map(|r| r.len()), Ok(pushed));
    }

    #[test]
    fn a_flipped_byte_is_a_checksum_error_or_no_aggregate() {
        let data = aggregate(&[
            record("Shadowfax", Some("1"), READING.as_bytes()),
            record("Rocinante", None, b"x"),
        ]);
        for i in 0..data.len() {
            let mut corrupt = data.clone();
            corrupt[i] ^= 0x01;
            let expected = if i < MAGIC.len() {
                KplError::NotAggregated
            } else {
                KplError::Checksum
            };
            assert_eq!(deaggregate(&corrupt), Err(expected), "byte {i}");
        }
    }

    #[test]
    fn truncated_data_is_refused() {
        let data = aggregate(&[record("Shadowfax", None, READING.as_bytes())]);
        for len in 0..data.len() {
            let expected = match len {
                0..4 => KplError::NotAggregated,
                4..20 => KplError::Truncated { len },
                _ => KplError::Checksum,
            };
            assert_eq!(deaggregate(&data[..len]), Err(expected), "{len} bytes");
            assert_eq!(is_aggregated(&data[..len]), len >= 20);
        }
        assert_eq!(
            KplError::Truncated { len: 9 }.to_string(),
            "KPL aggregate is 9 bytes, shorter than its 4 magic bytes and 16-byte MD5: the record is truncated"
        );
    }

    #[test]
    fn a_plain_reading_is_no_aggregate() {
        assert!(!is_aggregated(READING.as_bytes()));
        assert_eq!(
            deaggregate(READING.as_bytes()),
            Err(KplError::NotAggregated)
        );
    }

    #[test]
    fn garbage_protobuf_with_a_valid_md5_is_a_decode_error() {
        for garbage in [
            &b"\x1a\x05\x01"[..],     // records: 5 bytes announced, 1 given
            &b"\x0f"[..],             // field 1 of wire type 7, which does not exist
            &b"\x0a\x01\xff"[..],     // a partition key that is not UTF-8
            &b"\x1a\x02\x08\x80"[..], // an index whose varint never ends
        ] {
            let error = deaggregate(&wrap(garbage)).unwrap_err();
            assert!(
                matches!(&error, KplError::Decode { message } if !message.is_empty()),
                "{garbage:?}: {error:?}"
            );
            assert!(
                error
                    .to_string()
                    .starts_with("KPL aggregate's protobuf does not decode ("),
                "{error}"
            );
        }
    }

    #[test]
    fn an_index_beyond_its_table_is_refused_naming_record_and_index() {
        let message = proto::AggregatedRecord {
            partition_key_table: vec!["Shadowfax".into()],
            explicit_hash_key_table: vec![],
            records: vec![
                proto::Record {
                    partition_key_index: 0,
                    explicit_hash_key_index: None,
                    data: b"ok".to_vec(),
                    tags: vec![],
                },
                proto::Record {
                    partition_key_index: 3,
                    explicit_hash_key_index: None,
                    data: b"bad".to_vec(),
                    tags: vec![],
                },
            ],
        };
        let error = deaggregate(&wrap(&message.encode_to_vec())).unwrap_err();
        assert_eq!(
            error,
            KplError::PartitionKeyIndex {
                record: 1,
                index: 3,
                table_len: 1
            }
        );
        assert_eq!(
            error.to_string(),
            "KPL aggregate's user record 1 names partition key 3, but the table holds 1: it was written by a faulty aggregator"
        );

        let mut message = message;
        message.records[1].partition_key_index = 0;
        message.records[1].explicit_hash_key_index = Some(u64::MAX);
        assert_eq!(
            deaggregate(&wrap(&message.encode_to_vec())),
            Err(KplError::ExplicitHashKeyIndex {
                record: 1,
                index: u64::MAX,
                table_len: 0
            })
        );
    }

    #[test]
    fn tags_are_read_past() {
        let message = proto::AggregatedRecord {
            partition_key_table: vec!["Shadowfax".into()],
            explicit_hash_key_table: vec![],
            records: vec![proto::Record {
                partition_key_index: 0,
                explicit_hash_key_index: None,
                data: READING.as_bytes().to_vec(),
                tags: vec![proto::Tag {
                    key: "source".into(),
                    value: Some("workshop".into()),
                }],
            }],
        };
        assert_eq!(
            deaggregate(&wrap(&message.encode_to_vec())),
            Ok(vec![record("Shadowfax", None, READING.as_bytes())])
        );
    }

    /// One input of the fixture, as make_fixture.py wrote it.
    #[derive(serde::Deserialize)]
    struct FixtureRecord {
        partition_key: String,
        explicit_hash_key: Option<String>,
        data: String,
    }

    /// The fixture's JSON.
    #[derive(serde::Deserialize)]
    struct Fixture {
        partition_key: String,
        explicit_hash_key: Option<String>,
        records: Vec<FixtureRecord>,
    }

    fn aws_fixture() -> (Fixture, Vec<UserRecord>) {
        let fixture: Fixture = serde_json::from_str(AWS_FIXTURE_JSON).unwrap();
        let records = fixture
            .records
            .iter()
            .map(|r| UserRecord {
                partition_key: r.partition_key.clone(),
                explicit_hash_key: r.explicit_hash_key.clone(),
                data: r.data.as_bytes().to_vec(),
            })
            .collect();
        (fixture, records)
    }

    #[test]
    fn an_aggregate_made_by_aws_kinesis_agg_gives_back_its_inputs() {
        let (_, records) = aws_fixture();
        assert!(is_aggregated(AWS_FIXTURE_BIN));
        assert_eq!(deaggregate(AWS_FIXTURE_BIN), Ok(records));
    }

    #[test]
    fn our_aggregate_of_the_same_inputs_is_byte_for_byte_aws_kinesis_aggs() {
        let (fixture, records) = aws_fixture();
        let mut builder = AggregateBuilder::new();
        for r in records {
            builder.push(r);
        }
        assert_eq!(
            builder.partition_key(),
            Some(fixture.partition_key.as_str())
        );
        assert_eq!(
            builder.explicit_hash_key(),
            fixture.explicit_hash_key.as_deref()
        );
        assert_eq!(builder.finish(), AWS_FIXTURE_BIN);
    }

    /// Keys mostly from a small fleet, so tables share entries, sometimes
    /// anything at all.
    fn key() -> impl Strategy<Value = String> {
        prop_oneof![
            3 => prop::sample::select(&["Shadowfax", "Rocinante", "Bucephalus", "Pegasus"][..])
                .prop_map(String::from),
            1 => any::<String>(),
        ]
    }

    fn hash_key() -> impl Strategy<Value = Option<String>> {
        prop::option::of(prop_oneof![
            prop::sample::select(&["0", "170141183460469231731687303715884105728"][..])
                .prop_map(String::from),
            any::<u128>().prop_map(|n| n.to_string()),
        ])
    }

    fn user_record() -> impl Strategy<Value = UserRecord> {
        (
            key(),
            hash_key(),
            prop::collection::vec(any::<u8>(), 0..300),
        )
            .prop_map(|(partition_key, explicit_hash_key, data)| UserRecord {
                partition_key,
                explicit_hash_key,
                data,
            })
    }

    proptest! {
        #[test]
        fn aggregating_then_deaggregating_is_the_identity(
            records in prop::collection::vec(user_record(), 0..40),
        ) {
            let data = aggregate(&records);
            prop_assert_eq!(deaggregate(&data), Ok(records));
        }

        #[test]
        fn any_bytes_give_records_or_an_error(data in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = deaggregate(&data);
            let mut aggregate = MAGIC.to_vec();
            aggregate.extend_from_slice(&data);
            let _ = deaggregate(&aggregate);
        }

        #[test]
        fn any_protobuf_with_a_valid_md5_gives_records_or_an_error(
            message in prop::collection::vec(any::<u8>(), 0..200),
        ) {
            let result = deaggregate(&wrap(&message));
            let refused_before_the_protobuf = matches!(
                result,
                Err(KplError::NotAggregated | KplError::Truncated { .. } | KplError::Checksum)
            );
            prop_assert!(!refused_before_the_protobuf, "{:?}", result);
        }
    }
}
