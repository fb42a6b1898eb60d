//! What the producer puts on the stream, read back from TRIM_HORIZON: the
//! workshop's exact format, the simulation's statistics, reproducibility,
//! the ledger, and the magic-drain scenario.

mod common;

use std::collections::HashMap;

use common::{
    START, assert_complete_and_ordered, bounded, local_aws, names, per_unicorn, read_stream, run,
    settings, stream,
};
use regex::Regex;
use wildrydes_core::{Reading, StatusTime, UnicornName};
use wildrydes_producer::Cli;
use wildrydes_producer::app;
use wildrydes_producer::ledger::LedgerEntry;
use wildrydes_producer::scenario::SCENARIO_BOUND;
use wildrydes_producer::simulation::{
    BASE_DISTANCE_MAX, BASE_DISTANCE_MIN, DISTANCE_SPREAD, START_POSITION, Unicorn,
};

/// The workshop's reading shape: key order, time format, integer fields.
const SHAPE: &str = r#"^\{"Name":"[^"]{1,32}","StatusTime":"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}","Latitude":-?\d+\.\d+,"Longitude":-?\d+\.\d+,"Distance":\d+,"MagicPoints":-?\d+,"HealthPoints":-?\d+\}$"#;

#[tokio::test]
async fn readings_on_the_stream_have_the_workshop_format() {
    bounded(async {
        let local = local_aws(false).await;
        stream(&local, "wildrydes", 1).await;
        // The whole start-up path, flags included, as the binary runs it.
        let cli = Cli::try_parse_from_args(&[
            "--name",
            "Shadowfax",
            "--name",
            "Rocinante",
            "--duration",
            "2m",
            "--time-scale",
            "100000",
            "--seed",
            "1",
            "--start-time",
            START,
            "--quiet",
        ]);
        let settings = cli.settings().unwrap();
        let summary = app::start(&settings, local.sdk_config(), None, std::future::pending())
            .await
            .unwrap();
        assert!(summary.is_complete(), "{summary}");
        assert_eq!(app::exit_status(&summary), app::EXIT_OK);

        let records = read_stream(&local, "wildrydes").await;
        assert_eq!(records.len(), 240);
        let shape = Regex::new(SHAPE).unwrap();
        for r in &records {
            assert!(shape.is_match(&r.data), "{}", r.data);
            let reading = Reading::from_json(r.data.as_bytes()).unwrap();
            assert_eq!(reading.to_json(), r.data, "byte for byte");
            assert_eq!(reading.name.as_str(), r.partition_key);
        }
        assert!(records[0].data.starts_with(
            r#"{"Name":"Shadowfax","StatusTime":"2017-06-05 09:00:00.000","Latitude":40.7"#
        ));
        assert_complete_and_ordered(&records, 2, 120);
        local.shutdown().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_seeded_run_has_the_workshop_statistics() {
    bounded(async {
        let local = local_aws(false).await;
        stream(&local, "stats", 2).await;
        let unicorns = names(&["Shadowfax", "Rocinante", "Bucephalus", "Pegasus"]);
        let seed = 2017;
        let summary = run(&local, &settings(unicorns.clone(), "stats", seed, 1800)).await;
        assert!(summary.is_complete(), "{summary}");

        let records = read_stream(&local, "stats").await;
        assert_complete_and_ordered(&records, 4, 1800);
        let mut steps = HashMap::<i16, u32>::new();
        for (name, readings) in per_unicorn(&records) {
            let expected = Unicorn::new(UnicornName::new(&name).unwrap(), seed);
            let base = expected.base_distance();
            assert!(
                (BASE_DISTANCE_MIN..=BASE_DISTANCE_MAX).contains(&base),
                "{name}"
            );
            let (mut lat, mut lon) = START_POSITION;
            let (mut magic, mut health) = (150, 150);
            for r in &readings {
                assert!(
                    (base..=base + DISTANCE_SPREAD).contains(&r.distance),
                    "{name}: {} outside {base}..={}",
                    r.distance,
                    base + DISTANCE_SPREAD
                );
                *steps.entry(r.magic_points - magic).or_default() += 1;
                *steps.entry(r.health_points - health).or_default() += 1;
                (magic, health) = (r.magic_points, r.health_points);
                // The bearing, recovered from the move and the workshop's formulas.
                let d = f64::from(r.distance);
                let sin = (r.latitude - lat) * 110_540.0 / d;
                let cos = (r.longitude - lon) * 111_320.0 * r.latitude.to_radians().cos() / d;
                let bearing = sin.atan2(cos).rem_euclid(std::f64::consts::TAU);
                let off = (bearing - expected.bearing()).abs();
                assert!(
                    off.min(std::f64::consts::TAU - off) < 1e-6,
                    "{name}: bearing {bearing} != {}",
                    expected.bearing()
                );
                (lat, lon) = (r.latitude, r.longitude);
            }
        }
        let total = f64::from(steps.values().sum::<u32>());
        assert_eq!(total, 4.0 * 1800.0 * 2.0);
        assert_eq!(steps.len(), 3, "only -1, 0 and +1 steps: {steps:?}");
        for (step, share) in [(-1, 0.25), (0, 0.5), (1, 0.25)] {
            let seen = f64::from(steps[&step]) / total;
            assert!(
                (seen - share).abs() < 0.02,
                "step {step}: {seen} vs {share}"
            );
        }
        local.shutdown().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn the_same_seed_gives_the_same_bytes() {
    bounded(async {
        let local = local_aws(false).await;
        for name in ["first", "second", "other"] {
            stream(&local, name, 1).await;
        }
        let unicorns = names(&["Shadowfax", "Rocinante", "Bucephalus"]);
        run(&local, &settings(unicorns.clone(), "first", 7, 300)).await;
        run(&local, &settings(unicorns.clone(), "second", 7, 300)).await;
        run(&local, &settings(unicorns, "other", 8, 300)).await;
        let data = |records: Vec<common::StreamRecord>| -> Vec<(String, String)> {
            records
                .into_iter()
                .map(|r| (r.partition_key, r.data))
                .collect()
        };
        let first = data(read_stream(&local, "first").await);
        let second = data(read_stream(&local, "second").await);
        let other = data(read_stream(&local, "other").await);
        assert_eq!(first.len(), 900);
        assert_eq!(first, second);
        assert_ne!(first, other);
        local.shutdown().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn the_ledger_matches_the_stream() {
    bounded(async {
        let local = local_aws(false).await;
        stream(&local, "ledgered", 3).await;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.jsonl");
        let mut s = settings(common::fleet(12), "ledgered", 3, 100);
        s.ledger = Some(path.clone());
        let summary = run(&local, &s).await;
        assert!(summary.is_complete(), "{summary}");

        let text = std::fs::read_to_string(&path).unwrap();
        let mut ledger: Vec<(String, String, String, String)> = text
            .lines()
            .map(|line| {
                let e = LedgerEntry::parse(line).unwrap();
                (
                    e.shard_id,
                    e.sequence_number,
                    e.partition_key,
                    e.data.get().to_owned(),
                )
            })
            .collect();
        let mut stream: Vec<(String, String, String, String)> = read_stream(&local, "ledgered")
            .await
            .into_iter()
            .map(|r| (r.shard_id, r.sequence_number, r.partition_key, r.data))
            .collect();
        assert_eq!(ledger.len(), 1200);
        assert!(
            stream
                .iter()
                .map(|r| &r.0)
                .collect::<std::collections::HashSet<_>>()
                .len()
                > 1
        );

        // Within a shard, the ledger lists records in sequence order.
        // Sequence numbers are decimal strings of up to 128 bits and more:
        // order them by length, then digits.
        let seq = |s: &str| (s.len(), s.to_owned());
        let mut last = HashMap::<String, (usize, String)>::new();
        for (shard, sequence, _, _) in &ledger {
            let previous = last.insert(shard.clone(), seq(sequence));
            assert!(
                previous.is_none_or(|p| p < seq(sequence)),
                "{shard} out of order"
            );
        }
        let key = |r: &(String, String, String, String)| (r.0.clone(), seq(&r.1));
        ledger.sort_by_key(key);
        stream.sort_by_key(key);
        assert_eq!(ledger, stream);
        local.shutdown().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn magic_drain_goes_below_50_and_recovers() {
    bounded(async {
        let local = local_aws(false).await;
        stream(&local, "wildrydes", 1).await;
        let cli = Cli::try_parse_from_args(&[
            "--name",
            "Shadowfax",
            "--name",
            "Rocinante",
            "--scenario",
            "magic-drain",
            "--drain-unicorn",
            "Rocinante",
            "--duration",
            "5m",
            "--time-scale",
            "100000",
            "--seed",
            "11",
            "--start-time",
            START,
            "--quiet",
        ]);
        let settings = cli.settings().unwrap();
        let summary = app::start(&settings, local.sdk_config(), None, std::future::pending())
            .await
            .unwrap();
        assert!(summary.is_complete(), "{summary}");

        let groups = per_unicorn(&read_stream(&local, "wildrydes").await);
        let start = StatusTime::parse(START).unwrap().epoch_millis();
        let at = |r: &Reading| (r.status_time.epoch_millis() - start) / 1000;
        let drained = &groups["Rocinante"];
        let low = drained
            .iter()
            .position(|r| r.magic_points < 50)
            .expect("magic fell below 50");
        let back = low
            + drained[low..]
                .iter()
                .position(|r| r.magic_points > 100)
                .expect("magic came back above 100");
        let (low, back) = (&drained[low], &drained[back]);
        let bound = i64::try_from(SCENARIO_BOUND.as_secs()).unwrap();
        assert!(
            at(low) < at(back) && at(back) < bound,
            "{} then {}",
            at(low),
            at(back)
        );
        // A whole aggregation minute stays below 50: the alarm cannot miss it.
        let below = drained.iter().filter(|r| r.magic_points < 50).count();
        assert!(below >= 60, "{below} seconds below 50");
        // The other unicorn walks normally.
        assert!(groups["Shadowfax"].iter().all(|r| r.magic_points > 100));
        local.shutdown().await.unwrap();
    })
    .await;
}

/// Parses producer flags in tests.
trait ParseArgs {
    fn try_parse_from_args(args: &[&str]) -> Cli;
}

impl ParseArgs for Cli {
    fn try_parse_from_args(args: &[&str]) -> Cli {
        use clap::Parser as _;
        Cli::try_parse_from(std::iter::once("producer").chain(args.iter().copied()))
            .unwrap_or_else(|e| panic!("{e}"))
    }
}
