//! Why a record was rejected: one variant per failure, each naming the field
//! and showing the offending value, so that an operator reading a reject knows
//! what to fix without the raw bytes.

use std::fmt;

use crate::name::NameError;
use crate::time::TimeError;

/// How many characters of an offending value an error shows.
const SHOWN_CHARS: usize = 64;

/// Largest record accepted, in bytes. A reading or an aggregate is under 250
/// bytes; anything this big is not one of ours, and parsing it only wastes time.
pub const MAX_RECORD_BYTES: usize = 16 * 1024;

/// A field of a reading or an aggregate, named as in the JSON and the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum Field {
    Name,
    StatusTime,
    Latitude,
    Longitude,
    Distance,
    MagicPoints,
    HealthPoints,
    MinMagicPoints,
    MaxMagicPoints,
    MinHealthPoints,
    MaxHealthPoints,
}

impl Field {
    /// The key in the workshop's JSON and the attribute name in the table.
    pub const fn key(self) -> &'static str {
        match self {
            Field::Name => "Name",
            Field::StatusTime => "StatusTime",
            Field::Latitude => "Latitude",
            Field::Longitude => "Longitude",
            Field::Distance => "Distance",
            Field::MagicPoints => "MagicPoints",
            Field::HealthPoints => "HealthPoints",
            Field::MinMagicPoints => "MinMagicPoints",
            Field::MaxMagicPoints => "MaxMagicPoints",
            Field::MinHealthPoints => "MinHealthPoints",
            Field::MaxHealthPoints => "MaxHealthPoints",
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// Why a record is not a valid reading or aggregate.
///
/// Every variant is final: the same bytes will fail the same way on a retry, so
/// callers keep the record as a reject instead of retrying it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ValidationError {
    /// Bigger than [`MAX_RECORD_BYTES`].
    #[error("record is {size} bytes, more than the {limit} accepted: not a wildrydes record")]
    TooLarge {
        /// The record's size.
        size: usize,
        /// The limit it broke.
        limit: usize,
    },
    /// A KPL aggregate that cannot be read (bad MD5, truncated protobuf):
    /// its user records are lost to the pipeline, the bytes are kept whole.
    #[error(
        "record is a KPL aggregate that cannot be read ({reason}): kept whole; check the producer's aggregation library"
    )]
    CorruptAggregate {
        /// The codec's account.
        reason: String,
    },
    /// Not UTF-8 JSON at all (includes numbers JSON cannot hold, such as `1e999`).
    #[error("record is not JSON ({reason}): {shown}")]
    NotJson {
        /// The parser's account of where and why.
        reason: String,
        /// The start of the record, escaped.
        shown: String,
    },
    /// JSON, but not an object.
    #[error("record is a JSON {found}, expected an object")]
    NotObject {
        /// The kind of JSON value it is.
        found: &'static str,
    },
    /// A required key is absent or `null`.
    #[error("field {field} is missing")]
    MissingField {
        /// The field.
        field: Field,
    },
    /// A key appears twice, so which value is meant is unclear.
    #[error("field {field} appears more than once")]
    DuplicateField {
        /// The field.
        field: Field,
    },
    /// A value of the wrong JSON type, or a fraction where an integer belongs.
    #[error("field {field} must be {expected}, found {shown}")]
    WrongType {
        /// The field.
        field: Field,
        /// What it must be.
        expected: &'static str,
        /// What it is.
        shown: String,
    },
    /// A number outside what the field can hold.
    #[error("field {field} is {shown}, outside {min}..={max}")]
    OutOfRange {
        /// The field.
        field: Field,
        /// The value.
        shown: String,
        /// Smallest allowed.
        min: f64,
        /// Largest allowed.
        max: f64,
    },
    /// A minimum above its maximum.
    #[error("{min_field} {min} is above {max_field} {max}")]
    MinAboveMax {
        /// The minimum's field.
        min_field: Field,
        /// The minimum's value.
        min: i64,
        /// The maximum's field.
        max_field: Field,
        /// The maximum's value.
        max: i64,
    },
    /// The name is not acceptable.
    #[error("field Name {0}")]
    Name(#[from] NameError),
    /// The time cannot be read.
    #[error("field StatusTime {shown} is not a time: {reason}")]
    Time {
        /// The text given.
        shown: String,
        /// Why it was refused.
        reason: TimeError,
    },
    /// An aggregate whose time is not the start of a minute.
    #[error("field StatusTime {shown} of an aggregate must be the start of a minute")]
    NotMinute {
        /// The time given.
        shown: String,
    },
}

/// `s`, cut to a length fit for an error message and escaped so that control
/// characters and quotes cannot break a log line.
pub(crate) fn truncate_for_display(s: &str) -> String {
    let mut cut: String = s.chars().take(SHOWN_CHARS).collect();
    if cut.len() < s.len() {
        cut.push('…');
    }
    format!("{cut:?}")
}

/// Like [`truncate_for_display`], for bytes that may not be UTF-8.
pub(crate) fn truncate_bytes_for_display(b: &[u8]) -> String {
    let head = &b[..b.len().min(SHOWN_CHARS * 4)];
    truncate_for_display(&String::from_utf8_lossy(head))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_values_are_cut_and_escaped() {
        let shown = truncate_for_display(&format!("a\"\n{}", "b".repeat(100)));
        assert!(shown.starts_with("\"a\\\"\\n"), "{shown}");
        assert!(shown.ends_with("…\""), "{shown}");
        assert!(shown.chars().count() < 80, "{shown}");
    }
}
