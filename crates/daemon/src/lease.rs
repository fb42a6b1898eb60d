//! `LeaseTable`: one lease per shard in DynamoDB, with the Kinesis Client
//! Library's attribute names, so operators who know KCL can read it.
//!
//! Every change of a lease (renew, take, checkpoint, release) bumps
//! `leaseCounter` and is conditional on the counter the worker last saw:
//! the counter is the fencing token, so a worker that lost its lease can
//! neither renew it nor move its checkpoint.
//!
//! The lease holds no pipeline state: the aggregator keeps its minutes per
//! unicorn in its own store (`wildrydes_core::minute_store`), saved before
//! the checkpoint moves, so they follow the keys across splits and merges.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{BuildError, DisplayErrorContext};
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType, TableStatus,
};

/// A checkpoint: where a shard's processing resumes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checkpoint {
    /// From the oldest record kept.
    TrimHorizon,
    /// From records put after the consumer starts.
    Latest,
    /// After the user record `.1` of the record with sequence number `.0`
    /// (0 for a plain record, which has one): KCL's `checkpoint` and
    /// `checkpointSubSequenceNumber`. Reading resumes at that record,
    /// skipping its user records up to and including `.1`, so a stop in
    /// the middle of a KPL aggregate neither loses nor repeats a reading.
    After(String, u64),
    /// The shard is closed and fully processed: its children may start.
    ShardEnd,
}

impl Checkpoint {
    /// As KCL writes it.
    pub fn as_str(&self) -> &str {
        match self {
            Checkpoint::TrimHorizon => "TRIM_HORIZON",
            Checkpoint::Latest => "LATEST",
            Checkpoint::After(seq, _) => seq,
            Checkpoint::ShardEnd => "SHARD_END",
        }
    }

    /// KCL's `checkpointSubSequenceNumber`: 0 but inside an aggregate.
    pub fn sub_sequence_number(&self) -> u64 {
        match self {
            Checkpoint::After(_, sub) => *sub,
            _ => 0,
        }
    }

    /// Reads KCL's form: `checkpoint` and `checkpointSubSequenceNumber`.
    pub fn parse(s: &str, sub_sequence_number: u64) -> Self {
        match s {
            "TRIM_HORIZON" => Checkpoint::TrimHorizon,
            "LATEST" => Checkpoint::Latest,
            "SHARD_END" => Checkpoint::ShardEnd,
            seq => Checkpoint::After(seq.to_owned(), sub_sequence_number),
        }
    }
}

/// One shard's lease, as read from the table.
#[derive(Debug, Clone, PartialEq)]
pub struct Lease {
    /// The shard id (`leaseKey`).
    pub shard_id: String,
    /// The worker holding it, if any (`leaseOwner`).
    pub owner: Option<String>,
    /// Bumped on every change (`leaseCounter`): the fencing token.
    pub counter: i64,
    /// Where processing resumes (`checkpoint`).
    pub checkpoint: Checkpoint,
    /// Times the lease changed hands since the last checkpoint.
    pub owner_switches: i64,
    /// Parent shards (`parentShardId`): this lease waits for them to end.
    pub parents: Vec<String>,
    /// The shard's load as its owner last measured it (`throughputKBps`:
    /// KB of records read per second), for balancing by load.
    pub throughput_kbps: Option<f64>,
}

/// Why a lease operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// Another worker changed the lease first: ours is lost (or was never ours).
    #[error("lease of shard {shard_id} changed hands (counter moved past {expected_counter})")]
    Lost {
        /// The shard.
        shard_id: String,
        /// The counter we expected.
        expected_counter: i64,
    },
    /// The table could not be reached or refused the request.
    #[error("lease table {table}: cannot {action}: {message}")]
    Table {
        /// The table.
        table: String,
        /// What was being done.
        action: &'static str,
        /// The SDK's account.
        message: String,
    },
}

/// The lease table of one application (one pipeline on one stream).
#[derive(Debug, Clone)]
pub struct LeaseTable {
    client: Client,
    table: String,
}

const KEY: &str = "leaseKey";

impl LeaseTable {
    /// The lease table `table`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.table
    }

    /// `action` failed on the table with the SDK's error `e`.
    fn error(&self, action: &'static str, e: impl std::error::Error) -> LeaseError {
        self.table_error(action, DisplayErrorContext(e).to_string())
    }

    /// `action` failed on the table, for the reason `message`.
    fn table_error(&self, action: &'static str, message: impl Into<String>) -> LeaseError {
        LeaseError::Table {
            table: self.table.clone(),
            action,
            message: message.into(),
        }
    }

    /// Creates the table (on-demand, hash key `leaseKey`) unless it exists,
    /// and waits until it is active.
    pub async fn ensure(&self) -> Result<(), LeaseError> {
        if self.status().await.is_none() {
            let (key, schema) = key().map_err(|e| self.error("describe the key", e))?;
            let created = self
                .client
                .create_table()
                .table_name(&self.table)
                .billing_mode(BillingMode::PayPerRequest)
                .attribute_definitions(key)
                .key_schema(schema)
                .send()
                .await;
            if let Err(e) = created
                && !e
                    .as_service_error()
                    .is_some_and(|s| s.is_resource_in_use_exception())
            {
                return Err(self.error("create the table", e));
            }
        }
        for _ in 0..600 {
            if self.status().await == Some(TableStatus::Active) {
                return Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        Err(self.table_error("wait for the table", "it did not become ACTIVE within 60 s"))
    }

    /// The table's status, from DescribeTable; `None` if it cannot be
    /// described (it does not exist, or DynamoDB did not answer).
    async fn status(&self) -> Option<TableStatus> {
        self.client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
            .ok()?
            .table?
            .table_status
    }

    /// Every lease, all pages.
    pub async fn list(&self) -> Result<Vec<Lease>, LeaseError> {
        let items = self
            .client
            .scan()
            .table_name(&self.table)
            .consistent_read(true)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| self.error("scan", e))?;
        Ok(items.iter().filter_map(lease_of).collect())
    }

    /// Creates the lease of a new shard, unless it exists.
    pub async fn create(
        &self,
        shard_id: &str,
        parents: &[String],
        start: &Checkpoint,
    ) -> Result<bool, LeaseError> {
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(KEY, s(shard_id))
            .item("leaseCounter", n(0))
            .item("checkpoint", s(start.as_str()))
            .item(
                "checkpointSubSequenceNumber",
                n(i64::try_from(start.sub_sequence_number()).unwrap_or(i64::MAX)),
            )
            .item("ownerSwitchesSinceCheckpoint", n(0))
            .condition_expression("attribute_not_exists(leaseKey)");
        if !parents.is_empty() {
            put = put.item("parentShardId", AttributeValue::Ss(parents.to_vec()));
        }
        match put.send().await {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(self.error("create a lease", e)),
        }
    }

    /// Takes `lease` for `worker` (expired, released or stolen), provided no
    /// one changed it since it was read. Returns the lease as now held.
    pub async fn take(&self, lease: &Lease, worker: &str) -> Result<Lease, LeaseError> {
        let switched = lease.owner.as_deref() != Some(worker);
        let update = self
            .change(&lease.shard_id, worker, lease.counter)
            .update_expression("SET leaseOwner = :me, leaseCounter = :next, ownerSwitchesSinceCheckpoint = ownerSwitchesSinceCheckpoint + :switched")
            .condition_expression("leaseCounter = :seen")
            .expression_attribute_values(":switched", n(i64::from(switched)))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew);
        let out = self.conditional(update.send().await, lease, "take a lease")?;
        out.attributes
            .as_ref()
            .and_then(lease_of)
            .ok_or_else(|| self.table_error("take a lease", "the table returned no lease"))
    }

    /// Renews a held lease: proves the worker is alive, and publishes the
    /// shard's load if measured. Returns the new counter.
    pub async fn renew(
        &self,
        shard_id: &str,
        worker: &str,
        counter: i64,
        throughput_kbps: Option<f64>,
    ) -> Result<i64, LeaseError> {
        self.change_held(
            shard_id,
            worker,
            counter,
            "renew a lease",
            |update| match throughput_kbps {
                Some(kbps) => update
                    .update_expression("SET leaseCounter = :next, throughputKBps = :kbps")
                    .expression_attribute_values(":kbps", AttributeValue::N(format!("{kbps:.3}"))),
                None => update.update_expression("SET leaseCounter = :next"),
            },
        )
        .await
    }

    /// Moves the checkpoint of a held lease. Returns the new counter.
    pub async fn checkpoint(
        &self,
        shard_id: &str,
        worker: &str,
        counter: i64,
        checkpoint: &Checkpoint,
    ) -> Result<i64, LeaseError> {
        self.change_held(shard_id, worker, counter, "checkpoint", |update| {
            update
                .update_expression(
                    "SET leaseCounter = :next, checkpoint = :cp, checkpointSubSequenceNumber = :sub, ownerSwitchesSinceCheckpoint = :zero",
                )
                .expression_attribute_values(":cp", s(checkpoint.as_str()))
                .expression_attribute_values(
                    ":sub",
                    n(i64::try_from(checkpoint.sub_sequence_number()).unwrap_or(i64::MAX)),
                )
                .expression_attribute_values(":zero", n(0))
        })
        .await
    }

    /// Gives a held lease up so another worker can take it at once.
    pub async fn release(
        &self,
        shard_id: &str,
        worker: &str,
        counter: i64,
    ) -> Result<(), LeaseError> {
        self.change_held(shard_id, worker, counter, "release a lease", |update| {
            update.update_expression("SET leaseCounter = :next REMOVE leaseOwner")
        })
        .await
        .map(|_| ())
    }

    /// An UpdateItem of `shard_id`'s lease with the values every change
    /// names: `:me` (`worker`), `:seen` (`counter`, the fencing token the
    /// condition compares) and `:next` (the counter the change moves to).
    fn change(&self, shard_id: &str, worker: &str, counter: i64) -> UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.table)
            .key(KEY, s(shard_id))
            .expression_attribute_values(":me", s(worker))
            .expression_attribute_values(":next", n(counter + 1))
            .expression_attribute_values(":seen", n(counter))
    }

    /// Makes the change `set` adds to a [`change`](Self::change) of the
    /// lease of `shard_id`, provided `worker` still holds it at `counter`
    /// (`action` names it in an error). Returns the new counter.
    async fn change_held(
        &self,
        shard_id: &str,
        worker: &str,
        counter: i64,
        action: &'static str,
        set: impl FnOnce(UpdateItemFluentBuilder) -> UpdateItemFluentBuilder,
    ) -> Result<i64, LeaseError> {
        let update = set(self.change(shard_id, worker, counter))
            .condition_expression("leaseCounter = :seen AND leaseOwner = :me");
        self.conditional_shard(update.send().await, shard_id, counter, action)?;
        Ok(counter + 1)
    }

    fn conditional<T, E: std::error::Error + ConditionFailed + 'static, R: std::fmt::Debug>(
        &self,
        result: Result<T, aws_sdk_dynamodb::error::SdkError<E, R>>,
        lease: &Lease,
        action: &'static str,
    ) -> Result<T, LeaseError> {
        self.conditional_shard(result, &lease.shard_id, lease.counter, action)
    }

    fn conditional_shard<
        T,
        E: std::error::Error + ConditionFailed + 'static,
        R: std::fmt::Debug,
    >(
        &self,
        result: Result<T, aws_sdk_dynamodb::error::SdkError<E, R>>,
        shard_id: &str,
        counter: i64,
        action: &'static str,
    ) -> Result<T, LeaseError> {
        match result {
            Ok(out) => Ok(out),
            Err(e)
                if e.as_service_error()
                    .is_some_and(ConditionFailed::condition_failed) =>
            {
                Err(LeaseError::Lost {
                    shard_id: shard_id.to_owned(),
                    expected_counter: counter,
                })
            }
            Err(e) => Err(self.error(action, e)),
        }
    }
}

/// Errors that can say "the condition did not hold".
pub trait ConditionFailed {
    /// Whether this is a ConditionalCheckFailedException.
    fn condition_failed(&self) -> bool;
}

impl ConditionFailed for aws_sdk_dynamodb::operation::update_item::UpdateItemError {
    fn condition_failed(&self) -> bool {
        self.is_conditional_check_failed_exception()
    }
}

/// The table's key, `leaseKey`: a string, the hash key.
fn key() -> Result<(AttributeDefinition, KeySchemaElement), BuildError> {
    let definition = AttributeDefinition::builder()
        .attribute_name(KEY)
        .attribute_type(ScalarAttributeType::S)
        .build()?;
    let schema = KeySchemaElement::builder()
        .attribute_name(KEY)
        .key_type(KeyType::Hash)
        .build()?;
    Ok((definition, schema))
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// A lease from its item; `None` for an item that is not a lease.
fn lease_of(item: &HashMap<String, AttributeValue>) -> Option<Lease> {
    let text = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
    let number = |k: &str| {
        item.get(k)
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse().ok())
    };
    Some(Lease {
        shard_id: text(KEY)?,
        owner: text("leaseOwner"),
        counter: number("leaseCounter")?,
        checkpoint: Checkpoint::parse(
            &text("checkpoint").unwrap_or_else(|| "TRIM_HORIZON".into()),
            number("checkpointSubSequenceNumber")
                .and_then(|n: i64| u64::try_from(n).ok())
                .unwrap_or(0),
        ),
        owner_switches: number("ownerSwitchesSinceCheckpoint").unwrap_or(0),
        parents: item
            .get("parentShardId")
            .and_then(|v| v.as_ss().ok())
            .cloned()
            .unwrap_or_default(),
        throughput_kbps: item
            .get("throughputKBps")
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse().ok()),
    })
}
