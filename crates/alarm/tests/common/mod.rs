//! Helpers shared by the alarm's integration tests: the embedded backend with
//! the alarm's tables, records of scripted walks, and an alarm with quick
//! retries. Each test file uses some of them.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;
use wildrydes_alarm::store::StateStore;
use wildrydes_alarm::{AlarmHistory, AlarmOutcome, AlarmSettings, Detector, MagicAlarm, Notifier};
use wildrydes_core::input::{ShardSource, SourceRecord};
use wildrydes_core::rejects::RejectStore;
use wildrydes_core::retry::RetryPolicy;
use wildrydes_core::writer::{TableWriter, WriterConfig};
use wildrydes_local_aws::{LocalAws, LocalAwsOptions, ensure_table, workshop};

pub use wildrydes_testkit::bounded;

/// The embedded DynamoDB with the alarm's tables (state with its index
/// `OpenAlarms`, history) and the rejects table.
pub async fn backend() -> LocalAws {
    let local = LocalAws::start(LocalAwsOptions::default()).await.unwrap();
    let dynamodb = local.dynamodb_client();
    workshop::ensure_alarm_tables(&dynamodb).await.unwrap();
    ensure_table(&dynamodb, &workshop::rejects_table())
        .await
        .unwrap();
    local
}

/// Retries and waits short enough for tests.
pub fn quick() -> AlarmSettings {
    AlarmSettings {
        notify_retry: RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
        },
        store_retry: RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
        },
        claim_poll: RetryPolicy {
            max_attempts: u32::MAX,
            base_delay: Duration::from_millis(2),
            max_delay: Duration::from_millis(20),
        },
        ..AlarmSettings::default()
    }
}

/// An alarm at the default levels over `local`, telling `notifiers`.
pub fn alarm(local: &LocalAws, notifiers: Vec<Arc<dyn Notifier>>) -> MagicAlarm {
    let dynamodb = local.dynamodb_client();
    MagicAlarm::new(
        Detector::default(),
        StateStore::new(dynamodb.clone(), workshop::ALARM_TABLE),
        notifiers,
        RejectStore::new(TableWriter::new(
            dynamodb,
            workshop::REJECTS_TABLE,
            WriterConfig::default(),
        )),
    )
    .unwrap()
    .with_settings(quick())
}

/// `alarm` judges `records` as one batch of the readings shard, with time to
/// spare.
pub async fn process(alarm: &MagicAlarm, records: &[SourceRecord]) -> AlarmOutcome {
    alarm.process(&source(), records, deadline()).await
}

/// The state store the alarm of [`alarm`] uses.
pub fn store(local: &LocalAws) -> StateStore {
    StateStore::new(local.dynamodb_client(), workshop::ALARM_TABLE)
}

/// The console's reader of the tables the alarm of [`alarm`] writes.
pub fn history(local: &LocalAws) -> AlarmHistory {
    AlarmHistory::new(
        local.dynamodb_client(),
        workshop::ALARM_TABLE,
        workshop::ALARM_HISTORY_TABLE,
    )
}

/// The shard of the readings stream.
pub fn source() -> ShardSource {
    ShardSource {
        stream_arn: "arn:aws:kinesis:us-east-1:000000000000:stream/wildrydes".into(),
        shard_id: "shardId-000000000000".into(),
    }
}

/// Far enough away never to matter, unless a test wants it to.
pub fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(30)
}

/// Sequence numbers rise across every record a test builds, as on a shard.
static SEQUENCE: AtomicU64 = AtomicU64::new(1);

fn record(name: &str, data: String) -> SourceRecord {
    SourceRecord {
        sub_sequence_number: None,
        sequence_number: format!("{:056}", SEQUENCE.fetch_add(1, Ordering::Relaxed)),
        partition_key: name.to_owned(),
        data: data.into_bytes(),
    }
}

/// The time `second` seconds into the test's day, in the workshop format.
pub fn at(second: u32) -> String {
    let (h, m, s) = (9 + second / 3600, (second / 60) % 60, second % 60);
    format!("2017-06-05 {h:02}:{m:02}:{s:02}.189")
}

/// A reading of `name` at `second` with `magic` points, moving north-east.
pub fn reading(name: &str, second: u32, magic: i16) -> SourceRecord {
    let lat = 40.749167 + f64::from(second) * 0.0001;
    let lon = -73.985184 + f64::from(second) * 0.0001;
    record(
        name,
        format!(
            r#"{{"Name":"{name}","StatusTime":"{}","Latitude":{lat},"Longitude":{lon},"Distance":175,"MagicPoints":{magic},"HealthPoints":150}}"#,
            at(second)
        ),
    )
}

/// Readings of `name`, one per second from `first`, with these magic points.
pub fn walk(name: &str, first: u32, magic: &[i16]) -> Vec<SourceRecord> {
    magic
        .iter()
        .zip(first..)
        .map(|(m, s)| reading(name, s, *m))
        .collect()
}

/// An aggregate of `name` for minute `minute` of the day's hour 10.
pub fn aggregate(name: &str, minute: u32, min_magic: i16, max_magic: i16) -> SourceRecord {
    record(
        name,
        format!(
            r#"{{"Name":"{name}","StatusTime":"2017-06-05 10:{minute:02}:00.000","Distance":9413,"MinMagicPoints":{min_magic},"MaxMagicPoints":{max_magic},"MinHealthPoints":150,"MaxHealthPoints":157}}"#
        ),
    )
}

/// A record that is not JSON.
pub fn garbage() -> SourceRecord {
    record("Shadowfax", "\u{1}garbage".to_owned())
}

/// The same record put again under a new sequence number, as a producer
/// retry does.
pub fn again(r: &SourceRecord) -> SourceRecord {
    record(&r.partition_key, String::from_utf8(r.data.clone()).unwrap())
}
