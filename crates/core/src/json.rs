//! One pass over a record's JSON that keeps the fields we know as loose
//! scalars, so that every kind of bad input becomes a typed
//! [`ValidationError`] naming its field, rather than serde's one-line message.
//!
//! Unknown keys are skipped (producers may add fields); nested values are
//! skipped without being built. Nothing here allocates for a well-formed
//! record except for strings that contain escapes.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::error::truncate_for_display;
use crate::error::{Field, MAX_RECORD_BYTES, ValidationError, truncate_bytes_for_display};
use crate::name::UnicornName;
use crate::time::StatusTime;

/// How many [`Field`]s exist; the size of [`Fields::values`].
const FIELD_COUNT: usize = 11;

/// A JSON value, kept only as far as validation needs it.
#[derive(Debug, Clone, PartialEq)]
enum Scalar<'a> {
    Str(Cow<'a, str>),
    Int(i64),
    UInt(u64),
    Float(f64),
    Bool(bool),
    Null,
    Array,
    Object,
}

impl Scalar<'_> {
    /// The value as an operator should see it in an error.
    fn shown(&self) -> String {
        match self {
            Scalar::Str(s) => truncate_for_display(s),
            Scalar::Int(n) => n.to_string(),
            Scalar::UInt(n) => n.to_string(),
            Scalar::Float(x) => x.to_string(),
            Scalar::Bool(b) => b.to_string(),
            Scalar::Null => "null".into(),
            Scalar::Array => "an array".into(),
            Scalar::Object => "an object".into(),
        }
    }
}

/// The known fields of one JSON object, as found.
#[derive(Debug)]
pub(crate) struct Fields<'a> {
    values: [Option<Scalar<'a>>; FIELD_COUNT],
    duplicate: Option<Field>,
}

impl<'a> Fields<'a> {
    /// Parses `bytes` as one JSON object (surrounding white space allowed).
    pub(crate) fn parse(bytes: &'a [u8]) -> Result<Self, ValidationError> {
        // Consumers deaggregate before validation; an aggregate still here
        // is one that could not be read (whatever its size: producers
        // fill aggregates up to 1 MiB, far above a record's limit).
        if crate::kpl::is_aggregated(bytes) {
            return Err(ValidationError::CorruptAggregate {
                reason: crate::kpl::deaggregate(bytes).map_or_else(
                    |e| e.to_string(),
                    |_| "it reached validation without being deaggregated".to_owned(),
                ),
            });
        }
        if bytes.len() > MAX_RECORD_BYTES {
            return Err(ValidationError::TooLarge {
                size: bytes.len(),
                limit: MAX_RECORD_BYTES,
            });
        }
        let not_json = |e: serde_json::Error| ValidationError::NotJson {
            reason: e.to_string(),
            shown: truncate_bytes_for_display(bytes),
        };
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let doc = de.deserialize_any(DocVisitor).map_err(not_json)?;
        de.end().map_err(not_json)?;
        match doc {
            Doc::Object(fields) => match fields.duplicate {
                Some(field) => Err(ValidationError::DuplicateField { field }),
                None => Ok(fields),
            },
            Doc::Other(found) => Err(ValidationError::NotObject { found }),
        }
    }

    fn get(&self, field: Field) -> Result<&Scalar<'a>, ValidationError> {
        match &self.values[field as usize] {
            None | Some(Scalar::Null) => Err(ValidationError::MissingField { field }),
            Some(v) => Ok(v),
        }
    }

    /// A string field.
    pub(crate) fn str(&self, field: Field) -> Result<&str, ValidationError> {
        match self.get(field)? {
            Scalar::Str(s) => Ok(s),
            other => Err(wrong_type(field, "a string", other)),
        }
    }

    /// An integer field within `min..=max`. A float with no fraction (`175.0`)
    /// is accepted: some encoders write integers that way.
    pub(crate) fn int(&self, field: Field, min: i64, max: i64) -> Result<i64, ValidationError> {
        let value = self.get(field)?;
        let n = match *value {
            Scalar::Int(n) => Some(i128::from(n)),
            Scalar::UInt(n) => Some(i128::from(n)),
            #[allow(clippy::cast_possible_truncation)]
            Scalar::Float(x) if x.fract() == 0.0 && x.abs() < 1e30 => Some(x as i128),
            _ => None,
        };
        let Some(n) = n else {
            return Err(wrong_type(field, "an integer", value));
        };
        if n < i128::from(min) || n > i128::from(max) {
            return Err(out_of_range(field, value, min as f64, max as f64));
        }
        Ok(n as i64)
    }

    /// The `Name` field, as a valid unicorn name.
    pub(crate) fn name(&self) -> Result<UnicornName, ValidationError> {
        Ok(UnicornName::new(self.str(Field::Name)?)?)
    }

    /// The `StatusTime` field, parsed.
    pub(crate) fn time(&self) -> Result<StatusTime, ValidationError> {
        let text = self.str(Field::StatusTime)?;
        StatusTime::parse(text).map_err(|reason| ValidationError::Time {
            shown: truncate_for_display(text),
            reason,
        })
    }

    /// An integer field from `min` to the top of SMALLINT: the workshop's
    /// SQL declared every figure so, and a per-minute minimum or maximum of
    /// readings must fit there too.
    pub(crate) fn smallint(&self, field: Field, min: i16) -> Result<i16, ValidationError> {
        let n = self.int(field, min.into(), i16::MAX.into())?;
        Ok(i16::try_from(n).unwrap_or(i16::MAX))
    }

    /// A finite number within `min..=max`.
    pub(crate) fn float(&self, field: Field, min: f64, max: f64) -> Result<f64, ValidationError> {
        let value = self.get(field)?;
        #[allow(clippy::cast_precision_loss)]
        let x = match *value {
            Scalar::Int(n) => n as f64,
            Scalar::UInt(n) => n as f64,
            Scalar::Float(x) => x,
            _ => return Err(wrong_type(field, "a number", value)),
        };
        if !x.is_finite() || x < min || x > max {
            return Err(out_of_range(field, value, min, max));
        }
        Ok(x)
    }
}

fn wrong_type(field: Field, expected: &'static str, found: &Scalar<'_>) -> ValidationError {
    ValidationError::WrongType {
        field,
        expected,
        shown: found.shown(),
    }
}

fn out_of_range(field: Field, value: &Scalar<'_>, min: f64, max: f64) -> ValidationError {
    ValidationError::OutOfRange {
        field,
        shown: value.shown(),
        min,
        max,
    }
}

/// The top level of a record. Lives only on the stack for one parse, so the
/// size difference of its variants costs nothing.
#[allow(clippy::large_enum_variant)]
enum Doc<'a> {
    Object(Fields<'a>),
    Other(&'static str),
}

struct DocVisitor;

impl<'de> Visitor<'de> for DocVisitor {
    type Value = Doc<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields = Fields {
            values: Default::default(),
            duplicate: None,
        };
        while let Some(FieldKey(key)) = map.next_key()? {
            match key {
                Some(field) => {
                    let value = map.next_value::<Scalar<'de>>()?;
                    let slot = &mut fields.values[field as usize];
                    if slot.is_some() {
                        fields.duplicate.get_or_insert(field);
                    }
                    *slot = Some(value);
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Doc::Object(fields))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Doc::Other("array"))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Doc::Other("string"))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Doc::Other("number"))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Doc::Other("number"))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Doc::Other("number"))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Doc::Other("boolean"))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Doc::Other("null"))
    }
}

/// An object key: the field it names, or `None` for a key we do not know.
struct FieldKey(Option<Field>);

impl<'de> de::Deserialize<'de> for FieldKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = FieldKey;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: de::Error>(self, key: &str) -> Result<FieldKey, E> {
                Ok(FieldKey(field_named(key)))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

fn field_named(key: &str) -> Option<Field> {
    Some(match key {
        "Name" => Field::Name,
        "StatusTime" => Field::StatusTime,
        "Latitude" => Field::Latitude,
        "Longitude" => Field::Longitude,
        "Distance" => Field::Distance,
        "MagicPoints" => Field::MagicPoints,
        "HealthPoints" => Field::HealthPoints,
        "MinMagicPoints" => Field::MinMagicPoints,
        "MaxMagicPoints" => Field::MaxMagicPoints,
        "MinHealthPoints" => Field::MinHealthPoints,
        "MaxHealthPoints" => Field::MaxHealthPoints,
        _ => return None,
    })
}

impl<'de> de::Deserialize<'de> for Scalar<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ScalarVisitor;
        impl<'de> Visitor<'de> for ScalarVisitor {
            type Value = Scalar<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Str(Cow::Borrowed(s)))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Str(Cow::Owned(s.to_owned())))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Int(n))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Scalar<'de>, E> {
                Ok(Scalar::UInt(n))
            }
            fn visit_f64<E: de::Error>(self, x: f64) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Float(x))
            }
            fn visit_bool<E: de::Error>(self, b: bool) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Bool(b))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Null)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Scalar<'de>, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Scalar::Array)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scalar<'de>, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Scalar::Object)
            }
        }
        d.deserialize_any(ScalarVisitor)
    }
}

/// For the parsers' tests: `json` parses, and `to_json` writes it back byte
/// for byte. Returns the parsed record.
#[cfg(test)]
pub(crate) fn assert_round_trip<T>(
    parse: impl Fn(&[u8]) -> Result<T, ValidationError>,
    to_json: impl Fn(&T) -> String,
    json: &str,
) -> T {
    let record = parse(json.as_bytes()).unwrap_or_else(|e| panic!("{json}: {e}"));
    assert_eq!(to_json(&record), json);
    record
}

/// For the parsers' tests: `parse` refuses `example` with each case's
/// `from` replaced by its `to`, and the refusal reads as its message.
#[cfg(test)]
pub(crate) fn assert_refusals<T: fmt::Debug>(
    parse: impl Fn(&[u8]) -> Result<T, ValidationError>,
    example: &str,
    cases: &[(&str, &str, &str)],
) {
    for &(from, to, message) in cases {
        assert!(example.contains(from), "{from:?} is not in the example");
        let json = example.replace(from, to);
        let refusal = parse(json.as_bytes()).expect_err(&json);
        assert_eq!(refusal.to_string(), message, "{json}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_corrupt_kpl_aggregate_is_refused_saying_why() {
        let mut builder = crate::kpl::AggregateBuilder::new();
        builder.push(crate::kpl::UserRecord {
            partition_key: "Shadowfax".into(),
            explicit_hash_key: None,
            data: b"{}".to_vec(),
        });
        let mut bytes = builder.finish();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01;
        let Err(err) = Fields::parse(&bytes) else {
            panic!("a corrupt aggregate parsed")
        };
        assert!(
            matches!(&err, ValidationError::CorruptAggregate { reason } if reason.contains("MD5")),
            "{err}"
        );
        assert!(
            err.to_string()
                .starts_with("record is a KPL aggregate that cannot be read (KPL aggregate's MD5"),
            "{err}"
        );
    }

    #[test]
    fn classifies_the_top_level() {
        for (bytes, found) in [
            (&b"[1,2]"[..], "array"),
            (b"\"x\"", "string"),
            (b"12", "number"),
            (b"true", "boolean"),
            (b"null", "null"),
        ] {
            assert_eq!(
                Fields::parse(bytes).unwrap_err(),
                ValidationError::NotObject { found }
            );
        }
    }

    #[test]
    fn syntax_errors_and_trailing_garbage_are_not_json() {
        for bytes in [
            &b""[..],
            b"{",
            b"{\"Name\":}",
            b"{} x",
            b"\xff\xfe",
            b"{\"Distance\":1e999}",
        ] {
            assert!(
                matches!(Fields::parse(bytes), Err(ValidationError::NotJson { .. })),
                "{bytes:?}"
            );
        }
    }

    #[test]
    fn escaped_strings_and_unknown_keys() {
        let f = Fields::parse(br#"{"Extra":{"a":[1,2]},"Name":"Sh\u0061dowfax"}"#).unwrap();
        assert_eq!(f.str(Field::Name).unwrap(), "Shadowfax");
    }

    #[test]
    fn duplicate_keys_are_refused() {
        assert_eq!(
            Fields::parse(br#"{"Distance":1,"Distance":2}"#).unwrap_err(),
            ValidationError::DuplicateField {
                field: Field::Distance
            }
        );
    }

    #[test]
    fn integers_accept_whole_floats_only() {
        let f =
            Fields::parse(br#"{"Distance":175.0,"MagicPoints":1.5,"HealthPoints":"3"}"#).unwrap();
        assert_eq!(f.int(Field::Distance, 0, 32767), Ok(175));
        assert!(matches!(
            f.int(Field::MagicPoints, 0, 10),
            Err(ValidationError::WrongType {
                expected: "an integer",
                ..
            })
        ));
        assert_eq!(
            f.int(Field::HealthPoints, 0, 10),
            Err(ValidationError::WrongType {
                field: Field::HealthPoints,
                expected: "an integer",
                shown: "\"3\"".into()
            })
        );
    }
}
