//! What the producer puts on the stream, read back from TRIM_HORIZON: the
//! workshop's exact format, the simulation's statistics, reproducibility,
//! the ledger, and the magic-drain scenario.

mod common;

use std::collections::HashMap;

use clap::Parser as _;
use common::{
    Limits, START, assert_complete_and_ordered, fleet, names, on_backend, per_unicorn, run,
    settings, stream_records, text,
};
use md5::{Digest as _, Md5};
use regex::Regex;
use wildrydes_core::{Reading, StatusTime, UnicornName};
use wildrydes_local_aws::LocalAws;
use wildrydes_producer::ledger::LedgerEntry;
use wildrydes_producer::scenario::SCENARIO_BOUND;
use wildrydes_producer::simulation::{
    BASE_DISTANCE_MAX, BASE_DISTANCE_MIN, DISTANCE_SPREAD, START_POSITION, Unicorn,
};
use wildrydes_producer::{Cli, Summary, app};

/// The workshop's reading shape: key order, time format, integer fields.
const SHAPE: &str = r#"^\{"Name":"[^"]{1,32}","StatusTime":"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}","Latitude":-?\d+\.\d+,"Longitude":-?\d+\.\d+,"Distance":\d+,"MagicPoints":-?\d+,"HealthPoints":-?\d+\}$"#;

/// Runs the whole start-up path, flags included, as the binary runs it:
/// Shadowfax and Rocinante from [`START`], fast and quiet, onto the stream
/// `wildrydes` of `local`, with the flags of `command_line` (split at white
/// space) on top. Every reading must arrive.
async fn start_shadowfax_and_rocinante(local: &LocalAws, command_line: &str) -> Summary {
    let fixed = [
        "producer",
        "--name",
        "Shadowfax",
        "--name",
        "Rocinante",
        "--time-scale",
        "100000",
        "--start-time",
        START,
        "--quiet",
    ];
    let cli = Cli::try_parse_from(fixed.into_iter().chain(command_line.split_whitespace()))
        .unwrap_or_else(|e| panic!("{e}"));
    let settings = cli.settings().expect("valid settings");
    let summary = app::start(&settings, local.sdk_config(), None, std::future::pending())
        .await
        .expect("the producer starts");
    assert!(summary.is_complete(), "{summary}");
    summary
}

/// Where Kinesis puts each partition key of `stream`: on the shard whose
/// hash key range holds the key's MD5, read as a big-endian number.
async fn shard_of_key(local: &LocalAws, stream: &str) -> impl Fn(&str) -> String {
    let request = local.kinesis_client().list_shards().stream_name(stream);
    let listed = request.send().await.expect("ListShards");
    let ranges: Vec<(u128, u128, String)> = listed
        .shards()
        .iter()
        .map(|shard| {
            let range = shard.hash_key_range().expect("a hash key range");
            let start = range.starting_hash_key().parse().expect("a hash key");
            let end = range.ending_hash_key().parse().expect("a hash key");
            (start, end, shard.shard_id().to_owned())
        })
        .collect();
    move |key| {
        let hash = u128::from_be_bytes(Md5::digest(key.as_bytes()).into());
        let (.., shard) = ranges
            .iter()
            .find(|(start, end, _)| (*start..=*end).contains(&hash))
            .expect("the shards cover every hash key");
        shard.clone()
    }
}

#[tokio::test]
async fn readings_on_the_stream_have_the_workshop_format() {
    on_backend(Limits::Off, &[("wildrydes", 1)], async |local| {
        let summary = start_shadowfax_and_rocinante(local, "--duration 2m --seed 1").await;
        assert_eq!(app::exit_status(&summary), app::EXIT_OK);

        let records = stream_records(local, "wildrydes").await;
        assert_eq!(records.len(), 240);
        let shape = Regex::new(SHAPE).unwrap();
        for r in &records {
            let data = text(r);
            assert!(shape.is_match(data), "{data}");
            let reading = Reading::from_json(data.as_bytes()).unwrap();
            assert_eq!(reading.to_json(), data, "byte for byte");
            assert_eq!(reading.name.as_str(), r.partition_key);
        }
        assert!(text(&records[0]).starts_with(
            r#"{"Name":"Shadowfax","StatusTime":"2017-06-05 09:00:00.000","Latitude":40.7"#
        ));
        assert_complete_and_ordered(&records, 2, 120);
    })
    .await;
}

#[tokio::test]
async fn a_seeded_run_has_the_workshop_statistics() {
    on_backend(Limits::Off, &[("stats", 2)], async |local| {
        let unicorns = names(&["Shadowfax", "Rocinante", "Bucephalus", "Pegasus"]);
        let seed = 2017;
        let summary = run(local, &settings(unicorns.clone(), "stats", seed, 1800)).await;
        assert!(summary.is_complete(), "{summary}");

        let records = stream_records(local, "stats").await;
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
    })
    .await;
}

#[tokio::test]
async fn the_same_seed_gives_the_same_bytes() {
    let streams = [("first", 1), ("second", 1), ("other", 1)];
    on_backend(Limits::Off, &streams, async |local| {
        let unicorns = names(&["Shadowfax", "Rocinante", "Bucephalus"]);
        run(local, &settings(unicorns.clone(), "first", 7, 300)).await;
        run(local, &settings(unicorns.clone(), "second", 7, 300)).await;
        run(local, &settings(unicorns, "other", 8, 300)).await;
        let data = async |stream| -> Vec<(String, Vec<u8>)> {
            stream_records(local, stream)
                .await
                .into_iter()
                .map(|r| (r.partition_key, r.data))
                .collect()
        };
        let first = data("first").await;
        let second = data("second").await;
        let other = data("other").await;
        assert_eq!(first.len(), 900);
        assert_eq!(first, second);
        assert_ne!(first, other);
    })
    .await;
}

#[tokio::test]
async fn the_ledger_matches_the_stream() {
    on_backend(Limits::Off, &[("ledgered", 3)], async |local| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.jsonl");
        let mut s = settings(fleet(12), "ledgered", 3, 100);
        s.ledger = Some(path.clone());
        let summary = run(local, &s).await;
        assert!(summary.is_complete(), "{summary}");

        let lines = std::fs::read_to_string(&path).unwrap();
        let mut ledger: Vec<(String, String, String, String)> = lines
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
        let shard_of = shard_of_key(local, "ledgered").await;
        let mut stream: Vec<(String, String, String, String)> = stream_records(local, "ledgered")
            .await
            .iter()
            .map(|r| {
                let key = &r.partition_key;
                let data = text(r).to_owned();
                (shard_of(key), r.sequence_number.clone(), key.clone(), data)
            })
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
    })
    .await;
}

#[tokio::test]
async fn magic_drain_goes_below_50_and_recovers() {
    on_backend(Limits::Off, &[("wildrydes", 1)], async |local| {
        let flags = "--scenario magic-drain --drain-unicorn Rocinante --duration 5m --seed 11";
        start_shadowfax_and_rocinante(local, flags).await;

        let groups = per_unicorn(&stream_records(local, "wildrydes").await);
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
    })
    .await;
}
