//! `cargo xtask tail STREAM`: prints a stream's records as they arrive, as
//! indented JSON (raw text when not JSON), like the workshop's consumer;
//! the user records of KPL aggregates one by one.

use std::time::Duration;

use anyhow::Context as _;
use aws_sdk_kinesis::types::ShardIteratorType;
use wildrydes_core::input::SourceRecord;

/// Follows every shard of `stream` until Ctrl-C; from its oldest record
/// when `from_start`, else from now.
pub async fn tail(
    kinesis: &aws_sdk_kinesis::Client,
    stream: &str,
    from_start: bool,
) -> anyhow::Result<()> {
    let shards = kinesis
        .list_shards()
        .stream_name(stream)
        .send()
        .await
        .with_context(|| format!("cannot list the shards of stream {stream}: does it exist? (cargo xtask local creates the workshop's)"))?;
    let kind = if from_start {
        ShardIteratorType::TrimHorizon
    } else {
        ShardIteratorType::Latest
    };
    let mut iterators = Vec::new();
    for shard in shards.shards() {
        let it = kinesis
            .get_shard_iterator()
            .stream_name(stream)
            .shard_id(shard.shard_id())
            .shard_iterator_type(kind.clone())
            .send()
            .await
            .context("cannot get a shard iterator")?;
        iterators.push(it.shard_iterator);
    }
    loop {
        let mut any = false;
        for slot in iterators.iter_mut() {
            let Some(it) = slot.clone() else { continue };
            let page = kinesis
                .get_records()
                .shard_iterator(it)
                .send()
                .await
                .context("GetRecords failed")?;
            let records = page.records().iter().map(SourceRecord::from);
            for r in wildrydes_core::input::user_records(records) {
                any = true;
                let text = String::from_utf8_lossy(&r.data).into_owned();
                match serde_json::from_str::<serde_json::Value>(&text) {
                    Ok(v) => println!("{}", serde_json::to_string_pretty(&v).unwrap_or(text)),
                    Err(_) => println!("{text}"),
                }
            }
            *slot = page.next_shard_iterator;
        }
        if !any {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => return Ok(()),
                () = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
    }
}
