//! `Reading`: one unicorn's sensor values for one second, as the producer puts
//! them on the `wildrydes` stream.

use serde::Serialize;

use crate::error::{Field, ValidationError};
use crate::json::Fields;
use crate::name::UnicornName;
use crate::time::StatusTime;

/// Range of every integer figure: the workshop's SQL declared them SMALLINT,
/// and a per-minute minimum or maximum of a reading must fit there too.
pub(crate) const SMALLINT: (i64, i64) = (i16::MIN as i64, i16::MAX as i64);

/// One per-second reading, validated.
#[derive(Debug, Clone, PartialEq)]
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
            name: UnicornName::new(f.str(Field::Name)?)?,
            status_time: parse_time(&f)?,
            latitude: f.float(Field::Latitude, -90.0, 90.0)?,
            longitude: f.float(Field::Longitude, -180.0, 180.0)?,
            distance: smallint(&f, Field::Distance, 0)?,
            magic_points: smallint(&f, Field::MagicPoints, SMALLINT.0)?,
            health_points: smallint(&f, Field::HealthPoints, SMALLINT.0)?,
        })
    }

    /// The workshop's JSON: same keys, same order, same time format.
    pub fn to_json(&self) -> String {
        #[derive(Serialize)]
        #[serde(rename_all = "PascalCase")]
        struct Wire<'a> {
            name: &'a str,
            status_time: String,
            latitude: f64,
            longitude: f64,
            distance: i16,
            magic_points: i16,
            health_points: i16,
        }
        let wire = Wire {
            name: self.name.as_str(),
            status_time: self.status_time.to_string(),
            latitude: self.latitude,
            longitude: self.longitude,
            distance: self.distance,
            magic_points: self.magic_points,
            health_points: self.health_points,
        };
        serde_json::to_string(&wire).unwrap_or_default()
    }
}

/// The `StatusTime` field, parsed.
pub(crate) fn parse_time(f: &Fields<'_>) -> Result<StatusTime, ValidationError> {
    let text = f.str(Field::StatusTime)?;
    StatusTime::parse(text).map_err(|reason| ValidationError::Time {
        shown: crate::error::truncate_for_display(text),
        reason,
    })
}

/// An integer field from `min` to the top of SMALLINT.
pub(crate) fn smallint(f: &Fields<'_>, field: Field, min: i64) -> Result<i16, ValidationError> {
    let n = f.int(field, min, SMALLINT.1)?;
    Ok(i16::try_from(n).unwrap_or(i16::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    const WORKSHOP: &str = r#"{"Name":"Shadowfax","StatusTime":"2017-06-05 09:17:08.189","Latitude":42.264444250051326,"Longitude":-71.97582884770408,"Distance":175,"MagicPoints":110,"HealthPoints":150}"#;

    #[test]
    fn the_workshop_example_round_trips_byte_for_byte() {
        let r = Reading::from_json(WORKSHOP.as_bytes()).unwrap();
        assert_eq!(r.name.as_str(), "Shadowfax");
        assert_eq!(r.distance, 175);
        assert_eq!(r.magic_points, 110);
        assert_eq!(r.to_json(), WORKSHOP);
    }

    proptest::proptest! {
        #[test]
        fn any_position_round_trips_byte_for_byte(lat in -90.0f64..=90.0, lon in -180.0f64..=180.0) {
            let json = WORKSHOP
                .replace("42.264444250051326", &lat.to_string())
                .replace("-71.97582884770408", &lon.to_string());
            let r = Reading::from_json(json.as_bytes()).unwrap();
            proptest::prop_assert_eq!(r.latitude, lat);
            proptest::prop_assert_eq!(r.to_json(), json);
        }
    }

    #[test]
    fn each_failure_names_its_field() {
        let with = |from: &str, to: &str| WORKSHOP.replace(from, to);
        let cases = [
            (with(r#""Distance":175,"#, ""), "field Distance is missing"),
            (with("175", "-1"), "field Distance is -1, outside 0..=32767"),
            (
                with("110", "40000"),
                "field MagicPoints is 40000, outside -32768..=32767",
            ),
            (
                with("42.264444250051326", "91.5"),
                "field Latitude is 91.5, outside -90..=90",
            ),
            (
                with("150}", "\"high\"}"),
                "field HealthPoints must be an integer, found \"high\"",
            ),
            (
                with("\"Shadowfax\"", "7"),
                "field Name must be a string, found 7",
            ),
            (with("\"Shadowfax\"", "\"\""), "field Name is empty"),
            (
                with("2017-06-05 09:17:08.189", "noon"),
                "field StatusTime \"noon\" is not a time: expected `YYYY-MM-DD HH:MM:SS.mmm` (UTC) or RFC 3339 with an offset",
            ),
        ];
        for (json, message) in cases {
            let err = Reading::from_json(json.as_bytes()).unwrap_err();
            assert_eq!(err.to_string(), message, "{json}");
        }
    }
}
