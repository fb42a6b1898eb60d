//! `Verification`: what the table must hold for a set of readings, and how it
//! differs from what it holds: the proof that nothing was lost, nothing
//! invented, nothing wrong.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_dynamodb::Client;

use crate::aggregate::Aggregate;
use crate::item::item_to_aggregate;
use crate::reading::Reading;
use crate::window::MinuteWindow;

/// An aggregate's table key: the minute (epoch ms) and the unicorn.
pub type Key = (i64, String);

/// The aggregates `readings` must produce, by key: every minute of every
/// unicorn, each reading counted once, whatever their order.
pub fn expected_aggregates<'a>(
    readings: impl IntoIterator<Item = &'a Reading>,
) -> BTreeMap<Key, Aggregate> {
    let mut window = MinuteWindow::new(Duration::from_secs(u64::from(u32::MAX)));
    for r in readings {
        window.push(r);
    }
    window.flush_all();
    window
        .take_closed()
        .into_iter()
        .filter_map(Result::ok)
        .map(|a| ((a.status_time.epoch_millis(), a.name.to_string()), a))
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
