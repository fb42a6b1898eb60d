//! The real `wildrydes-stream-processor` binary, run under a Lambda runtime
//! API (cargo-lambda's emulator) and invoked with fixture events, against the
//! embedded DynamoDB. What this adds to the handler tests: the binary's
//! start-up, its configuration from the environment, the runtime loop and the
//! JSON it answers Lambda with.
//!
//! cargo-lambda comes from `cargo xtask test`, which installs it and names
//! its folder in `WILDRYDES_TOOLS_BIN`.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::time::Duration;

use tokio::process::Command;
use wildrydes_local_aws::{LocalAws, LocalAwsOptions, workshop};
use wildrydes_tests::lambda_runtime::RuntimeApi;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(format!(
        "{}/../../tests/fixtures/events/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
}

async fn count(local: &LocalAws, table: &str) -> i32 {
    let scan = local
        .dynamodb_client()
        .scan()
        .table_name(table)
        .send()
        .await
        .unwrap();
    scan.count()
}

#[tokio::test]
async fn the_binary_answers_lambda_and_writes_the_table() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let local = LocalAws::start(LocalAwsOptions::default()).await.unwrap();
        workshop::ensure_workshop_resources(&local).await.unwrap();
        let api = RuntimeApi::start().await;
        let exe = env!("CARGO_BIN_EXE_wildrydes-stream-processor");
        let mut function = api.function(exe, &local, &[("TABLE_NAME", workshop::SENSOR_TABLE)]);

        let response = api.invoke(&fixture("all-good.json")).await;
        if response != serde_json::json!({ "batchItemFailures": [] }) {
            function.kill().await.unwrap();
            let output = function.wait_with_output().await.unwrap();
            panic!(
                "{response}: the function logged:\n{}",
                String::from_utf8_lossy(&output.stdout)
            );
        }
        assert_eq!(count(&local, workshop::SENSOR_TABLE).await, 100);

        let response = api.invoke(&fixture("garbage.json")).await;
        assert_eq!(response, serde_json::json!({ "batchItemFailures": [] }));
        assert_eq!(count(&local, workshop::REJECTS_TABLE).await, 3);

        function.kill().await.unwrap();
        let output = function.wait_with_output().await.unwrap();
        let logs = String::from_utf8_lossy(&output.stdout);
        // JSON logs and EMF documents, one JSON object per line.
        let lines: Vec<serde_json::Value> = logs
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect();
        assert!(lines.iter().any(
            |l| l["fields"]["message"] == "batch delivered" && l["fields"]["records_in"] == 100
        ));
        assert!(
            lines
                .iter()
                .any(|l| l["_aws"].is_object() && l["RecordsIn"] == 6.0)
        );
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn without_table_name_the_binary_says_what_to_set() {
    let output = Command::new(env!("CARGO_BIN_EXE_wildrydes-stream-processor"))
        .env_clear()
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        all.contains("environment variable TABLE_NAME is not set"),
        "{all}"
    );
}
