//! The real `wildrydes-alarm` binary, run under a Lambda runtime API
//! (cargo-lambda's emulator) and invoked with a fixture event, against the
//! embedded DynamoDB, with the console notifier: what this adds to the
//! library tests is the binary's start-up, its configuration from the
//! environment, the runtime loop and the JSON it answers Lambda with.
//!
//! cargo-lambda comes from `cargo xtask test`, which installs it and names
//! its folder in `WILDRYDES_TOOLS_BIN`.

// Test code: a panic is how a failure is reported (clippy.toml allows
// unwrap in #[test] functions; this extends it to their helpers).
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
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// A port free on 127.0.0.1 right now: cargo-lambda takes a port number.
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
    Command::new(env!("CARGO_BIN_EXE_wildrydes-alarm"))
        .env_clear()
        .envs(local.env_vars())
        .env(
            "AWS_LAMBDA_RUNTIME_API",
            format!("http://127.0.0.1:{port}/.rt"),
        )
        .env("AWS_LAMBDA_FUNCTION_NAME", "_")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("ALARM_TABLE_NAME", workshop::ALARM_TABLE)
        .env("ALARM_CONSOLE", "true")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("cannot start the alarm binary")
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

#[tokio::test]
async fn the_binary_prints_the_alarm_and_answers_lambda() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let local = LocalAws::start(LocalAwsOptions::default()).await.unwrap();
        workshop::ensure_workshop_resources(&local).await.unwrap();
        let port = free_port();
        let _api = runtime_api(port);
        until_listening(port).await;
        let mut function = function(port, &local);

        let response = invoke(port, "dip.json").await;
        // The same event again, as a Lambda retry would: nothing more.
        let again = invoke(port, "dip.json").await;

        function.kill().await.unwrap();
        let output = function.wait_with_output().await.unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert_eq!(
            (&response, &again),
            (
                &serde_json::json!({ "batchItemFailures": [] }),
                &serde_json::json!({ "batchItemFailures": [] })
            ),
            "the function logged:\n{stdout}"
        );
        let lines: Vec<serde_json::Value> = stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect();
        let notifications: Vec<&serde_json::Value> = lines
            .iter()
            .filter(|l| l["notification"] == "wildrydes-alarm")
            .collect();
        assert_eq!(
            notifications.len(),
            1,
            "one ALARM for both invocations:\n{stdout}"
        );
        let n = notifications[0];
        assert_eq!(n["state"], "ALARM");
        assert_eq!(n["unicorn"], "Shadowfax");
        assert_eq!(n["magicPoints"], 49);
        assert_eq!(n["statusTime"], "2017-06-05 09:17:11.189");
        assert_eq!(n["id"], "Shadowfax/ALARM/2017-06-05T09:17:11.189Z");
        assert!(n["position"]["latitude"].is_f64(), "{n}");
        assert!(
            lines
                .iter()
                .any(|l| l["fields"]["message"] == "batch judged"
                    && l["fields"]["records_in"] == 7
                    && l["fields"]["rejected"] == 1)
        );
        assert!(
            lines
                .iter()
                .any(|l| l["_aws"].is_object() && l["Notifications"] == 1.0)
        );

        let rejects = local
            .dynamodb_client()
            .scan()
            .table_name(workshop::REJECTS_TABLE)
            .send()
            .await
            .unwrap();
        assert_eq!(rejects.count(), 1);
        assert_eq!(rejects.items()[0]["Pipeline"].as_s().unwrap(), "alarm");
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn without_a_notifier_the_binary_says_what_to_set() {
    let output = Command::new(env!("CARGO_BIN_EXE_wildrydes-alarm"))
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
        all.contains("no notifier is configured: set ALARM_TOPIC_ARN"),
        "{all}"
    );
}
