//! Eventual exactness of the aggregation, as a property: any set of
//! readings, delivered in any order, cut into any batches, with duplicates,
//! crashes at any point replayed from the last checkpoint, and hand-offs to
//! another consumer (a lease moving, a child shard after a split), ends with
//! a table whose every item is the exact aggregate of its minute.
//!
//! The consumer here follows the order of durability `Aggregator` follows
//! (fold a batch; put what is due on the output, then mark it emitted; at a
//! checkpoint, store the changed minutes, then move the checkpoint), over
//! an in-memory model of the minute store with the same conditional
//! versions and the same horizon on load. The expected table is plain
//! arithmetic over the readings: the fleets' oracle in the testkit, which
//! shares no code with the aggregation.
//!
//! The window alone meets the same promise first: one consumer, neither
//! crashing nor storing, whatever the order and however often it emits.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use proptest::prelude::*;
use wildrydes_core::time::MINUTE_MS;
use wildrydes_core::window::{DueMinute, MinuteState, MinuteWindow, WindowRules};
use wildrydes_core::{Aggregate, Reading, StatusTime, UnicornName};
use wildrydes_testkit::fleet::expected;

const DAY: i64 = 1_455_235_200_000; // 2016-02-12 00:00:00
const NAMES: [&str; 4] = ["Shadowfax", "Rocinante", "Bucephalus", "Pegasus"];

type Key = (i64, String);

/// The minute store, in memory: one entry per unicorn and minute, written
/// only under the version it was read at.
#[derive(Default)]
struct Store {
    minutes: HashMap<(String, i64), MinuteState>,
}

impl Store {
    /// What `MinuteStore::load` returns: the unicorn's minutes whose end is
    /// within the horizon of its newest reading.
    fn load(&self, name: &str, horizon_ms: i64) -> Vec<(i64, MinuteState)> {
        let mut mine: Vec<_> = self
            .minutes
            .iter()
            .filter(|((n, _), _)| n == name)
            .map(|((_, m), s)| (*m, s.clone()))
            .collect();
        mine.sort_by_key(|(m, _)| std::cmp::Reverse(*m));
        let Some((newest, state)) = mine.first() else {
            return Vec::new();
        };
        let cutoff = newest + i64::from(*state.seen.last().unwrap()) - horizon_ms;
        mine.into_iter()
            .filter(|(m, _)| m + MINUTE_MS > cutoff)
            .collect()
    }

    /// What `Aggregator::save` does, against this store.
    fn save(&mut self, window: &mut MinuteWindow) {
        let mut stored = Vec::new();
        for d in window.dirty() {
            let key = (d.name.to_string(), d.minute_ms);
            let current = self.minutes.get(&key).map_or(0, |s| s.version);
            assert_eq!(
                current, d.state.version,
                "one consumer per unicorn at a time"
            );
            let version = current + 1;
            self.minutes.insert(
                key,
                MinuteState {
                    version,
                    ..d.state.clone()
                },
            );
            stored.push((d, version));
        }
        window.stored(&stored);
    }
}

/// One consumer of the stream: its window, over the shared store.
struct Consumer {
    window: MinuteWindow,
    horizon_ms: i64,
}

impl Consumer {
    /// A consumer starting on the shard: it adopts the unicorns with
    /// minutes left pending in the store (`Aggregator::adopt_pending`),
    /// which a consumer that died or a parent shard left behind.
    fn new(rules: WindowRules, store: &Store) -> Self {
        let horizon_ms = i64::try_from(rules.horizon.as_millis()).unwrap();
        let mut window = MinuteWindow::new(rules);
        let pending: std::collections::BTreeSet<&String> = store
            .minutes
            .iter()
            .filter(|(_, s)| !s.emitted)
            .map(|((n, _), _)| n)
            .collect();
        for name in pending {
            window.restore(
                UnicornName::new(name).unwrap(),
                store.load(name, horizon_ms),
            );
        }
        Self { window, horizon_ms }
    }

    /// `Aggregator::run`: load the unknown unicorns, fold, emit what is due.
    fn batch(&mut self, store: &Store, batch: &[Reading], now: i64, table: &mut Table) {
        for r in batch {
            if !self.window.knows(&r.name) {
                let minutes = store.load(r.name.as_str(), self.horizon_ms);
                self.window.restore(r.name.clone(), minutes);
            }
        }
        for r in batch {
            self.window.push(r, now);
        }
        let due = self.window.due(now);
        table.emit(&mut self.window, &due);
    }

    /// The end of the input (or a shard fallen silent): everything out.
    fn drain(&mut self, table: &mut Table) {
        let due = self.window.due_all();
        table.emit(&mut self.window, &due);
    }
}

/// `UnicornSensorData` as the stream processor leaves it: the last
/// aggregate emitted for each key wins.
#[derive(Default)]
struct Table(BTreeMap<Key, Aggregate>);

impl Table {
    /// Puts `due` on the output (the last aggregate of a key wins), then
    /// marks it emitted in `window`: the order `Aggregator` follows.
    fn emit(&mut self, window: &mut MinuteWindow, due: &[DueMinute]) {
        for d in due {
            let a = d.aggregate.clone().unwrap();
            self.0.insert((d.minute_ms, d.name.to_string()), a);
        }
        window.emitted(due.iter().map(|d| (&d.name, d.minute_ms)));
    }
}

/// The rules of every consumer here: the aggregator's defaults, spelled out.
fn rules() -> WindowRules {
    WindowRules {
        allowed_lateness: Duration::from_secs(10),
        horizon: Duration::from_secs(3600),
        idle_after: Duration::from_secs(30),
    }
}

/// `readings` in the order of the keys `order` gives them: any interleaving.
fn shuffled(readings: &[Reading], order: Vec<u32>) -> Vec<Reading> {
    let mut keyed: Vec<_> = readings.iter().cloned().zip(order).collect();
    keyed.sort_by_key(|(_, k)| *k);
    keyed.into_iter().map(|(r, _)| r).collect()
}

/// Distinct readings (one per unicorn and millisecond) of the first
/// `unicorns` of [`NAMES`], taken at one of `steps` steps of `step_ms` of
/// event time, plus jittered milliseconds; the fourth unicorn, if drawn, is
/// a late device whose readings are 15 minutes older than the others'.
fn readings(unicorns: usize, steps: i64, step_ms: i64) -> impl Strategy<Value = Vec<Reading>> {
    prop::collection::vec(
        (
            0..unicorns,
            0..steps,
            0i64..1000,
            0i16..200,
            0i16..300,
            0i16..300,
        ),
        1..250,
    )
    .prop_map(move |rows| {
        let mut seen = std::collections::HashSet::new();
        rows.into_iter()
            .filter(|&(u, s, ms, ..)| seen.insert((u, s * step_ms + ms)))
            .map(|(u, s, ms, d, m, h)| {
                let late = if u == 3 { 0 } else { 15 * MINUTE_MS };
                Reading {
                    name: UnicornName::new(NAMES[u]).unwrap(),
                    status_time: StatusTime::from_epoch_millis(DAY + late + s * step_ms + ms)
                        .unwrap(),
                    latitude: 40.749167,
                    longitude: -73.985184,
                    distance: d,
                    magic_points: m,
                    health_points: h,
                }
            })
            .collect()
    })
}

/// What happens after a batch.
#[derive(Debug, Clone, Copy)]
enum After {
    /// Nothing: the next batch.
    Next,
    /// The checkpoint moves (the changed minutes are stored first).
    Checkpoint,
    /// The consumer dies: its window is gone, the next one replays from
    /// the last checkpoint.
    Crash,
    /// The consumer checkpoints and hands its unicorns on (a lease moved, or
    /// the shard ended and a child continues) to a new consumer.
    HandOff,
}

fn after() -> impl Strategy<Value = After> {
    prop_oneof![
        6 => Just(After::Next),
        3 => Just(After::Checkpoint),
        1 => Just(After::Crash),
        1 => Just(After::HandOff),
    ]
}

proptest! {
    /// One consumer, emitting every `due_every` readings, never crashing nor
    /// storing: whatever the order, the last emission of every minute is
    /// exact. Three unicorns, a reading a second for four minutes: dense
    /// minutes.
    #[test]
    fn any_order_gives_the_exact_last_emission(
        readings in readings(3, 240, 1000),
        order in prop::collection::vec(any::<u32>(), 250),
        due_every in 1usize..40,
    ) {
        let mut window = MinuteWindow::new(rules());
        let mut table = Table::default();
        for (i, r) in shuffled(&readings, order).iter().enumerate() {
            let now = i64::try_from(i).unwrap();
            window.push(r, now);
            if i % due_every == 0 {
                let due = window.due(now);
                table.emit(&mut window, &due);
            }
        }
        let due = window.due_all();
        table.emit(&mut window, &due);
        prop_assert_eq!(table.0, expected(&readings));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// A small fleet over twenty minutes, one of them a late device.
    #[test]
    fn any_order_batches_duplicates_and_crashes_give_the_exact_table(
        readings in readings(4, 600, 2000),
        order in prop::collection::vec(any::<u32>(), 250),
        cuts in prop::collection::vec((1usize..40, after(), any::<bool>()), 1..60),
    ) {
        let rules = rules();
        let delivered = shuffled(&readings, order);
        // Cut into batches; each may be delivered twice (at least once).
        let mut batches = Vec::new();
        let mut at = 0;
        for (len, then, twice) in cuts.iter().cycle() {
            if at >= delivered.len() {
                break;
            }
            let end = (at + len).min(delivered.len());
            batches.push((at..end, *then, *twice));
            at = end;
        }

        let mut store = Store::default();
        let mut table = Table::default();
        let mut consumer = Consumer::new(rules, &store);
        let mut checkpoint = 0; // index of the first batch not checkpointed
        let mut i = 0;
        let mut crashes = 0;
        let mut now = 0;
        while i < batches.len() {
            let (range, then, twice) = batches[i].clone();
            now += 700;
            consumer.batch(&store, &delivered[range.clone()], now, &mut table);
            if twice {
                consumer.batch(&store, &delivered[range], now, &mut table);
            }
            i += 1;
            match then {
                After::Next => {}
                After::Checkpoint => {
                    store.save(&mut consumer.window);
                    checkpoint = i;
                }
                After::Crash if crashes < 5 => {
                    crashes += 1;
                    consumer = Consumer::new(rules, &store);
                    i = checkpoint;
                }
                After::Crash => {}
                After::HandOff => {
                    store.save(&mut consumer.window);
                    checkpoint = i;
                    consumer = Consumer::new(rules, &store);
                }
            }
        }
        consumer.drain(&mut table);
        store.save(&mut consumer.window);
        prop_assert_eq!(table.0, expected(&readings));
    }
}
