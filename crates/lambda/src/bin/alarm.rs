//! `bootstrap` of `WildRydesAlarm` for `provided.al2023`: reads and checks
//! the configuration, builds the clients and notifiers once, and hands the
//! handler to the Lambda runtime. One thread, as the stream processor's
//! `bootstrap` (see there): one invocation at a time per process.

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use wildrydes_lambda::alarm::{Config, handle};
use wildrydes_lambda::kinesis::{ShardEvent, deadline};
use wildrydes_lambda::telemetry;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    telemetry::init_json_logs();
    let config = Config::from_env().inspect_err(|e| tracing::error!(error = %e, "cannot start"))?;
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let alarm = config
        .alarm
        .alarm(&aws)
        .inspect_err(|e| tracing::error!(error = %e, "cannot start"))?;
    tracing::info!(
        table = %config.alarm.table_name,
        rejects = %config.alarm.rejects_table_name,
        threshold = config.alarm.detector.threshold(),
        recovery_level = config.alarm.detector.recovery_level(),
        notifiers = ?alarm.notifier_names(),
        "alarm ready"
    );
    let alarm = &alarm;
    let margin = config.deadline_margin;
    run(service_fn(
        move |event: LambdaEvent<ShardEvent>| async move {
            let deadline = deadline(event.context.deadline, margin);
            Ok::<_, Error>(handle(alarm, event.payload, deadline).await)
        },
    ))
    .await
}
