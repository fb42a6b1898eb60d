//! The embedded backend speaks the real wire protocols: data written with the
//! official SDK comes back unchanged through the official SDK.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, ShardIteratorType};
use wildrydes_local_aws::{KeyAttribute, TableSpec, ensure_stream, ensure_table};
use wildrydes_testkit::{bounded, start_local_aws};

type Item = std::collections::HashMap<String, AttributeValue>;

/// Records written with PutRecords are read back, in order per shard, with
/// their data, partition keys and sequence numbers, from TRIM_HORIZON.
#[tokio::test]
async fn kinesis_put_records_round_trip_through_get_records() {
    bounded(async {
        let local = start_local_aws().await;
        let kinesis = local.kinesis_client();
        ensure_stream(&kinesis, "smoke", 2).await.unwrap();

        let sent: Vec<(String, Vec<u8>)> = (0..40)
            .map(|i| {
                let key = format!("unicorn-{}", i % 7);
                let data = format!(r#"{{"Name":"{key}","Distance":{i}}}"#).into_bytes();
                (key, data)
            })
            .collect();
        let entries = sent
            .iter()
            .map(|(key, data)| {
                PutRecordsRequestEntry::builder()
                    .partition_key(key)
                    .data(Blob::new(data.clone()))
                    .build()
                    .unwrap()
            })
            .collect::<Vec<_>>();
        let put = kinesis
            .put_records()
            .stream_name("smoke")
            .set_records(Some(entries))
            .send()
            .await
            .unwrap();
        assert_eq!(put.failed_record_count(), Some(0));
        assert_eq!(put.records().len(), sent.len());

        // What we expect to read, by sequence number (unique per stream).
        let mut expected = BTreeMap::new();
        for (result, (key, data)) in put.records().iter().zip(&sent) {
            let sequence = result.sequence_number().unwrap().to_owned();
            let shard = result.shard_id().unwrap().to_owned();
            expected.insert(sequence, (shard, Some(key.clone()), data.clone()));
        }

        let mut read = BTreeMap::new();
        let shards = kinesis
            .list_shards()
            .stream_name("smoke")
            .send()
            .await
            .unwrap();
        assert_eq!(shards.shards().len(), 2);
        for shard in shards.shards() {
            let mut iterator = kinesis
                .get_shard_iterator()
                .stream_name("smoke")
                .shard_id(shard.shard_id())
                .shard_iterator_type(ShardIteratorType::TrimHorizon)
                .send()
                .await
                .unwrap()
                .shard_iterator()
                .map(str::to_owned);
            let mut previous: Option<String> = None;
            // Read until the shard is drained: a page that is empty and
            // caught up with the tip.
            while let Some(current) = iterator {
                let page = kinesis
                    .get_records()
                    .shard_iterator(current)
                    .send()
                    .await
                    .unwrap();
                for record in page.records() {
                    let sequence = record.sequence_number().to_owned();
                    // Kinesis orders a shard's records by sequence number,
                    // which compares as a decimal integer.
                    if let Some(previous) = &previous {
                        assert!(
                            (previous.len(), previous) < (sequence.len(), &sequence),
                            "{previous} then {sequence}"
                        );
                    }
                    let value = (
                        shard.shard_id().to_owned(),
                        record.partition_key().map(str::to_owned),
                        record.data().as_ref().to_vec(),
                    );
                    assert!(read.insert(sequence.clone(), value).is_none());
                    previous = Some(sequence);
                }
                let drained = page.records().is_empty() && page.millis_behind_latest() == Some(0);
                iterator = if drained {
                    None
                } else {
                    page.next_shard_iterator().map(str::to_owned)
                };
            }
        }
        assert_eq!(read, expected);
        local.shutdown().await.unwrap();
    })
    .await;
}

/// Items written with BatchWriteItem come back from a Query on their
/// partition key, ordered by sort key, attribute for attribute.
#[tokio::test]
async fn dynamodb_batch_write_round_trips_through_query() {
    bounded(async {
        let local = start_local_aws().await;
        let dynamodb = local.dynamodb_client();
        let table = TableSpec {
            name: "SmokeSensorData".to_owned(),
            partition_key: KeyAttribute::string("Name"),
            sort_key: Some(KeyAttribute::number("StatusTime")),
            indexes: Vec::new(),
        };
        ensure_table(&dynamodb, &table).await.unwrap();

        // 25 is BatchWriteItem's limit; two unicorns so the Query has
        // something to leave out.
        let items: Vec<Item> = (0..25)
            .map(|i| {
                let name = if i % 2 == 0 { "Shadowfax" } else { "Rocinante" };
                Item::from([
                    ("Name".to_owned(), AttributeValue::S(name.to_owned())),
                    (
                        "StatusTime".to_owned(),
                        AttributeValue::N((1_700_000_000 + i * 60).to_string()),
                    ),
                    (
                        "Distance".to_owned(),
                        AttributeValue::N(format!("{}.5", i * 10)),
                    ),
                    (
                        "HealthPoints".to_owned(),
                        AttributeValue::L(vec![AttributeValue::N(i.to_string())]),
                    ),
                    ("Resting".to_owned(), AttributeValue::Bool(i % 3 == 0)),
                ])
            })
            .collect();
        let mut pending: Vec<WriteRequest> = items
            .iter()
            .map(|item| {
                let put = PutRequest::builder()
                    .set_item(Some(item.clone()))
                    .build()
                    .unwrap();
                WriteRequest::builder().put_request(put).build()
            })
            .collect();
        // BatchWriteItem may leave items unprocessed; resend those.
        while !pending.is_empty() {
            let written = dynamodb
                .batch_write_item()
                .request_items(&table.name, pending)
                .send()
                .await
                .unwrap();
            pending = written
                .unprocessed_items()
                .and_then(|unprocessed| unprocessed.get(&table.name))
                .cloned()
                .unwrap_or_default();
        }

        let mut expected: Vec<Item> = items
            .into_iter()
            .filter(|item| item["Name"] == AttributeValue::S("Shadowfax".to_owned()))
            .collect();
        expected.sort_by_key(|item| item["StatusTime"].as_n().unwrap().parse::<u64>().unwrap());

        // `Name` is a reserved word, hence the placeholder.
        let found: Vec<Item> = dynamodb
            .query()
            .table_name(&table.name)
            .key_condition_expression("#name = :name")
            .expression_attribute_names("#name", "Name")
            .expression_attribute_values(":name", AttributeValue::S("Shadowfax".to_owned()))
            .into_paginator()
            .items()
            .send()
            .collect::<Result<_, _>>()
            .await
            .unwrap();
        assert_eq!(found.len(), 13);
        assert_eq!(found, expected);
        local.shutdown().await.unwrap();
    })
    .await;
}
