//! Every name the pipeline gives a stream, a table or a pipeline, in one
//! place: the workshop's where it named them. Every binary lets the operator
//! override the streams and tables.

use std::fmt;
use std::str::FromStr;

/// Stream of per-second readings, written by the producer.
pub const READINGS_STREAM: &str = "wildrydes";
/// Stream of per-minute aggregates, written by the aggregator.
pub const AGGREGATES_STREAM: &str = "wildrydes-aggregated";
/// Table of per-minute aggregates: `Name` (S) hash key, `StatusTime` (N) range key.
pub const SENSOR_TABLE: &str = "UnicornSensorData";
/// Table of records refused by validation, kept for an operator: `RecordId` (S) hash key.
pub const REJECTS_TABLE: &str = "UnicornSensorDataRejects";
/// Table of the alarm's per-unicorn state: `Name` (S) hash key.
pub const ALARM_TABLE: &str = "WildRydesAlarmState";
/// Table of every transition the alarm committed, one item per unicorn and
/// transition: `Name` (S) hash key, `StatusTime` (N, epoch ms of the figure
/// that caused the transition) range key. Written in one transaction with
/// [`ALARM_TABLE`]'s item, so a replay writes the same item again.
pub const ALARM_HISTORY_TABLE: &str = "WildRydesAlarmHistory";
/// Sparse global secondary index of [`ALARM_TABLE`] listing the unicorns in
/// ALARM: `Open` (S) hash key, `StatusTime` (N) range key, projection ALL.
/// An item carries `Open` = `ALARM` only while its unicorn is in ALARM.
pub const ALARM_OPEN_INDEX: &str = "OpenAlarms";

/// Table of the aggregator's minutes, kept per unicorn for the horizon:
/// `Unicorn` (S) hash key, `Minute` (N) range key (see `minute_store`). A
/// new name: the per-shard state table it replaces had another key.
pub const AGGREGATOR_STATE_TABLE: &str = "WildRydesAggregatorMinutes";

/// Key attributes of [`SENSOR_TABLE`], hash first.
pub const SENSOR_TABLE_KEY: [&str; 2] = ["Name", "StatusTime"];
/// Key attribute of [`REJECTS_TABLE`].
pub const REJECTS_TABLE_KEY: [&str; 1] = ["RecordId"];

/// The three stages of the pipeline. Rejects record which one refused a
/// record, the daemon runs one per process (`wildrydes-daemon <pipeline>`)
/// and labels its metrics with it, and each is one Lambda function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PipelineName {
    /// Readings into per-minute aggregates (`WildRydesAggregator`).
    Aggregate,
    /// Aggregates into the table (`WildRydesStreamProcessor`).
    Process,
    /// Magic points into notifications (`WildRydesAlarm`).
    Alarm,
}

impl PipelineName {
    /// Every pipeline, in the data's order.
    pub const ALL: [Self; 3] = [Self::Aggregate, Self::Process, Self::Alarm];

    /// Its name: the daemon's subcommand, the rejects' `Pipeline`, the
    /// metrics' `pipeline` label.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Aggregate => "aggregate",
            Self::Process => "process",
            Self::Alarm => "alarm",
        }
    }

    /// The name of its Lambda binary and, where Lambda gives none, of its
    /// function in metrics.
    pub const fn function_binary(self) -> &'static str {
        match self {
            Self::Aggregate => "wildrydes-aggregator",
            Self::Process => "wildrydes-stream-processor",
            Self::Alarm => "wildrydes-alarm",
        }
    }

    /// The name of its function on AWS (fixed in `infra/wildrydes.yaml`).
    pub const fn function_name(self) -> &'static str {
        match self {
            Self::Aggregate => "WildRydesAggregator",
            Self::Process => "WildRydesStreamProcessor",
            Self::Alarm => "WildRydesAlarm",
        }
    }

    /// The default lease table of its daemon workers.
    pub fn lease_table(self) -> String {
        format!("wildrydes-daemon-{}", self.as_str())
    }
}

impl fmt::Display for PipelineName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not one of the pipelines.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a pipeline: expected aggregate, process or alarm")]
pub struct UnknownPipeline(pub String);

impl FromStr for PipelineName {
    type Err = UnknownPipeline;

    /// Its name; also the names rejects stored before the names were one
    /// (`aggregator`, `processor`), so old rejects still list and re-drive.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "aggregate" | "aggregator" => Ok(Self::Aggregate),
            "process" | "processor" => Ok(Self::Process),
            "alarm" => Ok(Self::Alarm),
            other => Err(UnknownPipeline(other.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_reads_back() {
        for p in PipelineName::ALL {
            assert_eq!(p.as_str().parse::<PipelineName>(), Ok(p));
        }
        assert_eq!("processor".parse(), Ok(PipelineName::Process));
        assert_eq!("aggregator".parse(), Ok(PipelineName::Aggregate));
        let err = "etl".parse::<PipelineName>().unwrap_err().to_string();
        assert_eq!(
            err,
            "\"etl\" is not a pipeline: expected aggregate, process or alarm"
        );
    }

    #[test]
    fn lease_tables_are_per_pipeline() {
        assert_eq!(
            PipelineName::Process.lease_table(),
            "wildrydes-daemon-process"
        );
    }
}
