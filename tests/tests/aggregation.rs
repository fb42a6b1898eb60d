//! The aggregation, golden: readings synthesised from the workshop's day of
//! aggregates fold back into exactly those aggregates, byte for byte.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use wildrydes_core::window::{MinuteWindow, Push};
use wildrydes_core::{Aggregate, Reading};
use wildrydes_tests::{WORKSHOP_DAY, readings_of_minute};

fn day_of_readings() -> Vec<Reading> {
    WORKSHOP_DAY
        .lines()
        .flat_map(|l| readings_of_minute(&Aggregate::from_json(l.as_bytes()).unwrap(), 189))
        .collect()
}

fn lines_of(mut out: Vec<Aggregate>) -> String {
    out.sort_by_key(|a| a.status_time);
    out.iter().map(|a| a.to_json() + "\n").collect()
}

#[test]
fn a_day_of_readings_aggregates_to_the_workshop_fixture() {
    let readings = day_of_readings();
    assert_eq!(readings.len(), 1440 * 60);
    let mut window = MinuteWindow::new(Duration::from_secs(10));
    for r in &readings {
        assert_eq!(window.push(r), Push::Accepted);
    }
    window.flush_all();
    let out: Vec<_> = window
        .take_closed()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(lines_of(out), WORKSHOP_DAY);
}

#[test]
fn delivered_twice_and_out_of_order_within_the_lateness_changes_nothing() {
    let readings = day_of_readings();
    let mut window = MinuteWindow::new(Duration::from_secs(10));
    // Each pair of neighbours swapped (2 s out of order), each reading twice.
    for pair in readings.chunks(2) {
        for r in pair.iter().rev().chain(pair.iter()) {
            window.push(r);
        }
    }
    window.flush_all();
    assert_eq!(window.duplicate_count(), 1440 * 60);
    assert_eq!(window.late_count(), 0);
    let out: Vec<_> = window
        .take_closed()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(lines_of(out), WORKSHOP_DAY);
}
