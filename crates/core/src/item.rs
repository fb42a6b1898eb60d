//! The record-to-item mapping: an [`Aggregate`] as the workshop's function
//! stored it in `UnicornSensorData`, and back.
//!
//! `Name` is a String, `StatusTime` a Number holding epoch milliseconds (the
//! timestamp read as UTC), the five figures Numbers under their JSON names.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use crate::aggregate::Aggregate;
use crate::error::{Field, ValidationError};
use crate::name::UnicornName;
use crate::time::StatusTime;

/// A DynamoDB item, as the SDK takes and returns it.
pub type Item = HashMap<String, AttributeValue>;

/// How to read one figure of an aggregate.
type Figure = fn(&Aggregate) -> i16;

/// The five figures of an aggregate, in table order, with how to read each.
const FIGURES: [(Field, Figure); 5] = [
    (Field::Distance, |a| a.distance),
    (Field::MinMagicPoints, |a| a.min_magic_points),
    (Field::MaxMagicPoints, |a| a.max_magic_points),
    (Field::MinHealthPoints, |a| a.min_health_points),
    (Field::MaxHealthPoints, |a| a.max_health_points),
];

/// The item the workshop's stream processor wrote for `aggregate`.
pub fn aggregate_to_item(aggregate: &Aggregate) -> Item {
    let mut item = Item::with_capacity(2 + FIGURES.len());
    item.insert(
        Field::Name.key().to_owned(),
        AttributeValue::S(aggregate.name.as_str().to_owned()),
    );
    // `itoa`, not `to_string`: this runs once per record, and `fmt` costs
    // more than the rest of the mapping's arithmetic (BENCHMARKS.md).
    let mut digits = itoa::Buffer::new();
    item.insert(
        Field::StatusTime.key().to_owned(),
        AttributeValue::N(
            digits
                .format(aggregate.status_time.epoch_millis())
                .to_owned(),
        ),
    );
    for (field, get) in FIGURES {
        item.insert(
            field.key().to_owned(),
            AttributeValue::N(digits.format(get(aggregate)).to_owned()),
        );
    }
    item
}

/// The key attributes alone, for reads and deletes of one aggregate's item.
pub fn aggregate_key(name: &UnicornName, minute: StatusTime) -> Item {
    HashMap::from([
        (
            Field::Name.key().to_owned(),
            AttributeValue::S(name.as_str().to_owned()),
        ),
        (
            Field::StatusTime.key().to_owned(),
            AttributeValue::N(minute.epoch_millis().to_string()),
        ),
    ])
}

/// Reads an item of `UnicornSensorData` back as the aggregate it stores,
/// applying the same validation as a record off the stream.
pub fn item_to_aggregate(item: &Item) -> Result<Aggregate, ValidationError> {
    let name = match item.get(Field::Name.key()) {
        Some(AttributeValue::S(s)) => UnicornName::new(s)?,
        Some(other) => return Err(wrong_type(Field::Name, "a String (S)", other)),
        None => return Err(ValidationError::MissingField { field: Field::Name }),
    };
    let ms = number(item, Field::StatusTime, 0, i64::MAX)?;
    let status_time =
        StatusTime::from_epoch_millis(ms).map_err(|reason| ValidationError::Time {
            shown: ms.to_string(),
            reason,
        })?;
    let figure = |field, min| -> Result<i16, ValidationError> {
        let n = number(item, field, min, i64::from(i16::MAX))?;
        Ok(i16::try_from(n).unwrap_or(i16::MAX))
    };
    let smallest = i64::from(i16::MIN);
    Aggregate {
        name,
        status_time,
        distance: figure(Field::Distance, 0)?,
        min_magic_points: figure(Field::MinMagicPoints, smallest)?,
        max_magic_points: figure(Field::MaxMagicPoints, smallest)?,
        min_health_points: figure(Field::MinHealthPoints, smallest)?,
        max_health_points: figure(Field::MaxHealthPoints, smallest)?,
    }
    .validated()
}

/// A Number attribute holding an integer within `min..=max`.
fn number(item: &Item, field: Field, min: i64, max: i64) -> Result<i64, ValidationError> {
    let text = match item.get(field.key()) {
        Some(AttributeValue::N(text)) => text,
        Some(other) => return Err(wrong_type(field, "a Number (N)", other)),
        None => return Err(ValidationError::MissingField { field }),
    };
    let n: i64 = text.parse().map_err(|_| ValidationError::WrongType {
        field,
        expected: "an integer",
        shown: crate::error::truncate_for_display(text),
    })?;
    if !(min..=max).contains(&n) {
        #[allow(clippy::cast_precision_loss)]
        return Err(ValidationError::OutOfRange {
            field,
            shown: n.to_string(),
            min: min as f64,
            max: max as f64,
        });
    }
    Ok(n)
}

fn wrong_type(field: Field, expected: &'static str, found: &AttributeValue) -> ValidationError {
    ValidationError::WrongType {
        field,
        expected,
        shown: crate::error::truncate_for_display(&format!("{found:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn maps_as_the_workshop_stored_it() {
        let a = Aggregate::from_json(br#"{"Name":"Shadowfax","StatusTime":"2016-02-12 00:01:00.000","Distance":1319,"MinMagicPoints":145,"MaxMagicPoints":149,"MinHealthPoints":145,"MaxHealthPoints":148}"#).unwrap();
        let item = aggregate_to_item(&a);
        let n = |s: &str| AttributeValue::N(s.into());
        assert_eq!(
            item,
            HashMap::from([
                ("Name".into(), AttributeValue::S("Shadowfax".into())),
                ("StatusTime".into(), n("1455235260000")),
                ("Distance".into(), n("1319")),
                ("MinMagicPoints".into(), n("145")),
                ("MaxMagicPoints".into(), n("149")),
                ("MinHealthPoints".into(), n("145")),
                ("MaxHealthPoints".into(), n("148")),
            ])
        );
        assert_eq!(item_to_aggregate(&item).unwrap(), a);
    }

    #[test]
    fn bad_items_are_refused_with_the_attribute() {
        let a = Aggregate::from_json(br#"{"Name":"S","StatusTime":"2016-02-12 00:01:00.000","Distance":1,"MinMagicPoints":1,"MaxMagicPoints":1,"MinHealthPoints":1,"MaxHealthPoints":1}"#).unwrap();
        let mut item = aggregate_to_item(&a);
        item.insert("StatusTime".into(), AttributeValue::S("2016".into()));
        assert!(matches!(
            item_to_aggregate(&item),
            Err(ValidationError::WrongType {
                field: Field::StatusTime,
                ..
            })
        ));
        item.remove("StatusTime");
        assert_eq!(
            item_to_aggregate(&item),
            Err(ValidationError::MissingField {
                field: Field::StatusTime
            })
        );
    }

    pub(crate) fn any_aggregate() -> impl Strategy<Value = Aggregate> {
        (
            "[A-Za-z][A-Za-z0-9 _-]{0,31}",
            0i64..4_000_000_000i64,
            0i16..=i16::MAX,
            any::<(i16, i16)>(),
            any::<(i16, i16)>(),
        )
            .prop_map(|(name, minutes, distance, (m1, m2), (h1, h2))| Aggregate {
                name: UnicornName::new(&name).unwrap(),
                status_time: StatusTime::from_epoch_millis(minutes * 60_000).unwrap(),
                distance,
                min_magic_points: m1.min(m2),
                max_magic_points: m1.max(m2),
                min_health_points: h1.min(h2),
                max_health_points: h1.max(h2),
            })
    }

    proptest! {
        #[test]
        fn item_round_trip(a in any_aggregate()) {
            prop_assert_eq!(item_to_aggregate(&aggregate_to_item(&a)), Ok(a.clone()));
            prop_assert_eq!(Aggregate::from_json(a.to_json().as_bytes()), Ok(a));
        }
    }
}
