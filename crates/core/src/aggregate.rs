//! `Aggregate`: one unicorn's figures for one minute, as the workshop's Kinesis
//! Data Analytics application put them on `wildrydes-aggregated`.

use serde::Serialize;

use crate::error::{Field, ValidationError};
use crate::json::Fields;
use crate::name::UnicornName;
use crate::time::StatusTime;

/// One per-minute aggregate, validated: minimums never above maximums, the
/// time on a minute boundary, every figure within SMALLINT. It serialises as
/// the workshop's JSON (see [`Aggregate::to_json`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Aggregate {
    /// The unicorn; partition key of the stream and of the table.
    pub name: UnicornName,
    /// The minute (its first millisecond); sort key of the table.
    pub status_time: StatusTime,
    /// Metres travelled during the minute.
    pub distance: i16,
    /// Lowest magic points seen in the minute.
    pub min_magic_points: i16,
    /// Highest magic points seen in the minute.
    pub max_magic_points: i16,
    /// Lowest health points seen in the minute.
    pub min_health_points: i16,
    /// Highest health points seen in the minute.
    pub max_health_points: i16,
}

impl Aggregate {
    /// Parses and validates one record of the `wildrydes-aggregated` stream.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ValidationError> {
        let f = Fields::parse(bytes)?;
        Self {
            name: f.name()?,
            status_time: f.time()?,
            distance: f.smallint(Field::Distance, 0)?,
            min_magic_points: f.smallint(Field::MinMagicPoints, i16::MIN)?,
            max_magic_points: f.smallint(Field::MaxMagicPoints, i16::MIN)?,
            min_health_points: f.smallint(Field::MinHealthPoints, i16::MIN)?,
            max_health_points: f.smallint(Field::MaxHealthPoints, i16::MIN)?,
        }
        .validated()
    }

    /// Checks what the field types alone do not: the minute boundary and the
    /// order of minimums and maximums. Every constructor outside this crate's
    /// parsers goes through here.
    pub fn validated(self) -> Result<Self, ValidationError> {
        if !self.status_time.is_minute() {
            return Err(ValidationError::NotMinute {
                shown: self.status_time.to_string(),
            });
        }
        if self.distance < 0 {
            return Err(ValidationError::OutOfRange {
                field: Field::Distance,
                shown: self.distance.to_string(),
                min: 0.0,
                max: f64::from(i16::MAX),
            });
        }
        for (min_field, min, max_field, max) in [
            (
                Field::MinMagicPoints,
                self.min_magic_points,
                Field::MaxMagicPoints,
                self.max_magic_points,
            ),
            (
                Field::MinHealthPoints,
                self.min_health_points,
                Field::MaxHealthPoints,
                self.max_health_points,
            ),
        ] {
            if min > max {
                return Err(ValidationError::MinAboveMax {
                    min_field,
                    min: min.into(),
                    max_field,
                    max: max.into(),
                });
            }
        }
        Ok(self)
    }

    /// The workshop's JSON: same keys, same order, same time format.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The table key of this aggregate: two aggregates with the same key are
    /// the same item, so the later write replaces the earlier one.
    pub fn key(&self) -> (&UnicornName, StatusTime) {
        (&self.name, self.status_time)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::{assert_refusals, assert_round_trip};

    /// The workshop's day of aggregates, one per line.
    const FIXTURE: &str = include_str!("../../../tests/fixtures/shadowfax-2016-02-12.json");

    /// The workshop's example of an aggregate.
    const EXAMPLE: &str = r#"{"Name":"Shadowfax","StatusTime":"2017-05-06 17:47:00.000","Distance":9413,"MinMagicPoints":153,"MaxMagicPoints":159,"MinHealthPoints":150,"MaxHealthPoints":157}"#;

    #[test]
    fn the_workshop_example_round_trips() {
        let a = assert_round_trip(Aggregate::from_json, Aggregate::to_json, EXAMPLE);
        assert_eq!(a.distance, 9413);
    }

    #[test]
    fn every_line_of_the_workshop_fixture_round_trips_byte_for_byte() {
        let mut lines = 0;
        for line in FIXTURE.lines() {
            assert_round_trip(Aggregate::from_json, Aggregate::to_json, line);
            lines += 1;
        }
        assert_eq!(lines, 1440);
    }

    #[test]
    fn semantic_checks() {
        let not_a_minute = "field StatusTime 2017-05-06 17:47:01.000 of an aggregate must be the start of a minute";
        assert_refusals(
            Aggregate::from_json,
            EXAMPLE,
            &[
                (
                    "\"MinMagicPoints\":153",
                    "\"MinMagicPoints\":160",
                    "MinMagicPoints 160 is above MaxMagicPoints 159",
                ),
                ("17:47:00.000", "17:47:01.000", not_a_minute),
                (
                    "9413",
                    "32768",
                    "field Distance is 32768, outside 0..=32767",
                ),
                (
                    "\"MaxHealthPoints\":157",
                    "\"MaxHealthPoints\":null",
                    "field MaxHealthPoints is missing",
                ),
            ],
        );
    }
}
