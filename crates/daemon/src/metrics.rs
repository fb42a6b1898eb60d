//! `Metrics`: what the daemon exposes on `/metrics` in Prometheus' text
//! format, with `/healthz` beside it. A small registry of named series with
//! `pipeline` and `shard` labels, and [`Health`], each held shard's "records
//! waiting since": nothing here blocks the consumers for longer than one map
//! update.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use tokio::time::Instant;

/// Series of the daemon: name, kind, help.
const SERIES: [(&str, &str, &str); 11] = [
    (
        "wildrydes_records_in_total",
        "counter",
        "Records read from the stream.",
    ),
    (
        "wildrydes_bytes_read_total",
        "counter",
        "Bytes of record data read from the stream (the load leases are balanced by).",
    ),
    (
        "wildrydes_records_written_total",
        "counter",
        "Items or aggregates durably written.",
    ),
    (
        "wildrydes_records_rejected_total",
        "counter",
        "Records refused by validation and kept as rejects.",
    ),
    (
        "wildrydes_write_retries_total",
        "counter",
        "Write calls sent again (throttling, unprocessed items).",
    ),
    (
        MILLIS_BEHIND,
        "gauge",
        "How far the shard's consumer is behind the stream's tip (MillisBehindLatest of GetRecords or of the subscription); only shards whose lease this worker holds.",
    ),
    (
        STREAM_MILLIS_BEHIND,
        "gauge",
        "How far this worker is behind the stream's tip: the largest wildrydes_millis_behind_latest of the shards it holds (0 with none).",
    ),
    (
        STUCK_SHARDS,
        "gauge",
        "Held shards whose records have waited longer than --stuck-after without progress (/healthz answers 503 while any is).",
    ),
    (
        "wildrydes_batch_seconds_sum",
        "counter",
        "Time spent handling batches (write latency included).",
    ),
    (
        "wildrydes_batch_seconds_count",
        "counter",
        "Batches handled.",
    ),
    (
        "wildrydes_leases_held",
        "gauge",
        "Shard leases this worker holds.",
    ),
];

/// The per-shard lag, set by the consumers.
const MILLIS_BEHIND: &str = "wildrydes_millis_behind_latest";
/// The worker's lag, derived from [`MILLIS_BEHIND`] when rendered.
const STREAM_MILLIS_BEHIND: &str = "wildrydes_stream_millis_behind_latest";
/// The stuck shards' count, derived from [`Health`] when rendered.
const STUCK_SHARDS: &str = "wildrydes_stuck_shards";

/// Per-shard gauges: they describe a lease held now, so they go with it
/// (counters stay, as Prometheus expects of counters).
const SHARD_GAUGES: [&str; 1] = [MILLIS_BEHIND];

/// A series: name, pipeline, shard (empty for worker-wide series).
type Key = (&'static str, String, String);

/// The daemon's metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    values: Mutex<BTreeMap<Key, f64>>,
    /// What `/healthz` answers from, and `wildrydes_stuck_shards` counts.
    health: Health,
}

impl Metrics {
    /// Adds `v` to a counter of `shard` (empty for worker-wide series).
    pub fn add(&self, name: &'static str, pipeline: &str, shard: &str, v: f64) {
        let mut values = self.values.lock().unwrap_or_else(PoisonError::into_inner);
        *values.entry(key(name, pipeline, shard)).or_default() += v;
    }

    /// Sets a gauge of `shard`.
    pub fn set(&self, name: &'static str, pipeline: &str, shard: &str, v: f64) {
        let mut values = self.values.lock().unwrap_or_else(PoisonError::into_inner);
        values.insert(key(name, pipeline, shard), v);
    }

    /// The current value of a stored series, for tests and logs.
    pub fn get(&self, name: &'static str, pipeline: &str, shard: &str) -> f64 {
        let values = self.values.lock().unwrap_or_else(PoisonError::into_inner);
        values
            .get(&key(name, pipeline, shard))
            .copied()
            .unwrap_or_default()
    }

    /// The consumers' progress, for `/healthz`.
    pub fn health(&self) -> &Health {
        &self.health
    }

    /// The lease of `shard` ended (given up, lost, or its consumer
    /// stopped): its gauges go, so that a stale lag does not stick to a
    /// shard another worker reads now, and it no longer counts for health.
    pub fn forget_shard(&self, pipeline: &str, shard: &str) {
        {
            let mut values = self.values.lock().unwrap_or_else(PoisonError::into_inner);
            for name in SHARD_GAUGES {
                values.remove(&key(name, pipeline, shard));
            }
        }
        self.health.forget(pipeline, shard);
    }

    /// Prometheus text exposition of every series.
    pub fn render(&self) -> String {
        self.render_at(Instant::now())
    }

    /// [`Self::render`], judging stuck shards at `now`.
    fn render_at(&self, now: Instant) -> String {
        let stuck = self.health.stuck(now);
        let mut values = self
            .values
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        // Every pipeline the worker reports on gets the derived gauges, 0
        // when it holds no shard or none is stuck.
        let pipelines: BTreeSet<String> = values
            .keys()
            .map(|(_, pipeline, _)| pipeline.clone())
            .chain(self.health.pipelines())
            .collect();
        for pipeline in pipelines {
            let behind = values
                .iter()
                .filter(|((name, p, _), _)| *name == MILLIS_BEHIND && *p == pipeline)
                .map(|(_, v)| *v)
                .fold(0.0, f64::max);
            #[allow(clippy::cast_precision_loss)]
            let stuck = stuck.iter().filter(|s| s.pipeline == pipeline).count() as f64;
            values.insert(key(STREAM_MILLIS_BEHIND, &pipeline, ""), behind);
            values.insert(key(STUCK_SHARDS, &pipeline, ""), stuck);
        }
        let mut out = String::new();
        for (name, kind, help) in SERIES {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for ((series, pipeline, shard), v) in &values {
                if *series == name {
                    let _ = writeln!(out, "{name}{{{}}} {v}", labels(pipeline, shard));
                }
            }
        }
        out
    }
}

fn key(name: &'static str, pipeline: &str, shard: &str) -> Key {
    (name, pipeline.to_owned(), shard.to_owned())
}

fn labels(pipeline: &str, shard: &str) -> String {
    if shard.is_empty() {
        format!("pipeline=\"{pipeline}\"")
    } else {
        format!("pipeline=\"{pipeline}\",shard=\"{shard}\"")
    }
}

/// Per held shard, since when its records have waited without progress:
/// what `/healthz` calls a stuck consumer. Each consumer keeps its own
/// shard's entry; the judging is done when asked, with the time then, so a
/// consumer blocked in a batch is judged all the same.
#[derive(Debug, Default)]
pub struct Health {
    /// By pipeline and shard.
    shards: Mutex<BTreeMap<(String, String), Stall>>,
}

/// One held shard's progress.
#[derive(Debug, Clone, Copy)]
struct Stall {
    /// Records waiting longer than this without progress is stuck.
    stuck_after: Duration,
    /// Since when records have waited with no progress; `None` while
    /// nothing waits (an idle shard is never stuck).
    since: Option<Instant>,
}

/// A shard whose records have waited too long without progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stuck {
    /// Its pipeline.
    pub pipeline: String,
    /// The shard.
    pub shard: String,
    /// How long records have waited without progress.
    pub waiting: Duration,
}

impl std::fmt::Display for Stuck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "stuck: {} ({}) no progress for {}s while records wait",
            self.shard,
            self.pipeline,
            self.waiting.as_secs()
        )
    }
}

impl Health {
    /// A consumer starts on `shard`: nothing waits yet; records waiting
    /// longer than `stuck_after` without progress will make it stuck.
    pub fn watch(&self, pipeline: &str, shard: &str, stuck_after: Duration) {
        self.lock().insert(
            (pipeline.to_owned(), shard.to_owned()),
            Stall {
                stuck_after,
                since: None,
            },
        );
    }

    /// Records wait on `shard` at `now` (a page had records, or the shard's
    /// tip is ahead); they have waited since the first such moment after
    /// the last progress.
    pub fn waiting(&self, pipeline: &str, shard: &str, now: Instant) {
        if let Some(stall) = self
            .lock()
            .get_mut(&(pipeline.to_owned(), shard.to_owned()))
        {
            stall.since.get_or_insert(now);
        }
    }

    /// `shard` made progress at `now` (its checkpoint moved, or it is read
    /// to its tip with everything durable); `still_waiting` if records wait
    /// all the same, which start waiting now.
    pub fn progressed(&self, pipeline: &str, shard: &str, now: Instant, still_waiting: bool) {
        if let Some(stall) = self
            .lock()
            .get_mut(&(pipeline.to_owned(), shard.to_owned()))
        {
            stall.since = still_waiting.then_some(now);
        }
    }

    /// `shard`'s lease ended: it no longer counts. Until the next
    /// [`Self::watch`], what its old consumer reports changes nothing.
    pub fn forget(&self, pipeline: &str, shard: &str) {
        self.lock().remove(&(pipeline.to_owned(), shard.to_owned()));
    }

    /// The shards stuck at `now`: records waited longer than their
    /// `stuck_after` without progress.
    pub fn stuck(&self, now: Instant) -> Vec<Stuck> {
        self.lock()
            .iter()
            .filter_map(|((pipeline, shard), stall)| {
                let waiting = now.saturating_duration_since(stall.since?);
                (waiting > stall.stuck_after).then(|| Stuck {
                    pipeline: pipeline.clone(),
                    shard: shard.clone(),
                    waiting,
                })
            })
            .collect()
    }

    /// The pipelines of the watched shards.
    fn pipelines(&self) -> Vec<String> {
        self.lock().keys().map(|(p, _)| p.clone()).collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<(String, String), Stall>> {
        self.shards.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// `/healthz` at `now`: 200 "ok", or 503 with a line per stuck shard.
fn healthz(health: &Health, now: Instant) -> (StatusCode, String) {
    let stuck = health.stuck(now);
    if stuck.is_empty() {
        return (StatusCode::OK, "ok\n".to_owned());
    }
    let body = stuck.iter().map(|s| format!("{s}\n")).collect();
    (StatusCode::SERVICE_UNAVAILABLE, body)
}

/// Serves `/metrics` and `/healthz` on `listener` until `shutdown`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let for_health = metrics.clone();
    let app = Router::new()
        .route("/metrics", get(move || async move { metrics.render() }))
        .route(
            "/healthz",
            get(move || async move { healthz(for_health.health(), Instant::now()) }),
        );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.add(
            "wildrydes_records_in_total",
            "process",
            "shardId-000000000000",
            3.0,
        );
        m.add(
            "wildrydes_records_in_total",
            "process",
            "shardId-000000000000",
            2.0,
        );
        m.set("wildrydes_leases_held", "process", "", 1.0);
        let text = m.render();
        assert!(text.contains("# TYPE wildrydes_records_in_total counter\n"));
        assert!(text.contains(
            "wildrydes_records_in_total{pipeline=\"process\",shard=\"shardId-000000000000\"} 5\n"
        ));
        assert!(text.contains("wildrydes_leases_held{pipeline=\"process\"} 1\n"));
    }

    const SHARD: &str = "shardId-000000000000";
    const OTHER: &str = "shardId-000000000001";
    const AFTER: Duration = Duration::from_secs(60);

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn an_idle_shard_is_never_stuck() {
        let health = Health::default();
        let t0 = Instant::now();
        health.watch("aggregate", SHARD, AFTER);
        assert!(health.stuck(t0 + secs(3600)).is_empty());
        // Read to its tip, nothing waiting: still idle.
        health.progressed("aggregate", SHARD, t0 + secs(10), false);
        assert!(health.stuck(t0 + secs(3600)).is_empty());
        assert_eq!(
            healthz(&health, t0 + secs(3600)),
            (StatusCode::OK, "ok\n".into())
        );
    }

    #[test]
    fn records_waiting_longer_than_stuck_after_without_progress_is_stuck() {
        let health = Health::default();
        let t0 = Instant::now();
        health.watch("aggregate", SHARD, AFTER);
        health.watch("aggregate", OTHER, AFTER);
        health.waiting("aggregate", SHARD, t0);
        // Waiting again does not restart the clock.
        health.waiting("aggregate", SHARD, t0 + secs(30));
        assert!(
            health.stuck(t0 + secs(60)).is_empty(),
            "not longer than 60 s yet"
        );
        let stuck = health.stuck(t0 + secs(75));
        assert_eq!(
            stuck,
            [Stuck {
                pipeline: "aggregate".into(),
                shard: SHARD.into(),
                waiting: secs(75),
            }]
        );
        assert_eq!(
            healthz(&health, t0 + secs(75)),
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "stuck: shardId-000000000000 (aggregate) no progress for 75s while records wait\n"
                    .into()
            )
        );
    }

    #[test]
    fn progress_restarts_the_clock_or_clears_it() {
        let health = Health::default();
        let t0 = Instant::now();
        health.watch("process", SHARD, AFTER);
        health.waiting("process", SHARD, t0);
        // A checkpoint moved, and the tip is still ahead: waiting from now.
        health.progressed("process", SHARD, t0 + secs(50), true);
        assert!(health.stuck(t0 + secs(100)).is_empty());
        assert_eq!(health.stuck(t0 + secs(111)).len(), 1);
        // Caught up: nothing waits, however long it stays so.
        health.progressed("process", SHARD, t0 + secs(112), false);
        assert!(health.stuck(t0 + secs(1000)).is_empty());
    }

    #[test]
    fn a_forgotten_shard_stops_counting_until_watched_again() {
        let health = Health::default();
        let t0 = Instant::now();
        health.watch("process", SHARD, AFTER);
        health.waiting("process", SHARD, t0);
        assert_eq!(health.stuck(t0 + secs(61)).len(), 1);
        health.forget("process", SHARD);
        assert!(health.stuck(t0 + secs(61)).is_empty());
        // The old consumer, still finishing its batch, reports in vain.
        health.waiting("process", SHARD, t0 + secs(62));
        assert!(health.stuck(t0 + secs(200)).is_empty());
        // Taken again: a fresh start.
        health.watch("process", SHARD, AFTER);
        assert!(health.stuck(t0 + secs(300)).is_empty());
    }

    #[test]
    fn the_streams_lag_is_the_largest_of_the_held_shards() {
        let m = Metrics::default();
        m.set(MILLIS_BEHIND, "process", SHARD, 1500.0);
        m.set(MILLIS_BEHIND, "process", OTHER, 250.0);
        m.set("wildrydes_leases_held", "process", "", 2.0);
        let text = m.render();
        assert!(text.contains("# TYPE wildrydes_stream_millis_behind_latest gauge\n"));
        assert!(
            text.contains("wildrydes_stream_millis_behind_latest{pipeline=\"process\"} 1500\n"),
            "{text}"
        );
        assert!(
            text.contains("wildrydes_stuck_shards{pipeline=\"process\"} 0\n"),
            "{text}"
        );
        // The lease of the laggard ends: neither its lag nor the stream's
        // keeps the stale value.
        m.forget_shard("process", SHARD);
        let text = m.render();
        assert!(!text.contains(&format!("shard=\"{SHARD}\"")), "{text}");
        assert!(
            text.contains("wildrydes_stream_millis_behind_latest{pipeline=\"process\"} 250\n"),
            "{text}"
        );
        m.forget_shard("process", OTHER);
        assert!(
            m.render()
                .contains("wildrydes_stream_millis_behind_latest{pipeline=\"process\"} 0\n")
        );
    }

    #[test]
    fn stuck_shards_are_counted_per_pipeline() {
        let m = Metrics::default();
        let t0 = Instant::now();
        m.health().watch("process", SHARD, AFTER);
        m.health().watch("process", OTHER, AFTER);
        m.health().waiting("process", SHARD, t0);
        let text = m.render_at(t0 + secs(61));
        assert!(
            text.contains("wildrydes_stuck_shards{pipeline=\"process\"} 1\n"),
            "{text}"
        );
        m.forget_shard("process", SHARD);
        let text = m.render_at(t0 + secs(61));
        assert!(
            text.contains("wildrydes_stuck_shards{pipeline=\"process\"} 0\n"),
            "{text}"
        );
    }
}
