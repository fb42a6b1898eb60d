//! The workshop's streams and tables (named in `wildrydes_core::names`,
//! re-exported here for the tests' convenience), and creating them all.

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{
    AttributeDefinition, CreateGlobalSecondaryIndexAction, GlobalSecondaryIndexUpdate, IndexStatus,
    KeySchemaElement, KeyType, Projection, ProjectionType, ScalarAttributeType, TableStatus,
};
pub use wildrydes_core::names::{
    AGGREGATES_STREAM, AGGREGATOR_STATE_TABLE, ALARM_HISTORY_TABLE, ALARM_OPEN_INDEX, ALARM_TABLE,
    READINGS_STREAM, REJECTS_TABLE, SENSOR_TABLE,
};

use crate::{
    IndexSpec, KeyAttribute, LocalAws, LocalAwsError, PROVISION_TIMEOUT, TableSpec, ensure_stream,
    ensure_table,
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
/// writes: one item per unicorn, hash key `Name` (S). Without its index
/// [`ALARM_OPEN_INDEX`], which projects every attribute (a [`TableSpec`]'s
/// indexes project keys only): [`ensure_open_alarms_index`] adds it.
pub fn alarm_state_table() -> TableSpec {
    TableSpec {
        name: ALARM_TABLE.to_owned(),
        partition_key: KeyAttribute::string("Name"),
        sort_key: None,
        indexes: Vec::new(),
    }
}

/// The definition of [`ALARM_HISTORY_TABLE`]: one item per unicorn and
/// transition (`Name` S, `StatusTime` N: the figure's epoch ms), so a Query
/// by name returns a unicorn's transitions in order.
pub fn alarm_history_table() -> TableSpec {
    TableSpec {
        name: ALARM_HISTORY_TABLE.to_owned(),
        partition_key: KeyAttribute::string("Name"),
        sort_key: Some(KeyAttribute::number("StatusTime")),
        indexes: Vec::new(),
    }
}

/// Hash key of [`ALARM_OPEN_INDEX`]: `ALARM` on a state item while its
/// unicorn is in ALARM, absent otherwise (a sparse index).
pub const ALARM_OPEN_INDEX_PARTITION_KEY: &str = "Open";

/// Range key of [`ALARM_OPEN_INDEX`]: the time of the figure that opened
/// the alarm, so the index lists the newest alarms first when read backwards.
pub const ALARM_OPEN_INDEX_SORT_KEY: &str = "StatusTime";

/// Pause between two looks at an index being created: locally it is ACTIVE
/// at once.
const INDEX_POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Creates the alarm's tables on `dynamodb`, keeping any that exist: the
/// state table with its index [`ALARM_OPEN_INDEX`] (added to a state table
/// made before the index was), and the history table.
pub async fn ensure_alarm_tables(dynamodb: &aws_sdk_dynamodb::Client) -> Result<(), LocalAwsError> {
    ensure_table(dynamodb, &alarm_state_table()).await?;
    ensure_open_alarms_index(dynamodb, ALARM_TABLE).await?;
    ensure_table(dynamodb, &alarm_history_table()).await
}

/// Adds [`ALARM_OPEN_INDEX`] (`Open` S, `StatusTime` N, projection ALL) to
/// the alarm-state table `table` unless it has it, with UpdateTable (which
/// indexes the items already there), and waits until the index is ACTIVE.
/// An index of that name is kept as it is, whatever its schema.
pub async fn ensure_open_alarms_index(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Result<(), LocalAwsError> {
    let dynamodb_error = |operation| {
        move |source: Box<dyn std::error::Error + Send + Sync>| LocalAwsError::DynamoDb {
            operation,
            table: table.to_owned(),
            source,
        }
    };
    // The index's status, or `None` when the table has no such index.
    let index_status = || async {
        let described = dynamodb
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(|err| dynamodb_error("DescribeTable")(err.into()))?;
        let table = described.table();
        let table_active = table.and_then(|t| t.table_status()) == Some(&TableStatus::Active);
        let index = table
            .map(|t| t.global_secondary_indexes())
            .unwrap_or_default()
            .iter()
            .find(|i| i.index_name() == Some(ALARM_OPEN_INDEX));
        Ok::<_, LocalAwsError>(index.map(|i| {
            let status = i.index_status().cloned();
            (status == Some(IndexStatus::Active) && table_active, status)
        }))
    };
    if index_status().await?.is_none() {
        let element = |name: &str, key_type| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(key_type)
                .build()
                .map_err(|err| dynamodb_error("UpdateTable")(err.into()))
        };
        let definition = |name: &str, kind| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(kind)
                .build()
                .map_err(|err| dynamodb_error("UpdateTable")(err.into()))
        };
        let create = CreateGlobalSecondaryIndexAction::builder()
            .index_name(ALARM_OPEN_INDEX)
            .key_schema(element(ALARM_OPEN_INDEX_PARTITION_KEY, KeyType::Hash)?)
            .key_schema(element(ALARM_OPEN_INDEX_SORT_KEY, KeyType::Range)?)
            .projection(
                Projection::builder()
                    .projection_type(ProjectionType::All)
                    .build(),
            )
            .build()
            .map_err(|err| dynamodb_error("UpdateTable")(err.into()))?;
        let updated = dynamodb
            .update_table()
            .table_name(table)
            .attribute_definitions(definition(
                ALARM_OPEN_INDEX_PARTITION_KEY,
                ScalarAttributeType::S,
            )?)
            .attribute_definitions(definition(
                ALARM_OPEN_INDEX_SORT_KEY,
                ScalarAttributeType::N,
            )?)
            .global_secondary_index_updates(
                GlobalSecondaryIndexUpdate::builder().create(create).build(),
            )
            .send()
            .await;
        match updated {
            Ok(_) => tracing::debug!(table, index = ALARM_OPEN_INDEX, "index added"),
            // Another process added it in between: fine, wait for it below.
            Err(_) if index_status().await?.is_some() => {}
            Err(err) => return Err(dynamodb_error("UpdateTable")(err.into())),
        }
    }
    let started = Instant::now();
    loop {
        let status = index_status().await?;
        if let Some((true, _)) = status {
            return Ok(());
        }
        if started.elapsed() >= PROVISION_TIMEOUT {
            return Err(LocalAwsError::NotActive {
                resource: format!("index `{ALARM_OPEN_INDEX}` of dynamodb table `{table}`"),
                status: status
                    .and_then(|(_, s)| s)
                    .map_or_else(|| "missing".to_owned(), |s| s.as_str().to_owned()),
                waited: started.elapsed(),
            });
        }
        tokio::time::sleep(INDEX_POLL_INTERVAL).await;
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
/// alarm's tables (state with its index, history) on `local`, keeping any
/// that already exist (adding the index to a state table made before it),
/// and returns once all are ACTIVE.
pub async fn ensure_workshop_resources(local: &LocalAws) -> Result<(), LocalAwsError> {
    let kinesis = local.kinesis_client();
    for stream in [READINGS_STREAM, AGGREGATES_STREAM] {
        ensure_stream(&kinesis, stream, SHARDS_PER_STREAM).await?;
    }
    let dynamodb = local.dynamodb_client();
    ensure_table(&dynamodb, &sensor_table()).await?;
    ensure_table(&dynamodb, &aggregator_state_table()).await?;
    ensure_table(&dynamodb, &rejects_table()).await?;
    ensure_alarm_tables(&dynamodb).await
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::types::AttributeValue;

    use super::*;

    /// `table`'s key: (attribute, HASH or RANGE), in order.
    async fn key_schema(
        dynamodb: &aws_sdk_dynamodb::Client,
        table: &str,
    ) -> Vec<(String, KeyType)> {
        dynamodb
            .describe_table()
            .table_name(table)
            .send()
            .await
            .unwrap()
            .table()
            .unwrap()
            .key_schema()
            .iter()
            .map(|key| (key.attribute_name().to_owned(), key.key_type().clone()))
            .collect()
    }
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

            let keys = key_schema(&local.dynamodb_client(), SENSOR_TABLE).await;
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

    #[tokio::test]
    async fn a_data_dir_from_before_the_open_alarms_index_gets_it() {
        bounded(async {
            let dir = tempfile::tempdir().unwrap();
            let options = || crate::LocalAwsOptions {
                data_dir: Some(dir.path().to_owned()),
                ..crate::LocalAwsOptions::default()
            };
            // What the previous version made: the state table alone, with a
            // unicorn in ALARM and one OK.
            let local = LocalAws::start(options()).await.unwrap();
            let dynamodb = local.dynamodb_client();
            ensure_table(&dynamodb, &alarm_state_table()).await.unwrap();
            for (name, state, open) in [("Shadowfax", "ALARM", true), ("Rocinante", "OK", false)] {
                let mut put = dynamodb
                    .put_item()
                    .table_name(ALARM_TABLE)
                    .item("Name", AttributeValue::S(name.into()))
                    .item("State", AttributeValue::S(state.into()))
                    .item("StatusTime", AttributeValue::N("1496654228189".into()))
                    .item("MagicPoints", AttributeValue::N("45".into()));
                if open {
                    put = put.item("Open", AttributeValue::S("ALARM".into()));
                }
                put.send().await.unwrap();
            }
            local.shutdown().await.unwrap();

            let local = LocalAws::start(options()).await.unwrap();
            ensure_workshop_resources(&local).await.unwrap();
            ensure_workshop_resources(&local).await.unwrap();
            let dynamodb = local.dynamodb_client();
            let described = dynamodb
                .describe_table()
                .table_name(ALARM_TABLE)
                .send()
                .await
                .unwrap();
            let indexes = described.table().unwrap().global_secondary_indexes();
            assert_eq!(indexes.len(), 1, "added once: {indexes:?}");
            assert_eq!(indexes[0].index_name(), Some(ALARM_OPEN_INDEX));
            assert_eq!(
                indexes[0].projection().and_then(|p| p.projection_type()),
                Some(&ProjectionType::All)
            );
            // The items already there are indexed, whole.
            let open = dynamodb
                .query()
                .table_name(ALARM_TABLE)
                .index_name(ALARM_OPEN_INDEX)
                .key_condition_expression("#o = :alarm")
                .expression_attribute_names("#o", "Open")
                .expression_attribute_values(":alarm", AttributeValue::S("ALARM".into()))
                .send()
                .await
                .unwrap();
            let items = open.items();
            assert_eq!(items.len(), 1, "{items:?}");
            assert_eq!(items[0]["Name"].as_s().unwrap(), "Shadowfax");
            assert_eq!(items[0]["MagicPoints"].as_n().unwrap(), "45");

            let keys = key_schema(&dynamodb, ALARM_HISTORY_TABLE).await;
            assert_eq!(
                keys,
                [
                    ("Name".to_owned(), KeyType::Hash),
                    ("StatusTime".to_owned(), KeyType::Range)
                ]
            );
            local.shutdown().await.unwrap();
        })
        .await;
    }
}
