//! Records to measure with: the workshop's day of aggregates
//! (`tests/fixtures/shadowfax-2016-02-12.json`, 1,440 minutes of
//! Shadowfax), repeated for as many unicorns as it takes, so that every
//! record of a batch, however large, has its own table key (as a shard's
//! batch does).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};
use wildrydes_core::{Aggregate, UnicornName};

/// The stream the events say their records come from.
pub const STREAM_ARN: &str = "arn:aws:kinesis:us-east-1:123456789012:stream/wildrydes-aggregated";

/// The workshop's day, one aggregate per line.
pub const DAY: &str = include_str!("../../tests/fixtures/shadowfax-2016-02-12.json");

/// `count` aggregates with distinct keys: the day's minutes for
/// Unicorn-0000, then the same minutes for Unicorn-0001, and so on.
pub fn aggregates(count: usize) -> Vec<Aggregate> {
    let day: Vec<Aggregate> = DAY
        .lines()
        .filter_map(|l| Aggregate::from_json(l.as_bytes()).ok())
        .collect();
    (0..count)
        .map(|i| {
            let mut a = day[i % day.len()].clone();
            if let Ok(name) = UnicornName::new(&format!("Unicorn-{:04}", i / day.len())) {
                a.name = name;
            }
            a
        })
        .collect()
}

/// A Lambda Kinesis event holding `aggregates` in order, one shard, as the
/// JSON Lambda's runtime API delivers (the shape of
/// `tests/fixtures/events/*.json`, compact).
pub fn kinesis_event(aggregates: &[Aggregate]) -> Vec<u8> {
    let records: Vec<Value> = aggregates
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let sequence = format!("49590338271490256608559692538361571095921575989136{i:06}");
            json!({
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": a.name.as_str(),
                    "sequenceNumber": sequence,
                    "data": B64.encode(a.to_json()),
                    "approximateArrivalTimestamp": 1455235200.25,
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": format!("shardId-000000000000:{sequence}"),
                "eventName": "aws:kinesis:record",
                "invokeIdentityArn": "arn:aws:iam::123456789012:role/WildRydesStreamProcessorRole",
                "awsRegion": "us-east-1",
                "eventSourceARN": STREAM_ARN,
            })
        })
        .collect();
    json!({ "Records": records }).to_string().into_bytes()
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn keys_are_distinct_across_unicorns() {
        let all = aggregates(3_000);
        let keys: HashSet<_> = all
            .iter()
            .map(|a| (a.name.clone(), a.status_time))
            .collect();
        assert_eq!(keys.len(), 3_000);
        assert_eq!(all[1_440].name.as_str(), "Unicorn-0001");
    }

    #[test]
    fn events_carry_the_records_base64_encoded() {
        let all = aggregates(2);
        let event: Value = serde_json::from_slice(&kinesis_event(&all)).unwrap_or_default();
        let data = event["Records"][1]["kinesis"]["data"]
            .as_str()
            .unwrap_or_default();
        assert_eq!(
            B64.decode(data).unwrap_or_default(),
            all[1].to_json().into_bytes()
        );
    }
}
