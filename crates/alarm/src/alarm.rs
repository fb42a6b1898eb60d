//! `MagicAlarm`: the alarm's batch logic, shared by the Lambda function and
//! the daemon (`wildrydes-daemon alarm`): records of one shard in, one
//! notification per transition out, and the first record not durably handled
//! back, so the caller resumes from exactly there.
//!
//! Per batch:
//! 1. each record is parsed as a reading, else as an aggregate; a record that
//!    is neither is stored as a reject (pipeline `alarm`) and the batch goes on;
//! 2. observations are grouped per unicorn and sorted by `StatusTime` (a batch
//!    may hold many seconds of one unicorn, not necessarily in order);
//! 3. per unicorn, the state is read once (strongly consistent), observations
//!    not newer than its last transition are dropped as already judged, and
//!    the [`Detector`] walks the rest in memory: only transitions cost a write.
//!
//! Per transition:
//! 1. **claim** it: a conditional write (on the version read) naming this
//!    invocation as the one sending it. Losing that race means another
//!    invocation moved first: re-read, and wait while its claim is live;
//! 2. **notify** every notifier that has not accepted it yet, retrying with
//!    backoff within the invocation's time;
//! 3. only after all accepted, **commit**: a conditional write (on the
//!    version and owner of the claim, and on the figure being newer than the
//!    state's) that advances the state and removes the claim.
//!
//! A delivery that still fails gives the claim back (recording which
//! notifiers did accept, so the retry sends only to the others) and that
//! record becomes the batch's first failure: Lambda delivers it again, the
//! notification is never silently lost.
//!
//! Residual window, by design at least once: if the process dies after a
//! notifier accepted and before the commit (or the commit keeps failing), the
//! claim expires and a retry sends the same transition again. The
//! notification id (unicorn + state + reading time) is the same both times,
//! so receivers can dedupe on it. Duplicated records, retried batches,
//! readings older than the state and concurrent invocations never cause a
//! second notification.
//!
//! What "older than the state" means: older than the figure that caused the
//! last *transition*, the only time kept per unicorn (keeping the newest
//! figure seen would cost a write per unicorn per batch). A reading that
//! arrives late but is newer than the last transition is judged like any
//! other.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::Utc;
use futures::StreamExt as _;
use tokio::time::Instant;
use wildrydes_core::UnicornName;
use wildrydes_core::input::{ShardSource, SourceRecord};
use wildrydes_core::names::PipelineName;
use wildrydes_core::rejects::{Reject, RejectStore};
use wildrydes_core::retry::RetryPolicy;

use crate::detector::Detector;
use crate::error::AlarmError;
use crate::notification::Notification;
use crate::notify::Notifier;
use crate::observation::{Observation, Shape};
use crate::store::{Claim, StateStore, UnicornState, Written};

/// The name under which the alarm stores its rejects.
const PIPELINE: PipelineName = PipelineName::Alarm;

/// How the alarm retries and waits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlarmSettings {
    /// Retries of a notifier that did not accept, within one invocation.
    pub notify_retry: RetryPolicy,
    /// Retries of a state-table call that failed (after the SDK's own).
    pub store_retry: RetryPolicy,
    /// Pauses while another invocation holds a unicorn's claim (at least
    /// 1 ms each); `max_attempts` of `u32::MAX` leaves only the deadline to
    /// bound them.
    pub claim_poll: RetryPolicy,
    /// Longest a claim is held. Past it (plus [`CLAIM_GRACE`]) another
    /// invocation may take the transition over, so this invocation starts no
    /// delivery after it.
    pub max_claim: Duration,
    /// Unicorns handled at once.
    pub max_unicorns_in_flight: usize,
}

/// Kept on top of a claim's working time before others may take it over: a
/// notifier call started just before the end may still be answering, and
/// clocks of hosts differ a little.
pub const CLAIM_GRACE: Duration = Duration::from_secs(10);

/// Shortest pause between two reads of a unicorn claimed by another
/// invocation: full jitter may draw a wait of zero.
const MIN_CLAIM_POLL: Duration = Duration::from_millis(1);

impl Default for AlarmSettings {
    fn default() -> Self {
        Self {
            notify_retry: RetryPolicy {
                max_attempts: 5,
                base_delay: Duration::from_millis(200),
                max_delay: Duration::from_secs(5),
            },
            store_retry: RetryPolicy {
                max_attempts: 3,
                base_delay: Duration::from_millis(50),
                max_delay: Duration::from_secs(1),
            },
            claim_poll: RetryPolicy {
                max_attempts: u32::MAX,
                base_delay: Duration::from_millis(20),
                max_delay: Duration::from_millis(500),
            },
            max_claim: Duration::from_secs(60),
            max_unicorns_in_flight: 16,
        }
    }
}

/// What became of a batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlarmOutcome {
    /// Records in the batch.
    pub records: usize,
    /// Records that were per-second readings.
    pub readings: usize,
    /// Records that were per-minute aggregates.
    pub aggregates: usize,
    /// Records refused and stored as rejects.
    pub rejected: usize,
    /// Observations not newer than their unicorn's last transition: judged
    /// already (duplicates, replays, late arrivals).
    pub stale: usize,
    /// Ids of the notifications this call sent and recorded, per unicorn in
    /// time order.
    pub notified: Vec<String>,
    /// Times another invocation had moved first (a claim lost, or waited for).
    pub races: usize,
    /// Notifier calls sent again.
    pub notify_retries: u32,
    /// The first record (index into the batch) not durably handled; it and
    /// everything after it must be delivered again.
    pub first_failure: Option<usize>,
    /// Why that record failed, for the log.
    pub error: Option<String>,
}

/// The alarm: per-unicorn state, notifiers and rejects.
#[derive(Debug)]
pub struct MagicAlarm {
    /// When a figure is a transition.
    detector: Detector,
    /// Where each unicorn's state is kept.
    store: StateStore,
    /// Who is told; names are distinct.
    notifiers: Vec<Arc<dyn Notifier>>,
    /// Where refused records go.
    rejects: RejectStore,
    /// Retries and waits.
    settings: AlarmSettings,
    /// Random per instance; with `calls`, the owner of this call's claims.
    instance: String,
    /// Calls so far: every call owns its claims under its own name, so two
    /// calls of one instance (two shards of a daemon) exclude each other too.
    calls: AtomicU64,
}

/// One unicorn's share of a batch: (index in the batch, observation).
type Group = (UnicornName, Vec<(usize, Observation)>);

/// What became of one unicorn's observations.
#[derive(Debug, Default)]
struct UnicornOutcome {
    stale: usize,
    notified: Vec<String>,
    races: usize,
    notify_retries: u32,
    /// The first batch index not handled, and why.
    failure: Option<(usize, String)>,
}

impl MagicAlarm {
    /// An alarm judging with `detector`, remembering in `store`, telling
    /// `notifiers` (at least one, names distinct) and keeping refused records
    /// in `rejects`.
    pub fn new(
        detector: Detector,
        store: StateStore,
        notifiers: Vec<Arc<dyn Notifier>>,
        rejects: RejectStore,
    ) -> Result<Self, AlarmError> {
        if notifiers.is_empty() {
            return Err(AlarmError::NoNotifier);
        }
        let mut names = BTreeSet::new();
        for n in &notifiers {
            if !names.insert(n.name().to_owned()) {
                return Err(AlarmError::DuplicateNotifier {
                    name: n.name().to_owned(),
                });
            }
        }
        Ok(Self {
            detector,
            store,
            notifiers,
            rejects,
            settings: AlarmSettings::default(),
            instance: format!("{:016x}", rand::random::<u64>()),
            calls: AtomicU64::new(0),
        })
    }

    /// The same alarm with other retry and wait settings.
    pub fn with_settings(mut self, settings: AlarmSettings) -> Self {
        self.settings = settings;
        self
    }

    /// The levels judged by.
    pub fn detector(&self) -> &Detector {
        &self.detector
    }

    /// The names of the notifiers told.
    pub fn notifier_names(&self) -> Vec<&str> {
        self.notifiers.iter().map(|n| n.name()).collect()
    }

    /// Handles one batch of one shard until `deadline`.
    pub async fn process(
        &self,
        source: &ShardSource,
        records: &[SourceRecord],
        deadline: Instant,
    ) -> AlarmOutcome {
        let owner = format!(
            "{}-{}",
            self.instance,
            self.calls.fetch_add(1, Ordering::Relaxed)
        );
        let mut outcome = AlarmOutcome {
            records: records.len(),
            ..AlarmOutcome::default()
        };
        let mut groups: Vec<Group> = Vec::new();
        let mut group_of: HashMap<UnicornName, usize> = HashMap::new();
        let mut rejects = Vec::new();
        let mut reject_index = Vec::new();
        for (i, record) in records.iter().enumerate() {
            match Observation::from_json(&record.data) {
                Ok(o) => {
                    match o.shape {
                        Shape::Reading => outcome.readings += 1,
                        Shape::Aggregate => outcome.aggregates += 1,
                    }
                    let g = *group_of.entry(o.name.clone()).or_insert_with(|| {
                        groups.push((o.name.clone(), Vec::new()));
                        groups.len() - 1
                    });
                    groups[g].1.push((i, o));
                }
                Err(reason) => {
                    rejects.push(reject(source, record, reason));
                    reject_index.push(i);
                }
            }
        }
        let unicorns = futures::stream::iter(groups)
            .map(|group| self.unicorn(group, &owner, deadline))
            .buffer_unordered(self.settings.max_unicorns_in_flight.max(1))
            .collect::<Vec<_>>();
        let (unicorns, stored) = tokio::join!(unicorns, self.rejects.put_all(&rejects, deadline));

        let mut failures: Vec<(usize, String)> = Vec::new();
        for (r, (i, written)) in rejects.iter().zip(reject_index.iter().zip(&stored.written)) {
            if *written {
                outcome.rejected += 1;
                tracing::warn!(record = %r.record_id(), reason = %r.reason, "record rejected");
            } else {
                failures.push((
                    *i,
                    format!(
                        "cannot store reject in table {}: {}",
                        self.rejects.table(),
                        stored.last_error.clone().unwrap_or_default()
                    ),
                ));
            }
        }
        for u in unicorns {
            outcome.stale += u.stale;
            outcome.notified.extend(u.notified);
            outcome.races += u.races;
            outcome.notify_retries += u.notify_retries;
            failures.extend(u.failure);
        }
        if let Some((i, why)) = failures.into_iter().min_by_key(|(i, _)| *i) {
            outcome.first_failure = Some(i);
            outcome.error = Some(why);
        }
        outcome
    }

    /// Judges one unicorn's observations and sends its transitions.
    async fn unicorn(&self, group: Group, owner: &str, deadline: Instant) -> UnicornOutcome {
        let (name, mut observations) = group;
        observations.sort_by_key(|(i, o)| (o.status_time, *i));
        let mut out = UnicornOutcome::default();
        // Every observation from `from` on (in time order) is unhandled: the
        // batch must resume at the lowest index among them.
        let fail = |out: &mut UnicornOutcome,
                    fresh: &[&(usize, Observation)],
                    from: usize,
                    why: String| {
            let at = fresh[from..].iter().map(|(i, _)| *i).min();
            if let Some(at) = at {
                tracing::error!(unicorn = %name, error = %why, "unicorn not handled: the batch resumes at its first unhandled record");
                out.failure = Some((at, why));
            }
        };
        let mut polls = 0u32;
        // The claim of another invocation last waited for: if time runs out
        // while waiting, that is the reason to report.
        let mut waited_for: Option<String> = None;
        let still_claimed = |id: &str| {
            format!("unicorn {name} is still claimed by another invocation for notification {id}")
        };
        'read: loop {
            let all: Vec<&(usize, Observation)> = observations.iter().collect();
            if Instant::now() >= deadline {
                let why = match &waited_for {
                    Some(id) => still_claimed(id),
                    None => AlarmError::Deadline {
                        what: format!("judging unicorn {name}"),
                    }
                    .to_string(),
                };
                fail(&mut out, &all, 0, why);
                return out;
            }
            let state = match self.retrying(deadline, || self.store.load(&name)).await {
                Ok(s) => s,
                Err(e) => {
                    let why = match (&waited_for, &e) {
                        (Some(id), AlarmError::Deadline { .. }) => still_claimed(id),
                        _ => e.to_string(),
                    };
                    fail(&mut out, &all, 0, why);
                    return out;
                }
            };
            if let Some(claim) = state.live_claim_of_other(owner, Utc::now()) {
                waited_for = Some(claim.id.clone());
                // Another invocation is sending a transition of this unicorn:
                // wait for its commit (or for its claim to expire), then judge
                // against what it recorded.
                if polls == 0 {
                    out.races += 1;
                    tracing::info!(unicorn = %name, claim = %claim.id, "another invocation is notifying this unicorn; waiting for it");
                }
                polls += 1;
                let Some(wait) = self.settings.claim_poll.wait(polls, deadline) else {
                    fail(&mut out, &all, 0, still_claimed(&claim.id));
                    return out;
                };
                // Never poll in a tight loop, whatever the jitter drew.
                tokio::time::sleep(wait.max(MIN_CLAIM_POLL)).await;
                continue 'read;
            }
            let fresh: Vec<&(usize, Observation)> = observations
                .iter()
                .filter(|(_, o)| !state.is_stale(o.status_time))
                .collect();
            out.stale = observations.len() - fresh.len();
            let just_observations: Vec<&Observation> = fresh.iter().map(|(_, o)| o).collect();
            let steps = self.detector.walk(state.state, &just_observations);
            let mut current = state;
            for step in steps {
                let notification = Notification::new(&fresh[step.at].1, step.to, &self.detector);
                match self
                    .transition(&current, &notification, owner, deadline, &mut out)
                    .await
                {
                    Ok(Some(next)) => current = next,
                    Ok(None) => {
                        out.races += 1;
                        continue 'read;
                    }
                    Err(e) => {
                        fail(&mut out, &fresh, step.at, e.to_string());
                        return out;
                    }
                }
            }
            return out;
        }
    }

    /// Claims, sends and commits one transition. `Ok(None)` when another
    /// invocation moved first (the caller re-reads).
    async fn transition(
        &self,
        current: &UnicornState,
        notification: &Notification,
        owner: &str,
        deadline: Instant,
        out: &mut UnicornOutcome,
    ) -> Result<Option<UnicornState>, AlarmError> {
        let work_until = deadline.min(Instant::now() + self.settings.max_claim);
        let until = Utc::now()
            + chrono::Duration::from_std(
                work_until.saturating_duration_since(Instant::now()) + CLAIM_GRACE,
            )
            .unwrap_or_default();
        // A claim given back after a partial delivery says who already has it.
        let delivered = match &current.claim {
            Some(c) if c.id == notification.id => c.delivered.clone(),
            _ => BTreeSet::new(),
        };
        let claim = Claim {
            id: notification.id.clone(),
            owner: owner.to_owned(),
            until,
            delivered: delivered.clone(),
        };
        let claimed = match self
            .retrying(deadline, || self.store.claim(current, claim.clone()))
            .await?
        {
            Written::Done(s) => s,
            Written::Lost => {
                tracing::info!(unicorn = %current.name, id = %notification.id, "another invocation moved first; judging again against its state");
                return Ok(None);
            }
        };
        let mut delivered = delivered;
        if let Err(e) = self
            .deliver(notification, &mut delivered, work_until, out)
            .await
        {
            self.give_back(&claimed, delivered).await;
            return Err(e);
        }
        let committed = self
            .retrying(deadline, || self.store.commit(&claimed, notification))
            .await;
        let committed = match committed {
            Ok(c) => c,
            Err(e) => {
                // Every notifier accepted: the claim given back says so, and
                // the retry records the transition without sending it again.
                // Should even that fail, the claim expires and the retry sends
                // it again (the at-least-once window).
                self.give_back(&claimed, delivered).await;
                return Err(e);
            }
        };
        match committed {
            Written::Done(next) => {
                tracing::info!(
                    unicorn = %notification.unicorn,
                    state = %notification.state,
                    magic_points = notification.magic_points,
                    status_time = %notification.status_time,
                    id = %notification.id,
                    "transition notified"
                );
                out.notified.push(notification.id.clone());
                Ok(Some(next))
            }
            Written::Lost => {
                tracing::warn!(
                    unicorn = %notification.unicorn,
                    id = %notification.id,
                    "the claim expired while notifying and another invocation took it over; it records the transition"
                );
                Ok(None)
            }
        }
    }

    /// Gives a claim back after a failure, recording which notifiers
    /// accepted, so that the next attempt can start at once and skip them.
    async fn give_back(&self, claimed: &UnicornState, delivered: BTreeSet<String>) {
        match self.store.release(claimed, delivered).await {
            Ok(Written::Done(_)) => {}
            Ok(Written::Lost) => {
                tracing::warn!(unicorn = %claimed.name, "the claim was taken over before it could be given back");
            }
            Err(e) => {
                tracing::warn!(unicorn = %claimed.name, error = %e, "cannot give the claim back; it expires by itself");
            }
        }
    }

    /// Sends `notification` to every notifier not in `delivered`, retrying
    /// those that fail transiently, starting nothing after `until`.
    async fn deliver(
        &self,
        notification: &Notification,
        delivered: &mut BTreeSet<String>,
        until: Instant,
        out: &mut UnicornOutcome,
    ) -> Result<(), AlarmError> {
        let policy = &self.settings.notify_retry;
        let mut attempt = 0;
        loop {
            let pending: Vec<&Arc<dyn Notifier>> = self
                .notifiers
                .iter()
                .filter(|n| !delivered.contains(n.name()))
                .collect();
            if pending.is_empty() {
                return Ok(());
            }
            let sends = pending.iter().map(|n| async move {
                let sent =
                    tokio::time::timeout_at(until.max(Instant::now()), n.send(notification)).await;
                let result = sent.unwrap_or_else(|_| {
                    Err(AlarmError::Delivery {
                        notifier: n.name().to_owned(),
                        id: notification.id.clone(),
                        reason: "no answer before the invocation's time ran out".to_owned(),
                        transient: true,
                    })
                });
                (n.name().to_owned(), result)
            });
            let mut last_error = None;
            let mut permanent = false;
            for (name, result) in futures::future::join_all(sends).await {
                match result {
                    Ok(()) => {
                        delivered.insert(name);
                    }
                    Err(e) => {
                        tracing::warn!(id = %notification.id, notifier = %name, attempt, error = %e, "notification not accepted");
                        permanent |= !e.is_transient();
                        last_error = Some(e);
                    }
                }
            }
            let Some(error) = last_error else {
                return Ok(());
            };
            attempt += 1;
            if permanent || !policy.backoff(attempt, until).await {
                return Err(error);
            }
            out.notify_retries += 1;
        }
    }

    /// Runs a state-table call, again after a transient failure, within
    /// `deadline`.
    async fn retrying<T, F, Fut>(&self, deadline: Instant, call: F) -> Result<T, AlarmError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, AlarmError>>,
    {
        let policy = &self.settings.store_retry;
        let mut attempt = 0;
        loop {
            match tokio::time::timeout_at(deadline, call()).await {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(e)) => {
                    attempt += 1;
                    if !e.is_transient() {
                        return Err(e);
                    }
                    let Some(wait) = policy.wait(attempt, deadline) else {
                        return Err(e);
                    };
                    tracing::warn!(error = %e, attempt, "state table call failed; trying again");
                    tokio::time::sleep(wait).await;
                }
                Err(_) => {
                    return Err(AlarmError::Deadline {
                        what: format!("waiting for table {}", self.store.table()),
                    });
                }
            }
        }
    }
}

/// The reject for `record`, refused for `reason`, under pipeline `alarm`.
pub fn reject(source: &ShardSource, record: &SourceRecord, reason: String) -> Reject {
    Reject::new(PIPELINE, source, record, reason)
}

#[cfg(test)]
mod tests {
    use wildrydes_core::writer::{TableWriter, WriterConfig};

    use super::*;
    use crate::notify::MemoryNotifier;

    fn alarm(notifiers: Vec<Arc<dyn Notifier>>) -> Result<MagicAlarm, AlarmError> {
        // No call is made: a client with no endpoint is enough.
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version_latest()
            .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
            .build();
        let client = aws_sdk_dynamodb::Client::from_conf(config);
        MagicAlarm::new(
            Detector::default(),
            StateStore::new(client.clone(), "WildRydesAlarmState"),
            notifiers,
            RejectStore::new(TableWriter::new(
                client,
                "UnicornSensorDataRejects",
                WriterConfig::default(),
            )),
        )
    }

    #[test]
    fn an_alarm_needs_notifiers_with_distinct_names() {
        let err = alarm(vec![]).unwrap_err().to_string();
        assert!(err.starts_with("no notifier is configured"), "{err}");
        let twice: Vec<Arc<dyn Notifier>> = vec![
            Arc::new(MemoryNotifier::new("pager")),
            Arc::new(MemoryNotifier::new("pager")),
        ];
        let err = alarm(twice).unwrap_err().to_string();
        assert_eq!(
            err,
            "two notifiers are named pager: give each a distinct name"
        );
        let two: Vec<Arc<dyn Notifier>> = vec![
            Arc::new(MemoryNotifier::new("pager")),
            Arc::new(MemoryNotifier::new("chat")),
        ];
        assert_eq!(alarm(two).unwrap().notifier_names(), ["pager", "chat"]);
    }

    #[test]
    fn rejects_are_kept_under_the_alarm_pipeline() {
        let source = ShardSource {
            stream_arn: "arn:aws:kinesis:us-east-1:000000000000:stream/wildrydes".into(),
            shard_id: "shardId-000000000000".into(),
        };
        let record = SourceRecord {
            sub_sequence_number: None,
            sequence_number: "1".into(),
            partition_key: "Shadowfax".into(),
            data: b"nope".to_vec(),
        };
        let r = reject(&source, &record, "record is not JSON".into());
        assert_eq!(r.pipeline, PipelineName::Alarm);
        assert_eq!(r.record_id(), "wildrydes/shardId-000000000000/1");
    }
}
