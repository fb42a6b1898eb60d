//! `MinuteStore`: the aggregator's state, kept with the keys: one DynamoDB
//! item per unicorn and minute, for the horizon.
//!
//! State lives with the unicorn, not with the shard that read it, so
//! whichever consumer reads a unicorn next (after a split, a merge, a lease
//! takeover, a crash, in the next Lambda invocation) finds its open and
//! recent minutes. A consumer loads a unicorn once, when it first meets it
//! (one Query, newest minute first, stopping at the horizon), keeps it in
//! its [`MinuteWindow`], and writes back only the minutes that changed.
//!
//! Every write is conditional on the version it loaded (`Version`), so two
//! consumers that hold the same unicorn at once (a worker that lost its
//! lease and does not know it yet; a Lambda container with a stale cache)
//! cannot overwrite each other: the loser's write is refused, it forgets the
//! unicorn and reads its records again. Replaying is safe because a minute
//! remembers the millisecond of every reading it holds.
//!
//! Table: hash key `Unicorn` (S), range key `Minute` (N, epoch ms).
//! Attributes: `Figures` (B, see [`encode_figures`]), `Emitted` (BOOL),
//! `Version` (N), `Touched` (N, wall ms of the last reading folded in),
//! `ExpiresAt` (N, epoch s: the table's TTL, which only collects the
//! minutes of unicorns gone for good) and, while the minute is not emitted as
//! it stands, `Pending` (S, a bucket of the sparse index
//! [`PENDING_INDEX`], range key `Touched`): how the scheduled flush finds
//! the minutes of shards that fell quiet without scanning the table.

use std::ops::ControlFlow;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use futures::StreamExt as _;
use tokio::time::Instant;

use crate::item::Item;
use crate::name::UnicornName;
use crate::retry::{RetryPolicy, classify_sdk};
use crate::time::MINUTE_MS;
use crate::window::{DirtyMinute, MinuteState, minute_of};

/// The sparse index of minutes not yet emitted as they stand.
pub const PENDING_INDEX: &str = "Pending";

/// Buckets of the pending index's hash key: enough to spread a large fleet
/// over partitions, few enough to query each one every minute.
pub const PENDING_BUCKETS: u32 = 16;

/// How long a minute item outlives its last write, by default: past any
/// stream's default retention, so the TTL only collects unicorns that are
/// gone (the horizon, on event time, decides what counts).
pub const DEFAULT_STATE_TTL: Duration = Duration::from_secs(8 * 24 * 3600);

/// Why the store could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum MinuteStoreError {
    /// A call failed (after retries, for transient failures).
    #[error("cannot {action} ({subject}) in table {table}: {message}")]
    Table {
        /// What was being done.
        action: &'static str,
        /// Which unicorn, or which part of the table.
        subject: String,
        /// The table.
        table: String,
        /// The SDK's account.
        message: String,
    },
    /// An item is not a minute's state.
    #[error(
        "item of unicorn {name}, minute {minute}, in table {table} is not a minute's state ({reason}): delete it and replay the stream"
    )]
    Corrupt {
        /// The unicorn.
        name: String,
        /// The minute (epoch ms).
        minute: i64,
        /// The table.
        table: String,
        /// What was wrong.
        reason: String,
    },
}

/// What a save did.
#[derive(Debug, Default)]
pub struct Saved {
    /// Minutes written, with their new version.
    pub stored: Vec<(DirtyMinute, u64)>,
    /// Unicorns another consumer wrote first: forget them, and read their
    /// records again.
    pub conflicts: Vec<UnicornName>,
    /// The first failure, if anything could not be written.
    pub error: Option<MinuteStoreError>,
    /// Calls sent again after a transient failure.
    pub retries: u32,
}

impl Saved {
    /// Whether every minute was written.
    pub fn complete(&self) -> bool {
        self.conflicts.is_empty() && self.error.is_none()
    }
}

/// The aggregator's minutes, per unicorn, in a DynamoDB table.
#[derive(Debug, Clone)]
pub struct MinuteStore {
    client: Client,
    table: String,
    horizon: Duration,
    ttl: Duration,
    max_in_flight: usize,
    retry: RetryPolicy,
}

const KEY: &str = "Unicorn";
const RANGE: &str = "Minute";
/// Version byte of [`encode_figures`].
const FIGURES_V1: u8 = 1;

impl MinuteStore {
    /// The store in `table`, loading minutes within `horizon` of each
    /// unicorn's newest.
    pub fn new(client: Client, table: impl Into<String>, horizon: Duration) -> Self {
        Self {
            client,
            table: table.into(),
            horizon,
            ttl: DEFAULT_STATE_TTL,
            max_in_flight: 32,
            retry: RetryPolicy::default(),
        }
    }

    /// The same store with another TTL for its items.
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The stored minutes of each of `names` within the horizon of its
    /// newest; a unicorn never stored has none.
    pub async fn load(
        &self,
        names: &[UnicornName],
        deadline: Instant,
    ) -> Result<Vec<(UnicornName, Vec<(i64, MinuteState)>)>, MinuteStoreError> {
        let loads = futures::stream::iter(names.iter().cloned())
            .map(|name| async move {
                let minutes = self.load_one(&name, deadline).await?;
                Ok((name, minutes))
            })
            .buffer_unordered(self.max_in_flight);
        loads.collect::<Vec<_>>().await.into_iter().collect()
    }

    async fn load_one(
        &self,
        name: &UnicornName,
        deadline: Instant,
    ) -> Result<Vec<(i64, MinuteState)>, MinuteStoreError> {
        let horizon_ms = i64::try_from(self.horizon.as_millis()).unwrap_or(i64::MAX);
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#u = :u")
            .expression_attribute_names("#u", KEY)
            .expression_attribute_values(":u", AttributeValue::S(name.to_string()))
            .scan_index_forward(false)
            .consistent_read(true);
        let subject = format!("unicorn {name}");
        let mut minutes = Vec::new();
        let mut forget_before = None;
        self.query_pages(query, "load minutes", &subject, deadline, |items| {
            for item in items {
                let (minute, state) = self.decode(name, item)?;
                // Newest first: the first item's last reading is the clock.
                let cutoff = *forget_before.get_or_insert_with(|| {
                    let last = state.seen.last().map_or(0, |&o| i64::from(o));
                    (minute + last).saturating_sub(horizon_ms)
                });
                if minute + MINUTE_MS <= cutoff {
                    return Ok(ControlFlow::Break(()));
                }
                minutes.push((minute, state));
            }
            Ok(ControlFlow::Continue(()))
        })
        .await?;
        Ok(minutes)
    }

    /// Writes `minutes`, each conditional on the version it was loaded or
    /// last stored under, at wall time `now_ms`.
    pub async fn save(&self, minutes: Vec<DirtyMinute>, now_ms: i64, deadline: Instant) -> Saved {
        let writes = futures::stream::iter(minutes)
            .map(|minute| async move {
                let result = self.save_one(&minute, now_ms, deadline).await;
                (minute, result)
            })
            .buffer_unordered(self.max_in_flight);
        let results: Vec<_> = writes.collect().await;
        let mut saved = Saved::default();
        for (minute, result) in results {
            match result {
                Ok((version, retries)) => {
                    saved.retries += retries;
                    saved.stored.push((minute, version));
                }
                Err(SaveError::Conflict) => {
                    if !saved.conflicts.contains(&minute.name) {
                        saved.conflicts.push(minute.name);
                    }
                }
                Err(SaveError::Failed(e)) => {
                    saved.error.get_or_insert(e);
                }
            }
        }
        saved
    }

    async fn save_one(
        &self,
        minute: &DirtyMinute,
        now_ms: i64,
        deadline: Instant,
    ) -> Result<(u64, u32), SaveError> {
        let state = &minute.state;
        let version = state.version + 1;
        let expires = now_ms / 1000 + i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX / 2);
        let mut request = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(KEY, AttributeValue::S(minute.name.to_string()))
            .item(RANGE, AttributeValue::N(minute.minute_ms.to_string()))
            .item(
                "Figures",
                AttributeValue::B(Blob::new(encode_figures(state))),
            )
            .item("Emitted", AttributeValue::Bool(state.emitted))
            .item("Version", AttributeValue::N(version.to_string()))
            .item("Touched", AttributeValue::N(state.touched_ms.to_string()))
            .item("ExpiresAt", AttributeValue::N(expires.to_string()));
        if !state.emitted {
            request = request.item("Pending", AttributeValue::S(pending_bucket(&minute.name)));
        }
        request = if state.version == 0 {
            request.condition_expression("attribute_not_exists(#u)")
        } else {
            request
                .condition_expression("attribute_exists(#u) AND #v = :v")
                .expression_attribute_names("#v", "Version")
                .expression_attribute_values(":v", AttributeValue::N(state.version.to_string()))
        }
        .expression_attribute_names("#u", KEY);
        let mut attempt = 0;
        loop {
            match request.clone().send().await {
                Ok(_) => return Ok((version, attempt)),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
                {
                    return Err(SaveError::Conflict);
                }
                Err(e) => {
                    let failed = || {
                        SaveError::Failed(self.error(
                            "save minute",
                            &format!("unicorn {}, minute {}", minute.name, minute.minute_ms),
                            &e,
                        ))
                    };
                    attempt += 1;
                    if !self.may_retry(&e, attempt, deadline).await {
                        return Err(failed());
                    }
                }
            }
        }
    }

    /// The unicorns with a minute not emitted as it stands whose last
    /// reading was folded in at or before wall time `touched_before_ms`:
    /// what a scheduled flush must emit for shards that fell quiet.
    pub async fn pending(
        &self,
        touched_before_ms: i64,
        deadline: Instant,
    ) -> Result<Vec<UnicornName>, MinuteStoreError> {
        let mut names = Vec::new();
        for bucket in 0..PENDING_BUCKETS {
            let query = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(PENDING_INDEX)
                .key_condition_expression("Pending = :p AND Touched <= :t")
                .expression_attribute_values(":p", AttributeValue::S(bucket.to_string()))
                .expression_attribute_values(":t", AttributeValue::N(touched_before_ms.to_string()))
                .projection_expression("#u")
                .expression_attribute_names("#u", KEY);
            let subject = format!("bucket {bucket} of index {PENDING_INDEX}");
            self.query_pages(query, "list pending minutes", &subject, deadline, |items| {
                for item in items {
                    if let Some(name) = item.get(KEY).and_then(|v| v.as_s().ok())
                        && let Ok(name) = UnicornName::new(name)
                        && !names.contains(&name)
                    {
                        names.push(name);
                    }
                }
                Ok(ControlFlow::Continue(()))
            })
            .await?;
        }
        Ok(names)
    }

    /// Runs `query` page by page, each page a read retried like any other,
    /// and hands each page's items to `each` until it breaks or the pages
    /// end.
    async fn query_pages(
        &self,
        query: QueryFluentBuilder,
        action: &'static str,
        subject: &str,
        deadline: Instant,
        mut each: impl FnMut(&[Item]) -> Result<ControlFlow<()>, MinuteStoreError>,
    ) -> Result<(), MinuteStoreError> {
        let mut start_key = None;
        loop {
            let request = query.clone().set_exclusive_start_key(start_key.take());
            let page = self
                .call(action, subject, deadline, || request.clone().send())
                .await?;
            if each(page.items())?.is_break() {
                return Ok(());
            }
            match page.last_evaluated_key {
                Some(key) => start_key = Some(key),
                None => return Ok(()),
            }
        }
    }

    /// Sends a read, retrying transient failures within the deadline.
    async fn call<T, E, F>(
        &self,
        action: &'static str,
        subject: &str,
        deadline: Instant,
        send: impl Fn() -> F,
    ) -> Result<T, MinuteStoreError>
    where
        F: Future<Output = Result<T, SdkError<E, aws_sdk_dynamodb::config::http::HttpResponse>>>,
        E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
    {
        let mut attempt = 0;
        loop {
            match send().await {
                Ok(out) => return Ok(out),
                Err(e) => {
                    attempt += 1;
                    if !self.may_retry(&e, attempt, deadline).await {
                        return Err(self.error(action, subject, &e));
                    }
                }
            }
        }
    }

    /// Whether to try again after the `attempt`-th failure, `e`: only a
    /// transient one, and only if the policy's backoff ends before `deadline`
    /// (it is waited out here).
    async fn may_retry<E: aws_sdk_dynamodb::error::ProvideErrorMetadata>(
        &self,
        e: &SdkError<E, aws_sdk_dynamodb::config::http::HttpResponse>,
        attempt: u32,
        deadline: Instant,
    ) -> bool {
        classify_sdk(e, false).is_transient() && self.retry.backoff(attempt, deadline).await
    }

    fn error<E: std::error::Error + 'static>(
        &self,
        action: &'static str,
        subject: &str,
        e: &SdkError<E, aws_sdk_dynamodb::config::http::HttpResponse>,
    ) -> MinuteStoreError {
        MinuteStoreError::Table {
            action,
            subject: subject.to_owned(),
            table: self.table.clone(),
            message: DisplayErrorContext(e).to_string(),
        }
    }

    fn decode(
        &self,
        name: &UnicornName,
        item: &Item,
    ) -> Result<(i64, MinuteState), MinuteStoreError> {
        let minute = item
            .get(RANGE)
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse::<i64>().ok())
            .unwrap_or(i64::MIN);
        let corrupt = |reason: &str| MinuteStoreError::Corrupt {
            name: name.to_string(),
            minute,
            table: self.table.clone(),
            reason: reason.to_owned(),
        };
        if minute == i64::MIN || minute_of(minute) != minute {
            return Err(corrupt("Minute is not a minute's start"));
        }
        let number = |key: &str| {
            item.get(key)
                .and_then(|v| v.as_n().ok())
                .and_then(|n| n.parse::<i64>().ok())
        };
        let figures = item
            .get("Figures")
            .and_then(|v| v.as_b().ok())
            .ok_or_else(|| corrupt("no Figures"))?;
        let mut state = decode_figures(figures.as_ref()).map_err(corrupt)?;
        state.emitted = item
            .get("Emitted")
            .and_then(|v| v.as_bool().ok())
            .copied()
            .ok_or_else(|| corrupt("no Emitted"))?;
        state.version = number("Version")
            .and_then(|v| u64::try_from(v).ok())
            .ok_or_else(|| corrupt("no Version"))?;
        state.touched_ms = number("Touched").ok_or_else(|| corrupt("no Touched"))?;
        Ok((minute, state))
    }
}

enum SaveError {
    Conflict,
    Failed(MinuteStoreError),
}

/// The pending index bucket of `name`: a stable hash (FNV-1a), the same in
/// every build, so every writer agrees.
pub fn pending_bucket(name: &UnicornName) -> String {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in name.as_str().bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    (hash % PENDING_BUCKETS).to_string()
}

/// A minute's figures and reading offsets as bytes: version, distance
/// (i64), min/max magic, min/max health (i16 each), then one u16 per
/// reading, all little-endian. 17 + 2 bytes per reading: 137 for a full
/// minute at one reading a second.
pub fn encode_figures(state: &MinuteState) -> Vec<u8> {
    let mut out = Vec::with_capacity(17 + 2 * state.seen.len());
    out.push(FIGURES_V1);
    out.extend_from_slice(&state.distance.to_le_bytes());
    for v in [
        state.min_magic,
        state.max_magic,
        state.min_health,
        state.max_health,
    ] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    for o in &state.seen {
        out.extend_from_slice(&o.to_le_bytes());
    }
    out
}

/// The inverse of [`encode_figures`]; `emitted`, `touched_ms` and `version`
/// are left at their defaults (they are attributes of their own).
pub fn decode_figures(bytes: &[u8]) -> Result<MinuteState, &'static str> {
    let Some((&FIGURES_V1, rest)) = bytes.split_first() else {
        return Err("Figures has an unknown version");
    };
    if rest.len() < 16 || (rest.len() - 16) % 2 != 0 {
        return Err("Figures has the wrong length");
    }
    let i16_at = |at: usize| i16::from_le_bytes([rest[at], rest[at + 1]]);
    let mut distance = [0u8; 8];
    distance.copy_from_slice(&rest[..8]);
    let seen: Vec<u16> = rest[16..]
        .chunks_exact(2)
        .map(|p| u16::from_le_bytes([p[0], p[1]]))
        .collect();
    if seen.is_empty() || seen.windows(2).any(|w| w[0] >= w[1]) || seen[seen.len() - 1] >= 60_000 {
        return Err("Figures' reading offsets are not sorted offsets in a minute");
    }
    Ok(MinuteState {
        distance: i64::from_le_bytes(distance),
        min_magic: i16_at(8),
        max_magic: i16_at(10),
        min_health: i16_at(12),
        max_health: i16_at(14),
        seen,
        emitted: false,
        touched_ms: 0,
        version: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn figures_round_trip(
            distance in any::<i64>(),
            vitals in any::<(i16, i16, i16, i16)>(),
            offsets in prop::collection::btree_set(0u16..60_000, 1..200),
        ) {
            let state = MinuteState {
                distance,
                min_magic: vitals.0,
                max_magic: vitals.1,
                min_health: vitals.2,
                max_health: vitals.3,
                seen: offsets.into_iter().collect(),
                emitted: false,
                touched_ms: 0,
                version: 0,
            };
            let bytes = encode_figures(&state);
            prop_assert_eq!(bytes.len(), 17 + 2 * state.seen.len());
            prop_assert_eq!(decode_figures(&bytes).unwrap(), state);
        }

        #[test]
        fn any_bytes_decode_or_are_refused(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode_figures(&bytes);
        }
    }

    #[test]
    fn buckets_are_stable_and_in_range() {
        let name = UnicornName::new("Shadowfax").unwrap();
        let bucket: u32 = pending_bucket(&name).parse().unwrap();
        assert!(bucket < PENDING_BUCKETS);
        assert_eq!(pending_bucket(&name), pending_bucket(&name.clone()));
    }
}
