//! `bootstrap` of `WildRydesStreamProcessor` for `provided.al2023`: builds the
//! DynamoDB client once and hands the handler to the Lambda runtime.
//!
//! One thread: Lambda runs one invocation at a time per process, the
//! BatchWriteItem calls of a batch still overlap (they are futures on this
//! thread), and a multi-thread runtime's workers parking and waking cost
//! 1.5–4.5 µs of CPU per record for nothing (BENCHMARKS.md). Below 1,769 MB
//! a function has less than one vCPU anyway.

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use wildrydes_lambda::kinesis::{ShardEvent, deadline};
use wildrydes_lambda::stream_processor::{Config, handle};
use wildrydes_lambda::telemetry;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    telemetry::init_json_logs();
    let config = Config::from_env().inspect_err(|e| tracing::error!(error = %e, "cannot start"))?;
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let processor = config.processor(aws_sdk_dynamodb::Client::new(&aws));
    tracing::info!(table = %config.table_name, rejects = %config.rejects_table_name, "stream processor ready");
    let processor = &processor;
    let margin = config.deadline_margin;
    run(service_fn(
        move |event: LambdaEvent<ShardEvent>| async move {
            let deadline = deadline(event.context.deadline, margin);
            Ok::<_, Error>(handle(processor, event.payload, deadline).await)
        },
    ))
    .await
}
