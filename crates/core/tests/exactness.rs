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
//! arithmetic over the readings.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use proptest::prelude::*;
use wildrydes_core::time::MINUTE_MS;
use wildrydes_core::window::{MinuteState, MinuteWindow, WindowRules};
use wildrydes_core::{Aggregate, Reading, StatusTime, UnicornName};

const DAY: i64 = 1_455_235_200_000; // 2016-02-12 00:00:00
const NAMES: [&str; 4] = ["Shadowfax", "Rocinante", "Bucephalus", "Pegasus"];

type Key = (i64, String);
type Figures = (i16, i16, i16, i16, i16);

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
        table.put(&due);
        self.window
            .emitted(due.iter().map(|d| (&d.name, d.minute_ms)));
    }

    /// The end of the input (or a shard fallen silent): everything out.
    fn drain(&mut self, table: &mut Table) {
        let due = self.window.due_all();
        table.put(&due);
        self.window
            .emitted(due.iter().map(|d| (&d.name, d.minute_ms)));
    }
}

/// `UnicornSensorData` as the stream processor leaves it: the last
/// aggregate emitted for each key wins.
#[derive(Default)]
struct Table(BTreeMap<Key, Aggregate>);

impl Table {
    fn put(&mut self, due: &[wildrydes_core::window::DueMinute]) {
        for d in due {
            let a = d.aggregate.clone().unwrap();
            self.0.insert((d.minute_ms, d.name.to_string()), a);
        }
    }

    fn figures(&self) -> BTreeMap<Key, Figures> {
        self.0
            .iter()
            .map(|(k, a)| {
                let f = (
                    a.distance,
                    a.min_magic_points,
                    a.max_magic_points,
                    a.min_health_points,
                    a.max_health_points,
                );
                (k.clone(), f)
            })
            .collect()
    }
}

/// The table by plain arithmetic: per unicorn and minute, every reading
/// once.
fn expected(readings: &[Reading]) -> BTreeMap<Key, Figures> {
    let mut out: BTreeMap<Key, (i64, i16, i16, i16, i16)> = BTreeMap::new();
    for r in readings {
        let ms = r.status_time.epoch_millis();
        let e = out
            .entry((ms - ms.rem_euclid(MINUTE_MS), r.name.to_string()))
            .or_insert((0, i16::MAX, i16::MIN, i16::MAX, i16::MIN));
        e.0 += i64::from(r.distance);
        e.1 = e.1.min(r.magic_points);
        e.2 = e.2.max(r.magic_points);
        e.3 = e.3.min(r.health_points);
        e.4 = e.4.max(r.health_points);
    }
    out.into_iter()
        .map(|(k, (d, a, b, c, e))| (k, (i16::try_from(d).unwrap(), a, b, c, e)))
        .collect()
}

/// Distinct readings of a small fleet over twenty minutes of event time;
/// one unicorn is a late device whose readings are 15 minutes older.
fn readings() -> impl Strategy<Value = Vec<Reading>> {
    prop::collection::vec(
        (
            0usize..4,
            0i64..600,
            0i64..1000,
            0i16..200,
            0i16..300,
            0i16..300,
        ),
        1..250,
    )
    .prop_map(|rows| {
        let mut seen = std::collections::HashSet::new();
        rows.into_iter()
            .filter(|&(u, s, ms, ..)| seen.insert((u, s * 1000 + ms)))
            .map(|(u, s, ms, d, m, h)| {
                let late = if u == 3 { 0 } else { 15 * MINUTE_MS };
                Reading {
                    name: UnicornName::new(NAMES[u]).unwrap(),
                    status_time: StatusTime::from_epoch_millis(DAY + late + s * 2000 + ms).unwrap(),
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
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn any_order_batches_duplicates_and_crashes_give_the_exact_table(
        readings in readings(),
        order in prop::collection::vec(any::<u32>(), 250),
        cuts in prop::collection::vec((1usize..40, after(), any::<bool>()), 1..60),
    ) {
        let rules = WindowRules {
            allowed_lateness: Duration::from_secs(10),
            horizon: Duration::from_secs(3600),
            idle_after: Duration::from_secs(30),
        };
        // Any interleaving.
        let mut delivered: Vec<_> = readings.iter().cloned().zip(order).collect();
        delivered.sort_by_key(|(_, k)| *k);
        let delivered: Vec<Reading> = delivered.into_iter().map(|(r, _)| r).collect();
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
        prop_assert_eq!(table.figures(), expected(&readings));
    }
}
