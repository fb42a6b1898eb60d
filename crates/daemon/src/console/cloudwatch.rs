//! The pipelines' figures on AWS, where the pipeline runs as three Lambda
//! functions and no daemon serves `/metrics`: one CloudWatch
//! `GetMetricData` call (every [`EVERY`], from [`super::sources`]) for the
//! last [`WINDOW_MINUTES`] minutes at one-minute periods. Per function:
//!
//! - lag: `AWS/Lambda` `IteratorAge`, Maximum, its newest datapoint;
//! - records, rejects and retries per second: the function's EMF metrics
//!   `RecordsIn`, `Rejected` and `Retries` (namespace `WildRydes`,
//!   dimension `FunctionName`, see `wildrydes-lambda`'s `telemetry.rs`),
//!   Sum of the newest minute that has ended, over 60 s; 0 when no minute
//!   of the window has a datapoint (no invocation);
//! - leases: 0 (Lambda's event source mapping holds the shards).
//!
//! The caller needs `cloudwatch:GetMetricData`; a failed call shows each
//! function down with the reason.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use aws_sdk_cloudwatch::error::DisplayErrorContext;
use aws_sdk_cloudwatch::operation::get_metric_data::GetMetricDataOutput;
use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{
    Dimension, Metric, MetricDataQuery, MetricDataResult, MetricStat, StatusCode,
};
use wildrydes_core::names::PipelineName;

use super::PipelineView;

/// How often the console asks CloudWatch (its metrics are per minute).
pub const EVERY: Duration = Duration::from_secs(60);
/// Minutes read back, the current one included.
pub const WINDOW_MINUTES: i64 = 5;
/// Longest wait for the call.
const TIMEOUT: Duration = Duration::from_secs(10);
/// The period of every datapoint, seconds.
const PERIOD: i32 = 60;
/// The namespace of the functions' EMF metrics (`wildrydes-lambda`'s
/// `telemetry::NAMESPACE`, which the daemon does not link).
const NAMESPACE: &str = "WildRydes";

/// The functions of the workshop's stack, one per pipeline, in the data's
/// order: `(pipeline, function name)`.
pub fn workshop_functions() -> Vec<(&'static str, String)> {
    PipelineName::ALL
        .into_iter()
        .map(|p| (p.as_str(), function_name(p).to_owned()))
        .collect()
}

/// The function a pipeline runs as on AWS.
const fn function_name(pipeline: PipelineName) -> &'static str {
    pipeline.function_name()
}

/// One series read per function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Series {
    Lag,
    RecordsIn,
    Rejected,
    Retries,
}

impl Series {
    const ALL: [Self; 4] = [Self::Lag, Self::RecordsIn, Self::Rejected, Self::Retries];

    /// The end of its query's id (ids start lowercase, then letters and digits).
    const fn id_suffix(self) -> &'static str {
        match self {
            Self::Lag => "lag",
            Self::RecordsIn => "in",
            Self::Rejected => "rejected",
            Self::Retries => "retries",
        }
    }

    const fn namespace(self) -> &'static str {
        match self {
            Self::Lag => "AWS/Lambda",
            _ => NAMESPACE,
        }
    }

    const fn metric(self) -> &'static str {
        match self {
            Self::Lag => "IteratorAge",
            Self::RecordsIn => "RecordsIn",
            Self::Rejected => "Rejected",
            Self::Retries => "Retries",
        }
    }

    const fn stat(self) -> &'static str {
        match self {
            Self::Lag => "Maximum",
            _ => "Sum",
        }
    }
}

/// The id of the query of the `index`th function's `series`.
fn id(index: usize, series: Series) -> String {
    format!("f{index}{}", series.id_suffix())
}

/// The queries of one call: every series of every function.
fn queries(functions: &[(&str, String)]) -> Vec<MetricDataQuery> {
    functions
        .iter()
        .enumerate()
        .flat_map(|(index, (_, function))| {
            Series::ALL.into_iter().map(move |series| {
                let metric = Metric::builder()
                    .namespace(series.namespace())
                    .metric_name(series.metric())
                    .dimensions(
                        Dimension::builder()
                            .name("FunctionName")
                            .value(function)
                            .build(),
                    )
                    .build();
                MetricDataQuery::builder()
                    .id(id(index, series))
                    .metric_stat(
                        MetricStat::builder()
                            .metric(metric)
                            .period(PERIOD)
                            .stat(series.stat())
                            .build(),
                    )
                    .return_data(true)
                    .build()
            })
        })
        .collect()
}

/// Start and end (epoch seconds) of the call made at `now`: whole minutes,
/// so that each datapoint is one minute, the current one last.
fn window(now: i64) -> (i64, i64) {
    let end = (now.div_euclid(60) + 1) * 60;
    (end - WINDOW_MINUTES * 60, end)
}

/// The pipelines' figures from CloudWatch, one view per function (see the
/// module's documentation); `up: false` with the reason when the call fails.
pub async fn pipelines(
    client: &aws_sdk_cloudwatch::Client,
    functions: &[(&str, String)],
) -> Vec<PipelineView> {
    let now = DateTime::from(SystemTime::now()).secs();
    let (start, end) = window(now);
    let call = client
        .get_metric_data()
        .start_time(DateTime::from_secs(start))
        .end_time(DateTime::from_secs(end))
        .set_metric_data_queries(Some(queries(functions)))
        .send();
    match tokio::time::timeout(TIMEOUT, call).await {
        Ok(Ok(output)) => views(&output, functions, now),
        Ok(Err(e)) => down(
            functions,
            &format!(
                "cannot read the functions' metrics from CloudWatch ({}): check that these credentials may call cloudwatch:GetMetricData, and the region",
                DisplayErrorContext(&e)
            ),
        ),
        Err(_) => down(
            functions,
            &format!(
                "no answer from CloudWatch's GetMetricData within {TIMEOUT:?}: check the network path to CloudWatch and the region"
            ),
        ),
    }
}

/// Every function down, for `error`.
fn down(functions: &[(&str, String)], error: &str) -> Vec<PipelineView> {
    functions
        .iter()
        .map(|(_, function)| down_view(function, error.to_owned()))
        .collect()
}

/// One function down, for `error` (no pipeline named, as for a daemon's
/// `/metrics` that cannot be read).
fn down_view(function: &str, error: String) -> PipelineView {
    PipelineView::down(source(function), error)
}

fn source(function: &str) -> String {
    format!("CloudWatch {function}")
}

/// The views of a call's answer, read at `now` (epoch seconds).
fn views(
    output: &GetMetricDataOutput,
    functions: &[(&str, String)],
    now: i64,
) -> Vec<PipelineView> {
    let results: HashMap<&str, &MetricDataResult> = output
        .metric_data_results()
        .iter()
        .filter_map(|r| Some((r.id()?, r)))
        .collect();
    functions
        .iter()
        .enumerate()
        .map(|(index, (pipeline, function))| {
            let result = |series: Series| results.get(id(index, series).as_str()).copied();
            let refused: Vec<String> = Series::ALL
                .into_iter()
                .filter_map(|series| {
                    let r = result(series)?;
                    let status = r.status_code()?;
                    matches!(status, StatusCode::Forbidden | StatusCode::InternalError).then(
                        || {
                            let why: Vec<&str> =
                                r.messages().iter().filter_map(|m| m.value()).collect();
                            let why = if why.is_empty() {
                                String::new()
                            } else {
                                format!(" ({})", why.join("; "))
                            };
                            format!("{} {}{why}", series.metric(), status.as_str())
                        },
                    )
                })
                .collect();
            if !refused.is_empty() {
                return down_view(
                    function,
                    format!(
                        "cannot read {function}'s metrics from CloudWatch: {}; check that these credentials may call cloudwatch:GetMetricData",
                        refused.join(", ")
                    ),
                );
            }
            let per_sec = |series: Series| {
                result(series)
                    .and_then(|r| newest(r, |at| at + i64::from(PERIOD) <= now))
                    .map_or(0.0, |sum| sum / f64::from(PERIOD))
            };
            PipelineView {
                source: source(function),
                pipeline: (*pipeline).to_owned(),
                up: true,
                error: None,
                lag_ms: result(Series::Lag)
                    .and_then(|r| newest(r, |_| true))
                    .unwrap_or(0.0),
                records_per_sec: per_sec(Series::RecordsIn),
                rejected_per_sec: per_sec(Series::Rejected),
                retries_per_sec: per_sec(Series::Retries),
                leases: 0.0,
            }
        })
        .collect()
}

/// The value of the newest datapoint whose start (epoch seconds) `keep`s.
fn newest(result: &MetricDataResult, keep: impl Fn(i64) -> bool) -> Option<f64> {
    result
        .timestamps()
        .iter()
        .zip(result.values())
        .map(|(at, value)| (at.secs(), *value))
        .filter(|(at, _)| keep(*at))
        .max_by_key(|(at, _)| *at)
        .map(|(_, value)| value)
}

#[cfg(test)]
mod tests {
    use aws_sdk_cloudwatch::types::MessageData;

    use super::*;

    /// 12:04:30 on some day: minute 12:04 is under way.
    const NOW: i64 = 1_764_331_470;
    const MINUTE_0404: i64 = 1_764_331_440;

    fn result(id: &str, points: &[(i64, f64)]) -> MetricDataResult {
        let mut b = MetricDataResult::builder()
            .id(id)
            .status_code(StatusCode::Complete);
        // Newest first, as CloudWatch answers by default.
        for (at, value) in points.iter().rev() {
            b = b.timestamps(DateTime::from_secs(*at)).values(*value);
        }
        b.build()
    }

    #[test]
    fn the_answer_maps_to_one_view_per_function() {
        let functions = workshop_functions();
        let m = |k: i64| MINUTE_0404 - k * 60;
        let output = GetMetricDataOutput::builder()
            .metric_data_results(result(
                "f0lag",
                &[(m(2), 900.0), (m(1), 4000.0), (m(0), 1500.0)],
            ))
            // The minute under way (m(0)) is partial: the rate is m(1)'s.
            .metric_data_results(result(
                "f0in",
                &[(m(2), 60.0), (m(1), 6000.0), (m(0), 30.0)],
            ))
            .metric_data_results(result("f0rejected", &[(m(3), 12.0)]))
            .metric_data_results(result("f0retries", &[]))
            // The stream processor: no invocation in the window.
            .metric_data_results(result("f1lag", &[]))
            .metric_data_results(result("f1in", &[]))
            // The alarm: refused.
            .metric_data_results(
                MetricDataResult::builder()
                    .id("f2in")
                    .status_code(StatusCode::Forbidden)
                    .messages(
                        MessageData::builder()
                            .code("Forbidden")
                            .value("not authorized")
                            .build(),
                    )
                    .build(),
            )
            .build();
        let views = views(&output, &functions, NOW);
        assert_eq!(views.len(), 3);

        let a = &views[0];
        assert_eq!(a.source, "CloudWatch WildRydesAggregator");
        assert_eq!(a.pipeline, "aggregate");
        assert!(a.up);
        assert_eq!(a.error, None);
        assert_eq!(
            a.lag_ms, 1500.0,
            "the newest datapoint, the minute under way included"
        );
        assert_eq!(
            a.records_per_sec, 100.0,
            "the newest minute that has ended, over 60 s"
        );
        assert_eq!(a.rejected_per_sec, 0.2);
        assert_eq!(a.retries_per_sec, 0.0);
        assert_eq!(a.leases, 0.0);

        let p = &views[1];
        assert_eq!(p.source, "CloudWatch WildRydesStreamProcessor");
        assert_eq!(p.pipeline, "process");
        assert!(p.up, "no datapoint is no traffic, not an error");
        assert_eq!((p.lag_ms, p.records_per_sec), (0.0, 0.0));

        let alarm = &views[2];
        assert_eq!(alarm.source, "CloudWatch WildRydesAlarm");
        assert!(!alarm.up);
        let error = alarm.error.as_deref().unwrap();
        assert!(
            error.contains("RecordsIn Forbidden (not authorized)"),
            "{error}"
        );
        assert!(error.contains("cloudwatch:GetMetricData"), "{error}");
    }

    #[test]
    fn a_failed_call_shows_every_function_down_with_the_reason() {
        let views = down(&workshop_functions(), "cannot read");
        assert_eq!(views.len(), 3);
        assert!(
            views
                .iter()
                .all(|v| !v.up && v.error.as_deref() == Some("cannot read"))
        );
        assert_eq!(views[1].source, "CloudWatch WildRydesStreamProcessor");
    }

    #[test]
    fn queries_have_valid_unique_ids_and_whole_minutes() {
        let functions = workshop_functions();
        let queries = queries(&functions);
        assert_eq!(queries.len(), functions.len() * Series::ALL.len());
        let mut ids = std::collections::BTreeSet::new();
        for q in &queries {
            let id = q.id().unwrap();
            assert!(id.starts_with(|c: char| c.is_ascii_lowercase()), "{id}");
            assert!(id.chars().all(|c| c.is_ascii_alphanumeric()), "{id}");
            assert!(ids.insert(id), "{id} twice");
            let stat = q.metric_stat().unwrap();
            assert_eq!(stat.period(), Some(60));
            let metric = stat.metric().unwrap();
            let dimension = &metric.dimensions()[0];
            assert_eq!(dimension.name(), Some("FunctionName"));
        }
        let lag = &queries[0].metric_stat().unwrap();
        assert_eq!(lag.metric().unwrap().namespace(), Some("AWS/Lambda"));
        assert_eq!(lag.metric().unwrap().metric_name(), Some("IteratorAge"));
        assert_eq!(lag.stat(), Some("Maximum"));
        assert_eq!(
            lag.metric().unwrap().dimensions()[0].value(),
            Some("WildRydesAggregator")
        );
        let (start, end) = window(NOW);
        assert_eq!(end, MINUTE_0404 + 60);
        assert_eq!(end - start, WINDOW_MINUTES * 60);
    }
}
