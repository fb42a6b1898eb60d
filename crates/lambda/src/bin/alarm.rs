//! `bootstrap` of `WildRydesAlarm` for `provided.al2023`: reads and checks
//! the configuration, builds the clients and notifiers once, and hands the
//! handler to the Lambda runtime. One thread, as the stream processor's
//! `bootstrap` (see there): one invocation at a time per process.

use lambda_runtime::Error;
use wildrydes_lambda::alarm::{Config, handle};
use wildrydes_lambda::bootstrap;
use wildrydes_lambda::kinesis::ShardEvent;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let (config, aws) = bootstrap::start(Config::from_env).await?;
    let alarm = config
        .alarm
        .alarm(&aws)
        .inspect_err(bootstrap::cannot_start)?;
    tracing::info!(
        table = %config.alarm.table_name,
        rejects = %config.alarm.rejects_table_name,
        threshold = config.alarm.detector.threshold(),
        recovery_level = config.alarm.detector.recovery_level(),
        notifiers = ?alarm.notifier_names(),
        "alarm ready"
    );
    let alarm = &alarm;
    bootstrap::serve_answers(config.deadline_margin, |event: ShardEvent, deadline| {
        handle(alarm, event, deadline)
    })
    .await
}
