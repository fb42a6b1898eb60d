//! `Observation`: the one figure the alarm judges in a record, whichever
//! stream the record came from.
//!
//! The function is triggered by `wildrydes` (per-second readings, judged by
//! `MagicPoints`) and may also be given `wildrydes-aggregated` (per-minute
//! aggregates, judged by `MinMagicPoints` both for going below and for
//! recovering: a minute counts as recovered only if all of it was). Each
//! record says by its own shape which it is: a reading is tried first, then
//! an aggregate.

use std::fmt;

use serde::Serialize;
use wildrydes_core::{Aggregate, Reading, StatusTime, UnicornName};

/// Which kind of record an observation came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Shape {
    /// A per-second reading of `wildrydes`.
    Reading,
    /// A per-minute aggregate of `wildrydes-aggregated`.
    Aggregate,
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Reading => "reading",
            Self::Aggregate => "aggregate",
        })
    }
}

/// Where a unicorn was, so an operator knows where to send help.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Position {
    /// Degrees north.
    pub latitude: f64,
    /// Degrees east.
    pub longitude: f64,
}

/// What the alarm needs from one record.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// The unicorn: the alarm keeps one state per name.
    pub name: UnicornName,
    /// When the figure was measured (a reading's instant, or an aggregate's
    /// minute): orders observations and fences stale ones off.
    pub status_time: StatusTime,
    /// The figure judged: `MagicPoints` of a reading, `MinMagicPoints` of an
    /// aggregate.
    pub magic_points: i16,
    /// Where the unicorn was; aggregates carry no position.
    pub position: Option<Position>,
    /// Which kind of record it came from, for the message.
    pub shape: Shape,
}

impl Observation {
    /// Parses a record as a reading, else as an aggregate. The error is the
    /// reason stored with the reject: why it is neither.
    pub fn from_json(bytes: &[u8]) -> Result<Self, String> {
        let as_reading = match Reading::from_json(bytes) {
            Ok(r) => return Ok(Self::from(&r)),
            Err(e) => e.to_string(),
        };
        let as_aggregate = match Aggregate::from_json(bytes) {
            Ok(a) => return Ok(Self::from(&a)),
            Err(e) => e.to_string(),
        };
        if as_reading == as_aggregate {
            Err(as_reading)
        } else {
            Err(format!(
                "record is neither a reading ({as_reading}) nor an aggregate ({as_aggregate})"
            ))
        }
    }
}

impl From<&Reading> for Observation {
    fn from(r: &Reading) -> Self {
        Self {
            name: r.name.clone(),
            status_time: r.status_time,
            magic_points: r.magic_points,
            position: Some(Position {
                latitude: r.latitude,
                longitude: r.longitude,
            }),
            shape: Shape::Reading,
        }
    }
}

impl From<&Aggregate> for Observation {
    fn from(a: &Aggregate) -> Self {
        Self {
            name: a.name.clone(),
            status_time: a.status_time,
            magic_points: a.min_magic_points,
            position: None,
            shape: Shape::Aggregate,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const READING: &str = r#"{"Name":"Shadowfax","StatusTime":"2017-06-05 09:17:08.189","Latitude":42.264444250051326,"Longitude":-71.97582884770408,"Distance":175,"MagicPoints":49,"HealthPoints":150}"#;
    const AGGREGATE: &str = r#"{"Name":"Shadowfax","StatusTime":"2017-05-06 17:47:00.000","Distance":9413,"MinMagicPoints":47,"MaxMagicPoints":159,"MinHealthPoints":150,"MaxHealthPoints":157}"#;

    #[test]
    fn a_reading_is_judged_by_its_magic_points_and_keeps_its_position() {
        let o = Observation::from_json(READING.as_bytes()).unwrap();
        assert_eq!(o.shape, Shape::Reading);
        assert_eq!(o.magic_points, 49);
        assert_eq!(o.position.unwrap().latitude, 42.264444250051326);
        assert_eq!(o.status_time.to_string(), "2017-06-05 09:17:08.189");
    }

    #[test]
    fn an_aggregate_is_judged_by_its_minimum_and_has_no_position() {
        let o = Observation::from_json(AGGREGATE.as_bytes()).unwrap();
        assert_eq!(o.shape, Shape::Aggregate);
        assert_eq!(o.magic_points, 47);
        assert_eq!(o.position, None);
    }

    #[test]
    fn a_record_of_neither_shape_says_why_for_both() {
        // The same failure in both shapes is said once.
        let err = Observation::from_json(br#"{"Name":"Shadowfax"}"#).unwrap_err();
        assert_eq!(err, "field StatusTime is missing");
        let not_json = Observation::from_json(b"\xffgarbage").unwrap_err();
        assert!(not_json.starts_with("record is not JSON"), "{not_json}");
        let half = READING.replace(r#""Latitude":42.264444250051326,"#, "");
        let err = Observation::from_json(half.as_bytes()).unwrap_err();
        assert!(
            err.contains("reading (field Latitude is missing)")
                && err.contains("aggregate (field MinMagicPoints is missing)"),
            "{err}"
        );
    }
}
