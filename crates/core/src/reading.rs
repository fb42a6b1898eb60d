//! `Reading`: one unicorn's sensor values for one second, as the producer puts
//! them on the `wildrydes` stream.

use serde::Serialize;

use crate::error::{Field, ValidationError};
use crate::json::Fields;
use crate::name::UnicornName;
use crate::time::StatusTime;

/// One per-second reading, validated. It serialises as the workshop's JSON
/// (see [`Reading::to_json`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Reading {
    /// The unicorn; also the record's partition key.
    pub name: UnicornName,
    /// When the reading was taken (UTC, millisecond precision).
    pub status_time: StatusTime,
    /// Degrees north, -90..=90.
    pub latitude: f64,
    /// Degrees east, -180..=180.
    pub longitude: f64,
    /// Metres travelled in the previous second, never negative.
    pub distance: i16,
    /// Magic points; below 50 an operator must be warned.
    pub magic_points: i16,
    /// Health points.
    pub health_points: i16,
}

impl Reading {
    /// Parses and validates one record of the `wildrydes` stream.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ValidationError> {
        let f = Fields::parse(bytes)?;
        Ok(Self {
            name: f.name()?,
            status_time: f.time()?,
            latitude: f.float(Field::Latitude, -90.0, 90.0)?,
            longitude: f.float(Field::Longitude, -180.0, 180.0)?,
            distance: f.smallint(Field::Distance, 0)?,
            magic_points: f.smallint(Field::MagicPoints, i16::MIN)?,
            health_points: f.smallint(Field::HealthPoints, i16::MIN)?,
        })
    }

    /// The workshop's JSON: same keys, same order, same time format.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::{assert_refusals, assert_round_trip};

    const WORKSHOP: &str = r#"{"Name":"Shadowfax","StatusTime":"2017-06-05 09:17:08.189","Latitude":42.264444250051326,"Longitude":-71.97582884770408,"Distance":175,"MagicPoints":110,"HealthPoints":150}"#;

    #[test]
    fn the_workshop_example_round_trips_byte_for_byte() {
        let r = assert_round_trip(Reading::from_json, Reading::to_json, WORKSHOP);
        assert_eq!(r.name.as_str(), "Shadowfax");
        assert_eq!(r.distance, 175);
        assert_eq!(r.magic_points, 110);
    }

    proptest::proptest! {
        #[test]
        fn any_position_round_trips_byte_for_byte(lat in -90.0f64..=90.0, lon in -180.0f64..=180.0) {
            let json = WORKSHOP
                .replace("42.264444250051326", &lat.to_string())
                .replace("-71.97582884770408", &lon.to_string());
            let r = assert_round_trip(Reading::from_json, Reading::to_json, &json);
            proptest::prop_assert_eq!(r.latitude, lat);
        }
    }

    #[test]
    fn each_failure_names_its_field() {
        let not_a_time = "field StatusTime \"noon\" is not a time: expected `YYYY-MM-DD HH:MM:SS.mmm` (UTC) or RFC 3339 with an offset";
        assert_refusals(
            Reading::from_json,
            WORKSHOP,
            &[
                (r#""Distance":175,"#, "", "field Distance is missing"),
                ("175", "-1", "field Distance is -1, outside 0..=32767"),
                (
                    "110",
                    "40000",
                    "field MagicPoints is 40000, outside -32768..=32767",
                ),
                (
                    "42.264444250051326",
                    "91.5",
                    "field Latitude is 91.5, outside -90..=90",
                ),
                (
                    "150}",
                    "\"high\"}",
                    "field HealthPoints must be an integer, found \"high\"",
                ),
                ("\"Shadowfax\"", "7", "field Name must be a string, found 7"),
                ("\"Shadowfax\"", "\"\"", "field Name is empty"),
                ("2017-06-05 09:17:08.189", "noon", not_a_time),
            ],
        );
    }
}
