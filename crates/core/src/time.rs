//! `StatusTime`: the instant of a reading or the minute of an aggregate.
//!
//! The workshop writes times as `YYYY-MM-DD HH:MM:SS.mmm`, space separated, no
//! zone, read as UTC. The table stores them as epoch milliseconds. Everything in
//! between works on a millisecond count, so equality, ordering and hashing are
//! those of the table key.

use std::fmt;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde::{Serialize, Serializer};

/// Milliseconds in one minute: the width of an aggregation window.
pub const MINUTE_MS: i64 = 60_000;

/// Earliest accepted time, 1970-01-01: the workshop's data are never older, and
/// a negative epoch key would only come from a broken clock.
const MIN_MS: i64 = 0;
/// Latest accepted time, 9999-12-31 23:59:59.999: the last one the workshop's
/// four-digit year format can write.
const MAX_MS: i64 = 253_402_300_799_999;

/// A UTC instant with millisecond precision, as the table key stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StatusTime(i64);

/// Why a time string was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    /// Neither the workshop format nor RFC 3339.
    #[error("expected `YYYY-MM-DD HH:MM:SS.mmm` (UTC) or RFC 3339 with an offset")]
    Format,
    /// A well-formed time outside 1970..=9999.
    #[error("outside the years 1970 to 9999")]
    OutOfRange,
}

impl StatusTime {
    /// The time `ms` milliseconds after the Unix epoch, if within 1970..=9999.
    pub fn from_epoch_millis(ms: i64) -> Result<Self, TimeError> {
        if (MIN_MS..=MAX_MS).contains(&ms) {
            Ok(Self(ms))
        } else {
            Err(TimeError::OutOfRange)
        }
    }

    /// A time known to be in range because it was derived from one that was
    /// checked (the start of a valid instant's minute, say).
    pub(crate) const fn from_trusted_millis(ms: i64) -> Self {
        Self(ms)
    }

    /// Milliseconds since the Unix epoch: the table's sort key.
    pub fn epoch_millis(self) -> i64 {
        self.0
    }

    /// The start of the minute this instant falls in.
    pub fn minute(self) -> Self {
        Self(self.0 - self.0.rem_euclid(MINUTE_MS))
    }

    /// Whether this instant is the first millisecond of a minute.
    pub fn is_minute(self) -> bool {
        self.0.rem_euclid(MINUTE_MS) == 0
    }

    /// This instant moved by `ms` milliseconds, saturating at the accepted range.
    pub fn plus_millis(self, ms: i64) -> Self {
        Self(self.0.saturating_add(ms).clamp(MIN_MS, MAX_MS))
    }

    /// The instant as a chrono value, for callers that do calendar arithmetic.
    pub fn to_datetime(self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.0).unwrap_or_default()
    }

    /// Converts a chrono instant, dropping anything finer than a millisecond.
    pub fn from_datetime(t: DateTime<Utc>) -> Result<Self, TimeError> {
        Self::from_epoch_millis(t.timestamp_millis())
    }

    /// Parses the workshop format (`2017-06-05 09:17:08.189`, read as UTC; the
    /// fraction may have 0 to 9 digits, kept to the millisecond) or RFC 3339
    /// with an offset (`2017-06-05T09:17:08.189Z`, `...+02:00`).
    pub fn parse(s: &str) -> Result<Self, TimeError> {
        if let Some(t) = parse_workshop_fast(s.as_bytes()) {
            return t;
        }
        if let Ok(t) = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f") {
            return Self::from_datetime(t.and_utc());
        }
        if let Ok(t) = DateTime::parse_from_rfc3339(s) {
            return Self::from_datetime(t.with_timezone(&Utc));
        }
        Err(TimeError::Format)
    }
}

/// The exact workshop shape, `YYYY-MM-DD HH:MM:SS.mmm`, without going through
/// chrono's format interpreter: this is on every record's path. Returns `None`
/// for any other shape so the general parsers can have a go.
fn parse_workshop_fast(b: &[u8]) -> Option<Result<StatusTime, TimeError>> {
    if b.len() != 23 || b[4] != b'-' || b[7] != b'-' || b[10] != b' ' {
        return None;
    }
    if b[13] != b':' || b[16] != b':' || b[19] != b'.' {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<u32> {
        b[range].iter().try_fold(0u32, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, min, sec, milli) = (num(11..13)?, num(14..16)?, num(17..19)?, num(20..23)?);
    let date = NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month, day);
    let Some(t) = date.and_then(|d| d.and_hms_milli_opt(hour, min, sec, milli)) else {
        return Some(Err(TimeError::Format));
    };
    Some(StatusTime::from_datetime(t.and_utc()))
}

impl fmt::Display for StatusTime {
    /// Writes the workshop format, `YYYY-MM-DD HH:MM:SS.mmm`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_datetime().format("%Y-%m-%d %H:%M:%S%.3f"))
    }
}

/// Serialises as it displays, in the workshop format: the `StatusTime` of a
/// reading's or an aggregate's JSON.
impl Serialize for StatusTime {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_the_workshop_format_as_utc() {
        let t = StatusTime::parse("2017-06-05 09:17:08.189").unwrap();
        assert_eq!(t.epoch_millis(), 1_496_654_228_189);
        assert_eq!(t.to_string(), "2017-06-05 09:17:08.189");
    }

    #[test]
    fn parses_rfc3339_with_an_offset() {
        let z = StatusTime::parse("2017-06-05T09:17:08.189Z").unwrap();
        let plus2 = StatusTime::parse("2017-06-05T11:17:08.189+02:00").unwrap();
        assert_eq!(z, plus2);
        assert_eq!(z.to_string(), "2017-06-05 09:17:08.189");
    }

    #[test]
    fn accepts_other_fraction_lengths_and_keeps_milliseconds() {
        assert_eq!(
            StatusTime::parse("2017-06-05 09:17:08")
                .unwrap()
                .to_string(),
            "2017-06-05 09:17:08.000"
        );
        assert_eq!(
            StatusTime::parse("2017-06-05 09:17:08.1899")
                .unwrap()
                .to_string(),
            "2017-06-05 09:17:08.189"
        );
    }

    #[test]
    fn rejects_malformed_and_impossible_times() {
        for bad in [
            "",
            "yesterday",
            "2017-06-05",
            "2017-13-05 09:17:08.189",
            "2017-02-30 09:17:08.189",
            "2017-06-05 24:17:08.189",
            "2017-06-05 09:17:08.18x",
            "2017-06-05T09:17:08.189", // RFC 3339 needs an offset
        ] {
            assert_eq!(StatusTime::parse(bad), Err(TimeError::Format), "{bad:?}");
        }
        assert_eq!(
            StatusTime::parse("1969-12-31 23:59:59.999"),
            Err(TimeError::OutOfRange)
        );
    }

    #[test]
    fn minute_truncates() {
        let t = StatusTime::parse("2016-02-12 00:01:59.999").unwrap();
        assert_eq!(t.minute().to_string(), "2016-02-12 00:01:00.000");
        assert!(t.minute().is_minute());
        assert!(!t.is_minute());
    }

    proptest! {
        #[test]
        fn display_then_parse_is_identity(ms in MIN_MS..=MAX_MS) {
            let t = StatusTime::from_epoch_millis(ms).unwrap();
            prop_assert_eq!(StatusTime::parse(&t.to_string()), Ok(t));
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,40}") {
            let _ = StatusTime::parse(&s);
        }
    }
}
