//! The real `wildrydes-alarm` binary, run under a Lambda runtime API
//! (cargo-lambda's emulator) and invoked with a fixture event, against the
//! embedded DynamoDB, with the console notifier: what this adds to the
//! library tests is the binary's start-up, its configuration from the
//! environment, the runtime loop and the JSON it answers Lambda with.
//!
//! cargo-lambda comes from `cargo xtask test` (see
//! `wildrydes_testkit::lambda_runtime`).

// Test code: a panic is how a failure is reported (clippy.toml allows
// unwrap in #[test] functions; this extends it to their helpers).
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::time::Duration;

use tokio::process::Command;
use wildrydes_local_aws::{LocalAws, LocalAwsOptions, workshop};
use wildrydes_testkit::lambda_runtime::RuntimeApi;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(format!(
        "{}/../../tests/fixtures/events/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
}

#[tokio::test]
async fn the_binary_prints_the_alarm_and_answers_lambda() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let local = LocalAws::start(LocalAwsOptions::default()).await.unwrap();
        workshop::ensure_workshop_resources(&local).await.unwrap();
        let api = RuntimeApi::start().await;
        let env = [
            ("ALARM_TABLE_NAME", workshop::ALARM_TABLE),
            ("ALARM_CONSOLE", "true"),
        ];
        let mut function = api.function(env!("CARGO_BIN_EXE_wildrydes-alarm"), &local, &env);

        let response = api.invoke(&fixture("alarm-dip.json")).await;
        // The same event again, as a Lambda retry would: nothing more.
        let again = api.invoke(&fixture("alarm-dip.json")).await;

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
