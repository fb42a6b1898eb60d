//! `Cli`: the command line of `producer`, and its conversion into checked
//! [`Settings`]. Every flag says what it does in `--help`; the ones operators
//! set per environment can also come from `WILDRYDES_*` variables.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::builder::TypedValueParser as _;
use clap::{Parser, ValueEnum};
use wildrydes_cli::AwsArgs;
use wildrydes_core::names::READINGS_STREAM;
use wildrydes_core::{StatusTime, UnicornName};

use crate::progress::OutputMode;
use crate::scenario::{DEFAULT_DRAIN_START, Scenario};
use crate::settings::{DEFAULT_MAX_IN_FLIGHT, Settings};

/// Name of the single unicorn simulated when none is named, as in the workshop.
pub const DEFAULT_NAME: &str = "Shadowfax";
/// Largest fleet one process simulates: beyond this, memory and the shards'
/// write limits make a single producer the wrong tool.
pub const MAX_FLEET: u32 = 100_000;
/// Largest time scale accepted: about 11.5 simulated days per real second.
pub const MAX_TIME_SCALE: f64 = 1_000_000.0;

const ABOUT: &str = "Simulates Wild Rydes unicorns and puts one sensor reading per unicorn per second on a Kinesis stream.";

const LONG_ABOUT: &str = "\
Simulates Wild Rydes unicorns and puts one sensor reading per unicorn per second
on a Kinesis stream, in the workshop's JSON with the unicorn's name as the
partition key:

  {\"Name\":\"Shadowfax\",\"StatusTime\":\"2017-06-05 09:17:08.189\",\"Latitude\":42.26,
   \"Longitude\":-71.97,\"Distance\":175,\"MagicPoints\":110,\"HealthPoints\":150}

Each unicorn starts at (40.749167, -73.985184) with 150 magic and 150 health
points and travels in a straight line on a random bearing; each second its
vitals move by -1, 0 or +1 and it covers 100 to 218 metres. A whole fleet runs
in one process, batched with PutRecords and paced so that no shard exceeds
1,000 records/s or 1 MiB/s. Failed records are retried, in order per unicorn.

On a terminal a progress line is shown; on a pipe one '.' per record, as the
workshop's producer did. Logs go to stderr (set RUST_LOG=debug for more).";

const AFTER_HELP: &str = "\
Examples:
  producer                                  Shadowfax, real time, until Ctrl-C
  producer --name Shadowfax --name Rocinante --name Bucephalus
  producer --count 50 --time-scale 60 --duration 30m
                                            50 unicorns, 30 simulated minutes in 30 s
  producer --scenario magic-drain --time-scale 60 --duration 5m
                                            Shadowfax's magic falls below 50: the alarm fires
  producer --seed 7 --start-time '2017-06-05 09:00:00.000' --duration 10m --ledger run.jsonl
                                            a reproducible run, with a ledger for verification
  producer --count 4000 --aggregate         4,000 unicorns in real time on one shard, in
                                            KPL aggregated records

Against the local backend: start `cargo xtask local --kinesis-port 4567` in
another shell, paste the `export` lines it prints (endpoints, test
credentials, region), then run `producer` as above. Or set them per command:
  AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test \\
    producer --endpoint-url http://127.0.0.1:4567 --region us-east-1

Ctrl-C (or SIGTERM) stops generating, sends what is buffered and prints a
summary; a second Ctrl-C exits at once. Exit status: 0 when every reading was
delivered, 1 when the producer could not start or stopped on an error, 2 for
bad arguments, 3 when some readings were finally not delivered.";

/// The `producer` command line.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "producer",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_long_help = AFTER_HELP,
)]
pub struct Cli {
    /// Name of a unicorn to simulate (1 to 32 characters; also its partition
    /// key). Repeat for a fleet. [default: Shadowfax]
    #[arg(long = "name", value_name = "NAME", value_parser = parse_name)]
    pub names: Vec<UnicornName>,

    /// Total number of unicorns: the --name ones first, then generated names
    /// Unicorn-0001, Unicorn-0002, ... (with no --name, the first is Shadowfax).
    #[arg(
        long,
        value_name = "N",
        env = "WILDRYDES_COUNT",
        value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_FLEET))
    )]
    pub count: Option<u32>,

    /// Kinesis stream to put readings on.
    #[arg(long, value_name = "STREAM", env = "WILDRYDES_STREAM", default_value = READINGS_STREAM)]
    pub stream: String,

    /// Where and as whom to reach AWS (`--region`, `--profile`,
    /// `--endpoint-url`), shared with the project's other tools.
    #[command(flatten)]
    pub aws: AwsArgs,

    /// Scripted behaviour on top of the random walk. magic-drain: one unicorn
    /// (--drain-unicorn, default the first) loses 5 magic points per second
    /// from --drain-start down to 40, holds there for 1 simulated minute, then
    /// gains 5 per second back to 150 and walks normally again: with the
    /// default start it is below 50 from about 1m20s and back above 100 by
    /// about 2m35s, all within 3 simulated minutes, so the magic-points alarm
    /// fires and clears.
    #[arg(long, value_enum, value_name = "SCENARIO", default_value_t = ScenarioKind::Walk)]
    pub scenario: ScenarioKind,

    /// The unicorn the magic-drain scenario drains. [default: the first unicorn]
    #[arg(long, value_name = "NAME", value_parser = parse_name)]
    pub drain_unicorn: Option<UnicornName>,

    /// Simulated time after the start at which the magic-drain scenario
    /// begins, e.g. 0s, 90s, 5m. [default: 1m]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub drain_start: Option<Duration>,

    /// Simulated seconds per real second: 60 produces one simulated minute
    /// of readings per real second, with StatusTime following simulated time.
    /// When the shards cannot take that many records, the producer falls
    /// behind (and says so) instead of exceeding their limits.
    #[arg(
        long,
        value_name = "X",
        env = "WILDRYDES_TIME_SCALE",
        default_value = "1",
        value_parser = parse_time_scale
    )]
    pub time_scale: f64,

    /// Simulated time to produce, then stop, e.g. 90s, 10m, 2h 30m (whole
    /// seconds: one reading per unicorn per second). [default: until Ctrl-C]
    #[arg(long, value_name = "DURATION", env = "WILDRYDES_DURATION", value_parser = parse_run_length)]
    pub duration: Option<Duration>,

    /// StatusTime of the first reading, as `2017-06-05 09:17:08.189` (UTC)
    /// or RFC 3339 (`2017-06-05T09:17:08.189Z`). [default: now]
    #[arg(long, value_name = "TIME", value_parser = parse_start_time)]
    pub start_time: Option<StatusTime>,

    /// Seed of the simulation: the same seed, start time and names give the
    /// same readings, byte for byte. [default: random, printed in the summary]
    #[arg(long, value_name = "N", env = "WILDRYDES_SEED")]
    pub seed: Option<u64>,

    /// Write every reading Kinesis acknowledged to FILE as JSON lines, with
    /// its shard id and sequence number, for later verification. The file is
    /// created or truncated.
    #[arg(long, value_name = "FILE", env = "WILDRYDES_LEDGER")]
    pub ledger: Option<PathBuf>,

    /// PutRecords calls in flight at once. Each carries up to 500 readings
    /// and a unicorn is never in two at once, so its readings stay in order;
    /// raise it when the summary says the producer fell behind while the
    /// shards had room (a large fleet, a distant region).
    #[arg(
        long,
        value_name = "N",
        env = "WILDRYDES_MAX_IN_FLIGHT",
        default_value_t = DEFAULT_MAX_IN_FLIGHT,
        value_parser = clap::value_parser!(u16).range(1..=64).map(usize::from)
    )]
    pub max_in_flight: usize,

    /// Pack readings into Kinesis Producer Library (KPL) aggregated records:
    /// each Kinesis record carries up to 50 KiB of readings (about 250),
    /// all of unicorns on one shard, each reading under its own unicorn's
    /// partition key. A shard takes 1,000 records/s but 1 MiB/s: one ~200
    /// byte reading per record caps it at 1,000 unicorns in real time, while
    /// aggregated it carries about 5,000. Use it for fleets of more than
    /// about 1,000 unicorns per shard (or a --time-scale that many times
    /// faster); whatever reads the stream must deaggregate (the KCL and
    /// Firehose do). Progress and the summary tell how many Kinesis records
    /// carried how many readings; the ledger adds each reading's
    /// sub_sequence_number.
    #[arg(long, env = "WILDRYDES_AGGREGATE")]
    pub aggregate: bool,

    /// Show no progress (no dots, no progress line); logs and the summary
    /// still go to stderr.
    #[arg(long, short)]
    pub quiet: bool,

    /// More log lines: -v shows the producer's debug lines and the AWS SDK's
    /// warnings (the credential chain's among them), -vv everything at debug.
    /// RUST_LOG, if set, wins.
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// The scenarios `--scenario` offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScenarioKind {
    /// Every unicorn walks at random, as in the workshop.
    Walk,
    /// One unicorn's magic points fall below 50 and recover (see --scenario).
    MagicDrain,
}

/// The command line is consistent in itself but not as a whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    /// `--count` smaller than the number of `--name`s.
    #[error(
        "--count {count} is less than the {names} unicorns named with --name: raise --count or drop it"
    )]
    CountBelowNames {
        /// The count asked for.
        count: u32,
        /// Names given.
        names: usize,
    },
    /// The same `--name` twice.
    #[error("--name {0} is given twice: each unicorn needs its own name (it is the partition key)")]
    DuplicateName(String),
    /// Drain options without the drain scenario.
    #[error("{0} only applies to --scenario magic-drain: add that, or drop {0}")]
    DrainOptionWithoutDrain(&'static str),
    /// The drain unicorn is not in the fleet.
    #[error("--drain-unicorn {0} is not one of the simulated unicorns: pass it with --name too")]
    UnknownDrainUnicorn(String),
    /// `--endpoint-url` (or AWS_ENDPOINT_URL) is not an HTTP URL.
    #[error("--endpoint-url {0:?} is not a URL: write it as http://HOST:PORT or https://HOST")]
    BadEndpoint(String),
    /// The system clock is unusable for a default start time.
    #[error("the system clock is outside 1970..9999: pass --start-time")]
    Clock,
}

impl Cli {
    /// Checks the command line as a whole and fills in the defaults that
    /// depend on the moment (start time, random seed).
    pub fn settings(&self) -> Result<Settings, SettingsError> {
        if let Some(url) = &self.aws.endpoint_url {
            check_endpoint(url)?;
        }
        let names = self.fleet_names()?;
        let scenario = match self.scenario {
            ScenarioKind::Walk => {
                if self.drain_unicorn.is_some() {
                    return Err(SettingsError::DrainOptionWithoutDrain("--drain-unicorn"));
                }
                if self.drain_start.is_some() {
                    return Err(SettingsError::DrainOptionWithoutDrain("--drain-start"));
                }
                Scenario::Walk
            }
            ScenarioKind::MagicDrain => {
                if let Some(target) = &self.drain_unicorn
                    && !names.contains(target)
                {
                    return Err(SettingsError::UnknownDrainUnicorn(target.to_string()));
                }
                Scenario::MagicDrain {
                    unicorn: self.drain_unicorn.clone(),
                    start: self.drain_start.unwrap_or(DEFAULT_DRAIN_START),
                }
            }
        };
        let start_time = match self.start_time {
            Some(t) => t,
            None => now().ok_or(SettingsError::Clock)?,
        };
        let seed = self.seed.unwrap_or_else(rand::random);
        let mut settings = Settings::new(names, &self.stream, seed, start_time);
        settings.time_scale = self.time_scale;
        settings.seconds = self.duration.map(|d| d.as_secs());
        settings.scenario = scenario;
        settings.ledger = self.ledger.clone();
        settings.max_in_flight = self.max_in_flight;
        settings.aggregate = self.aggregate;
        settings.output = OutputMode::detect(self.quiet);
        Ok(settings)
    }

    /// The fleet's names: the `--name`s (or Shadowfax), padded to `--count`
    /// with Unicorn-0001, Unicorn-0002, ... (skipping names already taken).
    fn fleet_names(&self) -> Result<Vec<UnicornName>, SettingsError> {
        let mut names = self.names.clone();
        let mut seen = std::collections::HashSet::new();
        for name in &names {
            if !seen.insert(name.as_str()) {
                return Err(SettingsError::DuplicateName(name.to_string()));
            }
        }
        if names.is_empty()
            && let Ok(default) = UnicornName::new(DEFAULT_NAME)
        {
            names.push(default);
        }
        let Some(count) = self.count else {
            return Ok(names);
        };
        let count = count as usize;
        if count < self.names.len() {
            return Err(SettingsError::CountBelowNames {
                count: count as u32,
                names: self.names.len(),
            });
        }
        let taken: std::collections::HashSet<String> =
            names.iter().map(ToString::to_string).collect();
        let mut n = 0u32;
        while names.len() < count {
            n += 1;
            let candidate = format!("Unicorn-{n:04}");
            if taken.contains(&candidate) {
                continue;
            }
            if let Ok(name) = UnicornName::new(&candidate) {
                names.push(name);
            }
        }
        names.truncate(count);
        Ok(names)
    }
}

/// The current time, to the millisecond.
fn now() -> Option<StatusTime> {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .ok()?
        .as_millis();
    StatusTime::from_epoch_millis(i64::try_from(ms).ok()?).ok()
}

/// `--name`, `--drain-unicorn`: a valid unicorn name.
fn parse_name(s: &str) -> Result<UnicornName, String> {
    UnicornName::new(s).map_err(|e| format!("the name {e}"))
}

/// A humantime duration (`90s`, `10m`, `1h 30m`).
fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("{e}; write a duration such as 90s, 10m or 1h 30m"))
}

/// `--duration`: at least one second, since readings come one per second.
fn parse_run_length(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < Duration::from_secs(1) {
        return Err("shorter than one second: readings come one per simulated second".to_owned());
    }
    Ok(d)
}

/// `--time-scale`: a positive, finite factor up to [`MAX_TIME_SCALE`].
fn parse_time_scale(s: &str) -> Result<f64, String> {
    let x: f64 = s
        .trim()
        .parse()
        .map_err(|_| "not a number: write e.g. 1, 60 or 0.5".to_owned())?;
    if !x.is_finite() || x <= 0.0 || x > MAX_TIME_SCALE {
        return Err(format!("must be above 0 and at most {MAX_TIME_SCALE}"));
    }
    Ok(x)
}

/// `--start-time`: the workshop format or RFC 3339, as core parses it.
fn parse_start_time(s: &str) -> Result<StatusTime, String> {
    StatusTime::parse(s).map_err(|e| e.to_string())
}

/// Checks an endpoint URL enough to give a clear message before any call.
fn check_endpoint(url: &str) -> Result<(), SettingsError> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    match rest {
        Some(host) if !host.is_empty() && !host.starts_with('/') => Ok(()),
        _ => Err(SettingsError::BadEndpoint(url.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("producer").chain(args.iter().copied()))
    }

    fn names(settings: &Settings) -> Vec<&str> {
        settings.names.iter().map(UnicornName::as_str).collect()
    }

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults_are_the_workshop_producers() {
        let cli = parse(&[]).unwrap();
        let settings = cli.settings().unwrap();
        assert_eq!(names(&settings), ["Shadowfax"]);
        assert_eq!(settings.stream, "wildrydes");
        assert_eq!(settings.time_scale, 1.0);
        assert_eq!(settings.seconds, None);
        assert_eq!(settings.scenario, Scenario::Walk);
        assert!(!settings.aggregate, "one reading per record");
        assert!(cli.aws.region.is_none());
    }

    #[test]
    fn aggregate_packs_readings_into_kpl_records() {
        let s = parse(&["--aggregate"]).unwrap().settings().unwrap();
        assert!(s.aggregate);
        assert_eq!(s.aggregate_bytes, crate::settings::DEFAULT_AGGREGATE_BYTES);
        let help = Cli::command().render_long_help().to_string();
        let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            help.contains("--aggregate") && help.contains("1,000 unicorns per shard"),
            "{help}"
        );
    }

    #[test]
    fn fleets_combine_names_and_count() {
        let s = parse(&["--count", "3"]).unwrap().settings().unwrap();
        assert_eq!(names(&s), ["Shadowfax", "Unicorn-0001", "Unicorn-0002"]);
        let s = parse(&["--name", "A", "--name", "Unicorn-0001", "--count", "4"])
            .unwrap()
            .settings()
            .unwrap();
        assert_eq!(
            names(&s),
            ["A", "Unicorn-0001", "Unicorn-0002", "Unicorn-0003"]
        );
        let s = parse(&["--name", "A", "--name", "B"])
            .unwrap()
            .settings()
            .unwrap();
        assert_eq!(names(&s), ["A", "B"]);
    }

    #[test]
    fn inconsistent_fleets_are_refused_with_the_reason() {
        let err = parse(&["--name", "A", "--name", "B", "--count", "1"])
            .unwrap()
            .settings()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "--count 1 is less than the 2 unicorns named with --name: raise --count or drop it"
        );
        let err = parse(&["--name", "A", "--name", "A"])
            .unwrap()
            .settings()
            .unwrap_err();
        assert_eq!(err, SettingsError::DuplicateName("A".into()));
        let err = parse(&["--drain-unicorn", "A"])
            .unwrap()
            .settings()
            .unwrap_err();
        assert_eq!(
            err,
            SettingsError::DrainOptionWithoutDrain("--drain-unicorn")
        );
        let err = parse(&["--scenario", "magic-drain", "--drain-unicorn", "Z"])
            .unwrap()
            .settings()
            .unwrap_err();
        assert_eq!(err, SettingsError::UnknownDrainUnicorn("Z".into()));
    }

    #[test]
    fn time_flags_parse() {
        let cli = parse(&[
            "--time-scale",
            "60",
            "--duration",
            "10m",
            "--start-time",
            "2017-06-05T09:17:08.189Z",
            "--seed",
            "7",
            "--scenario",
            "magic-drain",
            "--drain-start",
            "90s",
        ])
        .unwrap();
        let s = cli.settings().unwrap();
        assert_eq!(s.time_scale, 60.0);
        assert_eq!(s.seconds, Some(600));
        assert_eq!(s.start_time.to_string(), "2017-06-05 09:17:08.189");
        assert_eq!(s.seed, 7);
        assert_eq!(
            s.scenario,
            Scenario::MagicDrain {
                unicorn: None,
                start: Duration::from_secs(90)
            }
        );
    }

    #[test]
    fn bad_values_are_refused_with_what_to_write() {
        for (args, expected) in [
            (vec!["--time-scale", "0"], "must be above 0"),
            (vec!["--time-scale", "fast"], "not a number"),
            (vec!["--duration", "soon"], "write a duration such as 90s"),
            (vec!["--duration", "500ms"], "shorter than one second"),
            (vec!["--start-time", "noon"], "YYYY-MM-DD HH:MM:SS.mmm"),
            (vec!["--name", ""], "the name is empty"),
            (vec!["--count", "0"], "0 is not in 1..=100000"),
            (
                vec!["--scenario", "storm"],
                "possible values: walk, magic-drain",
            ),
        ] {
            let err = parse(&args).unwrap_err().to_string();
            assert!(err.contains(expected), "{args:?}: {err}");
        }
    }
}
