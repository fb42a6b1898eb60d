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
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};
use wildrydes_local_aws::{LocalAws, LocalAwsOptions, workshop};

fn cargo_lambda() -> PathBuf {
    let dir = std::env::var_os("WILDRYDES_TOOLS_BIN").expect(
        "WILDRYDES_TOOLS_BIN is not set: run the tests with `cargo xtask test`, which installs cargo-lambda and sets it",
    );
    PathBuf::from(dir).join("cargo-lambda")
}

fn fixture(name: &str) -> String {
    format!(
        "{}/../../tests/fixtures/events/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// A port free on 127.0.0.1 right now: cargo-lambda takes a port number, not
/// a listener.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Waits until something accepts connections on `port`.
async fn until_listening(port: u16) {
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn runtime_api(port: u16) -> Child {
    Command::new(cargo_lambda())
        .args([
            "lambda",
            "watch",
            "--only-lambda-apis",
            "-A",
            "127.0.0.1",
            "-P",
        ])
        .arg(port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("cannot start cargo lambda watch")
}

fn function(port: u16, local: &LocalAws) -> Child {
    Command::new(env!("CARGO_BIN_EXE_wildrydes-stream-processor"))
        .env_clear()
        .envs(local.env_vars())
        .env(
            "AWS_LAMBDA_RUNTIME_API",
            format!("http://127.0.0.1:{port}/.rt"),
        )
        .env("AWS_LAMBDA_FUNCTION_NAME", "_")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("TABLE_NAME", workshop::SENSOR_TABLE)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("cannot start the stream processor binary")
}

async fn invoke(port: u16, event: &str) -> serde_json::Value {
    let output = Command::new(cargo_lambda())
        .args(["lambda", "invoke", "-A", "127.0.0.1", "-P"])
        .arg(port.to_string())
        .args(["--output-format", "json", "--data-file"])
        .arg(fixture(event))
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "invoke failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
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
        let port = free_port();
        let _api = runtime_api(port);
        until_listening(port).await;
        let mut function = function(port, &local);

        let response = invoke(port, "all-good.json").await;
        if response != serde_json::json!({ "batchItemFailures": [] }) {
            function.kill().await.unwrap();
            let output = function.wait_with_output().await.unwrap();
            panic!(
                "{response}: the function logged:\n{}",
                String::from_utf8_lossy(&output.stdout)
            );
        }
        assert_eq!(count(&local, workshop::SENSOR_TABLE).await, 100);

        let response = invoke(port, "garbage.json").await;
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
