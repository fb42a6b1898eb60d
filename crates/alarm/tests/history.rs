//! The alarm's history and open alarms, as the operators' console reads
//! them, against the embedded DynamoDB: every committed transition is one
//! history item, written with the state; the index `OpenAlarms` lists a
//! unicorn only while it is in ALARM; replays add nothing.

// Test code: a panic is how a failure is reported (clippy.toml allows
// unwrap in #[test] functions; this extends it to their helpers).
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use common::*;
use wildrydes_alarm::store::{Claim, Written};
use wildrydes_alarm::{
    AlarmState, Detector, MagicAlarm, MemoryNotifier, Notification, Observation, Transition,
};
use wildrydes_core::UnicornName;
use wildrydes_core::rejects::RejectStore;
use wildrydes_core::writer::{TableWriter, WriterConfig};
use wildrydes_local_aws::{LocalAws, workshop};

fn name(s: &str) -> UnicornName {
    UnicornName::new(s).unwrap()
}

/// The embedded backend and an alarm over it with an in-memory notifier.
async fn watch() -> (LocalAws, MemoryNotifier, MagicAlarm) {
    let local = backend().await;
    let notifier = MemoryNotifier::new("memory");
    let alarm = alarm(&local, vec![Arc::new(notifier.clone())]);
    (local, notifier, alarm)
}

/// Every item of the history table, whatever the unicorn.
async fn history_items(local: &LocalAws) -> usize {
    wildrydes_testkit::scan_table(&local.dynamodb_client(), workshop::ALARM_HISTORY_TABLE)
        .await
        .len()
}

/// (unicorn, state, figure's time, magic points) of each transition.
fn summary(transitions: &[Transition]) -> Vec<(String, AlarmState, String, Option<i16>)> {
    transitions
        .iter()
        .map(|t| {
            (
                t.name.to_string(),
                t.state,
                t.status_time.to_string(),
                t.magic_points,
            )
        })
        .collect()
}

#[tokio::test]
async fn a_dip_and_a_recovery_are_two_history_items_and_open_only_in_between() {
    bounded(async {
        let (local, notifier, alarm) = watch().await;
        let history = history(&local);
        let shadowfax = name("Shadowfax");

        let outcome = process(&alarm, &walk("Shadowfax", 0, &[55, 52, 49, 47])).await;
        assert_eq!(outcome.first_failure, None, "{outcome:?}");
        let open = history.open(10).await.unwrap();
        assert_eq!(
            summary(&open),
            [("Shadowfax".into(), AlarmState::Alarm, at(2), Some(49))]
        );
        assert_eq!(
            open[0].notification_id.as_deref(),
            Some("Shadowfax/ALARM/2017-06-05T09:00:02.189Z")
        );
        assert!(open[0].recorded_at.is_some());
        // The open alarm is the transition that opened it, as recorded.
        assert_eq!(history.transitions(&shadowfax, 10).await.unwrap(), open);

        let outcome = process(&alarm, &walk("Shadowfax", 4, &[55, 60, 62])).await;
        assert_eq!(outcome.first_failure, None, "{outcome:?}");
        assert_eq!(history.open(10).await.unwrap(), [], "recovered: not open");
        let transitions = history.transitions(&shadowfax, 10).await.unwrap();
        assert_eq!(
            summary(&transitions),
            [
                ("Shadowfax".into(), AlarmState::Ok, at(5), Some(60)),
                ("Shadowfax".into(), AlarmState::Alarm, at(2), Some(49)),
            ],
            "newest first"
        );
        let ids: Vec<String> = transitions
            .iter()
            .rev()
            .map(|t| t.notification_id.clone().unwrap())
            .collect();
        assert_eq!(ids, notifier.ids(), "one item per notification sent");
        assert_eq!(history_items(&local).await, 2);
        assert_eq!(
            history.transitions(&shadowfax, 1).await.unwrap(),
            transitions[..1]
        );

        // Into ALARM again: open again, from the new transition.
        let outcome = process(&alarm, &walk("Shadowfax", 7, &[48])).await;
        assert_eq!(outcome.notified.len(), 1);
        assert_eq!(
            summary(&history.open(10).await.unwrap()),
            [("Shadowfax".into(), AlarmState::Alarm, at(7), Some(48))]
        );
        assert_eq!(history_items(&local).await, 3);
    })
    .await;
}

#[tokio::test]
async fn duplicates_replays_and_a_commit_sent_again_add_no_history_item() {
    bounded(async {
        let (local, notifier, alarm) = watch().await;
        let once = walk("Shadowfax", 0, &[60, 45, 44, 70, 71]);
        let twice: Vec<_> = once.iter().flat_map(|r| [r.clone(), again(r)]).collect();
        assert_eq!(process(&alarm, &twice).await.notified.len(), 2);
        for _ in 0..2 {
            let replay = process(&alarm, &twice).await;
            assert_eq!(replay.first_failure, None);
            assert!(replay.notified.is_empty(), "{replay:?}");
        }
        assert_eq!(notifier.ids().len(), 2);
        assert_eq!(history_items(&local).await, 2);

        // A commit that reached the table but whose answer was lost, sent
        // again: refused as a lost race, and nothing more is written.
        let store = store(&local);
        let rocinante = name("Rocinante");
        let fresh = store.load(&rocinante).await.unwrap();
        let observation = Observation::from_json(&reading("Rocinante", 1, 45).data).unwrap();
        let notification = Notification::new(&observation, AlarmState::Alarm, &Detector::default());
        let claim = Claim {
            id: notification.id.clone(),
            owner: "me".into(),
            until: chrono::Utc::now() + chrono::Duration::seconds(60),
            delivered: Default::default(),
        };
        let Written::Done(claimed) = store.claim(&fresh, claim).await.unwrap() else {
            panic!("claim lost")
        };
        assert!(matches!(
            store.commit(&claimed, &notification).await.unwrap(),
            Written::Done(_)
        ));
        assert_eq!(
            store.commit(&claimed, &notification).await.unwrap(),
            Written::Lost
        );
        assert_eq!(history_items(&local).await, 3);
        let transitions = history(&local).transitions(&rocinante, 10).await.unwrap();
        assert_eq!(
            summary(&transitions),
            [("Rocinante".into(), AlarmState::Alarm, at(1), Some(45))]
        );
        // And the state it committed is open.
        let open = history(&local).open(10).await.unwrap();
        assert_eq!(open, transitions);
    })
    .await;
}

#[tokio::test]
async fn open_alarms_are_listed_newest_first_across_unicorns() {
    bounded(async {
        let (local, _notifier, alarm) = watch().await;
        // Four unicorns dip at seconds 3, 1, 4 and 2; Rocinante recovers.
        let mut batch = walk("Shadowfax", 0, &[55, 55, 55, 45]);
        batch.extend(walk("Rocinante", 0, &[55, 40, 65]));
        batch.extend(walk("Bucephalus", 0, &[55, 55, 55, 55, 30]));
        batch.extend(walk("Pegasus", 0, &[55, 55, 49]));
        let outcome = process(&alarm, &batch).await;
        assert_eq!(outcome.first_failure, None, "{outcome:?}");
        assert_eq!(outcome.notified.len(), 5);

        let history = history(&local);
        let open = history.open(10).await.unwrap();
        assert_eq!(
            summary(&open),
            [
                ("Bucephalus".into(), AlarmState::Alarm, at(4), Some(30)),
                ("Shadowfax".into(), AlarmState::Alarm, at(3), Some(45)),
                ("Pegasus".into(), AlarmState::Alarm, at(2), Some(49)),
            ]
        );
        let newest_two = history.open(2).await.unwrap();
        assert_eq!(newest_two, open[..2]);
        assert_eq!(history.open(0).await.unwrap(), []);
    })
    .await;
}

#[tokio::test]
async fn transitions_are_only_the_unicorns_asked_for() {
    bounded(async {
        let (local, _notifier, alarm) = watch().await;
        let mut batch = walk("Shadowfax", 0, &[45, 65, 44]);
        batch.extend(walk("Rocinante", 0, &[40, 70]));
        let outcome = process(&alarm, &batch).await;
        assert_eq!(outcome.first_failure, None, "{outcome:?}");

        let history = history(&local);
        let shadowfax = history.transitions(&name("Shadowfax"), 10).await.unwrap();
        assert_eq!(
            summary(&shadowfax),
            [
                ("Shadowfax".into(), AlarmState::Alarm, at(2), Some(44)),
                ("Shadowfax".into(), AlarmState::Ok, at(1), Some(65)),
                ("Shadowfax".into(), AlarmState::Alarm, at(0), Some(45)),
            ]
        );
        let rocinante = history.transitions(&name("Rocinante"), 10).await.unwrap();
        assert_eq!(
            summary(&rocinante),
            [
                ("Rocinante".into(), AlarmState::Ok, at(1), Some(70)),
                ("Rocinante".into(), AlarmState::Alarm, at(0), Some(40)),
            ]
        );
        let unknown = history.transitions(&name("Unknown"), 10).await.unwrap();
        assert_eq!(unknown, []);
        assert_eq!(
            history.transitions(&name("Shadowfax"), 2).await.unwrap(),
            shadowfax[..2]
        );
    })
    .await;
}

#[tokio::test]
async fn without_the_history_table_a_transition_is_not_committed_and_the_error_names_it() {
    bounded(async {
        let local = backend().await;
        let notifier = MemoryNotifier::new("memory");
        let dynamodb = local.dynamodb_client();
        let alarm = MagicAlarm::new(
            Detector::default(),
            store(&local).with_history_table("WildRydesAlarmHistoryMissing"),
            vec![Arc::new(notifier.clone())],
            RejectStore::new(TableWriter::new(
                dynamodb,
                workshop::REJECTS_TABLE,
                WriterConfig::default(),
            )),
        )
        .unwrap()
        .with_settings(quick());
        let outcome = process(&alarm, &walk("Shadowfax", 0, &[55, 45])).await;
        assert_eq!(outcome.first_failure, Some(1), "{outcome:?}");
        let error = outcome.error.unwrap();
        assert!(
            error.starts_with(
                "cannot commit the state of unicorn Shadowfax in table WildRydesAlarmState (history table WildRydesAlarmHistoryMissing):"
            ),
            "{error}"
        );
        // Neither table changed: the state is still before the transition.
        let state = store(&local).load(&name("Shadowfax")).await.unwrap();
        assert_eq!((state.state, state.status_time), (AlarmState::Ok, None));
        assert_eq!(history(&local).open(10).await.unwrap(), []);
    })
    .await;
}
