//! `AlarmConfig`: what the alarm needs to run, typed. The Lambda adapter
//! fills it from the environment (`wildrydes-lambda`), the daemon from its
//! flags; neither goes through the other's form.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use aws_config::SdkConfig;
use wildrydes_core::names::{ALARM_HISTORY_TABLE, ALARM_TABLE, REJECTS_TABLE};
use wildrydes_core::rejects::RejectStore;
use wildrydes_core::writer::{TableWriter, WriterConfig};

use crate::alarm::MagicAlarm;
use crate::detector::Detector;
use crate::error::AlarmError;
use crate::history::AlarmHistory;
use crate::notify::{
    ConsoleNotifier, DEFAULT_WEBHOOK_TIMEOUT, Notifier, SnsNotifier, WebhookNotifier,
};
use crate::store::StateStore;

/// The alarm's settings: its tables, its levels and whom it tells.
#[derive(Clone, PartialEq, Eq)]
pub struct AlarmConfig {
    /// Table of per-unicorn alarm state.
    pub table_name: String,
    /// Table of every transition committed, written in the same transaction
    /// as the state (hash key `Name` S, range key `StatusTime` N).
    pub history_table_name: String,
    /// Table of rejects.
    pub rejects_table_name: String,
    /// SNS topic notified, if any.
    pub topic_arn: Option<String>,
    /// Webhook notified, if any; a secret in most chat products, never logged.
    pub webhook_url: Option<String>,
    /// Longest wait for one webhook call.
    pub webhook_timeout: Duration,
    /// Whether notifications are also printed as JSON lines.
    pub console: bool,
    /// Alarm and recovery levels.
    pub detector: Detector,
}

impl Default for AlarmConfig {
    /// The workshop's tables and levels, with no notifier (which
    /// [`AlarmConfig::alarm`] refuses: set at least one).
    fn default() -> Self {
        Self {
            table_name: ALARM_TABLE.to_owned(),
            history_table_name: ALARM_HISTORY_TABLE.to_owned(),
            rejects_table_name: REJECTS_TABLE.to_owned(),
            topic_arn: None,
            webhook_url: None,
            webhook_timeout: DEFAULT_WEBHOOK_TIMEOUT,
            console: false,
            detector: Detector::default(),
        }
    }
}

impl fmt::Debug for AlarmConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AlarmConfig")
            .field("table_name", &self.table_name)
            .field("history_table_name", &self.history_table_name)
            .field("rejects_table_name", &self.rejects_table_name)
            .field("topic_arn", &self.topic_arn)
            .field("webhook_url", &self.webhook_url.as_ref().map(|_| "(set)"))
            .field("webhook_timeout", &self.webhook_timeout)
            .field("console", &self.console)
            .field("detector", &self.detector)
            .finish()
    }
}

impl AlarmConfig {
    /// Whether any notifier is configured: an alarm that tells no one is
    /// worse than none, so [`AlarmConfig::alarm`] refuses to build one.
    pub fn has_notifier(&self) -> bool {
        self.topic_arn.is_some() || self.webhook_url.is_some() || self.console
    }

    /// The notifiers configured: SNS, webhook, console, in that order.
    pub fn notifiers(&self, aws: &SdkConfig) -> Result<Vec<Arc<dyn Notifier>>, AlarmError> {
        let mut notifiers: Vec<Arc<dyn Notifier>> = Vec::new();
        if let Some(arn) = &self.topic_arn {
            notifiers.push(Arc::new(SnsNotifier::new(
                aws_sdk_sns::Client::new(aws),
                arn,
            )));
        }
        if let Some(url) = &self.webhook_url {
            notifiers.push(Arc::new(WebhookNotifier::new(url, self.webhook_timeout)?));
        }
        if self.console {
            notifiers.push(Arc::new(ConsoleNotifier::stdout()));
        }
        Ok(notifiers)
    }

    /// The alarm these settings describe, with clients built from `aws`;
    /// refused without a notifier.
    pub fn alarm(&self, aws: &SdkConfig) -> Result<MagicAlarm, AlarmError> {
        if !self.has_notifier() {
            return Err(AlarmError::NoNotifier);
        }
        let dynamodb = aws_sdk_dynamodb::Client::new(aws);
        MagicAlarm::new(
            self.detector,
            StateStore::new(dynamodb.clone(), &self.table_name)
                .with_history_table(&self.history_table_name),
            self.notifiers(aws)?,
            RejectStore::new(TableWriter::new(
                dynamodb,
                &self.rejects_table_name,
                WriterConfig::default(),
            )),
        )
    }

    /// The reader of these tables' transitions and open alarms (the
    /// operators' console's), with a client built from `aws`.
    pub fn history(&self, aws: &SdkConfig) -> AlarmHistory {
        AlarmHistory::new(
            aws_sdk_dynamodb::Client::new(aws),
            &self.table_name,
            &self.history_table_name,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_workshops_and_tell_no_one() {
        let c = AlarmConfig::default();
        assert_eq!(c.table_name, "WildRydesAlarmState");
        assert_eq!(c.history_table_name, "WildRydesAlarmHistory");
        assert_eq!(c.rejects_table_name, "UnicornSensorDataRejects");
        assert_eq!(
            (c.detector.threshold(), c.detector.recovery_level()),
            (50, 60)
        );
        assert!(!c.has_notifier());
    }

    #[tokio::test]
    async fn an_alarm_without_a_notifier_is_refused() {
        let aws = SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .build();
        let err = AlarmConfig::default().alarm(&aws).unwrap_err();
        assert!(matches!(err, AlarmError::NoNotifier), "{err}");
    }

    #[test]
    fn the_webhook_url_is_never_printed() {
        let c = AlarmConfig {
            webhook_url: Some("https://hooks.example.com/services/secret".into()),
            ..AlarmConfig::default()
        };
        assert!(!format!("{c:?}").contains("secret"));
    }
}
