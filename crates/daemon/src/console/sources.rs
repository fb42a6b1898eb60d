//! The console's other readers: the open alarms (every 2 s, a Query on
//! the alarm-state table's `OpenAlarms` index: only unicorns in ALARM are
//! in it), the latest rejects (every 15 s, one page of the rejects table:
//! it has no time key to query), and the pipelines' figures (every 2 s,
//! each daemon's `/metrics`; with `--cloudwatch`, every 60 s, the Lambda
//! functions' metrics from CloudWatch, listed after them).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt as _;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use wildrydes_alarm::history::AlarmHistory;

use super::{ConsoleConfig, Live, OpenAlarm, PipelineView, RejectView, cloudwatch};

/// Most open alarms shown.
const OPEN_ALARMS: i32 = 500;
/// Rejects read per look.
const REJECTS_PAGE: i32 = 100;
const ALARMS_EVERY: Duration = Duration::from_secs(2);
const REJECTS_EVERY: Duration = Duration::from_secs(15);
const METRICS_EVERY: Duration = Duration::from_secs(2);
/// Longest wait for a daemon's `/metrics`.
const METRICS_TIMEOUT: Duration = Duration::from_secs(2);

/// Reads alarms, rejects and pipelines into `live` until `stop`.
pub async fn run(
    dynamodb: aws_sdk_dynamodb::Client,
    cloudwatch: aws_sdk_cloudwatch::Client,
    config: ConsoleConfig,
    live: Arc<Live>,
    stop: CancellationToken,
) {
    let history = AlarmHistory::new(dynamodb.clone(), &config.alarm_table, &config.history_table);
    let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<hyper::body::Bytes>>();
    let mut scraped: BTreeMap<String, Scrape> = BTreeMap::new();
    let mut rejects_at: Option<Instant> = None;
    let functions = cloudwatch::workshop_functions();
    let mut from_cloudwatch: Vec<PipelineView> = Vec::new();
    let mut cloudwatch_at: Option<Instant> = None;
    loop {
        match history.open(OPEN_ALARMS).await {
            Ok(open) => live.set_open(
                open.into_iter()
                    .map(|t| OpenAlarm {
                        name: t.name.as_str().to_owned(),
                        since: t.status_time.epoch_millis(),
                        magic_points: t.magic_points,
                    })
                    .collect(),
            ),
            Err(e) => {
                tracing::warn!(table = %config.alarm_table, error = %e, "cannot read the open alarms")
            }
        }
        if rejects_at.is_none_or(|at| at.elapsed() >= REJECTS_EVERY) {
            match rejects(&dynamodb, &config.rejects_table).await {
                Ok(r) => live.set_rejects(r),
                Err(e) => {
                    tracing::warn!(table = %config.rejects_table, error = e, "cannot read the rejects")
                }
            }
            rejects_at = Some(Instant::now());
        }
        let mut pipelines = Vec::new();
        for url in &config.metrics {
            pipelines.extend(scrape(&http, url, scraped.entry(url.clone()).or_default()).await);
        }
        if config.cloudwatch && cloudwatch_at.is_none_or(|at| at.elapsed() >= cloudwatch::EVERY) {
            from_cloudwatch = cloudwatch::pipelines(&cloudwatch, &functions).await;
            if let Some(error) = from_cloudwatch.iter().find_map(|v| v.error.as_deref()) {
                tracing::warn!(error, "cannot read the pipelines' figures from CloudWatch");
            }
            cloudwatch_at = Some(Instant::now());
        }
        pipelines.extend(from_cloudwatch.iter().cloned());
        live.set_pipelines(pipelines);
        live.judge_silence(config.silent_after);
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(ALARMS_EVERY.min(METRICS_EVERY)) => {}
        }
    }
}

/// One page of the rejects table, newest first.
async fn rejects(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Result<Vec<RejectView>, String> {
    let page = client
        .scan()
        .table_name(table)
        .limit(REJECTS_PAGE)
        .send()
        .await
        .map_err(|e| aws_sdk_dynamodb::error::DisplayErrorContext(&e).to_string())?;
    let mut rejects: Vec<RejectView> = page
        .items()
        .iter()
        .filter_map(|item| wildrydes_core::rejects::Reject::from_item(item).ok())
        .map(|r| RejectView {
            record_id: r.record_id(),
            pipeline: r.pipeline.to_string(),
            reason: r.reason,
            partition_key: r.partition_key,
            rejected_at: r.rejected_at.to_rfc3339(),
        })
        .collect();
    rejects.sort_by(|a, b| b.rejected_at.cmp(&a.rejected_at));
    Ok(rejects)
}

/// A daemon's counters at the last look, for rates.
#[derive(Debug, Default)]
struct Scrape {
    at: Option<Instant>,
    counters: BTreeMap<(String, &'static str), f64>,
}

/// The pipelines of one daemon's `/metrics` (one, as a daemon runs one
/// pipeline; none named when it cannot be read).
async fn scrape(
    http: &hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        http_body_util::Empty<hyper::body::Bytes>,
    >,
    url: &str,
    last: &mut Scrape,
) -> Vec<PipelineView> {
    let down = |error: String| vec![PipelineView::down(url.to_owned(), error)];
    let uri: hyper::Uri = match url.parse() {
        Ok(u) => u,
        Err(e) => return down(format!("not a URL: {e}")),
    };
    let text = match tokio::time::timeout(METRICS_TIMEOUT, async {
        let response = http.get(uri).await.map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("answered {}", response.status()));
        }
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?;
        String::from_utf8(body.to_bytes().to_vec()).map_err(|e| e.to_string())
    })
    .await
    {
        Ok(Ok(text)) => text,
        Ok(Err(e)) => return down(e),
        Err(_) => return down(format!("no answer within {METRICS_TIMEOUT:?}")),
    };
    let now = Instant::now();
    let elapsed = last.at.map(|at| now.duration_since(at).as_secs_f64());
    let figures = parse(&text);
    let mut views = Vec::new();
    for (pipeline, f) in &figures {
        let rate = |name: &'static str, value: f64| -> f64 {
            let before = last.counters.get(&(pipeline.clone(), name)).copied();
            match (before, elapsed) {
                (Some(b), Some(dt)) if dt > 0.0 && value >= b => (value - b) / dt,
                _ => 0.0,
            }
        };
        views.push(PipelineView {
            source: url.to_owned(),
            pipeline: pipeline.clone(),
            up: true,
            error: None,
            lag_ms: f.lag_ms,
            records_per_sec: rate("in", f.records_in),
            rejected_per_sec: rate("rejected", f.rejected),
            retries_per_sec: rate("retries", f.retries),
            leases: f.leases,
        });
    }
    last.at = Some(now);
    last.counters = figures
        .iter()
        .flat_map(|(p, f)| {
            [
                ((p.clone(), "in"), f.records_in),
                ((p.clone(), "rejected"), f.rejected),
                ((p.clone(), "retries"), f.retries),
            ]
        })
        .collect();
    views
}

/// One pipeline's figures in a `/metrics` text.
#[derive(Debug, Default, Clone, PartialEq)]
struct Figures {
    lag_ms: f64,
    records_in: f64,
    rejected: f64,
    retries: f64,
    leases: f64,
}

/// The daemon's series in Prometheus' text format, summed over shards
/// per pipeline (the lag: its maximum).
fn parse(text: &str) -> BTreeMap<String, Figures> {
    let mut out: BTreeMap<String, Figures> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let (name, labels) = series.split_once('{').unwrap_or((series, ""));
        let pipeline = labels
            .split(',')
            .find_map(|l| l.strip_prefix("pipeline=\""))
            .and_then(|v| v.split('"').next())
            .unwrap_or_default()
            .to_owned();
        let f = out.entry(pipeline).or_default();
        match name {
            "wildrydes_millis_behind_latest" => f.lag_ms = f.lag_ms.max(value),
            "wildrydes_records_in_total" => f.records_in += value,
            "wildrydes_records_rejected_total" => f.rejected += value,
            "wildrydes_write_retries_total" => f.retries += value,
            "wildrydes_leases_held" => f.leases += value,
            _ => {}
        }
    }
    out.retain(|pipeline, _| !pipeline.is_empty());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_sum_per_pipeline_and_the_lag_is_the_largest() {
        let text = "# HELP x\n\
            wildrydes_records_in_total{pipeline=\"aggregate\",shard=\"s0\"} 100\n\
            wildrydes_records_in_total{pipeline=\"aggregate\",shard=\"s1\"} 50\n\
            wildrydes_millis_behind_latest{pipeline=\"aggregate\",shard=\"s0\"} 300\n\
            wildrydes_millis_behind_latest{pipeline=\"aggregate\",shard=\"s1\"} 1200\n\
            wildrydes_leases_held{pipeline=\"aggregate\",shard=\"\"} 2\n\
            wildrydes_records_rejected_total{pipeline=\"aggregate\",shard=\"s0\"} 3\n";
        let figures = parse(text);
        let f = &figures["aggregate"];
        assert_eq!(f.records_in, 150.0);
        assert_eq!(f.lag_ms, 1200.0);
        assert_eq!(f.leases, 2.0);
        assert_eq!(f.rejected, 3.0);
    }
}
