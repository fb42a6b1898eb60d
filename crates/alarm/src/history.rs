//! `AlarmHistory`: what the operators' console reads, each by one Query and
//! never a Scan: every transition of a unicorn, newest first (the history
//! table `WildRydesAlarmHistory`, which `StateStore::commit` writes in the
//! same transaction as the state), and the unicorns in ALARM now, newest
//! first (the sparse index `OpenAlarms` of `WildRydesAlarmState`, whose
//! items carry `Open` = `ALARM` only while in ALARM).
//!
//! Both are eventually consistent: a transition committed a moment ago may
//! show a moment later (a global secondary index is never read
//! consistently). A unicorn already in ALARM when this index was added is
//! listed from its next write (its next claim or commit) on.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Serialize, Serializer};
use wildrydes_core::names::ALARM_OPEN_INDEX;
use wildrydes_core::retry::classify_sdk;
use wildrydes_core::{StatusTime, UnicornName};

use crate::detector::AlarmState;
use crate::error::AlarmError;
use crate::store::attr;

/// One transition of one unicorn, as the console shows it. Serialised in
/// camelCase: `{"name":"Shadowfax","state":"ALARM","statusTime":"2017-06-05
/// 09:17:08.189","magicPoints":45,"recordedAt":"2026-11-28T14:00:00.123Z",
/// "notificationId":"Shadowfax/ALARM/2017-06-05T09:17:08.189Z"}`, the
/// `statusTime` in the workshop's format, `null` for what the item lacks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Transition {
    /// The unicorn.
    pub name: UnicornName,
    /// The state it went into.
    pub state: AlarmState,
    /// When the figure that caused it was measured (the history's range key).
    pub status_time: StatusTime,
    /// That figure: a reading's magic points, an aggregate's minimum.
    pub magic_points: Option<i16>,
    /// When the alarm committed it (wall clock).
    #[serde(serialize_with = "rfc3339")]
    pub recorded_at: Option<DateTime<Utc>>,
    /// The id of the notification sent for it.
    pub notification_id: Option<String>,
}

/// The readers of the alarm's history and of its open alarms.
#[derive(Debug, Clone)]
pub struct AlarmHistory {
    /// The DynamoDB client.
    client: Client,
    /// The alarm-state table, whose index `OpenAlarms` lists the open alarms.
    state_table: String,
    /// The table of every transition.
    history_table: String,
}

type Item = HashMap<String, AttributeValue>;

impl AlarmHistory {
    /// Reads the open alarms from `state_table`'s index `OpenAlarms`
    /// (`names::ALARM_OPEN_INDEX`) and the transitions from `history_table`.
    pub fn new(
        client: Client,
        state_table: impl Into<String>,
        history_table: impl Into<String>,
    ) -> Self {
        Self {
            client,
            state_table: state_table.into(),
            history_table: history_table.into(),
        }
    }

    /// The last `limit` transitions of `name`, newest first (none when
    /// `limit` < 1).
    pub async fn transitions(
        &self,
        name: &UnicornName,
        limit: i32,
    ) -> Result<Vec<Transition>, AlarmError> {
        let query = self
            .client
            .query()
            .table_name(&self.history_table)
            .key_condition_expression("#n = :n")
            .expression_attribute_names("#n", attr::NAME)
            .expression_attribute_values(":n", AttributeValue::S(name.to_string()))
            .scan_index_forward(false);
        let what = format!("the transitions of unicorn {name}");
        self.collect(query, &what, &self.history_table, attr::RECORDED_AT, limit)
            .await
    }

    /// The unicorns in ALARM, at most `limit` (none when `limit` < 1), the
    /// most recent transition into ALARM first; each as the transition that
    /// opened its alarm.
    pub async fn open(&self, limit: i32) -> Result<Vec<Transition>, AlarmError> {
        let query = self
            .client
            .query()
            .table_name(&self.state_table)
            .index_name(ALARM_OPEN_INDEX)
            .key_condition_expression("#open = :alarm")
            .expression_attribute_names("#open", attr::OPEN)
            .expression_attribute_values(
                ":alarm",
                AttributeValue::S(AlarmState::Alarm.as_str().to_owned()),
            )
            .scan_index_forward(false);
        let what = format!("the open alarms (index {ALARM_OPEN_INDEX})");
        self.collect(
            query,
            &what,
            &self.state_table,
            attr::LAST_TRANSITION,
            limit,
        )
        .await
    }

    /// Runs `query` page after page until it has `limit` items or there are
    /// no more; `recorded_at` names the attribute of the commit's time.
    async fn collect(
        &self,
        query: QueryFluentBuilder,
        what: &str,
        table: &str,
        recorded_at: &'static str,
        limit: i32,
    ) -> Result<Vec<Transition>, AlarmError> {
        let mut found = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let remaining = limit.saturating_sub(i32::try_from(found.len()).unwrap_or(i32::MAX));
            if remaining < 1 {
                return Ok(found);
            }
            let page = query
                .clone()
                .limit(remaining)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| AlarmError::History {
                    what: what.to_owned(),
                    table: table.to_owned(),
                    message: DisplayErrorContext(&e).to_string(),
                    transient: classify_sdk(&e, false).is_transient(),
                })?;
            for item in page.items() {
                found.push(transition_of_item(item, table, recorded_at)?);
            }
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(found),
            }
        }
    }
}

/// Reads a history item, or a state item of the index, as a transition.
fn transition_of_item(
    item: &Item,
    table: &str,
    recorded_at: &'static str,
) -> Result<Transition, AlarmError> {
    let s = |a: &'static str| item.get(a).and_then(|v| v.as_s().ok());
    let n = |a: &'static str| item.get(a).and_then(|v| v.as_n().ok());
    let unicorn = s(attr::NAME).cloned().unwrap_or_default();
    let bad = |attribute| AlarmError::TransitionItem {
        table: table.to_owned(),
        unicorn: unicorn.clone(),
        attribute,
    };
    let name = UnicornName::new(&unicorn).map_err(|_| bad(attr::NAME))?;
    let state = s(attr::STATE)
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| bad(attr::STATE))?;
    let status_time = n(attr::STATUS_TIME)
        .and_then(|t| t.parse::<i64>().ok())
        .and_then(|ms| StatusTime::from_epoch_millis(ms).ok())
        .ok_or_else(|| bad(attr::STATUS_TIME))?;
    let magic_points = n(attr::MAGIC_POINTS)
        .map(|m| m.parse::<i16>().map_err(|_| bad(attr::MAGIC_POINTS)))
        .transpose()?;
    let recorded_at = s(recorded_at)
        .map(|t| {
            DateTime::parse_from_rfc3339(t)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| bad(recorded_at))
        })
        .transpose()?;
    Ok(Transition {
        name,
        state,
        status_time,
        magic_points,
        recorded_at,
        notification_id: s(attr::NOTIFICATION_ID).cloned(),
    })
}

/// `recorded_at` as the tables hold it: RFC 3339 in UTC, milliseconds.
fn rfc3339<S: Serializer>(t: &Option<DateTime<Utc>>, serializer: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => serializer.collect_str(&t.to_rfc3339_opts(SecondsFormat::Millis, true)),
        None => serializer.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history_item() -> Item {
        [
            ("Name", AttributeValue::S("Shadowfax".into())),
            ("State", AttributeValue::S("ALARM".into())),
            ("StatusTime", AttributeValue::N("1496654228189".into())),
            ("MagicPoints", AttributeValue::N("45".into())),
            (
                "RecordedAt",
                AttributeValue::S("2026-11-28T14:00:00.123Z".into()),
            ),
            (
                "NotificationId",
                AttributeValue::S("Shadowfax/ALARM/2017-06-05T09:17:08.189Z".into()),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    #[test]
    fn a_transition_serialises_in_camel_case() {
        let t = transition_of_item(&history_item(), "WildRydesAlarmHistory", "RecordedAt").unwrap();
        assert_eq!(
            serde_json::to_value(&t).unwrap(),
            serde_json::json!({
                "name": "Shadowfax",
                "state": "ALARM",
                "statusTime": "2017-06-05 09:17:08.189",
                "magicPoints": 45,
                "recordedAt": "2026-11-28T14:00:00.123Z",
                "notificationId": "Shadowfax/ALARM/2017-06-05T09:17:08.189Z",
            })
        );
        let mut bare = history_item();
        bare.retain(|k, _| ["Name", "State", "StatusTime"].contains(&k.as_str()));
        let t = transition_of_item(&bare, "WildRydesAlarmHistory", "RecordedAt").unwrap();
        let json = serde_json::to_value(&t).unwrap();
        assert_eq!(json["recordedAt"], serde_json::Value::Null);
        assert_eq!(json["magicPoints"], serde_json::Value::Null);
    }

    #[test]
    fn a_foreign_item_is_refused_with_the_attribute_named() {
        let mut item = history_item();
        item.insert("State".into(), AttributeValue::S("PANIC".into()));
        let err = transition_of_item(&item, "WildRydesAlarmHistory", "RecordedAt")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "a transition of unicorn Shadowfax in table WildRydesAlarmHistory has no valid State attribute: was it written by another program?"
        );
        let mut item = history_item();
        item.remove("StatusTime");
        let err = transition_of_item(&item, "WildRydesAlarmHistory", "RecordedAt")
            .unwrap_err()
            .to_string();
        assert!(err.contains("no valid StatusTime attribute"), "{err}");
    }
}
