//! The real `wildrydes-stream-processor`, `wildrydes-aggregator` and
//! `wildrydes-alarm` binaries, run under a Lambda runtime API (cargo-lambda's emulator) and
//! invoked with events, against the embedded backend. What this adds to the
//! handler tests: the binaries' start-up, their configuration from the
//! environment, the runtime loop, the events they decode and the JSON they
//! answer Lambda with.
//!
//! cargo-lambda is found as `wildrydes_testkit::tools` says (`cargo xtask
//! tools` installs it).

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use tokio::process::{Child, Command};
use wildrydes_core::{Aggregate, Reading, UnicornName};
use wildrydes_local_aws::{LocalAws, workshop};
use wildrydes_testkit::lambda_runtime::RuntimeApi;
use wildrydes_testkit::{WORKSHOP_DAY, read_stream, readings_of_minute, start_local_aws};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(format!(
        "{}/../../tests/fixtures/events/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
}

/// Runs `test`, panicking if it takes longer than two minutes: these tests
/// start real binaries, and a cold cargo-lambda takes a while.
async fn slow<F: std::future::Future>(test: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(120), test)
        .await
        .expect("test timed out")
}

/// The embedded backend with the workshop's streams and tables.
async fn workshop_backend() -> LocalAws {
    let local = start_local_aws().await;
    workshop::ensure_workshop_resources(&local).await.unwrap();
    local
}

async fn count(local: &LocalAws, table: &str) -> usize {
    wildrydes_testkit::scan_table(&local.dynamodb_client(), table)
        .await
        .len()
}

#[tokio::test]
async fn the_binary_answers_lambda_and_writes_the_table() {
    slow(async {
        let local = workshop_backend().await;
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
        let lines = json_lines(&logs);
        assert!(lines.iter().any(
            |l| l["fields"]["message"] == "batch delivered" && l["fields"]["records_in"] == 100
        ));
        assert!(
            lines
                .iter()
                .any(|l| l["_aws"].is_object() && l["RecordsIn"] == 6.0)
        );
    })
    .await;
}

#[tokio::test]
async fn without_table_name_the_binary_says_what_to_set() {
    let said = start_failure(env!("CARGO_BIN_EXE_wildrydes-stream-processor")).await;
    assert!(
        said.contains("environment variable TABLE_NAME is not set"),
        "{said}"
    );
}

/// Runs `exe` with an empty environment: it must fail to start; what it
/// printed.
async fn start_failure(exe: &str) -> String {
    let output = Command::new(exe).env_clear().output().await.unwrap();
    assert!(!output.status.success());
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A function's standard output, one JSON object (a log line or an EMF
/// document) per line.
fn json_lines(stdout: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// Kills `function` and returns what it wrote on stdout: its JSON logs.
async fn logs_of(mut function: Child) -> String {
    function.kill().await.unwrap();
    let output = function.wait_with_output().await.unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Writes the event the event source mapping makes of `readings` read from
/// `shard` (sequence numbers from `first_sequence` on) to `dir/name.json`.
fn write_shard_event(
    dir: &Path,
    name: &str,
    stream_arn: &str,
    shard: &str,
    first_sequence: usize,
    readings: &[Reading],
) -> PathBuf {
    let records: Vec<_> = readings
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let sequence = format!("4959{:052}", first_sequence + i);
            serde_json::json!({
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": r.name.as_str(),
                    "sequenceNumber": sequence,
                    "data": base64::engine::general_purpose::STANDARD.encode(r.to_json()),
                    "approximateArrivalTimestamp": 1_795_000_000.25,
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": format!("{shard}:{sequence}"),
                "eventName": "aws:kinesis:record",
                "invokeIdentityArn": "arn:aws:iam::000000000000:role/WildRydesAggregatorRole",
                "awsRegion": "us-east-1",
                "eventSourceARN": stream_arn,
            })
        })
        .collect();
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, serde_json::json!({ "Records": records }).to_string()).unwrap();
    path
}

#[tokio::test]
async fn the_aggregator_binary_follows_a_split_and_flushes_on_schedule() {
    slow(async {
        let local = workshop_backend().await;
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("aggregator-runtime-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();

        // Three minutes of the workshop's Shadowfax, and the same figures for
        // Rocinante: the readings must fold back into exactly these.
        let mut want = BTreeMap::new();
        let mut readings = Vec::new();
        for line in WORKSHOP_DAY.lines().take(3) {
            let shadowfax = Aggregate::from_json(line.as_bytes()).unwrap();
            let rocinante = Aggregate {
                name: UnicornName::new("Rocinante").unwrap(),
                ..shadowfax.clone()
            };
            for a in [shadowfax, rocinante] {
                readings.extend(readings_of_minute(&a, 250));
                want.insert((a.status_time.epoch_millis(), a.name.to_string()), a);
            }
        }
        readings.sort_by(|a, b| (a.status_time, &a.name).cmp(&(b.status_time, &b.name)));

        // The parent shard up to the split at 00:01:30 (in two batches),
        // then each child with one unicorn: minute 00:01 straddles it.
        let arn = "arn:aws:kinesis:us-east-1:000000000000:stream/wildrydes";
        let split = readings
            .iter()
            .position(|r| r.status_time.to_string() == "2016-02-12 00:01:30.250")
            .unwrap();
        let (before, after) = readings.split_at(split);
        let child = |name: &str| -> Vec<Reading> {
            after
                .iter()
                .filter(|r| r.name.as_str() == name)
                .cloned()
                .collect()
        };
        let half = before.len() / 2;
        let events = [
            write_shard_event(
                &dir,
                "parent-1",
                arn,
                "shardId-000000000000",
                0,
                &before[..half],
            ),
            write_shard_event(
                &dir,
                "parent-2",
                arn,
                "shardId-000000000000",
                half,
                &before[half..],
            ),
            write_shard_event(
                &dir,
                "left",
                arn,
                "shardId-000000000001",
                0,
                &child("Shadowfax"),
            ),
            write_shard_event(
                &dir,
                "right",
                arn,
                "shardId-000000000002",
                0,
                &child("Rocinante"),
            ),
        ];
        let scheduled = dir.join("scheduled.json");
        let rule = "arn:aws:events:us-east-1:000000000000:rule/WildRydesAggregatorFlush";
        std::fs::write(
            &scheduled,
            serde_json::json!({
                "version": "0", "id": "1", "detail-type": "Scheduled Event",
                "source": "aws.events", "account": "000000000000",
                "time": "2026-12-02T10:00:00Z", "region": "us-east-1",
                "resources": [rule], "detail": {}
            })
            .to_string(),
        )
        .unwrap();

        let api = RuntimeApi::start().await;
        let exe = env!("CARGO_BIN_EXE_wildrydes-aggregator");
        // Minutes idle for 1 ms are due on schedule: by the time the
        // scheduled invocation runs (a process start later), every open
        // minute is.
        let function = api.function(exe, &local, &[("IDLE_AFTER_MS", "1")]);
        let ok = serde_json::json!({ "batchItemFailures": [] });
        for event in events.iter().chain([&scheduled]) {
            let response = api.invoke(event).await;
            if response != ok {
                panic!(
                    "{}: {response}; the function logged:\n{}",
                    event.display(),
                    logs_of(function).await
                );
            }
        }

        let emitted = read_stream(&local.kinesis_client(), workshop::AGGREGATES_STREAM).await;
        let last: BTreeMap<_, _> = emitted
            .iter()
            .map(|r| {
                let a = Aggregate::from_json(&r.data).unwrap();
                ((a.status_time.epoch_millis(), a.name.to_string()), a)
            })
            .collect();
        if last != want {
            panic!(
                "emitted {last:?}, not {want:?}; the function logged:\n{}",
                logs_of(function).await
            );
        }

        let logs = logs_of(function).await;
        let lines = json_lines(&logs);
        for shard in [
            "shardId-000000000000",
            "shardId-000000000001",
            "shardId-000000000002",
            "scheduled-flush",
        ] {
            assert!(
                lines
                    .iter()
                    .any(|l| l["fields"]["message"] == "batch aggregated"
                        && l["fields"]["shard_id"] == shard),
                "no log line of {shard}:\n{logs}"
            );
        }
        assert!(
            lines
                .iter()
                .any(|l| l["_aws"].is_object() && l["AggregatesEmitted"].is_number())
        );
        std::fs::remove_dir_all(&dir).unwrap();
    })
    .await;
}

#[tokio::test]
async fn the_binary_prints_the_alarm_and_answers_lambda() {
    slow(async {
        let local = workshop_backend().await;
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
        let lines = json_lines(&stdout);
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

        let rejects =
            wildrydes_testkit::scan_table(&local.dynamodb_client(), workshop::REJECTS_TABLE).await;
        assert_eq!(rejects.len(), 1);
        assert_eq!(rejects[0]["Pipeline"].as_s().unwrap(), "alarm");
    })
    .await;
}

#[tokio::test]
async fn without_a_notifier_the_alarm_binary_says_what_to_set() {
    let said = start_failure(env!("CARGO_BIN_EXE_wildrydes-alarm")).await;
    for what_to_set in [
        "environment variable ALARM_TOPIC_ARN is not set",
        "ALARM_WEBHOOK_URL",
        "ALARM_CONSOLE=true",
    ] {
        assert!(said.contains(what_to_set), "{said}");
    }
}

#[tokio::test]
async fn the_alarm_binary_judges_the_user_records_of_kpl_aggregates() {
    slow(async {
        let local = workshop_backend().await;
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("alarm-kpl-runtime-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // Shadowfax and Rocinante interleaved, a second apart, in two KPL
        // aggregates; Shadowfax drops below 50 in the second, whose fourth
        // user record it is; a corrupt aggregate between them.
        let magic = [(53, 90), (51, 90), (50, 89), (52, 89), (49, 88), (47, 88)];
        let readings: Vec<(String, Vec<u8>)> = magic
            .iter()
            .enumerate()
            .flat_map(|(second, (shadowfax, rocinante))| {
                [("Shadowfax", *shadowfax), ("Rocinante", *rocinante)].map(|(name, m)| {
                    let json = format!(
                        r#"{{"Name":"{name}","StatusTime":"2017-06-05 09:17:{second:02}.189","Latitude":40.749167,"Longitude":-73.985184,"Distance":175,"MagicPoints":{m},"HealthPoints":150}}"#
                    );
                    (name.to_owned(), json.into_bytes())
                })
            })
            .collect();
        let mut shard = common::Shard::of("wildrydes");
        let records = [
            shard.aggregate(readings[..5].iter().cloned()),
            common::corrupt(shard.aggregate(readings[..2].iter().cloned())),
            shard.aggregate(readings[5..].iter().cloned()),
        ];
        let event = dir.join("kpl.json");
        std::fs::write(&event, shard.event(&records).to_string()).unwrap();

        let api = RuntimeApi::start().await;
        let env = [
            ("ALARM_TABLE_NAME", workshop::ALARM_TABLE),
            ("ALARM_CONSOLE", "true"),
        ];
        let function = api.function(env!("CARGO_BIN_EXE_wildrydes-alarm"), &local, &env);
        let response = api.invoke(&event).await;
        let again = api.invoke(&event).await;
        let stdout = logs_of(function).await;
        let ok = serde_json::json!({ "batchItemFailures": [] });
        assert_eq!((&response, &again), (&ok, &ok), "the function logged:\n{stdout}");
        let lines = json_lines(&stdout);
        let notifications: Vec<&serde_json::Value> = lines
            .iter()
            .filter(|l| l["notification"] == "wildrydes-alarm")
            .collect();
        assert_eq!(notifications.len(), 1, "{stdout}");
        assert_eq!(
            notifications[0]["id"],
            "Shadowfax/ALARM/2017-06-05T09:17:04.189Z"
        );
        assert_eq!(notifications[0]["magicPoints"], 49);
        assert!(
            lines.iter().any(|l| l["fields"]["message"] == "batch judged"
                && l["fields"]["records_in"] == 13
                && l["fields"]["readings"] == 12
                && l["fields"]["rejected"] == 1),
            "{stdout}"
        );
        let rejects =
            wildrydes_testkit::scan_table(&local.dynamodb_client(), workshop::REJECTS_TABLE).await;
        assert_eq!(rejects.len(), 1);
        assert!(
            rejects[0]["Reason"]
                .as_s()
                .unwrap()
                .starts_with("record is a KPL aggregate that cannot be read")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    })
    .await;
}
