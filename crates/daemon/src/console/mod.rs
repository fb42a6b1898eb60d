//! `wildrydes-daemon console`: a live web page of the fleet and the
//! pipeline for operators. It only reads:
//!
//! - [`positions`]: each unicorn's last reading, from the readings stream,
//!   one GetRecords call per shard at most every 2 s (a tenth of the
//!   shard's 5 reads/s, shared with the pipeline's pollers);
//! - [`sources`]: the open alarms (a Query on the alarm-state table's
//!   sparse `OpenAlarms` index), the latest rejects (one page of the
//!   rejects table), and each pipeline's lag, records/s and errors (the
//!   daemons' `/metrics`, and on AWS [`cloudwatch`]: the Lambda functions'
//!   metrics, one GetMetricData call a minute);
//! - [`api`]: the page and its assets (built into the binary: no CDN, no
//!   map tiles), a server-sent event stream of what changed each second,
//!   and one unicorn's minutes and alarm history (DynamoDB Queries on its
//!   key, never a scan).

pub mod api;
pub mod cloudwatch;
pub mod positions;
pub mod sources;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

/// What the console reads and how often.
#[derive(Debug, Clone)]
pub struct ConsoleConfig {
    /// The readings stream (positions).
    pub readings_stream: String,
    /// The aggregates table (`UnicornSensorData`).
    pub sensor_table: String,
    /// The alarm-state table, with its `OpenAlarms` index.
    pub alarm_table: String,
    /// The alarm-history table.
    pub history_table: String,
    /// The rejects table.
    pub rejects_table: String,
    /// Daemons' `/metrics` URLs.
    pub metrics: Vec<String>,
    /// Also read the pipelines' figures from CloudWatch (the Lambda
    /// functions', as on AWS).
    pub cloudwatch: bool,
    /// Shortest time between two reads of one shard.
    pub read_interval: Duration,
    /// How far back positions are read at start.
    pub lookback: Duration,
    /// A unicorn with no reading for this long is shown silent.
    pub silent_after: Duration,
    /// How often the page gets what changed.
    pub push_interval: Duration,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        use wildrydes_core::names::{ALARM_TABLE, READINGS_STREAM, REJECTS_TABLE, SENSOR_TABLE};
        Self {
            readings_stream: READINGS_STREAM.to_owned(),
            sensor_table: SENSOR_TABLE.to_owned(),
            alarm_table: ALARM_TABLE.to_owned(),
            history_table: wildrydes_core::names::ALARM_HISTORY_TABLE.to_owned(),
            rejects_table: REJECTS_TABLE.to_owned(),
            metrics: Vec::new(),
            cloudwatch: false,
            read_interval: Duration::from_secs(2),
            lookback: Duration::from_secs(300),
            silent_after: Duration::from_secs(30),
            push_interval: Duration::from_secs(1),
        }
    }
}

/// A unicorn's state on the map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum State {
    /// Readings arrive, magic is fine.
    #[serde(rename = "OK")]
    Ok,
    /// Its magic alarm is open.
    #[serde(rename = "ALARM")]
    Alarm,
    /// No reading for a while.
    #[serde(rename = "SILENT")]
    Silent,
}

/// One unicorn as the page shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Unicorn {
    /// Its name.
    pub name: String,
    /// Last position.
    pub lat: f64,
    /// Last position.
    pub lon: f64,
    /// Last figures.
    pub magic: i16,
    /// Last figures.
    pub health: i16,
    /// Event time of the last reading, epoch ms.
    pub time: i64,
    /// OK, ALARM or SILENT.
    pub state: State,
}

/// One open alarm.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OpenAlarm {
    /// The unicorn.
    pub name: String,
    /// Event time of the figure that opened it, epoch ms.
    pub since: i64,
    /// That figure.
    pub magic_points: Option<i16>,
}

/// One reject.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RejectView {
    /// Its id in the rejects table.
    pub record_id: String,
    /// The pipeline that refused it.
    pub pipeline: String,
    /// Why.
    pub reason: String,
    /// Its partition key.
    pub partition_key: String,
    /// When, RFC 3339.
    pub rejected_at: String,
}

/// One pipeline's figures from a daemon's `/metrics` or from CloudWatch.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PipelineView {
    /// Where the figures come from.
    pub source: String,
    /// The pipeline (`aggregate`, `process`, `alarm`); empty when the
    /// source could not be read.
    pub pipeline: String,
    /// Whether the source answered at the last look.
    pub up: bool,
    /// Why not, when not.
    pub error: Option<String>,
    /// The largest MillisBehindLatest over its shards.
    pub lag_ms: f64,
    /// Records read per second since the last look.
    pub records_per_sec: f64,
    /// Records rejected per second.
    pub rejected_per_sec: f64,
    /// Write retries per second.
    pub retries_per_sec: f64,
    /// Leases held (0 for a Lambda function).
    pub leases: f64,
}

impl PipelineView {
    /// A source that could not be read, and why.
    pub fn down(source: String, error: String) -> Self {
        Self {
            source,
            pipeline: String::new(),
            up: false,
            error: Some(error),
            lag_ms: 0.0,
            records_per_sec: 0.0,
            rejected_per_sec: 0.0,
            retries_per_sec: 0.0,
            leases: 0.0,
        }
    }
}

/// A unicorn's last reading as the positions reader saw it.
#[derive(Debug, Clone)]
struct Seen {
    unicorn: Unicorn,
    /// When it arrived here (silence is judged by the console's clock).
    at: Instant,
    /// The change counter when it last changed.
    changed: u64,
}

/// What the console knows now, shared by its readers and its page streams.
#[derive(Debug, Default)]
pub struct Live {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Bumped by every change.
    counter: u64,
    fleet: HashMap<String, Seen>,
    open: Vec<OpenAlarm>,
    open_changed: u64,
    rejects: Vec<RejectView>,
    rejects_changed: u64,
    pipelines: Vec<PipelineView>,
    pipelines_changed: u64,
}

/// What changed since a page's last update.
#[derive(Debug, Serialize)]
pub struct Update {
    /// Pass this back for the next update.
    #[serde(skip)]
    pub counter: u64,
    /// Unicorns that moved or changed state.
    pub fleet: Vec<Unicorn>,
    /// The open alarms, newest first, when they changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alarms: Option<Vec<OpenAlarm>>,
    /// The latest rejects, newest first, when they changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rejects: Option<Vec<RejectView>>,
    /// The pipelines, when they changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pipelines: Option<Vec<PipelineView>>,
}

impl Live {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records readings (newest last); a reading older than the one known
    /// for its unicorn does not move it back.
    pub fn saw(&self, readings: impl IntoIterator<Item = wildrydes_core::Reading>) {
        let now = Instant::now();
        let mut inner = self.lock();
        let open: std::collections::HashSet<String> =
            inner.open.iter().map(|a| a.name.clone()).collect();
        for r in readings {
            let name = r.name.as_str().to_owned();
            let time = r.status_time.epoch_millis();
            if inner
                .fleet
                .get(&name)
                .is_some_and(|s| s.unicorn.time > time)
            {
                continue;
            }
            inner.counter += 1;
            let changed = inner.counter;
            let state = if open.contains(&name) {
                State::Alarm
            } else {
                State::Ok
            };
            inner.fleet.insert(
                name.clone(),
                Seen {
                    unicorn: Unicorn {
                        name,
                        lat: r.latitude,
                        lon: r.longitude,
                        magic: r.magic_points,
                        health: r.health_points,
                        time,
                        state,
                    },
                    at: now,
                    changed,
                },
            );
        }
    }

    /// Sets the open alarms (newest first) and the states they imply.
    pub fn set_open(&self, open: Vec<OpenAlarm>) {
        let mut inner = self.lock();
        if inner.open == open {
            return;
        }
        inner.counter += 1;
        inner.open_changed = inner.counter;
        inner.open = open;
        Self::restate(&mut inner, None);
    }

    /// Sets the latest rejects.
    pub fn set_rejects(&self, rejects: Vec<RejectView>) {
        let mut inner = self.lock();
        if inner.rejects != rejects {
            inner.counter += 1;
            inner.rejects_changed = inner.counter;
            inner.rejects = rejects;
        }
    }

    /// Sets the pipelines' figures.
    pub fn set_pipelines(&self, pipelines: Vec<PipelineView>) {
        let mut inner = self.lock();
        if inner.pipelines != pipelines {
            inner.counter += 1;
            inner.pipelines_changed = inner.counter;
            inner.pipelines = pipelines;
        }
    }

    /// Marks silent the unicorns with no reading for `silent_after`.
    pub fn judge_silence(&self, silent_after: Duration) {
        let mut inner = self.lock();
        Self::restate(&mut inner, Some(silent_after));
    }

    fn restate(inner: &mut Inner, silent_after: Option<Duration>) {
        let open: std::collections::HashSet<String> =
            inner.open.iter().map(|a| a.name.clone()).collect();
        let mut counter = inner.counter;
        for seen in inner.fleet.values_mut() {
            let silent = silent_after.map_or(seen.unicorn.state == State::Silent, |after| {
                seen.at.elapsed() >= after
            });
            let state = if open.contains(&seen.unicorn.name) {
                State::Alarm
            } else if silent {
                State::Silent
            } else {
                State::Ok
            };
            if state != seen.unicorn.state {
                counter += 1;
                seen.unicorn.state = state;
                seen.changed = counter;
            }
        }
        inner.counter = counter;
    }

    /// What changed after the counter `since` (0: everything, which is
    /// also what changed after a counter of 0).
    pub fn since(&self, since: u64) -> Update {
        let inner = self.lock();
        let changed = |at: u64| (since == 0 || at > since).then_some(());
        Update {
            counter: inner.counter,
            fleet: inner
                .fleet
                .values()
                .filter(|s| since == 0 || s.changed > since)
                .map(|s| s.unicorn.clone())
                .collect(),
            alarms: changed(inner.open_changed).map(|()| inner.open.clone()),
            rejects: changed(inner.rejects_changed).map(|()| inner.rejects.clone()),
            pipelines: changed(inner.pipelines_changed).map(|()| inner.pipelines.clone()),
        }
    }
}

/// Serves the console on `listener` until `shutdown`, its readers
/// running beside it (`cloudwatch` is called only with
/// [`ConsoleConfig::cloudwatch`]).
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: ConsoleConfig,
    kinesis: aws_sdk_kinesis::Client,
    dynamodb: aws_sdk_dynamodb::Client,
    cloudwatch: aws_sdk_cloudwatch::Client,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let live = std::sync::Arc::new(Live::default());
    let stop = tokio_util::sync::CancellationToken::new();
    let readers = [
        tokio::spawn(positions::run(
            kinesis,
            config.clone(),
            live.clone(),
            stop.clone(),
        )),
        tokio::spawn(sources::run(
            dynamodb.clone(),
            cloudwatch,
            config.clone(),
            live.clone(),
            stop.clone(),
        )),
    ];
    let app = api::router(api::AppState {
        live,
        dynamodb,
        config,
    });
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
    stop.cancel();
    for reader in readers {
        let _ = reader.await;
    }
    served
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(name: &str, second: i64, magic: i16) -> wildrydes_core::Reading {
        wildrydes_core::Reading {
            name: wildrydes_core::UnicornName::new(name).unwrap(),
            status_time: wildrydes_core::StatusTime::from_epoch_millis(
                1_455_235_200_000 + second * 1000,
            )
            .unwrap(),
            latitude: 40.0,
            longitude: -74.0 + f64::from(i32::try_from(second).unwrap()) * 0.001,
            distance: 10,
            magic_points: magic,
            health_points: 120,
        }
    }

    #[test]
    fn updates_carry_only_what_changed() {
        let live = Live::default();
        live.saw([reading("a", 0, 100), reading("b", 0, 100)]);
        let first = live.since(0);
        assert_eq!(first.fleet.len(), 2);
        live.saw([reading("a", 1, 90)]);
        let next = live.since(first.counter);
        assert_eq!(next.fleet.len(), 1);
        assert_eq!(next.fleet[0].name, "a");
        assert!(next.alarms.is_none(), "alarms did not change");
        assert!(live.since(next.counter).fleet.is_empty());
    }

    #[test]
    fn an_older_reading_does_not_move_a_unicorn_back() {
        let live = Live::default();
        live.saw([reading("a", 5, 100), reading("a", 3, 100)]);
        assert_eq!(live.since(0).fleet[0].time, 1_455_235_205_000);
    }

    #[test]
    fn open_alarms_and_silence_set_the_state() {
        let live = Live::default();
        live.saw([reading("a", 0, 30), reading("b", 0, 100)]);
        let before = live.since(0).counter;
        live.set_open(vec![OpenAlarm {
            name: "a".into(),
            since: 1,
            magic_points: Some(30),
        }]);
        let update = live.since(before);
        assert_eq!(update.fleet.len(), 1);
        assert_eq!(update.fleet[0].state, State::Alarm);
        assert_eq!(update.alarms.as_ref().map(Vec::len), Some(1));
        live.judge_silence(Duration::ZERO);
        let states: HashMap<String, State> = live
            .since(0)
            .fleet
            .into_iter()
            .map(|u| (u.name, u.state))
            .collect();
        assert_eq!(
            states["a"],
            State::Alarm,
            "an open alarm shows over silence"
        );
        assert_eq!(states["b"], State::Silent);
    }
}
