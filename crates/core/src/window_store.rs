//! `WindowStore`: a shard's open minutes, kept in DynamoDB between Lambda
//! tumbling windows.
//!
//! Lambda's tumbling windows follow arrival time and drop their state after
//! the final invocation, while minutes follow event time: a reading stamped
//! 12:00:59 routinely arrives in the window after the one that held the rest
//! of 12:00. The aggregator therefore saves its open minutes here at the end
//! of each window and loads them at the start of the next, so each minute is
//! emitted once, complete.
//!
//! One item per shard, keyed `ShardKey` = `stream/shard`. Saves are
//! conditional on the window start, so a late retry of an older window can
//! never overwrite the state of a newer one, while a retry of the same window
//! (at-least-once) rewrites the same state harmlessly.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;

use crate::window::{MinuteWindow, StateError};

/// Largest state saved, in bytes: DynamoDB items stop at 400 KB. A shard
/// takes at most 1,000 readings a second, so at most 1,000 unicorns, whose
/// open minutes need a few hundred bytes each.
pub const MAX_STATE_BYTES: usize = 350 * 1024;

/// Why the state could not be loaded or saved.
#[derive(Debug, thiserror::Error)]
pub enum WindowStoreError {
    /// The table could not be read or written.
    #[error("cannot {action} window state of {shard_key} in table {table}: {message}")]
    Table {
        /// What was being done.
        action: &'static str,
        /// The shard.
        shard_key: String,
        /// The table.
        table: String,
        /// The SDK's account.
        message: String,
    },
    /// The stored state is not a window's.
    #[error("window state of {shard_key} in table {table} is unreadable: {source}")]
    Corrupt {
        /// The shard.
        shard_key: String,
        /// The table.
        table: String,
        /// Why.
        source: StateError,
    },
    /// The state is too big for one item.
    #[error(
        "window state of {shard_key} is {bytes} bytes, more than the {MAX_STATE_BYTES} one item holds: split the stream into more shards"
    )]
    TooLarge {
        /// The shard.
        shard_key: String,
        /// Its size.
        bytes: usize,
    },
}

/// What a save did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Saved {
    /// The state is stored.
    Stored,
    /// A newer window's state was already stored: this one is stale and was not.
    Stale,
}

/// Open minutes per shard, in a DynamoDB table with hash key `ShardKey` (S).
#[derive(Debug, Clone)]
pub struct WindowStore {
    client: Client,
    table: String,
}

impl WindowStore {
    /// The store in `table`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// The key of a shard's state: the stream's name (the last part of an
    /// ARN) and the shard id.
    pub fn shard_key(stream: &str, shard_id: &str) -> String {
        let stream = stream.rsplit('/').next().unwrap_or(stream);
        format!("{stream}/{shard_id}")
    }

    /// The saved state of `shard_key`, or an empty window with
    /// `allowed_lateness` if none was saved.
    pub async fn load(
        &self,
        shard_key: &str,
        allowed_lateness: Duration,
    ) -> Result<MinuteWindow, WindowStoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("ShardKey", AttributeValue::S(shard_key.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| {
                self.table_error(
                    "read",
                    shard_key,
                    aws_sdk_dynamodb::error::DisplayErrorContext(&e).to_string(),
                )
            })?;
        let Some(text) = output
            .item
            .as_ref()
            .and_then(|i| i.get("State"))
            .and_then(|v| v.as_s().ok())
        else {
            return Ok(MinuteWindow::new(allowed_lateness));
        };
        let corrupt = |source| WindowStoreError::Corrupt {
            shard_key: shard_key.to_owned(),
            table: self.table.clone(),
            source,
        };
        let map: HashMap<String, String> = serde_json::from_str(text).map_err(|e| {
            corrupt(StateError::Corrupt {
                key: "State".into(),
                reason: e.to_string(),
            })
        })?;
        MinuteWindow::from_state(&map, allowed_lateness).map_err(corrupt)
    }

    /// Saves `window` as the state of `shard_key` after the window that
    /// started at `window_start_ms` (epoch ms of the Lambda window, or any
    /// value that grows between saves).
    pub async fn save(
        &self,
        shard_key: &str,
        window: &MinuteWindow,
        window_start_ms: i64,
    ) -> Result<Saved, WindowStoreError> {
        let text = serde_json::to_string(&window.to_state()).unwrap_or_default();
        if text.len() > MAX_STATE_BYTES {
            return Err(WindowStoreError::TooLarge {
                shard_key: shard_key.to_owned(),
                bytes: text.len(),
            });
        }
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("ShardKey", AttributeValue::S(shard_key.to_owned()))
            .item("State", AttributeValue::S(text))
            .item(
                "WindowStart",
                AttributeValue::N(window_start_ms.to_string()),
            )
            .item(
                "UpdatedAt",
                AttributeValue::S(chrono::Utc::now().to_rfc3339()),
            )
            .condition_expression("attribute_not_exists(ShardKey) OR WindowStart <= :start")
            .expression_attribute_values(":start", AttributeValue::N(window_start_ms.to_string()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(Saved::Stored),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(Saved::Stale)
            }
            Err(e) => Err(self.table_error(
                "save",
                shard_key,
                aws_sdk_dynamodb::error::DisplayErrorContext(&e).to_string(),
            )),
        }
    }

    fn table_error(
        &self,
        action: &'static str,
        shard_key: &str,
        message: String,
    ) -> WindowStoreError {
        WindowStoreError::Table {
            action,
            shard_key: shard_key.to_owned(),
            table: self.table.clone(),
            message,
        }
    }
}
