//! `Aggregate`: one unicorn's figures for one minute, as the workshop's Kinesis
//! Data Analytics application put them on `wildrydes-aggregated`.

use serde::Serialize;

use crate::error::{Field, ValidationError};
use crate::json::Fields;
use crate::name::UnicornName;
use crate::reading::{SMALLINT, parse_time, smallint};
use crate::time::StatusTime;

/// One per-minute aggregate, validated: minimums never above maximums, the
/// time on a minute boundary, every figure within SMALLINT.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
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
        let name = UnicornName::new(f.str(Field::Name)?)?;
        let status_time = parse_time(&f)?;
        Self {
            name,
            status_time,
            distance: smallint(&f, Field::Distance, 0)?,
            min_magic_points: smallint(&f, Field::MinMagicPoints, SMALLINT.0)?,
            max_magic_points: smallint(&f, Field::MaxMagicPoints, SMALLINT.0)?,
            min_health_points: smallint(&f, Field::MinHealthPoints, SMALLINT.0)?,
            max_health_points: smallint(&f, Field::MaxHealthPoints, SMALLINT.0)?,
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
        #[derive(Serialize)]
        #[serde(rename_all = "PascalCase")]
        struct Wire<'a> {
            name: &'a str,
            status_time: String,
            distance: i16,
            min_magic_points: i16,
            max_magic_points: i16,
            min_health_points: i16,
            max_health_points: i16,
        }
        let wire = Wire {
            name: self.name.as_str(),
            status_time: self.status_time.to_string(),
            distance: self.distance,
            min_magic_points: self.min_magic_points,
            max_magic_points: self.max_magic_points,
            min_health_points: self.min_health_points,
            max_health_points: self.max_health_points,
        };
        serde_json::to_string(&wire).unwrap_or_default()
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

    const EXAMPLE: &str = r#"{"Name":"Shadowfax","StatusTime":"2017-05-06 17:47:00.000","Distance":9413,"MinMagicPoints":153,"MaxMagicPoints":159,"MinHealthPoints":150,"MaxHealthPoints":157}"#;

    #[test]
    fn the_workshop_example_round_trips() {
        let a = Aggregate::from_json(EXAMPLE.as_bytes()).unwrap();
        assert_eq!(a.distance, 9413);
        assert_eq!(a.to_json(), EXAMPLE);
    }

    #[test]
    fn every_line_of_the_workshop_fixture_round_trips_byte_for_byte() {
        let fixture = include_str!("../../../tests/fixtures/shadowfax-2016-02-12.json");
        let mut lines = 0;
        for line in fixture.lines() {
            let a = Aggregate::from_json(line.as_bytes()).unwrap_or_else(|e| panic!("{line}: {e}"));
            assert_eq!(a.to_json(), line);
            lines += 1;
        }
        assert_eq!(lines, 1440);
    }

    #[test]
    fn semantic_checks() {
        let with = |from: &str, to: &str| EXAMPLE.replace(from, to);
        let cases = [
            (
                with("\"MinMagicPoints\":153", "\"MinMagicPoints\":160"),
                "MinMagicPoints 160 is above MaxMagicPoints 159",
            ),
            (
                with("17:47:00.000", "17:47:01.000"),
                "field StatusTime 2017-05-06 17:47:01.000 of an aggregate must be the start of a minute",
            ),
            (
                with("9413", "32768"),
                "field Distance is 32768, outside 0..=32767",
            ),
            (
                with("\"MaxHealthPoints\":157", "\"MaxHealthPoints\":null"),
                "field MaxHealthPoints is missing",
            ),
        ];
        for (json, message) in cases {
            assert_eq!(
                Aggregate::from_json(json.as_bytes())
                    .unwrap_err()
                    .to_string(),
                message
            );
        }
    }
}
