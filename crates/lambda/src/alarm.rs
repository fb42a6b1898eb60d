//! `WildRydesAlarm` on Lambda: a Kinesis event in, [`MagicAlarm`] over its
//! records, `batchItemFailures` out (configure the trigger with
//! `ReportBatchItemFailures`). A thin adapter: the daemon calls the same
//! [`MagicAlarm::process`].
//!
//! Environment (read once, checked at start-up):
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `ALARM_TABLE_NAME` | per-unicorn alarm state, hash key `Name` (S); index `OpenAlarms` | `WildRydesAlarmState` |
//! | `ALARM_HISTORY_TABLE_NAME` | every transition, hash key `Name` (S), range key `StatusTime` (N) | `WildRydesAlarmHistory` |
//! | `ALARM_TOPIC_ARN` | SNS topic to publish to | none |
//! | `ALARM_WEBHOOK_URL` | URL to POST JSON to (a chat incoming webhook) | none |
//! | `ALARM_WEBHOOK_TIMEOUT_MS` | longest wait for one webhook call | 5000 |
//! | `ALARM_CONSOLE` | `true`: also print each notification as a JSON line | `false` |
//! | `MAGIC_THRESHOLD` | ALARM when magic points < this | 50 |
//! | `MAGIC_HYSTERESIS` | OK again when magic points >= threshold + this | 10 |
//! | `REJECTS_TABLE_NAME` | refused records | `UnicornSensorDataRejects` |
//! | `DEADLINE_MARGIN_MS` | time kept back from the deadline to answer | 1000 |
//!
//! At least one of `ALARM_TOPIC_ARN`, `ALARM_WEBHOOK_URL`, `ALARM_CONSOLE`
//! must be set: an alarm that tells no one refuses to start.

use std::time::{Duration, Instant as StdInstant};

use aws_lambda_events::event::streams::KinesisEventResponse;
use tokio::time::Instant;
use wildrydes_alarm::detector::{DEFAULT_HYSTERESIS, DEFAULT_THRESHOLD, Detector};
use wildrydes_alarm::notify::DEFAULT_WEBHOOK_TIMEOUT;
use wildrydes_alarm::{AlarmConfig, AlarmOutcome, MagicAlarm};
use wildrydes_core::names::{ALARM_HISTORY_TABLE, ALARM_TABLE, PipelineName, REJECTS_TABLE};

use crate::config::ConfigError;
use crate::kinesis::{self, ShardEvent};
use crate::telemetry::{self, Ending, Failure, Figure, Report};

/// The function's settings: the alarm's, and the time kept back to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// What the alarm judges with and whom it tells.
    pub alarm: AlarmConfig,
    /// Time kept back from the deadline to answer.
    pub deadline_margin: Duration,
}

impl Config {
    /// Reads the settings from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the settings through `get` (the environment, or a map in tests).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let set = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        let integer = |name: &'static str, default: i64, what: &'static str| match set(name) {
            None => Ok(default),
            Some(v) => v.trim().parse::<i64>().map_err(|_| ConfigError::Invalid {
                name,
                value: v,
                what,
            }),
        };
        let millis = |name: &'static str, default: Duration| {
            let default_ms = i64::try_from(default.as_millis()).unwrap_or(i64::MAX);
            let what = "a positive number of milliseconds";
            let ms = integer(name, default_ms, what)?;
            u64::try_from(ms)
                .ok()
                .filter(|ms| *ms > 0)
                .map(Duration::from_millis)
                .ok_or_else(|| ConfigError::Invalid {
                    name,
                    value: ms.to_string(),
                    what,
                })
        };
        let console = match set("ALARM_CONSOLE").map(|v| v.trim().to_ascii_lowercase()) {
            None => false,
            Some(v) if ["true", "1", "yes"].contains(&v.as_str()) => true,
            Some(v) if ["false", "0", "no"].contains(&v.as_str()) => false,
            Some(v) => {
                return Err(ConfigError::Invalid {
                    name: "ALARM_CONSOLE",
                    value: v,
                    what: "true or false",
                });
            }
        };
        let threshold = integer(
            "MAGIC_THRESHOLD",
            DEFAULT_THRESHOLD.into(),
            "a whole number of magic points (below it, ALARM)",
        )?;
        let hysteresis = integer(
            "MAGIC_HYSTERESIS",
            DEFAULT_HYSTERESIS.into(),
            "a whole number of magic points, 0 or more (OK again at threshold + hysteresis)",
        )?;
        let alarm = AlarmConfig {
            table_name: set("ALARM_TABLE_NAME").unwrap_or_else(|| ALARM_TABLE.to_owned()),
            history_table_name: set("ALARM_HISTORY_TABLE_NAME")
                .unwrap_or_else(|| ALARM_HISTORY_TABLE.to_owned()),
            rejects_table_name: set("REJECTS_TABLE_NAME")
                .unwrap_or_else(|| REJECTS_TABLE.to_owned()),
            topic_arn: set("ALARM_TOPIC_ARN").map(|v| v.trim().to_owned()),
            webhook_url: set("ALARM_WEBHOOK_URL").map(|v| v.trim().to_owned()),
            webhook_timeout: millis("ALARM_WEBHOOK_TIMEOUT_MS", DEFAULT_WEBHOOK_TIMEOUT)?,
            console,
            detector: Detector::new(threshold, hysteresis)?,
        };
        if !alarm.has_notifier() {
            return Err(ConfigError::Missing {
                name: "ALARM_TOPIC_ARN",
                what: "an SNS topic ARN (or set ALARM_WEBHOOK_URL to an http(s) URL, or ALARM_CONSOLE=true for a local run): an alarm that tells no one refuses to start",
            });
        }
        Ok(Self {
            alarm,
            deadline_margin: millis("DEADLINE_MARGIN_MS", Duration::from_secs(1))?,
        })
    }
}

/// Handles one invocation: judges the batch until `deadline` and names the
/// first record Lambda must deliver again, if any.
pub async fn handle(
    alarm: &MagicAlarm,
    event: ShardEvent,
    deadline: Instant,
) -> KinesisEventResponse {
    let started = StdInstant::now();
    let (source, records) = event.into_records();
    let outcome = alarm.process(&source, &records, deadline).await;
    let failed = outcome
        .first_failure
        .map(|i| records[i].sequence_number.as_str());
    log_outcome(&source.shard_id, &outcome, failed, started.elapsed());
    kinesis::response(failed)
}

/// One log line and one metrics document per invocation.
fn log_outcome(shard_id: &str, outcome: &AlarmOutcome, failed: Option<&str>, took: Duration) {
    telemetry::report(&Report {
        function: PipelineName::Alarm,
        shard_id,
        message: "batch judged",
        figures: &[
            Figure::count("records_in", outcome.records).metric("RecordsIn"),
            Figure::count("readings", outcome.readings),
            Figure::count("aggregates", outcome.aggregates),
            Figure::count("rejected", outcome.rejected).metric("Rejected"),
            Figure::count("stale", outcome.stale).metric("StaleObservations"),
            Figure::count("notifications", outcome.notified.len()).metric("Notifications"),
            Figure::count("races", outcome.races).metric("Races"),
            Figure::count("notify_retries", outcome.notify_retries).metric("NotifyRetries"),
        ],
        took,
        ending: failed.map_or(Ending::Complete, |resume_at| {
            Ending::Partial(Failure {
                resume_at,
                error: outcome.error.as_deref().unwrap_or_default(),
                message: "batch partly judged: Lambda will retry from resume_at",
            })
        }),
    });
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults_need_only_a_notifier() {
        let c = config(&[("ALARM_CONSOLE", "true")]).unwrap().alarm;
        assert_eq!(c.table_name, "WildRydesAlarmState");
        assert_eq!(c.history_table_name, "WildRydesAlarmHistory");
        assert_eq!(c.rejects_table_name, "UnicornSensorDataRejects");
        assert_eq!(
            (c.detector.threshold(), c.detector.recovery_level()),
            (50, 60)
        );
        assert!(c.console && c.topic_arn.is_none() && c.webhook_url.is_none());
    }

    #[test]
    fn without_a_notifier_the_function_says_what_to_set() {
        for vars in [
            &[][..],
            &[("ALARM_CONSOLE", "false"), ("ALARM_TOPIC_ARN", " ")][..],
        ] {
            let err = config(vars).unwrap_err().to_string();
            assert!(
                err.contains("ALARM_TOPIC_ARN is not set")
                    && err.contains("ALARM_WEBHOOK_URL")
                    && err.contains("ALARM_CONSOLE=true"),
                "{err}"
            );
        }
    }

    #[test]
    fn levels_and_notifiers_come_from_the_environment() {
        let c = config(&[
            (
                "ALARM_TOPIC_ARN",
                "arn:aws:sns:us-east-1:123456789012:wildrydes-alarm",
            ),
            (
                "ALARM_WEBHOOK_URL",
                "https://hooks.example.com/services/secret",
            ),
            ("MAGIC_THRESHOLD", "40"),
            ("MAGIC_HYSTERESIS", "0"),
            ("ALARM_TABLE_NAME", "Alarms"),
            ("ALARM_HISTORY_TABLE_NAME", "AlarmHistory"),
        ])
        .unwrap()
        .alarm;
        assert_eq!(
            (c.detector.threshold(), c.detector.recovery_level()),
            (40, 40)
        );
        assert_eq!(c.table_name, "Alarms");
        assert_eq!(c.history_table_name, "AlarmHistory");
        assert!(
            !format!("{c:?}").contains("secret"),
            "the webhook URL is never printed"
        );
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (vars, says) in [
            (
                &[("ALARM_CONSOLE", "maybe")][..],
                "environment variable ALARM_CONSOLE=\"maybe\" is not valid: expected true or false",
            ),
            (
                &[("ALARM_CONSOLE", "1"), ("MAGIC_THRESHOLD", "fifty")][..],
                "environment variable MAGIC_THRESHOLD=\"fifty\" is not valid",
            ),
            (
                &[("ALARM_CONSOLE", "1"), ("MAGIC_HYSTERESIS", "-5")][..],
                "hysteresis must be 0 or more",
            ),
            (
                &[("ALARM_CONSOLE", "1"), ("ALARM_WEBHOOK_TIMEOUT_MS", "0")][..],
                "ALARM_WEBHOOK_TIMEOUT_MS=\"0\" is not valid: expected a positive number of milliseconds",
            ),
        ] {
            let err = config(vars).unwrap_err().to_string();
            assert!(err.contains(says), "{err}");
        }
    }
}
