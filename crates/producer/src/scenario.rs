//! Scenarios: scripted behaviour layered on the random walk, so that the
//! operator alarm (magic points below 50) can be shown and tested without
//! waiting the many hours a natural walk from 150 would take.
//!
//! `magic-drain` timeline, in simulated seconds after `--drain-start` (default
//! 1 minute), for the chosen unicorn (the first one unless `--drain-unicorn`):
//!
//! | phase   | magic points per second          | lasts (from ~150)       |
//! |---------|----------------------------------|-------------------------|
//! | drain   | -5, stopping exactly at 40       | ~22 s (below 50 at ~21 s) |
//! | hold    | 0, flat at 40                    | 60 s                    |
//! | recover | +5, stopping exactly at 150      | ~22 s (above 100 at ~13 s) |
//! | walk    | the normal -1/0/+1 walk          | to the end of the run   |
//!
//! With the default start the unicorn is below 50 from about 1 min 20 s,
//! back above 100 by about 2 min 35 s and back at 150 by about 2 min 45 s:
//! the whole scenario fits in the first 3 simulated minutes. Health and
//! position keep walking normally throughout, and the random stream is drawn
//! exactly as without the scenario, so every other figure is unchanged.

use std::time::Duration;

use wildrydes_core::UnicornName;

/// Magic points lost per second while draining.
pub const DRAIN_STEP: i16 = 5;
/// Level the drain stops at: well below the alarm threshold of 50.
pub const DRAIN_FLOOR: i16 = 40;
/// Seconds the magic points stay at the floor: one full aggregation minute.
pub const HOLD_SECONDS: u64 = 60;
/// Level the recovery climbs back to: where every unicorn started.
pub const RECOVERED_LEVEL: i16 = 150;
/// Default delay before the drain starts: one normal minute first, so that
/// the aggregates show the contrast.
pub const DEFAULT_DRAIN_START: Duration = Duration::from_secs(60);
/// Simulated time within which the default scenario has completed.
pub const SCENARIO_BOUND: Duration = Duration::from_secs(180);

/// What the producer simulates on top of the random walk.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Scenario {
    /// The workshop's behaviour: every unicorn walks at random.
    #[default]
    Walk,
    /// One unicorn's magic points drain below 50, hold, and recover.
    MagicDrain {
        /// The unicorn to drain; `None` means the first of the fleet.
        unicorn: Option<UnicornName>,
        /// Simulated time after the start of the run when the drain begins.
        start: Duration,
    },
}

/// Where a magic-drain scenario is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Before the start second: the normal walk.
    Waiting,
    /// Losing [`DRAIN_STEP`] per second down to [`DRAIN_FLOOR`].
    Draining,
    /// Flat at the floor until the given second.
    Holding {
        /// First second of the recovery.
        until: u64,
    },
    /// Gaining [`DRAIN_STEP`] per second up to [`RECOVERED_LEVEL`].
    Recovering,
    /// Finished: the normal walk again.
    Done,
}

/// The state machine of a magic-drain scenario for one unicorn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MagicDrain {
    /// Second of the run (0 is the first) at which draining begins.
    start_second: u64,
    /// Current phase.
    phase: Phase,
}

impl MagicDrain {
    /// A scenario that starts draining at second `start_second` of the run.
    pub fn new(start_second: u64) -> Self {
        Self {
            start_second,
            phase: Phase::Waiting,
        }
    }

    /// The change of magic points for second `second`, given the unicorn's
    /// current `magic` and the step its random walk drew (`walk_step`, used
    /// outside the scripted phases).
    pub fn magic_delta(&mut self, second: u64, magic: i16, walk_step: i16) -> i16 {
        loop {
            match self.phase {
                Phase::Waiting if second < self.start_second => return walk_step,
                Phase::Waiting => self.phase = Phase::Draining,
                Phase::Draining if magic > DRAIN_FLOOR => {
                    return -DRAIN_STEP.min(magic - DRAIN_FLOOR);
                }
                Phase::Draining => {
                    self.phase = Phase::Holding {
                        until: second + HOLD_SECONDS,
                    };
                }
                Phase::Holding { until } if second < until => return 0,
                Phase::Holding { .. } => self.phase = Phase::Recovering,
                Phase::Recovering if magic < RECOVERED_LEVEL => {
                    return DRAIN_STEP.min(RECOVERED_LEVEL - magic);
                }
                Phase::Recovering => self.phase = Phase::Done,
                Phase::Done => return walk_step,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the scenario from 150 with a walk that never moves, returning
    /// the magic points after each second.
    fn trace(start: u64, seconds: u64) -> Vec<i16> {
        let mut drain = MagicDrain::new(start);
        let mut magic = 150;
        (0..seconds)
            .map(|s| {
                magic += drain.magic_delta(s, magic, 0);
                magic
            })
            .collect()
    }

    #[test]
    fn drains_holds_and_recovers_within_the_documented_bound() {
        let t = trace(DEFAULT_DRAIN_START.as_secs(), 300);
        let below_50 = t.iter().position(|&m| m < 50).unwrap();
        let at_floor = t.iter().position(|&m| m == DRAIN_FLOOR).unwrap();
        let above_100 = below_50 + t[below_50..].iter().position(|&m| m > 100).unwrap();
        let recovered = at_floor + t[at_floor..].iter().position(|&m| m == 150).unwrap();
        assert_eq!(below_50, 80);
        assert_eq!(at_floor, 81);
        assert!(t[at_floor..at_floor + 61].iter().all(|&m| m == DRAIN_FLOOR));
        assert_eq!(above_100, 154);
        assert_eq!(recovered, 163);
        assert!(recovered < usize::try_from(SCENARIO_BOUND.as_secs()).unwrap());
        assert!(t[recovered..].iter().all(|&m| m == 150));
        assert!(t.iter().all(|&m| m >= DRAIN_FLOOR));
    }

    #[test]
    fn the_walk_applies_outside_the_scripted_phases() {
        let mut drain = MagicDrain::new(10);
        assert_eq!(drain.magic_delta(0, 150, 1), 1);
        assert_eq!(drain.magic_delta(9, 151, -1), -1);
        assert_eq!(drain.magic_delta(10, 150, 1), -5);
    }

    #[test]
    fn a_unicorn_already_low_holds_at_once() {
        let mut drain = MagicDrain::new(0);
        assert_eq!(drain.magic_delta(0, 42, 1), -2);
        assert_eq!(drain.magic_delta(1, 40, 1), 0);
        assert_eq!(drain.magic_delta(60, 40, 1), 0);
        assert_eq!(drain.magic_delta(61, 40, 1), 5);
    }
}
