//! Where a consumer's records come from: GetRecords polling (the default),
//! or an enhanced fan-out subscription (`SubscribeToShard`), renewed each
//! time the service ends it (after 5 minutes on AWS).
//!
//! Both are read the same way: [`ShardReader::open`] positions a
//! [`Cursor`] at a checkpoint, [`ShardReader::read`] gives the next
//! [`Page`] and the cursor to read after it. A consumer that drops a cursor
//! (a failed batch, an error) opens a new one from its checkpoint.

use std::time::Duration;

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::error::DisplayErrorContext;
use aws_sdk_kinesis::primitives::event_stream::EventReceiver;
use aws_sdk_kinesis::types::error::SubscribeToShardEventStreamError;
use aws_sdk_kinesis::types::{
    ConsumerStatus, Record, ShardIteratorType, StartingPosition, SubscribeToShardEventStream,
};
use tokio::time::Instant;

use crate::lease::Checkpoint;

/// How a consumer reads its shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadMode {
    /// GetRecords, at most 5 calls per second per shard, shared with every
    /// other polling consumer of the stream.
    Polling,
    /// `SubscribeToShard` through this registered stream consumer (its
    /// ARN): a dedicated 2 MB/s per shard, records pushed as they arrive.
    FanOut(String),
}

/// Where to read next on a shard.
#[derive(Debug)]
pub enum Cursor {
    /// A shard iterator, for GetRecords.
    Iterator(String),
    /// An open subscription.
    Subscription(Box<Subscription>),
}

/// An enhanced fan-out subscription to one shard.
#[derive(Debug)]
pub struct Subscription {
    events: EventReceiver<SubscribeToShardEventStream, SubscribeToShardEventStreamError>,
    /// Where a renewed subscription starts: after the last record this
    /// one delivered, else where the service said to go on, else where
    /// this one started.
    resume: StartingPosition,
    /// Whether a record came since the subscription chain started.
    delivered: bool,
}

/// What one read gave.
#[derive(Debug)]
pub struct Page {
    /// The Kinesis records, in shard order (possibly none).
    pub records: Vec<Record>,
    /// Where to read after them; `None` once the shard is closed and read
    /// to its end.
    pub next: Option<Cursor>,
    /// How far the read is behind the shard's newest record.
    pub millis_behind: Option<i64>,
}

/// Why a read gave nothing.
#[derive(Debug)]
pub enum ReadError {
    /// The shard iterator expired: open again from the checkpoint.
    Expired,
    /// Anything else, with what went wrong: back off, open again from the
    /// checkpoint.
    Failed(String),
}

/// Reads one shard of one stream.
#[derive(Debug, Clone)]
pub struct ShardReader {
    /// Kinesis.
    pub kinesis: Client,
    /// The stream's name.
    pub stream: String,
    /// The shard.
    pub shard_id: String,
    /// Polling or fan-out.
    pub mode: ReadMode,
}

impl ShardReader {
    /// A cursor at `checkpoint` (its record included: an aggregate's user
    /// records after the checkpoint's are still to be handled), or `None`
    /// if the shard is done.
    pub async fn open(&self, checkpoint: &Checkpoint) -> Result<Option<Cursor>, String> {
        let (kind, sequence_number) = match checkpoint {
            Checkpoint::ShardEnd => return Ok(None),
            Checkpoint::TrimHorizon => (ShardIteratorType::TrimHorizon, None),
            Checkpoint::Latest => (ShardIteratorType::Latest, None),
            Checkpoint::After(seq, _) => (ShardIteratorType::AtSequenceNumber, Some(seq.clone())),
        };
        match &self.mode {
            ReadMode::Polling => {
                let output = self
                    .kinesis
                    .get_shard_iterator()
                    .stream_name(&self.stream)
                    .shard_id(&self.shard_id)
                    .shard_iterator_type(kind)
                    .set_starting_sequence_number(sequence_number)
                    .send()
                    .await
                    .map_err(|e| DisplayErrorContext(&e).to_string())?;
                Ok(output.shard_iterator.map(Cursor::Iterator))
            }
            ReadMode::FanOut(consumer) => {
                let at = StartingPosition::builder()
                    .r#type(kind)
                    .set_sequence_number(sequence_number)
                    .build()
                    .map_err(|e| e.to_string())?;
                let events = self.subscribe(consumer, at.clone()).await?;
                Ok(Some(Cursor::Subscription(Box::new(Subscription {
                    events,
                    resume: at,
                    delivered: false,
                }))))
            }
        }
    }

    /// The next page at `cursor`. A subscription waits up to `wait` for an
    /// event (an empty page after that, so that the consumer's idle work
    /// runs), and is renewed when the service ends it; an iterator reads at
    /// most `limit` records at once.
    pub async fn read(
        &self,
        cursor: Cursor,
        limit: i32,
        wait: Duration,
    ) -> Result<Page, ReadError> {
        match cursor {
            Cursor::Iterator(iterator) => {
                let output = self
                    .kinesis
                    .get_records()
                    .shard_iterator(iterator)
                    .limit(limit)
                    .send()
                    .await
                    .map_err(|e| {
                        if e.as_service_error()
                            .is_some_and(|s| s.is_expired_iterator_exception())
                        {
                            ReadError::Expired
                        } else {
                            ReadError::Failed(format!("GetRecords: {}", DisplayErrorContext(&e)))
                        }
                    })?;
                Ok(Page {
                    records: output.records,
                    next: output.next_shard_iterator.map(Cursor::Iterator),
                    millis_behind: output.millis_behind_latest,
                })
            }
            Cursor::Subscription(subscription) => self.next_event(subscription, wait).await,
        }
    }

    async fn next_event(
        &self,
        mut subscription: Box<Subscription>,
        wait: Duration,
    ) -> Result<Page, ReadError> {
        let ReadMode::FanOut(consumer) = &self.mode else {
            return Err(ReadError::Failed(
                "a subscription on a polling reader".into(),
            ));
        };
        let deadline = Instant::now() + wait;
        loop {
            let event = match tokio::time::timeout_at(deadline, subscription.events.recv()).await {
                Err(_) => {
                    return Ok(Page {
                        records: Vec::new(),
                        next: Some(Cursor::Subscription(subscription)),
                        millis_behind: None,
                    });
                }
                Ok(Err(e)) => return Err(ReadError::Failed(subscription_error(&e))),
                Ok(Ok(None)) => {
                    // The service ends every subscription after a while:
                    // a new one goes on where this one stopped.
                    tracing::info!(shard = %self.shard_id, "subscription ended; renewing it");
                    subscription.events = self
                        .subscribe(consumer, subscription.resume.clone())
                        .await
                        .map_err(ReadError::Failed)?;
                    continue;
                }
                Ok(Ok(Some(SubscribeToShardEventStream::SubscribeToShardEvent(event)))) => event,
                Ok(Ok(Some(other))) => {
                    tracing::debug!(shard = %self.shard_id, ?other, "ignoring an unknown subscription event");
                    continue;
                }
            };
            let continuation = event.continuation_sequence_number;
            let closed = event.child_shards.as_ref().is_some_and(|c| !c.is_empty());
            // The last event of a closed shard has no continuation (AWS)
            // or no records beside its child shards (the emulator).
            let ended = continuation.is_empty() || (closed && event.records.is_empty());
            if let Some(last) = event.records.last() {
                subscription.resume = position(
                    ShardIteratorType::AfterSequenceNumber,
                    last.sequence_number(),
                );
                subscription.delivered = true;
            } else if !subscription.delivered && !continuation.is_empty() {
                // Nothing delivered yet: going on at the continuation may
                // repeat a record (a duplicate, which pipelines drop), never
                // skip one.
                subscription.resume = position(ShardIteratorType::AtSequenceNumber, &continuation);
            }
            return Ok(Page {
                records: event.records,
                next: (!ended).then_some(Cursor::Subscription(subscription)),
                millis_behind: Some(event.millis_behind_latest),
            });
        }
    }

    async fn subscribe(
        &self,
        consumer: &str,
        at: StartingPosition,
    ) -> Result<EventReceiver<SubscribeToShardEventStream, SubscribeToShardEventStreamError>, String>
    {
        let output = self
            .kinesis
            .subscribe_to_shard()
            .consumer_arn(consumer)
            .shard_id(&self.shard_id)
            .starting_position(at)
            .send()
            .await
            .map_err(|e| format!("SubscribeToShard: {}", DisplayErrorContext(&e)))?;
        Ok(output.event_stream)
    }
}

fn position(kind: ShardIteratorType, sequence_number: &str) -> StartingPosition {
    StartingPosition::builder()
        .r#type(kind)
        .sequence_number(sequence_number)
        .build()
        .expect("a starting position with its type")
}

fn subscription_error(e: &(impl std::error::Error + 'static)) -> String {
    format!(
        "subscription to the shard failed: {}",
        DisplayErrorContext(e)
    )
}

/// Registers `name` as an enhanced fan-out consumer of `stream_arn`, or
/// finds it registered already (by another worker of the pipeline, an
/// earlier run, or a deploy), and waits until it is ACTIVE; gives its ARN.
/// Nothing deregisters it: the pipeline's workers share it, and reuse it
/// on restart.
pub async fn ensure_consumer(
    kinesis: &Client,
    stream_arn: &str,
    name: &str,
    timeout: Duration,
) -> Result<String, String> {
    let registered = kinesis
        .register_stream_consumer()
        .stream_arn(stream_arn)
        .consumer_name(name)
        .send()
        .await;
    match registered {
        Ok(output) => {
            if let Some(c) = output.consumer() {
                tracing::info!(
                    consumer = c.consumer_arn(),
                    "enhanced fan-out consumer registered"
                );
            }
        }
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_in_use_exception()) =>
        {
            tracing::info!(
                consumer = name,
                "enhanced fan-out consumer exists; reusing it"
            );
        }
        Err(e) => {
            return Err(format!(
                "cannot register enhanced fan-out consumer {name} on {stream_arn}: {}; check the role may kinesis:RegisterStreamConsumer, and that the stream has fewer than 20 consumers",
                DisplayErrorContext(&e)
            ));
        }
    }
    let deadline = Instant::now() + timeout;
    loop {
        let described = kinesis
            .describe_stream_consumer()
            .stream_arn(stream_arn)
            .consumer_name(name)
            .send()
            .await
            .map_err(|e| {
                format!(
                    "cannot describe enhanced fan-out consumer {name} on {stream_arn}: {}",
                    DisplayErrorContext(&e)
                )
            })?;
        if let Some(c) = described.consumer_description()
            && *c.consumer_status() == ConsumerStatus::Active
        {
            return Ok(c.consumer_arn().to_owned());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "enhanced fan-out consumer {name} on {stream_arn} is not ACTIVE after {timeout:?}; try again, or look at it with aws kinesis describe-stream-consumer"
            ));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
