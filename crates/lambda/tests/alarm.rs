//! The alarm function's handler with events of KPL aggregates of readings,
//! as a shard delivers them (several small batches, interleaved unicorns),
//! against the embedded DynamoDB, telling an in-memory notifier. Expected
//! notifications are worked out here from the walks' magic points (ALARM
//! below 50, OK again at 60), not by the detector under test.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Shard, batches, corrupt, deliver};
use tokio::time::Instant;
use wildrydes_alarm::store::StateStore;
use wildrydes_alarm::{AlarmSettings, Detector, MagicAlarm, MemoryNotifier};
use wildrydes_core::input::SourceRecord;
use wildrydes_core::names::PipelineName;
use wildrydes_core::rejects::RejectStore;
use wildrydes_core::retry::RetryPolicy;
use wildrydes_core::writer::{TableWriter, WriterConfig};
use wildrydes_lambda::alarm::handle;
use wildrydes_local_aws::{LocalAws, LocalAwsOptions, workshop};
use wildrydes_ops::rejects::list_rejects;
use wildrydes_testkit::bounded;

/// The embedded backend, and the function's alarm over it telling one
/// in-memory notifier, with quick retries.
struct Watch {
    local: LocalAws,
    notifier: MemoryNotifier,
    alarm: MagicAlarm,
}

impl Watch {
    async fn start() -> Self {
        let local = LocalAws::start(LocalAwsOptions::default()).await.unwrap();
        workshop::ensure_workshop_resources(&local).await.unwrap();
        let dynamodb = local.dynamodb_client();
        let notifier = MemoryNotifier::new("memory");
        let quick = RetryPolicy::new(3, Duration::from_millis(1), Duration::from_millis(5));
        let alarm = MagicAlarm::new(
            Detector::default(),
            StateStore::new(dynamodb.clone(), workshop::ALARM_TABLE),
            vec![Arc::new(notifier.clone())],
            RejectStore::new(TableWriter::new(
                dynamodb,
                workshop::REJECTS_TABLE,
                WriterConfig::default(),
            )),
        )
        .unwrap()
        .with_settings(AlarmSettings {
            notify_retry: quick,
            store_retry: quick,
            ..AlarmSettings::default()
        });
        Self {
            local,
            notifier,
            alarm,
        }
    }

    /// One invocation with `event`, decoded as the `bootstrap` decodes it;
    /// the sequence number Lambda is told to resume at, if any.
    async fn invoke(&self, event: serde_json::Value) -> Option<String> {
        let event = serde_json::from_value(event).unwrap();
        let response = handle(&self.alarm, event, Instant::now() + Duration::from_secs(20)).await;
        assert!(response.batch_item_failures.len() <= 1);
        response
            .batch_item_failures
            .first()
            .map(|f| f.item_identifier.clone().unwrap())
    }

    /// What the notifier accepted, as (id, magic points), sorted by id.
    fn told(&self) -> Vec<(String, i16)> {
        let mut told: Vec<_> = self
            .notifier
            .accepted()
            .into_iter()
            .map(|n| (n.id, n.magic_points))
            .collect();
        told.sort();
        told
    }
}

/// A unicorn's magic points, one reading a second from 09:00:00.
type Walk = (&'static str, &'static [i16]);

/// Dips twice, recovering each time.
const SHADOWFAX: Walk = (
    "Shadowfax",
    &[
        62, 58, 55, 52, 50, 49, 47, 45, 48, 52, 57, 60, 63, 61, 58, 52, 49, 45, 50, 55, 61, 64,
    ],
);
/// Never low.
const ROCINANTE: Walk = (
    "Rocinante",
    &[
        100, 99, 98, 98, 97, 96, 96, 95, 94, 94, 93, 92, 92, 91, 90, 90, 89, 88, 88, 87, 86, 86,
    ],
);
/// Dips once and never gets back to 60.
const BUCEPHALUS: Walk = (
    "Bucephalus",
    &[
        55, 53, 51, 50, 48, 46, 44, 47, 49, 51, 53, 55, 57, 59, 58, 56, 54, 52, 50, 51, 53, 55,
    ],
);

/// The workshop's time of second `second` of the walks.
fn at(second: usize) -> String {
    format!("2017-06-05 09:00:{second:02}.189")
}

/// The reading of `name` at `second` with `magic` points, as the
/// workshop's producer sends it: (partition key, JSON).
fn reading(name: &str, second: usize, magic: i16) -> (String, Vec<u8>) {
    let json = format!(
        r#"{{"Name":"{name}","StatusTime":"{}","Latitude":40.749167,"Longitude":-73.985184,"Distance":175,"MagicPoints":{magic},"HealthPoints":150}}"#,
        at(second)
    );
    (name.to_owned(), json.into_bytes())
}

/// The readings of `walks`, interleaved second by second, as one shard
/// carries a fleet.
fn interleaved(walks: &[Walk]) -> Vec<(String, Vec<u8>)> {
    let seconds = walks.iter().map(|(_, m)| m.len()).max().unwrap();
    (0..seconds)
        .flat_map(|s| {
            walks
                .iter()
                .filter_map(move |(name, magic)| Some(reading(name, s, *magic.get(s)?)))
        })
        .collect()
}

/// The notifications `walks` must cause, as (id, magic points), sorted:
/// from OK, ALARM at the first reading below 50; from ALARM, OK at the
/// first at or above 60.
fn expected(walks: &[Walk]) -> Vec<(String, i16)> {
    let mut out = Vec::new();
    for (name, magic) in walks {
        let mut alarm = false;
        for (second, m) in magic.iter().enumerate() {
            let to = match (alarm, *m) {
                (false, m) if m < 50 => "ALARM",
                (true, m) if m >= 60 => "OK",
                _ => continue,
            };
            alarm = !alarm;
            out.push((format!("{name}/{to}/2017-06-05T09:00:{second:02}.189Z"), *m));
        }
    }
    out.sort();
    out
}

/// `readings` packed as a KPL producer packs them: consecutive runs of
/// `sizes[i % len]` user records per Kinesis record, a size of 0 meaning
/// one plain record.
fn pack(shard: &mut Shard, readings: &[(String, Vec<u8>)], sizes: &[usize]) -> Vec<SourceRecord> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < readings.len() {
        let size = sizes[out.len() % sizes.len()];
        if size == 0 {
            let (key, data) = readings[at].clone();
            out.push(shard.plain(&key, data));
            at += 1;
        } else {
            let end = (at + size).min(readings.len());
            out.push(shard.aggregate(readings[at..end].iter().cloned()));
            at = end;
        }
    }
    out
}

#[tokio::test]
async fn the_alarm_judges_the_user_records_of_aggregates_in_small_interleaved_batches() {
    bounded(async {
        let w = Watch::start().await;
        let walks = [SHADOWFAX, ROCINANTE, BUCEPHALUS];
        let mut shard = Shard::of("wildrydes");
        let records = pack(&mut shard, &interleaved(&walks), &[4, 0, 5, 3, 7, 2, 0, 6]);
        let events = batches(&records, &[2, 3, 1, 4]);
        assert!(events.len() >= 5);
        for event in &events {
            assert_eq!(w.invoke(shard.event(event)).await, None);
        }
        let want = expected(&walks);
        assert_eq!(want.len(), 5, "{want:?}");
        assert_eq!(w.told(), want);
        // Every batch delivered again (Lambda's at-least-once): nothing more.
        for event in &events {
            assert_eq!(w.invoke(shard.event(event)).await, None);
        }
        assert_eq!(w.told(), want);
        let rejects = list_rejects(&w.local.dynamodb_client(), workshop::REJECTS_TABLE)
            .await
            .unwrap();
        assert!(rejects.is_empty(), "{rejects:?}");
    })
    .await;
}

#[tokio::test]
async fn a_delivery_failing_in_the_middle_of_an_aggregate_resumes_at_that_aggregate() {
    bounded(async {
        let w = Watch::start().await;
        let walks = [SHADOWFAX, ROCINANTE];
        let readings = interleaved(&walks);
        let mut shard = Shard::of("wildrydes");
        let records = pack(&mut shard, &readings, &[4, 0, 7, 3, 5, 2, 0, 6]);
        // Shadowfax's first reading below 50 (second 5) is the 11th
        // reading: the 6th user record of the third Kinesis record.
        let first_low = readings
            .iter()
            .position(|r| r == &reading("Shadowfax", 5, 49))
            .unwrap();
        assert_eq!(first_low, 10);
        let holder = &records[2];
        let users = wildrydes_core::kpl::deaggregate(&holder.data).unwrap();
        assert_eq!(users[5].data, readings[first_low].1, "in the middle");

        // The notifier is down until the first failed invocation.
        w.notifier.break_down();
        let answers = deliver(&shard, &records, 3, async |event| {
            let answer = w.invoke(event).await;
            if answer.is_some() {
                assert!(w.told().is_empty());
                w.notifier.repair();
            }
            answer
        })
        .await;
        let failed: Vec<_> = answers.iter().flatten().collect();
        assert_eq!(failed, [&holder.sequence_number], "{answers:?}");
        // Lambda's retry from that aggregate: each transition told once.
        assert_eq!(w.told(), expected(&walks));
    })
    .await;
}

#[tokio::test]
async fn a_corrupt_aggregate_is_one_reject_and_the_readings_beside_it_are_judged() {
    bounded(async {
        let w = Watch::start().await;
        let mut shard = Shard::of("wildrydes");
        let low: Vec<_> = (0..7)
            .map(|s| reading("Shadowfax", s, SHADOWFAX.1[s]))
            .collect();
        let sent = [
            shard.aggregate(low[..4].iter().cloned()),
            corrupt(shard.aggregate((0..5).map(|s| reading("Rocinante", s, 40)))),
            shard.aggregate(low[4..6].iter().cloned()),
            shard.plain("Shadowfax", low[6].1.clone()),
        ];
        assert_eq!(w.invoke(shard.event(&sent)).await, None);
        assert_eq!(
            w.told(),
            [("Shadowfax/ALARM/2017-06-05T09:00:05.189Z".to_owned(), 49)],
            "Rocinante's readings are in the corrupt aggregate: not judged"
        );
        let dynamodb = w.local.dynamodb_client();
        let rejects = list_rejects(&dynamodb, workshop::REJECTS_TABLE)
            .await
            .unwrap();
        common::assert_the_corrupt_aggregate_is_the_one_reject(
            &rejects,
            PipelineName::Alarm,
            &sent[1],
        );
        // Delivered again: still one reject, nothing more told.
        assert_eq!(w.invoke(shard.event(&sent)).await, None);
        let rejects = list_rejects(&dynamodb, workshop::REJECTS_TABLE)
            .await
            .unwrap();
        assert_eq!(rejects.len(), 1);
        assert_eq!(w.told().len(), 1);
    })
    .await;
}
