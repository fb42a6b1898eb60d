//! `StateStore`: each unicorn's alarm state in a DynamoDB table, changed only
//! by conditional writes, which is what makes one notification per
//! transition hold across retries, duplicates and concurrent invocations.
//!
//! Table `WildRydesAlarmState`, hash key `Name` (S), one item per unicorn:
//!
//! | attribute | meaning |
//! |---|---|
//! | `Version` (N) | bumped by every write; every write is conditioned on the version it read |
//! | `State` (S) | `ALARM` or `OK`; absent until the first transition (a unicorn never seen is OK) |
//! | `StatusTime` (N) | epoch ms of the figure that caused the last transition: anything not newer is stale |
//! | `MagicPoints` (N) | that figure |
//! | `LastTransition` (S) | RFC 3339 wall-clock time the transition was recorded |
//! | `NotificationId` (S) | the id of the notification sent for it |
//! | `Open` (S) | `ALARM` while the unicorn is in ALARM, absent otherwise: the key of the sparse index `OpenAlarms` (with `StatusTime`) |
//! | `PendingId`, `PendingOwner`, `PendingUntil` (S, S, N) | a claim: who is sending which notification, until when (epoch ms) |
//! | `Delivered` (SS) | under a claim: notifiers that already accepted it |
//!
//! A transition is *claimed* (a conditional write naming the owner) before
//! anything is sent, so two invocations racing on one unicorn never both
//! send; it is *committed* (state advanced, claim removed) only after every
//! notifier accepted it. See `alarm.rs` for the whole sequence.
//!
//! The commit is one TransactWriteItems: the state item's conditional Put
//! and the Put of the transition's item in the history table
//! (`WildRydesAlarmHistory`: `Name` S, `StatusTime` N; `State`,
//! `MagicPoints`, `RecordedAt` RFC 3339, `NotificationId`). Both land or
//! neither does; the history item's key is the figure's time, so a
//! transition committed again (a take-over after an expired claim) writes
//! the same item. `history.rs` reads both for the operators' console.

use std::collections::{BTreeSet, HashMap};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, CancellationReason, Put, TransactWriteItem};
use chrono::{DateTime, SecondsFormat, Utc};
use wildrydes_core::names::ALARM_HISTORY_TABLE;
use wildrydes_core::retry::classify_sdk;
use wildrydes_core::{StatusTime, UnicornName};

use crate::detector::AlarmState;
use crate::error::AlarmError;
use crate::notification::Notification;

/// Hash key of the alarm-state table (`names::ALARM_TABLE` by default): the unicorn's name, as in the sensor table.
pub const ALARM_TABLE_KEY: &str = "Name";

/// One unicorn's state as read from the table.
#[derive(Debug, Clone, PartialEq)]
pub struct UnicornState {
    /// The unicorn.
    pub name: UnicornName,
    /// The item's version; 0 when there is no item yet.
    pub version: u64,
    /// ALARM or OK; OK for a unicorn never seen.
    pub state: AlarmState,
    /// Time of the figure that caused the last transition; observations not
    /// newer than this were judged already.
    pub status_time: Option<StatusTime>,
    /// That figure.
    pub magic_points: Option<i16>,
    /// When that transition was recorded.
    pub last_transition: Option<DateTime<Utc>>,
    /// The id of the notification sent for it.
    pub notification_id: Option<String>,
    /// A transition being sent right now, if any.
    pub claim: Option<Claim>,
}

/// A transition someone is sending: held until `until`, then anyone may take
/// it over (its holder crashed or ran out of time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The notification id being sent.
    pub id: String,
    /// Who holds the claim: a random token per alarm instance.
    pub owner: String,
    /// Until when the holder may still be working on it.
    pub until: DateTime<Utc>,
    /// Notifiers that already accepted this notification; a take-over sends
    /// only to the others.
    pub delivered: BTreeSet<String>,
}

impl UnicornState {
    /// The state of a unicorn with no item: OK, nothing seen.
    pub fn new(name: UnicornName) -> Self {
        Self {
            name,
            version: 0,
            state: AlarmState::Ok,
            status_time: None,
            magic_points: None,
            last_transition: None,
            notification_id: None,
            claim: None,
        }
    }

    /// Whether an observation at `time` is older than (or as old as) the last
    /// transition, hence judged already.
    pub fn is_stale(&self, time: StatusTime) -> bool {
        self.status_time.is_some_and(|t| time <= t)
    }

    /// The claim of another owner that has not expired at `now`.
    pub fn live_claim_of_other(&self, me: &str, now: DateTime<Utc>) -> Option<&Claim> {
        self.claim
            .as_ref()
            .filter(|c| c.owner != me && c.until > now)
    }
}

/// What a conditional write came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Written {
    /// Written; the state as it now is.
    Done(UnicornState),
    /// The item changed since it was read: someone else moved first.
    Lost,
}

/// The alarm-state table, and the history table its commits write to.
#[derive(Debug, Clone)]
pub struct StateStore {
    /// The DynamoDB client.
    client: Client,
    /// The table's name.
    table: String,
    /// The history table's name: every commit puts its transition there in
    /// the same transaction.
    history_table: String,
}

/// Attribute names, of the state table and (`Name`, `StatusTime`, `State`,
/// `MagicPoints`, `RecordedAt`, `NotificationId`) of the history table.
pub(crate) mod attr {
    pub(crate) const NAME: &str = "Name";
    pub(crate) const VERSION: &str = "Version";
    pub(crate) const STATE: &str = "State";
    pub(crate) const STATUS_TIME: &str = "StatusTime";
    pub(crate) const MAGIC_POINTS: &str = "MagicPoints";
    pub(crate) const LAST_TRANSITION: &str = "LastTransition";
    pub(crate) const NOTIFICATION_ID: &str = "NotificationId";
    /// `ALARM` while in ALARM, else absent: the sparse index's hash key.
    pub(crate) const OPEN: &str = "Open";
    /// History items only: when the transition was committed.
    pub(crate) const RECORDED_AT: &str = "RecordedAt";
    pub(crate) const PENDING_ID: &str = "PendingId";
    pub(crate) const PENDING_OWNER: &str = "PendingOwner";
    pub(crate) const PENDING_UNTIL: &str = "PendingUntil";
    pub(crate) const DELIVERED: &str = "Delivered";
}

/// Cancellation reasons of a transaction that say it may go through if sent
/// again: another transaction held an item, or the table was throttled.
const TRANSIENT_CANCELLATIONS: [&str; 3] = [
    "TransactionConflict",
    "ThrottlingError",
    "ProvisionedThroughputExceeded",
];

type Item = HashMap<String, AttributeValue>;

impl StateStore {
    /// The store kept in `table` through `client`, committing transitions
    /// to the history table `names::ALARM_HISTORY_TABLE` too.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            history_table: ALARM_HISTORY_TABLE.to_owned(),
        }
    }

    /// The same store, committing transitions to `history_table`.
    pub fn with_history_table(mut self, history_table: impl Into<String>) -> Self {
        self.history_table = history_table.into();
        self
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The history table's name.
    pub fn history_table(&self) -> &str {
        &self.history_table
    }

    /// Reads `name`'s state (strongly consistent: a claim or commit made a
    /// moment ago by another invocation must be seen).
    pub async fn load(&self, name: &UnicornName) -> Result<UnicornState, AlarmError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(attr::NAME, AttributeValue::S(name.to_string()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.table_error("read", &self.table, name, &e, false))?;
        match output.item {
            None => Ok(UnicornState::new(name.clone())),
            Some(item) => self.state_of_item(name, &item),
        }
    }

    /// Claims the transition `claim` names, if `current` is still what the
    /// table holds.
    pub async fn claim(&self, current: &UnicornState, claim: Claim) -> Result<Written, AlarmError> {
        let mut next = current.clone();
        next.version += 1;
        next.claim = Some(claim);
        self.put_if_version(current, next, "claim", None, None)
            .await
    }

    /// Records the transition of `notification` as done: state advanced,
    /// claim removed, and the transition put in the history table, in one
    /// transaction. `claimed` is the state the claim wrote. Also refuses,
    /// should anything have let it through, a figure not newer than the
    /// state's; refused ([`Written::Lost`]), nothing is written.
    pub async fn commit(
        &self,
        claimed: &UnicornState,
        notification: &Notification,
    ) -> Result<Written, AlarmError> {
        let next = UnicornState {
            name: claimed.name.clone(),
            version: claimed.version + 1,
            state: notification.state,
            status_time: Some(notification.status_time),
            magic_points: Some(notification.magic_points),
            last_transition: Some(Utc::now()),
            notification_id: Some(notification.id.clone()),
            claim: None,
        };
        let history = history_item(&next);
        self.put_if_version(
            claimed,
            next,
            "commit",
            Some(notification.status_time),
            Some(history),
        )
        .await
    }

    /// Gives a claim up after a failed delivery, keeping which notifiers did
    /// accept, so that the next attempt (at once: the claim is expired) sends
    /// only to the others.
    pub async fn release(
        &self,
        claimed: &UnicornState,
        delivered: BTreeSet<String>,
    ) -> Result<Written, AlarmError> {
        let mut next = claimed.clone();
        next.version += 1;
        if let Some(claim) = &mut next.claim {
            claim.until = DateTime::<Utc>::UNIX_EPOCH;
            claim.delivered = delivered;
        }
        self.put_if_version(claimed, next, "release", None, None)
            .await
    }

    /// Puts `next` if the item is still at `current`'s version (and still
    /// claimed by the same owner, and, when `newer_than` is given, its
    /// `StatusTime` is older than that); with `history`, in one transaction
    /// with the Put of that item in the history table.
    async fn put_if_version(
        &self,
        current: &UnicornState,
        next: UnicornState,
        action: &'static str,
        newer_than: Option<StatusTime>,
        history: Option<Item>,
    ) -> Result<Written, AlarmError> {
        let mut names = HashMap::new();
        let mut values = HashMap::new();
        let mut condition = if current.version == 0 {
            names.insert("#n".to_owned(), attr::NAME.to_owned());
            "attribute_not_exists(#n)".to_owned()
        } else {
            names.insert("#v".into(), attr::VERSION.into());
            values.insert(":v".into(), AttributeValue::N(current.version.to_string()));
            "#v = :v".to_owned()
        };
        if let (Some(claim), true) = (&current.claim, action != "claim") {
            names.insert("#o".into(), attr::PENDING_OWNER.into());
            values.insert(":o".into(), AttributeValue::S(claim.owner.clone()));
            condition.push_str(" AND #o = :o");
        }
        if let Some(t) = newer_than {
            names.insert("#t".into(), attr::STATUS_TIME.into());
            values.insert(":t".into(), AttributeValue::N(t.epoch_millis().to_string()));
            condition.push_str(" AND (attribute_not_exists(#t) OR #t < :t)");
        }
        let values = (!values.is_empty()).then_some(values);
        let Some(history) = history else {
            let put = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(to_item(&next)))
                .condition_expression(condition)
                .set_expression_attribute_names(Some(names))
                .set_expression_attribute_values(values)
                .send()
                .await;
            return match put {
                Ok(_) => Ok(Written::Done(next)),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
                {
                    Ok(Written::Lost)
                }
                Err(e) => {
                    // A commit's transaction holding the item: sending again
                    // finds it done.
                    let conflict = e
                        .as_service_error()
                        .is_some_and(|s| s.is_transaction_conflict_exception());
                    Err(self.table_error(action, &self.table, &current.name, &e, conflict))
                }
            };
        };
        let unbuildable = |e: aws_sdk_dynamodb::error::BuildError| AlarmError::StateTable {
            action,
            table: self.table.clone(),
            unicorn: current.name.to_string(),
            message: e.to_string(),
            transient: false,
        };
        let state = Put::builder()
            .table_name(&self.table)
            .set_item(Some(to_item(&next)))
            .condition_expression(condition)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(values)
            .build()
            .map_err(unbuildable)?;
        let record = Put::builder()
            .table_name(&self.history_table)
            .set_item(Some(history))
            .build()
            .map_err(unbuildable)?;
        let written = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(state).build())
            .transact_items(TransactWriteItem::builder().put(record).build())
            .send()
            .await;
        let Err(e) = written else {
            return Ok(Written::Done(next));
        };
        // Either table may be the one at fault (missing, say): name both.
        let tables = format!("{} (history table {})", self.table, self.history_table);
        match e.as_service_error() {
            Some(TransactWriteItemsError::TransactionCanceledException(c)) => {
                match cancellation(c.cancellation_reasons()) {
                    Cancelled::StateChanged => Ok(Written::Lost),
                    Cancelled::Other { transient } => {
                        Err(self.table_error(action, &tables, &current.name, &e, transient))
                    }
                }
            }
            _ => Err(self.table_error(action, &tables, &current.name, &e, false)),
        }
    }

    /// The error of a failed call doing `action` on `name`'s state in `table`;
    /// `modeled_transient` says whether the operation's own error already
    /// names a failure worth sending again (core's classification adds the
    /// network, timeouts, throttling codes and 5xx).
    fn table_error<E>(
        &self,
        action: &'static str,
        table: &str,
        name: &UnicornName,
        e: &SdkError<E, HttpResponse>,
        modeled_transient: bool,
    ) -> AlarmError
    where
        E: std::error::Error + ProvideErrorMetadata + 'static,
    {
        AlarmError::StateTable {
            action,
            table: table.to_owned(),
            unicorn: name.to_string(),
            message: DisplayErrorContext(e).to_string(),
            transient: is_transient(e, modeled_transient),
        }
    }

    /// Reads an item back.
    fn state_of_item(&self, name: &UnicornName, item: &Item) -> Result<UnicornState, AlarmError> {
        let bad = |attribute| AlarmError::StateItem {
            table: self.table.clone(),
            unicorn: name.to_string(),
            attribute,
        };
        let s = |a: &'static str| item.get(a).and_then(|v| v.as_s().ok());
        let n = |a: &'static str| item.get(a).and_then(|v| v.as_n().ok());
        let number = |a: &'static str| -> Result<Option<i64>, AlarmError> {
            n(a).map(|v| v.parse::<i64>().map_err(|_| bad(a)))
                .transpose()
        };
        let version = number(attr::VERSION)?
            .and_then(|v| u64::try_from(v).ok())
            .ok_or_else(|| bad(attr::VERSION))?;
        let state = match s(attr::STATE) {
            None => AlarmState::Ok,
            Some(text) => text.parse().map_err(|()| bad(attr::STATE))?,
        };
        let status_time = number(attr::STATUS_TIME)?
            .map(|ms| StatusTime::from_epoch_millis(ms).map_err(|_| bad(attr::STATUS_TIME)))
            .transpose()?;
        let magic_points = number(attr::MAGIC_POINTS)?
            .map(|m| i16::try_from(m).map_err(|_| bad(attr::MAGIC_POINTS)))
            .transpose()?;
        let last_transition = s(attr::LAST_TRANSITION)
            .map(|t| {
                DateTime::parse_from_rfc3339(t)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|_| bad(attr::LAST_TRANSITION))
            })
            .transpose()?;
        let claim = match (s(attr::PENDING_ID), s(attr::PENDING_OWNER)) {
            (Some(id), Some(owner)) => {
                let until = number(attr::PENDING_UNTIL)?
                    .and_then(DateTime::<Utc>::from_timestamp_millis)
                    .ok_or_else(|| bad(attr::PENDING_UNTIL))?;
                let delivered = item
                    .get(attr::DELIVERED)
                    .and_then(|v| v.as_ss().ok())
                    .map(|ss| ss.iter().cloned().collect())
                    .unwrap_or_default();
                Some(Claim {
                    id: id.clone(),
                    owner: owner.clone(),
                    until,
                    delivered,
                })
            }
            _ => None,
        };
        Ok(UnicornState {
            name: name.clone(),
            version,
            state,
            status_time,
            magic_points,
            last_transition,
            notification_id: s(attr::NOTIFICATION_ID).cloned(),
            claim,
        })
    }
}

/// Whether a failed call may succeed if sent again (core's classification:
/// the network, a timeout, throttling, a server error; not a validation
/// error, a missing table or a denied permission).
fn is_transient<E: ProvideErrorMetadata>(
    e: &SdkError<E, HttpResponse>,
    modeled_transient: bool,
) -> bool {
    classify_sdk(e, modeled_transient).is_transient()
}

/// Why a commit's transaction was cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cancelled {
    /// The state item's condition failed (the first item): someone else
    /// moved first, as a conditional Put refused says.
    StateChanged,
    /// Anything else; `transient` when a reason is a conflict with another
    /// transaction or throttling.
    Other {
        /// Whether sending again may work.
        transient: bool,
    },
}

/// Reads the reasons of a cancelled commit, one per item in the order sent:
/// the state item's Put, then the history item's.
fn cancellation(reasons: &[CancellationReason]) -> Cancelled {
    let code = |r: &CancellationReason| r.code().unwrap_or("None").to_owned();
    if reasons.first().map(code).as_deref() == Some("ConditionalCheckFailed") {
        return Cancelled::StateChanged;
    }
    Cancelled::Other {
        transient: reasons
            .iter()
            .any(|r| TRANSIENT_CANCELLATIONS.contains(&code(r).as_str())),
    }
}

/// The history item of the transition `committed` records: its key is the
/// figure's time, so committing the same transition again puts the same
/// item.
fn history_item(committed: &UnicornState) -> Item {
    let mut item = Item::new();
    item.insert(
        attr::NAME.to_owned(),
        AttributeValue::S(committed.name.to_string()),
    );
    item.insert(
        attr::STATE.to_owned(),
        AttributeValue::S(committed.state.to_string()),
    );
    put_transition(&mut item, committed, attr::RECORDED_AT);
    item
}

/// The figures of `state`'s last transition, the time it was recorded
/// under `recorded_at`: what the state item and the history item share.
fn put_transition(item: &mut Item, state: &UnicornState, recorded_at: &str) {
    let mut put = |k: &str, v: AttributeValue| {
        item.insert(k.to_owned(), v);
    };
    if let Some(t) = state.status_time {
        put(
            attr::STATUS_TIME,
            AttributeValue::N(t.epoch_millis().to_string()),
        );
    }
    if let Some(m) = state.magic_points {
        put(attr::MAGIC_POINTS, AttributeValue::N(m.to_string()));
    }
    if let Some(t) = state.last_transition {
        put(
            recorded_at,
            AttributeValue::S(t.to_rfc3339_opts(SecondsFormat::Millis, true)),
        );
    }
    if let Some(id) = &state.notification_id {
        put(attr::NOTIFICATION_ID, AttributeValue::S(id.clone()));
    }
}

/// The item that stores `state`.
fn to_item(state: &UnicornState) -> Item {
    let mut item = Item::new();
    let mut put = |k: &str, v: AttributeValue| {
        item.insert(k.to_owned(), v);
    };
    put(attr::NAME, AttributeValue::S(state.name.to_string()));
    put(attr::VERSION, AttributeValue::N(state.version.to_string()));
    if state.status_time.is_some() {
        put(attr::STATE, AttributeValue::S(state.state.to_string()));
        // Every write carries it while in ALARM (a claim or a release puts
        // the whole item too), so the index lists exactly those.
        if state.state == AlarmState::Alarm {
            put(
                attr::OPEN,
                AttributeValue::S(AlarmState::Alarm.as_str().to_owned()),
            );
        }
    }
    if let Some(claim) = &state.claim {
        put(attr::PENDING_ID, AttributeValue::S(claim.id.clone()));
        put(attr::PENDING_OWNER, AttributeValue::S(claim.owner.clone()));
        put(
            attr::PENDING_UNTIL,
            AttributeValue::N(claim.until.timestamp_millis().to_string()),
        );
        if !claim.delivered.is_empty() {
            put(
                attr::DELIVERED,
                AttributeValue::Ss(claim.delivered.iter().cloned().collect()),
            );
        }
    }
    put_transition(&mut item, state, attr::LAST_TRANSITION);
    item
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> StateStore {
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version_latest()
            .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
            .build();
        StateStore::new(
            Client::from_conf(config),
            wildrydes_core::names::ALARM_TABLE,
        )
    }

    #[test]
    fn a_state_round_trips_through_its_item() {
        let name = UnicornName::new("Shadowfax").unwrap();
        let t = StatusTime::parse("2017-06-05 09:17:08.189").unwrap();
        let state = UnicornState {
            name: name.clone(),
            version: 7,
            state: AlarmState::Alarm,
            status_time: Some(t),
            magic_points: Some(45),
            last_transition: Some(
                DateTime::parse_from_rfc3339("2026-11-28T14:00:00.123Z")
                    .unwrap()
                    .with_timezone(&Utc),
            ),
            notification_id: Some("Shadowfax/ALARM/2017-06-05T09:17:08.189Z".into()),
            claim: Some(Claim {
                id: "Shadowfax/OK/2017-06-05T09:20:00.000Z".into(),
                owner: "abc".into(),
                until: DateTime::from_timestamp_millis(1_800_000_000_000).unwrap(),
                delivered: BTreeSet::from(["sns".to_owned()]),
            }),
        };
        let item = to_item(&state);
        assert_eq!(item["State"].as_s().unwrap(), "ALARM");
        assert_eq!(item["Open"].as_s().unwrap(), "ALARM", "listed as open");
        assert_eq!(item["StatusTime"].as_n().unwrap(), "1496654228189");
        assert_eq!(store().state_of_item(&name, &item).unwrap(), state);

        let ok = UnicornState {
            state: AlarmState::Ok,
            ..state
        };
        let item = to_item(&ok);
        assert!(!item.contains_key("Open"), "OK is not open");
        assert_eq!(store().state_of_item(&name, &item).unwrap(), ok);

        let fresh = UnicornState::new(name.clone());
        let item = to_item(&fresh);
        assert!(!item.contains_key("State"), "no state before a transition");
        assert!(!item.contains_key("Open"));
        assert_eq!(store().state_of_item(&name, &item).unwrap(), fresh);
    }

    #[test]
    fn a_history_item_is_keyed_by_the_figures_time() {
        let committed = UnicornState {
            name: UnicornName::new("Shadowfax").unwrap(),
            version: 2,
            state: AlarmState::Alarm,
            status_time: Some(StatusTime::parse("2017-06-05 09:17:08.189").unwrap()),
            magic_points: Some(45),
            last_transition: Some(
                DateTime::parse_from_rfc3339("2026-11-28T14:00:00.123Z")
                    .unwrap()
                    .with_timezone(&Utc),
            ),
            notification_id: Some("Shadowfax/ALARM/2017-06-05T09:17:08.189Z".into()),
            claim: None,
        };
        let item = history_item(&committed);
        let mut keys: Vec<&str> = item.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "MagicPoints",
                "Name",
                "NotificationId",
                "RecordedAt",
                "State",
                "StatusTime"
            ]
        );
        assert_eq!(item["StatusTime"].as_n().unwrap(), "1496654228189");
        assert_eq!(
            item["RecordedAt"].as_s().unwrap(),
            "2026-11-28T14:00:00.123Z"
        );
        assert_eq!(item["State"].as_s().unwrap(), "ALARM");
    }

    #[test]
    fn a_cancelled_commit_is_lost_only_when_the_state_changed() {
        let reason = |code: &str| CancellationReason::builder().code(code).build();
        assert_eq!(
            cancellation(&[reason("ConditionalCheckFailed"), reason("None")]),
            Cancelled::StateChanged
        );
        assert_eq!(
            cancellation(&[reason("None"), reason("TransactionConflict")]),
            Cancelled::Other { transient: true }
        );
        assert_eq!(
            cancellation(&[reason("ThrottlingError"), reason("None")]),
            Cancelled::Other { transient: true }
        );
        assert_eq!(
            cancellation(&[reason("None"), reason("ValidationError")]),
            Cancelled::Other { transient: false }
        );
        assert_eq!(cancellation(&[]), Cancelled::Other { transient: false });
    }

    #[test]
    fn a_foreign_item_is_refused_with_the_attribute_named() {
        let name = UnicornName::new("Shadowfax").unwrap();
        let mut item = to_item(&UnicornState::new(name.clone()));
        item.insert("State".into(), AttributeValue::S("PANIC".into()));
        let err = store().state_of_item(&name, &item).unwrap_err().to_string();
        assert!(err.contains("no valid State attribute"), "{err}");
        item.remove("Version");
        let err = store().state_of_item(&name, &item).unwrap_err().to_string();
        assert!(err.contains("no valid Version attribute"), "{err}");
    }

    #[test]
    fn stale_means_not_newer_than_the_last_transition() {
        let mut s = UnicornState::new(UnicornName::new("Shadowfax").unwrap());
        let t = StatusTime::from_epoch_millis(1_000).unwrap();
        assert!(
            !s.is_stale(t),
            "nothing is stale before the first transition"
        );
        s.status_time = Some(t);
        assert!(s.is_stale(t));
        assert!(s.is_stale(StatusTime::from_epoch_millis(999).unwrap()));
        assert!(!s.is_stale(StatusTime::from_epoch_millis(1_001).unwrap()));
    }
}
