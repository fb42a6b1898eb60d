//! `Detector`: when a unicorn's magic points make it go into ALARM or back to
//! OK. Pure logic, no I/O: the batch logic feeds it one unicorn's
//! observations in time order, starting from the state remembered in the
//! table.
//!
//! Hysteresis: a unicorn goes into ALARM when its magic points fall below the
//! threshold (50), and back to OK only once they reach the threshold plus the
//! hysteresis (60). Between the two nothing changes, so a value hovering
//! around 50 gives one ALARM, not one per wobble.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::error::AlarmError;
use crate::observation::Observation;

/// Where a unicorn stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
pub enum AlarmState {
    /// Magic points are fine, or have not been low since the last recovery.
    /// A unicorn the alarm has never seen is OK.
    #[default]
    #[serde(rename = "OK")]
    Ok,
    /// Magic points fell below the threshold and have not recovered.
    #[serde(rename = "ALARM")]
    Alarm,
}

impl AlarmState {
    /// The name stored in the table and sent in messages: `OK` or `ALARM`,
    /// as CloudWatch alarms name theirs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "OK",
            Self::Alarm => "ALARM",
        }
    }
}

impl fmt::Display for AlarmState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AlarmState {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "OK" => Ok(Self::Ok),
            "ALARM" => Ok(Self::Alarm),
            _ => Err(()),
        }
    }
}

/// The levels that decide a transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Detector {
    /// Below this a unicorn goes into ALARM.
    threshold: i16,
    /// How far above the threshold it must climb to be OK again.
    hysteresis: i16,
}

/// The workshop's "extra challenge": warn when magic points fall below 50.
pub const DEFAULT_THRESHOLD: i16 = 50;

/// Ten points: more than the one-point-per-second wobble of the simulated
/// walk, so a unicorn hovering at the threshold does not flap, yet a real
/// recovery is reported within seconds.
pub const DEFAULT_HYSTERESIS: i16 = 10;

impl Default for Detector {
    fn default() -> Self {
        Self {
            threshold: DEFAULT_THRESHOLD,
            hysteresis: DEFAULT_HYSTERESIS,
        }
    }
}

/// A change of state found by [`Detector::walk`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// Index, in the observations walked, of the one that caused it.
    pub at: usize,
    /// The state it leads to.
    pub to: AlarmState,
}

impl Detector {
    /// A detector with these levels; the hysteresis must not be negative and
    /// the recovery level must fit the figures' SMALLINT range.
    pub fn new(threshold: i64, hysteresis: i64) -> Result<Self, AlarmError> {
        let bad = || AlarmError::Levels {
            threshold,
            hysteresis,
        };
        let t = i16::try_from(threshold).map_err(|_| bad())?;
        let h = i16::try_from(hysteresis)
            .ok()
            .filter(|h| *h >= 0)
            .ok_or_else(bad)?;
        t.checked_add(h).ok_or_else(bad)?;
        Ok(Self {
            threshold: t,
            hysteresis: h,
        })
    }

    /// Below this, ALARM.
    pub fn threshold(&self) -> i16 {
        self.threshold
    }

    /// The margin between going into ALARM and leaving it.
    pub fn hysteresis(&self) -> i16 {
        self.hysteresis
    }

    /// At or above this, OK again: threshold plus hysteresis.
    pub fn recovery_level(&self) -> i16 {
        self.threshold.saturating_add(self.hysteresis)
    }

    /// The state `magic_points` lead to from `current`, if it changes.
    pub fn judge(&self, current: AlarmState, magic_points: i16) -> Option<AlarmState> {
        match current {
            AlarmState::Ok if magic_points < self.threshold => Some(AlarmState::Alarm),
            AlarmState::Alarm if magic_points >= self.recovery_level() => Some(AlarmState::Ok),
            _ => None,
        }
    }

    /// Every transition along `observations` (one unicorn's, in time order)
    /// starting from `current`: only the changes, nothing in between.
    pub fn walk(&self, mut current: AlarmState, observations: &[&Observation]) -> Vec<Step> {
        let mut steps = Vec::new();
        for (at, o) in observations.iter().enumerate() {
            if let Some(to) = self.judge(current, o.magic_points) {
                steps.push(Step { at, to });
                current = to;
            }
        }
        steps
    }
}

#[cfg(test)]
mod tests {
    use wildrydes_core::{StatusTime, UnicornName};

    use super::*;
    use crate::observation::Shape;

    fn walk(d: &Detector, from: AlarmState, magic: &[i16]) -> Vec<(usize, AlarmState)> {
        let observations: Vec<Observation> = magic
            .iter()
            .enumerate()
            .map(|(i, m)| Observation {
                name: UnicornName::new("Shadowfax").unwrap(),
                status_time: StatusTime::from_epoch_millis(i64::try_from(i).unwrap() * 1000)
                    .unwrap(),
                magic_points: *m,
                position: None,
                shape: Shape::Reading,
            })
            .collect();
        let refs: Vec<&Observation> = observations.iter().collect();
        d.walk(from, &refs)
            .into_iter()
            .map(|s| (s.at, s.to))
            .collect()
    }

    #[test]
    fn a_dip_and_a_recovery_are_two_transitions() {
        let d = Detector::default();
        assert_eq!(
            walk(&d, AlarmState::Ok, &[52, 51, 50, 49, 48, 55, 59, 60, 61]),
            [(3, AlarmState::Alarm), (7, AlarmState::Ok)]
        );
    }

    #[test]
    fn hovering_around_the_threshold_does_not_flap() {
        let d = Detector::default();
        let hover = [49, 50, 51, 49, 52, 48, 50, 59, 49, 58, 50];
        assert_eq!(walk(&d, AlarmState::Ok, &hover), [(0, AlarmState::Alarm)]);
        // Once recovered, hovering just above the threshold stays OK.
        assert_eq!(
            walk(&d, AlarmState::Alarm, &[60, 55, 50, 51, 50, 49]),
            [(0, AlarmState::Ok), (5, AlarmState::Alarm)]
        );
    }

    #[test]
    fn the_state_remembered_is_where_the_walk_starts() {
        let d = Detector::default();
        assert_eq!(walk(&d, AlarmState::Alarm, &[40, 45, 30]), []);
        assert_eq!(walk(&d, AlarmState::Ok, &[150, 60, 50]), []);
    }

    #[test]
    fn levels_are_configurable_and_checked() {
        let d = Detector::new(100, 0).unwrap();
        assert_eq!(
            walk(&d, AlarmState::Ok, &[100, 99, 99, 100, 99]),
            [
                (1, AlarmState::Alarm),
                (3, AlarmState::Ok),
                (4, AlarmState::Alarm)
            ]
        );
        assert_eq!(Detector::new(-20, 5).unwrap().recovery_level(), -15);
        for (t, h) in [(50, -1), (40_000, 10), (32_760, 10)] {
            let err = Detector::new(t, h).unwrap_err().to_string();
            assert!(err.contains("MAGIC_THRESHOLD, MAGIC_HYSTERESIS"), "{err}");
        }
    }

    #[test]
    fn states_round_trip_through_their_names() {
        for s in [AlarmState::Ok, AlarmState::Alarm] {
            assert_eq!(s.as_str().parse::<AlarmState>(), Ok(s));
        }
        assert_eq!("alarm".parse::<AlarmState>(), Err(()));
    }
}
