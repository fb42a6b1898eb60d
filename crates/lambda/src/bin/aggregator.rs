//! `bootstrap` of `WildRydesAggregator` for `provided.al2023`: builds the
//! clients once and hands the handler to the Lambda runtime. Triggered by
//! `wildrydes` (plain batches) and by a schedule (`infra/wildrydes.yaml`).
//!
//! One thread, as the stream processor's `bootstrap` (see there): one
//! invocation at a time, its writes overlapping on that thread.

use lambda_runtime::Error;
use wildrydes_lambda::aggregator::{AggregatorFunction, Config, handle};
use wildrydes_lambda::bootstrap;
use wildrydes_lambda::kinesis::AggregatorEvent;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let (config, aws) = bootstrap::start(Config::from_env).await?;
    let function = AggregatorFunction::new(
        &config,
        aws_sdk_kinesis::Client::new(&aws),
        aws_sdk_dynamodb::Client::new(&aws),
    );
    tracing::info!(output = %config.output_stream, state_table = %config.state_table_name, "aggregator ready");
    let function = &function;
    bootstrap::serve(
        config.deadline_margin,
        |event: AggregatorEvent, deadline| async move {
            handle(function, event, deadline)
                .await
                .inspect_err(|e| tracing::error!(error = %e, "batch failed: Lambda will retry it"))
                .map_err(Error::from)
        },
    )
    .await
}
