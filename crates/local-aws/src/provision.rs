//! Creating a stream or table if it is missing, and waiting until it is usable.
//!
//! Work against any endpoint (the local backend or AWS): they only use the
//! client they are given.

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TableStatus,
};
use aws_sdk_kinesis::types::StreamStatus;

use crate::LocalAwsError;

/// Longest [`ensure_stream`] and [`ensure_table`] wait for ACTIVE.
///
/// Locally both are ACTIVE within milliseconds; AWS takes seconds. Thirty
/// seconds separates "slow" from "stuck" without hanging a test run.
pub const PROVISION_TIMEOUT: Duration = Duration::from_secs(30);

/// Pause between status polls: short, because locally the wait is a few
/// milliseconds at most and the SDK's waiters sleep 20 s between tries.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// A DynamoDB table to create: its name and key schema.
///
/// Tables are created on-demand (`PAY_PER_REQUEST`), as in the workshop, so
/// there is no capacity to choose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSpec {
    /// Table name (3 to 255 characters).
    pub name: String,
    /// The partition (HASH) key.
    pub partition_key: KeyAttribute,
    /// The sort (RANGE) key, if items sharing a partition key are ordered.
    pub sort_key: Option<KeyAttribute>,
    /// Global secondary indexes, each projecting the keys only.
    pub indexes: Vec<IndexSpec>,
}

/// A global secondary index of a table (keys-only projection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexSpec {
    /// Index name.
    pub name: String,
    /// Its partition (HASH) key.
    pub partition_key: KeyAttribute,
    /// Its sort (RANGE) key.
    pub sort_key: Option<KeyAttribute>,
}

/// One key attribute of a table: its name and scalar type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyAttribute {
    /// Attribute name as it appears in items.
    pub name: String,
    /// `S`, `N` or `B`: key attributes must be scalars.
    pub kind: ScalarAttributeType,
}

impl KeyAttribute {
    /// A string (`S`) key attribute.
    pub fn string(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            kind: ScalarAttributeType::S,
        }
    }

    /// A number (`N`) key attribute.
    pub fn number(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            kind: ScalarAttributeType::N,
        }
    }
}

/// Creates Kinesis stream `name` with `shards` shards unless it exists, then
/// waits until it is ACTIVE.
///
/// An existing stream is left as it is, whatever its shard count, so that
/// running this again (or against a restarted, file-backed backend) is safe.
pub async fn ensure_stream(
    client: &aws_sdk_kinesis::Client,
    name: &str,
    shards: i32,
) -> Result<(), LocalAwsError> {
    let kinesis_error = |operation| {
        move |source: Box<dyn std::error::Error + Send + Sync>| LocalAwsError::Kinesis {
            operation,
            stream: name.to_owned(),
            source,
        }
    };
    let created = client
        .create_stream()
        .stream_name(name)
        .shard_count(shards)
        .send()
        .await;
    match created {
        Ok(_) => tracing::debug!(stream = name, shards, "stream created"),
        Err(err)
            if err
                .as_service_error()
                .is_some_and(|e| e.is_resource_in_use_exception()) =>
        {
            tracing::debug!(stream = name, "stream exists");
        }
        Err(err) => return Err(kinesis_error("CreateStream")(err.into())),
    }

    let started = Instant::now();
    loop {
        let summary = client
            .describe_stream_summary()
            .stream_name(name)
            .send()
            .await
            .map_err(|err| kinesis_error("DescribeStreamSummary")(err.into()))?;
        let status = summary
            .stream_description_summary()
            .map(|summary| summary.stream_status().clone());
        if status == Some(StreamStatus::Active) {
            return Ok(());
        }
        if started.elapsed() >= PROVISION_TIMEOUT {
            return Err(LocalAwsError::NotActive {
                resource: format!("kinesis stream `{name}`"),
                status: status.map_or_else(|| "unknown".to_owned(), |s| s.as_str().to_owned()),
                waited: started.elapsed(),
            });
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Creates DynamoDB table `spec` unless a table of that name exists, then
/// waits until it is ACTIVE.
///
/// An existing table is left as it is, whatever its key schema. Polls
/// DescribeTable itself because the SDK's `wait_until_table_exists` sleeps
/// 20 s before its second look.
pub async fn ensure_table(
    client: &aws_sdk_dynamodb::Client,
    spec: &TableSpec,
) -> Result<(), LocalAwsError> {
    let dynamodb_error = |operation| {
        move |source: Box<dyn std::error::Error + Send + Sync>| LocalAwsError::DynamoDb {
            operation,
            table: spec.name.clone(),
            source,
        }
    };
    let keys = std::iter::once((&spec.partition_key, KeyType::Hash))
        .chain(spec.sort_key.iter().map(|key| (key, KeyType::Range)));
    let mut request = client
        .create_table()
        .table_name(&spec.name)
        .billing_mode(BillingMode::PayPerRequest);
    let element = |key: &KeyAttribute, key_type| {
        KeySchemaElement::builder()
            .attribute_name(&key.name)
            .key_type(key_type)
            .build()
            .map_err(|err| dynamodb_error("CreateTable")(err.into()))
    };
    let mut defined: Vec<&KeyAttribute> = Vec::new();
    for (key, key_type) in keys {
        request = request.key_schema(element(key, key_type)?);
        defined.push(key);
    }
    for index in &spec.indexes {
        let mut gsi = GlobalSecondaryIndex::builder()
            .index_name(&index.name)
            .projection(
                Projection::builder()
                    .projection_type(ProjectionType::KeysOnly)
                    .build(),
            )
            .key_schema(element(&index.partition_key, KeyType::Hash)?);
        defined.push(&index.partition_key);
        if let Some(sort) = &index.sort_key {
            gsi = gsi.key_schema(element(sort, KeyType::Range)?);
            defined.push(sort);
        }
        request = request.global_secondary_indexes(
            gsi.build()
                .map_err(|err| dynamodb_error("CreateTable")(err.into()))?,
        );
    }
    let mut named = std::collections::HashSet::new();
    for key in defined.into_iter().filter(|k| named.insert(&k.name)) {
        let definition = AttributeDefinition::builder()
            .attribute_name(&key.name)
            .attribute_type(key.kind.clone())
            .build()
            .map_err(|err| dynamodb_error("CreateTable")(err.into()))?;
        request = request.attribute_definitions(definition);
    }
    match request.send().await {
        Ok(_) => tracing::debug!(table = spec.name, "table created"),
        Err(err)
            if err
                .as_service_error()
                .is_some_and(|e| e.is_resource_in_use_exception()) =>
        {
            tracing::debug!(table = spec.name, "table exists");
        }
        Err(err) => return Err(dynamodb_error("CreateTable")(err.into())),
    }

    let started = Instant::now();
    loop {
        let described = client
            .describe_table()
            .table_name(&spec.name)
            .send()
            .await
            .map_err(|err| dynamodb_error("DescribeTable")(err.into()))?;
        let status = described
            .table()
            .and_then(|table| table.table_status())
            .cloned();
        if status == Some(TableStatus::Active) {
            return Ok(());
        }
        if started.elapsed() >= PROVISION_TIMEOUT {
            return Err(LocalAwsError::NotActive {
                resource: format!("dynamodb table `{}`", spec.name),
                status: status.map_or_else(|| "unknown".to_owned(), |s| s.as_str().to_owned()),
                waited: started.elapsed(),
            });
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{bounded, started};
    use crate::{LocalAws, LocalAwsOptions};

    #[tokio::test]
    async fn a_stream_still_creating_is_waited_for() {
        bounded(async {
            // A visible CREATING phase, so the poll loop has to go round.
            let local = LocalAws::start(LocalAwsOptions {
                stream_transition_delay: Duration::from_millis(200),
                ..LocalAwsOptions::default()
            })
            .await
            .unwrap();
            let kinesis = local.kinesis_client();
            ensure_stream(&kinesis, "slow", 2).await.unwrap();
            let summary = kinesis
                .describe_stream_summary()
                .stream_name("slow")
                .send()
                .await
                .unwrap();
            let summary = summary.stream_description_summary().unwrap();
            assert_eq!(summary.stream_status(), &StreamStatus::Active);
            assert_eq!(summary.open_shard_count(), 2);
            local.shutdown().await.unwrap();
        })
        .await;
    }

    #[tokio::test]
    async fn a_table_without_sort_key_is_created_with_that_schema() {
        bounded(async {
            let local = started().await;
            let dynamodb = local.dynamodb_client();
            let spec = TableSpec {
                name: "Unicorns".to_owned(),
                partition_key: KeyAttribute::string("Name"),
                sort_key: None,
                indexes: Vec::new(),
            };
            ensure_table(&dynamodb, &spec).await.unwrap();
            let described = dynamodb
                .describe_table()
                .table_name("Unicorns")
                .send()
                .await
                .unwrap();
            let table = described.table().unwrap();
            let schema = table.key_schema();
            assert_eq!(schema.len(), 1);
            assert_eq!(schema[0].attribute_name(), "Name");
            assert_eq!(schema[0].key_type(), &KeyType::Hash);
            assert_eq!(
                table
                    .billing_mode_summary()
                    .and_then(|summary| summary.billing_mode()),
                Some(&BillingMode::PayPerRequest)
            );
            local.shutdown().await.unwrap();
        })
        .await;
    }

    #[tokio::test]
    async fn invalid_names_fail_with_the_operation_named() {
        bounded(async {
            let local = started().await;
            // DynamoDB table names need at least 3 characters.
            let spec = TableSpec {
                name: "ab".to_owned(),
                partition_key: KeyAttribute::string("Name"),
                sort_key: None,
                indexes: Vec::new(),
            };
            let err = ensure_table(&local.dynamodb_client(), &spec)
                .await
                .unwrap_err();
            assert!(
                matches!(
                    err,
                    LocalAwsError::DynamoDb {
                        operation: "CreateTable",
                        ..
                    }
                ),
                "{err:?}"
            );
            let err = ensure_stream(&local.kinesis_client(), "bad name!", 1)
                .await
                .unwrap_err();
            assert!(
                matches!(
                    err,
                    LocalAwsError::Kinesis {
                        operation: "CreateStream",
                        ..
                    }
                ),
                "{err:?}"
            );
            local.shutdown().await.unwrap();
        })
        .await;
    }
}
