//! The demo's pipeline at small scale, end to end with the real binaries:
//! producer fleet, daemons (aggregate, process, alarm), then the table
//! compared item by item with the producer's ledger; and the same under
//! faults (Kinesis write limits, iterators expiring, BatchWriteItem calls
//! throttled, the readings stream split and merged, a late device uploading
//! a backlog, the aggregating and processing daemons killed and restarted);
//! and both again with the producers packing readings into KPL aggregates.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::time::Duration;

use wildrydes_ops::demo::{DemoOptions, run};
use wildrydes_testkit::binaries::cargo_bin;

/// The folder of the `producer` and `wildrydes-daemon` binaries, built now.
fn bin_dir() -> PathBuf {
    let producer = cargo_bin("wildrydes-producer", "producer");
    let daemon = cargo_bin("wildrydes-daemon", "wildrydes-daemon");
    let dir = producer.parent().unwrap().to_path_buf();
    assert_eq!(
        daemon.parent(),
        Some(dir.as_path()),
        "cargo puts binaries in one folder"
    );
    dir
}

fn options(faults: bool, aggregate: bool) -> DemoOptions {
    let work_dir = tempfile::tempdir().unwrap().keep();
    DemoOptions {
        unicorns: 3,
        duration_secs: 240,
        time_scale: 40,
        faults,
        aggregate,
        work_dir,
        bin_dir: bin_dir(),
        progress: false,
        settle_timeout: Duration::from_secs(60),
        console: false,
    }
}

async fn demo(faults: bool, aggregate: bool) {
    let opts = options(faults, aggregate);
    let report = tokio::time::timeout(Duration::from_secs(150), run(&opts))
        .await
        .expect("demo timed out")
        .unwrap();
    let v = &report.verification;
    assert!(v.passed(), "{}", wildrydes_ops::verify::describe(v, 10));
    assert_eq!(v.matching, report.expected.len());
    // Three unicorns (four with the late device under faults), four
    // simulated minutes: four or five minutes each, depending on where in
    // its minute the run started.
    let unicorns: std::collections::BTreeSet<_> = report
        .expected
        .keys()
        .map(|(_, name)| name.clone())
        .collect();
    let fleet = if faults { 4 } else { 3 };
    assert_eq!(unicorns.len(), fleet);
    assert!(
        (4 * fleet..=5 * fleet).contains(&report.expected.len()),
        "{:?}",
        report.expected.keys()
    );
    // The drained unicorn went below 50 and came back: one ALARM, one OK.
    let states: Vec<_> = report
        .notifications
        .iter()
        .map(|n| n["state"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(states, ["ALARM", "OK"], "{:?}", report.notifications);
    assert_eq!(report.rejects, 0);
    // The readings stream carried several readings per KPL aggregate.
    if aggregate {
        let stream = report
            .readings_stream
            .expect("the readings stream was read back");
        assert!(
            stream.records < stream.readings,
            "KPL aggregates carried the readings: {stream:?}"
        );
        // Each producer's ledger places every reading within its aggregate.
        let ledgers: &[&str] = if faults {
            &["ledger.jsonl", "late-ledger.jsonl"]
        } else {
            &["ledger.jsonl"]
        };
        for ledger in ledgers {
            let text = std::fs::read_to_string(opts.work_dir.join(ledger)).unwrap();
            assert!(
                text.lines().all(|l| l.contains("\"sub_sequence_number\"")),
                "{ledger} was written by an aggregating producer"
            );
        }
    }
    if faults {
        assert!(
            report.restarts >= 2,
            "the processing and the aggregating daemon were each killed at least once"
        );
        assert_eq!(
            report.reshards, 2,
            "the readings stream was split and merged"
        );
        assert!(
            unicorns.contains("Latecomer"),
            "the late device's minutes are in the table"
        );
        assert!(report.throttled_writes >= 1, "some writes were throttled");
    }
}

#[tokio::test]
async fn the_demo_pipeline_passes_verification() {
    demo(false, false).await;
}

#[tokio::test]
async fn the_demo_pipeline_passes_verification_under_faults() {
    demo(true, false).await;
}

#[tokio::test]
async fn the_aggregated_demo_pipeline_passes_verification() {
    demo(false, true).await;
}

#[tokio::test]
async fn the_aggregated_demo_pipeline_passes_verification_under_faults() {
    demo(true, true).await;
}
