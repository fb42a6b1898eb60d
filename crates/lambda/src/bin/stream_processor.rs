//! `bootstrap` of `WildRydesStreamProcessor` for `provided.al2023`: builds the
//! DynamoDB client once and hands the handler to the Lambda runtime.
//!
//! One thread: Lambda runs one invocation at a time per process, the
//! BatchWriteItem calls of a batch still overlap (they are futures on this
//! thread), and a multi-thread runtime's workers parking and waking cost
//! 1.5–4.5 µs of CPU per record for nothing (BENCHMARKS.md). Below 1,769 MB
//! a function has less than one vCPU anyway.

use lambda_runtime::Error;
use wildrydes_lambda::bootstrap;
use wildrydes_lambda::kinesis::ShardEvent;
use wildrydes_lambda::stream_processor::{Config, handle};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let (config, aws) = bootstrap::start(Config::from_env).await?;
    let processor = config.processor(aws_sdk_dynamodb::Client::new(&aws));
    tracing::info!(table = %config.table_name, rejects = %config.rejects_table_name, "stream processor ready");
    let processor = &processor;
    bootstrap::serve_answers(config.deadline_margin, |event: ShardEvent, deadline| {
        handle(processor, event, deadline)
    })
    .await
}
