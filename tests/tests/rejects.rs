//! Rejects end to end: the stream processor keeps bad records from a real
//! stream, an operator re-drives them, and they are back on their stream.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use aws_sdk_kinesis::primitives::Blob;
use tokio::time::Instant;
use wildrydes_core::input::ShardSource;
use wildrydes_core::process::Processor;
use wildrydes_core::rejects::RejectStore;
use wildrydes_core::writer::{TableWriter, WriterConfig};
use wildrydes_local_aws::workshop::{self, AGGREGATES_STREAM, REJECTS_TABLE, SENSOR_TABLE};
use wildrydes_ops::rejects;
use wildrydes_testkit::{bounded, read_stream, start_local_aws};

#[tokio::test]
async fn rejects_are_listed_and_redriven_to_their_stream() {
    bounded(async {
        let local = start_local_aws().await;
        workshop::ensure_workshop_resources(&local).await.unwrap();
        let (dynamodb, kinesis) = (local.dynamodb_client(), local.kinesis_client());

        // Two bad records and a good one, put on the real stream and read back.
        let payloads: [&[u8]; 3] = [
            b"{\"Name\":\"Shadowfax\"}",
            br#"{"Name":"Shadowfax","StatusTime":"2016-02-12 00:00:00.000","Distance":1317,"MinMagicPoints":146,"MaxMagicPoints":149,"MinHealthPoints":144,"MaxHealthPoints":149}"#,
            b"\x00\x01binary",
        ];
        for data in payloads {
            kinesis
                .put_record()
                .stream_name(AGGREGATES_STREAM)
                .partition_key("Shadowfax")
                .data(Blob::new(data))
                .send()
                .await
                .unwrap();
        }
        let summary = kinesis
            .describe_stream_summary()
            .stream_name(AGGREGATES_STREAM)
            .send()
            .await
            .unwrap();
        let stream_arn = summary.stream_description_summary().unwrap().stream_arn().to_owned();
        let read = read_stream(&kinesis, AGGREGATES_STREAM).await;
        assert_eq!(read.len(), 3);

        let writer = |table: &str| TableWriter::new(dynamodb.clone(), table, WriterConfig::default());
        let processor = Processor::new(writer(SENSOR_TABLE), RejectStore::new(writer(REJECTS_TABLE)));
        let source = ShardSource {
            stream_arn,
            shard_id: "shardId-000000000000".into(),
        };
        let outcome = processor
            .process(&source, &read, Instant::now() + Duration::from_secs(10))
            .await;
        assert_eq!((outcome.written, outcome.rejected, outcome.first_failure), (1, 2, None));

        let listed = rejects::list_rejects(&dynamodb, REJECTS_TABLE).await.unwrap();
        let ids: Vec<_> = listed.iter().map(|r| r.record_id()).collect();
        assert_eq!(listed.len(), 2);
        assert!(ids.iter().all(|id| id.starts_with("wildrydes-aggregated/shardId-000000000000/")));

        // Re-drive one by its id, then the rest.
        let report = rejects::redrive(&dynamodb, &kinesis, REJECTS_TABLE, |r| r.record_id() == ids[0])
            .await
            .unwrap();
        assert_eq!((report.redriven.len(), report.skipped.len()), (1, 0));
        assert_eq!(rejects::list_rejects(&dynamodb, REJECTS_TABLE).await.unwrap().len(), 1);
        let report = rejects::redrive(&dynamodb, &kinesis, REJECTS_TABLE, |_| true).await.unwrap();
        assert_eq!(report.redriven, [ids[1].clone()]);
        assert!(rejects::list_rejects(&dynamodb, REJECTS_TABLE).await.unwrap().is_empty());

        // The stream now also holds both bad records again, bytes unchanged.
        let again = read_stream(&kinesis, AGGREGATES_STREAM).await;
        assert_eq!(again.len(), 5);
        let mut redriven: Vec<_> = again[3..].iter().map(|r| r.data.clone()).collect();
        redriven.sort();
        let mut bad = vec![payloads[0].to_vec(), payloads[2].to_vec()];
        bad.sort();
        assert_eq!(redriven, bad);
    })
    .await;
}
