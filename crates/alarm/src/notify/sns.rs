//! `SnsNotifier`: Publish to an SNS topic, which fans out to e-mail, SMS,
//! chat, paging or queues. Subject and message are for humans; message
//! attributes (`unicorn`, `state`, `notification_id`, `magic_points`) let
//! subscribers filter and dedupe.
//!
//! Use a standard topic: FIFO topics need a group and deduplication id that
//! this notifier does not set.

use aws_sdk_sns::config::http::HttpResponse;
use aws_sdk_sns::error::{DisplayErrorContext, SdkError};
use aws_sdk_sns::operation::publish::PublishError;
use aws_sdk_sns::types::MessageAttributeValue;
use futures::future::BoxFuture;
use wildrydes_core::retry::classify_sdk;

use super::{Notifier, refused};
use crate::error::AlarmError;
use crate::notification::Notification;

/// Publishes each notification to one topic.
#[derive(Debug, Clone)]
pub struct SnsNotifier {
    /// The SNS client, built once per process.
    client: aws_sdk_sns::Client,
    /// The topic operators subscribe to.
    topic_arn: String,
}

impl SnsNotifier {
    /// A notifier publishing to `topic_arn` through `client`.
    pub fn new(client: aws_sdk_sns::Client, topic_arn: impl Into<String>) -> Self {
        Self {
            client,
            topic_arn: topic_arn.into(),
        }
    }

    /// The topic published to.
    pub fn topic_arn(&self) -> &str {
        &self.topic_arn
    }

    async fn publish(&self, n: &Notification) -> Result<(), AlarmError> {
        let attribute = |data_type: &str, value: String| {
            MessageAttributeValue::builder()
                .data_type(data_type)
                .string_value(value)
                .build()
                .map_err(|e| {
                    refused(
                        "sns",
                        n,
                        format!("cannot build a message attribute: {e}"),
                        false,
                    )
                })
        };
        let output = self
            .client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(n.subject())
            .message(n.message())
            .message_attributes("unicorn", attribute("String", n.unicorn.to_string())?)
            .message_attributes("state", attribute("String", n.state.to_string())?)
            .message_attributes("notification_id", attribute("String", n.id.clone())?)
            .message_attributes(
                "magic_points",
                attribute("Number", n.magic_points.to_string())?,
            )
            .send()
            .await
            .map_err(|e| {
                let transient = is_transient(&e);
                refused(
                    "sns",
                    n,
                    format!(
                        "Publish to topic {} failed: {}",
                        self.topic_arn,
                        DisplayErrorContext(&e)
                    ),
                    transient,
                )
            })?;
        tracing::debug!(id = %n.id, message_id = output.message_id().unwrap_or_default(), "published to sns");
        Ok(())
    }
}

/// Whether a failed Publish may work if sent again: the network, a timeout,
/// throttling or a server error; not a missing topic, a denied permission or
/// an invalid parameter.
fn is_transient(error: &SdkError<PublishError, HttpResponse>) -> bool {
    let modeled = matches!(
        error.as_service_error(),
        Some(PublishError::InternalErrorException(_) | PublishError::KmsThrottlingException(_))
    );
    classify_sdk(error, modeled).is_transient()
}

impl Notifier for SnsNotifier {
    fn name(&self) -> &str {
        "sns"
    }

    fn send<'a>(&'a self, notification: &'a Notification) -> BoxFuture<'a, Result<(), AlarmError>> {
        Box::pin(self.publish(notification))
    }
}
