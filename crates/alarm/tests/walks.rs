//! Scripted walks of magic points through the alarm, against the embedded
//! DynamoDB, with in-memory notifiers: exactly one notification per
//! transition, whatever the batches, duplicates, order, failures and races.

// Test code: a panic is how a failure is reported (clippy.toml allows
// unwrap in #[test] functions; this extends it to their helpers).
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use common::*;
use futures::future::BoxFuture;
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;
use wildrydes_alarm::store::{Claim, Written};
use wildrydes_alarm::{
    AlarmError, AlarmOutcome, AlarmState, MagicAlarm, MemoryNotifier, Notification, Notifier,
};
use wildrydes_core::UnicornName;
use wildrydes_core::input::SourceRecord;
use wildrydes_core::names::PipelineName;
use wildrydes_local_aws::{LocalAws, workshop};
use wildrydes_ops::rejects::list_rejects;

fn memory() -> MemoryNotifier {
    MemoryNotifier::new("memory")
}

fn shared(n: &MemoryNotifier) -> Vec<Arc<dyn Notifier>> {
    vec![Arc::new(n.clone())]
}

/// What most walks watch: the embedded backend, and an alarm over it that
/// tells one in-memory notifier.
struct Watch {
    local: LocalAws,
    notifier: MemoryNotifier,
    alarm: MagicAlarm,
}

impl Watch {
    async fn start() -> Self {
        let local = backend().await;
        let notifier = memory();
        let alarm = alarm(&local, shared(&notifier));
        Self {
            local,
            notifier,
            alarm,
        }
    }

    /// One batch of the readings shard, with time to spare.
    async fn batch(&self, records: &[SourceRecord]) -> AlarmOutcome {
        process(&self.alarm, records).await
    }

    /// What the notifier accepted, as (unicorn, state, magic points).
    fn states(&self) -> Vec<(String, AlarmState, i16)> {
        self.notifier
            .accepted()
            .into_iter()
            .map(|n| (n.unicorn.to_string(), n.state, n.magic_points))
            .collect()
    }
}

/// The two notifications of `unicorn` dipping to `low` and recovering at
/// `recovered`, as [`Watch::states`] lists them.
fn dip_and_recovery(unicorn: &str, low: i16, recovered: i16) -> [(String, AlarmState, i16); 2] {
    [
        (unicorn.into(), AlarmState::Alarm, low),
        (unicorn.into(), AlarmState::Ok, recovered),
    ]
}

fn name(s: &str) -> UnicornName {
    UnicornName::new(s).unwrap()
}

#[tokio::test]
async fn a_dip_and_a_recovery_notify_once_each() {
    bounded(async {
        let watch = Watch::start().await;
        let records = walk(
            "Shadowfax",
            0,
            &[55, 52, 50, 49, 47, 45, 50, 55, 59, 60, 62, 58],
        );
        let outcome = watch.batch(&records).await;
        assert_eq!(outcome.first_failure, None, "{outcome:?}");
        assert_eq!(outcome.readings, 12);
        assert_eq!(watch.states(), dip_and_recovery("Shadowfax", 49, 60));
        let alarm_n = &watch.notifier.accepted()[0];
        assert_eq!(alarm_n.id, "Shadowfax/ALARM/2017-06-05T09:00:03.189Z");
        assert_eq!((alarm_n.threshold, alarm_n.recovery_level), (50, 60));
        assert!(
            alarm_n
                .message()
                .contains("last seen at latitude 40.749467, longitude -73.984884")
        );
        assert_eq!(outcome.notified, watch.notifier.ids());

        let state = store(&watch.local).load(&name("Shadowfax")).await.unwrap();
        assert_eq!(state.state, AlarmState::Ok);
        assert_eq!(state.status_time.unwrap().to_string(), at(9));
        assert_eq!(state.magic_points, Some(60));
        assert_eq!(state.version, 4, "a claim and a commit per transition");
        assert_eq!(state.claim, None);
        assert_eq!(
            state.notification_id.as_deref(),
            Some("Shadowfax/OK/2017-06-05T09:00:09.189Z")
        );
    })
    .await;
}

#[tokio::test]
async fn hovering_around_the_threshold_does_not_flap() {
    bounded(async {
        let watch = Watch::start().await;
        let hover = [51, 49, 50, 51, 49, 52, 48, 50, 55, 59, 49, 58, 52, 50];
        // In one batch...
        let outcome = watch.batch(&walk("Shadowfax", 0, &hover)).await;
        assert_eq!(outcome.first_failure, None);
        // ...and one reading per batch, as a slow trickle would come.
        for (second, m) in (100..).zip(hover) {
            let outcome = watch.batch(&[reading("Rocinante", second, m)]).await;
            assert_eq!(outcome.first_failure, None);
        }
        assert_eq!(
            watch.states(),
            [
                ("Shadowfax".into(), AlarmState::Alarm, 49),
                ("Rocinante".into(), AlarmState::Alarm, 49)
            ]
        );
    })
    .await;
}

#[tokio::test]
async fn duplicates_and_replayed_batches_notify_nothing_more() {
    bounded(async {
        let watch = Watch::start().await;
        let once = walk("Shadowfax", 0, &[60, 45, 44, 70, 71]);
        // Every record twice (a producer that retried its PutRecords).
        let twice: Vec<SourceRecord> = once.iter().flat_map(|r| [r.clone(), again(r)]).collect();
        let outcome = watch.batch(&twice).await;
        assert_eq!(outcome.first_failure, None);
        assert_eq!(outcome.notified.len(), 2);
        // The whole batch again (a Lambda retry), then once more.
        for _ in 0..2 {
            let replay = watch.batch(&twice).await;
            assert_eq!(replay.first_failure, None);
            assert!(replay.notified.is_empty(), "{replay:?}");
            assert_eq!(replay.stale, 8, "all but the two after the last transition");
        }
        assert_eq!(watch.states(), dip_and_recovery("Shadowfax", 45, 70));
    })
    .await;
}

#[tokio::test]
async fn readings_older_than_the_state_are_ignored_and_batches_are_put_in_time_order() {
    bounded(async {
        let watch = Watch::start().await;
        // Within a batch: out of stream order, judged in time order.
        let batch = [
            reading("Shadowfax", 3, 45),
            reading("Shadowfax", 1, 70),
            reading("Shadowfax", 2, 46),
            reading("Shadowfax", 4, 65),
            reading("Shadowfax", 0, 80),
        ];
        let outcome = watch.batch(&batch).await;
        assert_eq!(outcome.first_failure, None);
        assert_eq!(watch.states(), dip_and_recovery("Shadowfax", 46, 65));
        assert_eq!(watch.notifier.accepted()[0].status_time.to_string(), at(2));

        // Across batches: a reading older than the last transition (second 4)
        // is not judged, however low.
        let late = watch.batch(&[reading("Shadowfax", 3, 10)]).await;
        assert_eq!((late.stale, late.notified.len()), (1, 0));
        let same_time = watch.batch(&[reading("Shadowfax", 4, 10)]).await;
        assert_eq!((same_time.stale, same_time.notified.len()), (1, 0));
        let newer = watch.batch(&[reading("Shadowfax", 5, 10)]).await;
        assert_eq!((newer.stale, newer.notified.len()), (0, 1));
        assert_eq!(watch.notifier.accepted().len(), 3);
    })
    .await;
}

#[tokio::test]
async fn two_unicorns_in_one_batch_are_judged_apart() {
    bounded(async {
        let watch = Watch::start().await;
        let a = walk("Shadowfax", 0, &[55, 49, 48, 61, 62, 40]);
        let b = walk("Rocinante", 0, &[49, 52, 70, 55, 45, 44]);
        let interleaved: Vec<SourceRecord> = a
            .iter()
            .zip(&b)
            .flat_map(|(x, y)| [x.clone(), y.clone()])
            .collect();
        let outcome = watch.batch(&interleaved).await;
        assert_eq!(outcome.first_failure, None);
        let of = |unicorn: &str| -> Vec<(AlarmState, i16)> {
            watch
                .states()
                .into_iter()
                .filter(|(u, _, _)| u == unicorn)
                .map(|(_, s, m)| (s, m))
                .collect()
        };
        assert_eq!(
            of("Shadowfax"),
            [
                (AlarmState::Alarm, 49),
                (AlarmState::Ok, 61),
                (AlarmState::Alarm, 40)
            ]
        );
        assert_eq!(
            of("Rocinante"),
            [
                (AlarmState::Alarm, 49),
                (AlarmState::Ok, 70),
                (AlarmState::Alarm, 45)
            ]
        );
    })
    .await;
}

#[tokio::test]
async fn aggregates_are_judged_by_their_minimum_magic_points() {
    bounded(async {
        let watch = Watch::start().await;
        let minutes = [
            aggregate("Shadowfax", 0, 55, 70),
            aggregate("Shadowfax", 1, 48, 70), // lowest below 50: ALARM
            aggregate("Shadowfax", 2, 58, 90), // not all of the minute at 60 yet
            aggregate("Shadowfax", 3, 60, 64), // all of it: OK
        ];
        let outcome = watch.batch(&minutes).await;
        assert_eq!((outcome.aggregates, outcome.first_failure), (4, None));
        let sent = watch.notifier.accepted();
        assert_eq!(watch.states(), dip_and_recovery("Shadowfax", 48, 60));
        assert!(
            sent[0].message().ends_with("position unknown."),
            "{}",
            sent[0].message()
        );
        assert_eq!(sent[0].status_time.to_string(), "2017-06-05 10:01:00.000");

        // A reading and an aggregate of the same unicorn in one batch: one
        // timeline. The aggregate's minute (10:04) comes after the reading.
        let mixed = [
            aggregate("Shadowfax", 4, 30, 60),
            reading("Shadowfax", 3600 + 3 * 60 + 30, 20),
        ];
        let outcome = watch.batch(&mixed).await;
        assert_eq!(outcome.notified.len(), 1);
        assert_eq!(watch.notifier.accepted()[2].magic_points, 20);
    })
    .await;
}

#[tokio::test]
async fn a_notifier_that_fails_for_a_while_is_retried_within_the_batch() {
    bounded(async {
        let watch = Watch::start().await;
        watch.notifier.refuse_next(2);
        let outcome = watch.batch(&walk("Shadowfax", 0, &[50, 49, 60])).await;
        assert_eq!(outcome.first_failure, None, "{outcome:?}");
        assert_eq!(outcome.notify_retries, 2);
        assert_eq!(watch.notifier.attempts(), 4);
        assert_eq!(watch.notifier.accepted().len(), 2);
    })
    .await;
}

/// A notifier that refuses (permanently) every notification about one
/// unicorn until repaired, and accepts the others.
#[derive(Debug)]
struct RefusesFor {
    inner: MemoryNotifier,
    unicorn: &'static str,
    refusing: AtomicBool,
    refusals: AtomicU32,
}

impl Notifier for RefusesFor {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn send<'a>(&'a self, n: &'a Notification) -> BoxFuture<'a, Result<(), AlarmError>> {
        if self.refusing.load(Ordering::SeqCst) && n.unicorn.as_str() == self.unicorn {
            self.refusals.fetch_add(1, Ordering::SeqCst);
            return Box::pin(std::future::ready(Err(AlarmError::Delivery {
                notifier: self.name().to_owned(),
                id: n.id.clone(),
                reason: "404 Not Found (test)".into(),
                transient: false,
            })));
        }
        self.inner.send(n)
    }
}

#[tokio::test]
async fn a_notifier_that_keeps_failing_fails_the_batch_there_and_loses_nothing() {
    bounded(async {
        let local = backend().await;
        let pager = MemoryNotifier::new("pager");
        let chat_record = MemoryNotifier::new("chat");
        let chat = Arc::new(RefusesFor {
            inner: chat_record.clone(),
            unicorn: "Shadowfax",
            refusing: AtomicBool::new(true),
            refusals: AtomicU32::new(0),
        });
        let alarm = alarm(&local, vec![Arc::new(pager.clone()), chat.clone()]);
        let batch = [
            reading("Shadowfax", 0, 55), // 0
            reading("Rocinante", 0, 60), // 1
            reading("Shadowfax", 1, 49), // 2: ALARM, the chat refuses it
            reading("Rocinante", 1, 45), // 3: ALARM
            reading("Shadowfax", 2, 48), // 4
            reading("Shadowfax", 3, 61), // 5: OK, after the failure: not judged yet
            reading("Rocinante", 2, 70), // 6: OK
        ];
        let outcome = process(&alarm, &batch).await;
        assert_eq!(outcome.first_failure, Some(2), "{outcome:?}");
        let error = outcome.error.as_deref().unwrap();
        assert!(
            error.contains("notifier chat did not accept notification Shadowfax/ALARM"),
            "{error}"
        );
        assert_eq!(
            chat.refusals.load(Ordering::SeqCst),
            1,
            "a permanent refusal is not retried within the batch"
        );
        let sorted = |mut ids: Vec<String>| {
            ids.sort();
            ids
        };
        assert_eq!(
            sorted(pager.ids()),
            [
                "Rocinante/ALARM/2017-06-05T09:00:01.189Z",
                "Rocinante/OK/2017-06-05T09:00:02.189Z",
                "Shadowfax/ALARM/2017-06-05T09:00:01.189Z",
            ]
        );
        assert_eq!(
            chat_record.ids(),
            [
                "Rocinante/ALARM/2017-06-05T09:00:01.189Z",
                "Rocinante/OK/2017-06-05T09:00:02.189Z",
            ]
        );

        // Lambda delivers again from the failed record; the chat is back.
        chat.refusing.store(false, Ordering::SeqCst);
        let retry = process(&alarm, &batch[2..]).await;
        assert_eq!(retry.first_failure, None, "{retry:?}");
        assert_eq!(
            retry.notified,
            [
                "Shadowfax/ALARM/2017-06-05T09:00:01.189Z",
                "Shadowfax/OK/2017-06-05T09:00:03.189Z"
            ]
        );
        // Each notifier has each transition once: the pager, which had the
        // ALARM already, is not sent it again; Rocinante's records, delivered
        // again, were judged already.
        let every = [
            "Rocinante/ALARM/2017-06-05T09:00:01.189Z",
            "Rocinante/OK/2017-06-05T09:00:02.189Z",
            "Shadowfax/ALARM/2017-06-05T09:00:01.189Z",
            "Shadowfax/OK/2017-06-05T09:00:03.189Z",
        ];
        assert_eq!(sorted(pager.ids()), every);
        assert_eq!(sorted(chat_record.ids()), every);
    })
    .await;
}

#[tokio::test]
async fn bad_records_are_kept_as_rejects_of_the_alarm_and_the_rest_goes_on() {
    bounded(async {
        let watch = Watch::start().await;
        let batch = [
            reading("Shadowfax", 0, 55),
            garbage(),
            reading("Shadowfax", 1, 49),
        ];
        let outcome = watch.batch(&batch).await;
        assert_eq!((outcome.rejected, outcome.first_failure), (1, None));
        assert_eq!(watch.notifier.accepted().len(), 1);
        let rejects = list_rejects(&watch.local.dynamodb_client(), workshop::REJECTS_TABLE)
            .await
            .unwrap();
        assert_eq!(rejects.len(), 1);
        assert_eq!(rejects[0].pipeline, PipelineName::Alarm);
        assert_eq!(rejects[0].sequence_number, batch[1].sequence_number);
        assert!(
            rejects[0].reason.starts_with("record is not JSON"),
            "{}",
            rejects[0].reason
        );
    })
    .await;
}

/// A notifier that, on its first call, says so and then waits to be let go:
/// it holds a claim open for as long as a test needs.
#[derive(Debug)]
struct Gated {
    inner: MemoryNotifier,
    entered: mpsc::UnboundedSender<()>,
    release: Arc<Notify>,
}

impl Notifier for Gated {
    fn name(&self) -> &str {
        "gated"
    }

    fn send<'a>(&'a self, n: &'a Notification) -> BoxFuture<'a, Result<(), AlarmError>> {
        Box::pin(async move {
            let _ = self.entered.send(());
            self.release.notified().await;
            self.inner.send(n).await
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invocation_never_notifies_a_transition_another_one_is_sending() {
    bounded(async {
        let local = backend().await;
        let first = MemoryNotifier::new("gated");
        let (entered_tx, mut entered) = mpsc::unbounded_channel();
        let release = Arc::new(Notify::new());
        let gated = Gated {
            inner: first.clone(),
            entered: entered_tx,
            release: release.clone(),
        };
        let a = Arc::new(alarm(&local, vec![Arc::new(gated)]));
        let second = memory();
        let b = alarm(&local, shared(&second));
        let batch = walk("Shadowfax", 0, &[55, 49, 47]);

        let a_run = {
            let (a, batch) = (a.clone(), batch.clone());
            tokio::spawn(async move { process(&a, &batch).await })
        };
        entered.recv().await.unwrap();
        // A holds the claim and is sending. B, with little time, must wait
        // for it and give up without sending anything.
        let short = Instant::now() + Duration::from_millis(300);
        let b_outcome = b.process(&source(), &batch, short).await;
        assert_eq!(b_outcome.first_failure, Some(0), "{b_outcome:?}");
        assert!(
            b_outcome
                .error
                .as_deref()
                .unwrap()
                .contains("still claimed by another invocation"),
            "{b_outcome:?}"
        );
        assert_eq!(b_outcome.races, 1);
        assert!(second.accepted().is_empty());

        release.notify_one();
        let a_outcome = a_run.await.unwrap();
        assert_eq!(
            a_outcome.notified,
            ["Shadowfax/ALARM/2017-06-05T09:00:01.189Z"]
        );
        // B's retry finds the transition recorded.
        let b_retry = process(&b, &batch).await;
        assert_eq!((b_retry.first_failure, b_retry.stale), (None, 2));
        assert!(b_retry.notified.is_empty() && second.accepted().is_empty());
        assert_eq!(first.accepted().len(), 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_invocations_racing_on_the_same_records_notify_each_transition_once() {
    bounded(async {
        let local = backend().await;
        let (one, two) = (memory(), memory());
        let a = alarm(&local, shared(&one));
        let b = alarm(&local, shared(&two));
        let names: Vec<String> = (0..12).map(|i| format!("Unicorn{i:02}")).collect();
        let batch: Vec<SourceRecord> = names
            .iter()
            .flat_map(|n| walk(n, 0, &[52, 49, 45, 55, 63, 48]))
            .collect();
        let (x, y) = tokio::join!(process(&a, &batch), process(&b, &batch));
        assert_eq!(
            (x.first_failure, y.first_failure),
            (None, None),
            "{x:?} {y:?}"
        );
        assert!(
            x.races + y.races > 0,
            "both read the states before either claimed, so some claims were lost: {x:?} {y:?}"
        );
        let mut all = one.ids();
        all.extend(two.ids());
        all.sort();
        let mut expected: Vec<String> = names
            .iter()
            .flat_map(|n| {
                [
                    format!("{n}/ALARM/2017-06-05T09:00:01.189Z"),
                    format!("{n}/OK/2017-06-05T09:00:04.189Z"),
                    format!("{n}/ALARM/2017-06-05T09:00:05.189Z"),
                ]
            })
            .collect();
        expected.sort();
        assert_eq!(all, expected, "each transition exactly once across both");
        let mut recorded = x.notified.clone();
        recorded.extend(y.notified.clone());
        recorded.sort();
        assert_eq!(recorded, expected);
    })
    .await;
}

#[tokio::test]
async fn a_claim_left_by_a_crashed_invocation_is_taken_over_with_the_same_id() {
    bounded(async {
        let watch = Watch::start().await;
        let store = store(&watch.local);
        // An invocation claimed the ALARM, maybe sent it, and died.
        let fresh = store.load(&name("Shadowfax")).await.unwrap();
        let ghost = Claim {
            id: "Shadowfax/ALARM/2017-06-05T09:00:01.189Z".into(),
            owner: "crashed".into(),
            until: chrono::Utc::now() - chrono::Duration::seconds(1),
            delivered: Default::default(),
        };
        assert!(matches!(
            store.claim(&fresh, ghost).await.unwrap(),
            Written::Done(_)
        ));
        // Its batch comes again: the expired claim is taken over, and the
        // notification goes out (again, perhaps) under the same id.
        let outcome = watch.batch(&walk("Shadowfax", 0, &[55, 49])).await;
        assert_eq!(outcome.first_failure, None, "{outcome:?}");
        assert_eq!(
            watch.notifier.ids(),
            ["Shadowfax/ALARM/2017-06-05T09:00:01.189Z"]
        );
        let state = store.load(&name("Shadowfax")).await.unwrap();
        assert_eq!((state.state, state.claim), (AlarmState::Alarm, None));
    })
    .await;
}
