//! What a function tells its operators: JSON logs, one object per line (so
//! CloudWatch Logs Insights can query every field), and CloudWatch Embedded
//! Metric Format lines, which CloudWatch turns into metrics without any API
//! call from the function.
//!
//! # One outcome, one log line, one metrics document
//!
//! Each handler describes its invocation once, as a [`Report`]: the shard, a
//! list of [`Figure`]s (a log field, its unit, its value and, for most, the
//! name of its metric) and how the batch ended ([`Ending`]). [`report`]
//! turns it into:
//!
//! - one log line, `INFO` when every record went through and `ERROR` when
//!   Lambda must deliver again from `resume_at`: `message`, `shard_id`, every
//!   figure as a field of its own, `duration_ms`, then `resume_at` and
//!   `error` on a failure;
//! - one EMF document: every figure that names a metric, then
//!   `BatchFailures` (0 or 1, for the functions that answer with
//!   `batchItemFailures`) and `DurationMs`, under dimension `FunctionName`
//!   (`AWS_LAMBDA_FUNCTION_NAME`, else the function's binary name).
//!
//! Adding a figure is one line in its handler: the log field and the metric
//! come from it both.
//!
//! ## Why the figures go through a callsite made at run time
//!
//! `tracing`'s macros need their field names at compile time, and a
//! report's come from its figures. Logging them as one JSON-encoded string
//! field would hide them from Logs Insights (it discovers the fields of a
//! JSON line, not of a JSON string inside one), and writing the line to
//! standard output ourselves would lose what the subscriber adds: the
//! `RUST_LOG` filter and the span list, among them `lambda_runtime`'s
//! `Lambda runtime invoke` span and its `requestId`. So [`report`] makes
//! one `tracing` callsite per distinct level and list of field names, once
//! (a handful per process, kept for its life), and dispatches an ordinary
//! event through it: the line is the one `tracing_subscriber`'s JSON
//! formatter writes for a macro call, with each figure a field of its own
//! under `fields`, queryable as `fields.records_in` and so on. It uses the
//! same `tracing` internals its macros expand to (`callsite`, `metadata`,
//! `FieldSet::value_set_all`), which `tracing` 0.1.44 and later provide.
//! Its target is this module's path, `wildrydes_lambda::telemetry`.

use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;

use serde_json::{Map, Value, json};
use tracing::callsite::{Callsite, Identifier};
use tracing::field::{FieldSet, Value as FieldValue};
use tracing::metadata::Kind;
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::util::SubscriberInitExt;
use wildrydes_core::names::PipelineName;

/// Installs JSON logging, filtered by `RUST_LOG` or else `AWS_LAMBDA_LOG_LEVEL`
/// (Lambda's own setting), `info` by default.
pub fn init_json_logs() {
    let level = std::env::var("RUST_LOG")
        .or_else(|_| std::env::var("AWS_LAMBDA_LOG_LEVEL").map(|l| l.to_lowercase()))
        .unwrap_or_else(|_| "info".to_owned());
    json_logs(level, std::io::stdout).init();
}

/// The JSON logs [`init_json_logs`] installs, filtered by `directives`,
/// written to `writer`.
fn json_logs<W>(directives: String, writer: W) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::new(directives))
        .with_current_span(false)
        .with_ansi(false)
        .with_target(false)
        .with_writer(writer)
        .finish()
}

/// CloudWatch namespace of every metric the pipeline emits.
pub const NAMESPACE: &str = "WildRydes";

/// What a figure counts in: its EMF unit, and how its log field is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Things: logged as a whole number.
    Count,
    /// Time: logged as a (fractional) number of milliseconds.
    Milliseconds,
}

impl Unit {
    /// Its name in an EMF document.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Count => "Count",
            Self::Milliseconds => "Milliseconds",
        }
    }
}

/// One number of an invocation's outcome: a log field and, if it names one,
/// a metric.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Figure {
    /// Its field in the log line, e.g. `records_in`.
    pub field: &'static str,
    /// Its metric in the EMF document, e.g. `RecordsIn`; `None`: logged only.
    pub metric: Option<&'static str>,
    amount: Amount,
}

/// A figure's value, as the log line writes it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Amount {
    Count(u64),
    Milliseconds(f64),
}

impl Figure {
    /// `n` things, logged as `field` (add [`metric`](Self::metric) to
    /// emit it too).
    pub fn count(field: &'static str, n: impl TryInto<u64>) -> Self {
        Self {
            field,
            metric: None,
            amount: Amount::Count(n.try_into().unwrap_or(u64::MAX)),
        }
    }

    /// A time, logged as `field` in milliseconds.
    pub fn millis(field: &'static str, time: Duration) -> Self {
        Self {
            field,
            metric: None,
            amount: Amount::Milliseconds(time.as_secs_f64() * 1000.0),
        }
    }

    /// This figure, also emitted as metric `name`.
    #[must_use]
    pub const fn metric(self, name: &'static str) -> Self {
        Self {
            metric: Some(name),
            ..self
        }
    }

    /// What it counts in.
    pub const fn unit(&self) -> Unit {
        match self.amount {
            Amount::Count(_) => Unit::Count,
            Amount::Milliseconds(_) => Unit::Milliseconds,
        }
    }

    /// Its value, as the EMF document carries it.
    #[allow(clippy::cast_precision_loss)]
    pub fn value(&self) -> f64 {
        match self.amount {
            Amount::Count(n) => n as f64,
            Amount::Milliseconds(ms) => ms,
        }
    }

    /// Its value, as the log line carries it.
    fn field_value(&self) -> &dyn FieldValue {
        match &self.amount {
            Amount::Count(n) => n,
            Amount::Milliseconds(ms) => ms,
        }
    }
}

/// How an invocation's batch ended, as Lambda sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending<'a> {
    /// The function fails a batch only whole, by returning an error (which
    /// the bootstrap logs, and after which Lambda delivers the batch again):
    /// a report means it went through, and there is no `BatchFailures` metric.
    Whole,
    /// Every record went through: `BatchFailures` 0.
    Complete,
    /// Lambda must deliver again from a record: `BatchFailures` 1.
    Partial(Failure<'a>),
}

/// Where and why a batch stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure<'a> {
    /// Sequence number of the first record Lambda must deliver again.
    pub resume_at: &'a str,
    /// Why it stopped.
    pub error: &'a str,
    /// The log line's message, in place of the report's.
    pub message: &'static str,
}

/// One invocation's outcome, as [`report`] logs and emits it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Report<'a> {
    /// The function (its name in metrics where Lambda gives none).
    pub function: PipelineName,
    /// The shard of the batch (`scheduled-flush` for the aggregator's schedule).
    pub shard_id: &'a str,
    /// The log line's message when the batch went through.
    pub message: &'static str,
    /// The figures, in the order the log line and the document carry them.
    pub figures: &'a [Figure],
    /// How long the invocation took: `duration_ms` and `DurationMs`.
    pub took: Duration,
    /// How the batch ended.
    pub ending: Ending<'a>,
}

impl Report<'_> {
    fn duration_ms(&self) -> f64 {
        self.took.as_secs_f64() * 1000.0
    }

    /// The EMF metrics: (name, unit, value), in order.
    fn metrics(&self) -> Vec<(&'static str, &'static str, f64)> {
        let mut metrics: Vec<_> = self
            .figures
            .iter()
            .filter_map(|f| f.metric.map(|name| (name, f.unit().as_str(), f.value())))
            .collect();
        match self.ending {
            Ending::Whole => {}
            Ending::Complete => metrics.push(("BatchFailures", Unit::Count.as_str(), 0.0)),
            Ending::Partial(_) => metrics.push(("BatchFailures", Unit::Count.as_str(), 1.0)),
        }
        metrics.push((
            "DurationMs",
            Unit::Milliseconds.as_str(),
            self.duration_ms(),
        ));
        metrics
    }
}

/// Logs `report` as one line and emits it as one EMF document, stamped now
/// (see the [module documentation](self)).
pub fn report(report: &Report<'_>) {
    log(report);
    let function = std::env::var("AWS_LAMBDA_FUNCTION_NAME")
        .unwrap_or_else(|_| report.function.function_binary().to_owned());
    emit(&emf_line(
        &function,
        chrono::Utc::now().timestamp_millis(),
        &report.metrics(),
    ));
}

/// The log line of `report`, through the current subscriber.
fn log(report: &Report<'_>) {
    let (level, message, failure) = match &report.ending {
        Ending::Partial(failure) => (Level::ERROR, failure.message, Some(failure)),
        Ending::Whole | Ending::Complete => (Level::INFO, report.message, None),
    };
    if !tracing::level_enabled!(level) {
        return;
    }
    let duration_ms = report.duration_ms();
    let mut fields: Vec<(&'static str, &dyn FieldValue)> =
        vec![("message", &message), ("shard_id", &report.shard_id)];
    fields.extend(report.figures.iter().map(|f| (f.field, f.field_value())));
    fields.push(("duration_ms", &duration_ms));
    if let Some(failure) = failure {
        fields.push(("resume_at", &failure.resume_at));
        fields.push(("error", &failure.error));
    }
    let names: Vec<&'static str> = fields.iter().map(|(name, _)| *name).collect();
    debug_assert!(
        names
            .iter()
            .enumerate()
            .all(|(i, n)| !names[..i].contains(n)),
        "a figure reuses a field name: {names:?}"
    );
    let metadata = line_metadata(level, &names);
    let values: Vec<Option<&dyn FieldValue>> = fields.iter().map(|(_, v)| Some(*v)).collect();
    tracing::dispatcher::get_default(|dispatch| {
        if dispatch.enabled(metadata) {
            let values = metadata.fields().value_set_all(&values);
            dispatch.event(&Event::new(metadata, &values));
        }
    });
}

/// A `tracing` callsite made at run time, for one level and one list of
/// field names.
struct LineCallsite {
    metadata: OnceLock<Metadata<'static>>,
}

impl Callsite for LineCallsite {
    // `log` asks the dispatcher every time, so there is nothing to cache.
    fn set_interest(&self, _: Interest) {}

    fn metadata(&self) -> &Metadata<'_> {
        self.metadata
            .get()
            .expect("a line callsite is registered only once its metadata is set")
    }
}

/// The metadata of log lines at `level` with fields `names`: made and
/// registered the first time, then the same.
fn line_metadata(level: Level, names: &[&'static str]) -> &'static Metadata<'static> {
    static MADE: Mutex<Vec<&'static Metadata<'static>>> = Mutex::new(Vec::new());
    let mut made = MADE.lock().unwrap_or_else(PoisonError::into_inner);
    let same = |m: &&'static Metadata<'static>| {
        *m.level() == level
            && m.fields()
                .iter()
                .map(|f| f.name())
                .eq(names.iter().copied())
    };
    if let Some(metadata) = made.iter().copied().find(same) {
        return metadata;
    }
    let names: &'static [&'static str] = names.to_vec().leak();
    let callsite: &'static LineCallsite = Box::leak(Box::new(LineCallsite {
        metadata: OnceLock::new(),
    }));
    let metadata = callsite.metadata.get_or_init(|| {
        Metadata::new(
            concat!("event ", file!(), ":", line!()),
            module_path!(),
            level,
            Some(file!()),
            Some(line!()),
            Some(module_path!()),
            FieldSet::new(names, Identifier(callsite)),
            Kind::EVENT,
        )
    });
    tracing::callsite::register(callsite);
    made.push(metadata);
    metadata
}

/// One EMF document: `counts` as metrics of `function` at `timestamp_ms`.
pub fn emf_line(function: &str, timestamp_ms: i64, counts: &[(&str, &str, f64)]) -> String {
    let metrics: Vec<Value> = counts
        .iter()
        .map(|(name, unit, _)| json!({ "Name": name, "Unit": unit }))
        .collect();
    let mut doc = Map::new();
    doc.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [["FunctionName"]],
                "Metrics": metrics,
            }],
        }),
    );
    doc.insert("FunctionName".into(), json!(function));
    for (name, _, value) in counts {
        doc.insert((*name).into(), json!(value));
    }
    Value::Object(doc).to_string()
}

/// Writes an EMF document to standard output, where Lambda's log agent picks
/// it up.
pub fn emit(line: &str) {
    println!("{line}");
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::Arc;

    use super::*;

    #[test]
    fn emf_documents_declare_every_metric_they_carry() {
        let line = emf_line(
            "proc",
            1_700_000_000_000,
            &[
                ("RecordsIn", "Count", 3.0),
                ("DurationMs", "Milliseconds", 1.5),
            ],
        );
        let doc: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(doc["RecordsIn"], 3.0);
        assert_eq!(doc["FunctionName"], "proc");
        assert_eq!(doc["_aws"]["CloudWatchMetrics"][0]["Namespace"], NAMESPACE);
        assert_eq!(
            doc["_aws"]["CloudWatchMetrics"][0]["Metrics"][1]["Name"],
            "DurationMs"
        );
        assert_eq!(doc["_aws"]["Timestamp"], 1_700_000_000_000i64);
    }

    /// What a subscriber wrote.
    #[derive(Clone, Default)]
    struct Written(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Written {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Written {
        fn lines(&self) -> Vec<Value> {
            String::from_utf8(self.0.lock().unwrap().clone())
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect()
        }
    }

    /// The lines `log(report)` writes through [`json_logs`] at `directives`,
    /// inside a span like `lambda_runtime`'s.
    fn logged(directives: &str, report: &Report<'_>) -> Vec<Value> {
        let written = Written::default();
        let writer = written.clone();
        let logs = json_logs(directives.to_owned(), move || writer.clone());
        tracing::subscriber::with_default(logs, || {
            let _span = tracing::info_span!("Lambda runtime invoke", requestId = "req-1").entered();
            log(report);
        });
        written.lines()
    }

    /// The EMF document of `report`.
    fn document(report: &Report<'_>) -> Value {
        serde_json::from_str(&emf_line("fn", 1, &report.metrics())).unwrap()
    }

    const FIGURES: [Figure; 3] = [
        Figure {
            field: "records_in",
            metric: Some("RecordsIn"),
            amount: Amount::Count(7),
        },
        Figure {
            field: "accepted",
            metric: None,
            amount: Amount::Count(5),
        },
        Figure {
            field: "time_left_ms",
            metric: None,
            amount: Amount::Milliseconds(250.5),
        },
    ];

    fn delivered() -> Report<'static> {
        Report {
            function: PipelineName::Process,
            shard_id: "shardId-000000000001",
            message: "batch delivered",
            figures: &FIGURES,
            took: Duration::from_micros(12_500),
            ending: Ending::Complete,
        }
    }

    #[test]
    fn figures_are_built_with_their_units() {
        let figure = Figure::count("retries", 3u32).metric("Retries");
        assert_eq!(
            (figure.field, figure.metric, figure.unit(), figure.value()),
            ("retries", Some("Retries"), Unit::Count, 3.0)
        );
        let figure = Figure::millis("time_left_ms", Duration::from_micros(1_500));
        assert_eq!(
            (figure.metric, figure.unit(), figure.value()),
            (None, Unit::Milliseconds, 1.5)
        );
        assert_eq!(Figure::count("big", usize::MAX).value(), u64::MAX as f64);
    }

    #[test]
    fn the_log_line_and_the_document_carry_the_same_figures() {
        let report = delivered();
        let lines = logged("info", &report);
        assert_eq!(lines.len(), 1, "{lines:?}");
        let line = &lines[0];
        assert_eq!(line["level"], "INFO");
        assert_eq!(
            line["fields"],
            json!({
                "message": "batch delivered",
                "shard_id": "shardId-000000000001",
                "records_in": 7,
                "accepted": 5,
                "time_left_ms": 250.5,
                "duration_ms": 12.5,
            })
        );
        // Every field at its own key, whole counts as whole numbers, in order.
        let keys: Vec<&str> = line["fields"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "message",
                "shard_id",
                "records_in",
                "accepted",
                "time_left_ms",
                "duration_ms"
            ]
        );
        // The subscriber's span list is kept: the request id is on the line.
        assert_eq!(line["spans"][0]["requestId"], "req-1");
        assert!(line["timestamp"].is_string());

        let doc = document(&report);
        let metrics = &doc["_aws"]["CloudWatchMetrics"][0]["Metrics"];
        assert_eq!(
            metrics,
            &json!([
                { "Name": "RecordsIn", "Unit": "Count" },
                { "Name": "BatchFailures", "Unit": "Count" },
                { "Name": "DurationMs", "Unit": "Milliseconds" },
            ])
        );
        for figure in report.figures {
            if let Some(metric) = figure.metric {
                assert_eq!(
                    doc[metric].as_f64(),
                    line["fields"][figure.field].as_f64(),
                    "{metric}"
                );
            } else {
                assert!(doc.get(figure.field).is_none());
            }
        }
        assert_eq!(doc["BatchFailures"], 0.0);
        assert_eq!(doc["DurationMs"], line["fields"]["duration_ms"]);
    }

    #[test]
    fn a_failure_is_an_error_line_with_where_and_why_and_one_batch_failure() {
        let report = Report {
            ending: Ending::Partial(Failure {
                resume_at: "4959",
                error: "throttled",
                message: "batch partly delivered: Lambda will retry from resume_at",
            }),
            ..delivered()
        };
        // Filtered like any event: an error passes `warn`.
        let lines = logged("warn", &report);
        assert_eq!(lines.len(), 1, "{lines:?}");
        let fields = &lines[0]["fields"];
        assert_eq!(lines[0]["level"], "ERROR");
        assert_eq!(
            fields["message"],
            "batch partly delivered: Lambda will retry from resume_at"
        );
        assert_eq!(
            (&fields["resume_at"], &fields["error"]),
            (&json!("4959"), &json!("throttled"))
        );
        assert_eq!(fields["records_in"], 7);
        assert_eq!(document(&report)["BatchFailures"], 1.0);
    }

    #[test]
    fn a_whole_batch_function_counts_no_batch_failures_and_lines_are_filtered() {
        let report = Report {
            function: PipelineName::Aggregate,
            message: "batch aggregated",
            ending: Ending::Whole,
            ..delivered()
        };
        let doc = document(&report);
        assert!(doc.get("BatchFailures").is_none());
        let names: Vec<&Value> = doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| &m["Name"])
            .collect();
        assert_eq!(names, [&json!("RecordsIn"), &json!("DurationMs")]);
        assert!(logged("warn", &report).is_empty());
        assert_eq!(
            logged("wildrydes_lambda::telemetry=info", &report)[0]["fields"]["message"],
            "batch aggregated"
        );
    }
}
