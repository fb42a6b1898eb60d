//! `Verification`: what the table must hold for a set of readings, and how it
//! differs from what it holds: the proof that nothing was lost, nothing
//! invented, nothing wrong.

use aws_sdk_dynamodb::Client;
use std::collections::BTreeMap;

use wildrydes_core::item::item_to_aggregate;
use wildrydes_core::{Aggregate, Reading};

/// An aggregate's table key: the minute (epoch ms) and the unicorn.
pub type Key = (i64, String);

/// The aggregates `readings` must produce, by key: every minute of every
/// unicorn, each reading (unicorn and millisecond) counted once, whatever
/// their order. Plain arithmetic, apart from the aggregator's window, so
/// that it can judge it. A minute whose distance does not fit SMALLINT is
/// left out: the aggregator keeps it as a reject.
pub fn expected_aggregates<'a>(
    readings: impl IntoIterator<Item = &'a Reading>,
) -> BTreeMap<Key, Aggregate> {
    let mut once: BTreeMap<(&str, i64), &Reading> = BTreeMap::new();
    for r in readings {
        once.entry((r.name.as_str(), r.status_time.epoch_millis()))
            .or_insert(r);
    }
    let mut sums: BTreeMap<Key, (i64, Aggregate)> = BTreeMap::new();
    for r in once.into_values() {
        let minute = r.status_time.minute();
        let key = (minute.epoch_millis(), r.name.to_string());
        let (distance, a) = sums.entry(key).or_insert_with(|| {
            (
                0,
                Aggregate {
                    name: r.name.clone(),
                    status_time: minute,
                    distance: 0,
                    min_magic_points: r.magic_points,
                    max_magic_points: r.magic_points,
                    min_health_points: r.health_points,
                    max_health_points: r.health_points,
                },
            )
        });
        *distance += i64::from(r.distance);
        a.min_magic_points = a.min_magic_points.min(r.magic_points);
        a.max_magic_points = a.max_magic_points.max(r.magic_points);
        a.min_health_points = a.min_health_points.min(r.health_points);
        a.max_health_points = a.max_health_points.max(r.health_points);
    }
    sums.into_iter()
        .filter_map(|(key, (distance, mut a))| {
            a.distance = i16::try_from(distance).ok()?;
            Some((key, a))
        })
        .collect()
}

/// How the table differs from what was expected.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verification {
    /// Items that match.
    pub matching: usize,
    /// Expected, absent from the table.
    pub missing: Vec<Aggregate>,
    /// In the table, not expected.
    pub extra: Vec<Aggregate>,
    /// In both, with other figures: (expected, found).
    pub different: Vec<(Aggregate, Aggregate)>,
    /// Table items that are not aggregates at all, with why.
    pub unreadable: Vec<String>,
}

impl Verification {
    /// Whether the table holds exactly what was expected.
    pub fn passed(&self) -> bool {
        self.missing.is_empty()
            && self.extra.is_empty()
            && self.different.is_empty()
            && self.unreadable.is_empty()
    }
}

/// Compares `expected` with what `found` holds.
pub fn compare(
    expected: &BTreeMap<Key, Aggregate>,
    found: &BTreeMap<Key, Aggregate>,
) -> Verification {
    let mut v = Verification::default();
    for (key, want) in expected {
        match found.get(key) {
            None => v.missing.push(want.clone()),
            Some(got) if got == want => v.matching += 1,
            Some(got) => v.different.push((want.clone(), got.clone())),
        }
    }
    v.extra = found
        .iter()
        .filter(|(k, _)| !expected.contains_key(*k))
        .map(|(_, a)| a.clone())
        .collect();
    v
}

/// Every aggregate in `table`, by key, with the items that are not
/// aggregates listed apart.
pub async fn table_aggregates(
    client: &Client,
    table: &str,
) -> Result<(BTreeMap<Key, Aggregate>, Vec<String>), String> {
    let mut pages = client
        .scan()
        .table_name(table)
        .consistent_read(true)
        .into_paginator()
        .items()
        .send();
    let (mut found, mut unreadable) = (BTreeMap::new(), Vec::new());
    while let Some(item) = pages.next().await {
        let item = item.map_err(|e| {
            format!(
                "cannot scan table {table}: {}",
                aws_sdk_dynamodb::error::DisplayErrorContext(&e)
            )
        })?;
        match item_to_aggregate(&item) {
            Ok(a) => {
                found.insert((a.status_time.epoch_millis(), a.name.to_string()), a);
            }
            Err(e) => unreadable.push(format!("{item:?}: {e}")),
        }
    }
    Ok((found, unreadable))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agg(line: &str) -> Aggregate {
        Aggregate::from_json(line.as_bytes()).unwrap()
    }

    #[test]
    fn finds_missing_extra_and_different() {
        let day = include_str!("../../../tests/fixtures/shadowfax-2016-02-12.json");
        let all: Vec<_> = day.lines().take(4).map(agg).collect();
        let keyed = |v: &[Aggregate]| -> BTreeMap<Key, Aggregate> {
            v.iter()
                .map(|a| {
                    (
                        (a.status_time.epoch_millis(), a.name.to_string()),
                        a.clone(),
                    )
                })
                .collect()
        };
        let expected = keyed(&all[..3]);
        let mut changed = all[1].clone();
        changed.distance += 1;
        let found = keyed(&[all[0].clone(), changed.clone(), all[3].clone()]);
        let v = compare(&expected, &found);
        assert_eq!(v.matching, 1);
        assert_eq!(v.missing, [all[2].clone()]);
        assert_eq!(v.extra, [all[3].clone()]);
        assert_eq!(v.different, [(all[1].clone(), changed)]);
        assert!(!v.passed());
        assert!(compare(&expected, &expected).passed());
    }
}
