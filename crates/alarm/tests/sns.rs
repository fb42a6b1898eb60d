//! The SNS notifier against moto's server: a topic with an SQS queue
//! subscribed to it; a dip and a recovery put exactly two messages on the
//! queue, with subject, message and attributes.
//!
//! moto is found by `wildrydes_testkit::tools` (`cargo xtask tools`
//! installs it).

// Test code: a panic is how a failure is reported (clippy.toml allows
// unwrap in #[test] functions; this extends it to their helpers).
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use aws_sdk_sqs::types::{Message, QueueAttributeName};
use common::*;
use wildrydes_alarm::SnsNotifier;
use wildrydes_testkit::moto::Moto;

/// Creates topic `wildrydes-alarm` and queue `operators` subscribed to it;
/// returns the topic's ARN and the queue's URL.
async fn subscribed_queue(
    sns: &aws_sdk_sns::Client,
    sqs: &aws_sdk_sqs::Client,
) -> (String, String) {
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
    (topic_arn, queue_url)
}

/// Up to ten messages of the queue at `queue_url`, waiting a second for one.
async fn receive(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> Vec<Message> {
    sqs.receive_message()
        .queue_url(queue_url)
        .max_number_of_messages(10)
        .wait_time_seconds(1)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default()
}

#[tokio::test]
async fn a_dip_and_a_recovery_reach_an_sqs_subscriber_of_the_topic_once_each() {
    bounded(async {
        let moto = Moto::start().await;
        let aws = moto.config.clone();
        let sns = aws_sdk_sns::Client::new(&aws);
        let sqs = aws_sdk_sqs::Client::new(&aws);

        let (topic_arn, queue_url) = subscribed_queue(&sns, &sqs).await;

        let local = backend().await;
        let alarm = alarm(&local, vec![Arc::new(SnsNotifier::new(sns.clone(), &topic_arn))]);
        let batch = walk("Shadowfax", 0, &[53, 50, 49, 44, 52, 59, 60, 47]);
        let outcome = process(&alarm, &batch[..7]).await;
        assert_eq!(outcome.first_failure, None, "{outcome:?}");
        assert_eq!(outcome.notified.len(), 2);
        // The same records again: nothing more is published.
        let replay = process(&alarm, &batch[..7]).await;
        assert!(replay.notified.is_empty());

        let mut envelopes: Vec<serde_json::Value> = Vec::new();
        while envelopes.len() < 2 {
            for m in receive(&sqs, &queue_url).await {
                envelopes.push(serde_json::from_str(m.body().unwrap()).unwrap());
                sqs.delete_message()
                    .queue_url(&queue_url)
                    .receipt_handle(m.receipt_handle().unwrap())
                    .send()
                    .await
                    .unwrap();
            }
        }
        let extra = receive(&sqs, &queue_url).await;
        assert!(extra.is_empty(), "exactly two messages");

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
        let moto = Moto::start().await;
        let sns = aws_sdk_sns::Client::new(&moto.config);
        let local = backend().await;
        let missing = "arn:aws:sns:us-east-1:123456789012:no-such-topic";
        let alarm = alarm(&local, vec![Arc::new(SnsNotifier::new(sns, missing))]);
        let outcome = process(&alarm, &walk("Shadowfax", 0, &[55, 49])).await;
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
