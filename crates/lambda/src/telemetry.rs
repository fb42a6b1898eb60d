//! What a function tells its operators: JSON logs, one object per line (so
//! CloudWatch Logs Insights can query every field), and CloudWatch Embedded
//! Metric Format lines, which CloudWatch turns into metrics without any API
//! call from the function.

use serde_json::{Map, Value, json};

/// Installs JSON logging, filtered by `RUST_LOG` or else `AWS_LAMBDA_LOG_LEVEL`
/// (Lambda's own setting), `info` by default.
pub fn init_json_logs() {
    let level = std::env::var("RUST_LOG")
        .or_else(|_| std::env::var("AWS_LAMBDA_LOG_LEVEL").map(|l| l.to_lowercase()))
        .unwrap_or_else(|_| "info".to_owned());
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::new(level))
        .with_current_span(false)
        .with_ansi(false)
        .with_target(false)
        .init();
}

/// CloudWatch namespace of every metric the pipeline emits.
pub const NAMESPACE: &str = "WildRydes";

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

/// Writes one EMF document of `counts`, stamped now, for this function: the
/// name Lambda gives it (`AWS_LAMBDA_FUNCTION_NAME`), else `default_name`.
pub fn emit_metrics(default_name: &str, counts: &[(&str, &str, f64)]) {
    let function =
        std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| default_name.to_owned());
    emit(&emf_line(
        &function,
        chrono::Utc::now().timestamp_millis(),
        counts,
    ));
}

#[cfg(test)]
mod tests {
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
}
