//! The workshop's streams and tables (named in `wildrydes_core::names`,
//! re-exported here for the tests' convenience), and creating them all.

pub use wildrydes_core::names::{
    AGGREGATES_STREAM, AGGREGATOR_STATE_TABLE, ALARM_TABLE, READINGS_STREAM, REJECTS_TABLE,
    SENSOR_TABLE,
};

use crate::{
    IndexSpec, KeyAttribute, LocalAws, LocalAwsError, TableSpec, ensure_stream, ensure_table,
};

/// Shards per workshop stream: one, as in the workshop; a few unicorns at one
/// reading per second are far below one shard's limits.
pub const SHARDS_PER_STREAM: i32 = 1;

/// Partition key of [`SENSOR_TABLE`]: the unicorn's name (string).
pub const SENSOR_TABLE_PARTITION_KEY: &str = "Name";

/// Sort key of [`SENSOR_TABLE`]: the aggregate's minute (number), so a Query
/// by name returns a unicorn's minutes in order.
pub const SENSOR_TABLE_SORT_KEY: &str = "StatusTime";

/// The definition of [`SENSOR_TABLE`].
pub fn sensor_table() -> TableSpec {
    TableSpec {
        name: SENSOR_TABLE.to_owned(),
        partition_key: KeyAttribute::string(SENSOR_TABLE_PARTITION_KEY),
        sort_key: Some(KeyAttribute::number(SENSOR_TABLE_SORT_KEY)),
        indexes: Vec::new(),
    }
}

/// The definition of [`REJECTS_TABLE`]: one item per refused record.
pub fn rejects_table() -> TableSpec {
    TableSpec {
        name: REJECTS_TABLE.to_owned(),
        partition_key: KeyAttribute::string(wildrydes_core::names::REJECTS_TABLE_KEY[0]),
        sort_key: None,
        indexes: Vec::new(),
    }
}

/// The definition of [`ALARM_TABLE`], the alarm's per-unicorn state (ALARM
/// or OK, and the reading that made it so), written with conditional
/// writes: one item per unicorn, hash key `Name` (S).
pub fn alarm_state_table() -> TableSpec {
    TableSpec {
        name: ALARM_TABLE.to_owned(),
        partition_key: KeyAttribute::string("Name"),
        sort_key: None,
        indexes: Vec::new(),
    }
}

/// The definition of the aggregator's minute store: one item per unicorn
/// and minute (`Unicorn` S, `Minute` N), with the sparse index of minutes
/// not yet emitted (`Pending` S, `Touched` N) the scheduled flush queries.
pub fn aggregator_state_table() -> TableSpec {
    TableSpec {
        name: AGGREGATOR_STATE_TABLE.to_owned(),
        partition_key: KeyAttribute::string("Unicorn"),
        sort_key: Some(KeyAttribute::number("Minute")),
        indexes: vec![IndexSpec {
            name: wildrydes_core::minute_store::PENDING_INDEX.to_owned(),
            partition_key: KeyAttribute::string("Pending"),
            sort_key: Some(KeyAttribute::number("Touched")),
        }],
    }
}

/// Creates both workshop streams, the sensor table, the rejects table and the
/// alarm-state table on `local`, keeping any that already exist, and returns
/// once all are ACTIVE.
pub async fn ensure_workshop_resources(local: &LocalAws) -> Result<(), LocalAwsError> {
    let kinesis = local.kinesis_client();
    for stream in [READINGS_STREAM, AGGREGATES_STREAM] {
        ensure_stream(&kinesis, stream, SHARDS_PER_STREAM).await?;
    }
    let dynamodb = local.dynamodb_client();
    ensure_table(&dynamodb, &sensor_table()).await?;
    ensure_table(&dynamodb, &aggregator_state_table()).await?;
    ensure_table(&dynamodb, &rejects_table()).await?;
    ensure_table(&dynamodb, &alarm_state_table()).await
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::types::KeyType;

    use super::*;
    use crate::testing::{bounded, started};

    #[tokio::test]
    async fn workshop_resources_are_created_once() {
        bounded(async {
            let local = started().await;
            ensure_workshop_resources(&local).await.unwrap();
            // A second run finds everything and changes nothing.
            ensure_workshop_resources(&local).await.unwrap();

            let streams = local.kinesis_client().list_streams().send().await.unwrap();
            let mut names = streams.stream_names().to_vec();
            names.sort();
            assert_eq!(names, [READINGS_STREAM, AGGREGATES_STREAM]);

            let described = local
                .dynamodb_client()
                .describe_table()
                .table_name(SENSOR_TABLE)
                .send()
                .await
                .unwrap();
            let keys: Vec<_> = described
                .table()
                .unwrap()
                .key_schema()
                .iter()
                .map(|key| (key.attribute_name().to_owned(), key.key_type().clone()))
                .collect();
            assert_eq!(
                keys,
                [
                    (SENSOR_TABLE_PARTITION_KEY.to_owned(), KeyType::Hash),
                    (SENSOR_TABLE_SORT_KEY.to_owned(), KeyType::Range)
                ]
            );
            local.shutdown().await.unwrap();
        })
        .await;
    }
}
