//! The SNS notifier against moto's server: a topic with an SQS queue
//! subscribed to it; a dip and a recovery put exactly two messages on the
//! queue, with subject, message and attributes.
//!
//! moto comes from `cargo xtask test`, which installs the pinned Python
//! tools and names their folder in `WILDRYDES_TOOLS_BIN`.

// Test code: a panic is how a failure is reported (clippy.toml allows
// unwrap in #[test] functions; this extends it to their helpers).
#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_sns::config::{Credentials, SharedCredentialsProvider};
use aws_sdk_sqs::types::QueueAttributeName;
use common::*;
use tokio::process::{Child, Command};
use wildrydes_alarm::SnsNotifier;

fn moto_server() -> PathBuf {
    let dir = std::env::var_os("WILDRYDES_TOOLS_BIN").expect(
        "WILDRYDES_TOOLS_BIN is not set: run the tests with `cargo xtask test`, which installs moto and sets it",
    );
    PathBuf::from(dir).join("moto_server")
}

/// A port free on 127.0.0.1 right now: moto takes a port number, not a
/// listener.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Starts moto on 127.0.0.1:`port` and waits until it accepts connections.
async fn start_moto(port: u16) -> Child {
    let mut moto = Command::new(moto_server())
        .args(["-H", "127.0.0.1", "-p"])
        .arg(port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("cannot start moto_server");
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        if let Some(status) = moto.try_wait().unwrap() {
            panic!("moto_server exited before answering: {status}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    moto
}

/// SDK configuration for moto: its endpoint, test credentials, a fixed region.
fn moto_config(port: u16) -> SdkConfig {
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(format!("http://127.0.0.1:{port}"))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "test", "test", None, None, "moto",
        )))
        .build()
}

#[tokio::test]
async fn a_dip_and_a_recovery_reach_an_sqs_subscriber_of_the_topic_once_each() {
    bounded(async {
        let port = free_port();
        let _moto = start_moto(port).await;
        let aws = moto_config(port);
        let sns = aws_sdk_sns::Client::new(&aws);
        let sqs = aws_sdk_sqs::Client::new(&aws);

        let topic = sns
            .create_topic()
            .name("wildrydes-alarm")
            .send()
            .await
            .unwrap();
        let topic_arn = topic.topic_arn().unwrap().to_owned();
        let queue = sqs
            .create_queue()
            .queue_name("operators")
            .send()
            .await
            .unwrap();
        let queue_url = queue.queue_url().unwrap().to_owned();
        let attributes = sqs
            .get_queue_attributes()
            .queue_url(&queue_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .unwrap();
        let queue_arn = attributes.attributes().unwrap()[&QueueAttributeName::QueueArn].clone();
        sns.subscribe()
            .topic_arn(&topic_arn)
            .protocol("sqs")
            .endpoint(&queue_arn)
            .send()
            .await
            .unwrap();

        let local = backend().await;
        let alarm = alarm(&local, vec![Arc::new(SnsNotifier::new(sns.clone(), &topic_arn))]);
        let batch = walk("Shadowfax", 0, &[53, 50, 49, 44, 52, 59, 60, 47]);
        let outcome = alarm.process(&source(), &batch[..7], deadline()).await;
        assert_eq!(outcome.first_failure, None, "{outcome:?}");
        assert_eq!(outcome.notified.len(), 2);
        // The same records again: nothing more is published.
        let replay = alarm.process(&source(), &batch[..7], deadline()).await;
        assert!(replay.notified.is_empty());

        let mut envelopes: Vec<serde_json::Value> = Vec::new();
        while envelopes.len() < 2 {
            let received = sqs
                .receive_message()
                .queue_url(&queue_url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .send()
                .await
                .unwrap();
            for m in received.messages() {
                envelopes.push(serde_json::from_str(m.body().unwrap()).unwrap());
                sqs.delete_message()
                    .queue_url(&queue_url)
                    .receipt_handle(m.receipt_handle().unwrap())
                    .send()
                    .await
                    .unwrap();
            }
        }
        let extra = sqs
            .receive_message()
            .queue_url(&queue_url)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        assert!(extra.messages().is_empty(), "exactly two messages");

        let subjects: Vec<&str> = envelopes
            .iter()
            .map(|e| e["Subject"].as_str().unwrap())
            .collect();
        assert_eq!(
            subjects,
            [
                "Wild Rydes ALARM: Shadowfax magic points 49 < 50",
                "Wild Rydes OK: Shadowfax magic points 60 >= 60"
            ]
        );
        let alarm_message = envelopes[0]["Message"].as_str().unwrap();
        assert!(
            alarm_message.starts_with("ALARM: unicorn Shadowfax has 49 magic points, below the threshold of 50, at 2017-06-05 09:00:02.189 UTC; last seen at latitude"),
            "{alarm_message}"
        );
        let attributes = &envelopes[0]["MessageAttributes"];
        assert_eq!(attributes["unicorn"]["Value"], "Shadowfax");
        assert_eq!(attributes["state"]["Value"], "ALARM");
        assert_eq!(
            attributes["notification_id"]["Value"],
            "Shadowfax/ALARM/2017-06-05T09:00:02.189Z"
        );
        assert_eq!(envelopes[1]["MessageAttributes"]["state"]["Value"], "OK");
    })
    .await;
}

#[tokio::test]
async fn a_missing_topic_fails_the_batch_at_the_transition() {
    bounded(async {
        let port = free_port();
        let _moto = start_moto(port).await;
        let sns = aws_sdk_sns::Client::new(&moto_config(port));
        let local = backend().await;
        let missing = "arn:aws:sns:us-east-1:123456789012:no-such-topic";
        let alarm = alarm(&local, vec![Arc::new(SnsNotifier::new(sns, missing))]);
        let outcome = alarm
            .process(&source(), &walk("Shadowfax", 0, &[55, 49]), deadline())
            .await;
        assert_eq!(outcome.first_failure, Some(1), "{outcome:?}");
        let error = outcome.error.unwrap();
        assert!(
            error.contains(
                "Publish to topic arn:aws:sns:us-east-1:123456789012:no-such-topic failed"
            ),
            "{error}"
        );
        assert_eq!(
            outcome.notify_retries, 0,
            "a missing topic is not retried: {error}"
        );
    })
    .await;
}
