//! Names of the streams and tables the pipeline uses by default, as the
//! workshop named them; every binary lets the operator override them.

/// Stream of per-second readings, written by the producer.
pub const READINGS_STREAM: &str = "wildrydes";
/// Stream of per-minute aggregates, written by the aggregator.
pub const AGGREGATES_STREAM: &str = "wildrydes-aggregated";
/// Table of per-minute aggregates: `Name` (S) hash key, `StatusTime` (N) range key.
pub const SENSOR_TABLE: &str = "UnicornSensorData";
/// Table of records refused by validation, kept for an operator: `RecordId` (S) hash key.
pub const REJECTS_TABLE: &str = "UnicornSensorDataRejects";

/// Table of the aggregator's minutes, kept per unicorn for the horizon:
/// `Unicorn` (S) hash key, `Minute` (N) range key (see `minute_store`). A
/// new name: the per-shard state table it replaces had another key.
pub const AGGREGATOR_STATE_TABLE: &str = "WildRydesAggregatorMinutes";

/// Key attributes of [`SENSOR_TABLE`], hash first.
pub const SENSOR_TABLE_KEY: [&str; 2] = ["Name", "StatusTime"];
/// Key attribute of [`REJECTS_TABLE`].
pub const REJECTS_TABLE_KEY: [&str; 1] = ["RecordId"];
