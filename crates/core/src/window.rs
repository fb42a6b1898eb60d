//! `MinuteWindow`: the per-unicorn, per-minute aggregation that the workshop's
//! Kinesis Data Analytics application did, on event time.
//!
//! A minute is the minute of the readings' own `StatusTime`, not of their
//! arrival, so a replay of old data aggregates to the same records. Each
//! unicorn has its own event-time clock, the latest `StatusTime` seen for it;
//! a minute closes when that clock has passed the minute's end by the allowed
//! lateness (later data shows it is complete), or when the caller flushes it
//! (idle unicorns, end of input). A reading for a minute that has closed is
//! late: it is counted and reported, never folded in silently.
//!
//! At-least-once delivery means the same reading may arrive twice: a reading
//! with the same unicorn and the same millisecond as one already in an open
//! minute is a duplicate and is not counted again.
//!
//! The open state serialises to a string map ([`MinuteWindow::to_state`]) so
//! that a Lambda tumbling window can carry it between invocations.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD as B64;
use serde::{Deserialize, Serialize};

use crate::aggregate::Aggregate;
use crate::error::ValidationError;
use crate::name::UnicornName;
use crate::reading::Reading;
use crate::time::{MINUTE_MS, StatusTime};

/// Lateness allowed by default: readings are sent once a second by one
/// producer per unicorn, so ten seconds covers retries and batching without
/// holding minutes open for long.
pub const DEFAULT_ALLOWED_LATENESS: Duration = Duration::from_secs(10);

/// Key prefix of a unicorn's entry in the serialised state; the prefix keeps
/// unicorn names apart from [`META_KEY`].
const UNICORN_KEY_PREFIX: &str = "u/";
/// Key of the window's own counters in the serialised state.
const META_KEY: &str = "meta";

/// What [`MinuteWindow::push`] did with a reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Push {
    /// Folded into its open minute.
    Accepted,
    /// The same unicorn and millisecond is already in its open minute.
    Duplicate,
    /// Its minute had already closed; the caller decides what to do with it.
    Late,
}

/// A closed minute whose figures do not fit an aggregate (the distance summed
/// past SMALLINT, which only a misbehaving producer can cause).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("minute {minute} of unicorn {name} cannot be aggregated: {error}")]
pub struct ClosedMinuteError {
    /// The unicorn.
    pub name: UnicornName,
    /// The minute.
    pub minute: StatusTime,
    /// What was wrong with its figures.
    pub error: ValidationError,
}

/// Why a serialised state could not be restored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// An entry's key is neither the meta key nor a unicorn.
    #[error("window state key {key:?} is not ours: was the state written by another program?")]
    UnknownKey {
        /// The key.
        key: String,
    },
    /// An entry could not be decoded.
    #[error("window state entry {key:?} is corrupt ({reason}): discard the state to start afresh")]
    Corrupt {
        /// The key.
        key: String,
        /// What was wrong.
        reason: String,
    },
}

/// Open minutes of every unicorn, with the counters of what was not folded in.
#[derive(Debug, Clone, PartialEq)]
pub struct MinuteWindow {
    /// How far behind a unicorn's latest reading a reading may be and still be
    /// folded in, in milliseconds.
    lateness_ms: i64,
    /// Per unicorn: its event-time clock and open minutes.
    unicorns: HashMap<UnicornName, UnicornMinutes>,
    /// Minutes closed and not yet taken by the caller.
    closed: Vec<Result<Aggregate, ClosedMinuteError>>,
    /// Readings that arrived after their minute closed, since the window began.
    late: u64,
    /// Readings dropped as duplicates, since the window began.
    duplicates: u64,
}

/// One unicorn's part of the window.
#[derive(Debug, Clone, PartialEq, Default)]
struct UnicornMinutes {
    /// The latest `StatusTime` seen: this unicorn's event-time clock.
    latest_ms: i64,
    /// Every minute starting before this (epoch ms, a minute boundary) is closed.
    closed_before_ms: i64,
    /// Open minutes by their start (epoch ms).
    open: BTreeMap<i64, MinuteFigures>,
}

/// The running figures of one open minute.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct MinuteFigures {
    distance: i64,
    min_magic: i16,
    max_magic: i16,
    min_health: i16,
    max_health: i16,
    /// Millisecond offsets in the minute of the readings folded in, sorted:
    /// how a duplicate is recognised.
    seen: Vec<u16>,
}

impl MinuteFigures {
    fn first(r: &Reading, offset: u16) -> Self {
        Self {
            distance: i64::from(r.distance),
            min_magic: r.magic_points,
            max_magic: r.magic_points,
            min_health: r.health_points,
            max_health: r.health_points,
            seen: vec![offset],
        }
    }

    /// Folds `r` in, unless a reading at the same offset already was.
    fn fold(&mut self, r: &Reading, offset: u16) -> Push {
        let Err(at) = self.seen.binary_search(&offset) else {
            return Push::Duplicate;
        };
        self.seen.insert(at, offset);
        self.distance += i64::from(r.distance);
        self.min_magic = self.min_magic.min(r.magic_points);
        self.max_magic = self.max_magic.max(r.magic_points);
        self.min_health = self.min_health.min(r.health_points);
        self.max_health = self.max_health.max(r.health_points);
        Push::Accepted
    }

    fn into_aggregate(
        self,
        name: &UnicornName,
        minute_ms: i64,
    ) -> Result<Aggregate, ClosedMinuteError> {
        let minute = StatusTime::from_trusted_millis(minute_ms);
        let error = |error| ClosedMinuteError {
            name: name.clone(),
            minute,
            error,
        };
        let distance = i16::try_from(self.distance).map_err(|_| {
            error(ValidationError::OutOfRange {
                field: crate::error::Field::Distance,
                shown: self.distance.to_string(),
                min: 0.0,
                max: f64::from(i16::MAX),
            })
        })?;
        Aggregate {
            name: name.clone(),
            status_time: minute,
            distance,
            min_magic_points: self.min_magic,
            max_magic_points: self.max_magic,
            min_health_points: self.min_health,
            max_health_points: self.max_health,
        }
        .validated()
        .map_err(error)
    }
}

impl UnicornMinutes {
    /// Closes every open minute that starts before `before_ms` (a boundary).
    fn close_before(
        &mut self,
        name: &UnicornName,
        before_ms: i64,
        out: &mut Vec<Result<Aggregate, ClosedMinuteError>>,
    ) {
        if before_ms <= self.closed_before_ms {
            return;
        }
        self.closed_before_ms = before_ms;
        let still_open = self.open.split_off(&before_ms);
        for (minute, figures) in std::mem::replace(&mut self.open, still_open) {
            out.push(figures.into_aggregate(name, minute));
        }
    }
}

/// The start of the minute holding `ms`.
fn minute_of(ms: i64) -> i64 {
    ms - ms.rem_euclid(MINUTE_MS)
}

impl MinuteWindow {
    /// An empty window that folds in readings up to `allowed_lateness` behind
    /// their unicorn's latest one.
    pub fn new(allowed_lateness: Duration) -> Self {
        Self {
            lateness_ms: i64::try_from(allowed_lateness.as_millis()).unwrap_or(i64::MAX),
            unicorns: HashMap::new(),
            closed: Vec::new(),
            late: 0,
            duplicates: 0,
        }
    }

    /// Folds one reading in, and closes the minutes its unicorn's clock has
    /// now passed by the allowed lateness.
    pub fn push(&mut self, r: &Reading) -> Push {
        let ms = r.status_time.epoch_millis();
        let minute = minute_of(ms);
        let unicorn = self
            .unicorns
            .entry(r.name.clone())
            .or_insert_with(|| UnicornMinutes {
                latest_ms: ms,
                closed_before_ms: i64::MIN,
                open: BTreeMap::new(),
            });
        if minute < unicorn.closed_before_ms {
            self.late += 1;
            return Push::Late;
        }
        let offset = u16::try_from(ms - minute).unwrap_or(u16::MAX);
        let pushed = match unicorn.open.get_mut(&minute) {
            Some(figures) => figures.fold(r, offset),
            None => {
                unicorn.open.insert(minute, MinuteFigures::first(r, offset));
                Push::Accepted
            }
        };
        if pushed == Push::Duplicate {
            self.duplicates += 1;
        }
        if ms > unicorn.latest_ms {
            unicorn.latest_ms = ms;
            let horizon = ms.saturating_sub(self.lateness_ms);
            unicorn.close_before(&r.name, minute_of(horizon), &mut self.closed);
        }
        pushed
    }

    /// Closes every minute that ends at or before `t`, for every unicorn:
    /// the idle flush, for unicorns that stopped sending. Readings for those
    /// minutes that arrive afterwards are late.
    pub fn flush_before(&mut self, t: StatusTime) {
        let before = minute_of(t.epoch_millis());
        for (name, unicorn) in &mut self.unicorns {
            unicorn.close_before(name, before, &mut self.closed);
        }
    }

    /// Closes the minutes of unicorns that fell silent: every minute that
    /// ended more than `idle` before the latest reading of any unicorn. Event
    /// time throughout, so a replay of old data flushes exactly as live data
    /// did. `idle` should exceed the allowed lateness, or it closes minutes
    /// that active unicorns are still filling.
    pub fn flush_idle(&mut self, idle: Duration) {
        let Some(latest) = self.unicorns.values().map(|u| u.latest_ms).max() else {
            return;
        };
        let idle_ms = i64::try_from(idle.as_millis()).unwrap_or(i64::MAX);
        self.flush_before(StatusTime::from_trusted_millis(
            latest.saturating_sub(idle_ms).max(0),
        ));
    }

    /// Closes every open minute: the end of the input.
    pub fn flush_all(&mut self) {
        for (name, unicorn) in &mut self.unicorns {
            if let Some((&last, _)) = unicorn.open.last_key_value() {
                unicorn.close_before(name, last + MINUTE_MS, &mut self.closed);
            }
        }
    }

    /// The minutes closed since the last call, each as its aggregate.
    pub fn take_closed(&mut self) -> Vec<Result<Aggregate, ClosedMinuteError>> {
        std::mem::take(&mut self.closed)
    }

    /// How many minutes are open, across all unicorns.
    pub fn open_minutes(&self) -> usize {
        self.unicorns.values().map(|u| u.open.len()).sum()
    }

    /// Readings that arrived after their minute had closed.
    pub fn late_count(&self) -> u64 {
        self.late
    }

    /// Readings dropped as duplicates of one already folded in.
    pub fn duplicate_count(&self) -> u64 {
        self.duplicates
    }

    /// The window as a string map: what a Lambda tumbling window carries
    /// between invocations. Minutes closed but not yet taken are not part of
    /// it; take them first.
    pub fn to_state(&self) -> HashMap<String, String> {
        let mut state = HashMap::with_capacity(self.unicorns.len() + 1);
        let meta = serde_json::json!([self.lateness_ms, self.late, self.duplicates]);
        state.insert(META_KEY.to_owned(), meta.to_string());
        for (name, u) in &self.unicorns {
            let open: Vec<_> = u
                .open
                .iter()
                .map(|(minute, f)| {
                    let seen: Vec<u8> = f.seen.iter().flat_map(|o| o.to_be_bytes()).collect();
                    StoredMinute(
                        *minute,
                        f.distance,
                        f.min_magic,
                        f.max_magic,
                        f.min_health,
                        f.max_health,
                        B64.encode(seen),
                    )
                })
                .collect();
            let entry = StoredUnicorn(u.latest_ms, u.closed_before_ms, open);
            state.insert(
                format!("{UNICORN_KEY_PREFIX}{name}"),
                serde_json::to_string(&entry).unwrap_or_default(),
            );
        }
        state
    }

    /// Restores a window from [`MinuteWindow::to_state`]. An empty map is an
    /// empty window with `allowed_lateness`; otherwise the lateness stored
    /// with the state wins, so a window keeps its rules across invocations.
    pub fn from_state(
        state: &HashMap<String, String>,
        allowed_lateness: Duration,
    ) -> Result<Self, StateError> {
        let mut window = Self::new(allowed_lateness);
        for (key, value) in state {
            let corrupt = |reason: String| StateError::Corrupt {
                key: key.clone(),
                reason,
            };
            if key == META_KEY {
                let (lateness, late, duplicates): (i64, u64, u64) =
                    serde_json::from_str(value).map_err(|e| corrupt(e.to_string()))?;
                window.lateness_ms = lateness;
                window.late = late;
                window.duplicates = duplicates;
                continue;
            }
            let Some(name) = key.strip_prefix(UNICORN_KEY_PREFIX) else {
                return Err(StateError::UnknownKey { key: key.clone() });
            };
            let name = UnicornName::new(name).map_err(|e| corrupt(e.to_string()))?;
            let StoredUnicorn(latest_ms, closed_before_ms, minutes) =
                serde_json::from_str(value).map_err(|e| corrupt(e.to_string()))?;
            let mut open = BTreeMap::new();
            for StoredMinute(
                minute,
                distance,
                min_magic,
                max_magic,
                min_health,
                max_health,
                seen,
            ) in minutes
            {
                let bytes = B64.decode(seen).map_err(|e| corrupt(e.to_string()))?;
                let in_range = StatusTime::from_epoch_millis(minute).is_ok();
                if bytes.len() % 2 != 0 || minute_of(minute) != minute || !in_range {
                    return Err(corrupt(format!("minute {minute} is malformed")));
                }
                let seen = bytes
                    .chunks_exact(2)
                    .map(|p| u16::from_be_bytes([p[0], p[1]]))
                    .collect();
                open.insert(
                    minute,
                    MinuteFigures {
                        distance,
                        min_magic,
                        max_magic,
                        min_health,
                        max_health,
                        seen,
                    },
                );
            }
            window.unicorns.insert(
                name,
                UnicornMinutes {
                    latest_ms,
                    closed_before_ms,
                    open,
                },
            );
        }
        Ok(window)
    }
}

/// A unicorn's entry in the serialised state: latest ms, closed-before ms, open minutes.
#[derive(Serialize, Deserialize)]
struct StoredUnicorn(i64, i64, Vec<StoredMinute>);

/// An open minute in the serialised state: start, distance, min/max magic,
/// min/max health, and the seen offsets as base64 big-endian u16s.
#[derive(Serialize, Deserialize)]
struct StoredMinute(i64, i64, i16, i16, i16, i16, String);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A reading of `name` at `ms` after 2016-02-12 00:00:00 with the given figures.
    fn reading(name: &str, ms: i64, distance: i16, magic: i16, health: i16) -> Reading {
        Reading {
            name: UnicornName::new(name).unwrap(),
            status_time: StatusTime::from_epoch_millis(1_455_235_200_000 + ms).unwrap(),
            latitude: 40.749167,
            longitude: -73.985184,
            distance,
            magic_points: magic,
            health_points: health,
        }
    }

    fn closed(window: &mut MinuteWindow) -> Vec<Aggregate> {
        let mut out: Vec<_> = window
            .take_closed()
            .into_iter()
            .map(Result::unwrap)
            .collect();
        out.sort_by(|a, b| (a.status_time, &a.name).cmp(&(b.status_time, &b.name)));
        out
    }

    #[test]
    fn a_minute_closes_once_later_data_passes_the_lateness() {
        let mut w = MinuteWindow::new(Duration::from_secs(10));
        assert_eq!(
            w.push(&reading("Shadowfax", 1_000, 100, 150, 150)),
            Push::Accepted
        );
        assert_eq!(
            w.push(&reading("Shadowfax", 59_000, 120, 149, 151)),
            Push::Accepted
        );
        assert_eq!(
            w.push(&reading("Shadowfax", 65_000, 110, 148, 152)),
            Push::Accepted
        );
        assert!(
            closed(&mut w).is_empty(),
            "12:01:05 is within 10 s of the minute's end"
        );
        assert_eq!(
            w.push(&reading("Shadowfax", 70_000, 110, 148, 152)),
            Push::Accepted
        );
        let out = closed(&mut w);
        assert_eq!(out.len(), 1);
        assert_eq!(
            out[0].to_json(),
            r#"{"Name":"Shadowfax","StatusTime":"2016-02-12 00:00:00.000","Distance":220,"MinMagicPoints":149,"MaxMagicPoints":150,"MinHealthPoints":150,"MaxHealthPoints":151}"#
        );
        assert_eq!(w.open_minutes(), 1);
    }

    #[test]
    fn late_readings_are_counted_not_folded() {
        let mut w = MinuteWindow::new(Duration::from_secs(5));
        w.push(&reading("Shadowfax", 30_000, 100, 150, 150));
        w.push(&reading("Shadowfax", 66_000, 100, 150, 150));
        assert_eq!(closed(&mut w).len(), 1);
        assert_eq!(
            w.push(&reading("Shadowfax", 59_999, 100, 10, 150)),
            Push::Late
        );
        assert_eq!(w.late_count(), 1);
        assert!(closed(&mut w).is_empty());
    }

    #[test]
    fn duplicates_do_not_double_the_distance() {
        let mut w = MinuteWindow::new(Duration::ZERO);
        let r = reading("Shadowfax", 1_500, 100, 150, 150);
        assert_eq!(w.push(&r), Push::Accepted);
        assert_eq!(w.push(&r), Push::Duplicate);
        w.flush_all();
        assert_eq!(closed(&mut w)[0].distance, 100);
        assert_eq!(w.duplicate_count(), 1);
    }

    #[test]
    fn unicorns_keep_their_own_clocks() {
        let mut w = MinuteWindow::new(Duration::ZERO);
        w.push(&reading("Shadowfax", 1_000, 1, 1, 1));
        w.push(&reading("Rocinante", 300_000, 1, 1, 1));
        assert!(
            closed(&mut w).is_empty(),
            "another unicorn's clock closes nothing"
        );
        w.flush_before(StatusTime::from_epoch_millis(1_455_235_200_000 + 60_000).unwrap());
        assert_eq!(closed(&mut w).len(), 1);
        assert_eq!(w.push(&reading("Shadowfax", 2_000, 1, 1, 1)), Push::Late);
    }

    #[test]
    fn silent_unicorns_are_flushed_by_the_others_clock() {
        let mut w = MinuteWindow::new(Duration::from_secs(10));
        w.push(&reading("Shadowfax", 1_000, 1, 1, 1));
        w.push(&reading("Rocinante", 100_000, 1, 1, 1));
        w.flush_idle(Duration::from_secs(60));
        assert!(
            closed(&mut w).is_empty(),
            "Shadowfax's minute ended only 40 s before"
        );
        w.push(&reading("Rocinante", 125_000, 1, 1, 1));
        w.flush_idle(Duration::from_secs(60));
        let out = closed(&mut w);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].name.as_str(), "Shadowfax");
    }

    #[test]
    fn a_distance_past_smallint_is_reported_not_wrapped() {
        let mut w = MinuteWindow::new(Duration::ZERO);
        w.push(&reading("Shadowfax", 0, 30_000, 1, 1));
        w.push(&reading("Shadowfax", 1, 30_000, 1, 1));
        w.flush_all();
        let out = w.take_closed();
        let err = out[0].clone().unwrap_err();
        assert_eq!(
            err.to_string(),
            "minute 2016-02-12 00:00:00.000 of unicorn Shadowfax cannot be aggregated: field Distance is 60000, outside 0..=32767"
        );
    }

    /// What a Lambda tumbling window must carry: a shard takes at most 1,000
    /// readings a second, so at most 1,000 unicorns at one reading a second.
    #[test]
    fn a_full_shard_of_unicorns_fits_the_lambda_state_limit() {
        let mut w = MinuteWindow::new(Duration::from_secs(10));
        for u in 0..1000 {
            let name = format!("Unicorn-{u:04}");
            // A full minute, and the first 10 s of the next (the boundary).
            for s in 0..70 {
                w.push(&reading(&name, s * 1000 + 189, 150, 120, 130));
            }
        }
        assert_eq!(w.open_minutes(), 2000);
        let bytes: usize = w.to_state().iter().map(|(k, v)| k.len() + v.len()).sum();
        let per_unicorn = bytes / 1000;
        eprintln!("window state: {bytes} bytes for 1000 unicorns, {per_unicorn} per unicorn");
        assert!(per_unicorn < 400, "{per_unicorn} bytes per unicorn");
        assert!(bytes < 1024 * 1024 / 2, "{bytes} bytes for a full shard");
    }

    #[test]
    fn corrupt_state_is_refused_with_the_key() {
        let state = HashMap::from([("u/Shadowfax".to_owned(), "[1,2".to_owned())]);
        assert!(matches!(
            MinuteWindow::from_state(&state, DEFAULT_ALLOWED_LATENESS),
            Err(StateError::Corrupt { key, .. }) if key == "u/Shadowfax"
        ));
        let state = HashMap::from([("other".to_owned(), "1".to_owned())]);
        assert!(matches!(
            MinuteWindow::from_state(&state, DEFAULT_ALLOWED_LATENESS),
            Err(StateError::UnknownKey { .. })
        ));
    }

    /// A few unicorns, each sending one reading per second with jittered
    /// milliseconds, over a few minutes.
    fn fleet() -> impl Strategy<Value = Vec<Reading>> {
        prop::collection::vec(
            (
                0usize..3,
                0i64..240,
                0i64..1000,
                0i16..300,
                0i16..300,
                0i16..300,
            ),
            1..300,
        )
        .prop_map(|rows| {
            let names = ["Shadowfax", "Rocinante", "Bucephalus"];
            let mut seen = std::collections::HashSet::new();
            rows.into_iter()
                .filter(|&(u, s, _, _, _, _)| seen.insert((u, s)))
                .map(|(u, s, ms, d, m, h)| reading(names[u], s * 1000 + ms, d, m, h))
                .collect()
        })
    }

    /// The aggregates of `readings` taken in time order in one go.
    fn reference(readings: &[Reading], lateness: Duration) -> Vec<Aggregate> {
        let mut sorted = readings.to_vec();
        sorted.sort_by_key(|r| r.status_time);
        let mut w = MinuteWindow::new(lateness);
        for r in &sorted {
            assert_eq!(w.push(r), Push::Accepted);
        }
        w.flush_all();
        closed(&mut w)
    }

    proptest! {
        #[test]
        fn arrival_order_within_the_lateness_does_not_matter(
            readings in fleet(),
            jitter in prop::collection::vec(0i64..=10_000, 300),
        ) {
            let lateness = Duration::from_secs(10);
            // Each reading arrives at its time plus up to the lateness: any
            // reading then trails every earlier arrival by at most the lateness.
            let mut arrival: Vec<_> = readings.iter().zip(&jitter)
                .map(|(r, j)| (r.status_time.epoch_millis() + j, r.clone()))
                .collect();
            arrival.sort_by_key(|(at, _)| *at);
            let mut w = MinuteWindow::new(lateness);
            for (_, r) in &arrival {
                prop_assert_eq!(w.push(r), Push::Accepted);
            }
            w.flush_all();
            prop_assert_eq!(closed(&mut w), reference(&readings, lateness));
            prop_assert_eq!(w.late_count(), 0);
        }

        #[test]
        fn any_batching_with_state_carried_gives_the_same_aggregates(
            readings in fleet(),
            cuts in prop::collection::vec(0usize..300, 0..20),
            duplicate_every in 2usize..10,
        ) {
            let lateness = Duration::from_secs(10);
            let mut sorted = readings.clone();
            sorted.sort_by_key(|r| r.status_time);
            // At-least-once: some readings come twice, right after themselves.
            let delivered: Vec<_> = sorted.iter().enumerate()
                .flat_map(|(i, r)| std::iter::repeat_n(r, if i % duplicate_every == 0 { 2 } else { 1 }))
                .cloned()
                .collect();
            let mut cuts: Vec<_> = cuts.into_iter().map(|c| c.min(delivered.len())).collect();
            cuts.push(0);
            cuts.push(delivered.len());
            cuts.sort_unstable();
            let mut state = HashMap::new();
            let mut out = Vec::new();
            for pair in cuts.windows(2) {
                let mut w = MinuteWindow::from_state(&state, lateness).unwrap();
                for r in &delivered[pair[0]..pair[1]] {
                    w.push(r);
                }
                out.extend(closed(&mut w));
                state = w.to_state();
            }
            let mut w = MinuteWindow::from_state(&state, lateness).unwrap();
            w.flush_all();
            out.extend(closed(&mut w));
            out.sort_by(|a, b| (a.status_time, &a.name).cmp(&(b.status_time, &b.name)));
            prop_assert_eq!(out, reference(&readings, lateness));
            prop_assert_eq!(w.duplicate_count() as usize, delivered.len() - sorted.len());
        }

        #[test]
        fn state_round_trips(readings in fleet()) {
            let mut w = MinuteWindow::new(Duration::from_secs(10));
            for r in &readings {
                w.push(r);
            }
            w.take_closed();
            let restored = MinuteWindow::from_state(&w.to_state(), Duration::ZERO).unwrap();
            prop_assert_eq!(restored, w);
        }
    }
}
