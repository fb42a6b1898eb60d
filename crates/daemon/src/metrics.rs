//! `Metrics`: what the daemon exposes on `/metrics` in Prometheus' text
//! format, with `/healthz` beside it. A small registry of named series with
//! `pipeline` and `shard` labels; nothing here blocks the consumers for
//! longer than one map update.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::routing::get;

/// Series of the daemon: name, kind, help.
const SERIES: [(&str, &str, &str); 9] = [
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
        "wildrydes_millis_behind_latest",
        "gauge",
        "How far the shard's consumer is behind the stream's tip (MillisBehindLatest of GetRecords or of the subscription).",
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

/// The daemon's metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    values: Mutex<BTreeMap<(&'static str, String), f64>>,
}

impl Metrics {
    /// Adds `v` to a counter of `shard` (empty for worker-wide series).
    pub fn add(&self, name: &'static str, pipeline: &str, shard: &str, v: f64) {
        let mut values = self
            .values
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *values.entry((name, labels(pipeline, shard))).or_default() += v;
    }

    /// Sets a gauge of `shard`.
    pub fn set(&self, name: &'static str, pipeline: &str, shard: &str, v: f64) {
        let mut values = self
            .values
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        values.insert((name, labels(pipeline, shard)), v);
    }

    /// The current value of a series, for tests and logs.
    pub fn get(&self, name: &'static str, pipeline: &str, shard: &str) -> f64 {
        let values = self
            .values
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        values
            .get(&(name, labels(pipeline, shard)))
            .copied()
            .unwrap_or_default()
    }

    /// Prometheus text exposition of every series.
    pub fn render(&self) -> String {
        let values = self
            .values
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut out = String::new();
        for (name, kind, help) in SERIES {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for ((series, labels), v) in values.iter() {
                if *series == name {
                    let _ = writeln!(out, "{name}{{{labels}}} {v}");
                }
            }
        }
        out
    }
}

fn labels(pipeline: &str, shard: &str) -> String {
    if shard.is_empty() {
        format!("pipeline=\"{pipeline}\"")
    } else {
        format!("pipeline=\"{pipeline}\",shard=\"{shard}\"")
    }
}

/// Serves `/metrics` and `/healthz` on `listener` until `shutdown`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(move || async move { metrics.render() }))
        .route("/healthz", get(|| async { "ok\n" }));
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
}
