//! `bootstrap` of `WildRydesAggregator` for `provided.al2023`: builds the
//! clients once and hands the handler to the Lambda runtime. Triggered by
//! `wildrydes` (plain batches) and by a schedule (`infra/wildrydes.yaml`).
//!
//! One thread, as the stream processor's `bootstrap` (see there): one
//! invocation at a time, its writes overlapping on that thread.

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use wildrydes_lambda::aggregator::{AggregatorFunction, Config, handle};
use wildrydes_lambda::kinesis::{AggregatorEvent, deadline};
use wildrydes_lambda::telemetry;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    telemetry::init_json_logs();
    let config = Config::from_env().inspect_err(|e| tracing::error!(error = %e, "cannot start"))?;
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let function = AggregatorFunction::new(
        &config,
        aws_sdk_kinesis::Client::new(&aws),
        aws_sdk_dynamodb::Client::new(&aws),
    );
    tracing::info!(output = %config.output_stream, state_table = %config.state_table_name, "aggregator ready");
    let function = &function;
    let margin = config.deadline_margin;
    run(service_fn(
        move |event: LambdaEvent<AggregatorEvent>| async move {
            let deadline = deadline(event.context.deadline, margin);
            handle(function, event.payload, deadline)
                .await
                .inspect_err(|e| tracing::error!(error = %e, "batch failed: Lambda will retry it"))
                .map_err(Error::from)
        },
    ))
    .await
}
