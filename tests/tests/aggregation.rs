//! The aggregation, golden: readings synthesised from the workshop's day of
//! aggregates fold back into exactly those aggregates, byte for byte.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use wildrydes_core::window::{MinuteWindow, WindowRules};
use wildrydes_core::{Aggregate, Reading};
use wildrydes_testkit::{WORKSHOP_DAY, readings_of_minute};

fn day_of_readings() -> Vec<Reading> {
    WORKSHOP_DAY
        .lines()
        .flat_map(|l| readings_of_minute(&Aggregate::from_json(l.as_bytes()).unwrap(), 189))
        .collect()
}

fn lines_of(out: impl IntoIterator<Item = Aggregate>) -> String {
    let mut out: Vec<_> = out.into_iter().collect();
    out.sort_by_key(|a| a.status_time);
    out.iter().map(|a| a.to_json() + "\n").collect()
}

/// Pushes `readings` as a consumer would (emitting what is due every 500
/// readings, everything at the end) and returns every emission in order.
fn emissions(
    window: &mut MinuteWindow,
    readings: impl IntoIterator<Item = Reading>,
) -> Vec<Aggregate> {
    let mut out = Vec::new();
    let mut emit = |w: &mut MinuteWindow, due: Vec<wildrydes_core::window::DueMinute>| {
        w.emitted(due.iter().map(|d| (&d.name, d.minute_ms)));
        out.extend(due.into_iter().map(|d| d.aggregate.unwrap()));
    };
    for (i, r) in readings.into_iter().enumerate() {
        window.push(&r, 0);
        if i % 500 == 0 {
            let due = window.due(0);
            emit(window, due);
        }
    }
    let due = window.due_all();
    emit(window, due);
    out
}

#[test]
fn a_day_of_readings_aggregates_to_the_workshop_fixture() {
    let readings = day_of_readings();
    assert_eq!(readings.len(), 1440 * 60);
    let mut window = MinuteWindow::new(WindowRules::default());
    let out = emissions(&mut window, readings);
    assert_eq!(window.counts().accepted, 1440 * 60);
    // In order, each minute goes out once, complete.
    assert_eq!(out.len(), 1440);
    assert_eq!(lines_of(out), WORKSHOP_DAY);
}

#[test]
fn delivered_twice_and_out_of_order_changes_nothing_in_the_last_emissions() {
    let readings = day_of_readings();
    let mut window = MinuteWindow::new(WindowRules::default());
    // Each pair of neighbours swapped, each reading twice, and every
    // 30th minute held back 20 minutes (a device that uploads late).
    let mut delivered = Vec::new();
    let mut held = Vec::new();
    for (i, pair) in readings.chunks(2).enumerate() {
        let late = (i / 30) % 30 == 7;
        for r in pair.iter().rev().chain(pair.iter()) {
            if late {
                held.push(r.clone())
            } else {
                delivered.push(r.clone())
            }
        }
        if i % 600 == 0 {
            delivered.append(&mut held);
        }
    }
    delivered.append(&mut held);
    let out = emissions(&mut window, delivered);
    assert_eq!(window.counts().duplicates, 1440 * 60);
    assert_eq!(window.counts().beyond_horizon, 0);
    assert!(
        window.counts().corrected > 0,
        "the held-back readings corrected emitted minutes"
    );
    let last: BTreeMap<_, _> = out.into_iter().map(|a| (a.status_time, a)).collect();
    assert_eq!(lines_of(last.into_values()), WORKSHOP_DAY);
}
