//! Each unicorn's last position, from the readings stream: one reader per
//! shard, one GetRecords call at most every `read_interval` (2 s: a tenth
//! of the 5 reads/s a shard allows all its pollers), starting `lookback`
//! ago so that a unicorn that fell silent recently is still on the map.
//! KPL aggregates are unpacked; a record that is not a reading is skipped
//! (the pipelines keep it as a reject). Shards that appear later (a
//! reshard) are read from their start.

use std::collections::HashSet;
use std::sync::Arc;

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::error::DisplayErrorContext;
use aws_sdk_kinesis::primitives::DateTime;
use aws_sdk_kinesis::types::ShardIteratorType;
use tokio_util::sync::CancellationToken;
use wildrydes_core::input::SourceRecord;

use super::{ConsoleConfig, Live};

/// How often the shard list is looked at for new shards.
const SHARD_LIST_INTERVAL: std::time::Duration = std::time::Duration::from_secs(30);

/// Reads positions into `live` until `stop`.
pub async fn run(kinesis: Client, config: ConsoleConfig, live: Arc<Live>, stop: CancellationToken) {
    let mut reading: HashSet<String> = HashSet::new();
    let started = std::time::SystemTime::now();
    let mut first = true;
    loop {
        match list_shards(&kinesis, &config.readings_stream).await {
            Ok(shards) => {
                for shard in shards {
                    if reading.insert(shard.clone()) {
                        let start = if first {
                            Start::Since(started - config.lookback)
                        } else {
                            Start::TrimHorizon
                        };
                        tokio::spawn(read_shard(
                            kinesis.clone(),
                            config.clone(),
                            shard,
                            start,
                            live.clone(),
                            stop.clone(),
                        ));
                    }
                }
                first = false;
            }
            Err(e) => {
                tracing::warn!(stream = %config.readings_stream, error = e, "cannot list the readings stream's shards; positions wait")
            }
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(SHARD_LIST_INTERVAL) => {}
        }
    }
}

async fn list_shards(kinesis: &Client, stream: &str) -> Result<Vec<String>, String> {
    let mut shards = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let request = match &token {
            Some(t) => kinesis.list_shards().next_token(t),
            None => kinesis.list_shards().stream_name(stream),
        };
        let page = request
            .send()
            .await
            .map_err(|e| format!("ListShards: {}", DisplayErrorContext(&e)))?;
        shards.extend(page.shards().iter().map(|s| s.shard_id().to_owned()));
        match page.next_token {
            Some(t) => token = Some(t),
            None => return Ok(shards),
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Start {
    Since(std::time::SystemTime),
    TrimHorizon,
}

async fn read_shard(
    kinesis: Client,
    config: ConsoleConfig,
    shard: String,
    start: Start,
    live: Arc<Live>,
    stop: CancellationToken,
) {
    let mut iterator: Option<String> = None;
    // Where to go on after an error: after the last record seen.
    let mut after: Option<String> = None;
    loop {
        if iterator.is_none() {
            let request = kinesis
                .get_shard_iterator()
                .stream_name(&config.readings_stream)
                .shard_id(&shard);
            let request = match (&after, start) {
                (Some(seq), _) => request
                    .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                    .starting_sequence_number(seq),
                (None, Start::Since(at)) => request
                    .shard_iterator_type(ShardIteratorType::AtTimestamp)
                    .timestamp(DateTime::from(at)),
                (None, Start::TrimHorizon) => {
                    request.shard_iterator_type(ShardIteratorType::TrimHorizon)
                }
            };
            match request.send().await {
                Ok(out) => match out.shard_iterator {
                    Some(it) => iterator = Some(it),
                    None => return,
                },
                Err(e) => {
                    tracing::warn!(shard, error = %DisplayErrorContext(&e), "cannot read the shard's positions; trying again");
                }
            }
        }
        if let Some(current) = iterator.take() {
            match kinesis.get_records().shard_iterator(current).send().await {
                Ok(out) => {
                    if let Some(last) = out.records().last() {
                        after = Some(last.sequence_number().to_owned());
                    }
                    let records = wildrydes_core::input::user_records(
                        out.records().iter().map(SourceRecord::from),
                    );
                    live.saw(
                        records
                            .iter()
                            .filter_map(|r| wildrydes_core::Reading::from_json(&r.data).ok()),
                    );
                    match out.next_shard_iterator {
                        Some(next) => iterator = Some(next),
                        // Closed and read to its end: its children are
                        // read from their start.
                        None => return,
                    }
                }
                Err(e) => {
                    tracing::debug!(shard, error = %DisplayErrorContext(&e), "GetRecords for positions failed; trying again");
                }
            }
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(config.read_interval) => {}
        }
    }
}
