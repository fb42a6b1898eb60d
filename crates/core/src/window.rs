//! `MinuteWindow`: the per-unicorn, per-minute aggregation that the workshop's
//! Kinesis Data Analytics application did, on event time, kept exact
//! whatever the order in which readings arrive.
//!
//! A minute is the minute of the readings' own `StatusTime`, not of their
//! arrival, so a replay of old data aggregates to the same records. Each
//! unicorn has its own event-time clock, the latest `StatusTime` seen for it,
//! and only its own progress closes its minutes: a minute is *due* (its
//! aggregate goes out) once that clock has passed the minute's end by the
//! allowed lateness, or once nothing was folded into it for `idle_after` of
//! wall time (the unicorn fell silent). Other unicorns' clocks close nothing.
//!
//! A minute stays in the window after it is emitted, with its figures and the
//! offsets of its readings, for the *horizon* (measured on the unicorn's own
//! clock). A reading that arrives after its minute was emitted is folded in
//! and the minute becomes due again, so the item it overwrites is replaced by
//! the complete aggregate, never by a partial one. Only a reading more than
//! the horizon older than its unicorn's newest one is refused
//! ([`Push::BeyondHorizon`]).
//!
//! At-least-once delivery means the same reading may arrive twice: a reading
//! with the same unicorn and the same millisecond as one already folded into
//! its minute is a duplicate and is not counted again, for the whole horizon.
//!
//! The window is a cache of state that lives with the keys, not with the
//! shards ([`crate::minute_store`] keeps it per unicorn in DynamoDB): it says
//! which minutes changed since they were last stored ([`MinuteWindow::dirty`])
//! and takes back the versions they were stored under. Wall time is always
//! passed in (epoch milliseconds), never read here, so the logic is
//! deterministic under test.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Duration;

use crate::aggregate::Aggregate;
use crate::error::ValidationError;
use crate::name::UnicornName;
use crate::reading::Reading;
use crate::time::{MINUTE_MS, StatusTime};

/// Lateness allowed by default: readings are sent once a second by one
/// producer per unicorn, so ten seconds covers retries and batching without
/// holding minutes back for long. A reading later than this still counts
/// (the minute is emitted again); the lateness only decides when the first
/// emission goes out.
pub const DEFAULT_ALLOWED_LATENESS: Duration = Duration::from_secs(10);

/// How far behind its unicorn's newest reading a reading still counts, by
/// default: an hour covers a device reconnecting after a long tunnel.
pub const DEFAULT_HORIZON: Duration = Duration::from_secs(3600);

/// Wall time after the last reading folded into a minute at which the
/// minute is emitted even though its unicorn's clock has not passed it:
/// the unicorn fell silent.
pub const DEFAULT_IDLE_AFTER: Duration = Duration::from_secs(30);

/// The rules a window closes and forgets minutes by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowRules {
    /// How far a unicorn's clock must pass a minute's end before the minute
    /// is first emitted.
    pub allowed_lateness: Duration,
    /// How long (on the unicorn's clock) a minute is remembered after its
    /// end; a reading older than the newest by more than this is refused.
    pub horizon: Duration,
    /// Wall time without a new reading after which a minute is emitted.
    pub idle_after: Duration,
}

impl Default for WindowRules {
    fn default() -> Self {
        Self {
            allowed_lateness: DEFAULT_ALLOWED_LATENESS,
            horizon: DEFAULT_HORIZON,
            idle_after: DEFAULT_IDLE_AFTER,
        }
    }
}

/// What [`MinuteWindow::push`] did with a reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Push {
    /// Folded into its minute.
    Accepted,
    /// Folded into a minute that was already emitted: it will be emitted
    /// again, complete.
    Corrected,
    /// The same unicorn and millisecond is already in its minute.
    Duplicate,
    /// More than the horizon older than its unicorn's newest reading, which
    /// is given: refused, the minute's item is left as it is.
    BeyondHorizon {
        /// The unicorn's newest reading.
        newest: StatusTime,
    },
}

/// A minute whose figures do not fit an aggregate (the distance summed
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

/// One minute of one unicorn: its running figures, which readings are in
/// them, and where the minute stands. What the minute store keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MinuteState {
    /// SUM of Distance; wider than SMALLINT so an overflow is reported, not wrapped.
    pub distance: i64,
    /// MIN of MagicPoints.
    pub min_magic: i16,
    /// MAX of MagicPoints.
    pub max_magic: i16,
    /// MIN of HealthPoints.
    pub min_health: i16,
    /// MAX of HealthPoints.
    pub max_health: i16,
    /// Millisecond offsets in the minute of the readings folded in, sorted
    /// and distinct: how a duplicate is recognised. One a second, so 60.
    pub seen: Vec<u16>,
    /// Whether exactly these figures were put on the output stream.
    pub emitted: bool,
    /// Wall time (epoch ms) of the last reading folded in.
    pub touched_ms: i64,
    /// The version the store holds; 0 when it was never stored.
    pub version: u64,
}

impl MinuteState {
    fn first(r: &Reading, offset: u16, now_ms: i64) -> Self {
        Self {
            distance: i64::from(r.distance),
            min_magic: r.magic_points,
            max_magic: r.magic_points,
            min_health: r.health_points,
            max_health: r.health_points,
            seen: vec![offset],
            emitted: false,
            touched_ms: now_ms,
            version: 0,
        }
    }

    /// Folds `r` in, unless a reading at the same offset already was.
    fn fold(&mut self, r: &Reading, offset: u16, now_ms: i64) -> bool {
        let Err(at) = self.seen.binary_search(&offset) else {
            return false;
        };
        self.seen.insert(at, offset);
        self.distance += i64::from(r.distance);
        self.min_magic = self.min_magic.min(r.magic_points);
        self.max_magic = self.max_magic.max(r.magic_points);
        self.min_health = self.min_health.min(r.health_points);
        self.max_health = self.max_health.max(r.health_points);
        self.emitted = false;
        self.touched_ms = now_ms;
        true
    }

    /// The latest millisecond folded in, as an offset in the minute.
    fn last_offset(&self) -> i64 {
        self.seen.last().map_or(0, |&o| i64::from(o))
    }

    /// The minute's aggregate, or why its figures cannot be one.
    pub fn aggregate(
        &self,
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

/// A minute in the cache, with whether it changed since it was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Slot {
    state: MinuteState,
    dirty: bool,
}

/// One unicorn's part of the window.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct UnicornMinutes {
    /// The latest `StatusTime` seen (epoch ms): this unicorn's event-time
    /// clock; `None` before its first reading.
    latest_ms: Option<i64>,
    /// Its minutes within the horizon, by start (epoch ms).
    minutes: BTreeMap<i64, Slot>,
    /// The starts of its minutes not yet emitted as they stand.
    pending: BTreeSet<i64>,
    /// The starts of its minutes changed since stored (the slots marked
    /// dirty), so that taking them costs what changed, not what is held.
    changed: BTreeSet<i64>,
}

impl UnicornMinutes {
    fn from_stored(minutes: Vec<(i64, MinuteState)>) -> Self {
        let mut u = Self::default();
        for (start, state) in minutes {
            let last = start + state.last_offset();
            u.latest_ms = Some(u.latest_ms.map_or(last, |l| l.max(last)));
            if !state.emitted {
                u.pending.insert(start);
            }
            u.minutes.insert(
                start,
                Slot {
                    state,
                    dirty: false,
                },
            );
        }
        u
    }
}

/// A minute that is due: its aggregate must go out (or, if its figures
/// cannot be one, the reason must be kept as a reject).
#[derive(Debug, Clone, PartialEq)]
pub struct DueMinute {
    /// The unicorn.
    pub name: UnicornName,
    /// The minute's start, epoch ms.
    pub minute_ms: i64,
    /// Its aggregate as it stands now.
    pub aggregate: Result<Aggregate, ClosedMinuteError>,
}

/// A minute that changed since it was stored: what the store must write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirtyMinute {
    /// The unicorn.
    pub name: UnicornName,
    /// The minute's start, epoch ms.
    pub minute_ms: i64,
    /// Its state as it stands now (`version` is the one it was loaded or
    /// last stored under).
    pub state: MinuteState,
}

/// Counters of what the window did with readings, since it was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WindowCounts {
    /// Readings folded in.
    pub accepted: u64,
    /// Of those, readings folded into a minute already emitted.
    pub corrected: u64,
    /// Readings dropped as duplicates.
    pub duplicates: u64,
    /// Readings refused as beyond the horizon.
    pub beyond_horizon: u64,
}

/// The minutes within the horizon of the unicorns a consumer reads: a cache
/// of the minute store, or (with nothing stored) the whole aggregation.
#[derive(Debug, Clone, PartialEq)]
pub struct MinuteWindow {
    rules: WindowRules,
    lateness_ms: i64,
    horizon_ms: i64,
    idle_ms: i64,
    unicorns: HashMap<UnicornName, UnicornMinutes>,
    /// The unicorns with a minute changed since stored.
    changed: HashSet<UnicornName>,
    counts: WindowCounts,
}

/// The start of the minute holding `ms`.
pub fn minute_of(ms: i64) -> i64 {
    ms - ms.rem_euclid(MINUTE_MS)
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl MinuteWindow {
    /// An empty window with these rules.
    pub fn new(rules: WindowRules) -> Self {
        Self {
            rules,
            lateness_ms: millis(rules.allowed_lateness),
            horizon_ms: millis(rules.horizon),
            idle_ms: millis(rules.idle_after),
            unicorns: HashMap::new(),
            changed: HashSet::new(),
            counts: WindowCounts::default(),
        }
    }

    /// The rules it closes and forgets by.
    pub fn rules(&self) -> WindowRules {
        self.rules
    }

    /// Whether `name`'s minutes are in the window (loaded, or seen).
    pub fn knows(&self, name: &UnicornName) -> bool {
        self.unicorns.contains_key(name)
    }

    /// Puts `name`'s stored minutes in the window, replacing whatever it
    /// held for that unicorn.
    pub fn restore(&mut self, name: UnicornName, minutes: Vec<(i64, MinuteState)>) {
        self.changed.remove(&name);
        self.unicorns
            .insert(name, UnicornMinutes::from_stored(minutes));
    }

    /// Drops `name` from the window: its cached minutes are stale (another
    /// consumer stored newer ones), so they must be loaded again.
    pub fn forget(&mut self, name: &UnicornName) {
        self.unicorns.remove(name);
        self.changed.remove(name);
    }

    /// Folds one reading in at wall time `now_ms`.
    pub fn push(&mut self, r: &Reading, now_ms: i64) -> Push {
        let ms = r.status_time.epoch_millis();
        let start = minute_of(ms);
        let unicorn = self.unicorns.entry(r.name.clone()).or_default();
        if let Some(latest) = unicorn.latest_ms
            && ms < latest.saturating_sub(self.horizon_ms)
        {
            self.counts.beyond_horizon += 1;
            return Push::BeyondHorizon {
                newest: StatusTime::from_trusted_millis(latest),
            };
        }
        let offset = u16::try_from(ms - start).unwrap_or(u16::MAX);
        let pushed = match unicorn.minutes.get_mut(&start) {
            Some(slot) => {
                let was_emitted = slot.state.emitted;
                if !slot.state.fold(r, offset, now_ms) {
                    self.counts.duplicates += 1;
                    return Push::Duplicate;
                }
                slot.dirty = true;
                if was_emitted {
                    Push::Corrected
                } else {
                    Push::Accepted
                }
            }
            None => {
                unicorn.minutes.insert(
                    start,
                    Slot {
                        state: MinuteState::first(r, offset, now_ms),
                        dirty: true,
                    },
                );
                Push::Accepted
            }
        };
        unicorn.pending.insert(start);
        unicorn.changed.insert(start);
        self.changed.insert(r.name.clone());
        unicorn.latest_ms = Some(unicorn.latest_ms.map_or(ms, |l| l.max(ms)));
        self.counts.accepted += 1;
        if pushed == Push::Corrected {
            self.counts.corrected += 1;
        }
        pushed
    }

    /// The minutes due at wall time `now_ms`: not emitted as they stand, and
    /// either passed by their unicorn's clock by the allowed lateness or idle
    /// for `idle_after`. Ordered by minute, then unicorn.
    pub fn due(&self, now_ms: i64) -> Vec<DueMinute> {
        self.collect_due(|u, start, slot| {
            u.latest_ms
                .is_some_and(|l| l >= start + MINUTE_MS + self.lateness_ms)
                || slot.state.touched_ms <= now_ms.saturating_sub(self.idle_ms)
        })
    }

    /// Every minute not emitted as it stands: the end of the input, or a
    /// whole shard fallen silent.
    pub fn due_all(&self) -> Vec<DueMinute> {
        self.collect_due(|_, _, _| true)
    }

    fn collect_due(&self, is_due: impl Fn(&UnicornMinutes, i64, &Slot) -> bool) -> Vec<DueMinute> {
        let mut due = Vec::new();
        for (name, u) in &self.unicorns {
            for &start in &u.pending {
                let Some(slot) = u.minutes.get(&start) else {
                    continue;
                };
                if is_due(u, start, slot) {
                    due.push(DueMinute {
                        name: name.clone(),
                        minute_ms: start,
                        aggregate: slot.state.aggregate(name, start),
                    });
                }
            }
        }
        due.sort_by(|a, b| (a.minute_ms, &a.name).cmp(&(b.minute_ms, &b.name)));
        due
    }

    /// Records that these minutes were put on the output stream (or kept as
    /// rejects) as they stand now.
    pub fn emitted<'a>(&mut self, minutes: impl IntoIterator<Item = (&'a UnicornName, i64)>) {
        for (name, start) in minutes {
            let Some(u) = self.unicorns.get_mut(name) else {
                continue;
            };
            if let Some(slot) = u.minutes.get_mut(&start) {
                slot.state.emitted = true;
                slot.dirty = true;
                u.changed.insert(start);
                self.changed.insert(name.clone());
            }
            u.pending.remove(&start);
        }
    }

    /// The minutes changed since they were loaded or stored.
    pub fn dirty(&self) -> Vec<DirtyMinute> {
        let mut out = Vec::new();
        for name in &self.changed {
            let Some(u) = self.unicorns.get(name) else {
                continue;
            };
            for start in &u.changed {
                if let Some(slot) = u.minutes.get(start) {
                    out.push(DirtyMinute {
                        name: name.clone(),
                        minute_ms: *start,
                        state: slot.state.clone(),
                    });
                }
            }
        }
        out
    }

    /// Records that the store now holds `stored` (as [`MinuteWindow::dirty`]
    /// gave them) under the given versions, then forgets the minutes that
    /// are stored, emitted and beyond their unicorn's horizon.
    pub fn stored(&mut self, stored: &[(DirtyMinute, u64)]) {
        for (minute, version) in stored {
            let Some(u) = self.unicorns.get_mut(&minute.name) else {
                continue;
            };
            if let Some(slot) = u.minutes.get_mut(&minute.minute_ms) {
                slot.state.version = *version;
                // Clean only if nothing changed since `dirty` was taken.
                let unchanged = slot.state
                    == MinuteState {
                        version: *version,
                        ..minute.state.clone()
                    };
                if unchanged {
                    slot.dirty = false;
                    u.changed.remove(&minute.minute_ms);
                }
            }
        }
        // Only the unicorns just stored can have passed their horizon: a
        // clock moves only with a reading, which changes a minute.
        let horizon_ms = self.horizon_ms;
        for (minute, _) in stored {
            let Some(u) = self.unicorns.get_mut(&minute.name) else {
                continue;
            };
            if u.changed.is_empty() {
                self.changed.remove(&minute.name);
            }
            let Some(latest) = u.latest_ms else { continue };
            let forget_before = latest.saturating_sub(horizon_ms);
            while let Some(entry) = u.minutes.first_entry() {
                let (start, slot) = (*entry.key(), entry.get());
                if start + MINUTE_MS > forget_before || slot.dirty || !slot.state.emitted {
                    break;
                }
                entry.remove();
            }
        }
    }

    /// Drops the unicorns with nothing left to emit or store whose last
    /// reading was folded in before wall time `before_ms`: a long-running
    /// consumer's cache does not grow with every unicorn it ever saw. They
    /// are loaded again if they come back.
    pub fn evict_quiet(&mut self, before_ms: i64) -> usize {
        let before = self.unicorns.len();
        self.unicorns.retain(|_, u| {
            !u.pending.is_empty()
                || u.minutes
                    .values()
                    .any(|s| s.dirty || s.state.touched_ms >= before_ms)
        });
        before - self.unicorns.len()
    }

    /// Minutes not emitted as they stand, across all unicorns.
    pub fn open_minutes(&self) -> usize {
        self.unicorns.values().map(|u| u.pending.len()).sum()
    }

    /// Minutes held, emitted or not, across all unicorns.
    pub fn minutes(&self) -> usize {
        self.unicorns.values().map(|u| u.minutes.len()).sum()
    }

    /// Every minute held: unicorn, start, state (for measuring the state).
    pub fn held(&self) -> impl Iterator<Item = (&UnicornName, i64, &MinuteState)> {
        self.unicorns.iter().flat_map(|(name, u)| {
            u.minutes
                .iter()
                .map(move |(&start, slot)| (name, start, &slot.state))
        })
    }

    /// Unicorns held.
    pub fn unicorns(&self) -> usize {
        self.unicorns.len()
    }

    /// What the window did with readings since it was made.
    pub fn counts(&self) -> WindowCounts {
        self.counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 1_455_235_200_000; // 2016-02-12 00:00:00

    /// A reading of `name` at `ms` after 2016-02-12 00:00:00 with the given figures.
    fn reading(name: &str, ms: i64, distance: i16, magic: i16, health: i16) -> Reading {
        Reading {
            name: UnicornName::new(name).unwrap(),
            status_time: StatusTime::from_epoch_millis(DAY + ms).unwrap(),
            latitude: 40.749167,
            longitude: -73.985184,
            distance,
            magic_points: magic,
            health_points: health,
        }
    }

    /// A reading of `name` at `ms` whose figures do not matter.
    fn plain(name: &str, ms: i64) -> Reading {
        reading(name, ms, 1, 1, 1)
    }

    fn rules(lateness_s: u64) -> WindowRules {
        WindowRules {
            allowed_lateness: Duration::from_secs(lateness_s),
            horizon: DEFAULT_HORIZON,
            idle_after: DEFAULT_IDLE_AFTER,
        }
    }

    /// Emits what is due at `now`, as a real consumer would, and returns it.
    fn emit(w: &mut MinuteWindow, now: i64) -> Vec<Aggregate> {
        let due = w.due(now);
        w.emitted(due.iter().map(|d| (&d.name, d.minute_ms)));
        due.into_iter().map(|d| d.aggregate.unwrap()).collect()
    }

    #[test]
    fn a_minute_is_due_once_its_unicorns_clock_passes_the_lateness() {
        let mut w = MinuteWindow::new(rules(10));
        assert_eq!(
            w.push(&reading("Shadowfax", 1_000, 100, 150, 150), 0),
            Push::Accepted
        );
        w.push(&reading("Shadowfax", 59_000, 120, 149, 151), 0);
        w.push(&reading("Shadowfax", 65_000, 110, 148, 152), 0);
        assert!(
            emit(&mut w, 0).is_empty(),
            "12:01:05 is within 10 s of the minute's end"
        );
        w.push(&reading("Shadowfax", 70_000, 110, 148, 152), 0);
        let out = emit(&mut w, 0);
        assert_eq!(out.len(), 1);
        assert_eq!(
            out[0].to_json(),
            r#"{"Name":"Shadowfax","StatusTime":"2016-02-12 00:00:00.000","Distance":220,"MinMagicPoints":149,"MaxMagicPoints":150,"MinHealthPoints":150,"MaxHealthPoints":151}"#
        );
        assert_eq!(w.open_minutes(), 1);
        assert!(
            emit(&mut w, 0).is_empty(),
            "an emitted minute is not due again unchanged"
        );
    }

    #[test]
    fn a_reading_after_its_minute_was_emitted_makes_it_due_again_complete() {
        let mut w = MinuteWindow::new(rules(5));
        w.push(&reading("Shadowfax", 30_000, 100, 150, 150), 0);
        w.push(&reading("Shadowfax", 66_000, 100, 150, 150), 0);
        assert_eq!(emit(&mut w, 0)[0].distance, 100);
        assert_eq!(
            w.push(&reading("Shadowfax", 59_999, 7, 10, 150), 0),
            Push::Corrected
        );
        let again = emit(&mut w, 0);
        assert_eq!(again.len(), 1);
        assert_eq!((again[0].distance, again[0].min_magic_points), (107, 10));
        assert_eq!(w.counts().corrected, 1);
    }

    #[test]
    fn duplicates_are_recognised_after_the_minute_was_emitted() {
        let mut w = MinuteWindow::new(rules(0));
        let r = reading("Shadowfax", 1_500, 100, 150, 150);
        assert_eq!(w.push(&r, 0), Push::Accepted);
        w.push(&plain("Shadowfax", 61_000), 0);
        assert_eq!(emit(&mut w, 0).len(), 1);
        assert_eq!(w.push(&r, 0), Push::Duplicate);
        assert!(emit(&mut w, 0).is_empty());
        assert_eq!(w.counts().duplicates, 1);
    }

    #[test]
    fn other_unicorns_clocks_close_nothing() {
        let mut w = MinuteWindow::new(rules(0));
        w.push(&plain("Shadowfax", 1_000), 0);
        w.push(&plain("Rocinante", 3_600_000), 0);
        assert!(
            emit(&mut w, 1_000).is_empty(),
            "another unicorn's clock closes nothing"
        );
        assert_eq!(w.push(&plain("Shadowfax", 2_000), 1_000), Push::Accepted);
    }

    #[test]
    fn a_silent_minute_is_due_after_the_idle_time_of_wall_clock() {
        let mut w = MinuteWindow::new(rules(10));
        w.push(&plain("Shadowfax", 1_000), 5_000);
        assert!(emit(&mut w, 34_999).is_empty());
        assert_eq!(emit(&mut w, 35_000).len(), 1);
    }

    #[test]
    fn a_reading_beyond_the_horizon_is_refused_with_the_newest_time() {
        let mut w = MinuteWindow::new(rules(10));
        w.push(&plain("Shadowfax", 3_700_000), 0);
        let push = w.push(&plain("Shadowfax", 99_999), 0);
        assert_eq!(
            push,
            Push::BeyondHorizon {
                newest: StatusTime::from_epoch_millis(DAY + 3_700_000).unwrap()
            }
        );
        assert_eq!(w.push(&plain("Shadowfax", 100_000), 0), Push::Accepted);
    }

    #[test]
    fn stored_minutes_beyond_the_horizon_are_forgotten_not_the_newest() {
        let mut w = MinuteWindow::new(rules(0));
        w.push(&plain("Shadowfax", 0), 0);
        w.push(&plain("Shadowfax", 3_700_000), 0);
        emit(&mut w, 0);
        let dirty: Vec<_> = w.dirty().into_iter().map(|d| (d, 1)).collect();
        assert_eq!(dirty.len(), 2);
        w.stored(&dirty);
        assert_eq!(
            w.minutes(),
            1,
            "the first minute ended more than an hour before"
        );
        assert!(w.dirty().is_empty());
    }

    #[test]
    fn a_restored_unicorn_keeps_its_clock_and_its_duplicates() {
        let mut w = MinuteWindow::new(rules(0));
        w.push(&reading("Shadowfax", 1_000, 5, 1, 1), 0);
        w.push(&reading("Shadowfax", 61_000, 5, 1, 1), 0);
        emit(&mut w, 0);
        let stored: Vec<_> = w
            .dirty()
            .into_iter()
            .map(|d| {
                (
                    d.minute_ms,
                    MinuteState {
                        version: 1,
                        ..d.state
                    },
                )
            })
            .collect();
        let mut again = MinuteWindow::new(rules(0));
        again.restore(UnicornName::new("Shadowfax").unwrap(), stored);
        assert_eq!(
            again.push(&reading("Shadowfax", 1_000, 5, 1, 1), 0),
            Push::Duplicate
        );
        assert_eq!(
            again.push(&reading("Shadowfax", 2_000, 5, 1, 1), 0),
            Push::Corrected
        );
        assert!(matches!(
            again.push(&reading("Shadowfax", 61_000 - 3_600_001, 5, 1, 1), 0),
            Push::BeyondHorizon { .. }
        ));
        let dirty = again.dirty();
        assert_eq!(dirty.len(), 1);
        assert_eq!((dirty[0].state.version, dirty[0].state.distance), (1, 10));
    }

    #[test]
    fn a_distance_past_smallint_is_reported_not_wrapped() {
        let mut w = MinuteWindow::new(rules(0));
        w.push(&reading("Shadowfax", 0, 30_000, 1, 1), 0);
        w.push(&reading("Shadowfax", 1, 30_000, 1, 1), 0);
        let due = w.due_all();
        let err = due[0].aggregate.clone().unwrap_err();
        assert_eq!(
            err.to_string(),
            "minute 2016-02-12 00:00:00.000 of unicorn Shadowfax cannot be aggregated: field Distance is 60000, outside 0..=32767"
        );
    }

    #[test]
    fn quiet_clean_unicorns_are_evicted_busy_ones_kept() {
        let mut w = MinuteWindow::new(rules(0));
        w.push(&plain("Shadowfax", 0), 0);
        w.push(&plain("Rocinante", 0), 100_000);
        let due = w.due_all();
        w.emitted(due.iter().map(|d| (&d.name, d.minute_ms)));
        assert_eq!(w.evict_quiet(50_000), 0, "dirty minutes are never evicted");
        let dirty: Vec<_> = w.dirty().into_iter().map(|d| (d, 1)).collect();
        w.stored(&dirty);
        assert_eq!(w.evict_quiet(50_000), 1);
        assert!(w.knows(&UnicornName::new("Rocinante").unwrap()));
    }
}
